//! A resident's certificates from a window's request: proof of possession, the card key
//! policy, the identity lookup, and the issuance plans.

use std::sync::Arc;

use der::{Decode, Encode};
use time::{Date, OffsetDateTime};
use x509_cert::request::CertReq;

use super::{AnyProfile, Authority, Generation, Plan, Settings, ca_issuers_url, crl_url, new_serial, shard_of};
use crate::error::{Error, Result};
use crate::hierarchy::{CaId, Environment, Purpose, prefecture_name};
use crate::identity_source::{IdentitySource, Resident};
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
        check_window(req)?;
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
        // Refusals before anything is read or created for this resident (plan_resident checks
        // the same again, with everything else).
        let prefecture = eligible(req, municipality, &resident, sig_key.is_some(), now)?;
        let auth_not_after = match &auth_key {
            Some(_) => None,
            None => self.valid_auth_not_after(&resident.resident_code, now).await?,
        };
        let ca = |purpose, wanted: bool| {
            let prefecture = prefecture.clone();
            async move {
                if !wanted {
                    return Ok(None);
                }
                self.issuing(actor, purpose, req.environment, &prefecture, now).await.map(|g| Some(Arc::new(g)))
            }
        };
        let authentication_ca = ca(Purpose::Authentication, auth_key.is_some()).await?;
        let signature_ca = ca(Purpose::Signature, sig_key.is_some()).await?;
        let mut plans = plan_resident(&ResidentPlanInput {
            request: req,
            municipality,
            resident: &resident,
            authentication_key: auth_key,
            signature_key: sig_key,
            auth_not_after,
            authentication_ca,
            signature_ca,
            serials: [new_serial(), new_serial()],
            settings: &self.settings,
            feed_position,
            now,
        })?;
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

/// A window id is 1–9 of A–Z 0–9, and a request certifies at least one key.
fn check_window(req: &IssueRequest) -> Result<()> {
    if req.window.is_empty()
        || req.window.len() > 9
        || !req.window.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    {
        return Err(Error::invalid("window", "1–9 characters of A–Z 0–9"));
    }
    if req.signature_csr.is_none() && req.authentication_csr.is_none() {
        return Err(Error::invalid("request", "no key to certify"));
    }
    Ok(())
}

/// Whether `resident` may have certificates from this request now: on a register, in the
/// window's own municipality (when the window names one), and 15 or older for a signature
/// certificate. Returns the prefecture code whose issuing CAs certify them.
fn eligible(
    req: &IssueRequest,
    municipality: Option<&str>,
    resident: &Resident,
    signature: bool,
    now: i64,
) -> Result<String> {
    check_window(req)?;
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
    if signature {
        validity::check_signature_age(resident.date_of_birth, t)?;
    }
    let prefecture =
        resident.municipality.get(..2).ok_or_else(|| Error::Identity("bad municipality code".into()))?.to_owned();
    prefecture_name(&prefecture)?;
    Ok(prefecture)
}

/// Everything [`plan_resident`] decides from: read from the identity network and the CA's
/// database, or drawn at random, by the shell before it. Keys are SubjectPublicKeyInfo DER
/// whose proof of possession has been checked.
#[derive(Debug, Clone)]
pub struct ResidentPlanInput<'a> {
    /// The window's request.
    pub request: &'a IssueRequest,
    /// The window's municipality (from its certificate), if the request came from a window.
    pub municipality: Option<&'a str>,
    /// The resident as the national node gave it.
    pub resident: &'a Resident,
    /// The authentication key to certify.
    pub authentication_key: Option<Vec<u8>>,
    /// The signature key to certify.
    pub signature_key: Option<Vec<u8>>,
    /// With no authentication key: the end of the resident's valid authentication certificate
    /// (a signature certificate never outlives it).
    pub auth_not_after: Option<OffsetDateTime>,
    /// The issuing generation for the authentication certificate (needed with its key).
    pub authentication_ca: Option<Arc<Generation>>,
    /// The issuing generation for the signature certificate (needed with its key).
    pub signature_ca: Option<Arc<Generation>>,
    /// Fresh serials ([`new_serial`]): the authentication certificate's, the signature's.
    pub serials: [Vec<u8>; 2],
    /// Where CRLs and OCSP are published.
    pub settings: &'a Settings,
    /// The national feed head read before the identity lookup.
    pub feed_position: u64,
    /// Now (unix seconds).
    pub now: i64,
}

