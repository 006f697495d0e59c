-- Token service: key lifecycle invariants, what each scope of a grant carries,
-- and the index key retirement reads.

-- published -> active -> retired, each state with the times that define it. A
-- retired key never signs again, so its private part is destroyed on retirement;
-- every other key keeps one.
ALTER TABLE signing_keys ADD CONSTRAINT signing_keys_lifecycle CHECK (
  CASE state
    WHEN 'published' THEN activate_after IS NOT NULL AND activated_at IS NULL AND retired_at IS NULL
    WHEN 'active'    THEN activated_at IS NOT NULL AND retired_at IS NULL
    WHEN 'retired'   THEN retired_at IS NOT NULL AND verify_until IS NOT NULL
  END
);
ALTER TABLE signing_keys ADD CONSTRAINT signing_keys_private_part CHECK (
  (state = 'retired') = (private_sealed = '')
);

-- The permissions ("METHOD /pattern") each granted scope meant when approved,
-- e.g. {"read": ["GET /v1/**"]}. A token narrowed to some of the grant's scopes
-- carries only their permissions; without this map a grant's tokens can only
-- carry all of its scopes (grants.permissions).
ALTER TABLE grants ADD COLUMN scope_permissions jsonb NOT NULL DEFAULT '{}'
  CHECK (jsonb_typeof(scope_permissions) = 'object');

-- Retiring a key keeps it in the JWKS until the last token it signed expires.
CREATE INDEX tokens_by_kid_expiry ON tokens (kid, expires_at);
