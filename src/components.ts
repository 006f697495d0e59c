import type { Probot } from "probot";
import type { AppMetrics } from "#src/app-metrics.js";
import type { Config } from "#src/config.js";
import type { GitHub } from "#src/github/api.js";
import { startDeliveryWorker } from "#src/github/delivery-worker.js";
import { startRedelivery } from "#src/github/redeliver.js";
import type { Logger } from "#src/log.js";
import type { Operator } from "#src/operator.js";
import type { Component, StartComponent } from "#src/runtime.js";
import { deriveKey } from "#src/secret.js";
import { ticketsApp } from "#src/tickets/app.js";
import type { LifecycleDeps } from "#src/tickets/context.js";
import { appIdentity, startOutboxWorker } from "#src/tickets/outbox-worker.js";
import { startSweeper } from "#src/tickets/sweeper.js";
import { loadMasterKey } from "#src/tokens/master-key.js";

export interface GitHubComponentOptions {
  readonly config: Config;
  readonly log: Logger;
  readonly operator: Operator;
  /** The App (see `createGitHubApp`); the ticket lifecycle is loaded into it at start. */
  readonly probot: Probot;
  readonly now?: () => Date;
  readonly warnBeforeS?: number;
  readonly sweepIntervalMs?: number;
  readonly workerIdleMs?: number;
  /** See `DeliveryWorkerOptions.maxAttempts`. */
  readonly deliveryAttempts?: number;
  /** Look for missed deliveries every this often; 0 turns it off. */
  readonly redeliveryIntervalMs?: number;
  /** See `OutboxWorkerOptions.writeIntervalMs`. */
  readonly writeIntervalMs?: number;
  /** See `OutboxWorkerOptions.usageSettleMs`. */
  readonly usageSettleMs?: number;
  /** The counters of approvals, commands, deliveries and outbox writes. */
  readonly metrics?: AppMetrics;
}

/** Ten minutes, as the specification sets it. */
export const DEFAULT_WARN_BEFORE_S = 600;

/**
 * The GitHub App side of the server, started once the database is ready: the
 * Probot app with the ticket lifecycle, the webhook delivery worker, the
 * replay of deliveries GitHub made while hallpass was away, and the sweeper
 * that expires, warns and cancels stale requests.
 */
export function gitHubComponent(options: GitHubComponentOptions): StartComponent {
  return async (db): Promise<Component> => {
    const { config, log, probot } = options;
    const now = options.now ?? (() => new Date());
    const deps: LifecycleDeps = {
      db,
      log: log.child({ component: "tickets" }),
      operator: options.operator.config,
      serverUrl: config.publicUrl,
      warnBeforeS: options.warnBeforeS ?? DEFAULT_WARN_BEFORE_S,
      now,
      ...(options.metrics ? { metrics: options.metrics } : {}),
    };
    await probot.load(ticketsApp(deps));
    // The token service, started first, has checked this key against the database.
    const masterKey = await loadMasterKey(config);
    const loops = [
      startDeliveryWorker({
        db,
        log,
        handle: (event) => probot.receive(event),
        ...(options.metrics ? { metrics: options.metrics } : {}),
        ...(options.workerIdleMs ? { idleMs: options.workerIdleMs } : {}),
        ...(options.deliveryAttempts ? { maxAttempts: options.deliveryAttempts } : {}),
      }),
      startOutboxWorker({
        db,
        log,
        github: installationClient(probot),
        identity: appIdentity(appClient(probot)),
        markerKey: deriveKey(masterKey.key, "outbox-marker"),
        ...(options.metrics ? { metrics: options.metrics } : {}),
        ...(options.workerIdleMs ? { idleMs: options.workerIdleMs } : {}),
        ...(options.usageSettleMs === undefined ? {} : { usageSettleMs: options.usageSettleMs }),
        ...(options.writeIntervalMs === undefined
          ? {}
          : { writeIntervalMs: options.writeIntervalMs }),
      }),
      startSweeper({
        db,
        log,
        now,
        warnBeforeS: deps.warnBeforeS,
        ...(options.sweepIntervalMs ? { intervalMs: options.sweepIntervalMs } : {}),
      }),
    ];
    if (options.redeliveryIntervalMs !== 0) {
      loops.push(
        startRedelivery({
          db,
          log,
          app: appClient(probot),
          now,
          ...(options.redeliveryIntervalMs ? { intervalMs: options.redeliveryIntervalMs } : {}),
        }),
      );
    }
    return {
      async stop() {
        await Promise.all(loops.map((loop) => loop.stop()));
      },
    };
  };
}

/** An installation client of the App, for work outside a webhook (outbox, exchange). */
export function installationClient(probot: Probot): (installationId: number) => Promise<GitHub> {
  return async (installationId) => (await probot.auth(installationId)) as unknown as GitHub;
}

/** The App's own client (its JWT), for what is asked of the App itself. */
function appClient(probot: Probot): () => Promise<GitHub> {
  return async () => (await probot.auth()) as unknown as GitHub;
}
