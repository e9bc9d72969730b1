import { isAscii } from "node:buffer";
import { StringDecoder } from "node:string_decoder";
import { JobObjectReader, type JobFields } from "./job-object.js";
import {
  bad,
  COLON,
  COMMA,
  detach,
  LBRACE,
  LBRACKET,
  MORE,
  QUOTE,
  RBRACE,
  RBRACKET,
  skipValue,
  skipWs,
  stringAt,
  stringEnd,
} from "./json-scan.js";

export type { JobFields } from "./job-object.js";
export { detach, PageSyntaxError } from "./json-scan.js";

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
 *
 * This file is the page: chunks in, the page object's members, the `value` array and its items; a job
 * item's fields are read by job-object.ts, on the scanning primitives of json-scan.ts.
 */

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
  private readonly jobs: JobObjectReader;
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
    this.jobs = new JobObjectReader(tagKey);
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
    this.jobs.reset();
    this.run();
    this.jobs.release();
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
          const end = c === LBRACE ? this.jobs.read(s, i) : skipValue(s, i);
          if (end === MORE) break;
          if (c === LBRACE) {
            this.jobStart = i;
            this.jobEnd = end;
            this.onJob(this.jobs.job, this);
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
}
