-- Certificate authorities (issue 3). Every node's database carries the whole schema; a CA
-- node uses only these tables. Numbers stored here (purpose, environment, algorithm, kind,
-- state, reason) are forever.

-- A CA: a hierarchy's root or a prefecture-unit issuing CA (slug: sign-root, auth-13, test-sign-27).
CREATE TABLE ca_authority (
    slug TEXT PRIMARY KEY,
    purpose BIGINT NOT NULL,
    environment BIGINT NOT NULL,
    prefecture TEXT,
    created_at BIGINT NOT NULL
);

-- A CA generation: key + certificate. The issuer of anything is found by key identifier.
CREATE TABLE ca_generation (
    slug TEXT NOT NULL REFERENCES ca_authority (slug),
    generation BIGINT NOT NULL,
    key_ref TEXT NOT NULL,
    algorithm BIGINT NOT NULL,
    certificate BLOB NOT NULL,
    key_id BLOB NOT NULL UNIQUE,
    not_after BIGINT NOT NULL,
    shards BIGINT NOT NULL,
    crl_number BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (slug, generation)
);

-- Every certificate, from the moment its serial is reserved. state: 1 reserved, 2 TBS stored,
-- 3 issued, 4 abandoned (reserved but never stored: nothing to revoke). kind: 1 signature,
-- 2 authentication, 3 OCSP responder, 4 CA. feed_position: the national feed head read before
-- the identity lookup; only later feed entries can make this certificate's contents stale.
CREATE TABLE ca_certificate (
    serial TEXT PRIMARY KEY,
    issuer_slug TEXT NOT NULL,
    issuer_generation BIGINT NOT NULL,
    kind BIGINT NOT NULL,
    state BIGINT NOT NULL,
    resident_code TEXT,
    issuance_id TEXT,
    request_id TEXT,
    feed_position BIGINT NOT NULL DEFAULT 0,
    shard BIGINT NOT NULL,
    not_before BIGINT,
    not_after BIGINT,
    tbs BLOB,
    der BLOB,
    created_at BIGINT NOT NULL,
    FOREIGN KEY (issuer_slug, issuer_generation) REFERENCES ca_generation (slug, generation)
);
CREATE INDEX ca_certificate_resident ON ca_certificate (resident_code, kind);
CREATE INDEX ca_certificate_state ON ca_certificate (state);

-- Revocations: forever, never updated. Issuer and shard are copied so a CRL reads only this table.
CREATE TABLE ca_revocation (
    serial TEXT PRIMARY KEY REFERENCES ca_certificate (serial),
    serial_bytes BLOB NOT NULL,
    issuer_slug TEXT NOT NULL,
    issuer_generation BIGINT NOT NULL,
    shard BIGINT NOT NULL,
    revoked_at BIGINT NOT NULL,
    reason BIGINT NOT NULL,
    cause TEXT NOT NULL
);
CREATE INDEX ca_revocation_shard ON ca_revocation (issuer_slug, issuer_generation, shard);
CREATE TRIGGER ca_revocation_no_update BEFORE UPDATE ON ca_revocation
BEGIN SELECT RAISE(ABORT, 'revocations are immutable'); END;
CREATE TRIGGER ca_revocation_no_delete BEFORE DELETE ON ca_revocation
BEGIN SELECT RAISE(ABORT, 'revocations are immutable'); END;

-- Published CRLs (shard -1 = the ARL of a root generation).
CREATE TABLE ca_crl (
    slug TEXT NOT NULL,
    generation BIGINT NOT NULL,
    shard BIGINT NOT NULL,
    number BIGINT NOT NULL,
    this_update BIGINT NOT NULL,
    next_update BIGINT NOT NULL,
    entries BIGINT NOT NULL,
    bytes BIGINT NOT NULL,
    sha256 BLOB NOT NULL,
    path TEXT NOT NULL,
    PRIMARY KEY (slug, generation, number)
);

-- Hash-chained audit trail of every CA operation: hash = SHA-256(prev_hash || canonical row).
CREATE TABLE ca_audit (
    seq BIGINT PRIMARY KEY,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev_hash BLOB NOT NULL,
    hash BLOB NOT NULL
);
CREATE TRIGGER ca_audit_no_update BEFORE UPDATE ON ca_audit
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
CREATE TRIGGER ca_audit_no_delete BEFORE DELETE ON ca_audit
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;

-- Settings (URLs, shard count) and cursors (the national feed position).
CREATE TABLE ca_setting (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
