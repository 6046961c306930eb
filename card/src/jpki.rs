//! The JPKI application as a model: AID, EF identifiers, keys and PINs, their access rules,
//! token info (EF 0006) and certificate-presence flags (EF 0008). Byte values follow
//! `docs/card-profile.md` and, for everything OpenSC reads, the real card.

#![forbid(clippy::disallowed_methods)]

use std::fmt;

/// JPKI-AP (公的個人認証 AP).
pub const AID_JPKI: [u8; 10] = [0xD3, 0x92, 0xF0, 0x00, 0x26, 0x01, 0x00, 0x00, 0x00, 0x01];

/// The ATR OpenSC's jpki driver recognises (a valid T=1 ATR; pcsc-tools calls it "JUKICARD").
pub const ATR_JPKI: [u8; 9] = [0x3B, 0xE0, 0x00, 0xFF, 0x81, 0x31, 0xFE, 0x45, 0x14];

/// Elementary files of JPKI-AP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Ef {
    /// 0001: signature certificate (read after the signature password).
    SignCert,
    /// 0002: signature CA certificate.
    SignCaCert,
    /// 0006: token info (160-byte `CK_TOKEN_INFO`).
    TokenInfo,
    /// 0008: certificate-presence flags (3 bytes).
    Presence,
    /// 000A: user-authentication certificate.
    AuthCert,
    /// 000B: user-authentication CA certificate.
    AuthCaCert,
    /// 0017: user-authentication private key.
    AuthKey,
    /// 0018: user-authentication PIN.
    AuthPin,
    /// 001A: signature private key.
    SignKey,
    /// 001B: signature password.
    SignPin,
}

/// What an EF holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EfKind {
    /// A transparent file (READ BINARY / UPDATE BINARY).
    Data {
        /// Capacity in bytes.
        capacity: usize,
    },
    /// A private key reference.
    Key(KeyRef),
    /// A PIN reference.
    Pin(PinRef),
}

impl Ef {
    /// Every EF.
    pub const ALL: [Ef; 10] = [
        Ef::SignCert,
        Ef::SignCaCert,
        Ef::TokenInfo,
        Ef::Presence,
        Ef::AuthCert,
        Ef::AuthCaCert,
        Ef::AuthKey,
        Ef::AuthPin,
        Ef::SignKey,
        Ef::SignPin,
    ];
    /// The data EFs, in the bit order of the card-status `files` byte.
    pub const DATA: [Ef; 6] = [Ef::SignCert, Ef::SignCaCert, Ef::TokenInfo, Ef::Presence, Ef::AuthCert, Ef::AuthCaCert];

    /// The file identifier.
    pub fn fid(self) -> u16 {
        match self {
            Ef::SignCert => 0x0001,
            Ef::SignCaCert => 0x0002,
            Ef::TokenInfo => 0x0006,
            Ef::Presence => 0x0008,
            Ef::AuthCert => 0x000A,
            Ef::AuthCaCert => 0x000B,
            Ef::AuthKey => 0x0017,
            Ef::AuthPin => 0x0018,
            Ef::SignKey => 0x001A,
            Ef::SignPin => 0x001B,
        }
    }

    /// The EF with this identifier.
    pub fn from_fid(fid: u16) -> Option<Ef> {
        Ef::ALL.into_iter().find(|e| e.fid() == fid)
    }

    /// What the file holds.
    pub fn kind(self) -> EfKind {
        match self {
            Ef::SignCert | Ef::SignCaCert | Ef::AuthCert | Ef::AuthCaCert => EfKind::Data { capacity: CERT_CAPACITY },
            Ef::TokenInfo => EfKind::Data { capacity: TOKEN_INFO_LEN },
            Ef::Presence => EfKind::Data { capacity: 3 },
            Ef::AuthKey => EfKind::Key(KeyRef::Auth),
            Ef::SignKey => EfKind::Key(KeyRef::Sign),
            Ef::AuthPin => EfKind::Pin(PinRef::Auth),
            Ef::SignPin => EfKind::Pin(PinRef::Sign),
        }
    }

