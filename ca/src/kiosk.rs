//! コンビニ交付 at the CA: whose card signed a kiosk challenge. A municipality node asks
//! (`POST /v1/kiosk/holder`, [`crate::service`]) with the card's authentication certificate, the
//! message the card signed ([`identity::kiosk::SignedChallenge`]) and the signature; the CA
//! answers the resident it issued that certificate to only if the certificate is one of its
//! issued authentication certificates (byte for byte), the card's signature over the message
//! verifies with it, and the message names the calling municipality and has not expired. A
//! municipality thus learns the holder of a card only while that card, with its PIN, is asking
//! it for a document: never by serial, never for a certificate it merely holds a copy of.

use der::Decode;
use openssl::hash::MessageDigest;
use openssl::pkey::Id;
use openssl::sign::Verifier;
use sqlx::Row;

use crate::authority::records::state;
use crate::error::{Error, Result};
use crate::revocation::CertKind;

/// Whether `signature` is the card's signature over `message` with the key of the certificate
/// `cert_der`: RSA PKCS#1 v1.5 with SHA-256 (what a JPKI card makes over a DigestInfo) or
/// ECDSA P-384 with SHA-384. `Err` only for a certificate that does not parse.
pub fn verify_card_signature(cert_der: &[u8], message: &[u8], signature: &[u8]) -> Result<bool> {
    let bad = |e: openssl::error::ErrorStack| Error::Invalid { what: "certificate", detail: e.to_string() };
    let key = openssl::x509::X509::from_der(cert_der).and_then(|c| c.public_key()).map_err(bad)?;
    let digest = match key.id() {
        Id::RSA => MessageDigest::sha256(),
        Id::EC => MessageDigest::sha384(),
        _ => return Ok(false),
    };
    let Ok(mut v) = Verifier::new(digest, &key) else { return Ok(false) };
    Ok(v.update(message).is_ok() && v.verify(signature).unwrap_or(false))
}

/// The serial of a certificate as the CA stores it (lower-case hex of the serial's bytes).
pub fn serial_of(cert_der: &[u8]) -> Result<String> {
    let c = x509_cert::Certificate::from_der(cert_der)
        .map_err(|e| Error::Invalid { what: "certificate", detail: e.to_string() })?;
    Ok(hex::encode(c.tbs_certificate().serial_number().as_bytes()))
}

/// The resident an issued authentication certificate was issued to, if `cert_der` is exactly
/// one the CA issued (kind authentication, state issued) and names a resident.
pub async fn holder(db: &identity::store::Db, cert_der: &[u8]) -> Result<Option<(String, String)>> {
    let serial = serial_of(cert_der)?;
    let row =
        sqlx::query("SELECT resident_code, der FROM ca_certificate WHERE serial = $1 AND kind = $2 AND state = $3")
            .bind(serial.clone())
            .bind(CertKind::Authentication as i64)
            .bind(state::ISSUED)
            .fetch_optional(db.pool())
            .await?;
    let Some(row) = row else { return Ok(None) };
    let (resident, der): (Option<String>, Option<Vec<u8>>) = (row.try_get(0)?, row.try_get(1)?);
    match (resident, der) {
        (Some(r), Some(d)) if d == cert_der => Ok(Some((r, serial))),
        _ => Ok(None),
    }
}
