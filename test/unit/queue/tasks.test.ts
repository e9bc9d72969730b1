import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import {
  decodeTask,
  encodeTask,
  shellTask,
  shellTaskKwargs,
  TaskFormatError,
} from "../../../src/queue/tasks.js";
import { pythonJsonDumps } from "../../../src/queue/python-json.js";

/** Run a Python snippet that prints one line; returns it without the newline. */
function python(code: string, input = ""): string {
  return execFileSync("python3", ["-c", code], { input, encoding: "utf8" }).replace(/\n$/, "");
}

// Upstream's Task.serialize(), written out: json.dumps of the dict, kwargs json.dumps'd first.
const PY_SERIALIZE = `
import json, sys
spec = json.loads(sys.stdin.read())
d = {"version": 1, "reply_requested": spec["reply_requested"], "kwargs": json.dumps(spec["kwargs"]), "num_retries": spec["num_retries"]}
if "min_version" in spec:
    d["min_version"] = spec["min_version"]
d["id"] = spec["id"]
print(json.dumps(d))
`;

const tricky = 'echo "héllo wörld" \\ 🎉\tdone\u007f\u0001';

describe("task messages are byte-identical to Python's json.dumps", () => {
  const cases = [
    { name: "plain shell task", cmd: "echo hi", env: {}, numRetries: 0 },
    {
      name: "non-ASCII, quotes, backslash, emoji, control chars",
      cmd: tricky,
      env: { LANG: "C.UTF-8", Ä: "ü" },
      numRetries: 3,
    },
    {
      name: "cwd and env",
      cmd: "make -j4 && ./run",
      env: { A: "1", B: "x y" },
      cwd: "/tmp/work dir",
      numRetries: 2,
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const task = shellTask({
        cmd: c.cmd,
        env: c.env as Record<string, string>,
        cwd: c.cwd,
        numRetries: c.numRetries,
        id: "abc123",
      });
      const expected = python(
        PY_SERIALIZE,
        JSON.stringify({
          kwargs: task.kwargs,
          num_retries: c.numRetries,
          reply_requested: false,
          id: "abc123",
        }),
      );
      expect(encodeTask(task)).toBe(expected);
    });
  }

  it("current upstream's shape with min_version: null", () => {
    const task = { ...shellTask({ cmd: "echo hi", id: "f00" }), minVersion: null };
    const expected = python(
      PY_SERIALIZE,
      JSON.stringify({
        kwargs: task.kwargs,
        num_retries: 0,
        reply_requested: false,
        id: "f00",
        min_version: null,
      }),
    );
    expect(encodeTask(task)).toBe(expected);
    expect(encodeTask(task)).toContain('"num_retries": 0, "min_version": null, "id": "f00"');
  });

  it("numbers, nesting and floats as Python writes them", () => {
    const value = { a: [1, 2.5, -0.0001, 1e-7, 1e16, 1e22, 123456789012, true, null], b: { c: "x" }, d: 3.0 };
    const expected = python(
      "import json,sys; print(json.dumps(json.loads(sys.stdin.read())))",
      JSON.stringify(value),
    );
    // JSON.stringify(3.0) is "3": Python reads an int, so both sides agree on "3".
    expect(pythonJsonDumps(value)).toBe(expected);
  });
});

describe("decoding messages built by Python", () => {
  it("reads a shell task pushed the way `ai4s-jobq push -c` builds it", () => {
    const body = python(`
import json
kwargs = dict(cmd="echo 'hi there' > out.txt", bg_dirsync_to=None, env={"X": "1", "N": 5})
print(json.dumps({"version": 1, "reply_requested": False, "kwargs": json.dumps(kwargs), "num_retries": 2, "min_version": None, "id": "9f0c"}))
`);
    const task = decodeTask(body);
    expect(task).toMatchObject({ id: "9f0c", numRetries: 2, replyRequested: false, minVersion: null });
    const kwargs = shellTaskKwargs(task);
    expect(kwargs.cmd).toBe("echo 'hi there' > out.txt");
    expect(kwargs.env).toEqual({ X: "1", N: "5" });
    // A retry re-encodes the same bytes but the retry count.
    expect(encodeTask({ ...task, numRetries: 1 })).toBe(body.replace('"num_retries": 2', '"num_retries": 1'));
  });

  it("reads version 0 messages", () => {
    const task = decodeTask(
      '{"version": 0, "kwargs": "{\\"cmd\\": \\"true\\"}", "num_retries": 0, "id": "old"}',
    );
    expect(task.replyRequested).toBe(false);
    expect(shellTaskKwargs(task).cmd).toBe("true");
  });
});

describe("malformed messages name the field", () => {
  const cases: Array<[string, string, RegExp]> = [
    ["not JSON", "hello", /not JSON/],
    ["an array", "[1]", /expected a JSON object/],
    ["missing id", '{"version": 1, "kwargs": "{}", "num_retries": 0}', /field "id"/],
    [
      "bad retries",
      '{"version": 1, "kwargs": "{}", "num_retries": "x", "id": "a"}',
      /field "num_retries".*got "x"/,
    ],
    ["unknown version", '{"version": 7, "kwargs": "{}", "num_retries": 0, "id": "a"}', /field "version"/],
    [
      "kwargs not JSON text",
      '{"version": 1, "kwargs": "{oops", "num_retries": 0, "id": "a"}',
      /field "kwargs": not JSON/,
    ],
    [
      "kwargs an object, not text",
      '{"version": 1, "kwargs": {"cmd": "x"}, "num_retries": 0, "id": "a"}',
      /field "kwargs"/,
    ],
  ];
  for (const [name, body, pattern] of cases) {
    it(name, () => {
      expect(() => decodeTask(body)).toThrow(TaskFormatError);
      expect(() => decodeTask(body)).toThrow(pattern);
    });
  }

  it("a task without cmd is not a shell task", () => {
    const task = decodeTask('{"version": 1, "kwargs": "{\\"value\\": 42}", "num_retries": 0, "id": "a"}');
    expect(() => shellTaskKwargs(task)).toThrow(/field "kwargs.cmd"/);
  });
});
