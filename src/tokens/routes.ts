import type { FastifyPluginAsync } from "fastify";
import { ZodError } from "zod";
import type { AppMetrics, TokenChannel } from "#src/app-metrics.js";
import type { Config } from "#src/config.js";
import { HallpassError, isHallpassError } from "#src/errors.js";
import { exchangeRequest } from "#src/tokens/exchange.js";
import { authenticateResource, type IntrospectionSecrets } from "#src/tokens/introspect.js";
import {
  buildJwks,
  buildLoginMetadata,
  buildMetadata,
  EXCHANGE_PATH,
  INTROSPECTION_PATH,
  JWKS_CACHE_CONTROL,
  JWKS_PATH,
  LOGIN_PATH,
  METADATA_PATH,
  PERSON_TOKEN_PATH,
  RELEASE_PATH,
} from "#src/tokens/metadata.js";
import { personTokenRequest } from "#src/tokens/people.js";
import { TokenBuckets } from "#src/tokens/rate-limit.js";
import { isRefusal } from "#src/tokens/refusal.js";
import type { TokenService } from "#src/tokens/service.js";

export interface TokenRoutesDeps {
  readonly config: Pick<Config, "publicUrl" | "github">;
  /** The running service; throws NOT_READY (503) until the database is ready. */
  readonly service: () => TokenService;
  /** Introspection secrets of the resources (from the operator config). */
  readonly introspectionSecrets: IntrospectionSecrets;
  readonly rateLimits?: RateLimits;
  /** Counts each token request's outcome, and refusals by code. */
  readonly metrics?: AppMetrics;
}

/** Token requests a minute, in each replica's memory (see `TokenBuckets`). */
export interface RateLimits {
  /** `POST /v1/exchange`, by the run's repository id. */
  readonly perRepository?: number;
  /** `POST /v1/token`, by the person's GitHub user id. */
  readonly perUser?: number;
  /**
   * Both, and introspection, by client address: refused requests (a
   * credential refused, a valid ID token refused for its run, a wrong
   * introspection secret). Each refused token request is audited, and the
   * audit log is one chain: past this, the address is answered 429 unread.
   */
  readonly refusedPerAddress?: number;
}

export const DEFAULT_RATE_LIMITS: Required<RateLimits> = {
  perRepository: 30,
  perUser: 10,
  refusedPerAddress: 60,
};

/** Form bodies are small: one token and nothing else worth reading. */
const FORM_BODY_LIMIT = 32 * 1024;

/**
 * The token service's HTTP surface:
 *
 * - `GET /.well-known/jwks.json`: every key that may still verify a live token.
 * - `GET /.well-known/openid-configuration`: issuer and endpoints, for standard JWT middleware.
 * - `POST /introspect` (RFC 7662): HTTP Basic as the resource, form `token=...`;
 *   a wrong secret spends the address's refusals, as a refused token request does.
 * - `POST /v1/release`: `Authorization: Bearer <token>` gives the token back.
 * - `POST /v1/exchange`: `Authorization: Bearer <GitHub Actions ID token>`,
 *   JSON `{resource, scopes?, ticket?}`; rate-limited by repository.
 * - `POST /v1/token`: `Authorization: Bearer <GitHub user token>`, JSON
 *   `{ticket: "owner/repo#N", scopes?, resource?}`; rate-limited by person.
 * - `GET /v1/login`: the App's client id and GitHub's URLs, for `hallpass login`.
 *
 * Both token requests answer `{token, expires_at, grant, scopes}`, or 429
 * with `retry-after` (seconds) past the limit, or (as introspection does)
 * past the refusals an address may have.
 */
