import { type ChildLoggerOptions, type LogFn, type Logger, pino } from "pino";
import pretty from "pino-pretty";
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
  // A secret's name as a line's own field, or one level down.
  "token",
  "privateKey",
  "webhookSecret",
  "masterKey",
  "password",
  "secret",
  "*.token",
  "*.privateKey",
  "*.webhookSecret",
  "*.masterKey",
  "*.password",
  "*.secret",
];

/**
 * Fields of library errors holding what was sent or stored, dropped from
 * logged errors: a statement's parameters and what the database quotes of
 * them (pg, PGlite), a webhook's payload (`@octokit/webhooks` attaches the
 * event to its errors), a request's and a response's body (Octokit).
 */
const PAYLOAD_FIELDS = new Set([
  "params",
  "parameters",
  "values",
  "detail",
  "where",
  "internalQuery",
  "payload",
  "body",
  "data",
]);

/**
 * Pino's error serializer (type, message and stack with causes, own
 * fields), then without payloads: `event` keeps its id and name,
 * `request` its method and URL, `response` its status and URL.
 */
export function serializeError(error: unknown): unknown {
  const serialized: unknown = pino.stdSerializers.err(error as Error);
  return serialized === error ? error : withoutPayload(serialized as Record<string, unknown>);
}

function withoutPayload(error: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(error)) {
    if (PAYLOAD_FIELDS.has(key) || value === undefined) continue;
    if (key === "event") out.event = pick(value, ["id", "name"]);
    else if (key === "request") out.request = pick(value, ["method", "url"]);
    else if (key === "response") out.response = pick(value, ["status", "url"]);
    else if (key === "aggregateErrors" && Array.isArray(value))
      out.aggregateErrors = value.map((e) => withoutPayload(e as Record<string, unknown>));
    else if (isSerializedError(value)) out[key] = withoutPayload(value);
    else out[key] = value;
  }
  return out;
}

function pick(value: unknown, keys: readonly string[]): Record<string, unknown> | null {
  if (value === null || typeof value !== "object") return null;
  const source = value as Record<string, unknown>;
  return Object.fromEntries(keys.filter((k) => k in source).map((k) => [k, source[k]]));
}

/** A webhook event as Probot logs it (`{ event }`): its id and name, not its payload. */
export function serializeEvent(event: unknown): unknown {
  return event !== null && typeof event === "object" && "payload" in event
    ? pick(event, ["id", "name"])
    : event;
}

/** An error nested in another, as pino's serializer leaves it. */
function isSerializedError(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && "type" in value && "stack" in value;
}

/**
 * The process logger: JSON lines on stdout, as log collectors expect; when
 * stdout is a terminal (and no destination is given), human-readable lines
 * (pino-pretty) instead. A line holds each key once (see {@link withBindings}).
 */
export function createLogger(level: LogLevel, destination?: NodeJS.WritableStream): Logger {
  const out =
    destination ??
    (process.stdout.isTTY
      ? pretty({
          sync: true,
          colorize: true,
          ignore: "pid,hostname",
          translateTime: "SYS:HH:MM:ss.l",
        })
      : process.stdout);
  const bare = pino(
    {
      level,
      redact: { paths: REDACT, censor: "[redacted]" },
      serializers: { err: serializeError, error: serializeError, event: serializeEvent },
      base: null,
      hooks: { logMethod: liftBoundFields },
    },
    out,
  );
  return withBindings(bare, { pid: process.pid, name: "hallpass" });
}

type Bindings = Record<string, unknown>;

/** What each logger of {@link withBindings} has bound. */
const bound = new WeakMap<object, Bindings>();

/**
 * A child of `bare` with `bindings`, whose own children lay theirs over
 * these. Pino writes a child's bindings after its parent's, a key already
 * bound included, and Probot names its loggers one inside another (`name`
 * "probot", then "octokit", "github" or "event", inside our "hallpass"):
 * log collectors would each keep one of the repeated keys, not always the
 * same. Here a key is written once, with the innermost value, the one
 * `JSON.parse` keeps.
 */
function withBindings(bare: Logger, bindings: Bindings, options?: ChildLoggerOptions): Logger {
  const logger = bare.child(bindings, options);
  bound.set(logger, bindings);
  logger.child = ((more: Bindings, moreOptions?: ChildLoggerOptions) =>
    withBindings(
      bare,
      { ...bindings, ...more },
      {
        ...options,
        ...moreOptions,
        level: moreOptions?.level ?? logger.level,
        serializers: { ...options?.serializers, ...moreOptions?.serializers },
      },
    )) as unknown as Logger["child"];
  return logger;
}

/**
 * A line's fields that a binding of its logger holds too (Probot logs each
 * GitHub request's body as a line's fields, a check run's `name` among
 * them) are written once, as bindings of a child: the line's value stands,
 * as pino intends for `JSON.parse`.
 */
function liftBoundFields(this: Logger, args: unknown[], method: LogFn): void {
  const [fields, ...rest] = args;
  const bindings = bound.get(this);
  if (
    bindings === undefined ||
    fields === null ||
    typeof fields !== "object" ||
    fields instanceof Error ||
    !Object.keys(fields).some((key) => key in bindings)
  ) {
    method.apply(this, args as Parameters<LogFn>);
    return;
  }
  const lifted: Bindings = {};
  const own: Bindings = {};
  for (const [key, value] of Object.entries(fields)) (key in bindings ? lifted : own)[key] = value;
  method.apply(this.child(lifted), [own, ...rest] as Parameters<LogFn>);
}
