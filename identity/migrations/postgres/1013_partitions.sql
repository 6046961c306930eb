-- National scale (issue 14, docs/scale-identity.md): the two tables that grow with the nation,
-- partitioned, on PostgreSQL only (SQLite's 1013 is empty: an embedded node never holds a nation).
-- A populated table is converted in place: renamed away, its rows copied into the partitioned
-- table of the same name and columns, then dropped, all in this migration's one transaction.
--
-- resident (the register, and at the national node the projection): by HASH of resident_code
-- into 16 partitions, not by prefecture. The primary key must hold the partition key, so
-- partitioning by prefecture would make the key (prefecture, resident_code) and PostgreSQL could
-- no longer keep a resident code unique across prefectures; and a move between prefectures would
-- move the row between partitions on every such notice. Every read and write of the projection
-- is by resident code (provisions, the replica's apply, load_many), so hash pruning finds the one
-- partition; the four-item lookup (by date of birth and name) uses the index in every partition.
DROP INDEX resident_four_items;
ALTER TABLE resident RENAME TO resident_unpartitioned;
ALTER TABLE resident_unpartitioned RENAME CONSTRAINT resident_pkey TO resident_unpartitioned_pkey;
CREATE TABLE resident (
    resident_code TEXT NOT NULL,
    municipality TEXT NOT NULL,
    status BIGINT NOT NULL,
    version BIGINT NOT NULL,
    name TEXT NOT NULL,
    date_of_birth TEXT NOT NULL,
    sex BIGINT NOT NULL,
    address TEXT NOT NULL,
    record BYTEA NOT NULL,
    last_source TEXT NOT NULL,
    last_seq BIGINT NOT NULL,
    PRIMARY KEY (resident_code)
) PARTITION BY HASH (resident_code);
CREATE TABLE resident_h00 PARTITION OF resident FOR VALUES WITH (MODULUS 16, REMAINDER 0);
CREATE TABLE resident_h01 PARTITION OF resident FOR VALUES WITH (MODULUS 16, REMAINDER 1);
CREATE TABLE resident_h02 PARTITION OF resident FOR VALUES WITH (MODULUS 16, REMAINDER 2);
CREATE TABLE resident_h03 PARTITION OF resident FOR VALUES WITH (MODULUS 16, REMAINDER 3);
CREATE TABLE resident_h04 PARTITION OF resident FOR VALUES WITH (MODULUS 16, REMAINDER 4);
CREATE TABLE resident_h05 PARTITION OF resident FOR VALUES WITH (MODULUS 16, REMAINDER 5);
CREATE TABLE resident_h06 PARTITION OF resident FOR VALUES WITH (MODULUS 16, REMAINDER 6);
CREATE TABLE resident_h07 PARTITION OF resident FOR VALUES WITH (MODULUS 16, REMAINDER 7);
CREATE TABLE resident_h08 PARTITION OF resident FOR VALUES WITH (MODULUS 16, REMAINDER 8);
CREATE TABLE resident_h09 PARTITION OF resident FOR VALUES WITH (MODULUS 16, REMAINDER 9);
CREATE TABLE resident_h10 PARTITION OF resident FOR VALUES WITH (MODULUS 16, REMAINDER 10);
CREATE TABLE resident_h11 PARTITION OF resident FOR VALUES WITH (MODULUS 16, REMAINDER 11);
CREATE TABLE resident_h12 PARTITION OF resident FOR VALUES WITH (MODULUS 16, REMAINDER 12);
CREATE TABLE resident_h13 PARTITION OF resident FOR VALUES WITH (MODULUS 16, REMAINDER 13);
CREATE TABLE resident_h14 PARTITION OF resident FOR VALUES WITH (MODULUS 16, REMAINDER 14);
CREATE TABLE resident_h15 PARTITION OF resident FOR VALUES WITH (MODULUS 16, REMAINDER 15);
INSERT INTO resident (resident_code, municipality, status, version, name, date_of_birth, sex, address, record, last_source, last_seq)
SELECT resident_code, municipality, status, version, name, date_of_birth, sex, address, record, last_source, last_seq
FROM resident_unpartitioned;
DROP TABLE resident_unpartitioned;
CREATE INDEX resident_four_items ON resident (date_of_birth, name);

-- provision_log: by RANGE of `at` (unix seconds), one partition per calendar month in Japan
-- (JST, UTC+9, no daylight saving: the months of the disclosure reports and the fiscal year), so
-- a month's rows are one table to archive or detach, and the newest month's indexes stay small.
-- The primary key must hold `at`: (id, at); id stays unique by its identity sequence alone.
-- A DEFAULT partition takes any row no month partition covers, so an insert never fails for
-- want of a partition; provision_log_ensure_months moves such rows into their month when it
-- creates it. The national and prefecture nodes call it at start and daily, for the month
-- now and the next three (identity::store::ensure_partitions).
DROP INDEX provision_log_resident;
DROP INDEX provision_log_fy;
ALTER TABLE provision_log RENAME TO provision_log_unpartitioned;
ALTER TABLE provision_log_unpartitioned RENAME CONSTRAINT provision_log_pkey TO provision_log_unpartitioned_pkey;
CREATE TABLE provision_log (
    id BIGINT GENERATED ALWAYS AS IDENTITY,
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
    reason TEXT,
    PRIMARY KEY (id, at)
) PARTITION BY RANGE (at);
CREATE TABLE provision_log_default PARTITION OF provision_log DEFAULT;

-- Creates the month partitions (JST) covering unix seconds [from_at, to_at], named
-- provision_log_yYYYYmMM; a month whose rows already sit in the default partition is built
-- from them and attached. Idempotent, and serialised by an advisory lock (nodes sharing a
-- database may call it at once). Returns how many partitions it created.
CREATE FUNCTION provision_log_ensure_months(from_at BIGINT, to_at BIGINT) RETURNS INTEGER
LANGUAGE plpgsql AS $$
DECLARE
    month DATE;
    last DATE;
    lo BIGINT;
    hi BIGINT;
    part TEXT;
    made INTEGER := 0;
BEGIN
    IF to_at < from_at THEN
        RAISE EXCEPTION 'provision_log_ensure_months: % is before %', to_at, from_at;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('provision_log_ensure_months'));
    month := date_trunc('month', (to_timestamp(from_at) AT TIME ZONE 'UTC') + INTERVAL '9 hours')::DATE;
    last := date_trunc('month', (to_timestamp(to_at) AT TIME ZONE 'UTC') + INTERVAL '9 hours')::DATE;
    WHILE month <= last LOOP
        part := format('provision_log_y%sm%s', to_char(month, 'YYYY'), to_char(month, 'MM'));
        -- Midnight JST of the first of the month and of the next, as unix seconds.
        lo := extract(epoch FROM month::TIMESTAMP)::BIGINT - 9 * 3600;
        hi := extract(epoch FROM (month + INTERVAL '1 month')::TIMESTAMP)::BIGINT - 9 * 3600;
        IF to_regclass(part) IS NULL THEN
            IF EXISTS (SELECT 1 FROM provision_log_default WHERE at >= lo AND at < hi) THEN
                EXECUTE format('CREATE TABLE %I (LIKE provision_log)', part);
                EXECUTE format(
                    'WITH moved AS (DELETE FROM provision_log_default WHERE at >= $1 AND at < $2 RETURNING *) '
                    'INSERT INTO %I SELECT * FROM moved', part) USING lo, hi;
                EXECUTE format('ALTER TABLE provision_log ATTACH PARTITION %I FOR VALUES FROM (%s) TO (%s)', part, lo, hi);
            ELSE
                EXECUTE format('CREATE TABLE %I PARTITION OF provision_log FOR VALUES FROM (%s) TO (%s)', part, lo, hi);
            END IF;
            made := made + 1;
        END IF;
        month := month + INTERVAL '1 month';
    END LOOP;
    RETURN made;
END $$;

-- The months of the rows being converted, and the month now and the next three.
SELECT provision_log_ensure_months(
    LEAST(COALESCE(MIN(at), extract(epoch FROM now())::BIGINT), extract(epoch FROM now())::BIGINT),
    extract(epoch FROM now())::BIGINT + 92 * 86400)
FROM provision_log_unpartitioned;
INSERT INTO provision_log (id, at, fiscal_year, function, purpose, provision_class, source, destination, resident_code, fields, result, reason)
OVERRIDING SYSTEM VALUE
SELECT id, at, fiscal_year, function, purpose, provision_class, source, destination, resident_code, fields, result, reason
FROM provision_log_unpartitioned;
-- The identity continues after the copied ids: rows stay in insertion order by id.
SELECT setval(pg_get_serial_sequence('provision_log', 'id'), COALESCE(MAX(id), 0) + 1, false) FROM provision_log;
DROP TABLE provision_log_unpartitioned;
CREATE INDEX provision_log_resident ON provision_log (resident_code);
CREATE INDEX provision_log_fy ON provision_log (fiscal_year, purpose);
