-- Emergency re-issuance (issue 11, seed 004): after a generation is declared compromised, every
-- resident holding a certificate of it is queued at the municipality where the national node
-- says the resident is registered now; the queue entry is done when the resident's new
-- certificates are issued. The plan's progress (the last resident code planned) is a ca_setting
-- row `reissue:{slug}:g{n}`, so a plan interrupted at any point resumes where it stopped.
CREATE TABLE ca_reissue (
    slug TEXT NOT NULL,
    generation BIGINT NOT NULL,
    resident_code TEXT NOT NULL,
    municipality TEXT NOT NULL,
    queued_at BIGINT NOT NULL,
    done_at BIGINT,
    PRIMARY KEY (slug, generation, resident_code)
);
CREATE INDEX ca_reissue_queue ON ca_reissue (municipality, done_at);
CREATE INDEX ca_reissue_resident ON ca_reissue (resident_code);
