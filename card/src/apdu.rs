//! ISO/IEC 7816-4 command and response APDUs: encoding (short and extended length), parsing,
//! and status words as a typed enum. Pure: no I/O, total on every input (fuzzed).

#![forbid(clippy::disallowed_methods)]

use std::fmt;

/// Why bytes are not a command APDU.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApduError {
    /// Fewer than the 4 header bytes.
    #[error("APDU shorter than its 4-byte header ({0} bytes)")]
    TooShort(usize),
    /// Lc / Le / body lengths do not agree with any ISO 7816-4 case.
    #[error("APDU body of {0} bytes matches no ISO 7816-4 case")]
    BadLength(usize),
    /// A response shorter than its two status bytes (the card or reader went away).
    #[error("response of {0} bytes has no status word")]
    NoStatus(usize),
    /// The command cannot be encoded (data or Le too long).
    #[error("command too long to encode: {0}")]
    TooLong(&'static str),
}

/// A command APDU. `le` is the number of response bytes asked for: `None` for no Le field,
/// up to 256 in short form (`Le = 00` means 256), up to 65536 in extended form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// Class byte.
    pub cla: u8,
    /// Instruction.
    pub ins: u8,
    /// Parameter 1.
    pub p1: u8,
    /// Parameter 2.
    pub p2: u8,
    /// Command data (Lc bytes).
    pub data: Vec<u8>,
    /// Expected response length.
    pub le: Option<u32>,
}

impl Command {
    /// A command without data or Le (case 1).
    pub fn new(cla: u8, ins: u8, p1: u8, p2: u8) -> Command {
        Command { cla, ins, p1, p2, data: Vec::new(), le: None }
    }

    /// Adds command data.
    pub fn with_data(mut self, data: impl Into<Vec<u8>>) -> Command {
        self.data = data.into();
        self
    }

    /// Adds Le.
    pub fn with_le(mut self, le: u32) -> Command {
        self.le = Some(le);
        self
    }

    /// Whether this command needs the extended-length form.
    pub fn is_extended(&self) -> bool {
        self.data.len() > 255 || self.le.is_some_and(|le| le > 256)
    }

    /// Encodes the command: short form when data ≤ 255 and Le ≤ 256, extended otherwise.
    pub fn encode(&self) -> Result<Vec<u8>, ApduError> {
        if self.data.len() > 65535 {
            return Err(ApduError::TooLong("data over 65535 bytes"));
        }
        if self.le.is_some_and(|le| le == 0 || le > 65536) {
            return Err(ApduError::TooLong("Le must be 1..=65536"));
        }
        let mut out = Vec::with_capacity(self.data.len() + 9);
        out.extend_from_slice(&[self.cla, self.ins, self.p1, self.p2]);
        if self.is_extended() {
            out.push(0);
            if !self.data.is_empty() {
                out.extend_from_slice(&(self.data.len() as u16).to_be_bytes());
                out.extend_from_slice(&self.data);
            }
            if let Some(le) = self.le {
                out.extend_from_slice(&((le % 65536) as u16).to_be_bytes());
            }
        } else {
            if !self.data.is_empty() {
                out.push(self.data.len() as u8);
                out.extend_from_slice(&self.data);
            }
            if let Some(le) = self.le {
                out.push((le % 256) as u8);
            }
        }
        Ok(out)
    }

    /// Parses a command APDU (cases 1, 2S, 3S, 4S, 2E, 3E, 4E of ISO 7816-3 §12.1.3).
    pub fn parse(b: &[u8]) -> Result<Command, ApduError> {
        if b.len() < 4 {
            return Err(ApduError::TooShort(b.len()));
        }
        let (cla, ins, p1, p2) = (b[0], b[1], b[2], b[3]);
        let body = &b[4..];
        let make = |data: &[u8], le: Option<u32>| Command { cla, ins, p1, p2, data: data.to_vec(), le };
        let n = body.len();
        if n == 0 {
            return Ok(make(&[], None));
        }
        if n == 1 {
            return Ok(make(&[], Some(if body[0] == 0 { 256 } else { u32::from(body[0]) })));
        }
        if body[0] != 0 {
            // Short Lc.
            let lc = usize::from(body[0]);
            if n == 1 + lc {
                return Ok(make(&body[1..], None));
            }
            if n == 2 + lc {
                let le = body[1 + lc];
                return Ok(make(&body[1..1 + lc], Some(if le == 0 { 256 } else { u32::from(le) })));
            }
            return Err(ApduError::BadLength(n));
        }
        // body[0] == 0 and n ≥ 2: extended.
        if n == 3 {
            let le = u32::from(u16::from_be_bytes([body[1], body[2]]));
            return Ok(make(&[], Some(if le == 0 { 65536 } else { le })));
        }
        if n < 3 {
            return Err(ApduError::BadLength(n));
        }
        let lc = usize::from(u16::from_be_bytes([body[1], body[2]]));
        if lc == 0 {
            return Err(ApduError::BadLength(n));
        }
        if n == 3 + lc {
            return Ok(make(&body[3..], None));
        }
        if n == 5 + lc {
            let le = u32::from(u16::from_be_bytes([body[3 + lc], body[4 + lc]]));
            return Ok(make(&body[3..3 + lc], Some(if le == 0 { 65536 } else { le })));
        }
        Err(ApduError::BadLength(n))
    }
}

