import { formatPath, loadYaml } from "#src/rules/yaml-source.js";

/**
 * Finding the request fields in an issue or PR body, before any validation.
 *
 * Two forms are read:
 * - an issue-form rendering: `### Resource`, `### Scopes`, `### Duration`,
 *   `### Reason` and optionally `### Start` sections, each holding the value
 *   (`_No response_` = empty; a multi-select renders as `a, b`);
 * - one fenced ```` ```hallpass ```` block of YAML with the keys `resource`,
 *   `scopes`, `duration`, `reason`, `start`.
 *
 * Text an approver cannot see is not read: HTML comments are skipped, and so
 * is everything inside other fenced code blocks (a `### Resource` or a
 * ```` ```hallpass ```` inside a ```` ```` ```` block is just text). Both forms
 * at once, two blocks or a repeated section are reported, never guessed
 * between.
 */

/** GitHub's limit for an issue or PR body; longer bodies are not read at all. */
export const MAX_BODY_CHARS = 65_536;

export interface RawFields {
  readonly source: "issue-form" | "block";
  /** `undefined` when absent or left empty (`_No response_`). */
  readonly resource?: string;
  readonly scopes?: readonly string[];
  readonly duration?: string;
  readonly reason?: string;
  readonly start?: string;
}

export type FieldsResult =
  | { readonly ok: true; readonly fields: RawFields }
  | { readonly ok: false; readonly problems: readonly string[] };

type Field = "resource" | "scopes" | "duration" | "reason" | "start";

const HEADINGS: Readonly<Record<string, Field>> = {
  resource: "resource",
  scopes: "scopes",
  scope: "scopes",
  duration: "duration",
  reason: "reason",
  start: "start",
};
/** The field a heading names; own keys only, so `### Constructor` is no field. */
function fieldOf(heading: string): Field | undefined {
  return Object.hasOwn(HEADINGS, heading) ? HEADINGS[heading] : undefined;
}

const TITLES: Readonly<Record<Field, string>> = {
  resource: "Resource",
  scopes: "Scopes",
  duration: "Duration",
  reason: "Reason",
  start: "Start",
};
const BLOCK_KEYS: readonly Field[] = ["resource", "scopes", "duration", "reason", "start"];
const NO_RESPONSE = "_No response_";

interface Line {
  /** The visible text (HTML comments removed); `null` inside another code block. */
  readonly text: string;
  /** Set when this line is a `###` heading outside code blocks. */
  readonly heading: string | null;
}

/** Reads the request fields out of a body; see the module comment for the forms. */
export function extractFields(body: string | null | undefined): FieldsResult {
  const text = body ?? "";
  if (text.length > MAX_BODY_CHARS) {
    return fail(
      `the body is longer than ${MAX_BODY_CHARS.toLocaleString("en-US")} characters ` +
        "(GitHub's limit for an issue body) and was not read",
    );
  }
  const { lines, blocks, unclosed } = scan(text.replace(/\r\n?/g, "\n"));
  const sections = lines.filter((l) => l.heading !== null && fieldOf(l.heading) !== undefined);
  const problems: string[] = [];
  if (unclosed) problems.push("the ```hallpass block is not closed with ```");
  if (blocks.length > 1) {
    problems.push(`the body has ${blocks.length} \`\`\`hallpass blocks; keep exactly one`);
  }
  if (blocks.length > 0 && sections.length > 0) {
    problems.push(
      "the body has both issue-form sections (### Resource ...) and a ```hallpass block; use one",
    );
  }
  if (problems.length > 0) return { ok: false, problems };
  const [block] = blocks;
  if (block !== undefined) return fromBlock(block);
  if (sections.length > 0) return fromSections(lines);
  return fail(
    "no request found: fill in the issue form (### Resource, ### Scopes, ### Duration, " +
      "### Reason) or add a ```hallpass block with resource, scopes, duration and reason",
  );
}

