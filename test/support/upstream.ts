/**
 * A local upstream API for proxy tests: a real HTTP (or HTTPS) server that
 * records what reaches it and answers by path:
 *
 * - `/echo/...`: 200, JSON of the method, URL, headers and body length it got
 * - `/status/<n>`: that status, empty body
 * - `/bytes/<n>`: 200, n bytes streamed in 64 KiB chunks
 * - `/upload`: reads the body (streamed), 200 with its byte count
 * - `/reflect`: 200, with the request's `authorization` copied into `x-seen-authorization`
 * - `/slow/<ms>`: answers after ms milliseconds
 * - `/hang`: never answers
 * - `/stall`: 200 and a first chunk of the body, then nothing more
 * - `/hop`: 200 with hop-by-hop headers and a header its `connection` names
 * - `/reset`: resets the connection (TCP RST) as soon as the headers arrive
 * - anything else: 200, `{"ok": true}`
 */
import { createServer as createHttpServer, type IncomingMessage, type Server } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";

export interface Seen {
  readonly method: string;
  readonly url: string;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly rawHeaders: string[];
  readonly bodyBytes: number;
}

/** A request as it arrived: its headers, before any of its body. */
export interface Arrival {
  readonly method: string;
  readonly url: string;
  readonly headers: Record<string, string | string[] | undefined>;
}

export interface Upstream {
  readonly url: string;
  /** Every request whose headers reached the upstream, in order, whether or not its body ended. */
  readonly arrived: Arrival[];
  /** Every request that reached the upstream whole (its body ended), in order. */
  readonly seen: Seen[];
  /** Requests whose connection closed before their answer was complete (`method url`). */
  readonly cutShort: string[];
  close(): Promise<void>;
}

const CHUNK = Buffer.alloc(64 * 1024, 0x61);

export async function startUpstream(
  options: { tls?: { key: string; cert: string } } = {},
): Promise<Upstream> {
  const seen: Seen[] = [];
  const arrived: Arrival[] = [];
  const cutShort: string[] = [];
  const handler = (req: IncomingMessage, res: import("node:http").ServerResponse) => {
    const url = req.url ?? "/";
    arrived.push({ method: req.method ?? "", url, headers: { ...req.headers } });
    res.on("close", () => {
      if (!res.writableFinished) cutShort.push(`${req.method} ${url}`);
    });
    if (url.startsWith("/reset")) {
      req.socket.resetAndDestroy();
      return;
    }
    const record = (bodyBytes: number) =>
      seen.push({
        method: req.method ?? "",
        url,
        headers: { ...req.headers },
        rawHeaders: [...req.rawHeaders],
        bodyBytes,
      });
    if (url.startsWith("/upload")) {
      let bytes = 0;
      req.on("data", (chunk: Buffer) => {
        bytes += chunk.length;
      });
      req.on("end", () => {
        record(bytes);
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ bytes }));
      });
      return;
    }
    let bytes = 0;
    req.on("data", (chunk: Buffer) => {
      bytes += chunk.length;
    });
    req.on("end", () => {
      record(bytes);
      const status = /^\/status\/(\d{3})/.exec(url);
      const big = /^\/bytes\/(\d+)/.exec(url);
      const slow = /^\/slow\/(\d+)/.exec(url);
      if (status) {
        res.writeHead(Number(status[1]));
        res.end();
      } else if (big) {
        let left = Number(big[1]);
        res.writeHead(200, { "content-type": "application/octet-stream", "content-length": left });
        const write = () => {
          while (left > 0) {
            const piece = left >= CHUNK.length ? CHUNK : CHUNK.subarray(0, left);
            left -= piece.length;
            if (!res.write(piece)) return void res.once("drain", write);
          }
          res.end();
        };
        write();
      } else if (url.startsWith("/reflect")) {
        res.writeHead(200, {
          "x-seen-authorization": String(req.headers.authorization ?? ""),
          "content-type": "application/json",
        });
        res.end("{}");
      } else if (slow) {
        setTimeout(() => {
          res.writeHead(200, { "content-type": "application/json" });
          res.end("{}");
        }, Number(slow[1]));
      } else if (url.startsWith("/hang")) {
        // never answers
      } else if (url.startsWith("/stall")) {
        res.writeHead(200, { "content-type": "text/plain" });
        res.write("first chunk, then silence");
      } else if (url.startsWith("/hop")) {
        res.writeHead(200, {
          connection: "x-private, keep-alive",
          "x-private": "for the proxy only",
          "keep-alive": "timeout=5",
          "x-public": "for the caller",
        });
        res.end("{}");
      } else if (url.startsWith("/echo")) {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(
          JSON.stringify({ method: req.method, url, headers: req.headers, bodyBytes: bytes }),
        );
      } else {
        res.writeHead(200, { "content-type": "application/json" });
        res.end('{"ok":true}');
      }
    });
  };
  const server: Server = options.tls
    ? createHttpsServer({ key: options.tls.key, cert: options.tls.cert }, handler)
    : createHttpServer(handler);
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `${options.tls ? "https" : "http"}://127.0.0.1:${port}`,
    arrived,
    seen,
    cutShort,
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
