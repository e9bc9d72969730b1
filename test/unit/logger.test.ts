import { describe, expect, test } from "vitest";
import { Writable } from "node:stream";
import { createLogger, redactText } from "../../src/logging/logger.js";

function capture() {
  let text = "";
  const destination = new Writable({
    write(chunk, _encoding, callback) {
      text += chunk.toString();
      callback();
    },
  });
  return { logger: createLogger({ destination }), output: () => text };
}

const KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
const CONNECTION_STRING = `DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=${KEY};QueueEndpoint=http://127.0.0.1:1/devstoreaccount1;`;

describe("logs never carry secrets", () => {
  test("secret fields are redacted wherever they sit", () => {
    const { logger, output } = capture();
    logger.info(
      {
        connectionString: CONNECTION_STRING,
        region: { backChannel: { connectionString: CONNECTION_STRING } },
      },
      "config",
    );
    expect(output()).not.toContain(KEY.slice(0, 20));
    expect(output()).toContain("[REDACTED]");
  });

  test("secrets quoted in messages and errors are redacted", () => {
    const { logger, output } = capture();
    logger.warn(`could not connect with ${CONNECTION_STRING}`);
    logger.error({ err: new Error(`bad SharedAccessKey=abc123secret; sig=xyz%2Fsecret&se=1`) }, "failed");
    logger.error(
      {
        err: Object.assign(new Error("401"), { request: { headers: { authorization: "Bearer eyJsecret" } } }),
      },
      "x",
    );
    const text = output();
    expect(text).not.toContain(KEY.slice(0, 20));
    expect(text).not.toContain("abc123secret");
    expect(text).not.toContain("xyz%2Fsecret");
    expect(text).not.toContain("eyJsecret");
  });

  test("redactText leaves ordinary text alone", () => {
    expect(redactText("region eastus: 3 running, 2 pending")).toBe("region eastus: 3 running, 2 pending");
    expect(redactText("Authorization: Bearer eyJ0eXAiOiJKV1Qi.abc")).toBe("Authorization: Bearer [REDACTED]");
    expect(redactText("Bearer token authentication is not permitted")).toBe(
      "Bearer token authentication is not permitted",
    );
  });
});
