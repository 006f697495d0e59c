/**
 * A small HTTP API that accepts hallpass tokens itself, without the access
 * proxy (docs/verify-tokens.md). Node.js 20 or later; one dependency, jose.
 *
 *   HALLPASS_URL=https://hallpass.acme.dev \
 *   HALLPASS_AUDIENCE=acme/payments/payments-api \
 *   HALLPASS_RESOURCE=payments-api \
 *   HALLPASS_INTROSPECTION_SECRET=... \
 *   PORT=8080 node server.mjs
 *
 * Every request, in order:
 *
 * 1. A token in `Authorization: Bearer`, and only there.          401
 * 2. Signed by a key of hallpass's JWKS (EdDSA), `typ` at+jwt, `iss` the
 *    hallpass server, `aud` this API, not expired.                 401
 * 3. A path this API reads one way only.                           400
 * 4. `METHOD /path` within the token's `hallpass.permissions`.     403
 * 5. Still active, asked of hallpass's introspection: a revoked
 *    grant or a released token is refused at once.                 401
 *    (hallpass unreachable: 503; nothing is served unchecked.)
 */
import { createServer } from "node:http";
import { createRemoteJWKSet, errors, jwtVerify } from "jose";
import { allows, requestSegments } from "./permissions.mjs";

const issuer = required("HALLPASS_URL").replace(/\/+$/, "");
const audience = required("HALLPASS_AUDIENCE");
const resource = required("HALLPASS_RESOURCE");
const introspectionSecret = required("HALLPASS_INTROSPECTION_SECRET");
const port = Number(process.env.PORT ?? 8080);
const host = process.env.HOST ?? "127.0.0.1";

// hallpass serves its keys with max-age=300: keep them no longer (jose's default is 10 minutes),
// so that a key hallpass withdraws stops verifying here within 5 minutes. An unknown kid
// (a new key) makes jose fetch the set again at once, at most every 30 s.
const keys = createRemoteJWKSet(new URL(`${issuer}/.well-known/jwks.json`), {
  cacheMaxAge: 300_000,
});
const client = `Basic ${Buffer.from(
  `${encodeURIComponent(resource)}:${encodeURIComponent(introspectionSecret)}`,
).toString("base64")}`;

const server = createServer((request, response) => {
  handle(request).then(
    ({ status, body, challenge }) => {
      response.statusCode = status;
      response.setHeader("content-type", "application/json");
      response.setHeader("cache-control", "no-store");
      if (challenge) response.setHeader("www-authenticate", challenge);
      response.end(JSON.stringify(body));
    },
    (error) => {
      console.error("verify-tokens: request failed", error);
      response.statusCode = 500;
      response.end();
    },
  );
});

async function handle(request) {
  // 1. The token.
  const token = /^Bearer +([A-Za-z0-9._~+/-]+=*) *$/i.exec(
    request.headers.authorization ?? "",
  )?.[1];
  if (!token) {
    // RFC 6750: no credentials, no error code; just how to authenticate.
    const body = {
      error: "invalid_request",
      error_description: "send Authorization: Bearer <token>",
    };
    return { status: 401, body, challenge: `Bearer realm="${resource}"` };
  }

  // 2. Signature, type, issuer, audience and times.
  let claims;
  try {
    ({ payload: claims } = await jwtVerify(token, keys, {
      algorithms: ["EdDSA"],
      typ: "at+jwt",
      issuer,
      audience,
      requiredClaims: ["exp", "iat", "jti", "sub"],
      clockTolerance: 5,
    }));
  } catch (error) {
    if (keysUnavailable(error)) {
      console.error("verify-tokens: cannot read hallpass's keys", error);
      return { status: 503, body: { error: "temporarily_unavailable" } };
    }
    return refuse(401, "invalid_token", `token not accepted (${error.code})`);
  }

  // 3. The path, without its query.
  const target = request.url ?? "";
  const path = target.split("?")[0];
  const segments = requestSegments(path);
  if (segments === null) {
    return refuse(400, "invalid_request", "path not accepted: no percent-encoding, ., .., // or ;");
  }

  // 4. Within the permissions the token carries.
  if (!allows(claims.hallpass?.permissions, request.method, segments)) {
    return refuse(
      403,
      "insufficient_scope",
      `${request.method} ${path} is not within this token's permissions`,
    );
  }

  // 5. Still active.
  let active;
  try {
    active = await introspect(token);
  } catch (error) {
    console.error("verify-tokens: introspection failed", error);
    return { status: 503, body: { error: "temporarily_unavailable" } };
  }
  if (!active)
    return refuse(
      401,
      "invalid_token",
      "token no longer active (revoked, released or its grant ended)",
    );

  // The API's own work; here, who called and with what.
  return {
    status: 200,
    body: {
      method: request.method,
      path,
      sub: claims.sub,
      scope: claims.scope,
      ticket: claims.hallpass?.ticket,
    },
  };
}

/**
 * Whether hallpass's key set could not be read (network, timeout, an answer
 * that is not a key set): hallpass's trouble, not the caller's. jose throws a
 * subclass with its own code for everything wrong with the token itself.
 */
function keysUnavailable(error) {
  return (
    !(error instanceof errors.JOSEError) ||
    error.code === errors.JOSEError.code ||
    error instanceof errors.JWKSTimeout ||
    error instanceof errors.JWKSInvalid
  );
}

/** RFC 7662 introspection: true only while hallpass says the token is active. */
async function introspect(token) {
  const response = await fetch(`${issuer}/introspect`, {
    method: "POST",
    headers: {
      authorization: client,
      "content-type": "application/x-www-form-urlencoded",
      accept: "application/json",
    },
    body: new URLSearchParams({ token }),
    signal: AbortSignal.timeout(5_000),
  });
  if (response.status !== 200) throw new Error(`introspection answered ${response.status}`);
  const answer = await response.json();
  return answer.active === true;
}

/** An RFC 6750 refusal; 401s and 403s say so in `WWW-Authenticate` too. */
function refuse(status, error, description) {
  const challenge =
    status === 401 || status === 403
      ? `Bearer realm="${resource}", error="${error}", error_description="${description.replace(/["\\]/g, "")}"`
      : undefined;
  return { status, body: { error, error_description: description }, challenge };
}

function required(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`verify-tokens: set ${name} (see docs/verify-tokens.md)`);
    process.exit(2);
  }
  return value;
}

server.listen(port, host, () => {
  const { port: listening } = server.address();
  console.log(
    `verify-tokens: listening on http://${host}:${listening}, for tokens of ${issuer} to ${audience}`,
  );
});
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => server.close());
