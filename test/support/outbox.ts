/**
 * The outbox's world in tests: the GitHub simulator, the App's Probot
 * pointed at it (without Octokit's own retries and throttling, so faults
 * reach the outbox at once), and helpers to seed tickets and side effects
 * the way transitions write them.
 */
import type { Probot } from "probot";
import { appendAudit } from "#src/audit/append.js";
import { loadConfig } from "#src/config.js";
import type { GitHub } from "#src/github/api.js";
import { createGitHubApp } from "#src/github/app.js";
import { createLogger } from "#src/log.js";
import type { Db } from "#src/store/db.js";
import { enqueue } from "#src/store/outbox.js";
import { type Ticket, upsertTicket } from "#src/store/tickets.js";
import type { RepoRef, SideEffect } from "#src/tickets/notices.js";
import { cleanEnv } from "./env.js";
import { GitHubSimulator } from "./github/simulator.js";
import { TestOctokit } from "./octokit.js";

export const REPO = "acme/payments";

export interface GitHubWorld {
  readonly sim: GitHubSimulator;
  readonly probot: Probot;
  readonly installationId: number;
  readonly repo: RepoRef;
  /** The worker's `github` option. */
  readonly github: (installationId: number) => Promise<GitHub>;
}

export async function startGitHubWorld(): Promise<GitHubWorld> {
  const sim = await GitHubSimulator.start({ appId: 4343 });
  sim.addOrg("acme", { members: ["alice", "bob", "mallory"] });
  const repo = sim.addRepo(REPO);
  const installationId = sim.addInstallation("acme").id;
  const config = loadConfig(cleanEnv(sim.appEnv("webhook-secret")));
  const probot = await createGitHubApp(config, config.app!, createLogger("silent"), [], {
    octokit: TestOctokit,
  });
  return {
    sim,
    probot,
    installationId,
    repo: { id: repo.id, owner: "acme", name: "payments" },
    github: (id) => probot.auth(id),
  };
}

/** The ticket row of an issue or pull request of the simulator, as hallpass would store it. */
export async function storeTicket(
  db: Db,
  world: GitHubWorld,
  number: number,
  options: {
    installationId?: number;
    kind?: "issue" | "pull_request";
    headSha?: string | null;
  } = {},
): Promise<Ticket> {
  const alice = world.sim.user("alice");
  return upsertTicket(db, {
    installationId: options.installationId ?? world.installationId,
    installationAccount: { id: world.sim.user("acme").id, login: "acme" },
    repoId: world.repo.id,
    repoOwnerId: world.sim.user("acme").id,
    repoFullName: REPO,
    number,
    kind: options.kind ?? "issue",
    author: { id: alice.id, login: alice.login },
    title: "Access to payments-api",
    state: "open",
    merged: false,
    labels: ["hallpass"],
    headSha: options.headSha ?? null,
    headRepoId: options.headSha ? world.repo.id : null,
  });
}

/** Queues a side effect as a transition does: with its audit event, in one transaction. */
export function queueEffect(
  db: Db,
  ticket: Ticket,
  effect: SideEffect,
): Promise<{ dedupeKey: string; eventId: string }> {
  return db.transaction(async (tx) => {
    const event = await appendAudit(tx, {
      kind: "test.notice",
      actor: "hallpass",
      ticketId: ticket.id,
    });
    const dedupeKey = `${event.id}/0`;
    await enqueue(tx, {
      installationId: ticket.installationId,
      ticketId: ticket.id,
      dedupeKey,
      auditEventId: event.id,
      effect,
    });
    return { dedupeKey, eventId: event.id };
  });
}

export interface OutboxRow {
  id: number;
  state: "pending" | "done" | "dead";
  attempts: number;
  last_error: string | null;
  result: Record<string, unknown> | null;
}

export async function outboxRow(db: Db, dedupeKey: string): Promise<OutboxRow | undefined> {
  const { rows } = await db.query<OutboxRow>(
    "SELECT id::int AS id, state, attempts, last_error, result FROM outbox WHERE dedupe_key = $1::text",
    [dedupeKey],
  );
  return rows[0];
}
