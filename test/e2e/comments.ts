/**
 * Reading hallpass's comments as a person on the ticket does: the heading,
 * the usage tables of a closing comment, the audit event in the footer.
 */

/** A comment hallpass posted, as a reader of the ticket sees it. */
export interface PostedNotice {
  /** The heading, without `### `: `✅ Access granted`. */
  readonly heading: string;
  readonly body: string;
}

/** A row of a closing comment's proxy usage table. */
export interface UsageRow {
  readonly endpoint: string;
  readonly requests: number;
  readonly "2xx": number;
  readonly "3xx": number;
  readonly "4xx": number;
  readonly "5xx": number;
  readonly refused: number;
}

/**
 * The proxy usage table of a closing comment, row by row (`Proxy endpoint`
 * is the endpoint's cell as shown, backticks removed).
 */
export function usageRows(body: string): UsageRow[] {
  const lines = body.split("\n");
  const start = lines.findIndex((l) => l.startsWith("| Proxy endpoint |"));
  if (start < 0) return [];
  const rows: UsageRow[] = [];
  for (const line of lines.slice(start + 2)) {
    if (!line.startsWith("|")) break;
    const cells = line
      .split("|")
      .slice(1, -1)
      .map((c) => c.trim());
    const [endpoint = "", ...counts] = cells;
    const [requests, c2, c3, c4, c5, refused] = counts.map(Number) as number[];
    rows.push({
      endpoint: endpoint.replace(/`/g, ""),
      requests: requests ?? 0,
      "2xx": c2 ?? 0,
      "3xx": c3 ?? 0,
      "4xx": c4 ?? 0,
      "5xx": c5 ?? 0,
      refused: refused ?? 0,
    });
  }
  return rows;
}

/** The tokens table of a closing comment: `[channel, subject, actor, run, count]` per row. */
export function tokenRows(body: string): string[][] {
  const lines = body.split("\n");
  const start = lines.findIndex((l) => l.startsWith("| Channel |"));
  if (start < 0) return [];
  const rows: string[][] = [];
  for (const line of lines.slice(start + 2)) {
    if (!line.startsWith("|")) break;
    rows.push(
      line
        .split("|")
        .slice(1, -1)
        .map((c) => c.trim().replace(/`/g, "")),
    );
  }
  return rows;
}

/** The usage table row of `requests` requests to `endpoint`, all forwarded (2xx) or all refused by hallpass (4xx). */
export function usage(endpoint: string, requests: number, klass: "2xx" | "4xx"): UsageRow {
  return {
    endpoint,
    requests,
    "2xx": klass === "2xx" ? requests : 0,
    "3xx": 0,
    "4xx": klass === "4xx" ? requests : 0,
    "5xx": 0,
    refused: klass === "4xx" ? requests : 0,
  };
}

/** The full sha256 a comment's footer gives for its audit event. */
export function auditHashOf(body: string): string | null {
  return /full: <code>([0-9a-f]{64})<\/code>/.exec(body)?.[1] ?? null;
}
