//! コンビニ交付 at a municipality node: a convenience-store kiosk (`urn:jpki:kiosk:NAME`, from its
//! mutual-TLS certificate) asks for a challenge, has the resident's card sign it with the
//! user-authentication key (the PIN is verified on the card), and submits the signature with
//! the card's authentication certificate; the node checks them ([`KioskCheck`]: signature,
//! path to the JPKI authentication CA, OCSP at the network's validator, and the CA's record of
//! whose certificate it is), and issues the residence certificate of that resident if this
//! node's register holds them now. See docs/kiosk.md.
//!
//! What a kiosk sends never names the resident: the resident comes from the CA's records of
//! the certificate the card proved it holds. A challenge is random (256 bits), bound to the
//! kiosk it was given to and to this municipality, used at most once and valid for a short
//! time ([`Kiosks::ttl_secs`]); challenges live in this process's memory only, so a restarted
//! or another node knows none and refuses them all.
//!
//! Every refusal is logged with the kiosk's party and a reason code (no personal data) and
//! issues nothing; every issuance is written to the operator log under the kiosk, in one
//! transaction with the read of the record. identity holds no PKI: the node's shell injects
//! the check (the `kiosk` crate) and, if it has one, the PDF maker.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::State;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::authz::{Node, Route};
use crate::error::Error;
use crate::http::{AppError, AppResult, Caller, RawBody, allow, now};
use crate::ids::{LgCode, ResidentCode};
use crate::municipal::Municipality;
use crate::openapi::ErrorBody;
use crate::operator::{self, Operator, Role};
use crate::party::{Party, PartyKind};
use crate::person::{ResidentStatus, Sex};

/// `POST /v1/kiosk/challenge`.
pub const CHALLENGE: &str = "/v1/kiosk/challenge";
/// `POST /v1/kiosk/issue`.
pub const ISSUE: &str = "/v1/kiosk/issue";
/// The first line of every message a card signs for a kiosk.
pub const MESSAGE_TAG: &str = "jpki-kiosk-v1";
/// The reason code of a check that could not be made (validator or CA service unreachable):
/// 502, nothing issued, the kiosk may retry with a new challenge.
pub const UNAVAILABLE: &str = "check_unavailable";
/// Default lifetime of a challenge (a kiosk session), in seconds.
pub const DEFAULT_TTL_SECS: i64 = 120;
/// Longest lifetime of a challenge a node accepts as configuration, and the CA accepts in a
/// message (a signed message valid for longer is refused there).
pub const MAX_TTL_SECS: i64 = 300;
/// Most challenges outstanding on one node (all kiosks).
const MAX_PENDING: usize = 10_000;
/// Most unexpired challenges outstanding for one kiosk.
const MAX_PENDING_PER_KIOSK: usize = 4;

/// What the card signs: the municipality that will answer, the kiosk that asked, the
/// challenge and its expiry, one per line after [`MESSAGE_TAG`]. The card signs SHA-256 of
/// these bytes (RSA, in a DigestInfo) or SHA-384 (P-384).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedChallenge {
    /// The municipality node the challenge came from.
    pub municipality: LgCode,
    /// The kiosk it was given to.
    pub kiosk: Party,
    /// 32 random bytes, lower-case hex.
    pub challenge: String,
    /// Unix seconds after which it is refused.
    pub expires_at: i64,
}

impl SignedChallenge {
    /// The exact bytes signed.
    pub fn to_bytes(&self) -> Vec<u8> {
        format!(
            "{MESSAGE_TAG}\n{}\n{}\n{}\n{}\n",
            Party::Municipality(self.municipality.clone()).uri(),
            self.kiosk.uri(),
            self.challenge,
            self.expires_at
        )
        .into_bytes()
    }

