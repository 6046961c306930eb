-- A restore of the CA's database from a backup (issue 13): the CA refuses to issue or revoke
-- while a restore is not reconciled with the audit journal or confirmed by an operator
-- (ca::restore). One row per restore; never deleted.
CREATE TABLE ca_restore (
    id BIGINT PRIMARY KEY,
    restored_at BIGINT NOT NULL,
    audit_seq BIGINT NOT NULL,
    detail TEXT NOT NULL,
    reconciled_at BIGINT,
    reconciled_by TEXT,
    outcome TEXT
);
