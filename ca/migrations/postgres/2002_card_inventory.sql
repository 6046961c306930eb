-- The card inventory: which resident each card (by its serial) was personalised for, and by
-- which municipality's window. Written when the CA service issues certificates for a card;
-- read before it answers a card's issuer challenge, so an issuer session on an issued card is
-- granted only for that card's own resident.
CREATE TABLE ca_card (
    card_serial   TEXT PRIMARY KEY,
    resident_code TEXT NOT NULL,
    municipality  TEXT NOT NULL,
    window_party  TEXT NOT NULL,
    issued_at     BIGINT NOT NULL
);
