//! A resident's certificates from a window's request: proof of possession, the card key
//! policy, the identity lookup, and the issuance plans.

use std::sync::Arc;

use der::{Decode, Encode};
use time::{Date, OffsetDateTime};
use x509_cert::request::CertReq;

use super::{AnyProfile, Authority, Generation, Plan, ca_issuers_url, crl_url, new_serial, shard_of};
use crate::error::{Error, Result};
use crate::hierarchy::{CaId, Environment, Purpose, prefecture_name};
use crate::identity_source::IdentitySource;
use crate::key::KeyAlgorithm;
use crate::profile::{AuthenticationCert, SanItems, SignatureCert, StatusUrls};
use crate::revocation::CertKind;
use crate::validity::{self, ValidityInput};
use identity::person::ResidentStatus;

/// The key algorithm new cards get under an issuing generation of `alg`: P-384 once the
/// issuing CA has moved off RSA (the next-generation card), RSA-2048 before.
pub fn card_key_algorithm(alg: KeyAlgorithm) -> KeyAlgorithm {
    if alg.rsa_bits().is_some() { KeyAlgorithm::Rsa2048 } else { KeyAlgorithm::EcP384 }
}

/// After the switch to a non-RSA issuing generation, cards get P-384 keys: an RSA card key is
/// refused (`card_algorithm`). Before it, any allowed key is certified (a P-384 pilot card).
fn check_card_key(g: &Generation, spki: &[u8]) -> Result<()> {
    let want = card_key_algorithm(g.algorithm);
    let got = KeyAlgorithm::of_spki(spki)?;
    if want != KeyAlgorithm::Rsa2048 && got != want {
        return Err(Error::refused(
            "card_algorithm",
            format!("{} g{} certifies {} card keys, not {}", g.ca, g.generation, want.name(), got.name()),
        ));
    }
    Ok(())
}

/// Checks a PKCS#10 request's self-signature (the proof of possession) and the key policy;
/// returns the SubjectPublicKeyInfo DER. The CSR's subject is ignored.
pub fn proof_of_possession(csr: &[u8], which: &str) -> Result<Vec<u8>> {
    let req = CertReq::from_der(csr)
        .map_err(|e| Error::refused("bad_pop", format!("{which} CSR is not PKCS#10 DER: {e}")))?;
    let spki = req.info.public_key.to_der()?;
    let alg = KeyAlgorithm::of_spki(&spki)?;
    if req.algorithm.oid != alg.signature_algorithm().oid {
        return Err(Error::refused(
            "bad_pop",
            format!("{which} CSR must be signed with {:?}", alg.signature_algorithm().oid),
        ));
    }
    let info = req.info.to_der()?;
    let sig = req.signature.as_bytes().ok_or_else(|| Error::refused("bad_pop", "signature has unused bits"))?;
    if !crate::key::verify(&spki, &info, sig)? {
        return Err(Error::refused(
            "bad_pop",
            format!("the {which} CSR's signature does not verify: no proof of possession"),
        ));
    }
    Ok(spki)
}

/// [`proof_of_possession`] for a resident's card key: RSA or ECDSA P-384 only. ML-DSA-65 is
/// for CA and OCSP responder keys; no card holds one.
fn card_proof_of_possession(csr: &[u8], which: &str) -> Result<Vec<u8>> {
    let spki = proof_of_possession(csr, which)?;
    if KeyAlgorithm::of_spki(&spki)? == KeyAlgorithm::MlDsa65 {
        return Err(Error::refused("bad_key", format!("the {which} key is ML-DSA-65: card keys are RSA or P-384")));
    }
    Ok(spki)
}

/// An issuance request from a window (card writer). Identity items are not in it.
#[derive(Debug, Clone)]
pub struct IssueRequest {
    /// 住民票コード.
    pub resident_code: String,
    /// Issuing window id (受付窓口識別記号): 1–9 of A–Z 0–9.
    pub window: String,
    /// Last day of the card.
    pub card_expiry: Date,
    /// Production or test hierarchy.
    pub environment: Environment,
    /// PKCS#10 CSR (DER) for the signature key: its self-signature is the proof of possession.
    pub signature_csr: Option<Vec<u8>>,
    /// PKCS#10 CSR (DER) for the authentication key.
    pub authentication_csr: Option<Vec<u8>>,
    /// Idempotency key: a retried request with the same id gets the same certificates.
    pub request_id: Option<String>,
}

