/** One figure of a benchmark. */
export interface Row {
  readonly name: string;
  readonly value: number;
  readonly unit: string;
  readonly note?: string;
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[mid] ?? 0) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
}

export function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return (
    sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? 0
  );
}

export function printTable(title: string, rows: readonly Row[]): void {
  const format = (v: number) =>
    v >= 100 ? Math.round(v).toLocaleString("en-US") : v.toFixed(v >= 10 ? 1 : 2);
  const cells = rows.map((r) => [r.name, format(r.value), r.unit, r.note ?? ""]);
  const widths = [0, 1, 2, 3].map((i) => Math.max(...cells.map((c) => (c[i] ?? "").length), 4));
  console.log(`\n${title}`);
  for (const c of cells) {
    console.log(
      `  ${(c[0] ?? "").padEnd(widths[0] ?? 0)}  ${(c[1] ?? "").padStart(widths[1] ?? 0)} ${(c[2] ?? "").padEnd(widths[2] ?? 0)}  ${c[3] ?? ""}`,
    );
  }
}

/** The Postgres to measure against, if one answers. */
export function benchDatabaseUrl(): string | undefined {
  return process.env.BENCH_DATABASE_URL || process.env.TEST_DATABASE_URL || undefined;
}
