-- Work that one replica at a time does, and that talks to GitHub: a lease
-- row, taken and given back in short statements, never a lock held across
-- a network call (on the embedded database that would stall every query).
CREATE TABLE leases (
  name   text        PRIMARY KEY,
  holder text        NOT NULL,
  until  timestamptz NOT NULL
);
