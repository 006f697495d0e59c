-- Token exchange look-ups.

-- A person names a ticket as owner/repo#N (GitHub names are case-insensitive);
-- the repository id found is then checked against the operator's binding.
CREATE INDEX tickets_by_name ON tickets (lower(repo_full_name), number);

-- A ticket's latest grant, when it has no open one (to say why nothing is minted).
CREATE INDEX grants_by_ticket ON grants (ticket_id, created_at);