/// A status word (SW1 SW2), named where ISO 7816-4 names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// 90 00.
    Ok,
    /// 61 xx: more bytes available (GET RESPONSE).
    BytesRemaining(u8),
    /// 62 82: end of file reached before Le bytes.
    EndOfFile,
    /// 63 00: authentication failed (no counter).
    AuthFailed,
    /// 63 Cx: verification failed or queried, `x` tries left (0 = blocked).
    TriesLeft(u8),
    /// 65 81: memory failure.
    MemoryFailure,
    /// 67 00: wrong length.
    WrongLength,
    /// 69 81: command incompatible with file structure.
    IncompatibleFile,
    /// 69 82: security status not satisfied.
    SecurityNotSatisfied,
    /// 69 83: authentication method blocked.
    Blocked,
    /// 69 85: conditions of use not satisfied.
    ConditionsNotSatisfied,
    /// 69 86: command not allowed (no current EF).
    NoCurrentEf,
    /// 6A 80: incorrect data.
    IncorrectData,
    /// 6A 82: file or application not found.
    FileNotFound,
    /// 6A 84: not enough memory in the file.
    NotEnoughMemory,
    /// 6A 86: incorrect P1 P2.
    IncorrectP1P2,
    /// 6A 88: referenced data not found.
    DataNotFound,
    /// 6B 00: wrong P1 P2 (offset outside the EF).
    WrongP1P2,
    /// 6D 00: instruction not supported.
    InsNotSupported,
    /// 6E 00: class not supported.
    ClaNotSupported,
    /// 6F 00: no precise diagnosis.
    Unknown,
    /// Anything else.
    Other(u16),
}

impl Status {
    /// From the two bytes.
    pub fn from_u16(sw: u16) -> Status {
        match sw {
            0x9000 => Status::Ok,
            0x6282 => Status::EndOfFile,
            0x6300 => Status::AuthFailed,
            0x6581 => Status::MemoryFailure,
            0x6700 => Status::WrongLength,
            0x6981 => Status::IncompatibleFile,
            0x6982 => Status::SecurityNotSatisfied,
            0x6983 => Status::Blocked,
            0x6985 => Status::ConditionsNotSatisfied,
            0x6986 => Status::NoCurrentEf,
            0x6A80 => Status::IncorrectData,
            0x6A82 => Status::FileNotFound,
            0x6A84 => Status::NotEnoughMemory,
            0x6A86 => Status::IncorrectP1P2,
            0x6A88 => Status::DataNotFound,
            0x6B00 => Status::WrongP1P2,
            0x6D00 => Status::InsNotSupported,
            0x6E00 => Status::ClaNotSupported,
            0x6F00 => Status::Unknown,
            sw if sw >> 8 == 0x61 => Status::BytesRemaining(sw as u8),
            sw if sw & 0xFFF0 == 0x63C0 => Status::TriesLeft((sw & 0x0F) as u8),
            sw => Status::Other(sw),
        }
    }

    /// To the two bytes.
    pub fn to_u16(self) -> u16 {
        match self {
            Status::Ok => 0x9000,
            Status::BytesRemaining(n) => 0x6100 | u16::from(n),
            Status::EndOfFile => 0x6282,
            Status::AuthFailed => 0x6300,
            Status::TriesLeft(n) => 0x63C0 | u16::from(n & 0x0F),
            Status::MemoryFailure => 0x6581,
            Status::WrongLength => 0x6700,
            Status::IncompatibleFile => 0x6981,
            Status::SecurityNotSatisfied => 0x6982,
            Status::Blocked => 0x6983,
            Status::ConditionsNotSatisfied => 0x6985,
            Status::NoCurrentEf => 0x6986,
            Status::IncorrectData => 0x6A80,
            Status::FileNotFound => 0x6A82,
            Status::NotEnoughMemory => 0x6A84,
            Status::IncorrectP1P2 => 0x6A86,
            Status::DataNotFound => 0x6A88,
            Status::WrongP1P2 => 0x6B00,
            Status::InsNotSupported => 0x6D00,
            Status::ClaNotSupported => 0x6E00,
            Status::Unknown => 0x6F00,
            Status::Other(sw) => sw,
        }
    }

