/**
 * CODEOWNERS figures: parse time of a file just under GitHub's 3 MB limit, and
 * owner lookups per second on a 5,000-line file over a mix of file and
 * directory paths. Files are generated (seeded), medians of several runs.
 *
 *   npx tsx bench/codeowners.ts
 */
import { pathToFileURL } from "node:url";
import { CODEOWNERS_MAX_BYTES, ownersOf, parseCodeowners } from "#src/rules/codeowners.js";
import { median, printTable, type Row } from "./support.js";

/** Deterministic pseudo-random numbers (mulberry32). */
function random(seed: number): (n: number) => number {
  let a = seed >>> 0;
  return (n) => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n);
  };
}

const EXTENSIONS = ["ts", "go", "py", "md", "proto", "sql", "yaml", "rs"];

/** One realistic line: mostly anchored directories, some files, globs and comments. */
function line(r: (n: number) => number, i: number): string {
  const svc = `services/svc-${r(400)}`;
  const team = `@acme/team-${r(120)}`;
  const k = r(100);
  if (k < 5) return "";
  if (k < 12) return `# ownership for ${svc}, see runbook ${i}`;
  if (k < 55) return `/${svc}/mod-${r(30)}/ ${team}`;
  if (k < 65) return `/${svc}/ ${team} @user-${r(900)}`;
  if (k < 75) return `/${svc}/mod-${r(30)}/file-${r(50)}.${EXTENSIONS[r(8)]} @user-${r(900)}`;
  if (k < 80) return `*.${EXTENSIONS[r(8)]} ${team} # by language`;
  if (k < 85) return `generated-${r(40)}/ @acme/bots`;
  if (k < 90) return `**/fixtures-${r(40)}/** @acme/qa dev-${r(50)}@example.com`;
  if (k < 95) return `/libs/lib-${r(200)}/**/*.proto @acme/api`;
  return `/docs/area-${r(60)}/* @acme/docs`;
}

export function generateCodeowners(lines: number, seed = 1): string {
  const r = random(seed);
  const out = ["* @acme/eng"];
  for (let i = 1; i < lines; i++) out.push(line(r, i));
  return `${out.join("\n")}\n`;
}

/** A file as close to the limit as whole lines allow, without reaching it. */
function nearLimit(): string {
  const r = random(7);
  const out = ["* @acme/eng"];
  let bytes = out[0]?.length ?? 0;
  for (let i = 1; ; i++) {
    const next = line(r, i);
    if (bytes + next.length + 2 >= CODEOWNERS_MAX_BYTES) break;
    out.push(next);
    bytes += next.length + 1;
  }
  return `${out.join("\n")}\n`;
}

function paths(count: number): string[] {
  const r = random(3);
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const svc = `services/svc-${r(450)}`;
    const k = r(10);
    if (k < 4) out.push(`${svc}/mod-${r(35)}/src/file-${r(60)}.${EXTENSIONS[r(8)]}`);
    else if (k < 6) out.push(`${svc}/mod-${r(35)}/`);
    else if (k < 7) out.push(`${svc}/`);
    else if (k < 8) out.push(`libs/lib-${r(220)}/api/v1/thing.proto`);
    else if (k < 9) out.push(`tools/fixtures-${r(45)}/case-${r(9)}.json`);
    else out.push(`README-${r(9)}.md`);
  }
  return out;
}

function time(fn: () => void): number {
  const start = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - start) / 1e6;
}

export async function benchCodeowners(): Promise<Row[]> {
  const big = nearLimit();
  const bigBytes = Buffer.byteLength(big);
  const bigLines = big.split("\n").length - 1;
  const parseRuns: number[] = [];
  let parsed = parseCodeowners(big);
  for (let i = 0; i < 5; i++) parseRuns.push(time(() => (parsed = parseCodeowners(big))));
  if (parsed.tooLarge || parsed.rules.length === 0) throw new Error("generated file did not load");

  const file = parseCodeowners(generateCodeowners(5000));
  const mix = paths(4096);
  const lookups = (list: string[], ms: number, co = file): number => {
    let done = 0;
    const start = performance.now();
    while (performance.now() - start < ms) {
      for (const p of list) ownersOf(co, p);
      done += list.length;
    }
    return (done / (performance.now() - start)) * 1000;
  };
  const files = mix.filter((p) => !p.endsWith("/"));
  const dirs = mix.filter((p) => p.endsWith("/"));
  // Owned by line 1 only: every rule that could match is tried.
  const lastFile = ["nowhere/else/data.bin"];
  const lastDir = ["nowhere/else/"];
  if (ownersOf(file, lastFile[0] ?? "").status !== "owned") throw new Error("bad case");
  // Worst case: 5,000 unanchored rules, none of which can be ruled out by name.
  const flat = parseCodeowners(
    `* @acme/eng\n${Array.from({ length: 4999 }, (_, i) => `*.x${i} @acme/t${i % 97}`).join("\n")}\n`,
  );
  lookups(mix, 200); // warm-up
  const runs = { mixed: [] as number[], files: [] as number[], dirs: [] as number[] };
  const late = { files: [] as number[], dirs: [] as number[] };
  const worst: number[] = [];
  for (let i = 0; i < 5; i++) {
    runs.mixed.push(lookups(mix, 400));
    runs.files.push(lookups(files, 200));
    runs.dirs.push(lookups(dirs, 200));
    late.files.push(lookups(lastFile, 150));
    late.dirs.push(lookups(lastDir, 150));
    worst.push(lookups(lastFile, 150, flat));
  }
  const smallText = generateCodeowners(5000);
  const smallParse: number[] = [];
  for (let i = 0; i < 5; i++) smallParse.push(time(() => parseCodeowners(smallText)));
  const mb = (bigBytes / 1024 / 1024).toFixed(2);
  return [
    {
      name: "codeowners parse, file just under 3 MB",
      value: median(parseRuns),
      unit: "ms",
      note: `${mb} MB, ${bigLines} lines, median of 5`,
    },
    {
      name: "codeowners parse, 5,000-line file",
      value: median(smallParse),
      unit: "ms",
      note: `${Buffer.byteLength(smallText)} bytes, median of 5`,
    },
    {
      name: "codeowners lookups, 5,000-line file, mixed paths",
      value: median(runs.mixed),
      unit: "lookups/s",
      note: `${files.length} files and ${dirs.length} directories, median of 5`,
    },
    { name: "codeowners lookups, file paths", value: median(runs.files), unit: "lookups/s" },
    { name: "codeowners lookups, directory paths", value: median(runs.dirs), unit: "lookups/s" },
    {
      name: "codeowners lookups, file owned by line 1 only",
      value: median(late.files),
      unit: "lookups/s",
      note: "every rule that could match is tried",
    },
    {
      name: "codeowners lookups, directory owned by line 1 only",
      value: median(late.dirs),
      unit: "lookups/s",
      note: "every rule that could match is tried",
    },
    {
      name: "codeowners lookups, worst case",
      value: median(worst),
      unit: "lookups/s",
      note: "5,000 unanchored rules, owned by line 1: all are tried",
    },
  ];
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  printTable("CODEOWNERS", await benchCodeowners());
}
