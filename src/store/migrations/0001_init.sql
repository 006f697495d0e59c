-- hallpass schema: the whole data model of the specification.
-- Conventions: GitHub ids are bigint; our own ids are uuid; times are timestamptz;
-- every state is a text column with a CHECK listing its values.

-- GitHub App installations. A ticket's installation gives the token its side effects run with.
CREATE TABLE installations (
  id            bigint      PRIMARY KEY,             -- GitHub installation id
  account_id    bigint      NOT NULL,
  account_login text        NOT NULL,
  suspended_at  timestamptz,
  deleted_at    timestamptz,
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now()
);

-- A ticket is an issue or pull request carrying the policy's label. Identity is the
-- repository id (names get renamed and reused), never its name.
CREATE TABLE tickets (
  id              uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  installation_id bigint      NOT NULL REFERENCES installations (id),
  repo_id         bigint      NOT NULL,
  repo_owner_id   bigint      NOT NULL,
  repo_full_name  text        NOT NULL,              -- as last seen; for display only
  number          integer     NOT NULL CHECK (number > 0),
  kind            text        NOT NULL CHECK (kind IN ('issue', 'pull_request')),
  author_id       bigint      NOT NULL,
  author_login    text        NOT NULL,
  title           text        NOT NULL DEFAULT '',
  github_state    text        NOT NULL DEFAULT 'open' CHECK (github_state IN ('open', 'closed')),
  merged          boolean     NOT NULL DEFAULT false,
  labels          text[]      NOT NULL DEFAULT '{}',
  head_sha        text,                              -- pull requests: current head commit
  head_repo_id    bigint,                            -- pull requests: differs from repo_id for forks
  check_run_id    bigint,                            -- pull requests: the `hallpass` check run
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now(),
  UNIQUE (repo_id, number)
);

-- A grant is one request for access and its outcome:
--   pending -> active -> revoked | expired;  pending -> denied | cancelled.
-- An active grant keeps the terms that were approved (resource, scopes, window,
-- permissions), whatever the ticket says later.
CREATE TABLE grants (
  id               uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  ticket_id        uuid        NOT NULL REFERENCES tickets (id),
  state            text        NOT NULL DEFAULT 'pending'
                   CHECK (state IN ('pending', 'active', 'revoked', 'expired', 'denied', 'cancelled')),
  resource         text        NOT NULL,
  audience         text        NOT NULL,             -- the resource, namespaced by its home repository
  scopes           text[]      NOT NULL,             -- scope names, as requested
  permissions      text[]      NOT NULL DEFAULT '{}',-- "METHOD /pattern" the scopes meant when approved
  duration_s       integer     NOT NULL CHECK (duration_s > 0),
  token_ttl_s      integer     NOT NULL DEFAULT 900 CHECK (token_ttl_s > 0), -- lifetime of each minted token
  request_ttl_s    integer     NOT NULL DEFAULT 86400 CHECK (request_ttl_s > 0), -- pending longer: stale
  reason           text        NOT NULL,
  requested_start  timestamptz,                      -- scheduled window, if asked for
  request_hash     text        NOT NULL,             -- sha256 of the fields approvals are bound to
  requester_id     bigint      NOT NULL,
  requester_login  text        NOT NULL,
  policy_sha       text,                             -- default-branch commit the decision used
  approved_commit  text,                             -- pull requests: the reviewed commit_id
  decision         text        CHECK (decision IN ('approvals', 'auto', 'break_glass')),
  auto_rule        integer,                          -- index of the auto_approve rule that matched
  break_glass      boolean     NOT NULL DEFAULT false,
  approvers        text[]      NOT NULL DEFAULT '{}',-- logins whose approvals made it active
  constraints      jsonb       NOT NULL DEFAULT '{}',-- policy rules for who may exchange (environment, forks, ...)
  review_due_at    timestamptz,                      -- break-glass: post-hoc approval deadline
  reviewed_at      timestamptz,
  review_flagged_at timestamptz,                     -- break-glass: deadline passed without approval
  starts_at        timestamptz,
  ends_at          timestamptz,
  warned_at        timestamptz,                      -- expiry warning posted
  ended_at         timestamptz,
  end_reason       text,
  ended_by         text,
  version          integer     NOT NULL DEFAULT 0,   -- bumped on every change
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  CHECK (state IN ('pending', 'denied', 'cancelled')
         OR (starts_at IS NOT NULL AND ends_at IS NOT NULL AND ends_at > starts_at)),
  CHECK (state IN ('pending', 'active') OR ended_at IS NOT NULL)
);
-- At most one open (pending or active) grant per ticket.
CREATE UNIQUE INDEX grants_one_open_per_ticket ON grants (ticket_id) WHERE state IN ('pending', 'active');
CREATE INDEX grants_active_by_end ON grants (ends_at) WHERE state = 'active';
CREATE INDEX grants_pending_by_age ON grants (created_at) WHERE state = 'pending';
CREATE INDEX grants_by_requester ON grants (requester_id, created_at);

