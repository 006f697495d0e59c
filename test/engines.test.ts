import { readFileSync } from "node:fs";
import semver from "semver";
import { describe, expect, it } from "vitest";

const pkg = JSON.parse(readFileSync("package.json", "utf8")) as { engines: { node: string } };
const lock = JSON.parse(readFileSync("package-lock.json", "utf8")) as {
  packages: Record<string, { engines?: { node?: string } | string[]; dev?: boolean }>;
};
const allowed = pkg.engines.node;

describe("the Node.js versions hallpass claims", () => {
  it("are each supported by every dependency it installs, runtime and development", () => {
    expect(semver.validRange(allowed)).not.toBeNull();
    const refusing = Object.entries(lock.packages)
      .filter(([path]) => path !== "")
      .flatMap(([path, entry]) => {
        const range = Array.isArray(entry.engines) ? undefined : entry.engines?.node;
        if (!range) return [];
        // Every version `allowed` admits must satisfy the dependency's range, not just the lowest.
        return semver.subset(allowed, range) ? [] : [`${path} needs node ${range}`];
      });
    expect(refusing).toEqual([]);
  });

  it("include the one the tests run on, and are what the README says", () => {
    expect(semver.satisfies(process.version, allowed)).toBe(true);
    expect(readFileSync("README.md", "utf8")).toContain(`\`${allowed}\``);
  });
});
