/**
 * The upstream of the proxy benchmark: the cheapest API Node can serve, a
 * fixed 64-byte JSON answer to every request (bodies are read and dropped).
 * `node --import tsx bench/proxy/upstream.ts <port>`; prints "ready" when listening.
 */
import { createServer } from "node:http";

const BODY = Buffer.from(JSON.stringify({ ok: true, data: "x".repeat(45) }));
const port = Number(process.argv[2] ?? 0);
const server = createServer((req, res) => {
  req.resume();
  req.on("end", () => {
    res.writeHead(200, { "content-type": "application/json", "content-length": BODY.length });
    res.end(BODY);
  });
});
server.keepAliveTimeout = 60_000;
server.listen(port, "127.0.0.1", () => console.log("ready"));
process.on("SIGTERM", () => server.close(() => process.exit(0)));
