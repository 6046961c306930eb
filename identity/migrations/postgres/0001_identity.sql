-- Identity network schema (PostgreSQL). Every node has every table; a node uses those of its role.
CREATE TABLE node_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

-- Per-source gapless counter and chain head (municipal node: its own source).
CREATE TABLE source_counter (
    source TEXT PRIMARY KEY,
    last_seq BIGINT NOT NULL,
    last_hash BYTEA NOT NULL
);

-- Immutable change notices: the outbox and the legal history. Never updated or deleted.
CREATE TABLE change_notice (
    source TEXT NOT NULL,
    seq BIGINT NOT NULL,
    kind BIGINT NOT NULL,
    resident_code TEXT NOT NULL,
    encoding BIGINT NOT NULL,
    body BYTEA NOT NULL,
    prev_hash BYTEA NOT NULL,
    hash BYTEA NOT NULL,
    PRIMARY KEY (source, seq)
);
CREATE INDEX change_notice_resident ON change_notice (resident_code);
CREATE FUNCTION change_notice_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'change notices are immutable'; END $$;
CREATE TRIGGER change_notice_no_change BEFORE UPDATE OR DELETE ON change_notice
FOR EACH ROW EXECUTE FUNCTION change_notice_immutable();

-- Current records: the register (municipal) or the projection (national).
CREATE TABLE resident (
    resident_code TEXT PRIMARY KEY,
    municipality TEXT NOT NULL,
    status BIGINT NOT NULL,
    version BIGINT NOT NULL,
    name TEXT NOT NULL,
    date_of_birth TEXT NOT NULL,
    sex BIGINT NOT NULL,
    address TEXT NOT NULL,
    record BYTEA NOT NULL,
    last_source TEXT NOT NULL,
    last_seq BIGINT NOT NULL
);
CREATE INDEX resident_four_items ON resident (date_of_birth, name);

-- Resident codes: pools handed out by the national node, drawn offline by municipalities.
CREATE TABLE code_pool (code TEXT PRIMARY KEY, drawn_at BIGINT);
CREATE TABLE issued_code (
    code TEXT PRIMARY KEY,
    municipality TEXT NOT NULL,
    issued_at BIGINT NOT NULL
);
CREATE TABLE retired_code (code TEXT PRIMARY KEY, replaced_by TEXT NOT NULL, retired_at BIGINT NOT NULL);

-- Move-in notices (転入通知) received by the old municipality; idempotent by key.
CREATE TABLE move_in_notification (
    resident_code TEXT NOT NULL,
    new_municipality TEXT NOT NULL,
    notice_seq BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (resident_code, new_municipality, notice_seq)
);

-- Replica cursors (prefecture and national): how far each source is applied.
CREATE TABLE replica_cursor (
    source TEXT PRIMARY KEY,
    applied_seq BIGINT NOT NULL,
    applied_hash BYTEA NOT NULL,
    halted TEXT,
    parked_on TEXT
);

-- National change-information feed, ordered by its own gapless counter.
CREATE TABLE counter (name TEXT PRIMARY KEY, value BIGINT NOT NULL);
CREATE TABLE feed (
    feed_seq BIGINT PRIMARY KEY,
    source TEXT NOT NULL,
    seq BIGINT NOT NULL,
    resident_code TEXT NOT NULL,
    previous_code TEXT,
    kind BIGINT NOT NULL,
    changed TEXT NOT NULL,
    effective_date TEXT NOT NULL,
    recorded_at BIGINT NOT NULL,
    UNIQUE (source, seq)
);

-- Agencies and the provision log.
CREATE TABLE agency (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    class TEXT NOT NULL,
    secret_sha256 BYTEA NOT NULL
);
-- The purposes each agency is registered for (a subset of its class's purposes).
CREATE TABLE agency_purpose (
    agency TEXT NOT NULL REFERENCES agency (id),
    purpose TEXT NOT NULL,
    PRIMARY KEY (agency, purpose)
);
CREATE TABLE provision_log (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at BIGINT NOT NULL,
    fiscal_year BIGINT NOT NULL,
    function TEXT NOT NULL,
    purpose TEXT NOT NULL,
    provision_class TEXT NOT NULL,
    source TEXT NOT NULL,
    destination TEXT NOT NULL,
    resident_code TEXT,
    fields TEXT NOT NULL,
    result TEXT NOT NULL,
    reason TEXT
);
CREATE INDEX provision_log_resident ON provision_log (resident_code);
CREATE INDEX provision_log_fy ON provision_log (fiscal_year, purpose);

-- Every operator write.
CREATE TABLE operator_log (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at BIGINT NOT NULL,
    operator TEXT NOT NULL,
    role TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT NOT NULL
);
