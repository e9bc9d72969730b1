import { describe, expect, test } from "vitest";
import fc from "fast-check";
import {
  decide,
  planShrink,
  proportionalPolicy,
  spreadHires,
  stepPolicy,
  type DecideParameters,
  type RegionView,
  type SpreadRegion,
  type ShrinkRegion,
} from "../../src/policy/index.js";

/**
 * The promises as properties, over random readings, unknowns and histories: whatever the input, a plan
 * never goes above the cap or a region's room, never acts on a region it cannot trust, never drains a
 * worker the queue can keep busy, and a failed queue read changes nothing.
 */

const names = ["east", "west", "north", "south", "lab"];
const count = (max: number) => fc.integer({ min: 0, max });
const sum = (values: Record<string, number>) => Object.values(values).reduce((a, b) => a + b, 0);

const spreadRegions = fc.uniqueArray(
  fc.record({
    name: fc.constantFrom(...names),
    capacity: fc.oneof(fc.integer({ min: -20, max: 200 }), fc.double({ min: -5, max: 50, noNaN: true })),
    weight: fc.option(fc.integer({ min: 1, max: 5 }), { nil: undefined }),
    healthy: fc.option(fc.boolean(), { nil: undefined }),
  }),
  { selector: (region) => region.name, maxLength: 5 },
);

describe("spreadHires", () => {
  test("never above a region's capacity, nothing to an unhealthy one, the whole amount when room allows", () => {
    fc.assert(
      fc.property(count(1000), spreadRegions, (total, regions: SpreadRegion[]) => {
        const placed = spreadHires(total, regions);
        const room = (region: SpreadRegion) =>
          region.healthy === false ? 0 : Math.max(0, Math.floor(region.capacity));
        for (const region of regions) {
          const given = placed[region.name]!;
          expect(Number.isInteger(given)).toBe(true);
          expect(given).toBeGreaterThanOrEqual(0);
          expect(given).toBeLessThanOrEqual(room(region));
        }
        const roomTotal = regions.reduce((total, region) => total + room(region), 0);
        expect(sum(placed)).toBe(Math.min(total, roomTotal));
      }),
    );
  });

  test("with room everywhere, shares follow the weights to within one worker", () => {
    fc.assert(
      fc.property(
        count(500),
        fc.uniqueArray(
          fc.record({ name: fc.constantFrom(...names), weight: fc.integer({ min: 1, max: 5 }) }),
          {
            selector: (region) => region.name,
            minLength: 1,
            maxLength: 5,
          },
        ),
        (total, weighted) => {
          const regions = weighted.map((region) => ({ ...region, capacity: 10_000 }));
          const placed = spreadHires(total, regions);
          const weightSum = regions.reduce((total, region) => total + region.weight, 0);
          for (const region of regions) {
            expect(Math.abs(placed[region.name]! - (total * region.weight) / weightSum)).toBeLessThan(1);
          }
        },
      ),
    );
  });
});

const shrinkRegions = fc.uniqueArray(
  fc.record({
    name: fc.constantFrom(...names),
    running: count(60),
    pending: count(60),
    draining: count(20),
    actionable: fc.option(fc.boolean(), { nil: undefined }),
    drainable: fc.option(fc.boolean(), { nil: undefined }),
  }),
  { selector: (region) => region.name, maxLength: 5 },
);

describe("planShrink", () => {
  test("cancels only pending workers above the target, drains only the surplus, only where it may", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: -5, max: 300 }),
        count(2000),
        fc.integer({ min: 1, max: 8 }),
        shrinkRegions,
        (target, queueDepth, concurrency, regions: ShrinkRegion[]) => {
          const plan = planShrink({ target, queueDepth, concurrency, regions });
          const running = regions.reduce((total, region) => total + region.running, 0);
          const pending = regions.reduce((total, region) => total + region.pending, 0);
          const busy = queueDepth > 0 ? Math.ceil(queueDepth / concurrency) : 0;
          expect(plan.busyWorkers).toBe(busy);
          expect(plan.surplus).toBe(Math.max(0, running - Math.max(target, busy)));
          expect(sum(plan.cancel)).toBeLessThanOrEqual(Math.max(0, running + pending - Math.max(0, target)));
          expect(sum(plan.drain)).toBeLessThanOrEqual(plan.surplus);
          for (const region of regions) {
            const cancel = plan.cancel[region.name] ?? 0;
            const drain = plan.drain[region.name] ?? 0;
            expect(cancel).toBeLessThanOrEqual(region.pending);
            expect(drain).toBeLessThanOrEqual(region.running);
            if (region.actionable === false) expect(cancel + drain).toBe(0);
            if (region.drainable === false) expect(drain).toBe(0);
          }
          // Never drain a worker the queue or the target still needs.
          expect(running - sum(plan.drain)).toBeGreaterThanOrEqual(Math.min(running, Math.max(target, busy)));
        },
      ),
    );
  });

  test("when every region may be acted on, it cuts exactly the excess, evenly: a cut region is left with no fewer than any other, less one", () => {
    fc.assert(
      fc.property(
        count(120),
        fc.uniqueArray(
          fc.record({
            name: fc.constantFrom(...names),
            running: count(60),
            pending: count(60),
            draining: count(5),
          }),
          { selector: (region) => region.name, minLength: 1, maxLength: 5 },
        ),
        (target, regions) => {
          const plan = planShrink({ target, queueDepth: 0, concurrency: 1, regions });
          const running = regions.reduce((total, region) => total + region.running, 0);
          const pending = regions.reduce((total, region) => total + region.pending, 0);
          expect(sum(plan.cancel)).toBe(Math.min(pending, Math.max(0, running + pending - target)));
          expect(sum(plan.drain)).toBe(Math.max(0, running - target));
          for (const [field, cuts] of [
            ["pending", plan.cancel],
            ["running", plan.drain],
          ] as const) {
            const left = regions.map((region) => region[field] - (cuts[region.name] ?? 0));
            regions.forEach((region, index) => {
              if ((cuts[region.name] ?? 0) === 0) return;
              for (const other of left) expect(left[index]! + 1).toBeGreaterThanOrEqual(other);
            });
          }
        },
      ),
    );
  });
});

