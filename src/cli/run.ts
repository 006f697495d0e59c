import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { type ParseArgsConfig, parseArgs, parseEnv } from "node:util";
import { runOnServer } from "#src/cli/admin-socket.js";
import { auditExport, auditVerify, type Output } from "#src/cli/audit.js";
import { CONFIG_CHECK_USAGE, configCheck } from "#src/cli/config-check.js";
import { INIT_USAGE, initCommand } from "#src/cli/init.js";
import { KEYS_USAGE, keysRotate } from "#src/cli/keys.js";
import { LOGIN_USAGE, loginCommand, logoutCommand } from "#src/cli/login.js";
import { POLICY_CHECK_USAGE, policyCheck } from "#src/cli/policy-check.js";
import { revokeCommand } from "#src/cli/revoke.js";
import { serve } from "#src/cli/serve.js";
import { TOKEN_USAGE, tokenCommand } from "#src/cli/token.js";
import { ConfigError, type DatabaseConfig, loadConfig, loadDatabaseConfig } from "#src/config.js";
import { HallpassError, isHallpassError } from "#src/errors.js";
import { createLogger } from "#src/log.js";
import { type Db, QueryError } from "#src/store/db.js";
import { migrate } from "#src/store/migrate.js";
import { openDb } from "#src/store/open.js";
import { loadMasterKey } from "#src/tokens/master-key.js";
import packageJson from "../../package.json" with { type: "json" };

const USAGE = `usage: hallpass <command> [flags]

  serve                          run the GitHub App, token service and proxy
  migrate                        apply database migrations and exit
  init [--repo DIR] [--resource NAME] [--force]
                                 set a repository up: policy, issue form, policy workflow
  policy check [--repo DIR] [--config FILE [--repo-id N --owner-id N]] [--json]
                                 check .github/hallpass.yml and CODEOWNERS in a checkout
  config check [FILE] [--json]   check the operator config (default: HALLPASS_CONFIG)
  audit verify [--json]          check the hash chain of the audit log
  audit export [--ticket o/r#N]  write the audit log (or one ticket's) as JSON lines
  keys rotate [--now [--revoke-old]]
                                 publish a new signing key
  revoke owner/repo#N | --grant ID [--reason TEXT]
                                 end a ticket's pending or active grant
  login [--url URL]              log in to a hallpass server with GitHub
  logout [--url URL]             forget that login
  token owner/repo#N [--scope S]... [--resource R] [--url URL] [-- command args...]
                                 an access token for your own grant
  --version                      print hallpass's version

hallpass <command> --help (or hallpass help <command>) lists a command's flags.

The server's commands (serve, migrate, config, audit, keys, revoke) read their
configuration from the environment and from ./.env, which fills in unset
variables. The commands of people (login, logout, token) read the
environment only, never a .env file; init and policy read neither. See README.md.
`;

const SERVE_USAGE = `usage: hallpass serve

  Runs the GitHub App, the token service and, with PROXY_PORT, the access
  proxy, until SIGTERM or SIGINT. Configuration comes from the environment
  and ./.env (see README.md); a bad value stops it with a line naming the variable.
`;

const MIGRATE_USAGE = `usage: hallpass migrate

  Applies the database migrations (DATABASE_URL, else the embedded database
  under HALLPASS_DATA_DIR) and exits. serve migrates too; this is for doing it first.
`;

const AUDIT_USAGE = `usage: hallpass audit verify [--json]
       hallpass audit export [--ticket owner/repo#N]

  verify           walk the audit hash chain; exit 1 at the first broken link,
                   naming the row and the kind of break
  --json           the verdict as one JSON object
  export           the audit log as JSON lines, re-hashable offline
  --ticket o/r#N   that ticket's evidence bundle, with a chain proof
`;

const REVOKE_USAGE = `usage: hallpass revoke owner/repo#N [--reason TEXT]
       hallpass revoke --grant ID [--reason TEXT]

  Ends a ticket's pending or active grant at once, as the operator; the
  ticket gets a comment saying so.

  --grant ID       the grant, by id, instead of the ticket
  --reason TEXT    written on the ticket and in the audit log
`;

