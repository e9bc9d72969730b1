/**
 * The low-level scanning of JSON text that the job page reader (job-page.ts, job-object.ts) is built on:
 * finding where a string or a value ends without building it, so values nobody reads are skipped by their
 * brackets and string quotes, not validated. Every scanner takes the text and an index and answers an
 * index, or MORE when the text ends inside the construct (the caller waits for the next chunk).
 */

/** The text is not a JSON job page (or ended before the page did). */
export class PageSyntaxError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PageSyntaxError";
  }
}

export const QUOTE = 34;
export const BACKSLASH = 92;
export const COMMA = 44;
export const COLON = 58;
export const LBRACE = 123;
export const RBRACE = 125;
export const LBRACKET = 91;
export const RBRACKET = 93;
/** The text ended inside the construct: wait for more. */
export const MORE = -1;

export function bad(what: string, s: string, i: number): never {
  throw new PageSyntaxError(`${what} at ${JSON.stringify(s.slice(i, i + 40))}`);
}

export function skipWs(s: string, i: number): number {
  for (;;) {
    const c = s.charCodeAt(i);
    if (c === 32 || c === 10 || c === 13 || c === 9) i++;
    else return i;
  }
}

/** `s[i]` is a quote: the index after the closing quote, or MORE. */
export function stringEnd(s: string, i: number): number {
  let from = i + 1;
  for (;;) {
    const q = s.indexOf('"', from);
    if (q < 0) return MORE;
    let k = q - 1;
    while (s.charCodeAt(k) === BACKSLASH) k--;
    // An even number of backslashes before it: the quote ends the string.
    if ((q - 1 - k) % 2 === 0) return q + 1;
    from = q + 1;
  }
}

/** The string `s[i, end)` (quotes included) as a value of its own (a copy, escapes decoded). */
export function stringAt(s: string, i: number, end: number): string {
  try {
    return JSON.parse(s.slice(i, end)) as string;
  } catch {
    return bad("a bad string", s, i);
  }
}

/**
 * A copy of a string that holds no reference to the text it was sliced from (V8 keeps a slice of 13
 * characters or more as a view of the whole page chunk).
 */
export function detach(text: string): string {
  return text.length < 13 ? text : (JSON.parse(JSON.stringify(text)) as string);
}

function isNumberChar(c: number): boolean {
  return (c >= 48 && c <= 57) || c === 45 || c === 43 || c === 46 || c === 101 || c === 69;
}

/** The end of the value at `s[i]` (not whitespace), or MORE. Inner values are not validated. */
export function skipValue(s: string, i: number): number {
  const c = s.charCodeAt(i);
  if (c === QUOTE) return stringEnd(s, i);
  if (c === LBRACE || c === LBRACKET) {
    let depth = 0;
    const n = s.length;
    while (i < n) {
      const d = s.charCodeAt(i);
      if (d === QUOTE) {
        i = stringEnd(s, i);
        if (i === MORE) return MORE;
        continue;
      }
      if (d === LBRACE || d === LBRACKET) depth++;
      else if (d === RBRACE || d === RBRACKET) if (--depth === 0) return i + 1;
      i++;
    }
    return MORE;
  }
  const literal = c === 110 ? "null" : c === 116 ? "true" : c === 102 ? "false" : undefined;
  if (literal !== undefined) {
    if (s.startsWith(literal, i)) return i + literal.length;
    if (literal.startsWith(s.slice(i))) return MORE;
    return bad("a bad literal", s, i);
  }
  if (c === 45 || (c >= 48 && c <= 57)) {
    let k = i + 1;
    while (k < s.length && isNumberChar(s.charCodeAt(k))) k++;
    return k < s.length ? k : MORE;
  }
  if (Number.isNaN(c)) return MORE;
  return bad("not a JSON value", s, i);
}

/**
 * Where the first backslash at or after an index is, remembered across calls on one text: keys and
 * strings with one are decoded (rare), and one `indexOf` serves every string up to that backslash.
 */
export class BackslashIndex {
  private at = -1;
  private from = Infinity;

  /** A new text is being scanned: forget what was found in the last. */
  reset(): void {
    this.from = Infinity;
  }

  /** `s[from, end)` holds a backslash. */
  within(s: string, from: number, end: number): boolean {
    if (from < this.from || (this.at !== Infinity && this.at < from)) {
      const at = s.indexOf("\\", from);
      this.at = at < 0 ? Infinity : at;
      this.from = from;
    }
    return this.at < end;
  }
}
