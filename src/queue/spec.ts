/**
 * Queue spec strings, as operators write them (ai4s-jobq's `SERVICE/QUEUE_NAME` plus URLs for emulators):
 *
 * - `ACCOUNT/QUEUE`               Storage queue at https://ACCOUNT.queue.core.windows.net
 * - `sb://NAMESPACE/QUEUE`        Service Bus queue at NAMESPACE.servicebus.windows.net (or NAMESPACE itself
 *                                 when it contains a dot: a full host name)
 * - `http(s)://HOST[:PORT]/ACCOUNT/QUEUE`  Storage queue at an explicit endpoint (Azurite, sovereign clouds);
 *                                 `https://ACCOUNT.queue.core.windows.net/QUEUE` works too
 * - `QUEUE`                       a bare queue name, only with a connection string (which names the account)
 */

export interface StorageQueueSpec {
  kind: "storage";
  queueName: string;
  /** Account name, when the spec names one (a bare name leaves it to the connection string). */
  account?: string;
  /** Account endpoint without the queue, e.g. https://acct.queue.core.windows.net; absent for a bare name. */
  accountUrl?: string;
}

export interface ServiceBusQueueSpec {
  kind: "servicebus";
  queueName: string;
  /** Host name, e.g. mynamespace.servicebus.windows.net; absent for a bare name with a connection string. */
  fullyQualifiedNamespace?: string;
}

export type QueueSpec = StorageQueueSpec | ServiceBusQueueSpec;

export class QueueSpecError extends Error {
  readonly code = "InvalidQueueSpec";
  constructor(message: string) {
    super(message);
    this.name = "QueueSpecError";
  }
}

export interface ParseQueueSpecOptions {
  /** When given, a bare queue name is accepted (the connection string names the account or namespace). */
  connectionString?: string;
}

const EXPECTED =
  "expected ACCOUNT/QUEUE, sb://NAMESPACE/QUEUE, http(s)://HOST[:PORT]/ACCOUNT/QUEUE, " +
  "or a bare QUEUE name together with a connection string";

// Storage rules: https://learn.microsoft.com/rest/api/storageservices/naming-queues-and-metadata
const STORAGE_QUEUE_NAME = /^[a-z0-9](?:[a-z0-9]|-(?!-)){1,61}[a-z0-9]$/;
const STORAGE_ACCOUNT = /^[a-z0-9]{3,24}$/;
const SERVICE_BUS_QUEUE_NAME = /^[A-Za-z0-9][A-Za-z0-9._\-/~]{0,259}$/;
const SERVICE_BUS_NAMESPACE = /^[A-Za-z0-9][A-Za-z0-9.-]*[A-Za-z0-9]$/;

function fail(spec: string, why: string): never {
  throw new QueueSpecError(`queue spec "${spec}": ${why}`);
}

function checkStorageQueueName(spec: string, name: string): string {
  if (!STORAGE_QUEUE_NAME.test(name)) {
    fail(
      spec,
      `queue name "${name}" is not a valid Storage queue name ` +
        "(expected 3-63 lowercase letters, digits or single hyphens, starting and ending with a letter or digit)",
    );
  }
  return name;
}

function checkStorageAccount(spec: string, account: string): string {
  if (!STORAGE_ACCOUNT.test(account)) {
    fail(
      spec,
      `account "${account}" is not a valid Storage account name (expected 3-24 lowercase letters or digits)`,
    );
  }
  return account;
}

/** Service Bus connection strings start with `Endpoint=sb://`. */
export function isServiceBusConnectionString(connectionString: string): boolean {
  return /(^|;)\s*Endpoint\s*=\s*sb:\/\//i.test(connectionString);
}

