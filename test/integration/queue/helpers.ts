import { spawn, type ChildProcess } from "node:child_process";
import { QueueClient } from "@azure/storage-queue";
import { workforceArgv } from "../../support/cli.js";

let counter = 0;
/** A fresh queue name per test (Storage rules: lowercase, digits, hyphens). */
export function uniqueQueueName(prefix: string): string {
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${counter++}`;
}

export interface RunningCli {
  child: ChildProcess;
  output: () => string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Run the built CLI in its own process group (so a test can send a Ctrl-C to the whole group). */
export function startCli(args: string[], env: NodeJS.ProcessEnv, input?: string): RunningCli {
  const [node, ...rest] = workforceArgv(...args);
  const child = spawn(node!, rest, {
    env: { ...process.env, ...env },
    detached: true,
    stdio: ["pipe", "pipe", "pipe"],
  });
  let output = "";
  child.stdout!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  if (input !== undefined) child.stdin!.end(input);
  else child.stdin!.end();
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("close", (code, signal) => resolve({ code, signal })),
  );
  return { child, output: () => output, exit };
}

export async function depth(client: QueueClient): Promise<number> {
  return (await client.getProperties()).approximateMessagesCount ?? -1;
}

/** Read (and remove) every message of a queue. */
export async function drainMessages(client: QueueClient): Promise<string[]> {
  const bodies: string[] = [];
  for (;;) {
    const { receivedMessageItems } = await client.receiveMessages({ numberOfMessages: 32 });
    if (receivedMessageItems.length === 0) return bodies;
    for (const item of receivedMessageItems) {
      bodies.push(item.messageText);
      await client.deleteMessage(item.messageId, item.popReceipt);
    }
  }
}

export async function waitFor(
  check: () => boolean | Promise<boolean>,
  timeoutMs = 20_000,
  what = "condition",
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
