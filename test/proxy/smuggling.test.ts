/**
 * Request smuggling and header tricks, sent as bytes: whatever the caller
 * writes, the upstream sees at most the one request the proxy checked, with
 * the proxy's credential and none of the caller's.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { primaryBackend } from "../support/db.js";
import { type ProxyHarness, startProxyHarness, UPSTREAM_CREDENTIAL } from "../support/proxy.js";
import { rawRequest } from "../support/raw-http.js";

describe("the proxy against request smuggling", () => {
  let p: ProxyHarness;
  let token: string;
  let host: string;
  beforeAll(async () => {
    p = await startProxyHarness(primaryBackend);
    const { grantId } = await p.grant({ permissions: ["* /upload", "GET /echo/**"] });
    token = await p.token(grantId);
    host = new URL(p.url).host;
  });
  afterAll(() => p.close());

  const send = (head: string[], body = "") =>
    rawRequest(p.url, `${head.join("\r\n")}\r\n\r\n${body}`);
  /** Requests whose headers reached the upstream since `before` (of `p.upstream.arrived`). */
  const seenSince = (before: number) =>
    p.upstream.arrived.slice(before).map((s) => `${s.method} ${s.url}`);

  it("refuses Transfer-Encoding together with Content-Length", async () => {
    const before = p.upstream.arrived.length;
    const response = await send(
      [
        "POST /payments-api/upload HTTP/1.1",
        `Host: ${host}`,
        `Authorization: Bearer ${token}`,
        "Content-Length: 6",
        "Transfer-Encoding: chunked",
      ],
      "0\r\n\r\nGET /payments-api/admin HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    expect(response?.status).toBe(400);
    expect(seenSince(before)).toEqual([]);
  });

  it("refuses two Content-Length headers, equal or not", async () => {
    for (const second of ["5", "50"]) {
      const before = p.upstream.arrived.length;
      const response = await send(
        [
          "POST /payments-api/upload HTTP/1.1",
          `Host: ${host}`,
          `Authorization: Bearer ${token}`,
          "Content-Length: 5",
          `Content-Length: ${second}`,
        ],
        "hello",
      );
      expect(response?.status, second).toBe(400);
      expect(seenSince(before)).toEqual([]);
    }
  });

  it("refuses a second Authorization header, whichever comes first", async () => {
    for (const pair of [
      [`Bearer ${token}`, "Bearer forged"],
      ["Bearer forged", `Bearer ${token}`],
    ]) {
      const before = p.upstream.arrived.length;
      const response = await send([
        "GET /payments-api/echo HTTP/1.1",
        `Host: ${host}`,
        `Authorization: ${pair[0]}`,
        `Authorization: ${pair[1]}`,
        "Connection: close",
      ]);
      expect(response?.status).toBe(400);
      expect(JSON.parse(response?.body ?? "{}")).toMatchObject({ error: "PROXY_HEADERS" });
      expect(seenSince(before)).toEqual([]);
    }
  });

  it("drops what Connection names, and still sends the injected credential", async () => {
    const before = p.upstream.arrived.length;
    const response = await send([
      "GET /payments-api/echo/x HTTP/1.1",
      `Host: ${host}`,
      `Authorization: Bearer ${token}`,
      "Connection: authorization, x-custom, close",
      "X-Custom: hop",
      "X-Kept: kept",
    ]);
    expect(response?.status).toBe(200);
    const [seen] = p.upstream.seen.slice(before);
    expect(seen?.headers.authorization).toBe(`Bearer ${UPSTREAM_CREDENTIAL}`);
    expect(seen?.headers["x-custom"]).toBeUndefined();
    expect(seen?.headers["x-kept"]).toBe("kept");
  });

  it("refuses obs-fold continuation lines", async () => {
    const before = p.upstream.arrived.length;
    const folded = await send([
      "GET /payments-api/echo HTTP/1.1",
      `Host: ${host}`,
      `Authorization: Bearer ${token}`,
      "X-Folded: first",
      " Authorization: Bearer forged",
      "Connection: close",
    ]);
    expect(folded?.status).toBe(400);
    const foldedToken = await send([
      "GET /payments-api/echo HTTP/1.1",
      `Host: ${host}`,
      "Authorization: Bearer",
      ` ${token}`,
      "Connection: close",
    ]);
    expect(foldedToken?.status).toBe(400);
    expect(seenSince(before)).toEqual([]);
  });

  it("refuses odd Transfer-Encodings and control characters in headers", async () => {
    const before = p.upstream.arrived.length;
    for (const head of [
      ["Transfer-Encoding: chunked, identity"],
      ["Transfer-Encoding: xchunked"],
      ["Transfer-Encoding : chunked"],
      ["X-Bad: a\u0000b"],
      ["X-Bad: a\rb"],
    ]) {
      const response = await send(
        [
          "POST /payments-api/upload HTTP/1.1",
          `Host: ${host}`,
          `Authorization: Bearer ${token}`,
          ...head,
        ],
        "0\r\n\r\n",
      );
      expect(response?.status, head[0]).toBe(400);
      // Whether the parser or the proxy refused it, it names the headers.
      expect(JSON.parse(response?.body ?? "{}"), head[0]).toMatchObject({
        error: "PROXY_HEADERS",
      });
    }
    expect(seenSince(before)).toEqual([]);
  });

  it("never reads a refused request's body as the next request", async () => {
    const before = p.upstream.arrived.length;
    const smuggled = `GET /payments-api/echo/smuggled HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer ${token}\r\n\r\n`;
    const response = await send(
      [
        "POST /payments-api/admin HTTP/1.1",
        `Host: ${host}`,
        `Authorization: Bearer ${token}`,
        `Content-Length: ${Buffer.byteLength(smuggled)}`,
      ],
      smuggled,
    );
    expect(response?.status).toBe(403);
    expect(response?.text.match(/HTTP\/1\.1 /g)).toHaveLength(1);
    expect(seenSince(before)).toEqual([]);
  });

  it("names what the parser refused, the request line or the headers, and counts it", async () => {
    const refusals = async (reason: string) =>
      Number(
        new RegExp(
          `^hallpass_proxy_refusals_total\\{resource="\\(unknown\\)",reason="${reason}"\\} (\\d+)$`,
          "m",
        ).exec(await p.scrape())?.[1] ?? 0,
      );
    const [headers, target] = [
      await refusals("PROXY_HEADERS"),
      await refusals("PROXY_REQUEST_TARGET"),
    ];
    const folded = await send([
      "GET /payments-api/echo HTTP/1.1",
      `Host: ${host}`,
      "X-Folded: first",
      " second",
    ]);
    expect(folded?.status).toBe(400);
    expect(JSON.parse(folded?.body ?? "{}")).toMatchObject({ error: "PROXY_HEADERS" });
    const badLine = await send(["GET /payments-api/echo two words HTTP/1.1", `Host: ${host}`]);
    expect(badLine?.status).toBe(400);
    expect(JSON.parse(badLine?.body ?? "{}")).toMatchObject({ error: "PROXY_REQUEST_TARGET" });
    expect(await refusals("PROXY_HEADERS")).toBe(headers + 1);
    expect(await refusals("PROXY_REQUEST_TARGET")).toBe(target + 1);
  });
});
