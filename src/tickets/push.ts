import type { Context } from "probot";
import type { GitHub } from "#src/github/api.js";
import { describeFailure } from "#src/github/retry.js";
import type { Logger } from "#src/log.js";
import { CODEOWNERS_PATHS } from "#src/rules/codeowners.js";
import { POLICY_FILE } from "#src/rules/policy.js";
import type { RepoContext } from "#src/tickets/context.js";

const RULE_FILES: ReadonlySet<string> = new Set([POLICY_FILE, ...CODEOWNERS_PATHS]);

/**
 * A push payload listing this many commits may have left some out: GitHub
 * documents a cap of 20 on the list, so from 20 on it is not trusted.
 */
const PUSH_COMMITS = 20;

/** GitHub's compare lists at most this many changed files, and says nothing of the rest. */
const COMPARE_FILES = 300;

type PushPayload = Context<"push">["payload"];

/**
 * The files a push to the default branch changed, or null when that cannot
 * be known for sure (decisions are then taken again on every file's
 * account):
 *
 * 1. A branch created: null (everything in it is new).
 * 2. Commits listed, fewer than GitHub's cap, not a force-push: the files
 *    they added, modified or removed.
 * 3. Otherwise (no commits listed though the head moved, a list that may be
 *    cut short, a force-push), GitHub's compare of `before...after`: its
 *    changed files (renamed ones under both names). Null when it cannot
 *    say: it failed, it lists the most files it lists (the rest are
 *    unknown), or `before` is not an ancestor of `after` (the commits a
 *    force-push dropped are in no diff from their merge base).
 */
export async function pushedFiles(
  ctx: RepoContext,
  payload: PushPayload,
  log: Logger,
): Promise<readonly string[] | null> {
  if (/^0+$/.test(payload.before)) return null;
  const listed = payload.commits;
  if (!payload.forced && listed.length > 0 && listed.length < PUSH_COMMITS) {
    return [
      ...new Set(
        listed.flatMap((c) => [...(c.added ?? []), ...(c.modified ?? []), ...(c.removed ?? [])]),
      ),
    ];
  }
  const where = { repo: `${ctx.repo.owner}/${ctx.repo.name}`, before: payload.before };
  let compared: Awaited<ReturnType<GitHub["rest"]["repos"]["compareCommitsWithBasehead"]>>["data"];
  try {
    ({ data: compared } = await ctx.gh.rest.repos.compareCommitsWithBasehead({
      owner: ctx.repo.owner,
      repo: ctx.repo.name,
      basehead: `${payload.before}...${payload.after}`,
      // The changed files come with the first page, whatever its size.
      per_page: 1,
    }));
  } catch (error) {
    const { status, message } = describeFailure(error);
    log.warn(
      { ...where, status, message },
      "could not compare the push; taking it as a change of every file and deciding again",
    );
    return null;
  }
  const files = compared.files ?? [];
  if (compared.behind_by > 0 || files.length >= COMPARE_FILES) {
    log.info(
      { ...where, behind_by: compared.behind_by, files: files.length },
      "the compare of this push cannot show every change; taking it as a change of every file",
    );
    return null;
  }
  return files.flatMap((f) =>
    f.previous_filename === undefined ? [f.filename] : [f.filename, f.previous_filename],
  );
}

/** Whether the files a push changed (`pushedFiles`; null: unknown) may include the repository's rules. */
export function changesRules(files: readonly string[] | null): boolean {
  return files === null || files.some((f) => RULE_FILES.has(f));
}
