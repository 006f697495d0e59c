import { Counter, Gauge, type Registry } from "prom-client";
import type { ProxyOutcome } from "#src/store/usage.js";

/** What the proxy's metrics read at scrape time. */
export interface ProxyGauges {
  /** Milliseconds since the live grant view last heard everything; Infinity before it ever did. */
  liveAge(): number;
  liveGrants(): number;
  liveReads(): { readonly resyncs: number; readonly lookups: number; readonly heartbeats: number };
  usageBacklog(): number;
  usageCounters(): Readonly<Record<UsageEvent, number>>;
  verifications(): number;
}

export type UsageEvent =
  | "flushes"
  | "flushFailures"
  | "rowsWritten"
  | "dropped"
  | "shed"
  | "durableWrites";

const USAGE_EVENTS: Readonly<Record<UsageEvent, string>> = {
  flushes: "flush",
  flushFailures: "flush_failure",
  rowsWritten: "row_written",
  dropped: "dropped",
  shed: "shed",
  durableWrites: "durable_write",
};

const OUTCOMES: readonly ProxyOutcome[] = ["forwarding", "forwarded", "denied", "failed"];

/** Upper bounds of the upstream latency histogram, seconds. */
const BUCKETS = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
];

interface Tally {
  readonly labels: Record<string, string>;
  n: number;
}

/**
 * The proxy's metrics, on the server's registry. The hot path only adds to
 * plain counters in memory (a request costs a map look-up and an addition);
 * they are handed to prom-client when Prometheus scrapes. prom-client's own
 * `inc` and `observe` validate and hash their labels on every call, which
 * the proxy cannot afford per request.
 */
export class ProxyMetrics {
  /** Resource → outcome and status → tally: no key is built per request. */
  readonly #requests = new Map<string, Map<number, Tally>>();
  readonly #refusals = new Map<string, Tally>();
  readonly #latency = new Map<string, { buckets: Float64Array; sum: number; count: number }>();

