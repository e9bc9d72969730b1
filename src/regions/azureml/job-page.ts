import { isAscii } from "node:buffer";
import { StringDecoder } from "node:string_decoder";

/**
 * A job list page read as it arrives, without building the page's object graph: the region needs six
 * fields of a job (about 2 KB of JSON each) and `JSON.parse` of whole pages was most of a tick's CPU and
 * all of its garbage. The reader walks the text chunk by chunk, keeps only the unread tail (at most one
 * job's text), and tells of each job's fields as soon as the job's text is complete; the resource of a
 * job is parsed (`JSON.parse` of its own text) only when asked for, for the finished jobs being retired.
 *
 * It reads the page's structure strictly (the page object, `value`, each job object and the members it
 * reads); values it does not read are skipped by their brackets and string quotes, not validated.
 * Strings it keeps are copies: a slice of the page's text would keep the whole chunk alive.
 */

/**
 * What the region reads of one listed job; `undefined` where the field is absent or of another type. The
 * strings are the page's text (slices): valid within `onJob`, to be copied (`detach`) if kept.
 */
export interface JobFields {
  name: string | undefined;
  /** `properties` is an object. */
  hasProperties: boolean;
  experimentName: string | undefined;
  status: string | undefined;
  /** `properties.tags` is an object with the tag key. */
  tagged: boolean;
  /** `properties.isArchived` is `true`. */
  archived: boolean;
  /** `systemData.createdAt`. */
  createdAt: string | undefined;
  /** `properties.resources.instanceCount`, when a number. */
  instanceCount: number | undefined;
}

/** The text is not a JSON job page (or ended before the page did). */
export class PageSyntaxError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PageSyntaxError";
  }
}

const QUOTE = 34;
const BACKSLASH = 92;
const COMMA = 44;
const COLON = 58;
const LBRACE = 123;
const RBRACE = 125;
const LBRACKET = 91;
const RBRACKET = 93;
/** The text ended inside the construct: wait for more. */
const MORE = -1;

function bad(what: string, s: string, i: number): never {
  throw new PageSyntaxError(`${what} at ${JSON.stringify(s.slice(i, i + 40))}`);
}

function skipWs(s: string, i: number): number {
  for (;;) {
    const c = s.charCodeAt(i);
    if (c === 32 || c === 10 || c === 13 || c === 9) i++;
    else return i;
  }
}

