//! The kiosk's side (`jpki kiosk issue`): with its own network credential it asks a
//! municipality node for a challenge, has the resident's card sign it with the
//! user-authentication key through PC/SC (the PIN verified on the card), and submits the
//! signature with the card's authentication certificate. The kiosk sends nothing that names
//! the resident and holds no key of its own but its TLS credential; the PIN goes only to the
//! card.

use std::time::Duration;

use base64::Engine as _;
use card::jpki::{KeyRef, PinRef};
use card::reader::{Jpki, Reader, SHA256_DIGEST_INFO_PREFIX};
use der::Decode;
use identity::kiosk::{CHALLENGE, ChallengeAnswer, ISSUE, IssueAnswer, IssueRequest};
use sha2::Digest;

/// What went wrong on the kiosk's side (not a refusal by the municipality).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The card or the reader.
    #[error("card: {0}")]
    Card(#[from] card::Error),
    /// The card holds no usable authentication certificate.
    #[error("the card holds no authentication certificate: {0}")]
    NoCertificate(String),
    /// The municipality node could not be reached or answered something unusable.
    #[error("municipality node: {0}")]
    Node(String),
}

/// How a kiosk session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The document was issued.
    Issued(Box<IssueAnswer>),
    /// The municipality refused: HTTP status, reason code, message for the resident.
    Refused {
        /// HTTP status.
        status: u16,
        /// Stable reason code.
        reason: String,
        /// For the resident (Japanese).
        message: String,
    },
    /// The card refused the PIN; it has this many tries left.
    WrongPin {
        /// Tries left on the card.
        tries_left: u8,
    },
    /// The card's authentication PIN is blocked.
    PinBlocked,
}

impl Outcome {
    /// What the kiosk's screen says (Japanese).
    pub fn message(&self) -> String {
        match self {
            Self::Issued(_) => "証明書を交付しました。".into(),
            Self::Refused { message, reason, .. } => format!("交付できません: {message} ({reason})"),
            Self::WrongPin { tries_left } => {
                format!("暗証番号が違います（残り{tries_left}回）。交付できません。")
            }
            Self::PinBlocked => "暗証番号がロックされています。お住まいの市区町村の窓口で解除してください。".into(),
        }
    }
}

/// The card's signature over a challenge, and its authentication certificate.
#[derive(Debug, Clone)]
pub struct CardAnswer {
    /// The authentication certificate (DER).
    pub certificate: Vec<u8>,
    /// The signature over [`ChallengeAnswer::signed`]'s bytes.
    pub signature: Vec<u8>,
}

/// The first DER object of `b` (an EF may hold padding after the certificate): a SEQUENCE
/// with a definite length of at most three length octets.
fn first_der(b: &[u8]) -> Result<Vec<u8>, Error> {
    let bad = |why: &str| Error::NoCertificate(why.to_owned());
    if b.first() != Some(&0x30) {
        return Err(bad("not a DER SEQUENCE"));
    }
    let first = *b.get(1).ok_or_else(|| bad("truncated"))?;
    let (len, head) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7F);
        if !(1..=3).contains(&n) {
            return Err(bad("unsupported length"));
        }
        let octets = b.get(2..2 + n).ok_or_else(|| bad("truncated"))?;
        (octets.iter().fold(0usize, |acc, o| (acc << 8) | usize::from(*o)), 2 + n)
    };
    b.get(..head + len).map(<[u8]>::to_vec).ok_or_else(|| bad("truncated"))
}

/// Has the card in `reader` sign `challenge` with its authentication key after verifying
/// `pin` on the card. `Ok(Err(outcome))` is the card refusing the PIN (tries left).
pub fn sign_with_card(
    reader: &str,
    wait: Duration,
    pin: &str,
    challenge: &ChallengeAnswer,
) -> Result<Result<CardAnswer, Outcome>, Error> {
    let r = Reader::open(reader)?;
    r.wait_card(wait)?;
    let conn = r.connect()?;
    let mut j = Jpki::new(&conn);
    j.select_ap()?;
    let certificate = first_der(&j.read_ef(KeyRef::Auth.cert())?)?;
    let cert = x509_cert::Certificate::from_der(&certificate).map_err(|e| Error::NoCertificate(e.to_string()))?;
    let rsa = cert.tbs_certificate().subject_public_key_info().algorithm.oid == const_oid::db::rfc5912::RSA_ENCRYPTION;
    let message = challenge.signed().to_bytes();
    match j.verify(PinRef::Auth, pin) {
        Ok(()) => {}
        Err(card::Error::WrongPin { tries_left, .. }) => return Ok(Err(Outcome::WrongPin { tries_left })),
        Err(card::Error::PinBlocked(_)) => return Ok(Err(Outcome::PinBlocked)),
        Err(e) => return Err(e.into()),
    }
    let input = if rsa {
        [SHA256_DIGEST_INFO_PREFIX.as_slice(), &sha2::Sha256::digest(&message)].concat()
    } else {
        sha2::Sha384::digest(&message).to_vec()
    };
    let signature = j.sign(KeyRef::Auth, &input)?;
    drop(j);
    conn.finish()?;
    Ok(Ok(CardAnswer { certificate, signature }))
}

