import { describe, expect, it } from "vitest";
import { isHallpassError } from "#src/errors.js";
import { TokenBuckets } from "#src/tokens/rate-limit.js";

describe("TokenBuckets", () => {
  it("allows a burst of the per-minute rate, then refills at that rate, per key", () => {
    let now = 0;
    const buckets = new TokenBuckets({ perMinute: 3, now: () => now });
    expect([1, 2, 3].map(() => buckets.take("repo:1").ok)).toEqual([true, true, true]);
    expect(buckets.take("repo:1")).toEqual({ ok: false, retryAfterS: 20 });
    expect(buckets.take("repo:2").ok).toBe(true);
    now += 19_000;
    expect(buckets.take("repo:1")).toEqual({ ok: false, retryAfterS: 1 });
    now += 1_000;
    expect(buckets.take("repo:1").ok).toBe(true);
    expect(buckets.take("repo:1").ok).toBe(false);
    now += 10 * 60_000;
    expect([1, 2, 3, 4].map(() => buckets.take("repo:1").ok)).toEqual([true, true, true, false]);
  });

  it("throws RATE_LIMITED and reports the wait", () => {
    const buckets = new TokenBuckets({ perMinute: 1, now: () => 0 });
    buckets.spend("k", "repository 1");
    let waited = 0;
    let thrown: unknown;
    try {
      buckets.spend("k", "repository 1", (s) => {
        waited = s;
      });
    } catch (error) {
      thrown = error;
    }
    expect(isHallpassError(thrown, "RATE_LIMITED")).toBe(true);
    expect((thrown as Error).message).toMatch(/repository 1: at most 1 a minute; retry in 60 s/);
    expect(waited).toBe(60);
  });

  it("stays bounded: full buckets are forgotten first", () => {
    let now = 0;
    const buckets = new TokenBuckets({ perMinute: 2, maxKeys: 10, now: () => now });
    for (let i = 0; i < 10; i++) buckets.take(`busy:${i}`);
    buckets.take("busy:0");
    now += 60_000; // every bucket refilled
    for (let i = 0; i < 20; i++) buckets.take(`new:${i}`);
    // A key seen again starts from a full bucket, as it would have refilled anyway.
    expect([1, 2, 3].map(() => buckets.take("busy:0").ok)).toEqual([true, true, false]);
  });
});
