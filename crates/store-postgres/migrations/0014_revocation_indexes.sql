-- Disabling a user voids their unused approval links and revokes their
-- calendar feeds: found by user, not by scanning either table.
CREATE INDEX approval_links_unused_by_approver ON approval_links (approver_id) WHERE used_at IS NULL;
CREATE INDEX calendar_feeds_by_user ON calendar_feeds (user_id);
