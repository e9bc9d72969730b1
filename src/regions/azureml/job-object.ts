import {
  BackslashIndex,
  bad,
  COLON,
  COMMA,
  LBRACE,
  MORE,
  QUOTE,
  RBRACE,
  skipValue,
  skipWs,
  stringAt,
  stringEnd,
} from "./json-scan.js";

/**
 * What the region reads of one listed job; `undefined` where the field is absent or of another type. The
 * strings are the page's text (slices) and the object is the reader's own, filled afresh for every job:
 * valid within `onJob` only, to be copied (`detach`) if kept.
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

/** A job with none of the fields read (what the reader starts each job from). */
const NO_FIELDS: Readonly<JobFields> = {
  name: undefined,
  hasProperties: false,
  experimentName: undefined,
  status: undefined,
  tagged: false,
  archived: false,
  createdAt: undefined,
  instanceCount: undefined,
};

/**
 * Reads the fields of one job object out of a page's text: it descends only into the objects that hold
 * a field the region needs (the job, `systemData`, `properties`, its `tags` and `resources`) and skips
 * every other value. One reader per page; `reset` when a new chunk's text is scanned.
 */
export class JobObjectReader {
  /**
   * The fields of the job being read: one object for every job (no garbage per job), emptied once a chunk
   * is scanned so that no slice keeps that chunk's text alive while the next chunk is awaited (kept for
   * hundreds of milliseconds, 84 regions at a time, the chunks were moved to the old generation).
   */
  readonly job: JobFields = { ...NO_FIELDS };
  private readonly tagKey: string;
  private readonly backslash = new BackslashIndex();

  constructor(tagKey: string) {
    this.tagKey = JSON.stringify(tagKey);
  }

  /** A new text is being scanned. */
  reset(): void {
    this.backslash.reset();
  }

  /** The text scanned is done with: forget the fields read from it. */
  release(): void {
    Object.assign(this.job, NO_FIELDS);
  }

  /** Fills `job` from the job object at `s[i]` (`{`); its end, or MORE. */
  read(s: string, i: number): number {
    this.release();
    return this.object(s, i, Obj.Job);
  }

  /** Which key of `obj` the key `s[i, end)` (quotes included) is. */
  private keyOf(s: string, i: number, end: number, obj: Obj): Key {
    const key = this.plainKey(s, i, end - i, obj);
    if (key !== Key.Other || !this.backslash.within(s, i, end)) return key;
    // An escaped key (`"n\u0061me"`) is the same key to JSON.parse; rare, so decoded only then.
    const decoded = JSON.stringify(stringAt(s, i, end));
    return this.plainKey(decoded, 0, decoded.length, obj);
  }

  private plainKey(s: string, i: number, length: number, obj: Obj): Key {
    // By length first, then the text: no closure or slice per key (every key of every job passes here).
    switch (obj) {
      case Obj.Job:
        if (length === 6) return s.startsWith('"name"', i) ? Key.Name : Key.Other;
        if (length === 12)
          return s.startsWith('"properties"', i)
            ? Key.Properties
            : s.startsWith('"systemData"', i)
              ? Key.SystemData
              : Key.Other;
        return Key.Other;
      case Obj.SystemData:
        return length === 11 && s.startsWith('"createdAt"', i) ? Key.CreatedAt : Key.Other;
      case Obj.Properties:
        switch (length) {
          case 6:
            return s.startsWith('"tags"', i) ? Key.Tags : Key.Other;
          case 8:
            return s.startsWith('"status"', i) ? Key.Status : Key.Other;
          case 11:
            return s.startsWith('"resources"', i) ? Key.Resources : Key.Other;
          case 12:
            return s.startsWith('"isArchived"', i) ? Key.IsArchived : Key.Other;
          case 16:
            return s.startsWith('"experimentName"', i) ? Key.ExperimentName : Key.Other;
          default:
            return Key.Other;
        }
      case Obj.Tags:
        return length === this.tagKey.length && s.startsWith(this.tagKey, i) ? Key.TagKey : Key.Other;
      case Obj.Resources:
        return length === 15 && s.startsWith('"instanceCount"', i) ? Key.InstanceCount : Key.Other;
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
    return this.backslash.within(s, at, end) ? stringAt(s, at, end) : s.slice(at + 1, end - 1);
  }
}
