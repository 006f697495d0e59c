/**
 * Repository endpoints: the repository, its installation, contents, commits,
 * compare, refs, branches and collaborator permissions.
 */
import type { components } from "@octokit/openapi-types";
import { blobSha } from "./git.js";
import { type Backend, error, json, notFound, type Reply, type RepoRoute } from "./http.js";
import { fullNameOf, type Permission, type Repo } from "./model.js";
import {
  commit,
  diffEntries,
  fullRepository,
  installation,
  simpleUser,
  type View,
} from "./render.js";

type Schemas = components["schemas"];

export function repoRoutes(backend: Backend): RepoRoute[] {
  const { model, view } = backend;
  return [
    {
      method: "GET",
      pattern: "",
      requires: "token",
      handle: ({ repo }) => json(fullRepository(view, repo)),
    },
    {
      method: "GET",
      pattern: "/installation",
      requires: "app",
      handle: ({ repo }) => {
        const found = model.installationFor(repo);
        return found ? json(installation(view, found)) : notFound();
      },
    },
    {
      method: "GET",
      pattern: "/contents/:path*",
      requires: "token",
      handle: ({ repo, params, query, headers }) => {
        const sha = model.resolveRef(repo, query.ref ?? repo.defaultBranch);
        if (!sha) return error(404, `No commit found for the ref ${query.ref}`);
        const path = (params.path ?? "").replace(/\/+$/, "");
        const tree = model.git.require(sha).tree;
        const content = tree.get(path);
        const accept = String(headers.accept ?? "");
        if (content !== undefined) {
          if (/\braw\b/.test(accept)) {
            return {
              status: 200,
              body: content,
              headers: { "content-type": "text/plain; charset=utf-8" },
            };
          }
          return json(contentFile(view, repo, path, content, query.ref ?? repo.defaultBranch));
        }
        const listing = directory(view, repo, tree, path, query.ref ?? repo.defaultBranch);
        return listing.length > 0 ? json(listing) : notFound();
      },
    },
    {
      method: "GET",
      pattern: "/commits/:ref*",
      requires: "token",
      handle: ({ repo, params }) => {
        const sha = model.resolveRef(repo, params.ref ?? "");
        if (!sha) return error(422, `No commit found for SHA: ${params.ref}`);
        return json(commit(view, repo, model.git.require(sha), { files: true }));
      },
    },
    {
      method: "GET",
      pattern: "/compare/:basehead*",
      requires: "token",
      handle: ({ repo, params }) => compare(backend, repo, params.basehead ?? ""),
    },
    {
      method: "GET",
      pattern: "/git/ref/:ref*",
      requires: "token",
      handle: ({ repo, params }) => {
        const ref = params.ref ?? "";
        const sha = /^(heads|pull)\//.test(ref) ? model.resolveRef(repo, ref) : null;
        if (!sha) return notFound();
        const api = `${view.api}/repos/${fullNameOf(repo)}`;
        const body: Schemas["git-ref"] = {
          ref: `refs/${ref}`,
          node_id: Buffer.from(`ref:${repo.id}:${ref}`).toString("base64"),
          url: `${api}/git/refs/${ref}`,
          object: { type: "commit", sha, url: `${api}/git/commits/${sha}` },
        };
        return json(body);
      },
    },
    {
      method: "GET",
      pattern: "/branches/:branch*",
      requires: "token",
      handle: ({ repo, params }) => {
        const name = params.branch ?? "";
        const sha = repo.branches.get(name);
        if (!sha) return error(404, "Branch not found");
        const api = `${view.api}/repos/${fullNameOf(repo)}`;
        const body: Schemas["branch-with-protection"] = {
          name,
          commit: commit(view, repo, model.git.require(sha)),
          _links: {
            html: `${view.web}/${fullNameOf(repo)}/tree/${name}`,
            self: `${api}/branches/${name}`,
          },
          protected: false,
          protection: {
            enabled: false,
            required_status_checks: { enforcement_level: "off", contexts: [], checks: [] },
          },
          protection_url: `${api}/branches/${name}/protection`,
        };
        return json(body);
      },
    },
    {
      method: "GET",
      pattern: "/collaborators/:username/permission",
      requires: "token",
      handle: ({ repo, params }) => {
        const user = model.users.get((params.username ?? "").toLowerCase());
        if (!user || user.type === "Organization") return notFound();
        const permission = model.permissionOf(repo, user.login);
        const body: Schemas["repository-collaborator-permission"] = {
          permission: LEGACY_PERMISSION[permission],
          role_name: permission,
          user: {
            ...simpleUser(view, user.login),
            permissions: {
              admin: permission === "admin",
              maintain: ["admin", "maintain"].includes(permission),
              push: ["admin", "maintain", "write"].includes(permission),
              triage: ["admin", "maintain", "write", "triage"].includes(permission),
              pull: permission !== "none",
            },
            role_name: permission,
          },
        };
        return json(body);
      },
    },
  ];
}

