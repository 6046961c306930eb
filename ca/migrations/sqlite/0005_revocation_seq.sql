-- Revocation sequence (review finding H2): every revocation gets a gapless, increasing number
-- from a counter row updated in the revoking transaction, so seq order is commit order and a
-- reader that has seen `1..=n` has seen every revocation committed before the one numbered n,
-- whatever the clocks of the revoking processes said. Never an autoincrement.
CREATE TABLE ca_revocation_counter (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    last_seq BIGINT NOT NULL
);

ALTER TABLE ca_revocation ADD COLUMN seq BIGINT NOT NULL DEFAULT 0;

-- Backfill existing rows in insertion order (rowid). The immutability trigger is lifted for
-- this one statement and put back unchanged.
DROP TRIGGER ca_revocation_no_update;
UPDATE ca_revocation SET seq = (
    SELECT n FROM (SELECT rowid AS rid, ROW_NUMBER() OVER (ORDER BY rowid) AS n FROM ca_revocation) AS o
    WHERE o.rid = ca_revocation.rowid
);
CREATE TRIGGER ca_revocation_no_update BEFORE UPDATE ON ca_revocation
BEGIN SELECT RAISE(ABORT, 'revocations are immutable'); END;

INSERT INTO ca_revocation_counter (id, last_seq) SELECT 1, COUNT(*) FROM ca_revocation;
CREATE UNIQUE INDEX ca_revocation_seq ON ca_revocation (seq);
