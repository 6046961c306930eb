-- Key ceremonies (issue 11). A generation issues from its activation instant until a newer
-- generation's activation; rolled_back is set when an operator rolls a generation back before
-- it issued anything. Generations made before ceremonies existed were active from creation.
ALTER TABLE ca_generation ADD COLUMN not_before BIGINT NOT NULL DEFAULT 0;
ALTER TABLE ca_generation ADD COLUMN activation BIGINT NOT NULL DEFAULT 0;
ALTER TABLE ca_generation ADD COLUMN rolled_back BIGINT;

-- One row per ceremony: the reviewed file (and its SHA-256: a resumed run must present the
-- same file), the key label chosen before the key is generated, the last step done and the
-- number of steps.
CREATE TABLE ca_ceremony (
    slug TEXT NOT NULL,
    generation BIGINT NOT NULL,
    file TEXT NOT NULL,
    sha256 BYTEA NOT NULL,
    key_label TEXT NOT NULL,
    step BIGINT NOT NULL,
    steps BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (slug, generation)
);

-- Link certificates (RFC 4210 §4.4) of same-name root re-keys and cross-certificates of
-- renamed roots. direction: 1 NewWithOld (the new key, signed by the old), 2 OldWithNew.
CREATE TABLE ca_link (
    serial TEXT PRIMARY KEY REFERENCES ca_certificate (serial),
    slug TEXT NOT NULL,
    old_generation BIGINT NOT NULL,
    new_generation BIGINT NOT NULL,
    direction BIGINT NOT NULL
);
CREATE INDEX ca_link_slug ON ca_link (slug, new_generation);