/// The resident-issuance decision, pure: the window check, eligibility (on a register, the
/// window's own municipality, the signature age), validity (each certificate ends with the
/// card, the resident's 20th birthday rules, and a signature certificate never outlives the
/// authentication one), the card key policy of each issuing generation, the subject CN
/// (issuance instant in JST, a number from the serial, the window) and the plans, authentication
/// first. No I/O and no clock: the caller reads what it needs first ([`ResidentPlanInput`]).
pub fn plan_resident(input: &ResidentPlanInput<'_>) -> Result<Vec<Plan>> {
    let (req, resident, now) = (input.request, input.resident, input.now);
    eligible(req, input.municipality, resident, input.signature_key.is_some(), now)?;
    if let (Some(a), Some(b)) = (&input.signature_key, &input.authentication_key)
        && a == b
    {
        return Err(Error::refused("key_reuse", "the signature and authentication keys must differ"));
    }
    let t = OffsetDateTime::from_unix_timestamp(now).map_err(|e| Error::invalid("time", e))?;
    let base = ValidityInput {
        date_of_birth: resident.date_of_birth,
        now: t,
        card_expiry: req.card_expiry,
        auth_not_after: None,
    };
    let auth_end = match &input.authentication_key {
        Some(_) => Some(validity::not_after(&base)?),
        None => input.auth_not_after,
    };
    let sig_end = input
        .signature_key
        .as_ref()
        .map(|_| validity::not_after(&ValidityInput { auth_not_after: auth_end, ..base }))
        .transpose()?;
    let pref_name = prefecture_name(resident.municipality.get(..2).unwrap_or_default())?;
    let stamp = validity::jst_date(t);
    let clock = t.to_offset(time::UtcOffset::from_whole_seconds(9 * 3600).unwrap_or(time::UtcOffset::UTC));
    let cn = |serial: &[u8]| -> Result<String> {
        let [.., a, b, c] = serial else {
            return Err(Error::invalid("serial", "at least 3 bytes"));
        };
        Ok(format!(
            "{:04}{:02}{:02}{:02}{:02}{:02}{:05}{}",
            stamp.year(),
            u8::from(stamp.month()),
            stamp.day(),
            clock.hour(),
            clock.minute(),
            clock.second(),
            u16::from_be_bytes([*b, *c]) % 10000 + u16::from(*a % 6) * 10000,
            req.window
        ))
    };
    let urls = |g: &Generation, shard: i64| StatusUrls {
        crl: crl_url(&input.settings.crl_base, &g.ca.slug(), g.generation, shard),
        ocsp: input.settings.ocsp_url.clone(),
        ca_issuers: Some(ca_issuers_url(&input.settings.crl_base, &g.ca.slug(), g.generation)),
    };
    let issuer = |g: &Option<Arc<Generation>>, what: &str| {
        g.clone().ok_or_else(|| Error::invalid("plan", format!("no issuing generation given for the {what} key")))
    };
    let mut plans = Vec::new();
    if let (Some(spki), Some(end)) = (&input.authentication_key, auth_end) {
        let g = issuer(&input.authentication_ca, "authentication")?;
        check_card_key(&g, spki)?;
        let serial = input.serials[0].clone();
        let shard = shard_of(&serial, g.shards);
        let issuance_id = cn(&serial)?;
        plans.push(Plan {
            kind: CertKind::Authentication,
            profile: AnyProfile::Authentication(AuthenticationCert {
                issuer: g.cert()?.tbs_certificate().subject().clone(),
                subject: AuthenticationCert::subject_name(&issuance_id)?,
                policy: g.ca.policy(),
                urls: urls(&g, shard),
            }),
            issuer: g,
            serial,
            shard,
            spki: spki.clone(),
            not_before: t,
            not_after: end,
            resident_code: Some(resident.resident_code.clone()),
            issuance_id: Some(issuance_id),
            request_id: req.request_id.clone(),
            feed_position: input.feed_position,
            supersedes: Vec::new(),
        });
    }
    if let (Some(spki), Some(end)) = (&input.signature_key, sig_end) {
        let g = issuer(&input.signature_ca, "signature")?;
        check_card_key(&g, spki)?;
        let serial = input.serials[1].clone();
        let shard = shard_of(&serial, g.shards);
        let issuance_id = cn(&serial)?;
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
                urls: urls(&g, shard),
            }),
            issuer: g,
            serial,
            shard,
            spki: spki.clone(),
            not_before: t,
            not_after: end,
            resident_code: Some(resident.resident_code.clone()),
            issuance_id: Some(issuance_id),
            request_id: req.request_id.clone(),
            feed_position: input.feed_position,
            supersedes: Vec::new(),
        });
    }
    Ok(plans)
}

#[cfg(test)]
mod tests {
    use time::macros::{date, datetime};

    use super::*;
    use crate::key::{KeyBackend, SoftKey};
    use crate::profile::{RootCa, prepare};

