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