    /// What reading the file needs (data EFs only).
    pub fn read_access(self) -> Access {
        match self {
            Ef::SignCert => Access::Pin(PinRef::Sign),
            _ => Access::Free,
        }
    }
}

/// Capacity of a certificate EF.
pub const CERT_CAPACITY: usize = 4096;

/// A read condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone.
    Free,
    /// After VERIFY of this PIN in the current session.
    Pin(PinRef),
}

/// The two private keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum KeyRef {
    /// User authentication (EF 0017, PIN 0018).
    Auth,
    /// Digital signature (EF 001A, password 001B).
    Sign,
}

impl KeyRef {
    /// Both.
    pub const BOTH: [KeyRef; 2] = [KeyRef::Auth, KeyRef::Sign];

    /// The key's EF.
    pub fn ef(self) -> Ef {
        match self {
            KeyRef::Auth => Ef::AuthKey,
            KeyRef::Sign => Ef::SignKey,
        }
    }
    /// The PIN guarding it.
    pub fn pin(self) -> PinRef {
        match self {
            KeyRef::Auth => PinRef::Auth,
            KeyRef::Sign => PinRef::Sign,
        }
    }
    /// Its certificate's EF.
    pub fn cert(self) -> Ef {
        match self {
            KeyRef::Auth => Ef::AuthCert,
            KeyRef::Sign => Ef::SignCert,
        }
    }
    /// Its CA certificate's EF.
    pub fn ca_cert(self) -> Ef {
        match self {
            KeyRef::Auth => Ef::AuthCaCert,
            KeyRef::Sign => Ef::SignCaCert,
        }
    }
    /// `0x80 | SFI`, as P2 of COMPUTE DIGITAL SIGNATURE and GENERATE KEY PAIR.
    pub fn p2(self) -> u8 {
        0x80 | self.ef().fid() as u8
    }
    /// From that P2.
    pub fn from_p2(p2: u8) -> Option<KeyRef> {
        KeyRef::BOTH.into_iter().find(|k| k.p2() == p2)
    }
    /// Name for messages.
    pub fn name(self) -> &'static str {
        match self {
            KeyRef::Auth => "authentication",
            KeyRef::Sign => "signature",
        }
    }
}

/// On-card key algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum KeyAlg {
    /// RSA-2048, PKCS#1 v1.5 over a DigestInfo (what OpenSC's jpki driver uses).
    Rsa2048,
    /// ECDSA P-384 over a SHA-384 hash (next-generation profile; our client only).
    EcP384,
}

impl KeyAlg {
    /// The algorithm byte of GENERATE KEY PAIR and card status.
    pub fn code(self) -> u8 {
        match self {
            KeyAlg::Rsa2048 => 0x01,
            KeyAlg::EcP384 => 0x02,
        }
    }
    /// From that byte.
    pub fn from_code(b: u8) -> Option<KeyAlg> {
        match b {
            0x01 => Some(KeyAlg::Rsa2048),
            0x02 => Some(KeyAlg::EcP384),
            _ => None,
        }
    }
    /// `rsa2048` / `p384`.
    pub fn parse(s: &str) -> Option<KeyAlg> {
        match s {
            "rsa2048" | "rsa-2048" => Some(KeyAlg::Rsa2048),
            "p384" | "ec-p384" | "p-384" => Some(KeyAlg::EcP384),
            _ => None,
        }
    }
}

/// The two PINs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum PinRef {
    /// 利用者証明用 PIN: exactly 4 digits, 3 tries.
    Auth,
    /// 署名用パスワード: 6–16 of A–Z 0–9 mixing letters and digits, 5 tries.
    Sign,
}

impl PinRef {
    /// Both.
    pub const BOTH: [PinRef; 2] = [PinRef::Auth, PinRef::Sign];

