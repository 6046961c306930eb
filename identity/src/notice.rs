//! Change notices (本人確認情報の変更通知): immutable, sequenced per municipality, and
//! chained by hash. The canonical encoding is frozen: version 1 is specified here and
//! must never change; a new layout gets a new version number.
//!
//! ```text
//! encoding v1 := 0x01
//!   str(source) u64(seq) u16(kind) str(effective_date YYYY-MM-DD) i64(recorded_at unix s)
//!   str(operator) opt(str previous_code) opt(str(source) u64(seq)) opt(str destination)
//!   record := str(resident_code) str(name) str(name_flags) str(address) str(address_flags)
//!             str(date_of_birth YYYY-MM-DD) u8(sex) u8(status) str(municipality) u64(version)
//! str(x) := u32 big-endian byte length ‖ UTF-8 bytes;  uN/iN := big-endian
//! opt(x) := 0x00 | 0x01 ‖ x
//! hash   := SHA-256(prev_hash ‖ encoding);  the first notice of a source has prev_hash = 32 × 0x00
//! ```

#![forbid(clippy::disallowed_methods)]

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::Date;
use time::macros::format_description;

use crate::error::Error;
use crate::ids::{LgCode, ResidentCode};
use crate::notice_sig::NoticeSignature;
use crate::person::{FlaggedText, FourItems, Record, ResidentStatus, Sex};

/// The encoding version written by this code.
pub const ENCODING_VERSION: u8 = 1;

/// A SHA-256 chain hash.
pub type Hash = [u8; 32];

/// `prev_hash` of the first notice of every source.
pub const GENESIS: Hash = [0u8; 32];

/// Why a record changed (異動事由). Numbers are on the wire and in the chain: forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u16)]
pub enum NoticeKind {
    /// 出生: registration by birth.
    Birth = 1,
    /// 転入: registration on moving in from another municipality.
    MoveIn = 2,
    /// 職権記載 / first registration (e.g. arrival from abroad).
    FirstRegistration = 3,
    /// 転居: move within the municipality.
    MoveWithin = 4,
    /// 転出: move out to another municipality.
    MoveOut = 5,
    /// 死亡.
    Death = 6,
    /// 職権修正: ex-officio correction of the four items.
    Correction = 7,
    /// 住民票コード変更: new code on request; the old one is retired forever.
    CodeChange = 8,
    /// 国外転出: leaving the country.
    Emigration = 9,
    /// 職権消除: ex-officio removal.
    RemovalExOfficio = 10,
}

impl NoticeKind {
    /// All kinds, for tables and tests.
    pub const ALL: [NoticeKind; 10] = [
        Self::Birth,
        Self::MoveIn,
        Self::FirstRegistration,
        Self::MoveWithin,
        Self::MoveOut,
        Self::Death,
        Self::Correction,
        Self::CodeChange,
        Self::Emigration,
        Self::RemovalExOfficio,
    ];

    /// The wire number.
    pub fn code(self) -> u16 {
        self as u16
    }

    /// Decodes a wire number.
    pub fn from_code(v: u16) -> Result<Self, Error> {
        Self::ALL
            .into_iter()
            .find(|k| k.code() == v)
            .ok_or_else(|| Error::invalid("kind", format!("unknown notice kind {v}")))
    }

    /// Whether this kind creates a record on the municipality's register.
    pub fn is_registration(self) -> bool {
        matches!(self, Self::Birth | Self::MoveIn | Self::FirstRegistration)
    }

    /// Status the record has after a notice of this kind.
    pub fn status_after(self) -> ResidentStatus {
        match self {
            Self::MoveOut => ResidentStatus::MovedOut,
            Self::Death => ResidentStatus::Deceased,
            Self::Emigration => ResidentStatus::Emigrated,
            Self::RemovalExOfficio => ResidentStatus::RemovedExOfficio,
            _ => ResidentStatus::Active,
        }
    }

    /// Japanese name of the reason, as on a register.
    pub fn label(self) -> &'static str {
        match self {
            Self::Birth => "出生",
            Self::MoveIn => "転入",
            Self::FirstRegistration => "職権記載",
            Self::MoveWithin => "転居",
            Self::MoveOut => "転出",
            Self::Death => "死亡",
            Self::Correction => "職権修正",
            Self::CodeChange => "住民票コード変更",
            Self::Emigration => "国外転出",
            Self::RemovalExOfficio => "職権消除",
        }
    }
}

/// Key of a notice: `(source municipality, seq)`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NoticeRef {
    /// The municipality that wrote it.
    pub source: LgCode,
    /// Its gapless sequence number at that municipality, from 1.
    pub seq: u64,
}

