import { randomBytes } from "node:crypto";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { sealedEvent } from "#src/audit/append.js";
import type { GitHub } from "#src/github/api.js";
import type { Loop } from "#src/loop.js";
import { deriveKey } from "#src/secret.js";
import { claimOutbox } from "#src/store/outbox.js";
import { getComment, sha256Hex } from "#src/store/ticket-comments.js";
import type { Ticket } from "#src/store/tickets.js";
import { appIdentity, startOutboxWorker } from "#src/tickets/outbox-worker.js";
import { markerOf, renderNotice } from "#src/tickets/render.js";
import { type CommentChange, handleCommentChange } from "#src/tickets/tamper.js";
import { createTestDb, primaryBackend, type TestDb } from "../support/db.js";
import { issueCommentEvent } from "../support/github/webhooks.js";
import { captureLogger } from "../support/log.js";
import {
  type GitHubWorld,
  outboxRow,
  queueEffect,
  REPO,
  startGitHubWorld,
  storeTicket,
} from "../support/outbox.js";

let world: GitHubWorld;
let db: TestDb;
let worker: Loop;
const { log } = captureLogger("silent");
const markerKey = deriveKey(randomBytes(32), "outbox-marker");
const startWorker = () =>
  startOutboxWorker({
    db,
    log,
    github: world.github,
    identity: appIdentity(() => world.probot.auth() as Promise<GitHub>),
    markerKey,
    idleMs: 20,
    retryBaseMs: 20,
    writeIntervalMs: 0,
  });

beforeAll(async () => {
  world = await startGitHubWorld();
});
afterAll(() => world.sim.close());

beforeEach(async () => {
  db = await createTestDb(primaryBackend);
  worker = startWorker();
});

afterEach(async () => {
  await worker.stop();
  await db.close();
  const unexpected = world.sim.unexpected;
  world.sim.clearRequests();
  expect(unexpected).toEqual([]);
});

/** A ticket with one audit comment hallpass posted (through the outbox). */
async function postedComment(): Promise<{ ticket: Ticket; commentId: number; body: string }> {
  const issue = world.sim.openIssue(REPO, {
    author: "alice",
    body: "access",
    labels: ["hallpass"],
  });
  const ticket = await storeTicket(db, world, issue.number);
  const { dedupeKey } = await queueEffect(db, ticket, {
    kind: "comment",
    repo: world.repo,
    number: ticket.number,
    notice: { kind: "denied", by: "bob", reason: "not during the freeze" },
  });
  await expect
    .poll(async () => (await outboxRow(db, dedupeKey))?.state, { timeout: 10_000 })
    .toBe("done");
  const [comment] = world.sim.commentsOn(REPO, ticket.number);
  if (!comment) throw new Error("not posted");
  return { ticket, commentId: comment.id, body: comment.body };
}

/** What the app wiring passes from an `issue_comment` edited or deleted webhook. */
function change(action: "edited" | "deleted", commentId: number, sender?: string): CommentChange {
  const { payload } = issueCommentEvent(
    world.sim,
    action,
    { id: commentId },
    sender ? { sender } : {},
  );
  return {
    action,
    commentId: payload.comment.id,
    body: action === "edited" ? payload.comment.body : null,
    sender: { login: payload.sender.login, type: payload.sender.type },
    appSlug: "hallpass",
  };
}

async function tamperEvents(ticket: Ticket) {
  const { rows } = await db.query<{ actor: string; body: string }>(
    "SELECT actor, body FROM audit_events WHERE kind = 'comment.tampered' AND ticket_id = $1::uuid ORDER BY seq",
    [ticket.id],
  );
  return rows.map((r) => ({ actor: r.actor, data: JSON.parse(r.body).data }));
}