const observation = fc.record({
  running: count(80),
  pending: count(80),
  draining: count(20),
  capacity: fc.integer({ min: -10, max: 200 }),
});
const regionViews = fc.uniqueArray(
  fc.record({
    name: fc.constantFrom(...names),
    // Unknown (never read), stale (an old reading) or fresh.
    observation: fc.option(observation, { nil: undefined }),
    fresh: fc.boolean(),
    weight: fc.option(fc.integer({ min: 1, max: 4 }), { nil: undefined }),
    maxWorkers: fc.option(count(150), { nil: undefined }),
    canDrain: fc.option(fc.boolean(), { nil: undefined }),
  }),
  { selector: (region) => region.name, maxLength: 5 },
);
const parameters: fc.Arbitrary<DecideParameters> = fc.record({
  concurrency: fc.integer({ min: 1, max: 8 }),
  maxWorkers: count(400),
  minWorkers: count(10),
  rampFactor: fc.constantFrom(1, 2, 10),
  scaleDownDelayMs: fc.constantFrom(0, 60_000, 300_000),
});
const history = fc.array(fc.record({ at: fc.integer({ min: 0, max: 1_000_000 }), target: count(400) }), {
  maxLength: 6,
});

describe("decide", () => {
  test("never above the cap or a region's room; only fresh, known regions act; never hire and shrink at once", () => {
    fc.assert(
      fc.property(
        fc.option(count(5000), { nil: undefined }),
        regionViews,
        parameters,
        history,
        fc.constantFrom(stepPolicy, proportionalPolicy),
        (queueDepth, regions: RegionView[], params, samples, policy) => {
          const now = 1_000_000;
          const { plan, history: kept } = decide({
            queueDepth,
            regions,
            policy,
            parameters: params,
            history: samples,
            now,
          });
          const seen = regions.flatMap((region) => (region.observation ? [region.observation] : []));
          const total = (pick: (o: (typeof seen)[number]) => number) => seen.reduce((t, o) => t + pick(o), 0);
          expect(plan.totals).toEqual({
            running: total((o) => o.running),
            pending: total((o) => o.pending),
            draining: total((o) => o.draining),
            capacity: total((o) => Math.max(0, o.capacity)),
          });
          const active = plan.totals.running + plan.totals.pending;
          const hired = plan.regions.reduce((total, region) => total + region.hire, 0);
          const cancelled = plan.regions.reduce((total, region) => total + region.cancel, 0);
          const drained = plan.regions.reduce((total, region) => total + region.drain, 0);
          if (queueDepth === undefined) {
            // A failed queue read: no action, and the scale-down window is kept as it was.
            expect(plan.hold).toBeDefined();
            expect(hired + cancelled + drained).toBe(0);
            expect(kept).toEqual(samples);
            return;
          }
          expect(plan.hold).toBeUndefined();
          expect(plan.desired).toBeLessThanOrEqual(params.maxWorkers);
          if (hired > 0) expect(active + hired).toBeLessThanOrEqual(params.maxWorkers);
          expect(hired).toBeLessThanOrEqual(plan.hire);
          if (hired > 0) expect(cancelled + drained).toBe(0);
          expect(drained).toBeLessThanOrEqual(plan.surplus);
          for (const region of regions) {
            const planned = plan.regions.find((candidate) => candidate.region === region.name)!;
            const seen = region.observation;
            if (!region.fresh || !seen) {
              expect(planned).toEqual({ region: region.name, hire: 0, cancel: 0, drain: 0 });
              continue;
            }
            expect(planned.hire).toBeLessThanOrEqual(Math.max(0, seen.capacity));
            if (region.maxWorkers !== undefined) {
              const regionActive = seen.running + seen.pending + seen.draining;
              expect(planned.hire).toBeLessThanOrEqual(Math.max(0, region.maxWorkers - regionActive));
            }
            expect(planned.cancel).toBeLessThanOrEqual(seen.pending);
            expect(planned.drain).toBeLessThanOrEqual(seen.running);
            if (region.canDrain === false) expect(planned.drain).toBe(0);
          }
          // The window keeps this tick's wish and only samples younger than the delay.
          expect(kept.at(-1)).toEqual({ at: now, target: plan.desired });
          for (const sample of kept.slice(0, -1))
            expect(now - sample.at).toBeLessThan(params.scaleDownDelayMs);
          expect(plan.target).toBe(Math.max(...kept.map((sample) => sample.target)));
        },
      ),
    );
  });

  test("the ramp: a tick never wants more than rampFactor x (running + 1), unless minWorkers asks for it", () => {
    fc.assert(
      fc.property(count(5000), regionViews, parameters, (queueDepth, regions: RegionView[], params) => {
        const { plan } = decide({
          queueDepth,
          regions,
          policy: stepPolicy,
          parameters: params,
          history: [],
          now: 0,
        });
        const ramp = Math.floor(params.rampFactor * (plan.totals.running + 1));
        expect(plan.desired).toBeLessThanOrEqual(
          Math.max(ramp, Math.min(params.minWorkers, params.maxWorkers)),
        );
      }),
    );
  });
});
