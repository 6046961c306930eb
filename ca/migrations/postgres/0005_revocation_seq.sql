-- Revocation sequence (review finding H2): every revocation gets a gapless, increasing number
-- from a counter row updated in the revoking transaction (the row lock orders the revoking
-- transactions), so seq order is commit order and a reader that has seen `1..=n` has seen every
-- revocation committed before the one numbered n, whatever the clocks of the revoking
-- processes said. Never an autoincrement.
CREATE TABLE ca_revocation_counter (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    last_seq BIGINT NOT NULL
);

ALTER TABLE ca_revocation ADD COLUMN seq BIGINT NOT NULL DEFAULT 0;

-- Backfill existing rows in insertion order. The table was append-only (no update, no
-- delete), so its heap order (ctid) is its insertion order. The immutability trigger is
-- disabled for this one statement, inside the migration's transaction.
ALTER TABLE ca_revocation DISABLE TRIGGER ca_revocation_no_change;
UPDATE ca_revocation SET seq = o.n
FROM (SELECT ctid AS c, ROW_NUMBER() OVER (ORDER BY ctid) AS n FROM ca_revocation) AS o
WHERE ca_revocation.ctid = o.c;
ALTER TABLE ca_revocation ENABLE TRIGGER ca_revocation_no_change;

INSERT INTO ca_revocation_counter (id, last_seq) SELECT 1, COUNT(*) FROM ca_revocation;
CREATE UNIQUE INDEX ca_revocation_seq ON ca_revocation (seq);