  constructor(registry: Registry, gauges: () => ProxyGauges | null) {
    const registers = [registry];
    const requests = this.#requests;
    const refusals = this.#refusals;
    new Counter({
      name: "hallpass_proxy_requests_total",
      help: "Requests through the proxy, by resource, outcome (forwarded, denied, failed) and the status class the caller got",
      labelNames: ["resource", "outcome", "status_class"],
      registers,
      collect() {
        this.reset();
        for (const byStatus of requests.values()) {
          for (const t of byStatus.values()) this.inc(t.labels, t.n);
        }
      },
    });
    new Counter({
      name: "hallpass_proxy_refusals_total",
      help: "Requests the proxy refused or could not forward, by resource and reason (an error code)",
      labelNames: ["resource", "reason"],
      registers,
      collect() {
        this.reset();
        for (const t of refusals.values()) this.inc(t.labels, t.n);
      },
    });
    const latency = this.#latency;
    const histogram = {
      name: "hallpass_proxy_upstream_duration_seconds",
      help: "From forwarding a request to the upstream's response headers",
      type: "histogram",
      aggregator: "sum",
      async get() {
        const name = histogram.name;
        const values: Array<{
          labels: Record<string, string | number>;
          value: number;
          metricName: string;
        }> = [];
        for (const [resource, h] of latency) {
          let cumulative = 0;
          for (const [i, le] of BUCKETS.entries()) {
            cumulative += h.buckets[i] ?? 0;
            values.push({
              labels: { le, resource },
              value: cumulative,
              metricName: `${name}_bucket`,
            });
          }
          values.push({
            labels: { le: "+Inf", resource },
            value: h.count,
            metricName: `${name}_bucket`,
          });
          values.push({ labels: { resource }, value: h.sum, metricName: `${name}_sum` });
          values.push({ labels: { resource }, value: h.count, metricName: `${name}_count` });
        }
        return { ...histogram, values };
      },
    };
    // A metric prom-client serialises like its own histograms (name, type and `get()`).
    registry.registerMetric(histogram as unknown as Parameters<Registry["registerMetric"]>[0]);
    new Gauge({
      name: "hallpass_live_grants_age_seconds",
      help: "Since the live grant view last proved it had heard every change (past its bound the proxy refuses); -1 before it ever did",
      registers,
      collect() {
        const age = gauges()?.liveAge();
        this.set(age === undefined || !Number.isFinite(age) ? -1 : age / 1000);
      },
    });
    new Gauge({
      name: "hallpass_live_grants",
      help: "Active grants in the live grant view",
      registers,
      collect() {
        this.set(gauges()?.liveGrants() ?? 0);
      },
    });
    new Counter({
      name: "hallpass_live_grants_reads_total",
      help: "Database reads of the live grant view, by kind (resync, lookup of a grant it did not hold, heartbeat)",
      labelNames: ["kind"],
      registers,
      collect() {
        const reads = gauges()?.liveReads();
        this.reset();
        if (!reads) return;
        this.inc({ kind: "resync" }, reads.resyncs);
        this.inc({ kind: "lookup" }, reads.lookups);
        this.inc({ kind: "heartbeat" }, reads.heartbeats);
      },
    });
    new Gauge({
      name: "hallpass_proxy_usage_backlog",
      help: "Usage rows waiting to be written",
      registers,
      collect() {
        this.set(gauges()?.usageBacklog() ?? 0);
      },
    });
    new Counter({
      name: "hallpass_proxy_usage_total",
      help: "Usage writer events: batches written, failed batches, rows written, refusals left unrecorded for lack of room, reads shed, rows written before forwarding",
      labelNames: ["event"],
      registers,
      collect() {
        const counters = gauges()?.usageCounters();
        this.reset();
        if (!counters) return;
        for (const [key, event] of Object.entries(USAGE_EVENTS)) {
          this.inc({ event }, counters[key as UsageEvent]);
        }
      },
    });
    new Counter({
      name: "hallpass_proxy_token_verifications_total",
      help: "Signature verifications of hallpass tokens (a token seen before costs none)",
      registers,
      collect() {
        this.reset();
        this.inc(gauges()?.verifications() ?? 0);
      },
    });
  }

  /** One finished request. */
  request(resource: string, outcome: ProxyOutcome, status: number | null): void {
    const statusClass = status === null || status < 100 || status > 599 ? 0 : (status / 100) | 0;
    let byStatus = this.#requests.get(resource);
    if (!byStatus) {
      byStatus = new Map();
      this.#requests.set(resource, byStatus);
    }
    const key = OUTCOMES.indexOf(outcome) * 10 + statusClass;
    const found = byStatus.get(key);
    if (found) {
      found.n++;
      return;
    }
    byStatus.set(key, {
      labels: { resource, outcome, status_class: statusClass === 0 ? "none" : `${statusClass}xx` },
      n: 1,
    });
  }

  refusal(resource: string, reason: string): void {
    tally(this.#refusals, `${resource} ${reason}`, () => ({ resource, reason }));
  }

  /** Time from forwarding to the upstream's response headers, in milliseconds. */
  upstream(resource: string, ms: number): void {
    let h = this.#latency.get(resource);
    if (!h) {
      h = { buckets: new Float64Array(BUCKETS.length), sum: 0, count: 0 };
      this.#latency.set(resource, h);
    }
    const seconds = ms / 1000;
    const i = BUCKETS.findIndex((bound) => seconds <= bound);
    if (i !== -1) h.buckets[i] = (h.buckets[i] ?? 0) + 1;
    h.sum += seconds;
    h.count++;
  }
}

function tally(map: Map<string, Tally>, key: string, labels: () => Record<string, string>): void {
  const found = map.get(key);
  if (found) found.n++;
  else map.set(key, { labels: labels(), n: 1 });
}
