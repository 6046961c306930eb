-- What halted a replicated source, for the operator console (issue 12): the seq of the notice
-- that contradicted this node's history, the hash the history calls for and the hash the
-- notice carried instead (hex; absent when the halt is not about one hash against another,
-- e.g. a signature or the ownership rule), and when (unix seconds). All cleared with `halted`
-- on resume. Halts recorded before this migration keep only their reason.
ALTER TABLE replica_cursor ADD COLUMN halted_seq BIGINT;
ALTER TABLE replica_cursor ADD COLUMN halted_expected TEXT;
ALTER TABLE replica_cursor ADD COLUMN halted_received TEXT;
ALTER TABLE replica_cursor ADD COLUMN halted_at BIGINT;
