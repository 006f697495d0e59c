import { readFile, stat } from "node:fs/promises";
import type { Output } from "#src/cli/audit.js";
import { formatCheckError } from "#src/cli/policy-check.js";
import { HallpassError, isHallpassError } from "#src/errors.js";
import { checkProxyConfig } from "#src/proxy/server.js";
import { formatDuration } from "#src/rules/duration.js";
import {
  OPERATOR_MAX_CHARS,
  type OperatorConfig,
  type OperatorResource,
  parseOperatorYaml,
  type SecretRef,
} from "#src/rules/operator.js";
import { resolveSecrets } from "#src/rules/secrets.js";
import { loadYaml, parsePath, type SourceError } from "#src/rules/yaml-source.js";

export const CONFIG_CHECK_USAGE = `usage: hallpass config check [FILE] [--json]

  Checks the operator config as the server reads it at start, without
  starting it: the schema (bindings, ceilings, upstreams, credentials), and
  that every env: and file: reference resolves here (values are read, never
  shown). Errors are printed as file:line: key: message; exit 1 on any.

  FILE     the operator config (default: HALLPASS_CONFIG, of the environment
           or ./.env, as for serve)
  --json   the report as one JSON object
`;

/** What `config check` found. */
export interface ConfigCheckReport {
  readonly file: string;
  /** Who named the file. */
  readonly source: "argument" | "HALLPASS_CONFIG";
  /** `null` when the file does not parse. */
  readonly config: OperatorConfig | null;
  readonly errors: readonly SourceError[];
  readonly warnings: readonly string[];
}

/**
 * `hallpass config check [FILE] [--json]`: the operator config checked as
 * `loadOperator` checks it when the server starts.
 *
 * 1. Parse and validate it (`parseOperatorYaml`): every error names its key
 *    path and line; a YAML syntax error is the first one, with an excerpt.
 * 2. Resolve its secret references (`resolveSecrets`) against this
 *    environment and filesystem, as the server would: unset variables,
 *    unreadable or empty files, short introspection secrets, CA files
 *    without a certificate. Values are never printed.
 * 3. Warn when `PROXY_PORT` of this environment and the upstreams disagree,
 *    which stops the server (`checkProxyConfig`).
 *
 * @returns 0 when there is no error, 1 otherwise
 */
export async function configCheck(
  file: string | undefined,
  json: boolean,
  out: Output,
  env: NodeJS.ProcessEnv,
): Promise<number> {
  const fromEnv = env.HALLPASS_CONFIG?.trim();
  const path = file ?? (fromEnv === "" ? undefined : fromEnv);
  if (path === undefined) {
    throw new HallpassError(
      "BAD_REQUEST",
      "config check: no file; name it, or set HALLPASS_CONFIG as for the server",
    );
  }
  const report = await check(path, file === undefined ? "HALLPASS_CONFIG" : "argument", env);
  if (json) {
    out.stdout.write(`${JSON.stringify(configCheckJson(report))}\n`);
  } else {
    out.stdout.write(render(report));
    for (const e of report.errors) {
      out.stderr.write(
        formatCheckError({
          file: e.file,
          line: e.line,
          message: e.path === "" ? e.message : `${e.path}: ${e.message}`,
          ...(e.excerpt === undefined ? {} : { excerpt: e.excerpt }),
        }),
      );
    }
  }
  return report.errors.length === 0 ? 0 : 1;
}

async function check(
  file: string,
  source: ConfigCheckReport["source"],
  env: NodeJS.ProcessEnv,
): Promise<ConfigCheckReport> {
  const failed = (message: string): ConfigCheckReport => ({
    file,
    source,
    config: null,
    errors: [{ file, line: null, path: "", message }],
    warnings: [],
  });
  const info = await stat(file).catch((error: unknown) => error as NodeJS.ErrnoException);
  if (info instanceof Error) return failed(`cannot read the file (${info.code ?? "error"})`);
  if (!info.isFile()) return failed("not a file");
  if (info.size > OPERATOR_MAX_CHARS * 4) return failed(`file is ${info.size} bytes, too large`);
  const text = await readFile(file, "utf8");
  const parsed = parseOperatorYaml(text, file);
  if (!parsed.ok) return { file, source, config: null, errors: parsed.errors, warnings: [] };

  const secrets = await resolveSecrets(parsed.config, {
    env,
    readFile: (p) => readFile(p, "utf8"),
  });
  const errors: SourceError[] = [];
  if (!secrets.ok) {
    const loaded = loadYaml(text, file, OPERATOR_MAX_CHARS);
    const locate = loaded.ok ? loaded.locate : () => null;
    for (const e of secrets.errors) {
      errors.push({ file, line: locate(parsePath(e.path)), path: e.path, message: e.message });
    }
  }
  const warnings: string[] = [];
  const proxyPort = env.PROXY_PORT?.trim() ? Number(env.PROXY_PORT) : null;
  try {
    checkProxyConfig(proxyPort, { config: parsed.config, secrets: new Map() });
  } catch (error) {
    if (!isHallpassError(error)) throw error;
    warnings.push(`in this environment, the server would not start: ${error.message}`);
  }
  return { file, source, config: parsed.config, errors, warnings };
}

