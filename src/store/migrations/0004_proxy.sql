-- The access proxy: what a grant's traffic is limited to, how every replica
-- learns of grant changes at once, and what each proxied request records.

-- The policy's rate_limit as approved: at most rate_limit_count requests per
-- rate_limit_seconds, shared by all tokens of the grant. Null: unlimited.
ALTER TABLE grants
  ADD COLUMN rate_limit_count   integer CHECK (rate_limit_count > 0),
  ADD COLUMN rate_limit_seconds integer CHECK (rate_limit_seconds > 0),
  ADD CONSTRAINT grants_rate_limit_pair CHECK ((rate_limit_count IS NULL) = (rate_limit_seconds IS NULL));

-- Every change that makes a grant usable or unusable (activation, extension,
-- revocation, expiry, and any other write that touches an active grant) is
-- announced on hallpass_grants, delivered at commit, whoever wrote it:
--   {"grant": "<uuid>", "state": "<state>", "version": <n>}
-- Listeners apply a change only when its version is newer than what they hold.
CREATE FUNCTION grants_announce() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.state = 'active' OR (TG_OP = 'UPDATE' AND OLD.state = 'active') THEN
    PERFORM pg_notify('hallpass_grants', json_build_object(
      'grant', NEW.id, 'state', NEW.state, 'version', NEW.version)::text);
  END IF;
  RETURN NULL;
END
$$;
CREATE TRIGGER grants_announce AFTER INSERT OR UPDATE OF state, starts_at, ends_at, version ON grants
  FOR EACH ROW EXECUTE FUNCTION grants_announce();

-- A token given back is dead at once on every replica:
--   {"jti": "<uuid>", "grant": "<uuid>", "expires_at": "<timestamptz>"}
CREATE FUNCTION tokens_announce_release() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('hallpass_grants', json_build_object(
    'jti', NEW.jti, 'grant', NEW.grant_id, 'expires_at', NEW.expires_at)::text);
  RETURN NULL;
END
$$;
CREATE TRIGGER tokens_announce_release AFTER UPDATE OF released_at ON tokens
  FOR EACH ROW WHEN (OLD.released_at IS NULL AND NEW.released_at IS NOT NULL)
  EXECUTE FUNCTION tokens_announce_release();

-- What the proxy records of each request of a grant's tokens: the scope
-- pattern that let it through, the request id it was forwarded with, and for
-- a refusal or a failure, why.
ALTER TABLE proxy_requests
  ADD COLUMN scope      text,
  ADD COLUMN request_id text,
  ADD COLUMN reason     text;
