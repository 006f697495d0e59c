import { describe, expect, it } from "vitest";
import { GaveUp, Refusal, Unreachable } from "../../action/src/errors.js";
import { withRetry } from "../../action/src/retry.js";

const options = (waits: number[]) => ({
  attempts: 4,
  baseMs: 1_000,
  maxWaitMs: 30_000,
  sleep: async (ms: number) => {
    waits.push(ms);
  },
});

describe("withRetry", () => {
  it("retries unreachable servers with a doubling backoff, then gives up", async () => {
    const waits: number[] = [];
    let calls = 0;
    const failing = withRetry(async () => {
      calls++;
      throw new Unreachable("connect ECONNREFUSED");
    }, options(waits));
    await expect(failing).rejects.toBeInstanceOf(GaveUp);
    await expect(failing).rejects.toMatchObject({ attempts: 4 });
    expect(calls).toBe(4);
    expect(waits).toHaveLength(3);
    waits.forEach((ms, i) => {
      expect(ms).toBeGreaterThanOrEqual(800 * 2 ** i);
      expect(ms).toBeLessThanOrEqual(1_200 * 2 ** i);
    });
  });

  it("passes attempt numbers and returns the first success", async () => {
    const seen: number[] = [];
    const value = await withRetry(async (attempt) => {
      seen.push(attempt);
      if (attempt < 3) throw new Refusal(503, "NOT_READY", "not ready", undefined);
      return "token";
    }, options([]));
    expect(value).toBe("token");
    expect(seen).toEqual([1, 2, 3]);
  });

  it("does not retry a refusal that another attempt would not change", async () => {
    let calls = 0;
    const refusal = new Refusal(403, "GRANT_NOT_ACTIVE", "grant not active", undefined);
    await expect(
      withRetry(async () => {
        calls++;
        throw refusal;
      }, options([])),
    ).rejects.toBe(refusal);
    expect(calls).toBe(1);
  });

  it("waits as long as retry-after asks, and gives up when that is too long", async () => {
    const waits: number[] = [];
    let calls = 0;
    await withRetry(async () => {
      if (++calls === 1) throw new Refusal(429, "RATE_LIMITED", "slow down", 5);
      return null;
    }, options(waits));
    expect(waits).toEqual([5_000]);

    const tooLong = withRetry(async () => {
      throw new Refusal(429, "RATE_LIMITED", "slow down", 3_600);
    }, options([]));
    await expect(tooLong).rejects.toMatchObject({ attempts: 1 });
  });
});