export function tokenRoutes(deps: TokenRoutesDeps): FastifyPluginAsync {
  const limits = { ...DEFAULT_RATE_LIMITS, ...deps.rateLimits };
  const perRepository = new TokenBuckets({ perMinute: limits.perRepository });
  const perUser = new TokenBuckets({ perMinute: limits.perUser });
  const refusedPerAddress = new TokenBuckets({ perMinute: limits.refusedPerAddress });
  /** Runs a request unless its address spent its refusals; a refusal (`isRefusal`) spends one. */
  const guarded = async <T>(
    address: string,
    retryAfter: (s: number) => void,
    request: () => Promise<T>,
  ): Promise<T> => {
    const wait = refusedPerAddress.waitFor(address);
    if (wait > 0) {
      retryAfter(wait);
      throw new HallpassError(
        "RATE_LIMITED",
        `too many refused credentials from this address; retry in ${wait} s`,
      );
    }
    try {
      return await request();
    } catch (error) {
      if (isRefusal(error)) refusedPerAddress.take(address);
      throw error;
    }
  };
  /**
   * Counts a token request's end: minted once the mint committed (it has
   * when `request` resolves), refused by its code, rate limited, or failed
   * (the server's fault: not ready, the database away).
   */
  const counted = async <T>(channel: TokenChannel, request: () => Promise<T>): Promise<T> => {
    try {
      const minted = await request();
      deps.metrics?.token(channel, "minted");
      return minted;
    } catch (error) {
      if (isHallpassError(error, "RATE_LIMITED")) deps.metrics?.token(channel, "rate_limited");
      else if (isRefusal(error)) deps.metrics?.token(channel, "refused", error.code);
      else if (error instanceof ZodError) deps.metrics?.token(channel, "refused", "BAD_REQUEST");
      else deps.metrics?.token(channel, "failed");
      throw error;
    }
  };
  return async (app) => {
    app.addContentTypeParser(
      "application/x-www-form-urlencoded",
      { parseAs: "string", bodyLimit: FORM_BODY_LIMIT },
      (_request, body, done) => done(null, new URLSearchParams(body as string)),
    );
    // RFC 7235: a 401 names the scheme to authenticate with.
    app.addHook("onSend", async (request, reply, payload) => {
      if (reply.statusCode === 401 && !reply.hasHeader("www-authenticate")) {
        reply.header(
          "www-authenticate",
          request.routeOptions.url === INTROSPECTION_PATH
            ? 'Basic realm="hallpass"'
            : 'Bearer realm="hallpass", error="invalid_token"',
        );
      }
      return payload;
    });

    app.get(METADATA_PATH, async (_request, reply) => {
      reply.header("cache-control", JWKS_CACHE_CONTROL);
      return buildMetadata(deps.config.publicUrl);
    });

    app.get(LOGIN_PATH, async (_request, reply) => {
      const login = buildLoginMetadata(deps.config.github);
      reply.header("cache-control", JWKS_CACHE_CONTROL);
      return login;
    });

    app.get(JWKS_PATH, async (_request, reply) => {
      const keys = await deps.service().verifier.jwks();
      reply.header("cache-control", JWKS_CACHE_CONTROL);
      return buildJwks(keys);
    });

    app.post(INTROSPECTION_PATH, async (request, reply) => {
      const service = deps.service();
      reply.header("cache-control", "no-store");
      const retryAfter = (s: number) => reply.header("retry-after", String(s));
      const resource = await guarded(request.ip, retryAfter, async () =>
        authenticateResource(request.headers.authorization, deps.introspectionSecrets),
      );
      return service.introspect(resource, formToken(request.body));
    });

    app.post(RELEASE_PATH, async (request, reply) => {
      const service = deps.service();
      const outcome = await service.release(bearerToken(request.headers.authorization));
      reply.header("cache-control", "no-store");
      return outcome;
    });

    app.post(EXCHANGE_PATH, (request, reply) =>
      counted("actions", async () => {
        const service = deps.service();
        const body = exchangeRequest.parse(request.body ?? {});
        reply.header("cache-control", "no-store");
        const retryAfter = (s: number) => reply.header("retry-after", String(s));
        // A missing or malformed header is refused (and audited) as a malformed ID token.
        return guarded(request.ip, retryAfter, () =>
          service.exchange(presentedToken(request.headers.authorization), body, {
            limit: (repositoryId) =>
              perRepository.spend(String(repositoryId), `repository ${repositoryId}`, retryAfter),
          }),
        );
      }),
    );

    app.post(PERSON_TOKEN_PATH, (request, reply) =>
      counted("cli", async () => {
        const service = deps.service();
        const body = personTokenRequest.parse(request.body ?? {});
        reply.header("cache-control", "no-store");
        const retryAfter = (s: number) => reply.header("retry-after", String(s));
        return guarded(request.ip, retryAfter, () =>
          service.personToken(presentedToken(request.headers.authorization), body, {
            limit: (userId) => perUser.spend(String(userId), "you", retryAfter),
          }),
        );
      }),
    );
  };
}

/** The bearer credential, or "" (refused by the check that reads it). */
function presentedToken(authorization: string | undefined): string {
  return /^Bearer +(\S+) *$/i.exec(authorization ?? "")?.[1] ?? "";
}

/** The one `token` parameter of an RFC 7662 request. */
function formToken(body: unknown): string {
  if (!(body instanceof URLSearchParams)) {
    throw new HallpassError(
      "BAD_REQUEST",
      "send the token as application/x-www-form-urlencoded: token=...",
    );
  }
  const tokens = body.getAll("token");
  if (tokens.length !== 1 || !tokens[0]) {
    throw new HallpassError("BAD_REQUEST", "exactly one non-empty token parameter is required");
  }
  return tokens[0];
}

function bearerToken(authorization: string | undefined): string {
  const match = /^Bearer +([A-Za-z0-9._~+/-]+=*) *$/i.exec(authorization ?? "");
  if (!match?.[1]) {
    throw new HallpassError("INVALID_TOKEN", "send the token as Authorization: Bearer <token>");
  }
  return match[1];
}
