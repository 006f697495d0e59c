import { randomBytes } from "node:crypto";
import { chmod, mkdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import path from "node:path";
import { z } from "zod";
import { HallpassError } from "#src/errors.js";

/**
 * The GitHub user tokens `hallpass login` keeps, one per hallpass server:
 * `$XDG_CONFIG_HOME/hallpass/logins.json` (else `~/.config/hallpass/`),
 * the directory mode 0700, the file 0600 and written whole (a new file
 * renamed over the old), so that no other user of the machine can read it.
 */

/** One server's login. */
export interface StoredLogin {
  /** The GitHub user token of the server's App. Never printed. */
  readonly token: string;
  /** The GitHub login it belongs to, when GitHub said. */
  readonly login: string | null;
  readonly githubUrl: string;
  /** When GitHub said the token expires; null: it did not say. */
  readonly expiresAt: Date | null;
  readonly createdAt: Date;
}

const storedLogin = z.object({
  token: z.string().regex(/^[\x21-\x7e]{1,4096}$/),
  login: z.string().nullable(),
  github_url: z.string(),
  expires_at: z.iso.datetime().nullable(),
  created_at: z.iso.datetime(),
});
const loginsFile = z.object({
  version: z.literal(1),
  /** By server URL, as `resolveServerUrl` writes it. */
  logins: z.record(z.string(), storedLogin),
});
type LoginsFile = z.infer<typeof loginsFile>;

const FILE_NAME = "logins.json";

/** The directory of hallpass's own files for this user, from the environment. */
export function configDir(env: NodeJS.ProcessEnv): string {
  const xdg = env.XDG_CONFIG_HOME?.trim();
  // The XDG spec: a relative path is invalid and ignored.
  if (xdg && path.isAbsolute(xdg)) return path.join(xdg, "hallpass");
  const home = env.HOME?.trim() || homedir();
  return path.join(home, ".config", "hallpass");
}

/** The file the logins are kept in. */
export function loginsPath(env: NodeJS.ProcessEnv): string {
  return path.join(configDir(env), FILE_NAME);
}

/**
 * The server's login, or null when there is none.
 *
 * @throws CONFIG_INVALID when the file is readable by others or does not parse
 */
export async function readLogin(
  env: NodeJS.ProcessEnv,
  server: string,
): Promise<StoredLogin | null> {
  const found = (await readFileOf(loginsPath(env)))?.logins[server];
  if (!found) return null;
  return {
    token: found.token,
    login: found.login,
    githubUrl: found.github_url,
    expiresAt: found.expires_at === null ? null : new Date(found.expires_at),
    createdAt: new Date(found.created_at),
  };
}

/** Keeps the server's login, replacing any other for that server; returns the file's path. */
export async function writeLogin(
  env: NodeJS.ProcessEnv,
  server: string,
  login: StoredLogin,
): Promise<string> {
  const file = loginsPath(env);
  const current = (await readFileOf(file)) ?? { version: 1 as const, logins: {} };
  current.logins[server] = {
    token: login.token,
    login: login.login,
    github_url: login.githubUrl,
    expires_at: login.expiresAt?.toISOString() ?? null,
    created_at: login.createdAt.toISOString(),
  };
  await writeFileOf(file, current);
  return file;
}

/** Forgets the server's login; false when there was none. The file goes with its last login. */
export async function removeLogin(env: NodeJS.ProcessEnv, server: string): Promise<boolean> {
  const file = loginsPath(env);
  const current = await readFileOf(file);
  if (!current || !Object.hasOwn(current.logins, server)) return false;
  delete current.logins[server];
  if (Object.keys(current.logins).length === 0) await rm(file, { force: true });
  else await writeFileOf(file, current);
  return true;
}

async function readFileOf(file: string): Promise<LoginsFile | null> {
  let text: string;
  try {
    const info = await stat(file);
    if (process.platform !== "win32" && (info.mode & 0o077) !== 0) {
      throw new HallpassError(
        "CONFIG_INVALID",
        `${file} holds GitHub tokens but others may read it (mode ${(info.mode & 0o777).toString(8)}): chmod 600 it, or remove it and run hallpass login again`,
      );
    }
    text = await readFile(file, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw error;
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    value = null;
  }
  const parsed = loginsFile.safeParse(value);
  if (!parsed.success) {
    throw new HallpassError(
      "CONFIG_INVALID",
      `${file} is not a hallpass logins file: remove it and run hallpass login again`,
    );
  }
  // Records keyed by URL: never let a key reach the prototype.
  return { version: 1, logins: Object.assign(Object.create(null), parsed.data.logins) };
}

async function writeFileOf(file: string, content: LoginsFile): Promise<void> {
  const dir = path.dirname(file);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
  const temporary = path.join(dir, `.${FILE_NAME}.${randomBytes(6).toString("hex")}`);
  try {
    await writeFile(temporary, `${JSON.stringify(content, null, 2)}\n`, {
      mode: 0o600,
      flag: "wx",
    });
    await rename(temporary, file);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
}
