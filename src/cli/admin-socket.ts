import { chmodSync, existsSync, mkdirSync, rmSync } from "node:fs";
import { createServer, request } from "node:http";
import path from "node:path";
import { Writable } from "node:stream";
import { z } from "zod";
import type { Output } from "#src/cli/audit.js";
import { HallpassError } from "#src/errors.js";
import type { Logger } from "#src/log.js";
import type { Component } from "#src/runtime.js";
import type { Db } from "#src/store/db.js";

/**
 * Operator commands while `hallpass serve` holds the embedded database.
 *
 * PGlite is one process's database: while the server runs, no other process
 * may open its data directory. So the server listens on a unix socket inside
 * a directory next to the data directory, both only its user's (0700 and
 * 0600), and a command run meanwhile (`revoke`, `keys rotate`, `audit`,
 * `migrate`) is handed to it and carried out there, on its database, its
 * output sent back. Who may connect is who may read the data directory:
 * the operator, who could read the whole database anyway, so the socket
 * needs no secret of its own (and none can leak).
 */
export const ADMIN_COMMANDS: ReadonlySet<string> = new Set(["revoke", "keys", "audit", "migrate"]);

/** The socket of the server that holds the embedded database in `dataDir`. */
export function adminSocketPath(dataDir: string): string {
  return path.join(`${dataDir}.admin`, "socket");
}

type Run = (argv: readonly string[], out: Output, db: Db) => Promise<number>;

const Invocation = z.object({ argv: z.array(z.string()).min(1).max(64) });

/** Serves operator commands on the admin socket of `dataDir`, run with `run` on `db`. */
export async function startAdminSocket(options: {
  readonly dataDir: string;
  readonly db: Db;
  readonly log: Logger;
  readonly run: Run;
}): Promise<Component> {
  const socket = adminSocketPath(options.dataDir);
  const dir = path.dirname(socket);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  rmSync(socket, { force: true }); // a socket left by a server that died
  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const parsed = Invocation.safeParse(safeJson(Buffer.concat(chunks).toString("utf8")));
    const command = parsed.success ? parsed.data.argv[0] : undefined;
    if (req.method !== "POST" || !parsed.success || !command || !ADMIN_COMMANDS.has(command)) {
      res.writeHead(400, { "content-type": "application/json" });
      res.end(
        JSON.stringify({ code: 2, stdout: "", stderr: "hallpass: not an operator command\n" }),
      );
      return;
    }
    const stdout = collect();
    const stderr = collect();
    let code: number;
    try {
      code = await options.run(
        parsed.data.argv,
        { stdout: stdout.stream, stderr: stderr.stream },
        options.db,
      );
    } catch (error) {
      options.log.error({ err: error, command }, "operator command failed");
      stderr.stream.write(`hallpass: ${command} failed: ${(error as Error).message}\n`);
      code = 1;
    }
    options.log.info({ command, code }, "operator command run for a local client");
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ code, stdout: stdout.text(), stderr: stderr.text() }));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(socket, () => resolve());
  });
  chmodSync(socket, 0o600);
  return {
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => {
          rmSync(socket, { force: true });
          resolve();
        });
        server.closeAllConnections();
      }),
  };
}

/**
 * Runs `argv` on the server that holds the embedded database in `dataDir`,
 * printing its output; null when no server listens there (then the caller
 * opens the database itself).
 */
export async function runOnServer(
  dataDir: string,
  argv: readonly string[],
  out: Output,
): Promise<number | null> {
  const socket = adminSocketPath(dataDir);
  if (!existsSync(socket)) return null;
  const answer = await new Promise<string | null>((resolve, reject) => {
    const req = request({ socketPath: socket, method: "POST", path: "/" }, async (res) => {
      const chunks: Buffer[] = [];
      for await (const chunk of res) chunks.push(chunk as Buffer);
      resolve(Buffer.concat(chunks).toString("utf8"));
    });
    req.on("error", (error: NodeJS.ErrnoException) => {
      // A socket left by a server that is gone: nobody holds the database.
      if (error.code === "ECONNREFUSED" || error.code === "ENOENT") resolve(null);
      else
        reject(
          new HallpassError(
            "DB_LOCKED",
            `cannot reach the running server at ${socket}: ${error.message}`,
          ),
        );
    });
    req.end(JSON.stringify({ argv }));
  });
  if (answer === null) return null;
  const reply = z
    .object({ code: z.number().int(), stdout: z.string(), stderr: z.string() })
    .safeParse(safeJson(answer));
  if (!reply.success) {
    throw new HallpassError(
      "DB_LOCKED",
      `the running server at ${socket} gave an answer hallpass cannot read`,
    );
  }
  out.stdout.write(reply.data.stdout);
  out.stderr.write(reply.data.stderr);
  return reply.data.code;
}

function collect(): { stream: Writable; text: () => string } {
  const parts: string[] = [];
  return {
    stream: new Writable({
      write(chunk, _encoding, done) {
        parts.push(String(chunk));
        done();
      },
    }),
    text: () => parts.join(""),
  };
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}
