import { parseDuration } from "#src/rules/duration.js";

/** A command given in a new comment on a ticket. */
export type Command =
  | { readonly name: "approve" }
  | { readonly name: "deny"; readonly reason: string }
  | { readonly name: "revoke" }
  | { readonly name: "done" }
  | { readonly name: "extend"; readonly seconds: number; readonly text: string }
  | { readonly name: "break-glass"; readonly reason: string }
  | { readonly name: "status" };

export type CommandResult =
  | { readonly ok: true; readonly command: Command }
  | { readonly ok: false; readonly command: `/${Command["name"]}`; readonly problem: string };

/** Every command's name, as it follows the `/`. */
export const COMMAND_NAMES = [
  "approve",
  "deny",
  "revoke",
  "done",
  "extend",
  "break-glass",
  "status",
] as const satisfies readonly Command["name"][];
const MAX_REASON = 500;

/**
 * Reads the command of a comment: its first non-blank line, which must start
 * with `/name`. Anything else (a quoted `> /approve`, a command further down,
 * inside a code block) is not a command: null. A known command with bad
 * arguments is a problem to answer, not a guess.
 *
 * @example parseCommand("/extend 30m") // { ok: true, command: { name: "extend", seconds: 1800, text: "30m" } }
 */
export function parseCommand(body: string | null | undefined): CommandResult | null {
  const first = (body ?? "")
    .replace(/\r\n?/g, "\n")
    .split("\n")
    .find((line) => line.trim() !== "");
  const match = /^\/([a-z-]+)(?:[ \t]+(.*))?$/.exec(first?.trim() ?? "");
  if (!match) return null;
  const name = match[1] as string;
  const args = (match[2] ?? "").trim();
  if (!(COMMAND_NAMES as readonly string[]).includes(name)) return null;
  const fail = (problem: string): CommandResult => ({
    ok: false,
    command: `/${name as Command["name"]}`,
    problem,
  });
  switch (name) {
    case "approve":
    case "revoke":
    case "done":
    case "status":
      if (args !== "") return fail(`/${name} takes no arguments`);
      return { ok: true, command: { name } };
    case "deny":
    case "break-glass": {
      if (args.length < 3)
        return fail(
          `/${name} needs a reason, e.g. \`/${name} ${name === "deny" ? "too broad for this task" : "checkout is down, INC-1234"}\``,
        );
      return { ok: true, command: { name, reason: args.slice(0, MAX_REASON) } };
    }
    case "extend": {
      const duration = parseDuration(args);
      if (!duration.ok)
        return fail(`/extend needs a duration such as \`30m\` or \`1h\`: ${duration.message}`);
      return { ok: true, command: { name: "extend", seconds: duration.seconds, text: args } };
    }
    default:
      return null;
  }
}