    /// Parses [`Self::to_bytes`] (anything else is refused: no trailing data, canonical form).
    pub fn parse(bytes: &[u8]) -> Result<Self, Error> {
        let bad = |why: &str| Error::invalid("kiosk message", why.to_owned());
        let text = std::str::from_utf8(bytes).map_err(|_| bad("not UTF-8"))?;
        let lines: Vec<&str> = text.strip_suffix('\n').ok_or_else(|| bad("no final newline"))?.split('\n').collect();
        let [tag, m, k, c, e] = lines.as_slice() else { return Err(bad("not five lines")) };
        if *tag != MESSAGE_TAG {
            return Err(bad("not a kiosk message"));
        }
        let municipality = match m.parse::<Party>()? {
            Party::Municipality(c) => c,
            _ => return Err(bad("the second line is not a municipality")),
        };
        let kiosk: Party = k.parse()?;
        if kiosk.kind() != PartyKind::Kiosk {
            return Err(bad("the third line is not a kiosk"));
        }
        if c.len() != 64 || !c.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(bad("the challenge is not 64 lower-case hex digits"));
        }
        let expires_at: i64 = e.parse().map_err(|_| bad("the expiry is not a number"))?;
        let parsed = Self { municipality, kiosk, challenge: (*c).to_owned(), expires_at };
        if parsed.to_bytes() != bytes {
            return Err(bad("not in canonical form"));
        }
        Ok(parsed)
    }
}

/// Why a kiosk's request was refused: a stable code (on the wire as the 403's `reason`,
/// forever) and the message the kiosk shows the resident (Japanese, no personal data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KioskRefused {
    /// The stable code.
    pub code: &'static str,
    /// For the resident.
    pub message: String,
}

impl KioskRefused {
    /// A refusal.
    pub fn new(code: &'static str, message: &str) -> Self {
        Self { code, message: message.to_owned() }
    }
}

/// What the kiosk presented for one challenge, for [`KioskCheck::check`].
#[derive(Debug, Clone, Copy)]
pub struct Presented<'a> {
    /// The challenge as this node gave it (municipality, kiosk, value, expiry).
    pub signed: &'a SignedChallenge,
    /// [`SignedChallenge::to_bytes`].
    pub message: &'a [u8],
    /// The card's authentication certificate (DER), as the kiosk read it from the card.
    pub certificate: &'a [u8],
    /// The card's signature over `message`.
    pub signature: &'a [u8],
    /// The node's clock (unix seconds).
    pub now: i64,
}

/// Whose card it was, by the CA's records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// The resident the CA issued the authentication certificate to.
    pub resident_code: ResidentCode,
    /// The certificate's serial (hex), for the operator log.
    pub serial: String,
}

/// A boxed future (the check calls the validator and the CA service).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Decides whose card signed a kiosk challenge: the signature over the message verifies with
/// the certificate's key, the certificate is a production JPKI authentication certificate
/// valid now (path to the pinned authentication root, status by OCSP at the network's
/// validator), and the CA's records name the resident it was issued to. identity holds no PKI:
/// the `kiosk` crate implements this and `jpki serve municipality` injects it.
pub trait KioskCheck: Send + Sync + std::fmt::Debug {
    /// The holder, or why not (a refusal the kiosk shows, or [`UNAVAILABLE`]).
    fn check<'a>(&'a self, presented: Presented<'a>) -> BoxFuture<'a, Result<Holder, KioskRefused>>;
}

/// A node that serves no kiosk: every issue request is refused `kiosk_closed`.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoKiosks;

impl KioskCheck for NoKiosks {
    fn check<'a>(&'a self, _: Presented<'a>) -> BoxFuture<'a, Result<Holder, KioskRefused>> {
        Box::pin(async { Err(closed()) })
    }
}

fn closed() -> KioskRefused {
    KioskRefused::new("kiosk_closed", "この市区町村はコンビニ交付を行っていません。")
}

/// Makes the document a kiosk prints (the signed residence-certificate PDF) from the
/// resident's record on this register.
pub trait DocumentMaker: Send + Sync + std::fmt::Debug {
    /// The document's bytes for `record`, issued at `issued_at` (unix seconds), showing the
    /// 住民票コード only if `with_resident_code`; or why it could not be made (nothing is then
    /// issued or logged).
    fn make(&self, record: &crate::person::Record, issued_at: i64, with_resident_code: bool)
    -> Result<Vec<u8>, String>;
}

/// How a municipality node serves kiosks.
#[derive(Debug, Clone)]
pub struct Kiosks {
    /// Decides whose card it was ([`NoKiosks`] refuses all).
    pub check: Arc<dyn KioskCheck>,
    /// Lifetime of a challenge (1..=[`MAX_TTL_SECS`]).
    pub ttl_secs: i64,
    /// The PDF maker, if this node has one; without it the answer carries the record only.
    pub documents: Option<Arc<dyn DocumentMaker>>,
}

