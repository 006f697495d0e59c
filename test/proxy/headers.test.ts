import { describe, expect, it } from "vitest";
import { readRequestHeaders, responseHeaders, stripCookies } from "#src/proxy/headers.js";

const options = { credentialHeader: "x-api-key", stripCookies: ["session"] };

function forwarded(raw: string[]): Record<string, string[]> {
  const read = readRequestHeaders(raw, options);
  if (!read.ok) throw new Error(read.message);
  const out: Record<string, string[]> = {};
  for (let i = 0; i < read.forward.length; i += 2) {
    const name = (read.forward[i] as string).toLowerCase();
    out[name] = [...(out[name] ?? []), read.forward[i + 1] as string];
  }
  return out;
}

describe("request headers", () => {
  it("forwards the caller's headers but its credentials, hop-by-hop ones and those the proxy sets", () => {
    const headers = forwarded([
      "Host",
      "proxy.example",
      "Authorization",
      "Bearer hallpass-token",
      "Proxy-Authorization",
      "Basic cHJveHk6c2VjcmV0",
      "X-API-Key",
      "callers-own-key",
      "Connection",
      "keep-alive, X-Secret-Hop",
      "X-Secret-Hop",
      "meant for the proxy only",
      "Keep-Alive",
      "timeout=5",
      "TE",
      "trailers",
      "Trailer",
      "x-checksum",
      "Upgrade",
      "websocket",
      "Proxy-Connection",
      "keep-alive",
      "Expect",
      "100-continue",
      "Content-Length",
      "12",
      "X-Request-Id",
      "spoofed",
      "Accept",
      "application/json",
      "X-Custom",
      "kept",
    ]);
    expect(headers).toEqual({ accept: ["application/json"], "x-custom": ["kept"] });
  });

  it("refuses repeated authorization, host and content-length", () => {
    for (const name of ["Authorization", "authorization", "Host", "Content-Length"]) {
      const read = readRequestHeaders([name, "1", name.toUpperCase(), "2"], options);
      expect(read).toEqual({
        ok: false,
        message: `the request repeats the ${name.toLowerCase()} header`,
      });
    }
  });

  it("accepts transfer-encoding chunked alone, and refuses any other coding or a second one", () => {
    expect(readRequestHeaders(["Transfer-Encoding", "Chunked"], options)).toMatchObject({
      ok: true,
      chunked: true,
    });
    for (const raw of [
      ["Transfer-Encoding", "xchunked"],
      ["Transfer-Encoding", "gzip, chunked"],
      ["Transfer-Encoding", "chunked", "Transfer-Encoding", "chunked"],
    ]) {
      expect(readRequestHeaders(raw, options), raw.join(" ")).toEqual({
        ok: false,
        message: "the request's transfer-encoding is not chunked alone",
      });
    }
  });

  it("reads the bearer credential from the one authorization header", () => {
    const read = readRequestHeaders(["authorization", "Bearer abc"], options);
    expect(read).toMatchObject({ ok: true, authorization: "Bearer abc" });
  });

  it("removes the operator's cookies, case-insensitively, and keeps the others", () => {
    expect(stripCookies("session=abc; theme=dark; Session=def;lang=en", ["session"])).toBe(
      "theme=dark; lang=en",
    );
    expect(forwarded(["Cookie", "session=abc"])).toEqual({});
    expect(forwarded(["Cookie", "a=1; session=2", "Cookie", "b=3"])).toEqual({
      cookie: ["a=1", "b=3"],
    });
  });
});

describe("response headers", () => {
  it("drops hop-by-hop headers, those connection names, and any that carries the credential", () => {
    const out = responseHeaders(
      {
        connection: "x-private, keep-alive",
        "keep-alive": "timeout=5",
        "transfer-encoding": "chunked",
        "x-private": "hop",
        "x-debug": "authorization was Bearer upstream-secret-1",
        "set-cookie": ["a=1", "leak=upstream-secret-1"],
        "content-type": "application/json",
        "x-request-id": "the upstream's",
      },
      "upstream-secret-1",
      "req-1",
    );
    expect(out).toEqual({ "content-type": "application/json", "x-request-id": "req-1" });
  });
});
