/**
 * Azure's naming rules for Service Bus entities (Microsoft.ServiceBus resource name rules):
 * - queues and topics: 1-260 characters, letters, digits, '.', '-', '_' and '/', starting and ending with a
 *   letter or digit (so `team/eastus` is a topic name);
 * - subscriptions: 1-50 characters, letters, digits, '.', '-' and '_' (no '/'), same ends.
 */
export const QUEUE_OR_TOPIC_NAME = /^[A-Za-z0-9](?:[A-Za-z0-9._/-]{0,258}[A-Za-z0-9])?$/;
export const SUBSCRIPTION_NAME = /^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,48}[A-Za-z0-9])?$/;

export const QUEUE_OR_TOPIC_RULE =
  "a Service Bus queue or topic name: 1-260 letters, digits, '.', '-', '_' or '/', starting and ending with a letter or digit";
export const SUBSCRIPTION_RULE =
  "a Service Bus subscription name: 1-50 letters, digits, '.', '-' or '_' (no '/'), starting and ending with a letter or digit";

/** What is wrong with `name` as an entity of this kind, or undefined when Azure would accept it. */
export function entityNameProblem(
  kind: "queue" | "topic" | "subscription",
  name: string,
): string | undefined {
  const [pattern, rule] =
    kind === "subscription"
      ? [SUBSCRIPTION_NAME, SUBSCRIPTION_RULE]
      : [QUEUE_OR_TOPIC_NAME, QUEUE_OR_TOPIC_RULE];
  return pattern.test(name) ? undefined : `expected ${rule}; given "${name}" (${name.length} characters)`;
}