impl Kiosks {
    /// No kiosk is served.
    pub fn closed() -> Self {
        Self { check: Arc::new(NoKiosks), ttl_secs: DEFAULT_TTL_SECS, documents: None }
    }
}

#[derive(Debug)]
struct Pending {
    kiosk: Party,
    expires_at: i64,
}

/// The outstanding challenges of this node (memory only).
#[derive(Debug)]
pub struct Challenges {
    ttl: i64,
    map: Mutex<HashMap<String, Pending>>,
}

impl Challenges {
    /// An empty set whose challenges live `ttl` seconds (clamped to 1..=[`MAX_TTL_SECS`]).
    pub fn new(ttl: i64) -> Self {
        Self { ttl: ttl.clamp(1, MAX_TTL_SECS), map: Mutex::new(HashMap::new()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pending>> {
        self.map.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A fresh challenge for `kiosk` and its expiry. Expired ones are kept one more lifetime
    /// (to tell "expired" from "unknown"), then forgotten.
    pub fn issue(&self, kiosk: &Party, now: i64) -> Result<(String, i64), KioskRefused> {
        let mut map = self.lock();
        map.retain(|_, p| p.expires_at + self.ttl >= now);
        let open = map.values().filter(|p| p.kiosk == *kiosk && p.expires_at >= now).count();
        if open >= MAX_PENDING_PER_KIOSK || map.len() >= MAX_PENDING {
            return Err(KioskRefused::new(
                "too_many_sessions",
                "ただいま混み合っています。しばらくしてからやり直してください。",
            ));
        }
        let challenge = hex::encode(rand::random::<[u8; 32]>());
        let expires_at = now + self.ttl;
        map.insert(challenge.clone(), Pending { kiosk: kiosk.clone(), expires_at });
        Ok((challenge, expires_at))
    }

    /// Uses `challenge` for `kiosk`: its expiry, once. Another kiosk's challenge is refused and
    /// stays usable by its own kiosk; a used, unknown or expired one is refused.
    pub fn take(&self, kiosk: &Party, challenge: &str, now: i64) -> Result<i64, KioskRefused> {
        let mut map = self.lock();
        let Some(p) = map.get(challenge) else {
            return Err(KioskRefused::new(
                "challenge_unknown",
                "この受付は無効です（使用済みまたは不明）。最初からやり直してください。",
            ));
        };
        if p.kiosk != *kiosk {
            return Err(KioskRefused::new(
                "challenge_other_kiosk",
                "この受付は別の端末のものです。最初からやり直してください。",
            ));
        }
        let expires_at = p.expires_at;
        map.remove(challenge);
        if now > expires_at {
            return Err(KioskRefused::new(
                "session_expired",
                "受付の有効時間が過ぎました。最初からやり直してください。",
            ));
        }
        Ok(expires_at)
    }
}

/// State of a municipality node's kiosk routes.
#[derive(Debug)]
pub(crate) struct KioskDesk {
    m: Municipality,
    kiosks: Kiosks,
    challenges: Challenges,
}

impl KioskDesk {
    pub(crate) fn new(m: Municipality, kiosks: Kiosks) -> Self {
        let challenges = Challenges::new(kiosks.ttl_secs);
        Self { m, kiosks, challenges }
    }
}

/// The answer of `POST /v1/kiosk/challenge`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChallengeAnswer {
    /// 32 random bytes, lower-case hex.
    pub challenge: String,
    /// Unix seconds after which the challenge is refused.
    pub expires_at: i64,
    /// The municipality answering (6 digits).
    #[schema(value_type = String)]
    pub municipality: LgCode,
    /// The kiosk it was given to (its party URI, from its certificate).
    #[schema(value_type = String)]
    pub kiosk: Party,
}

impl ChallengeAnswer {
    /// What the card signs for this challenge.
    pub fn signed(&self) -> SignedChallenge {
        SignedChallenge {
            municipality: self.municipality.clone(),
            kiosk: self.kiosk.clone(),
            challenge: self.challenge.clone(),
            expires_at: self.expires_at,
        }
    }
}

/// The body of `POST /v1/kiosk/issue`. Nothing in it names the resident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueRequest {
    /// The challenge this node gave this kiosk.
    pub challenge: String,
    /// The card's authentication certificate (DER, base64), as read from the card.
    pub certificate: String,
    /// The card's signature (base64) over the message of [`SignedChallenge::to_bytes`].
    pub signature: String,
    /// Whether the resident asked for the 住民票コード on the certificate (default: no).
    #[serde(default)]
    pub with_resident_code: bool,
}

/// The record a residence certificate (住民票の写し) shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResidenceRecord {
    /// The issuing municipality (6 digits).
    #[schema(value_type = String)]
    pub municipality: LgCode,
    /// The date of issue (YYYY-MM-DD, UTC).
    pub issued_on: String,
    /// 氏名.
    pub name: String,
    /// 住所.
    pub address: String,
    /// 生年月日 (YYYY-MM-DD).
    pub date_of_birth: String,
    /// 性別: 男, 女 or －.
    pub sex: String,
    /// 住民票コード, only if the resident asked for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resident_code: Option<String>,
}

/// The answer of `POST /v1/kiosk/issue`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueAnswer {
    /// The record on the certificate.
    pub record: ResidenceRecord,
    /// The signed PDF (base64), if this node makes one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pdf: Option<String>,
    /// The items printed, as logged (`name,address,date_of_birth,sex[,resident_code]`).
    pub items: String,
}

