import { describe, expect, it } from "vitest";
import type { PolicyResult } from "#src/rules/policy.js";
import {
  formatPolicyError,
  HOME_POLICY,
  loadPolicy,
  ORG_POLICY,
  POLICY_MAX_FILES,
  type PolicyRead,
  type PolicySource,
  type PolicyTarget,
  parseExtends,
} from "#src/rules/policy-load.js";

const POLICY = `resources:
  payments-api:
    path: services/payments/
    scopes:
      read: ["GET /v1/**"]
`;

/**
 * Files by `owner/repo:path`, read as the server reads them, for the
 * repository acme/payments; `reads` lists what was asked for.
 */
function source(files: Record<string, string | PolicyRead>, orgFallback = true) {
  const reads: string[] = [];
  const keyOf = (t: PolicyTarget) =>
    `${t.owner ?? "acme"}/${t.repo ?? "payments"}:${t.path}`.toLowerCase();
  const memory: PolicySource = {
    orgFallback,
    async read(target) {
      reads.push(keyOf(target));
      return files[keyOf(target)] ?? null;
    },
  };
  return { source: memory, reads };
}

function errorsOf(result: PolicyResult | null): string[] {
  if (result === null) throw new Error("expected a policy");
  if (result.ok) throw new Error("expected errors");
  return result.errors.map(formatPolicyError);
}

const HOME = "acme/payments:.github/hallpass.yml";
const ORG = "acme/.github:.github/hallpass.yml";

describe("loadPolicy", () => {
  it("reads the repository's file alone when it extends nothing", async () => {
    const { source: s, reads } = source({ [HOME]: POLICY, [ORG]: "label: org\n" });
    const loaded = await loadPolicy(s);
    expect(loaded.result?.ok).toBe(true);
    expect(loaded.files).toEqual([HOME_POLICY]);
    expect(reads).toEqual([HOME]);
  });

  it("falls back to the organization's .github, and not for .github itself", async () => {
    const org = await loadPolicy(source({ [ORG]: `label: org\n${POLICY}` }).source);
    expect(org.result?.ok && org.result.policy.label).toBe("org");
    expect(org.files).toEqual([ORG_POLICY]);
    expect(org.where(["label"])).toEqual({ file: ".github:.github/hallpass.yml", line: 1 });

    const none = await loadPolicy(source({ [ORG]: POLICY }, false).source);
    expect(none).toMatchObject({ result: null, files: [] });
    expect((await loadPolicy(source({}).source)).result).toBeNull();
  });

  it("follows _extends in every form Probot documents, owner-less names staying with their file's owner", async () => {
    const { source: s, reads } = source({
      [HOME]: `_extends: .github\n${POLICY}`,
      [ORG]: "_extends: other/base\nlabel: org\n",
      "other/base:.github/hallpass.yml": "_extends: shared:policies/hallpass.yaml\nlabel: base\n",
      "other/shared:policies/hallpass.yaml": "label: shared\nunknown: 1\n",
    });
    const loaded = await loadPolicy(s);
    expect(reads).toEqual([
      HOME,
      ORG,
      "other/base:.github/hallpass.yml",
      "other/shared:policies/hallpass.yaml",
    ]);
    expect(loaded.files.map((f) => f.file)).toEqual([
      ".github/hallpass.yml",
      ".github:.github/hallpass.yml",
      "other/base:.github/hallpass.yml",
      "other/shared:policies/hallpass.yaml",
    ]);
    // label from the nearest file that sets it; the unknown key named where it is written.
    expect(errorsOf(loaded.result)).toEqual([
      'other/shared:policies/hallpass.yaml:2: unknown: unknown key "unknown"',
    ]);
  });

  it("refuses a cycle, at the _extends that closes it", async () => {
    const { source: s } = source({
      [HOME]: `_extends: .github\n${POLICY}`,
      [ORG]: "# org\n_extends: base\n",
      "acme/base:.github/hallpass.yml": "_extends: .github\n",
    });
    expect(errorsOf((await loadPolicy(s)).result)).toEqual([
      "base:.github/hallpass.yml:1: _extends: .github:.github/hallpass.yml is already in the chain " +
        "(.github/hallpass.yml → .github:.github/hallpass.yml → base:.github/hallpass.yml → " +
        ".github:.github/hallpass.yml): a cycle",
    ]);
  });

  it("knows files by the names the chain gives them: a cycle through two names of one file ends one step later", async () => {
    const { source: s, reads } = source({
      [HOME]: `_extends: .github\n${POLICY}`,
      [ORG]: "_extends: acme/base\n",
      "acme/base:.github/hallpass.yml": "_extends: .github\n", // acme/.github: the same file
    });
    expect(errorsOf((await loadPolicy(s)).result)).toEqual([
      "acme/.github:.github/hallpass.yml:1: _extends: acme/base:.github/hallpass.yml is already in the chain " +
        "(.github/hallpass.yml → .github:.github/hallpass.yml → acme/base:.github/hallpass.yml → " +
        "acme/.github:.github/hallpass.yml → acme/base:.github/hallpass.yml): a cycle",
    ]);
    expect(reads).toEqual([HOME, ORG, "acme/base:.github/hallpass.yml", ORG]);
    const self = source({ [HOME]: `_extends: payments\n${POLICY}` });
    expect(errorsOf((await loadPolicy(self.source)).result)).toEqual([
      "payments:.github/hallpass.yml:1: _extends: payments:.github/hallpass.yml is already in the chain " +
        "(.github/hallpass.yml → payments:.github/hallpass.yml → payments:.github/hallpass.yml): a cycle",
    ]);
  });

  it(`stops at ${POLICY_MAX_FILES} files`, async () => {
    const files: Record<string, string> = { [HOME]: `_extends: r1\n${POLICY}` };
    for (let i = 1; i <= POLICY_MAX_FILES; i++)
      files[`acme/r${i}:.github/hallpass.yml`] = `_extends: r${i + 1}\n`;
    const errors = errorsOf((await loadPolicy(source(files).source)).result);
    expect(errors).toEqual([
      `r${POLICY_MAX_FILES - 1}:.github/hallpass.yml:1: _extends: .github/hallpass.yml → ` +
        `${Array.from({ length: POLICY_MAX_FILES }, (_, i) => `r${i + 1}:.github/hallpass.yml`).join(" → ")}` +
        ` is longer than ${POLICY_MAX_FILES} files`,
    ]);
  });

  it("refuses an _extends naming a file that does not exist, instead of ignoring it", async () => {
    const errors = errorsOf(
      (await loadPolicy(source({ [HOME]: `${POLICY}_extends: gone\n` }).source)).result,
    );
    expect(errors).toEqual([
      ".github/hallpass.yml:6: _extends: gone:.github/hallpass.yml does not exist (or hallpass cannot read it)",
    ]);
  });

  it("says when a file cannot be read offline", async () => {
    const extended = source({ [HOME]: `_extends: .github\n${POLICY}`, [ORG]: "offline" });
    expect(errorsOf((await loadPolicy(extended.source)).result)).toEqual([
      ".github/hallpass.yml:1: _extends: policy check cannot read .github:.github/hallpass.yml offline, so the merged policy is not checked",
    ]);
    const fallback = source({ [ORG]: "offline" });
    expect(errorsOf((await loadPolicy(fallback.source)).result)).toEqual([
      ".github/hallpass.yml: no policy file; the server would use the organization's (.github:.github/hallpass.yml), which policy check cannot read offline",
    ]);
  });

  it("parses every file strictly: aliases, syntax, size, named by file and line", async () => {
    const aliased = source({
      [HOME]: `_extends: .github\n${POLICY}`,
      [ORG]: "x: &a hallpass\nlabel: *a\n",
    });
    expect(errorsOf((await loadPolicy(aliased.source)).result)).toEqual([
      ".github:.github/hallpass.yml:2: YAML aliases (*name) are not allowed: write each value out",
    ]);
    const broken = source({ [ORG]: "label: [\n" });
    expect(errorsOf((await loadPolicy(broken.source)).result)[0]).toMatch(
      /^\.github:\.github\/hallpass\.yml:\d+: YAML: /,
    );
    const huge = source({ [HOME]: { tooLarge: true, bytes: 2_000_000 } });
    expect(errorsOf((await loadPolicy(huge.source)).result)).toEqual([
      ".github/hallpass.yml: file is 2,000,000 bytes, too large to be a policy",
    ]);
    const list = source({ [HOME]: "_extends: .github\nlabel: x\n", [ORG]: "- a\n" });
    expect(errorsOf((await loadPolicy(list.source)).result)).toEqual([
      '.github:.github/hallpass.yml:1: the file must be a mapping with "label" and "resources", got a list',
    ]);
  });
});

