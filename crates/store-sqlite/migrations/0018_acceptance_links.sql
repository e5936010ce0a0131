-- An e-mail link asks for one of two decisions: an approver's approval
-- of a revision, or a client user's acceptance of the tested change.
ALTER TABLE approval_links ADD COLUMN purpose TEXT NOT NULL DEFAULT 'approve'
    CHECK (purpose IN ('approve', 'accept'));