/// Refuses the kiosk `caller` with `r`: logged with the party and the code only, 403 (502
/// for [`UNAVAILABLE`]).
fn refuse(caller: &Party, r: KioskRefused) -> AppError {
    tracing::warn!(kiosk = %caller, route = ISSUE, reason = r.code, "kiosk request refused");
    AppError(Error::KioskRefused { party: caller.to_string(), reason: r.code, message: r.message })
}

/// The record a residence certificate of `record` shows, issued by `municipality` at `t`
/// (unix seconds), with the 住民票コード only if `with_code`; and the items printed, as logged
/// (`name,address,date_of_birth,sex[,resident_code]`, [`items`]).
pub(crate) fn residence_record(
    municipality: &LgCode,
    record: &crate::person::Record,
    t: i64,
    with_code: bool,
) -> Result<(ResidenceRecord, &'static str), AppError> {
    let issued_on = time::OffsetDateTime::from_unix_timestamp(t)
        .map(|d| crate::notice::format_date(d.date()))
        .map_err(|e| AppError(Error::invalid("clock", e.to_string())))?;
    let doc = ResidenceRecord {
        municipality: municipality.clone(),
        issued_on,
        name: record.items.name.text().to_owned(),
        address: record.items.address.text().to_owned(),
        date_of_birth: crate::notice::format_date(record.items.date_of_birth),
        sex: sex_label(record.items.sex).to_owned(),
        resident_code: with_code.then(|| record.resident_code.as_str().to_owned()),
    };
    Ok((doc, items(with_code)))
}

/// The items a residence certificate prints, as the operator and provision logs name them.
pub fn items(with_resident_code: bool) -> &'static str {
    if with_resident_code { "name,address,date_of_birth,sex,resident_code" } else { "name,address,date_of_birth,sex" }
}

fn sex_label(s: Sex) -> &'static str {
    match s {
        Sex::Male => "男",
        Sex::Female => "女",
        Sex::NotApplicable => "－",
    }
}

/// The kiosk routes of a municipality node.
pub(crate) fn municipal_api() -> OpenApiRouter<Arc<KioskDesk>> {
    OpenApiRouter::new().routes(routes!(kiosk_challenge)).routes(routes!(kiosk_issue))
}