    /// The two bytes, SW1 first.
    pub fn bytes(self) -> [u8; 2] {
        self.to_u16().to_be_bytes()
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self {
            Status::Ok => "success".to_string(),
            Status::BytesRemaining(n) => format!("{n} more bytes available"),
            Status::EndOfFile => "end of file reached".into(),
            Status::AuthFailed => "authentication failed".into(),
            Status::TriesLeft(0) => "verification failed; blocked".into(),
            Status::TriesLeft(n) => format!("verification failed; {n} tries left"),
            Status::MemoryFailure => "memory failure".into(),
            Status::WrongLength => "wrong length".into(),
            Status::IncompatibleFile => "command incompatible with the file".into(),
            Status::SecurityNotSatisfied => "security status not satisfied".into(),
            Status::Blocked => "authentication method blocked".into(),
            Status::ConditionsNotSatisfied => "conditions of use not satisfied".into(),
            Status::NoCurrentEf => "no current EF".into(),
            Status::IncorrectData => "incorrect data".into(),
            Status::FileNotFound => "file or application not found".into(),
            Status::NotEnoughMemory => "not enough memory".into(),
            Status::IncorrectP1P2 => "incorrect P1 P2".into(),
            Status::DataNotFound => "referenced data not found".into(),
            Status::WrongP1P2 => "wrong P1 P2".into(),
            Status::InsNotSupported => "instruction not supported".into(),
            Status::ClaNotSupported => "class not supported".into(),
            Status::Unknown => "no precise diagnosis".into(),
            Status::Other(_) => "unknown status".into(),
        };
        write!(f, "{:04X} ({what})", self.to_u16())
    }
}

/// A response APDU: data and status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Response data.
    pub data: Vec<u8>,
    /// Status word.
    pub status: Status,
}

impl Response {
    /// Parses `data ‖ SW1 SW2`; fewer than two bytes is an error (a card that went away).
    pub fn parse(b: &[u8]) -> Result<Response, ApduError> {
        if b.len() < 2 {
            return Err(ApduError::NoStatus(b.len()));
        }
        let (data, sw) = b.split_at(b.len() - 2);
        Ok(Response { data: data.to_vec(), status: Status::from_u16(u16::from_be_bytes([sw[0], sw[1]])) })
    }

    /// A status-only response.
    pub fn status(status: Status) -> Response {
        Response { data: Vec::new(), status }
    }

    /// `data ‖ SW1 SW2`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.data.len() + 2);
        v.extend_from_slice(&self.data);
        v.extend_from_slice(&self.status.bytes());
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_jpki_bytes_of_the_reference() {
        let select = Command::new(0x00, 0xA4, 0x04, 0x0C).with_data(crate::jpki::AID_JPKI.to_vec());
        assert_eq!(
            select.encode().unwrap(),
            [0x00, 0xA4, 0x04, 0x0C, 0x0A, 0xD3, 0x92, 0xF0, 0x00, 0x26, 0x01, 0x00, 0x00, 0x00, 0x01]
        );
        assert_eq!(Command::new(0x00, 0xB0, 0x00, 0x00).with_le(256).encode().unwrap(), [0, 0xB0, 0, 0, 0]);
        assert_eq!(Command::new(0x00, 0x20, 0x00, 0x80).encode().unwrap(), [0, 0x20, 0, 0x80]);
        let ext = Command::new(0x00, 0xD6, 0, 0).with_data(vec![0xAB; 300]).with_le(65536);
        let e = ext.encode().unwrap();
        assert_eq!(&e[..7], &[0x00, 0xD6, 0x00, 0x00, 0x00, 0x01, 0x2C]);
        assert_eq!(&e[e.len() - 2..], &[0, 0]);
        assert_eq!(Command::parse(&e).unwrap(), ext);
        assert_eq!(Response::parse(&[0x63, 0xC2]).unwrap().status, Status::TriesLeft(2));
        assert_eq!(Response::parse(&[0x90]), Err(ApduError::NoStatus(1)));
        assert_eq!(Command::parse(&[0, 0xA4, 0, 0, 5, 1]), Err(ApduError::BadLength(2)));
    }

    fn command() -> impl Strategy<Value = Command> {
        (
            any::<[u8; 4]>(),
            prop_oneof![proptest::collection::vec(any::<u8>(), 0..300), proptest::collection::vec(any::<u8>(), 0..4)],
            prop_oneof![Just(None), (1u32..=256).prop_map(Some), (1u32..=65536).prop_map(Some)],
        )
            .prop_map(|(h, data, le)| Command { cla: h[0], ins: h[1], p1: h[2], p2: h[3], data, le })
    }

    proptest! {
        #[test]
        fn encode_then_parse_is_identity(c in command()) {
            let b = c.encode().unwrap();
            prop_assert_eq!(Command::parse(&b).unwrap(), c);
        }

        #[test]
        fn parse_is_total_and_reencodes(b in proptest::collection::vec(any::<u8>(), 0..600)) {
            if let Ok(c) = Command::parse(&b) {
                // A parsed command re-encodes to a command that parses the same (the short and
                // extended forms of one command may differ in bytes, never in meaning).
                prop_assert_eq!(Command::parse(&c.encode().unwrap()).unwrap(), c);
            }
            if let Ok(r) = Response::parse(&b) {
                prop_assert_eq!(r.to_bytes(), b);
            }
        }

        #[test]
        fn status_words_round_trip(sw in any::<u16>()) {
            prop_assert_eq!(Status::from_u16(sw).to_u16(), sw);
        }
    }
}
