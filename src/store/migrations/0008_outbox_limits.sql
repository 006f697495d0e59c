-- The outbox under GitHub's rate limits (see src/store/outbox.ts).
--
-- priority: claimed first when higher (2: endings and closures; 1: the rest;
-- 0: /status replies and refused commands), then oldest first.
-- throttled: attempts GitHub refused with a rate limit. They did nothing on
-- GitHub, count neither towards giving up nor towards the backoff, and need
-- no look for an earlier attempt's comment.
ALTER TABLE outbox ADD COLUMN priority smallint NOT NULL DEFAULT 1;
ALTER TABLE outbox ADD COLUMN throttled integer NOT NULL DEFAULT 0;

UPDATE outbox
   SET priority = CASE
         WHEN kind = 'close_issue'
           OR payload -> 'notice' ->> 'kind' IN ('ended', 'expiry_warning', 'review_overdue') THEN 2
         WHEN payload -> 'notice' ->> 'kind' IN ('status', 'command_refused') THEN 0
         ELSE 1
       END
 WHERE state = 'pending';

CREATE INDEX outbox_claim_order ON outbox (priority DESC, id) WHERE state = 'pending';
-- A ticket's side effects run in order: the claim looks up its pending ones.
CREATE INDEX outbox_pending_by_ticket ON outbox (ticket_id, id) WHERE state = 'pending';

-- Per installation, as GitHub counts its rate limits: until when GitHub asked
-- for no more requests, and the earliest start of the next write (pacing).
-- Every replica reads it before claiming or writing.
CREATE TABLE outbox_installations (
  installation_id bigint      PRIMARY KEY,
  paused_until    timestamptz,
  pause_reason    text,
  next_write_at   timestamptz
);
