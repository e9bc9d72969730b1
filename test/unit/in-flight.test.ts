import { describe, expect, it } from "vitest";
import { InFlightHires } from "../../src/controller/in-flight.js";

describe("hires in flight", () => {
  it("a named submission counts until a listing shows it", () => {
    let clock = 0;
    const book = new InFlightHires(300_000, () => clock);
    book.submitted("r", "job-1");
    book.submitted("r", "job-2");
    book.settled("r", "job-1", "unknown");
    clock = 10;
    expect(book.reconcile("r", new Set(), 5)).toBe(2);
    expect(book.reconcile("r", new Set(["job-2"]), 20)).toBe(1);
    expect(book.reconcile("r", new Set(["job-1"]), 30)).toBe(0);
  });

  it("a refused one leaves at once; an unknown one leaves after the grace period of fresh listings", () => {
    let clock = 0;
    const book = new InFlightHires(1_000, () => clock);
    book.submitted("r", "refused");
    book.settled("r", "refused", "refused");
    book.submitted("r", "lost");
    book.settled("r", "lost", "unknown");
    expect(book.count("r")).toBe(1);
    clock = 5_000;
    // While the region cannot be read, it keeps counting however long that takes.
    expect(book.count("r")).toBe(1);
    expect(book.reconcile("r", new Set(), 5_000)).toBe(0);
  });

  it("a region that names no workers: accepted hires leave with the first listing taken after them", () => {
    let clock = 100;
    const book = new InFlightHires(300_000, () => clock);
    book.hiredUnnamed("r", 3);
    // A listing that started before the hires were accepted does not show them yet.
    expect(book.reconcile("r", undefined, 50)).toBe(3);
    clock = 200;
    expect(book.reconcile("r", undefined, 150)).toBe(0);
  });

  it("a preview reads a copy", () => {
    const book = new InFlightHires(300_000, () => 0);
    book.submitted("r", "job-1");
    expect(book.clone().reconcile("r", new Set(["job-1"]), 1)).toBe(0);
    expect(book.count("r")).toBe(1);
  });
});
