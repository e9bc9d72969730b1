import { createRequire } from "node:module";

const require = createRequire(import.meta.url);

/**
 * An Azure SDK package loaded on first use, not when the module that names it is imported: each costs
 * 10-25 MB and tens of ms, and `workforce --help`, `workforce plan` or a local-only daemon need none. The
 * packages' CommonJS builds are loaded (synchronously, so the factories that build clients stay sync);
 * types come from `import type`.
 */
export function lazySdk<T>(name: string): () => T {
  let loaded: T | undefined;
  return () => (loaded ??= require(name) as T);
}