    /// The PIN's EF.
    pub fn ef(self) -> Ef {
        match self {
            PinRef::Auth => Ef::AuthPin,
            PinRef::Sign => Ef::SignPin,
        }
    }
    /// Tries before the PIN blocks.
    pub fn max_tries(self) -> u8 {
        match self {
            PinRef::Auth => 3,
            PinRef::Sign => 5,
        }
    }
    /// Name for messages.
    pub fn name(self) -> &'static str {
        match self {
            PinRef::Auth => "authentication PIN",
            PinRef::Sign => "signature password",
        }
    }

    /// Normalises and checks a new PIN: the signature password is upper-cased (as the
    /// official clients do) and must be 6–16 of A–Z 0–9 with at least one letter and one
    /// digit; the authentication PIN is exactly 4 digits.
    pub fn normalize(self, pin: &str) -> Result<Vec<u8>, PinFormatError> {
        match self {
            PinRef::Auth => {
                if pin.len() == 4 && pin.bytes().all(|b| b.is_ascii_digit()) {
                    Ok(pin.as_bytes().to_vec())
                } else {
                    Err(PinFormatError(self, "exactly 4 digits"))
                }
            }
            PinRef::Sign => {
                let up = pin.to_ascii_uppercase();
                let ok_chars = up.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
                let mixed = up.bytes().any(|b| b.is_ascii_uppercase()) && up.bytes().any(|b| b.is_ascii_digit());
                if (6..=16).contains(&up.len()) && ok_chars && mixed {
                    Ok(up.into_bytes())
                } else {
                    Err(PinFormatError(self, "6 to 16 of A-Z and 0-9, with at least one letter and one digit"))
                }
            }
        }
    }

    /// Whether bytes have the PIN's format (the card checks this before storing).
    pub fn well_formed(self, pin: &[u8]) -> bool {
        std::str::from_utf8(pin).ok().and_then(|s| self.normalize(s).ok()).is_some_and(|n| n == pin)
    }
}

/// A PIN that breaks its format rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the {} must be {}", .0.name(), .1)]
pub struct PinFormatError(pub PinRef, pub &'static str);

/// Card lifecycle (ISO 7816-4 life-cycle status byte values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Lifecycle {
    /// 01: manufactured, nothing on it.
    Blank,
    /// 03: personalisation open (issuer authenticated at least once).
    Personalising,
    /// 07: issued; personalisation closed.
    Issued,
}

impl Lifecycle {
    /// The status byte.
    pub fn code(self) -> u8 {
        match self {
            Lifecycle::Blank => 0x01,
            Lifecycle::Personalising => 0x03,
            Lifecycle::Issued => 0x07,
        }
    }
    /// From the status byte.
    pub fn from_code(b: u8) -> Option<Lifecycle> {
        match b {
            0x01 => Some(Lifecycle::Blank),
            0x03 => Some(Lifecycle::Personalising),
            0x07 => Some(Lifecycle::Issued),
            _ => None,
        }
    }
}

impl fmt::Display for Lifecycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Lifecycle::Blank => "blank",
            Lifecycle::Personalising => "personalising",
            Lifecycle::Issued => "issued",
        })
    }
}

/// Length of EF 0006.
pub const TOKEN_INFO_LEN: usize = 160;
/// Token label of a My Number card.
pub const TOKEN_LABEL: &str = "JPKIAPICCTOKEN2";

/// EF 0006: a PKCS#11 `CK_TOKEN_INFO` with 32-bit big-endian integers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    /// Label (≤ 32 bytes, space padded).
    pub label: String,
    /// Manufacturer (≤ 32).
    pub manufacturer: String,
    /// Model (≤ 16).
    pub model: String,
    /// Serial (≤ 16).
    pub serial: String,
}

impl TokenInfo {
    /// The 160 bytes.
    pub fn encode(&self) -> Vec<u8> {
        fn field(out: &mut Vec<u8>, s: &str, n: usize) {
            let mut b = s.as_bytes().to_vec();
            b.truncate(n);
            b.resize(n, b' ');
            out.extend_from_slice(&b);
        }
        let mut out = Vec::with_capacity(TOKEN_INFO_LEN);
        field(&mut out, &self.label, 32);
        field(&mut out, &self.manufacturer, 32);
        field(&mut out, &self.model, 16);
        field(&mut out, &self.serial, 16);
        // flags: CKF_LOGIN_REQUIRED | CKF_USER_PIN_INITIALIZED | CKF_TOKEN_INITIALIZED
        let flags: u32 = 0x0004 | 0x0008 | 0x0400;
        let ulongs: [u32; 11] = [flags, 0, 0, 0, 0, 16, 4, u32::MAX, u32::MAX, u32::MAX, u32::MAX];
        for u in ulongs {
            out.extend_from_slice(&u.to_be_bytes());
        }
        out.extend_from_slice(&[1, 0, 1, 0]); // hardware / firmware version 1.0
        out.extend_from_slice(&[b' '; 16]); // utcTime (no clock)
        out
    }