/// One issued certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCert {
    /// Serial, hex.
    pub serial: String,
    /// Kind.
    pub kind: CertKind,
    /// Issuing CA.
    pub ca: String,
    /// Its generation.
    pub generation: i64,
    /// DER.
    pub der: Vec<u8>,
    /// End of validity (unix seconds).
    pub not_after: i64,
    /// CRL shard.
    pub shard: i64,
}

/// What an issuance returns: the certificates and the CA chain (issuing CA certificates, then
/// roots).
#[derive(Debug, Clone)]
pub struct Issued {
    /// The certificates.
    pub certificates: Vec<IssuedCert>,
    /// CA certificates (DER).
    pub chain: Vec<Vec<u8>>,
}

impl Issued {
    /// The certificate of a kind.
    pub fn get(&self, kind: CertKind) -> Option<&IssuedCert> {
        self.certificates.iter().find(|c| c.kind == kind)
    }
}

impl Authority {
    /// Issues a resident's certificates from a window's request. Identity items come from the
    /// identity network (a logged provision under B1-020), never from the request.
    pub async fn issue(&self, actor: &str, req: &IssueRequest, id: &IdentitySource, now: i64) -> Result<Issued> {
        self.issue_checked(actor, None, req, id, now).await
    }

    /// [`Authority::issue`] for a window of `municipality` (named by the window's certificate):
    /// refused with `not_own_municipality` unless the national node says, at this moment, that
    /// the resident is registered there. (The CA service prefixes request ids with the
    /// window's party, so a retry finds only that window's own requests.)
    pub async fn issue_at_window(
        &self,
        actor: &str,
        municipality: &str,
        req: &IssueRequest,
        id: &IdentitySource,
        now: i64,
    ) -> Result<Issued> {
        self.issue_checked(actor, Some(municipality), req, id, now).await
    }

