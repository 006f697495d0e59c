#!/usr/bin/env node
import { runCli } from "#src/cli/run.js";

/** After a command returned, anything still holding the event loop gets this long, then the process exits. */
const EXIT_GRACE_MS = 2_000;

// A reader that stops early (`hallpass audit export | head`) closes the pipe:
// the command's output is no longer wanted, which is not a crash.
for (const stream of [process.stdout, process.stderr]) {
  stream.on("error", (error: NodeJS.ErrnoException) => {
    if (error.code === "EPIPE") process.exit(process.exitCode ?? 0);
    throw error;
  });
}

// Server commands read ./.env themselves (runCli); the commands of people read none.
const code = await runCli(process.argv.slice(2));
process.exitCode = code;
// A library handle left open (a socket, a timer) must never keep a stopped
// server, or a failed start, alive: exit once the grace is over.
setTimeout(() => process.exit(code), EXIT_GRACE_MS).unref();