    /// Parses the 160 bytes (fields trimmed).
    pub fn parse(b: &[u8]) -> Option<TokenInfo> {
        if b.len() != TOKEN_INFO_LEN {
            return None;
        }
        let text = |r: std::ops::Range<usize>| String::from_utf8_lossy(&b[r]).trim_end().to_string();
        Some(TokenInfo { label: text(0..32), manufacturer: text(32..64), model: text(64..80), serial: text(80..96) })
    }
}

/// EF 0008: which certificates are present (`8F` present, `00` absent): signature,
/// authentication, then a reserved byte.
pub fn presence_flags(sign: bool, auth: bool) -> [u8; 3] {
    [if sign { 0x8F } else { 0x00 }, if auth { 0x8F } else { 0x00 }, 0x00]
}

/// Instructions of the card profile (`docs/card-profile.md`).
pub mod ins {
    /// SELECT (CLA 00).
    pub const SELECT: u8 = 0xA4;
    /// READ BINARY (CLA 00).
    pub const READ_BINARY: u8 = 0xB0;
    /// VERIFY (CLA 00).
    pub const VERIFY: u8 = 0x20;
    /// CHANGE REFERENCE DATA (CLA 00).
    pub const CHANGE_REFERENCE_DATA: u8 = 0x24;
    /// RESET RETRY COUNTER (CLA 00; issuer).
    pub const RESET_RETRY_COUNTER: u8 = 0x2C;
    /// GET CHALLENGE (CLA 00).
    pub const GET_CHALLENGE: u8 = 0x84;
    /// EXTERNAL AUTHENTICATE (CLA 00).
    pub const EXTERNAL_AUTHENTICATE: u8 = 0x82;
    /// GENERATE ASYMMETRIC KEY PAIR (CLA 00; issuer) / read public key.
    pub const GENERATE_KEY_PAIR: u8 = 0x46;
    /// UPDATE BINARY (CLA 00; issuer).
    pub const UPDATE_BINARY: u8 = 0xD6;
    /// ERASE BINARY (CLA 00; issuer).
    pub const ERASE_BINARY: u8 = 0x0E;
    /// COMPUTE DIGITAL SIGNATURE (CLA 80).
    pub const COMPUTE_SIGNATURE: u8 = 0x2A;
    /// GET CARD STATUS (CLA 80).
    pub const GET_STATUS: u8 = 0xCA;
    /// OPEN PERSONALISATION (CLA 80; issuer).
    pub const OPEN_PERSONALISATION: u8 = 0x10;
    /// CLOSE PERSONALISATION (CLA 80; issuer).
    pub const CLOSE_PERSONALISATION: u8 = 0x12;
    /// WIPE (CLA 80; issuer; personalising only).
    pub const WIPE: u8 = 0xFE;
}

/// Length of the issuer-authentication challenge.
pub const CHALLENGE_LEN: usize = 16;
/// Issuer-authentication attempts before the card refuses it for good.
pub const ISSUER_AUTH_TRIES: u8 = 10;
/// Domain label of the per-card issuer key:
/// `card key = HMAC-SHA256(master, ISSUER_KEY_LABEL ‖ card serial)`.
pub const ISSUER_KEY_LABEL: &[u8] = b"jpki-card-issuer-v1";

