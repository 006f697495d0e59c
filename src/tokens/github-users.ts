import { createHash } from "node:crypto";
import { Octokit } from "@octokit/rest";
import { LRUCache } from "lru-cache";
import { z } from "zod";
import { HallpassError } from "#src/errors.js";

/** A GitHub account, as GitHub names the owner of a token. */
export interface GitHubUser {
  readonly id: number;
  readonly login: string;
}

/** The GitHub App's OAuth client (`GITHUB_CLIENT_ID`, `GITHUB_CLIENT_SECRET`). */
export interface AppClient {
  readonly id: string;
  /** Never logged. */
  readonly secret: string;
}

export interface GitHubUsersOptions {
  /** REST API base URL (`config.github.apiUrl`). */
  readonly apiUrl: string;
  /** The App's client: tokens must have been issued to it. Null: not configured. */
  readonly client: AppClient | null;
  /**
   * The operator's `accept_other_github_tokens`: a token GitHub does not
   * know as the App's is still taken for whoever `GET /user` names.
   */
  readonly acceptOtherTokens: boolean;
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

/** What hallpass reads of GitHub's answer to "check a token" (`authorization`). */
const checkedToken = z.object({
  app: z.object({ client_id: z.string() }),
  user: z.object({ id: z.number().int().positive(), login: z.string().min(1) }).nullish(),
});
const authenticatedUser = z.object({ id: z.number().int().positive(), login: z.string().min(1) });

/**
 * Whose GitHub token a person presents, asked of GitHub and cached briefly.
 *
 * - With the App's client configured, GitHub is asked whether the token is
 *   a user token of that App (`POST /applications/{client_id}/token`, HTTP
 *   Basic with the client id and secret): the answer names the user. A token
 *   of anything else (a personal access token, another app's) is refused,
 *   unless the operator accepts other tokens.
 * - Other tokens, when accepted, are asked `GET /user` with the token.
 * - Neither configured: every token is refused before GitHub is asked
 *   (`PEOPLE_NOT_CONFIGURED`), saying what the operator must set.
 *
 * Cache keys are sha256 of the token: the token itself is never kept,
 * logged, or sent anywhere but GitHub. Concurrent checks of one token share
 * one request; a failed request (GitHub down) is not remembered.
 */
export class GitHubUsers {
  readonly #apiUrl: string;
  readonly #client: AppClient | null;
  readonly #acceptOtherTokens: boolean;
  readonly #refusedTtlMs: number;
  readonly #timeoutMs: number;
  readonly #cache: LRUCache<string, Answer, string>;

