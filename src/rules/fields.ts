import { z } from "zod";
import { parseDuration } from "#src/rules/duration.js";
import { compileScope } from "#src/rules/scopes.js";
import { kindOf } from "#src/rules/yaml-source.js";

/**
 * zod fields shared by the policy and the operator config, with messages
 * that say what was expected and never repeat the value.
 */

/** Text; a value of another type gets "expected <what>, got a number". */
export function textOf(what: string) {
  return z.string({
    error: (issue) =>
      issue.code !== "invalid_type"
        ? undefined
        : issue.input === undefined
          ? "is required"
          : `expected ${what}, got ${kindOf(issue.input)}`,
  });
}

/** `1h30m` → 5400 (seconds). */
export const durationField = textOf("a duration with a unit, such as 30m or 1h").transform(
  (text, ctx) => {
    const parsed = parseDuration(text);
    if (parsed.ok) return parsed.seconds;
    ctx.addIssue({ code: "custom", message: parsed.message });
    return z.NEVER;
  },
);

/** `GET /v1/**` → a compiled scope pattern. */
export const patternField = textOf('a scope pattern such as "GET /v1/**"').transform(
  (text, ctx) => {
    const compiled = compileScope(text);
    if (compiled.ok) return compiled.pattern;
    ctx.addIssue({ code: "custom", message: compiled.message });
    return z.NEVER;
  },
);

const SIZE_UNITS = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3 } as const;
/** The largest size accepted: 64 GiB. */
export const MAX_SIZE_BYTES = 64 * 1024 ** 3;

/** `10mb` → 10485760 (bytes; units b, kb, mb, gb are powers of 1024). */
export const sizeField = textOf("a size with a unit, such as 512kb or 10mb").transform(
  (text, ctx) => {
    const match = /^(\d{1,12})(b|kb|mb|gb)$/.exec(text.trim());
    const bytes = match ? Number(match[1]) * SIZE_UNITS[match[2] as keyof typeof SIZE_UNITS] : NaN;
    if (match && bytes >= 1 && bytes <= MAX_SIZE_BYTES) return bytes;
    ctx.addIssue({
      code: "custom",
      message: match
        ? "must be between 1b and 64gb"
        : `${JSON.stringify(text.slice(0, 40))}: expected a whole number and a unit (b, kb, mb, gb), e.g. 10mb`,
    });
    return z.NEVER;
  },
);
