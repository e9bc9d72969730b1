/**
 * JSON text exactly as Python's `json.dumps(value)` writes it with default settings: separators ", " and
 * ": ", ensure_ascii (every character outside printable ASCII escaped as \uXXXX, lowercase hex, UTF-16
 * surrogate pairs), insertion-ordered keys. Upstream ai4s-jobq serializes tasks this way, and our messages
 * must be byte-identical to the ones it writes.
 */
export function pythonJsonDumps(value: unknown): string {
  if (value === null || value === undefined) return "null";
  switch (typeof value) {
    case "boolean":
      return value ? "true" : "false";
    case "number":
      return pythonNumber(value);
    case "string":
      return pythonString(value);
    case "object":
      if (Array.isArray(value)) return `[${value.map(pythonJsonDumps).join(", ")}]`;
      return `{${Object.entries(value as Record<string, unknown>)
        .filter(([, v]) => v !== undefined)
        .map(([k, v]) => `${pythonString(k)}: ${pythonJsonDumps(v)}`)
        .join(", ")}}`;
    default:
      throw new TypeError(`cannot encode a ${typeof value} as JSON`);
  }
}

const SHORT_ESCAPES: Record<string, string> = {
  '"': '\\"',
  "\\": "\\\\",
  "\n": "\\n",
  "\r": "\\r",
  "\t": "\\t",
  "\b": "\\b",
  "\f": "\\f",
};

function pythonString(text: string): string {
  // Python escapes everything outside ' '..'~' (so DEL and all non-ASCII too), per UTF-16 code unit.
  return `"${text.replace(/[\\"]|[^\x20-\x7e]/g, (ch) => SHORT_ESCAPES[ch] ?? `\\u${ch.charCodeAt(0).toString(16).padStart(4, "0")}`)}"`;
}

function pythonNumber(value: number): string {
  if (!Number.isFinite(value)) {
    // Python writes NaN / Infinity (invalid JSON); JSON input never holds them.
    throw new TypeError(`cannot encode ${value} as JSON`);
  }
  // JSON text cannot tell 3 from 3.0: integral values are ints (as Python reads JS's JSON.stringify output),
  // up to where JS itself switches to exponent form.
  if (Number.isInteger(value) && Math.abs(value) < 1e21) return BigInt(value).toString();
  // float repr: same shortest digits as JS, but Python switches to exponent form below 1e-4 and from 1e16,
  // and writes the exponent with a sign and at least two digits.
  const [mantissa, exponentText] = value.toExponential().split("e") as [string, string];
  const exponent = Number(exponentText);
  if (exponent < -4 || exponent >= 16) {
    const sign = exponent < 0 ? "-" : "+";
    return `${mantissa}e${sign}${String(Math.abs(exponent)).padStart(2, "0")}`;
  }
  const text = String(value);
  return text.includes(".") ? text : `${text}.0`;
}
