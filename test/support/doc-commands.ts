/**
 * The shell commands a Markdown document shows, with the line each starts
 * on: what test/docs/commands.test.ts checks.
 *
 * Which blocks hold commands:
 * - fenced blocks tagged sh, bash, shell or zsh: every line is shell;
 * - blocks tagged console, and untagged blocks whose every non-blank line
 *   starts with `$ `: the lines after a `$ ` prompt (and their `\`
 *   continuations) are commands, the others are their output;
 * - yaml blocks that are GitHub workflows (`steps`, or `jobs.*.steps`): each
 *   step's `run:`; a yaml block with a `run:` key must parse, as GitHub would
 *   refuse the workflow;
 * - every other block (untagged output, yaml, json, text, mermaid) holds none;
 * - outside blocks, an inline code span that starts with `hallpass ` is a
 *   mention of a command, whose words are split at spaces (it may show a
 *   usage: `[--url URL]`).
 *
 * Within those, a trailing `\` continues a command on the next line, `#`
 * at the start of a word begins a comment, and `&&`, `||`, `;` and `|`
 * separate the simple commands of one line. A `<name>` placeholder stands
 * for an argument the reader supplies.
 */
import { isPair, isScalar, LineCounter, parseDocument, visit } from "yaml";

/** One logical command line of a document (continuations joined). */
export interface DocCommand {
  /** The document, relative to the repository. */
  readonly file: string;
  /** Line (1-based) of the document it starts on. */
  readonly line: number;
  /** Line of the first line of its block: a `cd` holds for the rest of the block. */
  readonly block: number;
  /** Its source, as the document writes it (without a `$ ` prompt). */
  readonly source: string;
  /** Its simple commands, as words (quotes removed, nothing expanded). */
  readonly commands: readonly (readonly string[])[];
  /**
   * Where it comes from: a shell block, a workflow step's `run:` (runs in
   * the user's repository), or an inline code span of prose.
   */
  readonly origin: "shell" | "workflow" | "inline";
  /** Why the block could not be read (a workflow that is not valid YAML): then it has no commands. */
  readonly error?: string;
}

const SHELL_TAGS = new Set(["sh", "bash", "shell", "zsh"]);

/** A placeholder such as `<command>`: the reader writes something there. */
export const PLACEHOLDER = /^<[a-z][a-z0-9 _-]*>$/;

interface Block {
  readonly tag: string;
  /** Line of the document of the block's first content line. */
  readonly line: number;
  readonly lines: readonly string[];
}

/** The fenced code blocks of a Markdown text (CommonMark fences: ``` or ~~~, a longer one nests shorter ones). */
export function fencedBlocks(markdown: string): Block[] {
  const blocks: Block[] = [];
  const lines = markdown.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const open = /^( {0,3})(`{3,}|~{3,})\s*([^\s`]*)/.exec(lines[i] ?? "");
    if (!open) continue;
    const [, indent = "", fence = "", tag = ""] = open;
    const close = new RegExp(`^ {0,3}${fence[0] === "`" ? "`" : "~"}{${fence.length},}\\s*$`);
    const content: string[] = [];
    let j = i + 1;
    for (; j < lines.length && !close.test(lines[j] ?? ""); j++) {
      const text = lines[j] ?? "";
      const strip = Math.min(indent.length, /^ */.exec(text)?.[0].length ?? 0);
      content.push(text.slice(strip));
    }
    blocks.push({ tag: tag.toLowerCase(), line: i + 2, lines: content });
    i = j;
  }
  return blocks;
}

/** Every command of a Markdown document (see the rules above). */
export function docCommands(file: string, markdown: string): DocCommand[] {
  const found: DocCommand[] = [];
  for (const block of fencedBlocks(markdown)) {
    const text = block.lines.join("\n");
    const nonBlank = block.lines.filter((l) => l.trim() !== "");
    if (SHELL_TAGS.has(block.tag)) {
      found.push(...shellCommands(file, block.line, text, "shell"));
    } else if (
      block.tag === "console" ||
      (block.tag === "" && nonBlank.length > 0 && nonBlank.every((l) => l.startsWith("$ ")))
    ) {
      found.push(...promptedCommands(file, block));
    } else if (block.tag === "yaml" || block.tag === "yml") {
      found.push(...workflowRuns(file, block.line, text));
    }
  }
  found.push(...inlineMentions(file, markdown));
  return found.sort((a, b) => a.line - b.line);
}

