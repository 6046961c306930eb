-- The index on revocation time, made by migration 3 of the shared folder before the schema was
-- split per crate (that migration is now the validator's, which has no ca_revocation). A CA
-- database migrated before the split has it already: IF NOT EXISTS.
CREATE INDEX IF NOT EXISTS ca_revocation_time ON ca_revocation (revoked_at);
