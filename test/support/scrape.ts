/** `GET /metrics` over HTTP, read as Prometheus reads its text format. */

export interface Scrape {
  readonly status: number;
  readonly text: string;
  /** The sample of `name` with exactly these labels; undefined when there is none. */
  value(name: string, labels?: Record<string, string>): number | undefined;
  /** Every sample of `name`. */
  samples(name: string): Array<{ labels: Record<string, string>; value: number }>;
}

export async function scrape(baseUrl: string): Promise<Scrape> {
  const response = await fetch(`${baseUrl}/metrics`);
  const text = await response.text();
  const all = text
    .split("\n")
    .filter((line) => line !== "" && !line.startsWith("#"))
    .map((line) => {
      const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
      if (!match) throw new Error(`not a sample: ${line}`);
      const labels: Record<string, string> = {};
      for (const [, key, value] of (match[2] ?? "").matchAll(/([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"/g))
        labels[key as string] = value as string;
      return { name: match[1] as string, labels, value: Number(match[3]) };
    });
  const samples = (name: string) =>
    all.filter((s) => s.name === name).map(({ labels, value }) => ({ labels, value }));
  return {
    status: response.status,
    text,
    samples,
    value(name, labels = {}) {
      const wanted = Object.entries(labels);
      return samples(name).find(
        (s) =>
          Object.keys(s.labels).length === wanted.length &&
          wanted.every(([key, value]) => s.labels[key] === value),
      )?.value;
    },
  };
}

/** Scrapes until `ready` holds of a scrape (the state gauges are read again once their cache expires). */
export async function scrapeUntil(
  baseUrl: string,
  ready: (s: Scrape) => boolean,
  timeoutMs = 10_000,
): Promise<Scrape> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const s = await scrape(baseUrl);
    if (ready(s)) return s;
    if (Date.now() > until) throw new Error(`metrics never got there:\n${s.text}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}
