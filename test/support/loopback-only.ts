import net from "node:net";

/**
 * Guard for every test file: a TCP connection to anything but loopback fails the call at once and is
 * recorded, so a test (or an SDK default such as DefaultAzureCredential's probe of 169.254.169.254) can
 * never reach the network unnoticed. Unix sockets and loopback addresses pass.
 */
const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|localhost|::ffff:127\.\d+\.\d+\.\d+)$/i;

type ConnectArgs = Parameters<net.Socket["connect"]>;
const originalConnect = net.Socket.prototype.connect;

function targetHost(args: unknown[]): string | undefined {
  const [first, second] = args;
  if (typeof first === "object" && first !== null && !Array.isArray(first)) {
    const options = first as { path?: string; host?: string };
    if (options.path) return undefined;
    return options.host ?? "localhost";
  }
  if (typeof first === "number" || (typeof first === "string" && /^\d+$/.test(first))) {
    return typeof second === "string" ? second : "localhost";
  }
  return undefined; // a path: a Unix socket
}

net.Socket.prototype.connect = function guardedConnect(this: net.Socket, ...args: unknown[]) {
  const host = targetHost(Array.isArray(args[0]) ? (args[0] as unknown[]) : args);
  if (host !== undefined && !LOOPBACK.test(host)) {
    const error = new Error(`test tried to connect to ${host}: only 127.0.0.1 is allowed in tests`);
    process.nextTick(() => this.destroy(error));
    console.error(`[loopback-only] blocked a connection to ${host}`);
    return this;
  }
  return originalConnect.apply(this, args as ConnectArgs);
} as typeof net.Socket.prototype.connect;
