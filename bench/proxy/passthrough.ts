/**
 * Baseline (b) of the proxy benchmark: a pass-through proxy on hallpass's
 * own forwarding (`relay`, an undici keep-alive pool), with no checks and
 * nothing recorded: the ceiling of a Node proxy built this way.
 * `node --import tsx bench/proxy/passthrough.ts <port> <upstream url>`.
 */
import { createServer } from "node:http";
import { Pool } from "undici";
import { relay } from "#src/proxy/relay.js";

const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "transfer-encoding",
  "host",
  "te",
  "upgrade",
]);
const port = Number(process.argv[2] ?? 0);
const upstream = new URL(process.argv[3] ?? "http://127.0.0.1:1");
const pool = new Pool(upstream.origin, {
  connections: 256,
  pipelining: 1,
  keepAliveTimeout: 30_000,
});

const server = createServer(async (req, res) => {
  const headers: string[] = [];
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i] as string;
    if (!HOP_BY_HOP.has(name.toLowerCase())) headers.push(name, req.rawHeaders[i + 1] as string);
  }
  headers.push("host", upstream.host);
  const hasBody =
    req.headers["content-length"] !== undefined && req.headers["content-length"] !== "0";
  const { error } = await relay(
    pool,
    {
      path: (req.url ?? "/").replace(/^\/[^/]+/, "") || "/",
      method: req.method ?? "GET",
      headers,
      body: hasBody ? req : null,
    },
    res,
    (upstreamHeaders) => {
      const out: Record<string, string | string[]> = {};
      for (const name in upstreamHeaders) {
        const value = upstreamHeaders[name];
        if (value !== undefined && !HOP_BY_HOP.has(name)) out[name] = value;
      }
      return out;
    },
  );
  if (error && !res.headersSent) res.writeHead(502).end();
  else if (error) res.destroy();
});
server.keepAliveTimeout = 65_000;
server.listen(port, "127.0.0.1", () => console.log("ready"));
process.on("SIGTERM", () => server.close(() => process.exit(0)));
