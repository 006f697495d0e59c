import { createHash } from "node:crypto";
import { Octokit } from "@octokit/rest";
import { HallpassError } from "#src/errors.js";

/** A GitHub account, as `GET /user` names it. */
export interface GitHubUser {
  readonly id: number;
  readonly login: string;
}

export interface GitHubUsersOptions {
  /** REST API base URL (`config.github.apiUrl`). */
  readonly apiUrl: string;
  /** How long an answer is trusted: a revoked GitHub token keeps working this long. */
  readonly ttlMs?: number;
  /** How long a refused token is remembered as refused. */
  readonly refusedTtlMs?: number;
  readonly maxEntries?: number;
  readonly timeoutMs?: number;
  readonly now?: () => number;
}

type Answer = { readonly user: GitHubUser } | { readonly refused: HallpassError };

const MAX_TOKEN_LENGTH = 4_096;

/**
 * Who a GitHub user token belongs to, asked of GitHub (`GET /user` with the
 * token) and cached briefly. Cache keys are sha256 of the token: the token
 * itself is never kept, logged, or sent anywhere but GitHub.
 */
export class GitHubUsers {
  readonly #apiUrl: string;
  readonly #ttlMs: number;
  readonly #refusedTtlMs: number;
  readonly #maxEntries: number;
  readonly #timeoutMs: number;
  readonly #now: () => number;
  readonly #cache = new Map<string, { answer: Promise<Answer>; until: number }>();

  constructor(options: GitHubUsersOptions) {
    this.#apiUrl = options.apiUrl;
    this.#ttlMs = options.ttlMs ?? 60_000;
    this.#refusedTtlMs = options.refusedTtlMs ?? 10_000;
    this.#maxEntries = options.maxEntries ?? 10_000;
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    this.#now = options.now ?? Date.now;
  }

  /**
   * @throws GITHUB_TOKEN_INVALID (401) when GitHub does not accept the token
   *   as a user's; GITHUB_UNAVAILABLE (503) when GitHub cannot be asked
   */
  async whoIs(token: string): Promise<GitHubUser> {
    if (!token || token.length > MAX_TOKEN_LENGTH || /[^\x21-\x7e]/.test(token)) {
      throw new HallpassError(
        "GITHUB_TOKEN_INVALID",
        "send your GitHub token as Authorization: Bearer <token>",
      );
    }
    const key = createHash("sha256").update(token).digest("hex");
    const now = this.#now();
    let entry = this.#cache.get(key);
    if (!entry || entry.until <= now) {
      const answer = this.#ask(token);
      entry = { answer, until: now + this.#ttlMs };
      this.#cache.set(key, entry);
      this.#evict(now);
      const stored = entry;
      answer.then(
        (a) => {
          if ("refused" in a) stored.until = this.#now() + this.#refusedTtlMs;
        },
        () => {
          if (this.#cache.get(key) === stored) this.#cache.delete(key);
        },
      );
    }
    const answer = await entry.answer;
    if ("refused" in answer) throw answer.refused;
    return answer.user;
  }

  async #ask(token: string): Promise<Answer> {
    const octokit = new Octokit({
      baseUrl: this.#apiUrl,
      auth: token,
      userAgent: "hallpass",
      request: { fetch: globalThis.fetch, signal: AbortSignal.timeout(this.#timeoutMs) },
      log: { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} },
    });
    try {
      const { data } = await octokit.rest.users.getAuthenticated();
      if (typeof data.id !== "number" || typeof data.login !== "string") {
        throw new Error("GET /user answered without id and login");
      }
      return { user: { id: data.id, login: data.login } };
    } catch (error) {
      const status = (error as { status?: number }).status;
      if (status === 401) {
        return {
          refused: new HallpassError(
            "GITHUB_TOKEN_INVALID",
            "GitHub did not accept the token (401 Bad credentials): log in again (gh auth login) or set GH_TOKEN",
          ),
        };
      }
      if (status === 403) {
        // An installation or Actions token: it does not stand for a person.
        return {
          refused: new HallpassError(
            "GITHUB_TOKEN_INVALID",
            "GitHub says this token does not belong to a user (403): use your own GitHub token",
          ),
        };
      }
      throw new HallpassError(
        "GITHUB_UNAVAILABLE",
        `GET /user failed (status ${status ?? "none"})`,
        {
          cause: error,
        },
      );
    }
  }

  /** Keeps the cache bounded: expired entries first, then the oldest. */
  #evict(now: number): void {
    if (this.#cache.size <= this.#maxEntries) return;
    for (const [key, entry] of this.#cache) {
      if (entry.until <= now) this.#cache.delete(key);
    }
    while (this.#cache.size > this.#maxEntries) {
      const oldest = this.#cache.keys().next().value;
      if (oldest === undefined) break;
      this.#cache.delete(oldest);
    }
  }
}