/// `POST /v1/kiosk/challenge`.
#[utoipa::path(
    post,
    path = "/v1/kiosk/challenge",
    tag = "kiosk",
    summary = "A fresh challenge for this kiosk (one kiosk session)",
    description = "Any kiosk (`urn:jpki:kiosk:<name>`). 32 random bytes, bound to the calling kiosk and to this \
municipality, valid once until `expires_at`. The card signs `jpki-kiosk-v1\\n<municipality URI>\\n<kiosk URI>\\n\
<challenge>\\n<expires_at>\\n` with its authentication key. No body.",
    security(("network_credential" = [])),
    responses(
        (status = 200, description = "The challenge", body = ChallengeAnswer),
        (status = 401, description = "No client party", body = ErrorBody),
        (status = 403, description = "Not a kiosk (`party_not_allowed`), or too many open sessions \
(`too_many_sessions`)", body = ErrorBody),
    )
)]
async fn kiosk_challenge(State(k): State<Arc<KioskDesk>>, Caller(c): Caller) -> AppResult<Json<ChallengeAnswer>> {
    allow(&Node::Municipality(k.m.code().clone()), Route::Kiosk, &c)?;
    let (challenge, expires_at) = k.challenges.issue(&c, now()).map_err(|r| refuse(&c, r))?;
    tracing::info!(kiosk = %c, route = CHALLENGE, "kiosk session opened");
    Ok(Json(ChallengeAnswer { challenge, expires_at, municipality: k.m.code().clone(), kiosk: c }))
}

/// `POST /v1/kiosk/issue`.
#[utoipa::path(
    post,
    path = "/v1/kiosk/issue",
    tag = "kiosk",
    summary = "A residence certificate for the resident whose card signed this kiosk's challenge",
    description = "Any kiosk, with a challenge this node gave it (unused, unexpired). The card's signature must \
verify with its authentication certificate; the certificate must be a production JPKI authentication \
certificate, valid now by OCSP at the network's validator; the CA's records name the resident, who must be \
registered here now. Nothing the kiosk sends names the resident. The issuance is written to the operator log \
under the kiosk (items, certificate serial); each refusal is logged with the kiosk and its code only.",
    request_body(content = IssueRequest, content_type = "application/json"),
    security(("network_credential" = [])),
    responses(
        (status = 200, description = "Issued", body = IssueAnswer),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 401, description = "No client party", body = ErrorBody),
        (status = 403, description = "Refused (`reason`: `party_not_allowed`, `challenge_unknown`, \
`challenge_other_kiosk`, `session_expired`, `bad_signature`, `certificate_revoked`, `certificate_expired`, \
`certificate_test`, `certificate_invalid`, `certificate_unknown`, `not_resident_here`, `kiosk_closed`); the \
`message` is for the resident (Japanese)", body = ErrorBody),
        (status = 502, description = "The validator or the CA service did not answer (`check_unavailable`)",
            body = ErrorBody),
    )
)]
async fn kiosk_issue(
    State(k): State<Arc<KioskDesk>>,
    Caller(c): Caller,
    body: RawBody,
) -> AppResult<Json<IssueAnswer>> {
    allow(&Node::Municipality(k.m.code().clone()), Route::Kiosk, &c)?;
    let q: IssueRequest = body.json()?;
    let b64 = |field: &'static str, v: &str| {
        base64::engine::general_purpose::STANDARD
            .decode(v)
            .map_err(|e| AppError(Error::invalid(field, format!("not base64: {e}"))))
    };
    let (certificate, signature) = (b64("certificate", &q.certificate)?, b64("signature", &q.signature)?);
    let t = now();
    let expires_at = k.challenges.take(&c, &q.challenge, t).map_err(|r| refuse(&c, r))?;
    let signed =
        SignedChallenge { municipality: k.m.code().clone(), kiosk: c.clone(), challenge: q.challenge, expires_at };
    let message = signed.to_bytes();
    let presented =
        Presented { signed: &signed, message: &message, certificate: &certificate, signature: &signature, now: t };
    let holder = k.kiosks.check.check(presented).await.map_err(|r| refuse(&c, r))?;
    issue(&k, &c, &holder, q.with_resident_code, t).await.map(Json)
}