/// The answer of GET CARD STATUS (`80 CA 01 00`), 16 bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardStatus {
    /// Lifecycle.
    pub lifecycle: Lifecycle,
    /// Algorithm of the authentication key, if generated.
    pub auth_key: Option<KeyAlg>,
    /// Algorithm of the signature key, if generated.
    pub sign_key: Option<KeyAlg>,
    /// Non-empty data EFs (in [`Ef::DATA`] order).
    pub files: Vec<Ef>,
    /// Tries left of the authentication PIN, if set.
    pub auth_pin: Option<u8>,
    /// Tries left of the signature password, if set.
    pub sign_pin: Option<u8>,
    /// Issuer-authentication tries left.
    pub issuer_tries: u8,
    /// Card serial.
    pub serial: [u8; 8],
}

impl CardStatus {
    /// Encodes the 16 bytes.
    pub fn encode(&self) -> Vec<u8> {
        let alg = |a: Option<KeyAlg>| a.map_or(0, KeyAlg::code);
        let mut files = 0u8;
        for (i, e) in Ef::DATA.iter().enumerate() {
            if self.files.contains(e) {
                files |= 1 << i;
            }
        }
        let mut v = vec![
            self.lifecycle.code(),
            alg(self.auth_key),
            alg(self.sign_key),
            files,
            self.auth_pin.unwrap_or(0xFF),
            self.sign_pin.unwrap_or(0xFF),
            self.issuer_tries,
            0,
        ];
        v.extend_from_slice(&self.serial);
        v
    }

    /// Parses the 16 bytes.
    pub fn parse(b: &[u8]) -> Option<CardStatus> {
        if b.len() != 16 {
            return None;
        }
        let alg = |x: u8| if x == 0 { Some(None) } else { KeyAlg::from_code(x).map(Some) };
        let pin = |x: u8| if x == 0xFF { None } else { Some(x) };
        Some(CardStatus {
            lifecycle: Lifecycle::from_code(b[0])?,
            auth_key: alg(b[1])?,
            sign_key: alg(b[2])?,
            files: Ef::DATA.iter().enumerate().filter(|(i, _)| b[3] & (1 << i) != 0).map(|(_, e)| *e).collect(),
            auth_pin: pin(b[4]),
            sign_pin: pin(b[5]),
            issuer_tries: b[6],
            serial: b[8..16].try_into().ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_rules() {
        assert!(PinRef::Auth.normalize("1234").is_ok());
        for bad in ["123", "12345", "12a4", ""] {
            assert!(PinRef::Auth.normalize(bad).is_err(), "{bad}");
        }
        assert_eq!(PinRef::Sign.normalize("abc123").unwrap(), b"ABC123");
        for bad in ["ABCDEF", "123456", "AB12", "ABCDEFGH123456789", "ABC-123", "ＡBC123"] {
            assert!(PinRef::Sign.normalize(bad).is_err(), "{bad}");
        }
        assert!(PinRef::Sign.well_formed(b"ABC123"));
        assert!(!PinRef::Sign.well_formed(b"abc123"));
        assert_eq!(PinRef::Auth.max_tries(), 3);
        assert_eq!(PinRef::Sign.max_tries(), 5);
    }

    #[test]
    fn token_info_and_status_round_trip() {
        let t = TokenInfo {
            label: TOKEN_LABEL.into(),
            manufacturer: "jpki-rs".into(),
            model: "virtual".into(),
            serial: "0011223344556677".into(),
        };
        let b = t.encode();
        assert_eq!(b.len(), 160);
        assert_eq!(&b[..16], b"JPKIAPICCTOKEN2 ");
        assert_eq!(TokenInfo::parse(&b), Some(t));
        let s = CardStatus {
            lifecycle: Lifecycle::Personalising,
            auth_key: Some(KeyAlg::Rsa2048),
            sign_key: None,
            files: vec![Ef::TokenInfo, Ef::AuthCert],
            auth_pin: Some(3),
            sign_pin: None,
            issuer_tries: 10,
            serial: [1, 2, 3, 4, 5, 6, 7, 8],
        };
        assert_eq!(CardStatus::parse(&s.encode()), Some(s));
        assert_eq!(presence_flags(true, true), [0x8F, 0x8F, 0x00]);
        assert_eq!(KeyRef::Auth.p2(), 0x97);
        assert_eq!(KeyRef::Sign.p2(), 0x9A);
    }
}
