import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { backChannelSchema } from "../../src/backchannel/config.js";
import {
  CONTROL_OPERATIONS,
  decodeControlMessage,
  encodeControlMessage,
} from "../../src/backchannel/message.js";

function python(script: string, input?: Buffer): string {
  return execFileSync("python3", ["-c", script], { input, encoding: "utf8" });
}

describe("control message body", () => {
  it.each(CONTROL_OPERATIONS)("%s: bytes equal Python's json.dumps", (operation) => {
    const expected = execFileSync("python3", [
      "-c",
      `import json,sys; sys.stdout.write(json.dumps({"operation": ${JSON.stringify(operation)}}))`,
    ]);
    expect(encodeControlMessage(operation).equals(expected)).toBe(true);
  });

  it("decodes to a dict under the Python listener's rules (str() of data sections, then json.loads)", () => {
    // What ai4s-jobq does: message_dict = json.loads(str(message)); message_dict["operation"].
    const script =
      'import json,sys; body=sys.stdin.buffer.read(); d=json.loads("".join(s.decode("UTF-8") for s in [body])); ' +
      'sys.stdout.write(type(d).__name__ + " " + (d["operation"] if isinstance(d, dict) else "-"))';
    expect(python(script, encodeControlMessage("graceful-downscale"))).toBe("dict graceful-downscale");
    // The mistake this guards against: a JS string body is JSON-encoded again and Python sees a str.
    const doubleEncoded = Buffer.from(JSON.stringify(JSON.stringify({ operation: "graceful-downscale" })));
    expect(python(script, doubleEncoded)).toBe("str -");
  });

  it("is a Buffer, never a string", () => {
    expect(Buffer.isBuffer(encodeControlMessage("do-not-accept-new-tasks"))).toBe(true);
  });
});

describe("decoding a received control message", () => {
  const data = (text: string) => ({ bodyType: "data" as const, body: Buffer.from(text) });
  it.each([
    {
      name: "our own body",
      received: data('{"operation": "graceful-downscale"}'),
      operation: "graceful-downscale",
    },
    {
      name: "compact JSON",
      received: data('{"operation":"do-not-accept-new-tasks"}'),
      operation: "do-not-accept-new-tasks",
    },
    {
      name: "extra fields",
      received: data('{"operation": "graceful-downscale", "by": "me"}'),
      operation: "graceful-downscale",
    },
    {
      name: "a value section holding JSON text (Python's str() of it is the text)",
      received: { bodyType: "value" as const, body: '{"operation": "graceful-downscale"}' },
      operation: "graceful-downscale",
    },
  ])("accepts $name", ({ received, operation }) => {
    expect(decodeControlMessage(received)).toEqual({ operation });
  });

  it.each([
    { name: "not JSON", received: data("stop please"), reason: "MalformedControlMessage", text: /not JSON/ },
    {
      name: "a JSON string",
      received: data('"{\\"operation\\": \\"graceful-downscale\\"}"'),
      reason: "MalformedControlMessage",
      text: /JSON string/,
    },
    { name: "an array", received: data("[1]"), reason: "MalformedControlMessage", text: /an array/ },
    { name: "null", received: data("null"), reason: "MalformedControlMessage", text: /null/ },
    {
      name: "no operation",
      received: data('{"op": "graceful-downscale"}'),
      reason: "MalformedControlMessage",
      text: /no "operation"/,
    },
    {
      name: "an unknown operation",
      received: data('{"operation": "explode"}'),
      reason: "UnknownOperation",
      text: /"explode" is not one of/,
    },
    {
      name: "bad UTF-8",
      received: { bodyType: "data" as const, body: Buffer.from([0xff, 0xfe]) },
      reason: "MalformedControlMessage",
      text: /UTF-8/,
    },
    {
      name: "a value section holding an object (Python's str() is a repr, not JSON)",
      received: { bodyType: "value" as const, body: { operation: "graceful-downscale" } },
      reason: "MalformedControlMessage",
      text: /AMQP value section/,
    },
  ])("rejects $name", ({ received, reason, text }) => {
    const decoded = decodeControlMessage(received);
    expect("problem" in decoded && decoded.problem.reason).toBe(reason);
    expect("problem" in decoded && decoded.problem.description).toMatch(text);
  });
});

describe("back channel config", () => {
  it("takes a namespace or a connection string and defaults the subscription", () => {
    expect(
      backChannelSchema.parse({ fullyQualifiedNamespace: "sb://ns1.servicebus.windows.net/", topic: "wf" }),
    ).toEqual({
      fullyQualifiedNamespace: "ns1.servicebus.windows.net",
      topic: "wf",
      subscription: "shutdown",
      autoCreate: true,
    });
    // Azure's rules: '/', '.', '-', '_' in topic names up to 260 characters; subscriptions up to 50.
    expect(
      backChannelSchema.parse({
        fullyQualifiedNamespace: "ns1.servicebus.windows.net",
        topic: `team-a/east.us_${"x".repeat(245)}`,
        subscription: "s".repeat(50),
      }).topic,
    ).toHaveLength(260);
    const parsed = backChannelSchema.parse({
      connectionString:
        "Endpoint=sb://127.0.0.1:5672;SharedAccessKeyName=k;SharedAccessKey=s3cret;UseDevelopmentEmulator=true",
      topic: "wf",
      adminEndpoint: "https://127.0.0.1:5443",
    });
    expect(parsed.adminEndpoint).toBe("127.0.0.1:5443");
  });

  it.each([
    { input: { topic: "wf" }, path: "fullyQualifiedNamespace", text: /not neither/ },
    {
      input: {
        topic: "wf",
        fullyQualifiedNamespace: "a.b",
        connectionString: "Endpoint=sb://a.b/;SharedAccessKey=x",
      },
      path: "connectionString",
      text: /not both/,
    },
    { input: { fullyQualifiedNamespace: "a.b" }, path: "topic", text: /./ },
    { input: { fullyQualifiedNamespace: "a.b", topic: "no spaces" }, path: "topic", text: /topic name/ },
    {
      input: { fullyQualifiedNamespace: "a.b", topic: "t", subscription: "s".repeat(51) },
      path: "subscription",
      text: /1-50/,
    },
    {
      input: { fullyQualifiedNamespace: "a.b", topic: "t", subscription: "a/b" },
      path: "subscription",
      text: /no '\/'/,
    },
    { input: { fullyQualifiedNamespace: "a.b", topic: "t".repeat(261) }, path: "topic", text: /1-260/ },
    {
      input: { connectionString: "SharedAccessKey=s3cret", topic: "t" },
      path: "connectionString",
      text: /Endpoint=/,
    },
    { input: { fullyQualifiedNamespace: "a.b", topic: "t", nameSpace: "x" }, path: "", text: /nameSpace/ },
  ])("names the field: $path", ({ input, path, text }) => {
    const result = backChannelSchema.safeParse(input);
    expect(result.success).toBe(false);
    const issue = result.error!.issues[0]!;
    expect(issue.path.join(".")).toBe(path);
    expect(issue.message + JSON.stringify((issue as { keys?: string[] }).keys ?? [])).toMatch(text);
    // The secret never appears in what the loader reports.
    expect(JSON.stringify(result.error!.issues)).not.toContain("s3cret");
  });
});