/** `s[i]` is a quote: the index after the closing quote, or MORE. */
function stringEnd(s: string, i: number): number {
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
function stringAt(s: string, i: number, end: number): string {
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
function skipValue(s: string, i: number): number {
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
  for (const literal of ["true", "false", "null"]) {
    if (c !== literal.charCodeAt(0)) continue;
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

/** The objects of a job the reader looks into, and the keys it reads in each. */
const enum Obj {
  Job,
  SystemData,
  Properties,
  Tags,
  Resources,
}
const enum Key {
  Other,
  Name,
  SystemData,
  Properties,
  CreatedAt,
  ExperimentName,
  Status,
  IsArchived,
  Tags,
  Resources,
  InstanceCount,
  TagKey,
}
/** The statuses the service uses, as constants: a status kept is never a slice of a page. */
const STATUSES = new Map(
  [
    "NotStarted",
    "Starting",
    "Provisioning",
    "Preparing",
    "Queued",
    "Running",
    "Finalizing",
    "CancelRequested",
    "Completed",
    "Failed",
    "Canceled",
    "NotResponding",
    "Paused",
    "Unknown",
    "Scheduled",
  ].map((status) => [`"${status}"`, status]),
);

/** Reads job pages; one reader per page (per attempt of its request). */
export class JobPageReader {
  /** The text being read (during `write` only): `text[pos..]` is unread. */
  private text = "";
  private pos = 0;
  /** The unread rest of the last chunk: bytes while the page is ASCII, else text. */
  private tailBytes: Buffer | undefined;
  private tailText = "";
  private state:
    | "start"
    | "key"
    | "first-key"
    | "value"
    | "after-member"
    | "items"
    | "first-item"
    | "after-item"
    | "done" = "start";
  private key: "value" | "nextLink" | "other" = "other";
  private readonly decoder = new StringDecoder("utf8");
  private nonAscii = false;
  private readonly tagKey: string;
  private job: JobFields = JobPageReader.blank();
  /** The current job's text bounds in `text`, for `resource()`. */
  private jobStart = 0;
  private jobEnd = 0;
  /** `nextLink` as given (a string when a next page exists; anything else is for the caller to judge). */
  nextLink: unknown;
  /** What `value` held: absent, an array (read), or something else. */
  valueKind: "absent" | "array" | "other" = "absent";
  /** The first 200 characters of the page, for errors. */
  head = "";

  constructor(
    tagKey: string,
    private readonly onJob: (job: JobFields, reader: JobPageReader) => void,
  ) {
    this.tagKey = JSON.stringify(tagKey);
  }

  private static blank(): JobFields {
    return {
      name: undefined,
      hasProperties: false,
      experimentName: undefined,
      status: undefined,
      tagged: false,
      archived: false,
      createdAt: undefined,
      instanceCount: undefined,
    };
  }

  /** The resource of the job being told of (only within `onJob`): its own text, parsed. */
  resource(): Record<string, unknown> {
    return JSON.parse(this.text.slice(this.jobStart, this.jobEnd)) as Record<string, unknown>;
  }

  write(chunk: Buffer | string): void {
    if (typeof chunk !== "string" && !this.nonAscii && isAscii(chunk)) {
      // ASCII (the usual page): characters are bytes, so the unread tail is kept as bytes and the text
      // decoded afresh from tail + chunk (a string built by `+` would be a cons string, slow to scan).
      const bytes = this.tailBytes ? Buffer.concat([this.tailBytes, chunk]) : chunk;
      this.text = bytes.toString("latin1");
      this.scan();
      // A copy of the tail (at most one job): the chunk and its text die young, while the next chunk
      // may be seconds away (kept, they would be moved to the old generation, 84 regions at a time).
      this.tailBytes = this.pos < bytes.length ? Buffer.from(bytes.subarray(this.pos)) : undefined;
    } else {
      let piece: string;
      if (typeof chunk === "string") piece = chunk;
      else {
        // Once a chunk is not ASCII the decoder takes every later one (it may hold a split character).
        this.nonAscii = true;
        piece = this.decoder.write(chunk);
      }
      const tail = this.tailBytes ? this.tailBytes.toString("latin1") : this.tailText;
      this.tailBytes = undefined;
      this.text = tail + piece;
      this.scan();
      this.tailText = detach(this.text.slice(this.pos));
    }
    this.text = "";
  }

  private scan(): void {
    if (!this.head) this.head = detach(this.text.slice(0, 200));
    this.pos = 0;
    this.backslashFrom = Infinity;
    this.run();
  }

  /** The page is complete: throws PageSyntaxError if it is not a whole JSON object. */
  end(): void {
    if (this.nonAscii) {
      const rest = this.decoder.end();
      if (rest) this.write(rest);
    }
    const tail = this.tailBytes ? this.tailBytes.toString("latin1") : this.tailText;
    this.tailBytes = undefined;
    this.tailText = "";
    if (this.state !== "done") bad(this.state === "start" ? "not JSON" : "the page ended early", tail, 0);
    if (skipWs(tail, 0) < tail.length) bad("text after the page", tail, 0);
  }

  private run(): void {
    const s = this.text;
    const n = s.length;
    let i = this.pos;
    for (;;) {
      i = skipWs(s, i);
      if (i >= n) break;
      const c = s.charCodeAt(i);
      let next = i;
      switch (this.state) {
        case "start":
          if (c !== LBRACE) bad("not JSON", s, i);
          next = i + 1;
          this.state = "first-key";
          break;
        case "first-key":
        case "key": {
          if (this.state === "first-key" && c === RBRACE) {
            next = i + 1;
            this.state = "done";
            break;
          }
          if (c !== QUOTE) bad("expected a key", s, i);
          const keyEnd = stringEnd(s, i);
          if (keyEnd === MORE) break;
          const k = skipWs(s, keyEnd);
          if (k >= n) break;
          if (s.charCodeAt(k) !== COLON) bad("expected ':'", s, k);
          const key = keyEnd - i < 20 ? stringAt(s, i, keyEnd) : "";
          this.key = key === "value" ? "value" : key === "nextLink" ? "nextLink" : "other";
          if (this.key === "value" && this.valueKind !== "absent") bad("a second value", s, i);
          next = k + 1;
          this.state = "value";
          break;
        }
        case "value": {
          if (this.key === "value" && c === LBRACKET) {
            this.valueKind = "array";
            next = i + 1;
            this.state = "first-item";
            break;
          }
          const end = skipValue(s, i);
          if (end === MORE) break;
          if (this.key === "value") this.valueKind = "other";
          if (this.key === "nextLink")
            this.nextLink = c === QUOTE ? stringAt(s, i, end) : JSON.parse(s.slice(i, end));
          next = end;
          this.state = "after-member";
          break;
        }
        case "after-member":
          if (c === RBRACE) this.state = "done";
          else if (c === COMMA) this.state = "key";
          else bad("expected ',' or '}'", s, i);
          next = i + 1;
          break;
        case "first-item":
        case "items": {
          if (this.state === "first-item" && c === RBRACKET) {
            next = i + 1;
            this.state = "after-member";
            break;
          }
          const end = c === LBRACE ? this.readJob(s, i) : skipValue(s, i);
          if (end === MORE) break;
          if (c === LBRACE) {
            this.jobStart = i;
            this.jobEnd = end;
            this.onJob(this.job, this);
          }
          next = end;
          this.state = "after-item";
          break;
        }
        case "after-item":
          if (c === RBRACKET) this.state = "after-member";
          else if (c === COMMA) this.state = "items";
          else bad("expected ',' or ']'", s, i);
          next = i + 1;
          break;
        case "done":
          bad("text after the page", s, i);
      }
      if (next === i) break;
      i = next;
    }
    this.pos = i;
  }

  /** Fills `this.job` from the job object at `s[i]`; its end, or MORE. */
  private readJob(s: string, i: number): number {
    this.job = JobPageReader.blank();
    return this.object(s, i, Obj.Job);
  }

  /** The first backslash at or after `from` (Infinity if none): keys with one are decoded, rare. */
  private backslash = -1;
  private backslashFrom = Infinity;
  private hasBackslash(s: string, from: number, end: number): boolean {
    if (from < this.backslashFrom || (this.backslash !== Infinity && this.backslash < from)) {
      const at = s.indexOf("\\", from);
      this.backslash = at < 0 ? Infinity : at;
      this.backslashFrom = from;
    }
    return this.backslash < end;
  }

  /** Which key of `obj` the key `s[i, end)` (quotes included) is. */
  private keyOf(s: string, i: number, end: number, obj: Obj): Key {
    const key = this.plainKey(s, i, end - i, obj);
    if (key !== Key.Other || !this.hasBackslash(s, i, end)) return key;
    // An escaped key (`"n\u0061me"`) is the same key to JSON.parse; rare, so decoded only then.
    const decoded = JSON.stringify(stringAt(s, i, end));
    return this.plainKey(decoded, 0, decoded.length, obj);
  }

  private plainKey(s: string, i: number, length: number, obj: Obj): Key {
    const is = (quoted: string) => length === quoted.length && s.startsWith(quoted, i);
    switch (obj) {
      case Obj.Job:
        return is('"name"')
          ? Key.Name
          : is('"properties"')
            ? Key.Properties
            : is('"systemData"')
              ? Key.SystemData
              : Key.Other;
      case Obj.SystemData:
        return is('"createdAt"') ? Key.CreatedAt : Key.Other;
      case Obj.Properties:
        switch (length) {
          case 6:
            return is('"tags"') ? Key.Tags : Key.Other;
          case 8:
            return is('"status"') ? Key.Status : Key.Other;
          case 11:
            return is('"resources"') ? Key.Resources : Key.Other;
          case 12:
            return is('"isArchived"') ? Key.IsArchived : Key.Other;
          case 16:
            return is('"experimentName"') ? Key.ExperimentName : Key.Other;
          default:
            return Key.Other;
        }
      case Obj.Tags:
        return is(this.tagKey) ? Key.TagKey : Key.Other;
      case Obj.Resources:
        return is('"instanceCount"') ? Key.InstanceCount : Key.Other;
    }
  }

  /** The object at `s[i]` (`{`), reading the members of `obj` it needs; its end, or MORE. */
  private object(s: string, i: number, obj: Obj): number {
    const n = s.length;
    i = skipWs(s, i + 1);
    if (i >= n) return MORE;
    if (s.charCodeAt(i) === RBRACE) return i + 1;
    for (;;) {
      if (s.charCodeAt(i) !== QUOTE) bad("expected a key", s, i);
      const keyEnd = stringEnd(s, i);
      if (keyEnd === MORE) return MORE;
      let at = skipWs(s, keyEnd);
      if (at >= n) return MORE;
      if (s.charCodeAt(at) !== COLON) bad("expected ':'", s, at);
      at = skipWs(s, at + 1);
      if (at >= n) return MORE;
      const key = this.keyOf(s, i, keyEnd, obj);
      const end = key === Key.Other ? skipValue(s, at) : this.member(s, at, key);
      if (end === MORE) return MORE;
      const k = skipWs(s, end);
      if (k >= n) return MORE;
      const c = s.charCodeAt(k);
      if (c === RBRACE) return k + 1;
      if (c !== COMMA) bad("expected ',' or '}'", s, k);
      i = skipWs(s, k + 1);
      if (i >= n) return MORE;
    }
  }

  /** A member the reader needs: its value's end, or MORE. The last of duplicate keys wins, as in JSON.parse. */
  private member(s: string, at: number, key: Key): number {
    const job = this.job;
    const c = s.charCodeAt(at);
    const isObject = c === LBRACE;
    switch (key) {
      case Key.SystemData:
        return isObject ? this.object(s, at, Obj.SystemData) : skipValue(s, at);
      case Key.Properties:
        // Absent, null or not an object: not one of ours.
        job.hasProperties = isObject;
        return isObject ? this.object(s, at, Obj.Properties) : skipValue(s, at);
      case Key.Tags:
        job.tagged = false;
        return isObject ? this.object(s, at, Obj.Tags) : skipValue(s, at);
      case Key.Resources:
        job.instanceCount = undefined;
        return isObject ? this.object(s, at, Obj.Resources) : skipValue(s, at);
      case Key.TagKey:
        job.tagged = true;
        return skipValue(s, at);
      default:
        break;
    }
    const end = skipValue(s, at);
    if (end === MORE) return MORE;
    const isString = c === QUOTE;
    switch (key) {
      case Key.Name:
        job.name = isString ? this.transient(s, at, end) : undefined;
        break;
      case Key.CreatedAt:
        job.createdAt = isString ? this.transient(s, at, end) : undefined;
        break;
      case Key.ExperimentName:
        job.experimentName = isString ? this.transient(s, at, end) : undefined;
        break;
      case Key.Status:
        job.status = isString ? (STATUSES.get(s.slice(at, end)) ?? stringAt(s, at, end)) : undefined;
        break;
      case Key.IsArchived:
        job.archived = end - at === 4 && s.startsWith("true", at);
        break;
      case Key.InstanceCount:
        job.instanceCount = c === 45 || (c >= 48 && c <= 57) ? Number(s.slice(at, end)) : undefined;
        break;
      default:
        break;
    }
    return end;
  }

  /** A string value only compared or parsed, not kept: a slice unless it has escapes. */
  private transient(s: string, at: number, end: number): string {
    return this.hasBackslash(s, at, end) ? stringAt(s, at, end) : s.slice(at + 1, end - 1);
  }
}
