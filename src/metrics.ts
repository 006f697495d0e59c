import { createRequire } from "node:module";
import type { FastifyPluginAsync } from "fastify";
import { Registry } from "prom-client";

/**
 * prom-client's default process metrics, all but one: its garbage
 * collection histogram observes every collection through a
 * PerformanceObserver, which cost the proxy 12 % of its throughput under
 * load (`npm run bench -- proxy`, 6 100 vs 7 000 req/s). prom-client offers
 * no switch for it, so the collectors are registered one by one.
 */
const PROCESS_METRICS = [
  "processCpuTotal",
  "processStartTime",
  "osMemoryHeap",
  "processOpenFileDescriptors",
  "processMaxFileDescriptors",
  "eventLoopLag",
  "processHandles",
  "processRequests",
  "heapSizeAndUsed",
  "heapSpacesSizeAndUsed",
  "version",
] as const;

type Collector = (registry: Registry, config: Record<string, unknown>) => void;
const require = createRequire(import.meta.url);

/**
 * The process's one Prometheus registry: every part of the server registers
 * its metrics here (prefixed `hallpass_`), and `GET /metrics` on the main
 * port serves them, with Node's process metrics.
 *
 * @example
 * const metrics = createMetrics();
 * new Counter({ name: "hallpass_x_total", help: "...", registers: [metrics] });
 */
export function createMetrics(): Registry {
  const registry = new Registry();
  for (const name of PROCESS_METRICS) {
    const collect = require(`prom-client/lib/metrics/${name}`) as Collector;
    collect(registry, { prefix: "hallpass_", eventLoopMonitoringPrecision: 10 });
  }
  return registry;
}

export const METRICS_PATH = "/metrics";

/** `GET /metrics` in Prometheus's text format. */
export function metricsRoute(registry: Registry): FastifyPluginAsync {
  return async (app) => {
    app.get(METRICS_PATH, async (_request, reply) => {
      reply.header("content-type", registry.contentType);
      reply.header("cache-control", "no-store");
      return registry.metrics();
    });
  };
}
