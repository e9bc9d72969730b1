import {
  createServer,
  request,
  type ClientRequest,
  type IncomingMessage,
  type ServerResponse,
} from "node:http";
import type { AddressInfo } from "node:net";
import type { AzuriteInstance } from "./azurite.js";

export interface AzuriteProxy {
  /** Azurite's connection string with the proxied endpoint replaced by the proxy's. */
  connectionString: string;
  close(): Promise<void>;
}

/**
 * A pass-through HTTP proxy on 127.0.0.1 in front of one of Azurite's endpoints (e.g. its queueEndpoint),
 * to see or disturb what a client sends. `intercept` sees each request first: when it returns true it has
 * answered the request itself, and nothing goes to Azurite. `holdAnswer` may hold Azurite's answer to a
 * request back from the client (the service has acted; the client does not know yet) until it resolves.
 */
export async function startAzuriteProxy(
  azurite: AzuriteInstance,
  endpoint: string,
  intercept: (incoming: IncomingMessage, outgoing: ServerResponse) => boolean = () => false,
  holdAnswer: (incoming: IncomingMessage) => Promise<void> | void = () => undefined,
): Promise<AzuriteProxy> {
  const proxy = createServer((incoming, outgoing) => {
    if (intercept(incoming, outgoing)) return;
    const forwarded = forwardRequest(endpoint, incoming, (answer) => {
      void Promise.resolve(holdAnswer(incoming)).then(() => {
        outgoing.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(outgoing);
      });
    });
    forwarded.on("error", () => outgoing.destroy());
  });
  await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
  const port = (proxy.address() as AddressInfo).port;
  const target = new URL(endpoint);
  return {
    connectionString: azurite.connectionString.replace(
      endpoint,
      `http://127.0.0.1:${port}${target.pathname}`,
    ),
    close: () => new Promise<void>((resolve) => proxy.close(() => resolve())),
  };
}

/**
 * Sends a request the proxy received on to Azurite's `endpoint` as it came (method, path, headers, body);
 * `answered` gets Azurite's answer, for the proxy to pass on, hold back or drop.
 */
export function forwardRequest(
  endpoint: string,
  incoming: IncomingMessage,
  answered: (answer: IncomingMessage) => void,
): ClientRequest {
  const target = new URL(endpoint);
  const forwarded = request(
    {
      host: target.hostname,
      port: target.port,
      method: incoming.method,
      path: incoming.url,
      headers: incoming.headers,
    },
    answered,
  );
  incoming.pipe(forwarded);
  return forwarded;
}