/** Inline code spans `hallpass …` of the lines outside fenced blocks. */
function inlineMentions(file: string, markdown: string): DocCommand[] {
  const inBlock = new Set<number>();
  for (const block of fencedBlocks(markdown)) {
    for (let line = block.line - 1; line <= block.line + block.lines.length; line++)
      inBlock.add(line);
  }
  const found: DocCommand[] = [];
  markdown.split("\n").forEach((text, index) => {
    const line = index + 1;
    if (inBlock.has(line)) return;
    for (const [, span = ""] of text.matchAll(/`(hallpass [^`]+)`/g)) {
      const words = span.split(/\s+/).filter((w) => w !== "");
      found.push({ file, line, block: 0, source: span, commands: [words], origin: "inline" });
    }
  });
  return found;
}

/** The lines after `$ ` prompts, each with the continuation lines that follow it. */
function promptedCommands(file: string, block: Block): DocCommand[] {
  const found: DocCommand[] = [];
  for (let i = 0; i < block.lines.length; i++) {
    const first = block.lines[i] ?? "";
    if (!first.startsWith("$ ")) continue;
    const lines = [first.slice(2)];
    while (lines.at(-1)?.endsWith("\\") && i + 1 < block.lines.length) {
      i += 1;
      lines.push(block.lines[i] ?? "");
    }
    found.push(
      ...shellCommands(
        file,
        block.line + i - (lines.length - 1),
        lines.join("\n"),
        "shell",
        block.line,
      ),
    );
  }
  return found;
}

/** The `run:` of each step of a workflow (or of a workflow's fragment with `steps`). */
function workflowRuns(file: string, firstLine: number, text: string): DocCommand[] {
  const lineCounter = new LineCounter();
  const document = parseDocument(text, { lineCounter });
  const [error] = document.errors;
  if (error) {
    if (!/^\s*(- )?run:/m.test(text)) return [];
    const at = lineCounter.linePos(error.pos[0]).line;
    const source = text.split("\n")[at - 1]?.trim() ?? "";
    const message = `not valid YAML, so GitHub refuses the workflow: ${error.message.split("\n")[0]}`;
    const line = firstLine + at - 1;
    return [
      { file, line, block: firstLine, source, commands: [], origin: "workflow", error: message },
    ];
  }
  const found: DocCommand[] = [];
  visit(document, {
    Pair(_key, pair, path) {
      if (!isScalar(pair.key) || pair.key.value !== "run") return;
      if (!isScalar(pair.value) || typeof pair.value.value !== "string" || !pair.value.range)
        return;
      // A step: a map in the sequence of a `steps:` key.
      const steps = path[path.length - 3];
      if (!isPair(steps) || !isScalar(steps.key) || steps.key.value !== "steps") return;
      // A block scalar (`run: |`) starts on the line after its indicator.
      const block = pair.value.type === "BLOCK_LITERAL" || pair.value.type === "BLOCK_FOLDED";
      const line = firstLine + lineCounter.linePos(pair.value.range[0]).line - (block ? 0 : 1);
      found.push(...shellCommands(file, line, pair.value.value, "workflow", firstLine));
    },
  });
  return found;
}

/**
 * Splits shell text into logical lines and their simple commands: quotes
 * (`'`, `"`, `\`) removed, `\` + newline joined, comments dropped. It
 * expands nothing: `$VAR` and `$(…)` stay as written.
 */
export function shellCommands(
  file: string,
  firstLine: number,
  text: string,
  origin: DocCommand["origin"],
  block = firstLine,
): DocCommand[] {
  const found: DocCommand[] = [];
  let line = firstLine;
  let start = firstLine;
  let source = "";
  let commands: string[][] = [];
  let words: string[] = [];
  let word: string | null = null;
  let quote: "'" | '"' | null = null;
  const endWord = () => {
    if (word !== null) words.push(word);
    word = null;
  };
  const endCommand = () => {
    endWord();
    if (words.length > 0) commands.push(words);
    words = [];
  };
  const endLine = () => {
    endCommand();
    if (commands.length > 0)
      found.push({ file, line: start, block, source: source.trim(), commands, origin });
    commands = [];
    source = "";
  };
  for (let i = 0; i < text.length; i++) {
    const c = text[i] ?? "";
    const next = text[i + 1] ?? "";
    if (source === "" && quote === null && !/[\s#]/.test(c)) start = line;
    if (c === "\n") line += 1;
    if (quote === "'") {
      source += c;
      if (c === "'") quote = null;
      else word += c;
      continue;
    }
    if (quote === '"') {
      source += c;
      if (c === "\\" && '$`"\\\n'.includes(next)) {
        source += next;
        if (next === "\n") line += 1;
        else word += next;
        i += 1;
      } else if (c === '"') quote = null;
      else word += c;
      continue;
    }
    if (c === "\\" && next === "\n") {
      source += "\\\n";
      line += 1;
      i += 1;
      continue;
    }
    if (c === "#" && word === null) {
      while (i + 1 < text.length && text[i + 1] !== "\n") i += 1;
      continue;
    }
    if (c === "\n") {
      endLine();
      continue;
    }
    source += c;
    if (c === "\\") {
      word = (word ?? "") + next;
      source += next;
      i += 1;
    } else if (c === "'" || c === '"') {
      quote = c;
      word ??= "";
    } else if (c === " " || c === "\t") {
      endWord();
    } else if (c === ";" || c === "&" || c === "|") {
      endCommand();
    } else {
      word = (word ?? "") + c;
    }
  }
  endLine();
  return found;
}
