/**
 * Bearer-token checks of the emulators. Entra ID tokens are JWTs whose `aud` names the service they are
 * for; a service refuses a token for another audience with 401. The tests' StaticTokenCredential issues
 * unsigned JWTs with the right `aud` for the scope asked for, so an emulator can check it the same way
 * (signatures are not checked: nothing here is a secret).
 */

export type TokenCheck = { ok: true; audience: string } | { ok: false; status: 401; message: string };

function audienceOf(token: string): string | undefined {
  const [, payload] = token.split(".");
  if (!payload) return undefined;
  try {
    const claims = JSON.parse(Buffer.from(payload, "base64url").toString("utf8")) as { aud?: unknown };
    return typeof claims.aud === "string" ? claims.aud : undefined;
  } catch {
    return undefined;
  }
}

/** Check `Authorization: Bearer <jwt>` for one of `audiences` (compared without a trailing slash). */
export function checkBearer(authorization: string | undefined, audiences: readonly string[]): TokenCheck {
  const match = /^Bearer (\S+)$/.exec(authorization ?? "");
  if (!match) return { ok: false, status: 401, message: "The 'Authorization' header is missing." };
  const audience = audienceOf(match[1]!);
  if (audience === undefined)
    return { ok: false, status: 401, message: "The access token is not a valid JWT (no audience)." };
  const wanted = audiences.map((a) => a.replace(/\/$/, "").toLowerCase());
  if (!wanted.includes(audience.replace(/\/$/, "").toLowerCase()))
    return {
      ok: false,
      status: 401,
      message: `The audience '${audience}' of the access token is invalid; expected ${audiences.join(" or ")}.`,
    };
  return { ok: true, audience };
}