/** Each command's usage: `hallpass <command> --help` prints it. */
const USAGES: Readonly<Record<string, string>> = {
  serve: SERVE_USAGE,
  migrate: MIGRATE_USAGE,
  init: INIT_USAGE,
  policy: POLICY_CHECK_USAGE,
  config: CONFIG_CHECK_USAGE,
  audit: AUDIT_USAGE,
  keys: KEYS_USAGE,
  revoke: REVOKE_USAGE,
  login: LOGIN_USAGE,
  logout: LOGIN_USAGE,
  token: TOKEN_USAGE,
};

/**
 * The commands that run the server, open its database or check its
 * configuration: they read the server's configuration, `.env` included. Every other command reads none:
 * a checkout's `.env` naming some server must not decide where a person's
 * GitHub token goes.
 */
const SERVER_COMMANDS: ReadonlySet<string> = new Set([
  "serve",
  "migrate",
  "config",
  "audit",
  "keys",
  "revoke",
]);

export interface CliOptions {
  /**
   * The `.env` file server commands fill unset variables from (as Probot
   * does); default `.env` of the working directory; null: none.
   */
  readonly dotEnv?: string | null;
  /**
   * The running server's own database: an operator command the server
   * carries out for a local client (see `admin-socket.ts`) uses it rather
   * than opening one.
   */
  readonly db?: Db;
}

/** What a command that needs the database is run with. */
interface Session {
  readonly argv: readonly string[];
  readonly out: Output;
  readonly db?: Db;
}

/**
 * Runs one CLI command. `--help` (or `-h`) before any `--` prints the
 * command's usage and runs nothing; a flag the command does not know is a
 * usage error naming it.
 *
 * @returns the exit code: 0 success, 1 failure (or a broken audit chain), 2 usage error
 */
export async function runCli(
  argv: readonly string[],
  out: Output = { stdout: process.stdout, stderr: process.stderr },
  env: NodeJS.ProcessEnv = process.env,
  options: CliOptions = {},
): Promise<number> {
  const [command, ...rest] = argv;
  const usage = command !== undefined && Object.hasOwn(USAGES, command) ? USAGES[command] : null;
  if (usage && wantsHelp(rest)) {
    out.stdout.write(usage);
    return 0;
  }
  const session: Session = { argv, out, ...(options.db ? { db: options.db } : {}) };
  try {
    if (command !== undefined && SERVER_COMMANDS.has(command) && !options.db) {
      loadDotEnv(env, options.dotEnv === undefined ? ".env" : options.dotEnv);
    }
    switch (command) {
      case "serve": {
        flags(rest, {});
        const config = loadConfig(env);
        return await serve(config, createLogger(config.logLevel), {
          // Operator commands a local client hands over, run on the server's database.
          runCommand: (argv, commandOut, db) => runCli(argv, commandOut, env, { db }),
        });
      }
      case "migrate":
        flags(rest, {});
        return await withDb(loadConfig(env).database, session, async (db) => {
          const applied = await migrate(db);
          out.stdout.write(
            applied.length === 0
              ? "database is up to date\n"
              : `applied ${applied.map((m) => `${m.version}_${m.name}`).join(", ")}\n`,
          );
          return 0;
        });
      case "audit":
        return await audit(rest, out, env, session);
      case "init":
        return await init(rest, out);
      case "policy":
        return await policy(rest, out);
      case "config":
        return await config(rest, out, env);
      case "keys":
        return await keys(rest, out, env, session);
      case "revoke":
        return await revoke(rest, out, env, session);
      case "token":
        return await tokenCommand(rest, out, { env });
      case "login":
        return await loginCommand(rest, out, env);
      case "logout":
        return await logoutCommand(rest, out, env);
      case "--version":
        flags(rest, {});
        out.stdout.write(`hallpass ${packageJson.version}\n`);
        return 0;
      case "help": {
        const [about, ...extra] = rest;
        const of = about !== undefined && Object.hasOwn(USAGES, about) ? USAGES[about] : null;
        if (extra.length > 0 || (about !== undefined && !of)) {
          out.stderr.write(`hallpass: no command ${JSON.stringify(about)}\n${USAGE}`);
          return 2;
        }
        out.stdout.write(of ?? USAGE);
        return 0;
      }
      case undefined:
      case "--help":
      case "-h":
        out.stdout.write(USAGE);
        return command === undefined ? 2 : 0;
      default:
        out.stderr.write(`hallpass: unknown command ${JSON.stringify(command)}\n${USAGE}`);
        return 2;
    }
  } catch (error) {
    if (error instanceof ConfigError) {
      for (const problem of error.problems) out.stderr.write(`hallpass: ${problem}\n`);
      return 1;
    }
    if (isHallpassError(error)) {
      out.stderr.write(`hallpass: ${error.message}\n`);
      return error.code === "BAD_REQUEST" ? 2 : 1;
    }
    if (error instanceof QueryError) {
      // An unreachable or refusing database: one line, its message already free of values.
      out.stderr.write(`hallpass: the database failed: ${error.message}\n`);
      return 1;
    }
    if (
      error instanceof TypeError &&
      (error as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")
    ) {
      const help = usage ? ` (hallpass ${command} --help lists its flags)` : "";
      out.stderr.write(`hallpass ${command ?? ""}: ${argumentProblem(error)}${help}\n`);
      return 2;
    }
    throw error;
  }
}

/** Whether the arguments ask for help: `--help` or `-h` before any `--`. */
function wantsHelp(args: readonly string[]): boolean {
  const own = args.includes("--") ? args.slice(0, args.indexOf("--")) : args;
  return own.includes("--help") || own.includes("-h");
}

/** `parseArgs`, strict: an unknown flag or a stray argument throws, named. */
function flags<T extends NonNullable<ParseArgsConfig["options"]>>(
  args: readonly string[],
  options: T,
  allowPositionals = false,
) {
  return parseArgs({ args: [...args], options, strict: true, allowPositionals });
}

/** Node's message for a bad argument, shortened where it is about an unknown flag. */
function argumentProblem(error: TypeError): string {
  const unknown = /^Unknown option '([^']+)'/.exec(error.message);
  if (unknown) return `unknown flag ${unknown[1]}`;
  const stray = /^Unexpected argument '([^']*)'/.exec(error.message);
  if (stray) return `unexpected argument ${JSON.stringify(stray[1])}`;
  return error.message;
}