/// Reads the holder's record, makes the document, logs the issuance under the kiosk and
/// commits: all or nothing.
async fn issue(k: &KioskDesk, kiosk: &Party, holder: &Holder, with_code: bool, t: i64) -> AppResult<IssueAnswer> {
    let mut tx = k.m.db().write().await?;
    let record = crate::municipal::load(&mut tx, &holder.resident_code).await?;
    let Some(record) = record.filter(|r| r.municipality == *k.m.code() && r.status == ResidentStatus::Active) else {
        return Err(refuse(
            kiosk,
            KioskRefused::new(
                "not_resident_here",
                "この市区町村に住民登録がないため交付できません。住所地の市区町村を選んでください。",
            ),
        ));
    };
    let (doc, items) = residence_record(k.m.code(), &record, t, with_code)?;
    let pdf = match &k.kiosks.documents {
        Some(maker) => Some(maker.make(&record, t, with_code).map_err(|e| {
            tracing::error!(kiosk = %kiosk, error = %e, "the residence certificate could not be made");
            AppError(Error::Signing { key_id: "document".into(), reason: e })
        })?),
        None => None,
    };
    let op = Operator::new(kiosk.uri().trim_start_matches(crate::party::URI_PREFIX), Role::Kiosk)?;
    let subject = format!("{} items={items} auth-cert={}", record.resident_code.as_str(), holder.serial);
    operator::log(&mut tx, &op, "kiosk_issue", &subject, t).await?;
    tx.commit().await.map_err(Error::from)?;
    tracing::info!(kiosk = %kiosk, items, pdf = pdf.is_some(), "residence certificate issued at a kiosk");
    Ok(IssueAnswer {
        record: doc,
        pdf: pdf.map(|b| base64::engine::general_purpose::STANDARD.encode(b)),
        items: items.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kiosk(n: &str) -> Party {
        Party::Kiosk(n.into())
    }

    #[test]
    fn the_signed_message_round_trips_and_nothing_else_parses() {
        let s = SignedChallenge {
            municipality: "131016".parse().unwrap_or_else(|_| panic!()),
            kiosk: kiosk("cvs-0001"),
            challenge: "ab".repeat(32),
            expires_at: 1_800_000_000,
        };
        let b = s.to_bytes();
        assert!(b.starts_with(b"jpki-kiosk-v1\nurn:jpki:municipality:131016\nurn:jpki:kiosk:cvs-0001\n"));
        assert_eq!(SignedChallenge::parse(&b).ok(), Some(s.clone()));
        let text = String::from_utf8(b).unwrap_or_default();
        for bad in [
            text.replace("kiosk-v1", "kiosk-v2"),
            text.replace("urn:jpki:kiosk:cvs-0001", "urn:jpki:window:131016:W01"),
            text.replace("municipality:131016", "prefecture:13"),
            text.replace(&"ab".repeat(32), &"AB".repeat(32)),
            text.replace("1800000000", "+1800000000"),
            format!("{text}extra\n"),
            text.trim_end().to_owned(),
        ] {
            assert!(SignedChallenge::parse(bad.as_bytes()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_challenge_is_used_once_by_its_own_kiosk_before_it_expires() {
        let c = Challenges::new(60);
        let (a, b) = (kiosk("a"), kiosk("b"));
        let (ch, exp) = c.issue(&a, 1_000).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(exp, 1_060);
        assert_eq!(ch.len(), 64);
        assert_eq!(c.take(&b, &ch, 1_001).map_err(|r| r.code), Err("challenge_other_kiosk"));
        assert_eq!(c.take(&a, &ch, 1_001), Ok(1_060), "another kiosk's attempt does not burn it");
        assert_eq!(c.take(&a, &ch, 1_002).map_err(|r| r.code), Err("challenge_unknown"), "used once");
        let (late, _) = c.issue(&a, 1_000).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(c.take(&a, &late, 1_061).map_err(|r| r.code), Err("session_expired"));
        assert_eq!(c.take(&a, &late, 1_062).map_err(|r| r.code), Err("challenge_unknown"));
        assert_eq!(c.take(&a, &"00".repeat(32), 1_000).map_err(|r| r.code), Err("challenge_unknown"));
    }

    #[test]
    fn a_kiosk_cannot_hoard_challenges() {
        let c = Challenges::new(60);
        let a = kiosk("a");
        for _ in 0..MAX_PENDING_PER_KIOSK {
            assert!(c.issue(&a, 1_000).is_ok());
        }
        assert_eq!(c.issue(&a, 1_000).map_err(|r| r.code), Err("too_many_sessions"));
        assert!(c.issue(&kiosk("b"), 1_000).is_ok(), "another kiosk is not held up");
        assert!(c.issue(&a, 1_061).is_ok(), "expired ones no longer count");
        assert!(Challenges::new(10_000).ttl <= MAX_TTL_SECS);
    }
}
