/**
 * People endpoints: users, the user behind a user token, organization
 * membership, and teams with their members and maintainers; and the device
 * flow by which a person gets a user token of the App.
 */
import type { components } from "@octokit/openapi-types";
import {
  type Backend,
  error,
  json,
  noContent,
  notFound,
  paginate,
  type Reply,
  type RequestContext,
  type Route,
} from "./http.js";
import type { Org } from "./model.js";
import { organizationSimple, publicUser, simpleUser } from "./render.js";

type Schemas = components["schemas"];

/** The parameters of a web endpoint of the OAuth flows: a form (as GitHub documents it) or JSON. */
function oauthParams(body: unknown): Record<string, string> {
  if (typeof body === "string") return Object.fromEntries(new URLSearchParams(body));
  if (body !== null && typeof body === "object") {
    return Object.fromEntries(
      Object.entries(body).filter(
        (entry): entry is [string, string] => typeof entry[1] === "string",
      ),
    );
  }
  return {};
}

/** GitHub's web endpoints answer a form unless asked for JSON. */
function oauthReply(ctx: RequestContext, body: Record<string, string | number>): Reply {
  const accept = String(ctx.headers.accept ?? "");
  if (accept.includes("application/json")) return json(body);
  const form = new URLSearchParams(
    Object.entries(body).map(([k, v]): [string, string] => [k, String(v)]),
  );
  return {
    status: 200,
    body: form.toString(),
    headers: { "content-type": "application/x-www-form-urlencoded; charset=utf-8" },
  };
}

export function peopleRoutes(backend: Backend): Route[] {
  const { model, view, oauth } = backend;

  /** The organization, if the caller may read it: an installation only reads its own account. */
  const withOrg = (ctx: RequestContext, then: (org: Org) => Reply): Reply => {
    const org = model.orgs.get((ctx.params.org ?? "").toLowerCase());
    if (!org) return notFound();
    const { credential } = ctx;
    if (credential.kind === "installation") {
      const installation = model.installations.get(credential.installationId);
      if (installation?.account.toLowerCase() !== org.user.login.toLowerCase()) {
        return error(403, "Resource not accessible by integration");
      }
    }
    return then(org);
  };
  const memberLogin = (org: Org, username: string | undefined) =>
    [...org.members.keys()].find((login) => login.toLowerCase() === username?.toLowerCase());
  const team = (org: Org, slug: string | undefined) => org.teams.get(slug ?? "");
  const teamRole = (org: Org, slug: string | undefined, username: string | undefined) => {
    const found = team(org, slug);
    const login = memberLogin(org, username);
    if (!found || !login) return null;
    if (found.maintainers.has(login)) return "maintainer" as const;
    return found.members.has(login) ? ("member" as const) : null;
  };

  return [
    {
      // The device flow, on the web host: github.com/login/device/code.
      method: "POST",
      pattern: "/login/device/code",
      requires: "none",
      handle: (ctx) => {
        const params = oauthParams(ctx.body);
        if (params.client_id !== oauth.clientId) return notFound();
        if (!oauth.deviceFlowEnabled) {
          return oauthReply(ctx, {
            error: "device_flow_disabled",
            error_description: "Device flow must be explicitly enabled for this App",
            error_uri: "https://docs.github.com",
          });
        }
        const device = oauth.startDevice(params.scope ?? "");
        return oauthReply(ctx, {
          device_code: device.deviceCode,
          user_code: device.userCode,
          verification_uri: `${view.web}/login/device`,
          expires_in: Math.round((device.expiresAt.getTime() - model.now().getTime()) / 1000),
          interval: device.interval,
        });
      },
    },
    {
      method: "POST",
      pattern: "/login/oauth/access_token",
      requires: "none",
      handle: (ctx) => {
        const params = oauthParams(ctx.body);
        const answer = oauth.poll(
          params.client_id,
          params.device_code,
          params.grant_type,
          Date.now(),
        );
        return oauthReply(ctx, answer as Record<string, string | number>);
      },
    },
    {
      method: "GET",
      pattern: "/users/:username",
      requires: "token",
      handle: ({ params }) => {
        const user = model.users.get((params.username ?? "").toLowerCase());
        return user ? json(publicUser(view, user)) : notFound();
      },
    },
    {
      method: "GET",
      pattern: "/user",
      requires: "user",
      handle: ({ credential }) =>
        credential.kind === "user"
          ? json(publicUser(view, model.user(credential.login)))
          : notFound(),
    },
    {
      method: "GET",
      pattern: "/orgs/:org/members/:username",
      requires: "token",
      handle: (ctx) =>
        withOrg(ctx, (org) => (memberLogin(org, ctx.params.username) ? noContent() : notFound())),
    },
    {
      method: "GET",
      pattern: "/orgs/:org/memberships/:username",
      requires: "token",
      handle: (ctx) =>
        withOrg(ctx, (org) => {
          const login = memberLogin(org, ctx.params.username);
          const role = login ? org.members.get(login) : undefined;
          if (!login || !role) return notFound();
          const body: Schemas["org-membership"] = {
            url: `${view.api}/orgs/${org.user.login}/memberships/${login}`,
            state: "active",
            role,
            organization_url: `${view.api}/orgs/${org.user.login}`,
            organization: organizationSimple(view, org),
            user: simpleUser(view, login),
          };
          return json(body);
        }),
    },
    {
      method: "GET",
      pattern: "/orgs/:org/teams/:slug/members",
      requires: "token",
      handle: (ctx) =>
        withOrg(ctx, (org) => {
          const found = team(org, ctx.params.slug);
          if (!found) return notFound();
          const role = ctx.query.role ?? "all";
          const logins = [
            ...(role === "maintainer" ? [] : found.members),
            ...(role === "member" ? [] : found.maintainers),
          ];
          const users = [...new Set(logins)].map((login) => simpleUser(view, login));
          return paginate(ctx, view.api, users);
        }),
    },
    {
      method: "GET",
      pattern: "/orgs/:org/teams/:slug/memberships/:username",
      requires: "token",
      handle: (ctx) =>
        withOrg(ctx, (org) => {
          const role = teamRole(org, ctx.params.slug, ctx.params.username);
          if (!role) return notFound();
          const body: Schemas["team-membership"] = {
            url: `${view.api}/organizations/${org.user.id}/team/${team(org, ctx.params.slug)?.id}/memberships/${ctx.params.username}`,
            role,
            state: "active",
          };
          return json(body);
        }),
    },
  ];
}