/// The content of a change notice, before it is sequenced and chained.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoticeBody {
    /// Reason for the change.
    pub kind: NoticeKind,
    /// 異動年月日.
    pub effective_date: Date,
    /// When the municipality recorded it (unix seconds).
    pub recorded_at: i64,
    /// The operator who recorded it.
    pub operator: String,
    /// The retired code, for [`NoticeKind::CodeChange`].
    pub previous_code: Option<ResidentCode>,
    /// For [`NoticeKind::MoveIn`]: the old municipality's move-out notice, which must be
    /// applied upstream before this one (causal order).
    pub predecessor: Option<NoticeRef>,
    /// For [`NoticeKind::MoveOut`]: the municipality moved to.
    pub destination: Option<LgCode>,
    /// The record after the change.
    pub record: Record,
}

/// An immutable, sequenced and chained change notice, as stored and replicated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeNotice {
    /// `(source, seq)`.
    #[serde(flatten)]
    pub key: NoticeRef,
    /// Hash of the previous notice of the same source ([`GENESIS`] for seq 1).
    #[serde(with = "hex_hash")]
    pub prev_hash: Hash,
    /// `SHA-256(prev_hash ‖ encoding)`.
    #[serde(with = "hex_hash")]
    pub hash: Hash,
    /// The content.
    #[serde(flatten)]
    pub body: NoticeBody,
    /// The municipality's signature envelope ([`crate::notice_sig`]); not covered by the
    /// hash or the encoding (absent while a notice is being sealed, and on the wire only
    /// from nodes that predate signatures, whose notices replicas refuse).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<NoticeSignature>,
}

impl ChangeNotice {
    /// Sequences and chains a body (the municipal node's only way to make a notice).
    pub fn seal(source: LgCode, seq: u64, prev_hash: Hash, body: NoticeBody) -> Self {
        let key = NoticeRef { source, seq };
        let hash = chain_hash(&prev_hash, &encode(&key, &body));
        Self { key, prev_hash, hash, body, signature: None }
    }

    /// The canonical encoding (current version).
    pub fn encoding(&self) -> Vec<u8> {
        encode(&self.key, &self.body)
    }

    /// Recomputes the hash from `prev_hash` and the content; `Err` names the mismatch.
    pub fn verify_hash(&self) -> Result<(), Error> {
        let want = chain_hash(&self.prev_hash, &self.encoding());
        if want != self.hash {
            return Err(Error::Diverged {
                source_code: self.key.source.to_string(),
                seq: self.key.seq,
                reason: format!(
                    "hash {} does not match its content (expected {})",
                    hex::encode(self.hash),
                    hex::encode(want)
                ),
            });
        }
        Ok(())
    }

    /// Decodes a stored notice from its canonical encoding and chain fields, checking the
    /// hash (the signature envelope is stored beside it; see `store::notices_after`).
    pub fn decode(bytes: &[u8], prev_hash: Hash, hash: Hash) -> Result<Self, Error> {
        let (key, body) = decode(bytes)?;
        let n = Self { key, prev_hash, hash, body, signature: None };
        n.verify_hash().map_err(|e| Error::corrupt("notice", e))?;
        Ok(n)
    }
}

/// `SHA-256(prev_hash ‖ encoding)`.
pub fn chain_hash(prev_hash: &Hash, encoding: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update(prev_hash);
    h.update(encoding);
    h.finalize().into()
}

