-- National scale (issue 14): PostgreSQL's 1013 partitions resident (by hash of the resident
-- code) and provision_log (by month). SQLite has no partitions and an embedded node never holds
-- a nation: the tables stay as they are. This file keeps the versions of both engines equal
-- (xtask tidy); it changes nothing.
SELECT 1;
