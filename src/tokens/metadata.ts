import type { Config } from "#src/config.js";
import { HallpassError } from "#src/errors.js";
import type { PublicJwk } from "#src/store/keys.js";
import { JWKS_MAX_AGE_S } from "#src/tokens/keys.js";

export const JWKS_PATH = "/.well-known/jwks.json";
export const METADATA_PATH = "/.well-known/openid-configuration";
export const INTROSPECTION_PATH = "/introspect";
export const RELEASE_PATH = "/v1/release";
export const EXCHANGE_PATH = "/v1/exchange";
export const PERSON_TOKEN_PATH = "/v1/token";
export const LOGIN_PATH = "/v1/login";

/** `Cache-Control` of the JWKS; the rotation delay is twice this max-age. */
export const JWKS_CACHE_CONTROL = `public, max-age=${JWKS_MAX_AGE_S}`;

/** The JWK Set document (RFC 7517): each key with `kid`, `alg: EdDSA`, `use: sig`. */
export function buildJwks(keys: readonly PublicJwk[]): { keys: PublicJwk[] } {
  return {
    keys: keys.map((k) => ({
      kty: k.kty,
      crv: k.crv,
      x: k.x,
      kid: k.kid,
      alg: "EdDSA",
      use: "sig",
    })),
  };
}

/**
 * The discovery document standard JWT middleware reads to find the issuer's
 * keys (OpenID Connect Discovery / RFC 8414 field names). hallpass is not an
 * OpenID Provider: only what a verifier of its tokens needs is listed.
 */
export function buildMetadata(publicUrl: string) {
  return {
    issuer: publicUrl,
    jwks_uri: `${publicUrl}${JWKS_PATH}`,
    introspection_endpoint: `${publicUrl}${INTROSPECTION_PATH}`,
    introspection_endpoint_auth_methods_supported: ["client_secret_basic"],
    id_token_signing_alg_values_supported: ["EdDSA"],
  };
}

/** What `hallpass login` needs of the server: `GET /v1/login`. */
export interface LoginMetadata {
  /** The GitHub App's client id: the device flow asks for a user token of it. */
  readonly client_id: string;
  /** GitHub's web URL (the device flow's endpoints live there). */
  readonly github_url: string;
  /** GitHub's REST API base URL. */
  readonly github_api_url: string;
}

/**
 * The public half of the App's OAuth client and the GitHub it lives on, so
 * that a person needs nothing but the server's URL to log in. Nothing here
 * is secret: GitHub shows a client id to anyone who starts its flow.
 *
 * @throws NOT_FOUND when the App's client is not configured
 */
export function buildLoginMetadata(github: Config["github"]): LoginMetadata {
  if (!github.client) {
    throw new HallpassError(
      "NOT_FOUND",
      "this hallpass server has no GitHub App client configured for hallpass login: its operator sets GITHUB_CLIENT_ID and GITHUB_CLIENT_SECRET",
    );
  }
  return {
    client_id: github.client.id,
    github_url: github.webUrl,
    github_api_url: github.apiUrl,
  };
}
