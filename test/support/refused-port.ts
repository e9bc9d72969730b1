import { spawn } from "node:child_process";
import { createInterface } from "node:readline";

export interface RefusedPort {
  /** A port of 127.0.0.1 that refuses every connection, and that no other process can listen on. */
  port: number;
  release(): Promise<void>;
}

/**
 * A port that refuses connections for as long as it is held: a TCP socket bound to it that never listens
 * (the kernel answers a connection with a reset, "connection refused"). A port merely freed after a
 * listen(0) may be handed to another process of a busy machine before the test connects to it; a bound
 * socket keeps it. Node cannot bind a TCP socket without listening, so a small Python process holds it.
 */
export async function holdRefusedPort(): Promise<RefusedPort> {
  const holder = spawn(
    "/usr/bin/python3",
    [
      "-c",
      "import socket, sys\n" +
        "s = socket.socket()\n" +
        "s.bind(('127.0.0.1', 0))\n" +
        "print(s.getsockname()[1], flush=True)\n" +
        "sys.stdin.read()\n",
    ],
    { stdio: ["pipe", "pipe", "inherit"] },
  );
  const exited = new Promise<void>((resolve) => holder.once("exit", () => resolve()));
  const line = await new Promise<string>((resolve, reject) => {
    holder.once("error", reject);
    void exited.then(() => reject(new Error("the port holder exited before it bound a port")));
    createInterface({ input: holder.stdout! }).once("line", resolve);
  });
  return {
    port: Number(line),
    release: async () => {
      holder.stdin!.end();
      await exited;
    },
  };
}