function render(report: ConfigCheckReport): string {
  const lines = [
    `${report.file}${report.source === "HALLPASS_CONFIG" ? " (from HALLPASS_CONFIG)" : ""}`,
  ];
  const config = report.config;
  if (config !== null) {
    lines.push("");
    for (const r of config.resources.values()) lines.push(...describe(r), "");
    if (config.resources.size === 0) lines.push("no resources: every request is refused", "");
    lines.push(
      config.acceptOtherGitHubTokens
        ? "people's tokens: for any GitHub token (accept_other_github_tokens: true)"
        : "people's tokens: only for user tokens of the App (hallpass login)",
    );
  }
  for (const w of report.warnings) lines.push(`warning: ${w}`);
  const n = report.errors.length;
  lines.push(n === 0 ? "config OK" : `${n} error${n === 1 ? "" : "s"}`);
  return `${lines.join("\n")}\n`;
}

function describe(r: OperatorResource): string[] {
  const { repository: repo, proxy } = r;
  const lines = [
    `${r.name}  (bound to ${repo.name}: repository id ${repo.id}, owner id ${repo.ownerId})`,
    `  audience: ${r.audience}`,
    `  ceilings: max_ttl ${formatDuration(r.maxTtl)}; scopes ${r.scopes.map((s) => s.text).join(", ")}`,
  ];
  if (r.upstream === null) {
    lines.push("  proxy: none (the API verifies tokens itself)");
  } else {
    const t = proxy.timeouts;
    lines.push(
      `  proxy: upstream ${r.upstream}` +
        (proxy.upstreamCa ? `, CA ${refText(proxy.upstreamCa)}` : "") +
        `; timeouts connect ${seconds(t.connectMs)}, headers ${seconds(t.headersMs)}, ` +
        `body ${seconds(t.bodyMs)}; request body at most ${size(proxy.maxRequestBodyBytes)}`,
    );
    if (r.credential) {
      const prefix =
        r.credential.prefix === "" ? "" : ` (prefix ${JSON.stringify(r.credential.prefix)})`;
      lines.push(
        `  credential: ${r.credential.header} from ${refText(r.credential.value)}${prefix}`,
      );
    }
    if (proxy.stripCookies.length > 0) {
      lines.push(`  cookies not forwarded: ${proxy.stripCookies.join(", ")}`);
    }
  }
  if (r.introspectionSecret) {
    lines.push(`  introspection secret: ${refText(r.introspectionSecret)}`);
  }
  return lines;
}

function seconds(ms: number): string {
  return formatDuration(Math.round(ms / 1000));
}

/** Bytes in the config's own units (powers of 1024), exact. */
function size(bytes: number): string {
  for (const [unit, factor] of [
    ["gb", 1024 ** 3],
    ["mb", 1024 ** 2],
    ["kb", 1024],
  ] as const) {
    if (bytes % factor === 0) return `${bytes / factor}${unit}`;
  }
  return `${bytes}b`;
}

function refText(ref: SecretRef): string {
  return ref.source === "env" ? `env:${ref.name}` : `file:${ref.path}`;
}

/** The `--json` output: what the human report shows, as data (references, never values). */
export function configCheckJson(report: ConfigCheckReport) {
  const config = report.config;
  return {
    file: report.file,
    source: report.source,
    accept_other_github_tokens: config ? config.acceptOtherGitHubTokens === true : null,
    resources: config
      ? [...config.resources.values()].map((r) => ({
          name: r.name,
          repository: {
            id: r.repository.id,
            owner_id: r.repository.ownerId,
            name: r.repository.name,
          },
          audience: r.audience,
          max_ttl_s: r.maxTtl,
          scopes: r.scopes.map((s) => s.text),
          upstream: r.upstream,
          proxy:
            r.upstream === null
              ? null
              : {
                  upstream_ca: r.proxy.upstreamCa ? refText(r.proxy.upstreamCa) : null,
                  timeouts_ms: {
                    connect: r.proxy.timeouts.connectMs,
                    headers: r.proxy.timeouts.headersMs,
                    body: r.proxy.timeouts.bodyMs,
                  },
                  max_request_body_bytes: r.proxy.maxRequestBodyBytes,
                  strip_cookies: [...r.proxy.stripCookies],
                },
          credential: r.credential && {
            header: r.credential.header,
            value: refText(r.credential.value),
            prefix: r.credential.prefix,
          },
          introspection_secret: r.introspectionSecret ? refText(r.introspectionSecret) : null,
        }))
      : [],
    errors: report.errors.map((e) => ({
      file: e.file,
      line: e.line,
      column: e.column ?? null,
      path: e.path,
      message: e.message,
      excerpt: e.excerpt ?? null,
    })),
    warnings: [...report.warnings],
  };
}