-- /extend on an active grant: approved like a request, bound to its own hash.
CREATE TABLE grant_extensions (
  id                 uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  grant_id           uuid        NOT NULL REFERENCES grants (id),
  state              text        NOT NULL DEFAULT 'pending'
                     CHECK (state IN ('pending', 'approved', 'denied', 'cancelled')),
  extend_by_s        integer     NOT NULL CHECK (extend_by_s > 0),
  request_hash       text        NOT NULL,
  requested_by_id    bigint      NOT NULL,
  requested_by_login text        NOT NULL,
  source_comment_id  bigint,
  created_at         timestamptz NOT NULL DEFAULT now(),
  decided_at         timestamptz
);
CREATE UNIQUE INDEX grant_extensions_one_pending ON grant_extensions (grant_id) WHERE state = 'pending';

-- Approvals as given (PR review or /approve comment), recorded whatever order
-- events arrive in; a decision counts only those whose request_hash matches.
CREATE TABLE approvals (
  id             uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  ticket_id      uuid        NOT NULL REFERENCES tickets (id),
  approver_id    bigint      NOT NULL,
  approver_login text        NOT NULL,
  channel        text        NOT NULL CHECK (channel IN ('review', 'comment')),
  source_id      bigint      NOT NULL,               -- review id or comment id
  request_hash   text        NOT NULL,               -- the version of the request approved
  commit_id      text,                               -- reviews: the commit reviewed
  created_at     timestamptz NOT NULL DEFAULT now(),
  voided_at      timestamptz,                        -- review dismissed, ...
  void_reason    text,
  UNIQUE (channel, source_id)
);
CREATE INDEX approvals_by_ticket ON approvals (ticket_id);

-- Signing keys: Ed25519, private part sealed with HALLPASS_MASTER_KEY (AES-256-GCM).
-- published -> active -> retired; a retired key stays published until verify_until.
CREATE TABLE signing_keys (
  kid             text        PRIMARY KEY,
  alg             text        NOT NULL DEFAULT 'EdDSA',
  public_jwk      jsonb       NOT NULL,
  private_sealed  text        NOT NULL,
  state           text        NOT NULL CHECK (state IN ('published', 'active', 'retired')),
  activate_after  timestamptz,                       -- published keys sign only once verifiers have seen them
  created_at      timestamptz NOT NULL DEFAULT now(),
  activated_at    timestamptz,
  retired_at      timestamptz,
  verify_until    timestamptz
);
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys ((true)) WHERE state = 'active';

-- Minted tokens by jti. The token itself is never stored.
CREATE TABLE tokens (
  jti           uuid        PRIMARY KEY,
  grant_id      uuid        NOT NULL REFERENCES grants (id),
  kid           text        NOT NULL REFERENCES signing_keys (kid),
  channel       text        NOT NULL CHECK (channel IN ('actions', 'cli')),
  subject       text        NOT NULL,                -- GitHub user, or the workflow run
  actor         text,                                -- the workflow's actor
  scopes        text[]      NOT NULL,
  run_id        bigint,
  run_attempt   integer,
  workflow_ref  text,
  sha           text,
  issued_at     timestamptz NOT NULL,
  expires_at    timestamptz NOT NULL,
  released_at   timestamptz
);
CREATE INDEX tokens_by_grant ON tokens (grant_id);
CREATE INDEX tokens_by_expiry ON tokens (expires_at);

