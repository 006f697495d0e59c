-- Approvals belong to the request they were given to, and rules changes are
-- numbered so that no decision activates on rules that changed under it.

-- The grant (request) an approval was given to. Null only for a review given
-- before the ticket had any request: the first request the ticket opens
-- takes it, no later one.
ALTER TABLE approvals ADD COLUMN grant_id uuid REFERENCES grants (id);
CREATE INDEX approvals_by_grant ON approvals (grant_id) WHERE voided_at IS NULL;

-- Approvals in force go to the ticket's open grant; on a ticket that had
-- a request, those with no open grant to go to can never count again.
UPDATE approvals a SET grant_id = g.id
  FROM grants g
 WHERE a.voided_at IS NULL AND g.ticket_id = a.ticket_id AND g.state IN ('pending', 'active');
UPDATE approvals a SET voided_at = now(), void_reason = 'no open request to bind it to'
 WHERE a.voided_at IS NULL AND a.grant_id IS NULL
   AND EXISTS (SELECT 1 FROM grants g WHERE g.ticket_id = a.ticket_id);

-- Why a grant ended, for what may follow it: 'new_commits' lets an approving
-- review of the new head open the next request.
ALTER TABLE grants ADD COLUMN end_cause text;

-- Each push that changes a repository's rules (policy or CODEOWNERS) on its
-- default branch bumps its generation. A decision reads the generation
-- before it reads the rules, and activates only if it is unchanged.
CREATE TABLE rules_generations (
  repo_id    bigint      PRIMARY KEY,
  generation bigint      NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);
