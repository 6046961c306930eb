-- Validation service (issue 5): registered verifiers (署名検証者) and the log of their queries
-- (audit and billing). The validator keeps these in its own database.
CREATE TABLE validator_verifier (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    secret_hash BLOB NOT NULL,
    purposes TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE validator_query (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at BIGINT NOT NULL,
    verifier_id TEXT NOT NULL,
    purpose TEXT NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    result TEXT NOT NULL
);
CREATE INDEX validator_query_verifier ON validator_query (verifier_id, at);
CREATE TRIGGER validator_query_no_update BEFORE UPDATE ON validator_query
BEGIN SELECT RAISE(ABORT, 'the query log is append-only'); END;
CREATE TRIGGER validator_query_no_delete BEFORE DELETE ON validator_query
BEGIN SELECT RAISE(ABORT, 'the query log is append-only'); END;
-- The responder polls revocations by time.
CREATE INDEX ca_revocation_time ON ca_revocation (revoked_at);
