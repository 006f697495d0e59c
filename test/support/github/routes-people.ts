/**
 * People endpoints: users, the user behind a user token, organization
 * membership, and teams with their members and maintainers.
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

export function peopleRoutes(backend: Backend): Route[] {
  const { model, view } = backend;

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
