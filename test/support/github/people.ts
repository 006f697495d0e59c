/**
 * People of the simulated GitHub: users and bots, organizations with members
 * and teams, and the App itself (its bot user). The base of the model: it also
 * holds the clock and the id counter.
 */
import type { ModelOptions, Org, Permission, Team, User } from "./model.js";

export class PeopleModel {
  readonly app: { readonly id: number; readonly slug: string; readonly bot: string };
  readonly users = new Map<string, User>();
  readonly orgs = new Map<string, Org>();
  readonly now: () => Date;
  #nextId = 1000;

  constructor(options: ModelOptions) {
    this.now = options.now ?? (() => new Date());
    const slug = options.appSlug ?? "hallpass";
    this.app = { id: options.appId, slug, bot: `${slug}[bot]` };
    this.addUser(this.app.bot);
  }

  /** A fresh id; one sequence for every kind of object, so ids never collide. */
  nextId(): number {
    return this.#nextId++;
  }

  // --- people -------------------------------------------------------------

  /** Adds a user; logins ending in `[bot]` are bots unless `type` says. Adding an existing login returns it. */
  addUser(
    login: string,
    options: { id?: number; type?: "User" | "Bot"; name?: string; email?: string } = {},
  ): User {
    const existing = this.users.get(login.toLowerCase());
    if (existing) return existing;
    const id = options.id ?? this.nextId();
    const user: User = {
      id,
      login,
      type: options.type ?? (login.endsWith("[bot]") ? "Bot" : "User"),
      name: options.name ?? null,
      email: options.email ?? `${id}+${login}@users.noreply.github.com`,
      createdAt: this.now(),
    };
    this.users.set(login.toLowerCase(), user);
    return user;
  }

  /** A known user or organization account; throws for an unknown login. */
  user(login: string): User {
    const user = this.users.get(login.toLowerCase());
    if (!user) throw new Error(`simulator: no user ${login}`);
    return user;
  }

  /** Adds an organization; `admins` are its owners, `basePermission` what members get on its repositories (default read). */
  addOrg(
    login: string,
    options: {
      id?: number;
      members?: readonly string[];
      admins?: readonly string[];
      basePermission?: Permission;
    } = {},
  ): Org {
    if (this.users.has(login.toLowerCase())) throw new Error(`simulator: ${login} exists`);
    const user: User = {
      id: options.id ?? this.nextId(),
      login,
      type: "Organization",
      name: null,
      email: "",
      createdAt: this.now(),
    };
    this.users.set(login.toLowerCase(), user);
    const org: Org = {
      user,
      basePermission: options.basePermission ?? "read",
      members: new Map(),
      teams: new Map(),
    };
    this.orgs.set(login.toLowerCase(), org);
    for (const member of options.members ?? []) this.addOrgMember(login, member);
    for (const admin of options.admins ?? []) this.addOrgMember(login, admin, "admin");
    return org;
  }

  org(login: string): Org {
    const org = this.orgs.get(login.toLowerCase());
    if (!org) throw new Error(`simulator: no organization ${login}`);
    return org;
  }

  addOrgMember(org: string, login: string, role: "admin" | "member" = "member"): void {
    this.org(org).members.set(this.addUser(login).login, role);
  }

  /** Removes the member from the organization and from all of its teams. */
  removeOrgMember(org: string, login: string): void {
    const found = this.org(org);
    const member = this.user(login).login;
    found.members.delete(member);
    for (const team of found.teams.values()) {
      team.members.delete(member);
      team.maintainers.delete(member);
    }
  }

  addTeam(
    org: string,
    slug: string,
    options: {
      id?: number;
      name?: string;
      members?: readonly string[];
      maintainers?: readonly string[];
    } = {},
  ): Team {
    const team: Team = {
      id: options.id ?? this.nextId(),
      slug,
      name: options.name ?? slug,
      org: this.org(org).user.login,
      members: new Set(),
      maintainers: new Set(),
    };
    this.org(org).teams.set(slug, team);
    for (const member of options.members ?? []) this.addTeamMember(org, slug, member);
    for (const member of options.maintainers ?? [])
      this.addTeamMember(org, slug, member, "maintainer");
    return team;
  }

  team(org: string, slug: string): Team {
    const team = this.org(org).teams.get(slug);
    if (!team) throw new Error(`simulator: no team ${org}/${slug}`);
    return team;
  }

  /** Adds to the team, and to the organization when not a member yet. */
  addTeamMember(
    org: string,
    slug: string,
    login: string,
    role: "member" | "maintainer" = "member",
  ): void {
    const { members } = this.org(org);
    const user = this.addUser(login);
    if (!members.has(user.login)) members.set(user.login, "member");
    const team = this.team(org, slug);
    (role === "maintainer" ? team.maintainers : team.members).add(user.login);
  }

  removeTeamMember(org: string, slug: string, login: string): void {
    const team = this.team(org, slug);
    const member = this.user(login).login;
    team.members.delete(member);
    team.maintainers.delete(member);
  }
}
