/**
 * App endpoints, authenticated with the App's JWT: the App, its
 * installations, installation access tokens and webhook deliveries; and
 * "check a token", authenticated with the App's client id and secret.
 */
import { createHash } from "node:crypto";
import type { components } from "@octokit/openapi-types";
import { hookDelivery, hookDeliveryItem } from "./deliveries.js";
import { type Backend, field, invalid, json, notFound, type Route } from "./http.js";
import {
  APP_PERMISSIONS,
  installation,
  integration,
  iso,
  repository,
  simpleUser,
} from "./render.js";

export function appRoutes(backend: Backend): Route[] {
  const { model, view, credentials, deliveries, oauth } = backend;
  const liveInstallation = (id: string | undefined) => {
    const found = model.installations.get(Number(id));
    return found && found.deletedAt === null ? found : undefined;
  };
  return [
    {
      method: "GET",
      pattern: "/app",
      requires: "app",
      handle: () => json(integration(view)),
    },
    {
      method: "GET",
      pattern: "/app/installations",
      requires: "app",
      handle: () =>
        json(
          [...model.installations.values()]
            .filter((i) => i.deletedAt === null)
            .map((i) => installation(view, i)),
        ),
    },
    {
      method: "GET",
      pattern: "/app/installations/:id",
      requires: "app",
      handle: ({ params }) => {
        const found = liveInstallation(params.id);
        return found ? json(installation(view, found)) : notFound();
      },
    },
    {
      method: "POST",
      pattern: "/app/installations/:id/access_tokens",
      requires: "app",
      handle: ({ params }) => {
        const found = liveInstallation(params.id);
        if (!found) return notFound();
        const { token, expiresAt } = credentials.issueInstallationToken(found.id);
        const repos = [...model.repos.values()].filter(
          (r) => r.deletedAt === null && model.installationCovers(found, r),
        );
        const body: components["schemas"]["installation-token"] = {
          token,
          expires_at: expiresAt.toISOString().replace(/\.\d{3}Z$/, "Z"),
          permissions: APP_PERMISSIONS,
          repository_selection: found.repositoryIds === null ? "all" : "selected",
          ...(found.repositoryIds === null
            ? {}
            : { repositories: repos.map((r) => repository(view, r)) }),
        };
        return json(body, 201);
      },
    },
    {
      method: "GET",
      pattern: "/orgs/:org/installation",
      requires: "app",
      handle: ({ params }) => accountInstallation(params.org),
    },
    {
      method: "GET",
      pattern: "/users/:username/installation",
      requires: "app",
      handle: ({ params }) => accountInstallation(params.username),
    },
    {
      method: "GET",
      pattern: "/app/hook/deliveries",
      requires: "app",
      handle: (ctx) => {
        // Newest first; the cursor is the id of the last delivery of the previous page.
        const perPage = Math.min(100, Math.max(1, Number(ctx.query.per_page) || 30));
        const cursor = Number(ctx.query.cursor?.replace(/^v1_/, "")) || Number.POSITIVE_INFINITY;
        const status = ctx.query.status;
        const matching = [...deliveries.all]
          .reverse()
          .filter((d) => d.id < cursor)
          .filter((d) => {
            if (status === "success") return d.statusCode >= 200 && d.statusCode < 300;
            if (status === "failure") return !(d.statusCode >= 200 && d.statusCode < 300);
            return true;
          });
        const page = matching.slice(0, perPage);
        const last = page.at(-1);
        const next = new URL(`${view.api}/app/hook/deliveries`);
        next.searchParams.set("per_page", String(perPage));
        if (last) next.searchParams.set("cursor", `v1_${last.id}`);
        if (status) next.searchParams.set("status", status);
        const headers: Record<string, string> =
          matching.length > perPage ? { link: `<${next}>; rel="next"` } : {};
        return json(page.map(hookDeliveryItem), 200, headers);
      },
    },
    {
      method: "GET",
      pattern: "/app/hook/deliveries/:id",
      requires: "app",
      handle: ({ params }) => {
        const found = deliveries.find(Number(params.id));
        if (!found) return notFound();
        return json(hookDelivery(found, deliveries.target?.url ?? ""));
      },
    },
    {
      // Check a token: HTTP Basic as the client; 404 for any token not issued to it.
      method: "POST",
      pattern: "/applications/:client_id/token",
      requires: "client",
      handle: ({ params, body }) => {
        if (params.client_id !== oauth.clientId) return notFound();
        const token = field(body, "access_token");
        if (typeof token !== "string" || token === "") {
          return invalid("Authorization", "access_token");
        }
        const found = oauth.check(token);
        if (!found) return notFound();
        const { app } = model;
        const authorization: components["schemas"]["authorization"] = {
          id: found.issuedAt.getTime(),
          url: `${view.api}/authorizations/${found.issuedAt.getTime()}`,
          scopes: [],
          token,
          token_last_eight: token.slice(-8),
          hashed_token: createHash("sha256").update(token).digest("hex"),
          app: { client_id: oauth.clientId, name: app.slug, url: `${view.web}/apps/${app.slug}` },
          note: null,
          note_url: null,
          updated_at: iso(found.issuedAt),
          created_at: iso(found.issuedAt),
          fingerprint: null,
          user: simpleUser(view, found.login),
          installation: null,
          expires_at: iso(new Date(found.issuedAt.getTime() + 8 * 3600 * 1000)),
        };
        return json(authorization);
      },
    },
    {
      method: "POST",
      pattern: "/app/hook/deliveries/:id/attempts",
      requires: "app",
      handle: ({ params }) =>
        deliveries.redeliver(Number(params.id)) ? json({}, 202) : notFound(),
    },
  ];

  function accountInstallation(login: string | undefined) {
    const found = [...model.installations.values()].find(
      (i) => i.deletedAt === null && i.account.toLowerCase() === (login ?? "").toLowerCase(),
    );
    return found ? json(installation(view, found)) : notFound();
  }
}