async function audit(
  args: readonly string[],
  out: Output,
  env: NodeJS.ProcessEnv,
  session: Session,
): Promise<number> {
  const [sub, ...rest] = args;
  if (sub !== "verify" && sub !== "export") {
    out.stderr.write(AUDIT_USAGE);
    return 2;
  }
  // Each subcommand takes its own flags, checked before the database opens.
  let run: (db: Db) => Promise<number>;
  if (sub === "verify") {
    const { values } = flags(rest, { json: { type: "boolean" } });
    run = (db) => auditVerify(db, out, values.json === true);
  } else {
    const { values } = flags(rest, { ticket: { type: "string" } });
    run = (db) => auditExport(db, out, values.ticket);
  }
  // The audit log is hashes, never sealed: no master key, App or URL is needed to read it.
  return withDb(loadDatabaseConfig(env), session, async (db) => {
    await migrate(db);
    return run(db);
  });
}

async function init(args: readonly string[], out: Output): Promise<number> {
  const { values } = flags(args, {
    repo: { type: "string" },
    resource: { type: "string" },
    force: { type: "boolean" },
  });
  return initCommand(
    { repo: values.repo ?? ".", resource: values.resource, force: values.force === true },
    out,
  );
}

async function policy(args: readonly string[], out: Output): Promise<number> {
  const [sub, ...rest] = args;
  if (sub !== "check") {
    out.stderr.write(POLICY_CHECK_USAGE);
    return 2;
  }
  const { values } = flags(rest, {
    json: { type: "boolean" },
    repo: { type: "string" },
    config: { type: "string" },
    "repo-id": { type: "string" },
    "owner-id": { type: "string" },
  });
  const repoId = values["repo-id"];
  const ownerId = values["owner-id"];
  if ((repoId === undefined) !== (ownerId === undefined)) {
    throw new HallpassError("BAD_REQUEST", "--repo-id and --owner-id go together");
  }
  if (repoId !== undefined && values.config === undefined) {
    throw new HallpassError("BAD_REQUEST", "--repo-id and --owner-id need --config");
  }
  return policyCheck(values.repo ?? ".", values.json === true, out, {
    ...(values.config === undefined ? {} : { operatorConfig: values.config }),
    ...(repoId === undefined || ownerId === undefined
      ? {}
      : {
          repository: {
            id: githubId("--repo-id", repoId),
            ownerId: githubId("--owner-id", ownerId),
          },
        }),
  });
}