  constructor(options: GitHubUsersOptions) {
    this.#apiUrl = options.apiUrl;
    this.#client = options.client;
    this.#acceptOtherTokens = options.acceptOtherTokens;
    this.#refusedTtlMs = options.refusedTtlMs ?? 10_000;
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    const now = options.now ?? Date.now;
    this.#cache = new LRUCache<string, Answer, string>({
      max: options.maxEntries ?? 10_000,
      ttl: options.ttlMs ?? 60_000,
      perf: { now },
      fetchMethod: async (_key, _stale, { context, options: entry }) => {
        const answer = await this.#ask(context);
        if ("refused" in answer) entry.ttl = this.#refusedTtlMs;
        return answer;
      },
    });
  }

  /**
   * What stops people's tokens on this server, in words for the operator;
   * null when tokens can be checked.
   */
  get unconfigured(): string | null {
    if (this.#client || this.#acceptOtherTokens) return null;
    return "set GITHUB_CLIENT_ID and GITHUB_CLIENT_SECRET (the GitHub App's client id and secret, which its setup writes to .env), or accept_other_github_tokens: true in the operator config (HALLPASS_CONFIG)";
  }

  /**
   * @throws GITHUB_TOKEN_INVALID (401) when GitHub does not accept the token
   *   as a user token of the App (or, when other tokens are accepted, as a
   *   user's); PEOPLE_NOT_CONFIGURED (401) when no token can be checked;
   *   GITHUB_UNAVAILABLE (503) when GitHub cannot be asked
   */
  async whoIs(token: string): Promise<GitHubUser> {
    const unconfigured = this.unconfigured;
    if (unconfigured) {
      throw new HallpassError(
        "PEOPLE_NOT_CONFIGURED",
        `this hallpass server cannot check GitHub tokens; its operator must ${unconfigured}`,
      );
    }
    if (!token || token.length > MAX_TOKEN_LENGTH || /[^\x21-\x7e]/.test(token)) {
      throw new HallpassError(
        "GITHUB_TOKEN_INVALID",
        "send your GitHub token as Authorization: Bearer <token>",
      );
    }
    const key = createHash("sha256").update(token).digest("hex");
    const answer = await this.#cache.fetch(key, { context: token });
    if (!answer) throw new Error("the GitHub token check was aborted");
    if ("refused" in answer) throw answer.refused;
    return answer.user;
  }

  async #ask(token: string): Promise<Answer> {
    if (this.#client) {
      const checked = await this.#checkWithApp(token, this.#client);
      if (checked !== "not_ours") return checked;
      if (!this.#acceptOtherTokens) {
        return {
          refused: new HallpassError(
            "GITHUB_TOKEN_INVALID",
            "GitHub does not know this token as a user token of this server's GitHub App (expired, revoked, or another kind of token): run hallpass login",
          ),
        };
      }
    }
    return this.#askUser(token);
  }

  /**
   * GitHub's "check a token". Neither GitHub's error nor its body is kept as
   * a cause: the request's body and the answer carry the token in clear.
   */
  async #checkWithApp(token: string, client: AppClient): Promise<Answer | "not_ours"> {
    const basic = Buffer.from(`${client.id}:${client.secret}`).toString("base64");
    let data: unknown;
    try {
      ({ data } = await this.#octokit().request("POST /applications/{client_id}/token", {
        client_id: client.id,
        access_token: token,
        headers: { authorization: `basic ${basic}` },
      }));
    } catch (error) {
      const status = (error as { status?: number }).status;
      // 404: not a token of this client; 422: not a token at all.
      if (status === 404 || status === 422) return "not_ours";
      throw new HallpassError(
        "GITHUB_UNAVAILABLE",
        status === 401 || status === 403
          ? `GitHub refused the App's client credentials when checking a user token (status ${status}): check GITHUB_CLIENT_ID and GITHUB_CLIENT_SECRET`
          : `POST /applications/{client_id}/token failed (status ${status ?? "none"}: ${(error as Error).name})`,
      );
    }
    const parsed = checkedToken.safeParse(data);
    if (!parsed.success) {
      throw new HallpassError(
        "GITHUB_UNAVAILABLE",
        "GitHub's check of a token answered an unexpected body",
      );
    }
    const { app, user } = parsed.data;
    if (app.client_id !== client.id || !user) return "not_ours";
    return { user: { id: user.id, login: user.login } };
  }

  async #askUser(token: string): Promise<Answer> {
    const octokit = this.#octokit(token);
    try {
      const { data } = await octokit.rest.users.getAuthenticated();
      const user = authenticatedUser.safeParse(data);
      if (!user.success) throw new Error("GET /user answered without id and login");
      return { user: { id: user.data.id, login: user.data.login } };
    } catch (error) {
      const status = (error as { status?: number }).status;
      if (status === 401) {
        return {
          refused: new HallpassError(
            "GITHUB_TOKEN_INVALID",
            "GitHub did not accept the token (401 Bad credentials): run hallpass login, or set GH_TOKEN",
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

  #octokit(token?: string): Octokit {
    return new Octokit({
      baseUrl: this.#apiUrl,
      ...(token === undefined ? {} : { auth: token }),
      userAgent: "hallpass",
      request: { fetch: globalThis.fetch, signal: AbortSignal.timeout(this.#timeoutMs) },
      log: { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} },
    });
  }
}
