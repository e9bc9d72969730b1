import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * A test certificate for the HTTPS emulators (the Azure SDKs refuse bearer tokens over plain http).
 * server.pem is issued by ca.pem for DNS:localhost and IP:127.0.0.1, valid for 100 years; the CA key was
 * thrown away. Trust it in a client with `tlsOptions: { ca }` (or NODE_EXTRA_CA_CERTS=ca.pem).
 * Test material only: never use it for anything reachable from outside 127.0.0.1.
 */
export interface TestTls {
  /** Server private key (PEM). */
  key: string;
  /** Server certificate (PEM). */
  cert: string;
  /** The CA that issued `cert` (PEM): what a client must trust. */
  ca: string;
}

const here = dirname(fileURLToPath(import.meta.url));

/** The PEM files sit next to the source; the compiled module (dist/test/emulators/tls) finds them from there. */
export function testTlsDir(): string {
  const candidates = [here, join(here, "..", "..", "..", "..", "test", "emulators", "tls")];
  const found = candidates.find((dir) => existsSync(join(dir, "server.pem")));
  if (!found)
    throw new Error(
      `test TLS files (server.pem, server.key, ca.pem) not found in ${candidates.join(" or ")}`,
    );
  return found;
}

let cached: TestTls | undefined;

export function loadTestTls(): TestTls {
  if (cached) return cached;
  const dir = testTlsDir();
  const read = (name: string) => readFileSync(join(dir, name), "utf8");
  cached = { key: read("server.key"), cert: read("server.pem"), ca: read("ca.pem") };
  return cached;
}