const DATE: &[time::format_description::BorrowedFormatItem<'static>] = format_description!("[year]-[month]-[day]");

/// Formats a date as `YYYY-MM-DD`.
pub fn format_date(d: Date) -> String {
    d.format(DATE).unwrap_or_default()
}

/// Parses `YYYY-MM-DD`.
pub fn parse_date(field: &'static str, s: &str) -> Result<Date, Error> {
    Date::parse(s, DATE).map_err(|e| Error::invalid(field, format!("{s:?} is not YYYY-MM-DD: {e}")))
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Canonical encoding v1 of a notice's key and body.
fn encode(key: &NoticeRef, b: &NoticeBody) -> Vec<u8> {
    let mut o = Vec::with_capacity(256);
    o.push(ENCODING_VERSION);
    put_str(&mut o, key.source.as_str());
    o.extend_from_slice(&key.seq.to_be_bytes());
    o.extend_from_slice(&b.kind.code().to_be_bytes());
    put_str(&mut o, &format_date(b.effective_date));
    o.extend_from_slice(&b.recorded_at.to_be_bytes());
    put_str(&mut o, &b.operator);
    match &b.previous_code {
        None => o.push(0),
        Some(c) => {
            o.push(1);
            put_str(&mut o, c.as_str());
        }
    }
    match &b.predecessor {
        None => o.push(0),
        Some(p) => {
            o.push(1);
            put_str(&mut o, p.source.as_str());
            o.extend_from_slice(&p.seq.to_be_bytes());
        }
    }
    match &b.destination {
        None => o.push(0),
        Some(d) => {
            o.push(1);
            put_str(&mut o, d.as_str());
        }
    }
    let r = &b.record;
    put_str(&mut o, r.resident_code.as_str());
    put_str(&mut o, r.items.name.text());
    put_str(&mut o, r.items.name.flags());
    put_str(&mut o, r.items.address.text());
    put_str(&mut o, r.items.address.flags());
    put_str(&mut o, &format_date(r.items.date_of_birth));
    o.push(u8::from(r.items.sex));
    o.push(u8::from(r.status));
    put_str(&mut o, r.municipality.as_str());
    o.extend_from_slice(&r.version.to_be_bytes());
    o
}

/// A bounds-checked reader over an encoding (hostile input: every read is checked).
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        let end =
            self.pos.checked_add(n).filter(|e| *e <= self.buf.len()).ok_or_else(|| {
                Error::invalid("encoding", format!("truncated at byte {} (wanted {n} more)", self.pos))
            })?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, Error> {
        Ok(self.array::<1>()?[0])
    }
    fn u64(&mut self) -> Result<u64, Error> {
        Ok(u64::from_be_bytes(self.array()?))
    }
    fn str(&mut self) -> Result<&'a str, Error> {
        let at = self.pos;
        let n = u32::from_be_bytes(self.array()?) as usize;
        std::str::from_utf8(self.take(n)?).map_err(|e| Error::invalid("encoding", format!("string at byte {at}: {e}")))
    }
    fn opt(&mut self) -> Result<bool, Error> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(Error::invalid("encoding", format!("option tag {v} at byte {}", self.pos - 1))),
        }
    }
}

/// Decodes canonical encoding v1. Rejects other versions and trailing bytes.
fn decode(bytes: &[u8]) -> Result<(NoticeRef, NoticeBody), Error> {
    let mut r = Reader { buf: bytes, pos: 0 };
    let v = r.u8()?;
    if v != ENCODING_VERSION {
        return Err(Error::invalid("encoding", format!("unknown encoding version {v}")));
    }
    let source: LgCode = r.str()?.parse()?;
    let seq = r.u64()?;
    let kind = NoticeKind::from_code(u16::from_be_bytes(r.array()?))?;
    let effective_date = parse_date("effective_date", r.str()?)?;
    let recorded_at = i64::from_be_bytes(r.array()?);
    let operator = r.str()?.to_owned();
    let previous_code = if r.opt()? { Some(r.str()?.parse()?) } else { None };
    let predecessor = if r.opt()? { Some(NoticeRef { source: r.str()?.parse()?, seq: r.u64()? }) } else { None };
    let destination = if r.opt()? { Some(r.str()?.parse()?) } else { None };
    let resident_code: ResidentCode = r.str()?.parse()?;
    let name = FlaggedText::new("name", r.str()?, r.str()?)?;
    let address = FlaggedText::new("address", r.str()?, r.str()?)?;
    let date_of_birth = parse_date("date_of_birth", r.str()?)?;
    let sex = Sex::try_from(r.u8()?)?;
    let status = ResidentStatus::try_from(r.u8()?)?;
    let municipality: LgCode = r.str()?.parse()?;
    let version = r.u64()?;
    if r.pos != bytes.len() {
        return Err(Error::invalid("encoding", format!("{} trailing bytes", bytes.len() - r.pos)));
    }
    let record =
        Record { resident_code, items: FourItems { name, address, date_of_birth, sex }, status, municipality, version };
    Ok((
        NoticeRef { source, seq },
        NoticeBody { kind, effective_date, recorded_at, operator, previous_code, predecessor, destination, record },
    ))
}

/// Decodes untrusted canonical bytes (exposed for the fuzz target and tests).
pub fn decode_untrusted(bytes: &[u8]) -> Result<(NoticeRef, NoticeBody), Error> {
    decode(bytes)
}

