/**
 * Comments through the command parser: only a comment whose first non-blank
 * line is exactly a command acts, a known command with bad arguments is a
 * problem (never a guess), and nothing a commenter writes makes it throw.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseCommand } from "#src/rules/command.js";
import { MAX_DURATION_SECONDS } from "#src/rules/duration.js";
import { anyText, mutated, runs } from "../support/fuzz.js";

const NAMES = ["approve", "deny", "revoke", "done", "extend", "break-glass", "status"];
const BARE = new Set(["approve", "revoke", "done", "status"]);

/** Lines that look like commands, nearly or exactly. */
const commandLine = fc.oneof(
  fc.constantFrom(
    "/approve",
    " /approve ",
    "\t/approve\t",
    "/approve please",
    "/APPROVE",
    "/approve\u200B",
    "/аpprove", // Cyrillic а
    "//approve",
    "> /approve",
    "`/approve`",
    "/deny too broad for this",
    "/deny",
    "/deny ab",
    "/extend 30m",
    "/extend 1.5h",
    "/extend",
    "/extend 400d",
    "/break-glass checkout is down, INC-1234",
    "/status",
    "/statuses",
    "/revoke now",
  ),
  fc
    .tuple(fc.constantFrom(...NAMES), fc.constantFrom("", " ", "\t", "  "), anyText(30))
    .map(([name, gap, rest]) => `/${name}${gap}${rest}`),
  mutated("/approve", 2),
  mutated("/extend 30m", 2),
);

const comment = fc.oneof(
  anyText(300),
  commandLine,
  fc
    .tuple(fc.array(fc.constantFrom("", " ", "\t", "\r", "\r\n"), { maxLength: 3 }), commandLine)
    .map(([blanks, line]) => `${blanks.join("\n")}\n${line}`),
  fc.tuple(commandLine, anyText(200)).map(([line, rest]) => `${line}\n${rest}`),
  fc.tuple(anyText(40), commandLine).map(([first, line]) => `${first}\n${line}`),
);

/** The first line that is not blank, as the parser reads it. */
function firstLine(body: string): string | undefined {
  return body
    .replace(/\r\n?/g, "\n")
    .split("\n")
    .find((line) => line.trim() !== "");
}

describe("comments through the command parser", () => {
  it("answers every comment; what it accepts is exactly a command on the first line", () => {
    fc.assert(
      fc.property(comment, (body) => {
        const result = parseCommand(body);
        if (result === null) return;
        const first = (firstLine(body) ?? "").trim();
        if (!result.ok) {
          expect(NAMES.map((n) => `/${n}`)).toContain(result.command);
          expect(first.startsWith(result.command)).toBe(true);
          expect(result.problem.length).toBeGreaterThan(0);
          expect(result.problem.length).toBeLessThan(500);
          return;
        }
        const { command } = result;
        expect(
          first === `/${command.name}` ||
            first.startsWith(`/${command.name} `) ||
            first.startsWith(`/${command.name}\t`),
        ).toBe(true);
        if (BARE.has(command.name)) expect(first).toBe(`/${command.name}`);
        if (command.name === "deny" || command.name === "break-glass") {
          expect(command.reason.length).toBeGreaterThanOrEqual(3);
          expect(command.reason.length).toBeLessThanOrEqual(500);
        }
        if (command.name === "extend") {
          expect(Number.isSafeInteger(command.seconds)).toBe(true);
          expect(command.seconds).toBeGreaterThan(0);
          expect(command.seconds).toBeLessThanOrEqual(MAX_DURATION_SECONDS);
        }
      }),
      { numRuns: runs(300) },
    );
  });

  it("reads only the first non-blank line: what follows it changes nothing", () => {
    fc.assert(
      fc.property(commandLine, anyText(200), (line, rest) => {
        fc.pre(!/[\r\n]/.test(line) && line.trim() !== "");
        expect(parseCommand(`${line}\n${rest}`)).toEqual(parseCommand(line));
      }),
      { numRuns: runs(200) },
    );
  });

  it("never acts on a command that is not the first thing said", () => {
    fc.assert(
      fc.property(
        fc.oneof(anyText(40), fc.constantFrom("> ", "thanks!", "`", "-", "1.")),
        commandLine,
        (before, line) => {
          fc.pre(!/[\r\n]/.test(before) && before.trim() !== "" && !before.trim().startsWith("/"));
          expect(parseCommand(`${before}${line}`)).toBeNull();
        },
      ),
      { numRuns: runs(200) },
    );
  });
});
