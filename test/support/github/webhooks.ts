/**
 * Webhooks as GitHub sends them, built from the simulator's model: each
 * starts from a real `@octokit/webhooks-examples` payload of that event and
 * action, with ids, numbers, people, repository, installation, bodies, labels
 * and shas taken from the model, and is typed with `@octokit/webhooks-types`.
 *
 * Change the model first, then describe the change:
 *
 * ```ts
 * const issue = sim.openIssue("acme/payments", { author: "alice", labels: ["hallpass"] });
 * await sim.deliver(issuesEvent(sim, "opened", issue));
 * const comment = sim.comment("acme/payments", issue.number, { author: "bob", body: "/approve" });
 * await sim.deliver(issueCommentEvent(sim, "created", comment));
 * ```
 */
import { createHmac, randomUUID } from "node:crypto";
import type { WebhookEventMap, WebhookEventName } from "@octokit/webhooks-types";

export { ZERO_SHA } from "./git.js";
export * from "./webhooks-repo.js";
export * from "./webhooks-tickets.js";

/** An event name and its payload: what `sendWebhook` and `sim.deliver` take. */
export interface Webhook<
  E extends WebhookEventName = WebhookEventName,
  P extends object = WebhookEventMap[E],
> {
  readonly event: E;
  readonly payload: P;
}

/** An issue or pull request of the model (an `Issue` from `sim.openIssue` / `sim.issue` is one). */
export interface IssueRef {
  readonly repoId: number;
  readonly number: number;
}

/** Probot's default webhook path, where hallpass listens. */
export const WEBHOOK_PATH = "/api/github/webhooks";

/**
 * POSTs a webhook to the App at `serverUrl` the way GitHub does: the exact
 * JSON body signed with HMAC SHA-256 (`X-Hub-Signature-256`), the event name
 * and a delivery id (a random UUID unless given).
 */
export async function sendWebhook(
  serverUrl: string,
  options: { secret: string; event: string; payload: unknown; deliveryId?: string },
): Promise<Response> {
  const body = JSON.stringify(options.payload);
  const signature = createHmac("sha256", options.secret).update(body).digest("hex");
  return fetch(`${serverUrl.replace(/\/+$/, "")}${WEBHOOK_PATH}`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "user-agent": "GitHub-Hookshot/simulator",
      "x-github-event": options.event,
      "x-github-delivery": options.deliveryId ?? randomUUID(),
      "x-hub-signature-256": `sha256=${signature}`,
    },
    body,
  });
}
