-- Validation service (issue 5): registered verifiers (署名検証者) and the log of their queries
-- (audit and billing). The validator keeps these in its own database.
CREATE TABLE validator_verifier (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    secret_hash BYTEA NOT NULL,
    purposes TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE validator_query (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at BIGINT NOT NULL,
    verifier_id TEXT NOT NULL,
    purpose TEXT NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    result TEXT NOT NULL
);
CREATE INDEX validator_query_verifier ON validator_query (verifier_id, at);
CREATE FUNCTION validator_query_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'the query log is append-only'; END $$;
CREATE TRIGGER validator_query_no_update BEFORE UPDATE OR DELETE ON validator_query
FOR EACH ROW EXECUTE FUNCTION validator_query_append_only();
-- The responder polls revocations by time.
CREATE INDEX ca_revocation_time ON ca_revocation (revoked_at);
