/**
 * Person-supplied text, made inert in GitHub-flavoured Markdown.
 *
 * GitHub renders a comment in two steps: Markdown to HTML, then filters over
 * the HTML's text (mentions, `#123` references, autolinks). Escaping for the
 * first step (backslashes, entities) is undone before the second, so words
 * the filters would act on are broken with a zero-width space instead, which
 * survives rendering and is invisible to a reader:
 *
 * - `@name` (people and teams), `#123`, `GH-123`, `https://`, `www.`: a
 *   zero-width space (`&#8203;`) after `@`, `#`, `GH-`, `:` and `www`.
 * - HTML: `&`, `<`, `>` become entities, so no tag, comment (our hidden
 *   `<!-- hallpass: -->` marker included) or entity of the text survives.
 * - Markdown: the ASCII punctuation that opens emphasis, links, images, code,
 *   strikethrough and math is backslash-escaped; block syntax that only
 *   counts at the start of a line (headings, lists, quotes, rules) is escaped
 *   there; `|` becomes `&#124;`, so tables never split.
 * - Control characters and bidirectional overrides/isolates become U+FFFD.
 *
 * Lengths are bounds on the *output*, in UTF-16 code units: an escape is
 * never cut in half, and a truncated text ends with `…`.
 */

const ZWSP = "&#8203;";
const ELLIPSIS = "…";

/** Backslash-escaped wherever they are. */
const MARKDOWN_PUNCTUATION = new Set(["\\", "`", "*", "_", "[", "]", "(", ")", "!", "~", "$", "#"]);
/** Block syntax that only means something at the start of a line. */
const LINE_START = new Set(["-", "+", "="]);
const ENTITIES: Readonly<Record<string, string>> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  "|": "&#124;",
};

/** Text for one line: a table cell, a list item, a sentence of ours. */
export function inline(text: string, max: number): string {
  const line = neutralise(text)
    .replace(/\s*\n\s*/g, " ")
    .trim();
  return bounded(escapeLine(line), max);
}

/**
 * Multi-line text as a Markdown block quote: every line starts with `>`, so
 * nothing in it can end the quote. Put it on its own, after a blank line.
 */
export function block(text: string, max: number): string {
  const lines = neutralise(text).replace(/\s+$/, "").split("\n");
  const quoted = lines.map((line) => {
    const indent = /^ */.exec(line)?.[0].length ?? 0;
    const rest = line.slice(indent);
    return rest === "" ? [">"] : ["> ", "&nbsp;".repeat(Math.min(indent, 16)), ...escapeLine(rest)];
  });
  // Lines are joined as pieces so that truncation never leaves a line without its `>`.
  const pieces: string[] = [];
  for (const [i, line] of quoted.entries()) {
    if (i > 0) pieces.push(`\n${line[0]}`, ...line.slice(1));
    else pieces.push(...line);
  }
  const out = bounded(pieces, max);
  return out.startsWith(">") ? out : ">";
}

/**
 * A short identifier (a login, a resource, a scope, `GET /v1/**`) as a code
 * span: shown as is, never a mention, link or tag. Text a code span cannot
 * hold (a backtick; a pipe, which would split a table) or that looks like
 * HTML is escaped instead.
 */
export function code(text: string, max = 200): string {
  const line = neutralise(text).replace(/\s+/g, " ").trim();
  if (line === "" || /[`|<>]/.test(line) || line.length + 2 > max) return inline(line, max);
  return `\`${line}\``;
}

/** A login, team (`@org/team`) or other name, shown without notifying anyone. */
export function person(login: string): string {
  return code(login.replace(/^@+/, ""), 100);
}

/**
 * Text for a field GitHub shows as plain text, never as Markdown (a check
 * run's title): one line, controls neutralised, bounded, nothing escaped.
 */
export function plain(text: string, max: number): string {
  const line = neutralise(text).replace(/\s+/g, " ").trim();
  return bounded([...line], max);
}

/** GitHub's login syntax: alphanumerics and single inner hyphens, at most 39. */
export function isGitHubLogin(login: string): boolean {
  return /^[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}$/.test(login);
}

/** Replaces what must never reach a reader; normalises line breaks to `\n` and tabs to spaces. */
function neutralise(text: string): string {
  return text
    .toWellFormed()
    .replace(/\r\n?|[\u2028\u2029]/g, "\n")
    .replace(/\t/g, " ")
    .replace(/[\s\S]/gu, (c) => (neutralised(c) ? "\uFFFD" : c));
}

/**
 * C0 and C1 controls (newline aside: tabs and other line breaks are gone by
 * now), DEL, and the bidirectional embeddings, overrides and isolates
 * (U+202A–U+202E, U+2066–U+2069) that make text read differently than it is.
 */
function neutralised(c: string): boolean {
  const cp = c.codePointAt(0) ?? 0;
  return (
    (cp < 0x20 && c !== "\n") ||
    (cp >= 0x7f && cp <= 0x9f) ||
    (cp >= 0x202a && cp <= 0x202e) ||
    (cp >= 0x2066 && cp <= 0x2069)
  );
}

/** One line's escaped pieces, one per code point of the input. */
function escapeLine(line: string): string[] {
  const chars = [...line];
  const out: string[] = [];
  let atLineStart = true;
  for (const [i, c] of chars.entries()) {
    const next = chars[i + 1] ?? "";
    const before = chars.slice(Math.max(0, i - 3), i).join("");
    let piece = ENTITIES[c] ?? (MARKDOWN_PUNCTUATION.has(c) ? `\\${c}` : c);
    if (atLineStart && LINE_START.has(c)) piece = `\\${c}`;
    // `1.` or `1)` at the start of a line is an ordered list.
    if (c === "." && /^\d+$/.test(chars.slice(0, i).join(""))) piece = "\\.";
    if (c === "@") piece = `@${ZWSP}`;
    if (c === "#") piece = `\\#${ZWSP}`;
    if (c === ":" && next === "/" && chars[i + 2] === "/") piece = `${piece}${ZWSP}`;
    if (c === "-" && /(^|[^A-Za-z0-9])gh$/i.test(before) && /\d/.test(next)) piece = `-${ZWSP}`;
    if (c === "." && /(^|[^A-Za-z0-9])www$/i.test(chars.slice(Math.max(0, i - 4), i).join(""))) {
      piece = `${ZWSP}.`;
    }
    if (!/\d/.test(c)) atLineStart = false;
    out.push(piece);
  }
  return out;
}

/** Joins pieces up to `max` code units, ending a truncated text with an ellipsis. */
function bounded(pieces: readonly string[], max: number): string {
  const total = pieces.reduce((n, p) => n + p.length, 0);
  if (total <= max) return pieces.join("");
  let out = "";
  for (const piece of pieces) {
    if (out.length + piece.length + ELLIPSIS.length > max) break;
    out += piece;
  }
  return max >= ELLIPSIS.length ? out + ELLIPSIS : "";
}
