import { readFile } from "node:fs/promises";
import type { Config } from "#src/config.js";
import { HallpassError } from "#src/errors.js";
import { type OperatorConfig, parseOperatorYaml } from "#src/rules/operator.js";
import { type ResourceSecrets, resolveSecrets } from "#src/rules/secrets.js";

/** The operator's bindings with their secrets resolved (never logged: see `Secret`). */
export interface Operator {
  readonly config: OperatorConfig;
  readonly secrets: ReadonlyMap<string, ResourceSecrets>;
}

/**
 * Reads `HALLPASS_CONFIG` and resolves its `env:`/`file:` references. Any
 * problem stops the start with messages naming the key path (never a
 * secret). Without `HALLPASS_CONFIG`, no resource is bound: every request is
 * refused as naming an unbound resource.
 */
export async function loadOperator(
  config: Config,
  env: NodeJS.ProcessEnv = process.env,
): Promise<Operator> {
  if (!config.operatorConfigPath) return { config: { resources: new Map() }, secrets: new Map() };
  const file = config.operatorConfigPath;
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    throw new HallpassError("CONFIG_INVALID", `HALLPASS_CONFIG: cannot read ${file}`, {
      cause: error,
    });
  }
  const parsed = parseOperatorYaml(text, file);
  if (!parsed.ok) {
    throw new HallpassError(
      "CONFIG_INVALID",
      parsed.errors
        .map(
          (e) => `HALLPASS_CONFIG: ${file}${e.line ? `:${e.line}` : ""}: ${e.path}: ${e.message}`,
        )
        .join("\n"),
    );
  }
  const secrets = await resolveSecrets(parsed.config, {
    env,
    readFile: (p) => readFile(p, "utf8"),
  });
  if (!secrets.ok) {
    throw new HallpassError(
      "CONFIG_INVALID",
      secrets.errors.map((e) => `HALLPASS_CONFIG: ${e.path}: ${e.message}`).join("\n"),
    );
  }
  return { config: parsed.config, secrets: secrets.secrets };
}
