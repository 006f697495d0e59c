/** An environment with nothing of the host's hallpass, Probot or GitHub settings in it. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (
      /^(HALLPASS_|APP_ID|PRIVATE_KEY|WEBHOOK_|GHE_|DATABASE_URL|PORT|PROXY_PORT|HOST|LOG_|NODE_ENV)/.test(
        key,
      )
    )
      continue;
    env[key] = value;
  }
  return { ...env, ...extra };
}