async function config(
  args: readonly string[],
  out: Output,
  env: NodeJS.ProcessEnv,
): Promise<number> {
  const [sub, ...rest] = args;
  if (sub !== "check") {
    out.stderr.write(CONFIG_CHECK_USAGE);
    return 2;
  }
  const { values, positionals } = flags(rest, { json: { type: "boolean" } }, true);
  if (positionals.length > 1) {
    throw new HallpassError("BAD_REQUEST", "config check takes one FILE");
  }
  return configCheck(positionals[0], values.json === true, out, env);
}

/** A GitHub database id, as `gh api` prints it. */
function githubId(flag: string, text: string): number {
  const id = Number(text);
  if (!/^[1-9]\d{0,15}$/.test(text) || !Number.isSafeInteger(id)) {
    throw new HallpassError("BAD_REQUEST", `${flag}: expected a GitHub id, a whole number above 0`);
  }
  return id;
}

async function keys(
  args: readonly string[],
  out: Output,
  env: NodeJS.ProcessEnv,
  session: Session,
): Promise<number> {
  const [sub, ...rest] = args;
  if (sub !== "rotate") {
    (sub === "--help" || sub === "help" ? out.stdout : out.stderr).write(KEYS_USAGE);
    return sub === "--help" || sub === "help" ? 0 : 2;
  }
  // keysRotate reads these flags itself; a bad one must fail before the key and database are opened.
  flags(rest, { now: { type: "boolean" }, "revoke-old": { type: "boolean" } });
  const config = loadConfig(env);
  // Handed to a running server, the rotation uses the server's master key.
  if (!session.db && config.database.kind === "pglite") {
    const code = await runOnServer(config.database.dataDir, session.argv, out);
    if (code !== null) return code;
    // Before the master key: none is made for a database that is not there.
    requireEmbeddedDb(config.database.dataDir, session);
  }
  const masterKey = await loadMasterKey(config);
  return withDb(config.database, session, async (db) => {
    await migrate(db);
    return keysRotate(db, masterKey, rest, out);
  });
}

async function revoke(
  args: readonly string[],
  out: Output,
  env: NodeJS.ProcessEnv,
  session: Session,
): Promise<number> {
  const { values, positionals } = flags(
    args,
    { grant: { type: "string" }, reason: { type: "string" } },
    true,
  );
  if ((positionals.length === 1) === (values.grant !== undefined) || positionals.length > 1) {
    out.stderr.write(REVOKE_USAGE);
    return 2;
  }
  const target = values.grant ? { grant: values.grant } : { ticket: positionals[0] ?? "" };
  return withDb(loadConfig(env).database, session, async (db) => {
    await migrate(db);
    return revokeCommand(db, out, target, values.reason ?? "no reason given");
  });
}

/** Fills unset variables of `env` from the file, if there is one (as `process.loadEnvFile`). */
function loadDotEnv(env: NodeJS.ProcessEnv, file: string | null): void {
  if (file === null || !existsSync(file)) return;
  for (const [name, value] of Object.entries(parseEnv(readFileSync(file, "utf8")))) {
    if (env[name] === undefined) env[name] = value;
  }
}

/** Refuses to go on when the embedded database does not exist (only `migrate` creates one). */
function requireEmbeddedDb(dataDir: string, session: Session): void {
  if (session.argv[0] === "migrate" || existsSync(path.join(dataDir, "PG_VERSION"))) return;
  throw new HallpassError(
    "DB_UNAVAILABLE",
    `there is no embedded database in ${dataDir}: run this where hallpass serve runs, or hallpass migrate first to create one (or set HALLPASS_DATA_DIR, or DATABASE_URL)`,
  );
}

/**
 * Runs `fn` on the database: the running server's when the command is
 * carried out for a local client; on the embedded database while a server
 * holds it, the whole command is handed to that server; else the database
 * is opened here, and an embedded one must already exist (only `migrate`
 * creates one: a command run in the wrong directory must not report on an
 * empty database it just made).
 */
async function withDb(
  database: DatabaseConfig,
  session: Session,
  fn: (db: Db) => Promise<number>,
): Promise<number> {
  if (session.db) return fn(session.db);
  if (database.kind === "pglite") {
    const { dataDir } = database;
    const code = await runOnServer(dataDir, session.argv, session.out);
    if (code !== null) return code;
    requireEmbeddedDb(dataDir, session);
  }
  const db = await openDb(database);
  try {
    return await fn(db);
  } finally {
    await db.close();
  }
}
