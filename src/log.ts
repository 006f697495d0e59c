import { type Logger, pino } from "pino";
import type { LogLevel } from "#src/config.js";

export type { Logger };

/**
 * Paths that may hold a credential in anything we log. Pino replaces them
 * before serialising, so a careless `log.info({ req })` cannot leak one.
 */
const REDACT = [
  "req.headers.authorization",
  "req.headers.cookie",
  "req.headers['x-hub-signature-256']",
  "headers.authorization",
  "*.token",
  "*.privateKey",
  "*.webhookSecret",
  "*.masterKey",
  "*.password",
  "*.secret",
];

/** The process logger: JSON lines on stdout, as Probot and Fastify expect. */
export function createLogger(level: LogLevel, destination?: NodeJS.WritableStream): Logger {
  return pino(
    {
      name: "hallpass",
      level,
      redact: { paths: REDACT, censor: "[redacted]" },
      base: { pid: process.pid },
    },
    destination ?? process.stdout,
  );
}