mod hex_hash {
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    pub fn serialize<S: Serializer>(h: &super::Hash, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(h))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<super::Hash, D::Error> {
        let s = <&str>::deserialize(d)?;
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(D::Error::custom)?;
        Ok(out)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use time::macros::date;

    pub(crate) fn sample_body(code: &str, kind: NoticeKind) -> NoticeBody {
        NoticeBody {
            kind,
            effective_date: date!(2026 - 04 - 01),
            recorded_at: 1_775_000_000,
            operator: "clerk-1".into(),
            previous_code: None,
            predecessor: None,
            destination: None,
            record: Record {
                resident_code: code.parse().unwrap_or_else(|e| panic!("{e}")),
                items: FourItems {
                    name: FlaggedText::new("name", "山田　太郎", "00100").unwrap_or_else(|e| panic!("{e}")),
                    address: FlaggedText::plain("address", "東京都千代田区千代田1-1").unwrap_or_else(|e| panic!("{e}")),
                    date_of_birth: date!(1980 - 02 - 29),
                    sex: Sex::Male,
                },
                status: kind.status_after(),
                municipality: "131016".parse().unwrap_or_else(|e| panic!("{e}")),
                version: 1,
            },
        }
    }

    fn src() -> LgCode {
        "131016".parse().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn encoding_round_trips_and_the_hash_verifies() {
        let mut body = sample_body("12345678903", NoticeKind::MoveIn);
        body.predecessor = Some(NoticeRef { source: "011002".parse().unwrap_or_else(|e| panic!("{e}")), seq: 7 });
        let n = ChangeNotice::seal(src(), 1, GENESIS, body);
        let back = ChangeNotice::decode(&n.encoding(), n.prev_hash, n.hash).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, n);
        let json = serde_json::to_string(&n).unwrap_or_else(|e| panic!("{e}"));
        let from_json: ChangeNotice = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(from_json, n);
    }

    #[test]
    fn encoding_v1_is_frozen() {
        // Regression anchor: if this hash changes, encoding v1 changed — which is forbidden.
        let n = ChangeNotice::seal(src(), 1, GENESIS, sample_body("12345678903", NoticeKind::Birth));
        assert_eq!(
            hex::encode(n.hash),
            FROZEN_V1_HASH,
            "canonical encoding v1 must never change; add a version instead"
        );
    }
    const FROZEN_V1_HASH: &str = "2ca5102655af3b7445fd9ce7f2382a07c1515b8d09c3ade49c0c9985b516c6e1";

    #[test]
    fn a_changed_field_breaks_the_hash() {
        let mut n = ChangeNotice::seal(src(), 1, GENESIS, sample_body("12345678903", NoticeKind::Birth));
        n.body.record.items.sex = Sex::Female;
        assert!(n.verify_hash().is_err());
    }

    #[test]
    fn decoder_rejects_truncation_trailing_bytes_and_unknown_versions() {
        let n = ChangeNotice::seal(src(), 1, GENESIS, sample_body("12345678903", NoticeKind::Birth));
        let enc = n.encoding();
        for cut in [0, 1, 10, enc.len() - 1] {
            assert!(decode_untrusted(&enc[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = enc.clone();
        longer.push(0);
        assert!(decode_untrusted(&longer).is_err());
        let mut v2 = enc;
        v2[0] = 2;
        assert!(decode_untrusted(&v2).is_err());
    }

    proptest::proptest! {
        /// Hostile bytes never panic the decoder and never decode to a notice that
        /// re-encodes differently (the encoding is canonical).
        #[test]
        fn decoder_survives_arbitrary_bytes(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..400)) {
            if let Ok((key, body)) = decode_untrusted(&bytes) {
                proptest::prop_assert_eq!(encode(&key, &body), bytes);
            }
        }

        /// Mutating any single byte of a valid encoding is either rejected or changes the hash.
        #[test]
        fn single_byte_mutations_are_detected(pos in 0usize..200, delta in 1u8..=255) {
            let n = ChangeNotice::seal(src(), 3, [5; 32], sample_body("12345678903", NoticeKind::Correction));
            let mut enc = n.encoding();
            let i = pos % enc.len();
            enc[i] = enc[i].wrapping_add(delta);
            proptest::prop_assert!(ChangeNotice::decode(&enc, n.prev_hash, n.hash).is_err());
        }
    }

    #[test]
    fn kinds_have_stable_numbers() {
        let codes: Vec<u16> = NoticeKind::ALL.iter().map(|k| k.code()).collect();
        assert_eq!(codes, (1..=10).collect::<Vec<u16>>());
        for k in NoticeKind::ALL {
            assert_eq!(NoticeKind::from_code(k.code()).ok(), Some(k));
        }
        assert!(NoticeKind::from_code(0).is_err());
    }
}
