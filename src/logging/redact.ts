// Free of pino: the CLI's error path and ConfigError use it before (or without) any logger.

/**
 * Patterns of secrets inside free text (error messages can quote a connection string or a SAS URL).
 * Kept conservative: it is better to hide a little too much.
 */
const SECRET_TEXT_PATTERNS: Array<[RegExp, string]> = [
  [/(AccountKey|SharedAccessKey|SharedAccessSignature)=([^;"'\s]+)/gi, "$1=[REDACTED]"],
  [/((?:^|[?&;\s])sig=)[^&"'\s;]+/gi, "$1[REDACTED]"],
  [/(Bearer\s+)[A-Za-z0-9._~+/=-]{12,}/g, "$1[REDACTED]"],
  [/("?(?:access_?token|client_?secret|password)"?\s*[:=]\s*"?)[^"',\s}]+/gi, "$1[REDACTED]"],
];

/** Hide secrets that appear inside a string (error messages, URLs). */
export function redactText(text: string): string {
  let out = text;
  for (const [pattern, replacement] of SECRET_TEXT_PATTERNS) out = out.replace(pattern, replacement);
  return out;
}