/** The `permission` field keeps GitHub's older vocabulary: maintain is write, triage is read. */
const LEGACY_PERMISSION: Record<Permission, string> = {
  admin: "admin",
  maintain: "write",
  write: "write",
  triage: "read",
  read: "read",
  none: "none",
};

function contentLinks(
  view: View,
  repo: Repo,
  path: string,
  sha: string,
  ref: string,
  type: string,
) {
  const api = `${view.api}/repos/${fullNameOf(repo)}`;
  const self = `${api}/contents/${path}?ref=${encodeURIComponent(ref)}`;
  const git = `${api}/git/${type === "dir" ? "trees" : "blobs"}/${sha}`;
  const html = `${view.web}/${fullNameOf(repo)}/${type === "dir" ? "tree" : "blob"}/${ref}/${path}`;
  return {
    url: self,
    git_url: git,
    html_url: html,
    download_url: type === "dir" ? null : `${view.web}/${fullNameOf(repo)}/raw/${ref}/${path}`,
    _links: { self, git, html },
  };
}

function contentFile(
  view: View,
  repo: Repo,
  path: string,
  content: string,
  ref: string,
): Schemas["content-file"] {
  const sha = blobSha(content);
  return {
    type: "file",
    encoding: "base64",
    size: Buffer.byteLength(content),
    name: path.split("/").pop() ?? path,
    path,
    // GitHub wraps the base64 text at 60 characters.
    content: `${Buffer.from(content).toString("base64").replace(/.{60}/g, "$&\n")}\n`,
    sha,
    ...contentLinks(view, repo, path, sha, ref, "file"),
  };
}

/** The entries directly under `path` ("" is the root), files and directories. */
function directory(
  view: View,
  repo: Repo,
  tree: ReadonlyMap<string, string>,
  path: string,
  ref: string,
): Schemas["content-directory"] {
  const prefix = path === "" ? "" : `${path}/`;
  const entries = new Map<string, { type: "file" | "dir"; size: number; sha: string }>();
  for (const [file, content] of tree) {
    if (!file.startsWith(prefix)) continue;
    const [name, ...rest] = file.slice(prefix.length).split("/");
    if (!name || entries.has(name)) continue;
    entries.set(
      name,
      rest.length > 0
        ? { type: "dir", size: 0, sha: blobSha(`tree:${prefix}${name}`) }
        : { type: "file", size: Buffer.byteLength(content), sha: blobSha(content) },
    );
  }
  return [...entries]
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([name, entry]) => ({
      type: entry.type,
      size: entry.size,
      name,
      path: `${prefix}${name}`,
      sha: entry.sha,
      ...contentLinks(view, repo, `${prefix}${name}`, entry.sha, ref, entry.type),
    }));
}

/** The most changed files GitHub's compare lists. */
const COMPARE_FILES = 300;

function compare(backend: Backend, repo: Repo, basehead: string): Reply {
  const { model, view } = backend;
  const [base, head] = basehead.includes("...") ? basehead.split("...") : basehead.split("..");
  const baseSha = base ? model.resolveRef(repo, base) : null;
  const headSha = head ? model.resolveRef(repo, head) : null;
  if (!baseSha || !headSha) return notFound();
  const result = model.git.compare(baseSha, headSha);
  const mergeBase = result.mergeBase ?? model.git.require(baseSha);
  const html = `${view.web}/${fullNameOf(repo)}/compare/${basehead}`;
  const body: Schemas["commit-comparison"] = {
    url: `${view.api}/repos/${fullNameOf(repo)}/compare/${basehead}`,
    html_url: html,
    permalink_url: `${view.web}/${fullNameOf(repo)}/compare/${baseSha}...${headSha}`,
    diff_url: `${html}.diff`,
    patch_url: `${html}.patch`,
    base_commit: commit(view, repo, model.git.require(baseSha)),
    merge_base_commit: commit(view, repo, mergeBase),
    status: result.status,
    ahead_by: result.ahead.length,
    behind_by: result.behind.length,
    total_commits: result.ahead.length,
    commits: result.ahead.slice(0, 250).map((c) => commit(view, repo, c)),
    // GitHub lists at most 300 changed files, and says nothing of the rest.
    files: diffEntries(
      view,
      repo,
      headSha,
      model.git.diff(mergeBase, model.git.require(headSha)).slice(0, COMPARE_FILES),
    ),
  };
  return json(body);
}
