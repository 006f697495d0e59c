-- Who set a ticket's body, as its last `opened` or body `edited` webhook
-- said: a request opens only on terms its requester wrote (see
-- src/store/ticket-bodies.ts). body_sha is the SHA-256 of the body text;
-- set_at is GitHub's updated_at of that event, so an older delivery arriving
-- late never overwrites a newer one.
CREATE TABLE ticket_bodies (
  ticket_id    uuid        PRIMARY KEY REFERENCES tickets (id),
  body_sha     text        NOT NULL,
  set_by_id    bigint      NOT NULL,
  set_by_login text        NOT NULL,
  set_at       timestamptz NOT NULL
);