    // 2026-12-05 10:00:00 JST.
    const NOW: i64 = datetime!(2026-12-05 01:00:00 UTC).unix_timestamp();

    fn key(alg: KeyAlgorithm) -> SoftKey {
        SoftKey::ephemeral(alg).unwrap_or_else(|e| panic!("{e}"))
    }

    /// An issuing generation of prefecture 13 with a real (self-signed) certificate.
    fn generation(purpose: Purpose, alg: KeyAlgorithm) -> Arc<Generation> {
        let k = key(alg);
        let ca = CaId::issuing(purpose, Environment::Production, "13").unwrap_or_else(|e| panic!("{e}"));
        let start = OffsetDateTime::from_unix_timestamp(NOW - 86_400).unwrap_or_else(|e| panic!("{e}"));
        let end = start + time::Duration::days(3653);
        let p = prepare(
            RootCa { name: ca.name().unwrap_or_else(|e| panic!("{e}")), path_len: None },
            &new_serial(),
            start,
            end,
            k.public_key_der(),
            &k,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        Arc::new(Generation {
            ca,
            generation: 1,
            algorithm: alg,
            key_ref: "test".into(),
            certificate: p.sign(&k).unwrap_or_else(|e| panic!("{e}")),
            key_id: Vec::new(),
            not_after: end.unix_timestamp(),
            shards: 16,
            not_before: start.unix_timestamp(),
            activation: start.unix_timestamp(),
            rolled_back: None,
        })
    }

    fn resident(dob: Date) -> Resident {
        Resident {
            resident_code: "07526046204".into(),
            name: ("山田 花子".into(), String::new()),
            address: ("東京都千代田区千代田1-1".into(), String::new()),
            date_of_birth: dob,
            sex: 2,
            status: ResidentStatus::Active,
            municipality: "131016".into(),
        }
    }

    fn request(window: &str) -> IssueRequest {
        IssueRequest {
            resident_code: "07526046204".into(),
            window: window.into(),
            card_expiry: date!(2036 - 12 - 31),
            environment: Environment::Production,
            signature_csr: Some(vec![1]),
            authentication_csr: Some(vec![2]),
            request_id: Some("w01-1".into()),
        }
    }

    struct Case {
        req: IssueRequest,
        resident: Resident,
        municipality: Option<&'static str>,
        auth: Option<Vec<u8>>,
        sig: Option<Vec<u8>>,
        auth_not_after: Option<OffsetDateTime>,
        auth_ca: Option<Arc<Generation>>,
        sig_ca: Option<Arc<Generation>>,
        now: i64,
    }

    fn case() -> Case {
        Case {
            req: request("W01"),
            resident: resident(date!(1990 - 04 - 01)),
            municipality: Some("131016"),
            auth: Some(key(KeyAlgorithm::EcP384).public_key_der().to_vec()),
            sig: Some(key(KeyAlgorithm::EcP384).public_key_der().to_vec()),
            auth_not_after: None,
            auth_ca: Some(generation(Purpose::Authentication, KeyAlgorithm::EcP384)),
            sig_ca: Some(generation(Purpose::Signature, KeyAlgorithm::EcP384)),
            now: NOW,
        }
    }

    fn plan(c: &Case) -> Result<Vec<Plan>> {
        let settings = Settings::default();
        plan_resident(&ResidentPlanInput {
            request: &c.req,
            municipality: c.municipality,
            resident: &c.resident,
            authentication_key: c.auth.clone(),
            signature_key: c.sig.clone(),
            auth_not_after: c.auth_not_after,
            authentication_ca: c.auth_ca.clone(),
            signature_ca: c.sig_ca.clone(),
            serials: [vec![0x40; 16], [vec![0x41; 13], vec![0x05, 0x12, 0x34]].concat()],
            settings: &settings,
            feed_position: 42,
            now: c.now,
        })
    }

    fn refusal(r: Result<Vec<Plan>>) -> String {
        match r {
            Err(Error::Refused { code, .. }) => code.to_string(),
            Err(e) => format!("other error: {e}"),
            Ok(p) => format!("planned {} certificates", p.len()),
        }
    }

    #[test]
    fn both_keys_plan_authentication_then_signature_ending_at_the_fifth_birthday() {
        let c = case();
        let plans = plan(&c).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(plans.iter().map(|p| p.kind).collect::<Vec<_>>(), [CertKind::Authentication, CertKind::Signature]);
        // Born 1 April: the 5th birthday after 2026-12-05 is 2031-04-01 (the first one is
        // more than 3 months away), 23:59:59 JST.
        let end = datetime!(2031-04-01 14:59:59 UTC);
        for p in &plans {
            assert_eq!(p.not_after, end, "{:?}", p.kind);
            assert_eq!(p.not_before.unix_timestamp(), NOW);
            assert_eq!(p.feed_position, 42);
            assert_eq!(p.resident_code.as_deref(), Some("07526046204"));
            assert_eq!(p.request_id.as_deref(), Some("w01-1"));
            assert_eq!(p.shard, shard_of(&p.serial, 16));
        }
        assert_eq!(plans[0].spki, c.auth.clone().unwrap_or_default());
        assert_eq!(plans[1].spki, c.sig.clone().unwrap_or_default());
        // CN: the JST instant, then (serial[14..16] mod 10000) + (serial[13] mod 6)·10000, then
        // the window: 0x1234 = 4660, 0x05 mod 6 = 5.
        assert_eq!(plans[1].issuance_id.as_deref(), Some("2026120510000054660W01"));
        // 0x4040 mod 10000 = 6448, 0x40 mod 6 = 4.
        assert_eq!(plans[0].issuance_id.as_deref(), Some("2026120510000046448W01"));
        match (&plans[0].profile, &plans[1].profile) {
            (AnyProfile::Authentication(a), AnyProfile::Signature(s)) => {
                assert_eq!(a.urls.crl, crl_url(&Settings::default().crl_base, "auth-13", 1, plans[0].shard));
                assert_eq!(s.items.name, "山田 花子");
                assert_eq!(s.items.date_of_birth, date!(1990 - 04 - 01));
            }
            other => panic!("profiles {other:?}"),
        }
    }

    #[test]
    fn the_card_expiry_and_an_existing_authentication_certificate_cut_validity_short() {
        let mut c = case();
        c.req.card_expiry = date!(2028 - 06 - 30);
        let plans = plan(&c).unwrap_or_else(|e| panic!("{e}"));
        assert!(plans.iter().all(|p| p.not_after == datetime!(2028-06-30 14:59:59 UTC)));
        // A signature key alone: it never outlives the resident's authentication certificate.
        let mut c = case();
        c.auth = None;
        c.auth_ca = None;
        c.auth_not_after = Some(datetime!(2027-03-01 00:00:00 UTC));
        let plans = plan(&c).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(plans.len(), 1);
        assert_eq!(plans[0].kind, CertKind::Signature);
        assert_eq!(plans[0].not_after, datetime!(2027-03-01 00:00:00 UTC));
        // …and none at all when that certificate has expired.
        c.auth_not_after = Some(datetime!(2026-12-01 00:00:00 UTC));
        assert_eq!(refusal(plan(&c)), "auth_expired");
    }

    #[test]
    fn refusals_name_their_rule() {
        let mut c = case();
        c.req.window = "w01".into();
        assert_eq!(refusal(plan(&c)), "other error: invalid window: 1–9 characters of A–Z 0–9");
        let mut c = case();
        c.resident.status = ResidentStatus::Deceased;
        assert_eq!(refusal(plan(&c)), "resident_removed");
        let mut c = case();
        c.municipality = Some("271004");
        assert_eq!(refusal(plan(&c)), "not_own_municipality");
        let mut c = case();
        c.resident = resident(date!(2012 - 01 - 01));
        assert_eq!(refusal(plan(&c)), "under_age");
        // Under 15 with an authentication key only: planned.
        c.sig = None;
        c.sig_ca = None;
        assert_eq!(refusal(plan(&c)), "planned 1 certificates");
        let mut c = case();
        c.sig = c.auth.clone();
        assert_eq!(refusal(plan(&c)), "key_reuse");
        let mut c = case();
        c.req.card_expiry = date!(2026 - 12 - 05);
        assert_eq!(refusal(plan(&c)), "card_expired");
        // A P-384 issuing generation certifies P-384 card keys only.
        let mut c = case();
        c.sig = Some(key(KeyAlgorithm::Rsa2048).public_key_der().to_vec());
        assert_eq!(refusal(plan(&c)), "card_algorithm");
        // A key without its issuing generation is the caller's bug, not a refusal.
        let mut c = case();
        c.sig_ca = None;
        assert!(refusal(plan(&c)).starts_with("other error: invalid plan"));
    }

    #[test]
    fn without_a_window_municipality_any_registered_resident_is_planned() {
        let mut c = case();
        c.municipality = None;
        c.resident.municipality = "271004".into();
        // Prefecture 27's resident under prefecture 13's generations given by the caller: the
        // plan uses the generations it is given and names prefecture 27 in the subject.
        let plans = plan(&c).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(plans.len(), 2);
    }
}