describe("handleCommentChange", () => {
  it("records an edit of hallpass's comment by a person and re-posts the original", async () => {
    const { ticket, commentId, body } = await postedComment();
    world.sim.editComment(commentId, "Approved by everyone, nothing to see", { by: "mallory" });

    expect(await handleCommentChange({ db, log }, change("edited", commentId))).toBe(true);

    expect(await tamperEvents(ticket)).toEqual([
      {
        actor: "github:mallory",
        data: expect.objectContaining({
          action: "edited",
          comment_id: commentId,
          original_sha256: sha256Hex(body),
          new_sha256: sha256Hex("Approved by everyone, nothing to see"),
        }),
      },
    ]);
    expect((await getComment(db, commentId))?.tamperedAt).toBeInstanceOf(Date);

    await expect
      .poll(() => world.sim.commentsOn(REPO, ticket.number).length, { timeout: 10_000 })
      .toBe(2);
    const notice = world.sim.commentsOn(REPO, ticket.number)[1];
    expect(notice?.author).toBe("hallpass[bot]");
    expect(notice?.body).toContain("### 🕵️ An audit comment was edited");
    expect(notice?.body).toContain("`mallory` edited one of hallpass's comments");
    // The original, quoted line by line and inert.
    expect(notice?.body).toContain(
      "> ### ⛔ Access request denied".replace("###", "\\#&#8203;\\#&#8203;\\#&#8203;"),
    );
    expect(notice?.body).toContain("> &#124; Reason &#124; not during the freeze &#124;");
    expect(notice?.body.match(/<!-- hallpass:/g)).toHaveLength(1);
    // The tamper notice is itself one of ours.
    expect(await getComment(db, notice?.id ?? 0)).not.toBeNull();
  });

  it("records a deletion, once however often the webhook comes", async () => {
    const { ticket, commentId } = await postedComment();
    world.sim.deleteComment(commentId);
    const deleted = change("deleted", commentId, "mallory");
    expect(await handleCommentChange({ db, log }, deleted)).toBe(true);
    expect(await handleCommentChange({ db, log }, deleted)).toBe(false);
    const events = await tamperEvents(ticket);
    expect(events).toHaveLength(1);
    expect(events[0]?.data).toMatchObject({ action: "deleted", new_sha256: null });
    await expect
      .poll(() => world.sim.commentsOn(REPO, ticket.number).length, { timeout: 10_000 })
      .toBe(1);
    expect(world.sim.commentsOn(REPO, ticket.number)[0]?.body).toContain(
      "An audit comment was deleted",
    );
  });

  it("ignores edits of other people's comments", async () => {
    const { ticket } = await postedComment();
    const own = world.sim.comment(REPO, ticket.number, { author: "alice", body: "/approve" });
    world.sim.editComment(own.id, "/approve please");
    expect(await handleCommentChange({ db, log }, change("edited", own.id))).toBe(false);
    expect(await tamperEvents(ticket)).toEqual([]);
    const { rows } = await db.query("SELECT 1 FROM outbox WHERE dedupe_key LIKE 'tamper/%'");
    expect(rows).toEqual([]);
  });

  it("ignores changes hallpass makes itself and edits that change nothing", async () => {
    const { ticket, commentId, body } = await postedComment();
    world.sim.editComment(commentId, `${body}\n`, { by: world.sim.app.bot });
    expect(await handleCommentChange({ db, log }, change("edited", commentId))).toBe(false);
    world.sim.editComment(commentId, body, { by: "alice" });
    expect(await handleCommentChange({ db, log }, change("edited", commentId))).toBe(false);
    expect(await tamperEvents(ticket)).toEqual([]);
    expect((await getComment(db, commentId))?.tamperedAt).toBeNull();
  });

  it("does not guard a copy of hallpass's comment by someone else, marker and all", async () => {
    await worker.stop();
    const issue = world.sim.openIssue(REPO, { author: "alice", body: "x", labels: ["hallpass"] });
    const ticket = await storeTicket(db, world, issue.number);
    const notice = { kind: "denied", by: "bob", reason: "not during the freeze" } as const;
    const { dedupeKey, eventId } = await queueEffect(db, ticket, {
      kind: "comment",
      repo: world.repo,
      number: ticket.number,
      notice,
    });
    // An attempt claimed the row and failed; before the next one, another App's
    // bot posts what hallpass would have, with the marker copied.
    expect(await claimOutbox(db, 10, 1)).toHaveLength(1);
    const body = renderNotice(
      notice,
      await sealedEvent(db, eventId),
      markerOf(markerKey, dedupeKey),
    );
    const forgery = world.sim.comment(REPO, ticket.number, { author: "forger[bot]", body });
    await new Promise((resolve) => setTimeout(resolve, 10));
    worker = startWorker();
    await expect
      .poll(async () => (await outboxRow(db, dedupeKey))?.state, { timeout: 10_000 })
      .toBe("done");
    const real = world.sim.commentsOn(REPO, ticket.number)[1];
    expect(real?.author).toBe("hallpass[bot]");
    expect(await getComment(db, forgery.id)).toBeNull();

    // A maintainer removing the forgery is no tampering: nothing is re-posted.
    world.sim.deleteComment(forgery.id);
    expect(await handleCommentChange({ db, log }, change("deleted", forgery.id, "bob"))).toBe(
      false,
    );
    expect(await tamperEvents(ticket)).toEqual([]);
    const { rows } = await db.query("SELECT 1 FROM outbox WHERE dedupe_key LIKE 'tamper/%'");
    expect(rows).toEqual([]);
    // The real comment stays guarded.
    world.sim.deleteComment(real?.id ?? 0);
    expect(
      await handleCommentChange({ db, log }, change("deleted", real?.id ?? 0, "mallory")),
    ).toBe(true);
  });
});