describe("parseExtends", () => {
  it.each([
    [".github", { owner: null, repo: ".github", path: ".github/hallpass.yml" }],
    ["acme/.github", { owner: "acme", repo: ".github", path: ".github/hallpass.yml" }],
    ["base:policies/hallpass.yaml", { owner: null, repo: "base", path: "policies/hallpass.yaml" }],
    ["o/base:a/b.yml", { owner: "o", repo: "base", path: "a/b.yml", file: "o/base:a/b.yml" }],
  ])("reads %s", (value, expected) => {
    const parsed = parseExtends(value, HOME_POLICY);
    expect(parsed.ok && parsed.target).toMatchObject(expected);
  });

  it("keeps the owner of the file that names an owner-less repository", () => {
    const from = parseExtends("other/base", HOME_POLICY);
    if (!from.ok) throw new Error(from.message);
    expect(parseExtends("shared", from.target)).toMatchObject({
      ok: true,
      target: { owner: "other", repo: "shared", file: "other/shared:.github/hallpass.yml" },
    });
  });

  it.each([
    [42, /got a number/],
    [null, /got null/],
    ["", /^expected repo/],
    ["a b", /^expected repo/],
    ["repo:file.json", /^expected repo/],
    ["-bad/repo", /^expected repo/],
    ["..", /no such repository/],
    ["repo:../secrets.yml", /\.\. segments/],
    ["repo:a//b.yml", /empty/],
  ])("refuses %j", (value, message) => {
    const parsed = parseExtends(value, HOME_POLICY);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.message).toMatch(message);
  });
});