/// A kiosk's connection to one municipality node.
#[derive(Debug, Clone)]
pub struct Kiosk {
    http: reqwest::Client,
    base: String,
}

impl Kiosk {
    /// Over `http` (mutual TLS with the kiosk's credential, pinned to the municipality's party)
    /// to the node at `base`.
    pub fn new(http: reqwest::Client, base: &str) -> Self {
        Self { http, base: base.trim_end_matches('/').to_owned() }
    }

    /// Opens a session: a fresh challenge.
    pub async fn challenge(&self) -> Result<Result<ChallengeAnswer, Outcome>, Error> {
        let r =
            self.http.post(format!("{}{CHALLENGE}", self.base)).send().await.map_err(|e| Error::Node(e.to_string()))?;
        answer(r).await
    }

    /// Submits the card's answer.
    pub async fn submit(&self, q: &IssueRequest) -> Result<Outcome, Error> {
        let r = self
            .http
            .post(format!("{}{ISSUE}", self.base))
            .json(q)
            .send()
            .await
            .map_err(|e| Error::Node(e.to_string()))?;
        Ok(match answer::<IssueAnswer>(r).await? {
            Ok(a) => Outcome::Issued(Box::new(a)),
            Err(o) => o,
        })
    }

    /// One whole session: challenge, the card's signature (PIN verified on the card), submit.
    /// Returns the outcome and the request it submitted (if it got that far).
    pub async fn session(
        &self,
        reader: &str,
        wait: Duration,
        pin: &str,
        with_resident_code: bool,
    ) -> Result<(Outcome, Option<IssueRequest>), Error> {
        let ch = match self.challenge().await? {
            Ok(c) => c,
            Err(o) => return Ok((o, None)),
        };
        let signed = tokio::task::block_in_place(|| sign_with_card(reader, wait, pin, &ch))?;
        let card = match signed {
            Ok(c) => c,
            Err(o) => return Ok((o, None)),
        };
        let q = request(&ch, &card, with_resident_code);
        Ok((self.submit(&q).await?, Some(q)))
    }
}

/// The issue request for a challenge and the card's answer.
pub fn request(ch: &ChallengeAnswer, card: &CardAnswer, with_resident_code: bool) -> IssueRequest {
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    IssueRequest {
        challenge: ch.challenge.clone(),
        certificate: b64(&card.certificate),
        signature: b64(&card.signature),
        with_resident_code,
    }
}

/// A node's answer: the success body, or its refusal as an [`Outcome::Refused`].
async fn answer<T: serde::de::DeserializeOwned>(r: reqwest::Response) -> Result<Result<T, Outcome>, Error> {
    let status = r.status();
    let bytes = r.bytes().await.map_err(|e| Error::Node(e.to_string()))?;
    if status.is_success() {
        return serde_json::from_slice(&bytes).map(Ok).map_err(|e| Error::Node(format!("unreadable answer: {e}")));
    }
    let body: identity::openapi::ErrorBody =
        serde_json::from_slice(&bytes).map_err(|_| Error::Node(format!("HTTP {status} without an error body")))?;
    let message = if status.is_server_error() {
        "ただいま交付できません。しばらくしてからやり直してください。".to_owned()
    } else {
        body.message
    };
    Ok(Err(Outcome::Refused { status: status.as_u16(), reason: body.reason.unwrap_or(body.error), message }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_certificate_is_cut_from_a_padded_ef() {
        let cert = [0x30, 0x03, 0x02, 0x01, 0x05];
        let padded = [&cert[..], &[0xFF; 11]].concat();
        assert_eq!(first_der(&padded).ok(), Some(cert.to_vec()));
        assert!(first_der(&cert[..3]).is_err());
        assert!(first_der(&[]).is_err());
    }

    #[test]
    fn each_outcome_tells_the_resident_what_happened() {
        assert!(Outcome::WrongPin { tries_left: 2 }.message().contains("残り2回"));
        assert!(Outcome::PinBlocked.message().contains("ロック"));
        let r = Outcome::Refused { status: 403, reason: "certificate_revoked".into(), message: "失効".into() };
        assert!(r.message().contains("失効") && r.message().contains("certificate_revoked"));
    }
}
