import { describe, expect, it } from "vitest";
import { parseQueueSpec, QueueSpecError } from "../../../src/queue/spec.js";

const CONN =
  "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;QueueEndpoint=http://127.0.0.1:1/devstoreaccount1;";
const SB_CONN =
  "Endpoint=sb://127.0.0.1:5672;SharedAccessKeyName=x;SharedAccessKey=y;UseDevelopmentEmulator=true;";

describe("queue specs", () => {
  const valid: Array<[string, string | undefined, object]> = [
    [
      "myaccount/tasks",
      undefined,
      {
        kind: "storage",
        account: "myaccount",
        queueName: "tasks",
        accountUrl: "https://myaccount.queue.core.windows.net",
      },
    ],
    [
      "sb://myns/tasks",
      undefined,
      { kind: "servicebus", queueName: "tasks", fullyQualifiedNamespace: "myns.servicebus.windows.net" },
    ],
    [
      "sb://bus.example.org/jobs",
      undefined,
      { kind: "servicebus", queueName: "jobs", fullyQualifiedNamespace: "bus.example.org" },
    ],
    [
      "http://127.0.0.1:10001/devstoreaccount1/tasks",
      undefined,
      {
        kind: "storage",
        account: "devstoreaccount1",
        queueName: "tasks",
        accountUrl: "http://127.0.0.1:10001/devstoreaccount1",
      },
    ],
    [
      "https://acct.queue.core.windows.net/work-items",
      undefined,
      {
        kind: "storage",
        account: "acct",
        queueName: "work-items",
        accountUrl: "https://acct.queue.core.windows.net",
      },
    ],
    ["tasks", CONN, { kind: "storage", queueName: "tasks" }],
    ["tasks", SB_CONN, { kind: "servicebus", queueName: "tasks" }],
  ];
  for (const [spec, connectionString, expected] of valid) {
    it(`parses ${spec}${connectionString ? " with a connection string" : ""}`, () => {
      expect(parseQueueSpec(spec, { connectionString })).toEqual(expected);
    });
  }

  const invalid: Array<[string, RegExp]> = [
    ["", /empty/],
    ["tasks", /bare queue name needs a connection string/],
    ["myaccount/Tasks", /queue name "Tasks" is not a valid Storage queue name/],
    ["my-account/tasks", /account "my-account" is not a valid Storage account name/],
    ["a/b/c", /expected ACCOUNT\/QUEUE/],
    ["sb://myns", /expected sb:\/\/NAMESPACE\/QUEUE/],
    ["ftp://host/acct/q", /unknown scheme/],
    ["http://127.0.0.1:10001/devstoreaccount1/tasks?sig=abc", /must not carry a query/],
    ["myaccount/a--b", /not a valid Storage queue name/],
  ];
  for (const [spec, pattern] of invalid) {
    it(`rejects "${spec}"`, () => {
      let error: unknown;
      try {
        parseQueueSpec(spec);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(QueueSpecError);
      expect((error as Error).message).toMatch(pattern);
      expect((error as Error).message).toContain(`queue spec "${spec}"`);
    });
  }
});
