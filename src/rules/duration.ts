/**
 * Durations as people write them in policy files and tickets: `45s`, `30m`,
 * `1h30m`, `2h`, `1d`.
 *
 * Grammar: one or more `<digits><unit>` parts, units lowercase `d`, `h`, `m`,
 * `s`, largest first, each at most once, no spaces, no signs, no fractions.
 * Forms a reader could take two ways are refused rather than guessed: a bare
 * number (`90`: seconds or minutes?), a trailing number (`1h30`), `M`
 * (month or minute?), `1.5h`.
 */

/** The longest duration accepted anywhere: 365 days. */
export const MAX_DURATION_SECONDS = 365 * 86_400;

export type DurationResult =
  | { readonly ok: true; readonly seconds: number }
  | { readonly ok: false; readonly message: string };

const UNIT_SECONDS = { d: 86_400, h: 3_600, m: 60, s: 1 } as const;
type Unit = keyof typeof UNIT_SECONDS;
const UNIT_ORDER: readonly Unit[] = ["d", "h", "m", "s"];
const PART = /(\d+)([.,]\d*)?([^\d\s.,]*)/y;

/**
 * Parses a duration into whole seconds.
 *
 * @example parseDuration("1h30m") // { ok: true, seconds: 5400 }
 * @example parseDuration("90")    // { ok: false, message: '"90" has no unit: ...' }
 */
export function parseDuration(input: string): DurationResult {
  const text = input.trim();
  if (text === "") return fail("duration is empty; write e.g. 30m, 1h30m or 1d");
  if (text.length > 40) return fail("duration is too long; write e.g. 30m, 1h30m or 1d");
  const shown = JSON.stringify(text);
  if (/\s/.test(text)) return fail(`${shown}: no spaces inside a duration; write e.g. 1h30m`);
  if (/^[+-]/.test(text)) return fail(`${shown}: a duration has no sign`);

  let seconds = 0;
  let position = 0;
  let lastRank = -1;
  let parts = 0;
  while (position < text.length) {
    PART.lastIndex = position;
    const match = PART.exec(text);
    if (match === null || match.index !== position || match[0] === "") {
      const char = String.fromCodePoint(text.codePointAt(position) ?? 0);
      return fail(`${shown}: unexpected ${JSON.stringify(char)} at position ${position + 1}`);
    }
    const [, digits = "", fraction, unitText = ""] = match;
    if (fraction !== undefined) {
      return fail(`${shown}: fractions are not allowed; write e.g. 1h30m instead of 1.5h`);
    }
    if (unitText === "") {
      return fail(
        parts === 0
          ? `${shown} has no unit: write ${digits}s, ${digits}m, ${digits}h or ${digits}d`
          : `${shown} is ambiguous: "${digits}" after "${text.slice(0, position)}" has no unit`,
      );
    }
    const unit = unitOf(unitText);
    if (typeof unit !== "string") return fail(`${shown}: ${unit.message}`);
    const rank = UNIT_ORDER.indexOf(unit);
    if (rank === lastRank) return fail(`${shown}: unit "${unit}" appears twice`);
    if (rank < lastRank) {
      return fail(`${shown}: units go from largest to smallest (d, h, m, s), e.g. 1d2h30m`);
    }
    if (digits.length > 12) return fail(`${shown} is longer than the maximum of 365d`);
    seconds += Number(digits) * UNIT_SECONDS[unit];
    lastRank = rank;
    parts += 1;
    position += match[0].length;
  }
  if (seconds === 0) return fail(`${shown}: a duration must be longer than zero`);
  if (seconds > MAX_DURATION_SECONDS) {
    return fail(`${shown} is longer than the maximum of ${formatDuration(MAX_DURATION_SECONDS)}`);
  }
  return { ok: true, seconds };
}

/**
 * The canonical text of a number of seconds, largest units first, zero parts
 * left out; `parseDuration(formatDuration(n))` gives back `n` for any whole
 * `n` from 1 to {@link MAX_DURATION_SECONDS}.
 *
 * @example formatDuration(5400) // "1h30m"
 * @example formatDuration(0)    // "0s"
 */
export function formatDuration(seconds: number): string {
  if (!Number.isSafeInteger(seconds) || seconds < 0) {
    throw new RangeError(`formatDuration: expected a whole number of seconds >= 0`);
  }
  if (seconds === 0) return "0s";
  let rest = seconds;
  let text = "";
  for (const unit of UNIT_ORDER) {
    const count = Math.floor(rest / UNIT_SECONDS[unit]);
    rest -= count * UNIT_SECONDS[unit];
    if (count > 0) text += `${count}${unit}`;
  }
  return text;
}

function unitOf(text: string): Unit | { message: string } {
  if (text === "d" || text === "h" || text === "m" || text === "s") return text;
  const unknown = `unknown unit ${JSON.stringify(text)}: use d, h, m or s`;
  if (text === "M")
    return { message: `unit "M" is ambiguous (month or minute?): use m for minutes` };
  if (/^[DHS]$/.test(text)) return { message: `units are lowercase: write ${text.toLowerCase()}` };
  // Several units run together without digits between them, e.g. "1hm".
  if (text !== "ms" && /^[dhms]{2,}$/.test(text))
    return { message: `${unknown} (each unit needs its own number)` };
  return { message: unknown };
}

function fail(message: string): DurationResult {
  return { ok: false, message };
}
