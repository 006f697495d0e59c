-- Which files each repository's policy was last read from (see
-- src/store/policy-sources.ts): a push to any of them re-decides that
-- repository's tickets. sources: the repositories, `owner/name` in lower
-- case; files: `owner/name:path` (the name in lower case, the path as is).
CREATE TABLE policy_sources (
  repo_id         bigint      PRIMARY KEY,
  installation_id bigint      NOT NULL,
  sources         text[]      NOT NULL,
  files           text[]      NOT NULL,
  updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX policy_sources_sources ON policy_sources USING gin (sources);

-- The policy files a grant was approved under, nearest first, each with the
-- commit it was read at ({repo, path, sha}); policy_sha is the first one's.
ALTER TABLE grants ADD COLUMN policy_files jsonb NOT NULL DEFAULT '[]';
