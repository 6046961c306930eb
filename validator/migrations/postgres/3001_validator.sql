-- Validation service (issue 5): registered verifiers (署名検証者) and the log of their queries
-- (audit and billing). The validator keeps these in its own database.
-- Until the schema was split per crate these tables were migration 3 of the shared folder
-- (which also indexed ca_revocation, now the CA's migration 2001). Version 3 is retired, never
-- reused; a database migrated before the split has these tables already, so every statement
-- here is IF NOT EXISTS or OR REPLACE (PostgreSQL 14 or later) and leaves them as they are.
CREATE TABLE IF NOT EXISTS validator_verifier (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    secret_hash BYTEA NOT NULL,
    purposes TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS validator_query (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at BIGINT NOT NULL,
    verifier_id TEXT NOT NULL,
    purpose TEXT NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    result TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS validator_query_verifier ON validator_query (verifier_id, at);
CREATE OR REPLACE FUNCTION validator_query_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'the query log is append-only'; END $$;
CREATE OR REPLACE TRIGGER validator_query_no_update BEFORE UPDATE OR DELETE ON validator_query
FOR EACH ROW EXECUTE FUNCTION validator_query_append_only();