function scan(text: string): { lines: Line[]; blocks: string[]; unclosed: boolean } {
  const lines: Line[] = [];
  const blocks: string[] = [];
  let fence: { char: string; length: number; block: string[] | null } | null = null;
  let inComment = false;
  for (const raw of text.split("\n")) {
    if (fence !== null) {
      const close = /^ {0,3}(`{3,}|~{3,})[ \t]*$/.exec(raw);
      if (close?.[1]?.[0] === fence.char && close[1].length >= fence.length) {
        if (fence.block) blocks.push(fence.block.join("\n"));
        fence = null;
      } else {
        fence.block?.push(raw);
      }
      lines.push({ text: raw, heading: null });
      continue;
    }
    const visible = stripComments(raw, inComment);
    inComment = visible.inComment;
    const open = /^ {0,3}(`{3,}|~{3,})(.*)$/.exec(visible.text);
    const marker = open?.[1];
    if (marker !== undefined && !(marker[0] === "`" && (open?.[2] ?? "").includes("`"))) {
      const info = (open?.[2] ?? "").trim().toLowerCase();
      fence = {
        char: marker[0] ?? "`",
        length: marker.length,
        block: info === "hallpass" ? [] : null,
      };
      lines.push({ text: visible.text, heading: null });
      continue;
    }
    lines.push({ text: visible.text, heading: headingOf(visible.text) });
  }
  return { lines, blocks, unclosed: fence !== null && fence.block !== null };
}

/** Removes `<!-- ... -->` (possibly spanning lines) from one line. */
function stripComments(line: string, inComment: boolean): { text: string; inComment: boolean } {
  let out = "";
  let rest = line;
  let hidden = inComment;
  for (;;) {
    if (hidden) {
      const end = rest.indexOf("-->");
      if (end < 0) return { text: out, inComment: true };
      rest = rest.slice(end + 3);
      hidden = false;
    }
    const start = rest.indexOf("<!--");
    if (start < 0) return { text: out + rest, inComment: false };
    out += rest.slice(0, start);
    rest = rest.slice(start + 4);
    hidden = true;
  }
}

/** The lower-cased name of a `### Name` heading, or `null`. Written without regexes that could backtrack. */
function headingOf(line: string): string | null {
  let i = 0;
  while (i < 3 && line[i] === " ") i++;
  if (!line.startsWith("###", i)) return null;
  const after = line[i + 3];
  if (after !== undefined && after !== " " && after !== "\t") return null;
  let name = line.slice(i + 3).trim();
  // A closing sequence of #s, as Markdown allows.
  const closing = name.replace(/#+$/, "");
  if (closing === "" || /[ \t]$/.test(closing)) name = closing.trim();
  return name
    .normalize("NFKC")
    .replace(/\p{Cf}/gu, "")
    .replace(/:$/, "")
    .trim()
    .toLowerCase();
}

function fromSections(lines: readonly Line[]): FieldsResult {
  const values = new Map<Field, string[]>();
  const counts = new Map<Field, number>();
  let current: string[] | null = null;
  for (const line of lines) {
    if (line.heading !== null) {
      const field = fieldOf(line.heading);
      current = null;
      if (field !== undefined) {
        counts.set(field, (counts.get(field) ?? 0) + 1);
        current = [];
        if (!values.has(field)) values.set(field, current);
      }
      continue;
    }
    current?.push(line.text);
  }
  const problems: string[] = [];
  for (const [field, count] of counts) {
    if (count > 1) problems.push(`### ${TITLES[field]} appears ${count} times; keep one`);
  }
  if (problems.length > 0) return { ok: false, problems };

  const value = (field: Field): string | undefined => {
    const text = (values.get(field) ?? []).join("\n").trim();
    return text === "" || text === NO_RESPONSE ? undefined : text;
  };
  const single = (field: Field): string | undefined => {
    const text = value(field);
    if (text?.includes("\n")) {
      problems.push(`### ${TITLES[field]} has several lines; write one value`);
      return undefined;
    }
    return text;
  };
  const scopes = value("scopes");
  const fields: RawFields = {
    source: "issue-form",
    resource: single("resource"),
    scopes: scopes === undefined ? undefined : splitScopes(scopes),
    duration: single("duration"),
    reason: value("reason"),
    start: single("start"),
  };
  return problems.length > 0 ? { ok: false, problems } : { ok: true, fields };
}

/**
 * Scopes as a multi-select renders them (`read, refund`), one per line, as a
 * bullet list, or as checkboxes (`- [X] read`; unchecked boxes are left out).
 */
function splitScopes(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split("\n")) {
    let item = line.trim().replace(/^[-*+][ \t]+/, "");
    const box = /^\[([ xX])\][ \t]*/.exec(item);
    if (box) {
      if (box[1] === " ") continue;
      item = item.slice(box[0].length);
    }
    for (const part of item.split(",")) {
      const scope = part.trim();
      if (scope !== "") out.push(scope);
    }
  }
  return out;
}

function fromBlock(text: string): FieldsResult {
  const where = "in the ```hallpass block";
  const loaded = loadYaml(text, "hallpass", MAX_BODY_CHARS);
  if (!loaded.ok) {
    return {
      ok: false,
      problems: loaded.errors.map(
        (e) => `${where}${e.line === null ? "" : `, line ${e.line}`}: ${e.message}`,
      ),
    };
  }
  const data = loaded.value;
  if (data === null || typeof data !== "object" || Array.isArray(data)) {
    return fail(
      `${where}: expected keys resource, scopes, duration, reason (and optionally start)`,
    );
  }
  const problems: string[] = [];
  const record = data as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    if (!(BLOCK_KEYS as readonly string[]).includes(key)) {
      problems.push(
        `${where}: unknown key ${JSON.stringify(key.slice(0, 40))}; the keys are ${BLOCK_KEYS.join(", ")}`,
      );
    }
  }
  const text1 = (key: Field): string | undefined => {
    const value = Object.hasOwn(record, key) ? record[key] : undefined;
    if (value === undefined || value === null) return undefined;
    if (typeof value === "string") return value.trim() === "" ? undefined : value.trim();
    problems.push(
      key === "duration" && typeof value === "number"
        ? `${where}: duration ${value} has no unit; write e.g. ${value}m or ${value}h`
        : `${where}: ${key} must be text`,
    );
    return undefined;
  };
  let scopes: string[] | undefined;
  const rawScopes = Object.hasOwn(record, "scopes") ? record.scopes : undefined;
  if (typeof rawScopes === "string") {
    scopes = splitScopes(rawScopes);
  } else if (Array.isArray(rawScopes)) {
    scopes = [];
    for (const [i, item] of rawScopes.entries()) {
      if (typeof item === "string") scopes.push(...splitScopes(item));
      else problems.push(`${where}: ${formatPath(["scopes", i])} must be text`);
    }
  } else if (rawScopes !== undefined && rawScopes !== null) {
    problems.push(`${where}: scopes must be a list or comma-separated text`);
  }
  const fields: RawFields = {
    source: "block",
    resource: text1("resource"),
    scopes,
    duration: text1("duration"),
    reason: text1("reason"),
    start: text1("start"),
  };
  return problems.length > 0 ? { ok: false, problems } : { ok: true, fields };
}

function fail(problem: string): FieldsResult {
  return { ok: false, problems: [problem] };
}
