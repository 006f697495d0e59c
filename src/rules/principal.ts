/**
 * Who a policy rule names: `@user` or `@org/team`, as in CODEOWNERS.
 * Logins, orgs and slugs are compared case-insensitively, as GitHub does.
 */
export type Principal =
  | { readonly kind: "user"; readonly text: string; readonly login: string }
  | { readonly kind: "team"; readonly text: string; readonly org: string; readonly slug: string };

const USER = /^@([A-Za-z0-9](?:[A-Za-z0-9-]{0,38}))$/;
const TEAM = /^@([A-Za-z0-9](?:[A-Za-z0-9-]{0,38}))\/([A-Za-z0-9][A-Za-z0-9_.-]{0,99})$/;

/**
 * Parses `@user` or `@org/team`. Identities are kept lower case; `text` is as
 * written.
 */
export function parsePrincipal(
  text: string,
): { ok: true; principal: Principal } | { ok: false; message: string } {
  const team = TEAM.exec(text);
  if (team) {
    const [, org = "", slug = ""] = team;
    return {
      ok: true,
      principal: { kind: "team", text, org: org.toLowerCase(), slug: slug.toLowerCase() },
    };
  }
  const user = USER.exec(text);
  if (user)
    return { ok: true, principal: { kind: "user", text, login: (user[1] ?? "").toLowerCase() } };
  return {
    ok: false,
    message: `${JSON.stringify(text.slice(0, 80))} is not @user or @org/team`,
  };
}

/** `org/slug`, lower case: the key of a resolved team membership. */
export function teamKey(org: string, slug: string): string {
  return `${org.toLowerCase()}/${slug.toLowerCase()}`;
}

/**
 * Team memberships as resolved through the GitHub API: `"org/slug"` → member
 * logins. Keys and logins may be in any case.
 */
export type TeamMemberships = ReadonlyMap<string, ReadonlySet<string>>;

/** Lower-cases a membership map once, for repeated lookups. */
export function normaliseTeams(teams: TeamMemberships): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const [key, members] of teams) {
    const set = out.get(key.toLowerCase()) ?? new Set<string>();
    for (const login of members) set.add(login.toLowerCase());
    out.set(key.toLowerCase(), set);
  }
  return out;
}

/**
 * Whether `login` is the principal or a member of it. `unknown` when the
 * principal is a team whose members were not resolved: never a yes.
 */
export function principalIncludes(
  principal: Principal,
  login: string,
  teams: ReadonlyMap<string, ReadonlySet<string>>,
): "yes" | "no" | "unknown" {
  const who = login.toLowerCase();
  if (principal.kind === "user") return principal.login === who ? "yes" : "no";
  const members = teams.get(teamKey(principal.org, principal.slug));
  if (members === undefined) return "unknown";
  return members.has(who) ? "yes" : "no";
}

/** Whether an account is a bot: GitHub's `type: "Bot"`, or an App's `<slug>[bot]` login. */
export function isBotAccount(account: {
  readonly login: string;
  readonly type?: string | null;
  readonly isBot?: boolean;
}): boolean {
  return (
    account.isBot === true ||
    account.type === "Bot" ||
    account.login.toLowerCase().endsWith("[bot]")
  );
}