    async fn issue_checked(
        &self,
        actor: &str,
        municipality: Option<&str>,
        req: &IssueRequest,
        id: &IdentitySource,
        now: i64,
    ) -> Result<Issued> {
        if req.window.is_empty()
            || req.window.len() > 9
            || !req.window.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        {
            return Err(Error::invalid("window", "1–9 characters of A–Z 0–9"));
        }
        if req.signature_csr.is_none() && req.authentication_csr.is_none() {
            return Err(Error::invalid("request", "no key to certify"));
        }
        if let Some(rid) = &req.request_id
            && let Some(done) = self.by_request(rid).await?
        {
            return Ok(done);
        }
        let sig_key = req.signature_csr.as_deref().map(|c| card_proof_of_possession(c, "signature")).transpose()?;
        let auth_key =
            req.authentication_csr.as_deref().map(|c| card_proof_of_possession(c, "authentication")).transpose()?;
        if let (Some(a), Some(b)) = (&sig_key, &auth_key)
            && a == b
        {
            return Err(Error::refused("key_reuse", "the signature and authentication keys must differ"));
        }
        // The feed head first: every change up to it is in the record we are about to read.
        let feed_position = id.feed_head().await?;
        let resident = id
            .resident(&req.resident_code, now)
            .await?
            .ok_or_else(|| Error::refused("resident_unknown", "no such resident on the national register"))?;
        if resident.status != ResidentStatus::Active {
            return Err(Error::refused(
                "resident_removed",
                format!("the resident is not on a register (status {:?})", resident.status),
            ));
        }
        if let Some(m) = municipality
            && resident.municipality != m
        {
            return Err(Error::refused(
                "not_own_municipality",
                // The resident is not named: refusals reach the window's screen and logs.
                format!("the resident is not registered in municipality {m}"),
            ));
        }
        let t = OffsetDateTime::from_unix_timestamp(now).map_err(|e| Error::invalid("time", e))?;
        if sig_key.is_some() {
            validity::check_signature_age(resident.date_of_birth, t)?;
        }
        let base = ValidityInput {
            date_of_birth: resident.date_of_birth,
            now: t,
            card_expiry: req.card_expiry,
            auth_not_after: None,
        };
        let auth_end = match &auth_key {
            Some(_) => Some(validity::not_after(&base)?),
            None => self.valid_auth_not_after(&resident.resident_code, now).await?,
        };
        let sig_end = sig_key
            .as_ref()
            .map(|_| validity::not_after(&ValidityInput { auth_not_after: auth_end, ..base }))
            .transpose()?;
        let prefecture =
            resident.municipality.get(..2).ok_or_else(|| Error::Identity("bad municipality code".into()))?.to_owned();
        let pref_name = prefecture_name(&prefecture)?;
        let mut plans = Vec::new();
        let stamp = validity::jst_date(t);
        let clock = t.to_offset(time::UtcOffset::from_whole_seconds(9 * 3600).unwrap_or(time::UtcOffset::UTC));
        let cn = |serial: &[u8]| {
            format!(
                "{:04}{:02}{:02}{:02}{:02}{:02}{:05}{}",
                stamp.year(),
                u8::from(stamp.month()),
                stamp.day(),
                clock.hour(),
                clock.minute(),
                clock.second(),
                u16::from_be_bytes([serial[14], serial[15]]) % 10000 + u16::from(serial[13] % 6) * 10000,
                req.window
            )
        };
        if let (Some(spki), Some(end)) = (auth_key, auth_end) {
            let g = Arc::new(self.issuing(actor, Purpose::Authentication, req.environment, &prefecture, now).await?);
            check_card_key(&g, &spki)?;
            let serial = new_serial();
            let shard = shard_of(&serial, g.shards);
            let issuance_id = cn(&serial);
            plans.push(Plan {
                kind: CertKind::Authentication,
                profile: AnyProfile::Authentication(AuthenticationCert {
                    issuer: g.cert()?.tbs_certificate().subject().clone(),
                    subject: AuthenticationCert::subject_name(&issuance_id)?,
                    policy: g.ca.policy(),
                    urls: self.urls(&g, shard),
                }),
                issuer: g,
                serial,
                shard,
                spki,
                not_before: t,
                not_after: end,
                resident_code: Some(resident.resident_code.clone()),
                issuance_id: Some(issuance_id),
                request_id: req.request_id.clone(),
                feed_position,
                supersedes: Vec::new(),
            });
        }
        if let (Some(spki), Some(end)) = (sig_key, sig_end) {
            let g = Arc::new(self.issuing(actor, Purpose::Signature, req.environment, &prefecture, now).await?);
            check_card_key(&g, &spki)?;
            let serial = new_serial();
            let shard = shard_of(&serial, g.shards);
            let issuance_id = cn(&serial);
            plans.push(Plan {
                kind: CertKind::Signature,
                profile: AnyProfile::Signature(SignatureCert {
                    issuer: g.cert()?.tbs_certificate().subject().clone(),
                    subject: SignatureCert::subject_name(pref_name, &resident.municipality, &issuance_id)?,
                    items: SanItems {
                        name: resident.name.0.clone(),
                        name_flags: resident.name.1.clone(),
                        sex: resident.sex,
                        date_of_birth: resident.date_of_birth,
                        address: resident.address.0.clone(),
                        address_flags: resident.address.1.clone(),
                    },
                    policy: g.ca.policy(),
                    urls: self.urls(&g, shard),
                }),
                issuer: g,
                serial,
                shard,
                spki,
                not_before: t,
                not_after: end,
                resident_code: Some(resident.resident_code.clone()),
                issuance_id: Some(issuance_id),
                request_id: req.request_id.clone(),
                feed_position,
                supersedes: Vec::new(),
            });
        }
        for p in &mut plans {
            p.supersedes = self.valid_serials(&resident.resident_code, p.kind, now).await?;
        }
        let chain = self.chain_of(&plans, now).await?;
        let certificates = self.run(actor, plans, now).await?;
        // A resident called in after a compromise (crate::emergency) has been re-issued.
        for c in &certificates {
            sqlx::query("UPDATE ca_reissue SET done_at = $1 WHERE resident_code = $2 AND slug = $3 AND generation <> $4 AND done_at IS NULL")
                .bind(now)
                .bind(resident.resident_code.clone())
                .bind(c.ca.clone())
                .bind(c.generation)
                .execute(self.db.pool())
                .await?;
        }
        Ok(Issued { certificates, chain })
    }

    fn urls(&self, g: &Generation, shard: i64) -> StatusUrls {
        StatusUrls {
            crl: crl_url(&self.settings.crl_base, &g.ca.slug(), g.generation, shard),
            ocsp: self.settings.ocsp_url.clone(),
            ca_issuers: Some(ca_issuers_url(&self.settings.crl_base, &g.ca.slug(), g.generation)),
        }
    }

    async fn chain_of(&self, plans: &[Plan], now: i64) -> Result<Vec<Vec<u8>>> {
        let mut chain: Vec<Vec<u8>> = Vec::new();
        for p in plans {
            if !chain.contains(&p.issuer.certificate) {
                chain.push(p.issuer.certificate.clone());
            }
        }
        for p in plans {
            let root = self.current(&CaId::root(p.issuer.ca.purpose, p.issuer.ca.env), now).await?;
            if !chain.contains(&root.certificate) {
                chain.push(root.certificate);
            }
        }
        Ok(chain)
    }
}