/** Parse a queue spec; throws QueueSpecError naming the spec and what was expected. */
export function parseQueueSpec(spec: string, options: ParseQueueSpecOptions = {}): QueueSpec {
  const text = spec.trim();
  if (text === "") fail(spec, `empty; ${EXPECTED}`);
  // Never echo it: a connection string holds the account key.
  if (
    /(^|;)\s*(AccountKey|SharedAccessKey|SharedAccessSignature|DefaultEndpointsProtocol|Endpoint)\s*=/i.test(
      text,
    )
  ) {
    throw new QueueSpecError(
      "queue spec looks like a connection string: put it in WORKFORCE_QUEUE_CONNECTION_STRING " +
        `and give the queue name here; ${EXPECTED}`,
    );
  }

  if (/^sb:\/\//i.test(text)) {
    const rest = text.slice("sb://".length).replace(/\/+$/, "");
    const slash = rest.indexOf("/");
    if (slash <= 0 || slash === rest.length - 1) fail(spec, `expected sb://NAMESPACE/QUEUE`);
    const namespace = rest.slice(0, slash);
    const queueName = rest.slice(slash + 1);
    if (!SERVICE_BUS_NAMESPACE.test(namespace)) {
      fail(spec, `namespace "${namespace}" is not a valid Service Bus namespace or host name`);
    }
    if (!SERVICE_BUS_QUEUE_NAME.test(queueName)) {
      fail(spec, `queue name "${queueName}" is not a valid Service Bus queue name`);
    }
    const fullyQualifiedNamespace = namespace.includes(".")
      ? namespace
      : `${namespace}.servicebus.windows.net`;
    return { kind: "servicebus", queueName, fullyQualifiedNamespace };
  }

  if (/^https?:\/\//i.test(text)) return parseQueueUrl(spec, text);

  if (text.includes("://")) fail(spec, `unknown scheme; ${EXPECTED}`);

  const parts = text.split("/");
  if (parts.length === 1) {
    if (!options.connectionString) {
      fail(
        spec,
        `a bare queue name needs a connection string (WORKFORCE_QUEUE_CONNECTION_STRING); ${EXPECTED}`,
      );
    }
    if (isServiceBusConnectionString(options.connectionString)) {
      if (!SERVICE_BUS_QUEUE_NAME.test(text)) fail(spec, `"${text}" is not a valid Service Bus queue name`);
      return { kind: "servicebus", queueName: text };
    }
    return { kind: "storage", queueName: checkStorageQueueName(spec, text) };
  }
  if (parts.length !== 2 || !parts[0] || !parts[1]) fail(spec, EXPECTED);
  const account = checkStorageAccount(spec, parts[0]);
  const queueName = checkStorageQueueName(spec, parts[1]);
  return { kind: "storage", queueName, account, accountUrl: `https://${account}.queue.core.windows.net` };
}

function parseQueueUrl(spec: string, text: string): StorageQueueSpec {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    fail(spec, `not a valid URL; ${EXPECTED}`);
  }
  if (url.search || url.hash) {
    fail(
      spec,
      "a queue URL must not carry a query (SAS tokens go in the connection string, never in the spec)",
    );
  }
  const segments = url.pathname.split("/").filter((s) => s !== "");
  const origin = `${url.protocol}//${url.host}`;
  if (segments.length === 2) {
    // Emulator / path-style endpoint: http://127.0.0.1:10001/devstoreaccount1/tasks
    const account = checkStorageAccount(spec, segments[0]!);
    return {
      kind: "storage",
      queueName: checkStorageQueueName(spec, segments[1]!),
      account,
      accountUrl: `${origin}/${account}`,
    };
  }
  if (segments.length === 1) {
    // Host-style endpoint: https://acct.queue.core.windows.net/tasks
    const account = url.hostname.split(".")[0] ?? "";
    return {
      kind: "storage",
      queueName: checkStorageQueueName(spec, segments[0]!),
      ...(STORAGE_ACCOUNT.test(account) ? { account } : {}),
      accountUrl: origin,
    };
  }
  fail(
    spec,
    "expected a URL of the form http(s)://HOST[:PORT]/ACCOUNT/QUEUE or https://ACCOUNT.queue.core.windows.net/QUEUE",
  );
}

/** Secret-free text for logs and metrics, e.g. "storage:devstoreaccount1/tasks". */
export function describeQueueSpec(spec: QueueSpec): string {
  if (spec.kind === "servicebus")
    return `servicebus:${spec.fullyQualifiedNamespace ?? "(connection string)"}/${spec.queueName}`;
  return `storage:${spec.account ?? "(connection string)"}/${spec.queueName}`;
}

/** The same spec pointing at another queue of the same account (e.g. the `-failed` queue). */
export function withQueueName<T extends QueueSpec>(spec: T, queueName: string): T {
  return { ...spec, queueName };
}
