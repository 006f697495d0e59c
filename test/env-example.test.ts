import { readFileSync } from "node:fs";
import { parseEnv } from "node:util";
import { describe, expect, it } from "vitest";

const example = readFileSync(".env.example", "utf8");

/** The variables of the README's configuration table: the first column's names. */
function readmeVariables(): string[] {
  const readme = readFileSync("README.md", "utf8");
  const table = readme.slice(readme.indexOf("| variable | default | meaning |"));
  const rows = table.slice(0, table.indexOf("\n\n")).split("\n").slice(2);
  return rows.flatMap((row) =>
    [...(row.split("|")[1] ?? "").matchAll(/`([A-Z_]+)`/g)].map((m) => m[1] ?? ""),
  );
}

describe(".env.example", () => {
  it("has a line for every variable of the README's table", () => {
    const variables = readmeVariables();
    expect(variables.length).toBeGreaterThan(20);
    const missing = variables.filter((name) => !new RegExp(`^# ${name}=`, "m").test(example));
    expect(missing).toEqual([]);
  });

  it("sets nothing as it is: every variable is commented out, and no value is a secret", () => {
    expect(parseEnv(example)).toEqual({});
    for (const name of [
      "HALLPASS_MASTER_KEY",
      "PRIVATE_KEY",
      "WEBHOOK_SECRET",
      "GITHUB_CLIENT_SECRET",
    ]) {
      expect(example).toMatch(new RegExp(`^# ${name}=$`, "m"));
    }
  });
});
