/**
 * Ticket endpoints: issues (state, labels, comments), pull requests (reviews,
 * commits) and check runs. Writes change the model, so later reads see them.
 */
import {
  actorOf,
  type Backend,
  error,
  field,
  invalid,
  json,
  noContent,
  notFound,
  paginate,
  type RepoRoute,
  type RequestContext,
} from "./http.js";
import type { CheckRun, Issue, PullRequest, Repo } from "./model.js";
import { commit } from "./render.js";
import { checkRun, issue, issueComment, label, pullRequest, review } from "./render-tickets.js";

type Ctx = RequestContext & { readonly repo: Repo };

export function ticketRoutes(backend: Backend): RepoRoute[] {
  const { model, view } = backend;
  const findIssue = ({ repo, params }: Ctx): Issue | undefined =>
    repo.issues.get(Number(params.number));
  const findPull = (ctx: Ctx) => {
    const found = findIssue(ctx);
    return found?.pull ? (found as PullRequest) : undefined;
  };
  const findComment = ({ repo, params }: Ctx) => {
    const found = model.comments.get(Number(params.id));
    return found && found.repoId === repo.id && found.deletedAt === null ? found : undefined;
  };
  const findCheckRun = ({ repo, params }: Ctx) => {
    const found = model.checkRuns.get(Number(params.id));
    return found?.repoId === repo.id ? found : undefined;
  };

  return [
    {
      method: "GET",
      pattern: "/issues",
      requires: "token",
      handle: (ctx) => {
        // Pull requests are issues here too; newest first, as GitHub sorts by default.
        const { state = "open", labels, since } = ctx.query;
        const wanted = labels ? labels.split(",").map((l) => l.trim().toLowerCase()) : [];
        const found = [...ctx.repo.issues.values()]
          .filter((i) => state === "all" || i.state === state)
          .filter((i) => wanted.every((l) => i.labels.some((has) => has.toLowerCase() === l)))
          .filter((i) => !since || i.updatedAt >= new Date(since))
          .sort((a, b) => b.number - a.number);
        return paginate(
          ctx,
          view.api,
          found.map((i) => issue(view, i)),
        );
      },
    },
    {
      method: "GET",
      pattern: "/issues/:number",
      requires: "token",
      handle: (ctx) => {
        const found = findIssue(ctx);
        return found ? json(issue(view, found)) : notFound();
      },
    },
    {
      method: "PATCH",
      pattern: "/issues/:number",
      requires: "token",
      handle: (ctx) => {
        const found = findIssue(ctx);
        if (!found) return notFound();
        const { body } = ctx;
        const title = field(body, "title");
        const text = field(body, "body");
        const state = field(body, "state");
        const labels = field(body, "labels");
        if (typeof title === "string" || typeof text === "string" || text === null) {
          model.editIssue(ctx.repo.id, found.number, {
            ...(typeof title === "string" ? { title } : {}),
            ...(typeof text === "string" || text === null ? { body: text } : {}),
          });
        }
        if (Array.isArray(labels)) {
          for (const name of [...found.labels]) model.removeLabel(ctx.repo.id, found.number, name);
          for (const name of labels) model.addLabel(ctx.repo.id, found.number, String(name));
        }
        if (state === "closed" && found.state === "open") {
          const reason =
            field(body, "state_reason") === "not_planned" ? "not_planned" : "completed";
          model.closeIssue(ctx.repo.id, found.number, {
            by: actorOf(model, ctx.credential),
            reason,
          });
        } else if (state === "open" && found.state === "closed") {
          if (found.pull?.merged) return invalid("PullRequest", "state", "invalid");
          model.reopenIssue(ctx.repo.id, found.number);
        } else if (state !== undefined && state !== "open" && state !== "closed") {
          return invalid("Issue", "state", "invalid");
        }
        return json(issue(view, found));
      },
    },
    {
      method: "GET",
      pattern: "/issues/:number/labels",
      requires: "token",
      handle: (ctx) => {
        const found = findIssue(ctx);
        if (!found) return notFound();
        return paginate(
          ctx,
          view.api,
          found.labels.map((name) => label(view, ctx.repo, name)),
        );
      },
    },
    {
      method: "POST",
      pattern: "/issues/:number/labels",
      requires: "token",
      handle: (ctx) => {
        const found = findIssue(ctx);
        if (!found) return notFound();
        const labels = field(ctx.body, "labels");
        if (!Array.isArray(labels)) return invalid("Label", "labels");
        for (const name of labels) model.addLabel(ctx.repo.id, found.number, String(name));
        return json(found.labels.map((name) => label(view, ctx.repo, name)));
      },
    },
    {
      method: "DELETE",
      pattern: "/issues/:number/labels/:name",
      requires: "token",
      handle: (ctx) => {
        const found = findIssue(ctx);
        if (!found) return notFound();
        const name = ctx.params.name ?? "";
        if (!found.labels.some((l) => l.toLowerCase() === name.toLowerCase())) {
          return error(404, "Label does not exist");
        }
        model.removeLabel(ctx.repo.id, found.number, name);
        return json(found.labels.map((l) => label(view, ctx.repo, l)));
      },
    },
    {
      method: "GET",
      pattern: "/issues/:number/comments",
      requires: "token",
      handle: (ctx) => {
        const found = findIssue(ctx);
        if (!found) return notFound();
        const since = ctx.query.since ? new Date(ctx.query.since) : null;
        const comments = model
          .commentsOn(ctx.repo.id, found.number)
          .filter((c) => !since || c.updatedAt >= since);
        return paginate(
          ctx,
          view.api,
          comments.map((c) => issueComment(view, c)),
        );
      },
    },
    {
      method: "POST",
      pattern: "/issues/:number/comments",
      requires: "token",
      handle: (ctx) => {
        const found = findIssue(ctx);
        if (!found) return notFound();
        const body = field(ctx.body, "body");
        if (typeof body !== "string") return invalid("IssueComment", "body");
        const author = actorOf(model, ctx.credential);
        const created = model.comment(ctx.repo.id, found.number, { author, body });
        return json(issueComment(view, created), 201);
      },
    },
    {
      method: "GET",
      pattern: "/issues/comments/:id",
      requires: "token",
      handle: (ctx) => {
        const found = findComment(ctx);
        return found ? json(issueComment(view, found)) : notFound();
      },
    },
    {
      method: "PATCH",
      pattern: "/issues/comments/:id",
      requires: "token",
      handle: (ctx) => {
        const found = findComment(ctx);
        if (!found) return notFound();
        const body = field(ctx.body, "body");
        if (typeof body !== "string") return invalid("IssueComment", "body");
        model.editComment(found.id, body, { by: actorOf(model, ctx.credential) });
        return json(issueComment(view, found));
      },
    },
    {
      method: "DELETE",
      pattern: "/issues/comments/:id",
      requires: "token",
      handle: (ctx) => {
        const found = findComment(ctx);
        if (!found) return notFound();
        model.deleteComment(found.id);
        return noContent();
      },
    },
    {
      method: "GET",
      pattern: "/pulls/:number",
      requires: "token",
      handle: (ctx) => {
        const found = findPull(ctx);
        return found ? json(pullRequest(view, found)) : notFound();
      },
    },
    {
      method: "GET",
      pattern: "/pulls/:number/reviews",
      requires: "token",
      handle: (ctx) => {
        const found = findPull(ctx);
        if (!found) return notFound();
        return paginate(
          ctx,
          view.api,
          found.pull.reviews.map((r) => review(view, r)),
        );
      },
    },
    {
      method: "GET",
      pattern: "/pulls/:number/commits",
      requires: "token",
      handle: (ctx) => {
        const found = findPull(ctx);
        if (!found) return notFound();
        const commits = model.pullCommits(found).slice(0, 250);
        return paginate(
          ctx,
          view.api,
          commits.map((c) => commit(view, ctx.repo, c)),
        );
      },
    },
    {
      method: "POST",
      pattern: "/check-runs",
      requires: "token",
      handle: (ctx) => {
        const name = field(ctx.body, "name");
        const headSha = field(ctx.body, "head_sha");
        if (typeof name !== "string") return invalid("CheckRun", "name");
        if (typeof headSha !== "string") return invalid("CheckRun", "head_sha");
        if (!model.hasCommit(ctx.repo, headSha)) {
          return error(422, `No commit found for SHA: ${headSha}`);
        }
        const run: CheckRun = {
          id: model.nextId(),
          repoId: ctx.repo.id,
          appId: model.app.id,
          headSha,
          name,
          status: "queued",
          conclusion: null,
          output: { title: null, summary: null, text: null },
          detailsUrl: null,
          externalId: null,
          startedAt: model.now(),
          completedAt: null,
        };
        applyCheckRun(run, ctx.body, model.now());
        model.checkRuns.set(run.id, run);
        return json(checkRun(view, run), 201);
      },
    },
    {
      method: "GET",
      pattern: "/check-runs/:id",
      requires: "token",
      handle: (ctx) => {
        const found = findCheckRun(ctx);
        return found ? json(checkRun(view, found)) : notFound();
      },
    },
    {
      method: "PATCH",
      pattern: "/check-runs/:id",
      requires: "token",
      handle: (ctx) => {
        const found = findCheckRun(ctx);
        if (!found) return notFound();
        applyCheckRun(found, ctx.body, model.now());
        return json(checkRun(view, found));
      },
    },
    {
      method: "GET",
      pattern: "/commits/:ref/check-runs",
      requires: "token",
      handle: (ctx) => {
        const sha = model.resolveRef(ctx.repo, ctx.params.ref ?? "");
        if (!sha) return error(422, `No commit found for SHA: ${ctx.params.ref}`);
        const { check_name, status, filter } = ctx.query;
        let runs = model
          .checkRunsFor(ctx.repo.id, sha)
          .filter(
            (r) => (!check_name || r.name === check_name) && (!status || r.status === status),
          );
        if (filter !== "all") {
          // "latest": the newest run of each name.
          runs = runs.filter(
            (r) => !runs.some((other) => other.name === r.name && other.id > r.id),
          );
        }
        runs.reverse();
        return paginate(ctx, view.api, runs, (page) => ({
          total_count: runs.length,
          check_runs: page.map((r) => checkRun(view, r)),
        }));
      },
    },
  ];
}

/** The fields of a create or update check run request; a conclusion completes the run. */
function applyCheckRun(run: CheckRun, body: unknown, now: Date): void {
  const text = (name: string) => {
    const value = field(body, name);
    return typeof value === "string" ? value : undefined;
  };
  run.name = text("name") ?? run.name;
  run.detailsUrl = text("details_url") ?? run.detailsUrl;
  run.externalId = text("external_id") ?? run.externalId;
  const status = text("status");
  if (status === "queued" || status === "in_progress" || status === "completed")
    run.status = status;
  const conclusion = text("conclusion");
  if (conclusion) {
    run.conclusion = conclusion;
    run.status = "completed";
  }
  if (run.status === "completed") run.completedAt = new Date(text("completed_at") ?? now);
  const startedAt = text("started_at");
  if (startedAt) run.startedAt = new Date(startedAt);
  const output = field(body, "output");
  if (output && typeof output === "object") {
    const part = (name: string) => {
      const value = field(output, name);
      return typeof value === "string" ? value : null;
    };
    run.output = { title: part("title"), summary: part("summary"), text: part("text") };
  }
}