-- GitHub Actions ID tokens already exchanged (each is usable once), until they expire.
CREATE TABLE oidc_token_uses (
  token_key   text        PRIMARY KEY,               -- sha256 of issuer and jti
  expires_at  timestamptz NOT NULL,
  used_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX oidc_token_uses_by_expiry ON oidc_token_uses (expires_at);

-- The audit log: append-only and hash-chained. hash = sha256(prev_hash bytes ||
-- UTF-8 of body), body being the canonical (RFC 8785) JSON of the event.
-- A row is inserted with a negative placeholder seq and no hashes; a deferred
-- trigger seals it at COMMIT: it advances the tip in audit_head and gives the
-- row its place in the chain. Writers therefore wait for each other only while
-- their commits are written, chain order is commit order, and the tip makes
-- truncation of the tail detectable.
CREATE TABLE audit_head (
  id         smallint PRIMARY KEY CHECK (id = 1),
  seq        bigint   NOT NULL,
  hash       text     NOT NULL,
  prev_hash  text
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, repeat('0', 64));

CREATE SEQUENCE audit_events_pending;
CREATE TABLE audit_events (
  seq        bigint      PRIMARY KEY DEFAULT -nextval('audit_events_pending'),
  id         uuid        NOT NULL UNIQUE,            -- also in the hashed body
  at         timestamptz NOT NULL,
  kind       text        NOT NULL,
  actor      text,
  ticket_id  uuid,                                   -- no foreign keys: the log outlives what it describes
  grant_id   uuid,
  body       text        NOT NULL,
  prev_hash  text,                                   -- null only until sealed at commit
  hash       text        UNIQUE
);
CREATE INDEX audit_events_by_ticket ON audit_events (ticket_id, seq) WHERE ticket_id IS NOT NULL;
CREATE INDEX audit_events_by_grant ON audit_events (grant_id, seq) WHERE grant_id IS NOT NULL;

CREATE FUNCTION audit_events_seal() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  tip audit_head%ROWTYPE;
BEGIN
  UPDATE audit_head
     SET seq = seq + 1,
         prev_hash = hash,
         hash = encode(sha256(decode(hash, 'hex') || convert_to(NEW.body, 'UTF8')), 'hex')
   WHERE id = 1
  RETURNING * INTO tip;
  UPDATE audit_events SET seq = tip.seq, prev_hash = tip.prev_hash, hash = tip.hash WHERE seq = NEW.seq;
  RETURN NULL;
END
$$;
CREATE CONSTRAINT TRIGGER audit_events_seal AFTER INSERT ON audit_events
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION audit_events_seal();

-- Only the seal may change a row, and only an unsealed one.
CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND pg_trigger_depth() > 1 AND OLD.seq < 0 AND OLD.hash IS NULL
     AND NEW.id = OLD.id AND NEW.body = OLD.body THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION 'audit_events is append-only (% refused)', TG_OP
    USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_events_no_update BEFORE UPDATE OR DELETE ON audit_events
  FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
  FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();

-- GitHub side effects (comments, check runs, ...), written in the transaction of
-- the state change and carried out by the outbox worker, at most once per dedupe_key.
CREATE TABLE outbox (
  id              bigserial   PRIMARY KEY,
  installation_id bigint      NOT NULL,
  ticket_id       uuid        REFERENCES tickets (id),
  kind            text        NOT NULL,
  dedupe_key      text        NOT NULL UNIQUE,       -- also the hidden marker in what is posted
  audit_event_id  uuid,                              -- the audit event it reports (its hash is shown)
  payload         jsonb       NOT NULL,
  state           text        NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'dead')),
  attempts        integer     NOT NULL DEFAULT 0,
  run_after       timestamptz NOT NULL DEFAULT now(),
  locked_until    timestamptz,
  last_error      text,
  result          jsonb,
  created_at      timestamptz NOT NULL DEFAULT now(),
  done_at         timestamptz
);
CREATE INDEX outbox_due ON outbox (run_after, id) WHERE state = 'pending';

-- hallpass's own comments on tickets, to notice edits and deletions (tamper notices).
CREATE TABLE ticket_comments (
  comment_id   bigint      PRIMARY KEY,
  ticket_id    uuid        NOT NULL REFERENCES tickets (id),
  outbox_id    bigint      REFERENCES outbox (id),
  audit_event_id uuid,                               -- the audit event this comment reports
  body         text        NOT NULL,
  body_sha256  text        NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  tampered_at  timestamptz
);
CREATE INDEX ticket_comments_by_ticket ON ticket_comments (ticket_id);

-- Webhook deliveries, stored before they are acknowledged: deduplicated by
-- X-GitHub-Delivery and processed by a worker, one at a time per ticket.
CREATE TABLE webhook_deliveries (
  id              text        PRIMARY KEY,           -- X-GitHub-Delivery
  event           text        NOT NULL,
  action          text,
  installation_id bigint,
  ticket_key      text,                              -- repo_id#number, to serialise per ticket
  payload         jsonb       NOT NULL,
  state           text        NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'failed')),
  attempts        integer     NOT NULL DEFAULT 0,
  run_after       timestamptz NOT NULL DEFAULT now(),
  locked_until    timestamptz,
  last_error      text,
  received_at     timestamptz NOT NULL DEFAULT now(),
  processed_at    timestamptz
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (run_after, received_at) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_pending_by_ticket ON webhook_deliveries (ticket_key, received_at)
  WHERE state = 'pending' AND ticket_key IS NOT NULL;

-- Requests through the access proxy. Mutating requests are inserted before they
-- are forwarded and completed after; reads are inserted in batches.
CREATE TABLE proxy_requests (
  id           bigserial   PRIMARY KEY,
  grant_id     uuid        NOT NULL,
  jti          uuid        NOT NULL,
  resource     text        NOT NULL,
  method       text        NOT NULL,
  path         text        NOT NULL,
  outcome      text        NOT NULL CHECK (outcome IN ('forwarding', 'forwarded', 'denied', 'failed')),
  status       integer,
  bytes_in     bigint,
  bytes_out    bigint,
  latency_us   integer,
  started_at   timestamptz NOT NULL,
  finished_at  timestamptz
);
CREATE INDEX proxy_requests_by_grant ON proxy_requests (grant_id, started_at);

-- Server-wide facts (e.g. a sealed check value proving the master key is right).
CREATE TABLE server_meta (
  key         text        PRIMARY KEY,
  value       jsonb       NOT NULL,
  updated_at  timestamptz NOT NULL DEFAULT now()
);
