import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { formatDuration, MAX_DURATION_SECONDS, parseDuration } from "#src/rules/duration.js";

describe("parseDuration", () => {
  it.each([
    ["45s", 45],
    ["30m", 1_800],
    ["2h", 7_200],
    ["1h30m", 5_400],
    ["1d", 86_400],
    ["1d2h3m4s", 93_784],
    ["90m", 5_400],
    ["1h0m", 3_600],
    [" 15m ", 900],
    ["365d", MAX_DURATION_SECONDS],
  ])("%j is %i seconds", (text, seconds) => {
    expect(parseDuration(text)).toEqual({ ok: true, seconds });
  });

  it.each([
    ["", /empty/],
    ["   ", /empty/],
    ["90", /"90" has no unit: write 90s, 90m, 90h or 90d/],
    ["1h30", /ambiguous: "30" after "1h" has no unit/],
    ["1.5h", /fractions are not allowed/],
    ["1,5h", /fractions are not allowed/],
    ["0s", /longer than zero/],
    ["0h0m", /longer than zero/],
    ["-1h", /no sign/],
    ["+1h", /no sign/],
    ["1h 30m", /no spaces/],
    ["1H", /lowercase: write h/],
    ["5M", /"M" is ambiguous \(month or minute\?\)/],
    ["1w", /unknown unit "w"/],
    ["1y", /unknown unit "y"/],
    ["100ms", /unknown unit "ms"/],
    ["1min", /unknown unit "min"/],
    ["1hm", /each unit needs its own number/],
    ["1h1h", /unit "h" appears twice/],
    ["30m1h", /largest to smallest/],
    ["h", /unexpected "h" at position 1/],
    ["1h!", /unknown unit "h!"/],
    ["366d", /longer than the maximum of 365d/],
    ["99999999999999999999s", /longer than the maximum of 365d/],
    ["9007199254740993s", /longer than the maximum/],
    ["x".repeat(100), /too long/],
  ])("refuses %j", (text, message) => {
    const result = parseDuration(text);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.message).toMatch(message);
  });
});

describe("formatDuration", () => {
  it.each([
    [0, "0s"],
    [45, "45s"],
    [1_800, "30m"],
    [5_400, "1h30m"],
    [86_400, "1d"],
    [93_784, "1d2h3m4s"],
  ])("%i is %j", (seconds, text) => {
    expect(formatDuration(seconds)).toBe(text);
  });

  it("refuses what is not a whole number of seconds", () => {
    expect(() => formatDuration(-1)).toThrow(RangeError);
    expect(() => formatDuration(1.5)).toThrow(RangeError);
  });

  it("round-trips through parseDuration", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: MAX_DURATION_SECONDS }), (seconds) => {
        expect(parseDuration(formatDuration(seconds))).toEqual({ ok: true, seconds });
      }),
    );
  });
});
