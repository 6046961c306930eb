-- Notice signatures (review finding H4): every change notice carries its municipality's
-- signature envelope (identity/src/notice_sig.rs), stored beside the frozen encoding v1 and
-- re-served unchanged. Nullable, so rows written before signatures stay valid; ALTER TABLE
-- fires no row triggers, so the immutability triggers of change_notice are untouched.
ALTER TABLE change_notice ADD COLUMN sig_version BIGINT;
ALTER TABLE change_notice ADD COLUMN sig_key_id TEXT;
ALTER TABLE change_notice ADD COLUMN signature BLOB;

-- Notice-key certificates per source, at every tier: a municipality's own keys (current and
-- rotated out), and at replicas the certificates admitted by the notice verifier. Never
-- updated or deleted: old notices stay verifiable after a rotation.
CREATE TABLE notice_key (
    source TEXT NOT NULL,
    key_id TEXT NOT NULL,
    cert BLOB NOT NULL,
    added_at BIGINT NOT NULL,
    PRIMARY KEY (source, key_id)
);
CREATE TRIGGER notice_key_no_update BEFORE UPDATE ON notice_key
BEGIN SELECT RAISE(ABORT, 'notice keys are immutable'); END;
CREATE TRIGGER notice_key_no_delete BEFORE DELETE ON notice_key
BEGIN SELECT RAISE(ABORT, 'notice keys are immutable'); END;
