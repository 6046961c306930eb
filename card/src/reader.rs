//! The card writer's side: readers found by name through the `pcsc` crate, insertion awaited
//! with status changes (no sleeps), and the JPKI commands as typed operations ([`Jpki`]),
//! including the proof-of-possession CSR signed on the card.

use std::ffi::CString;
use std::time::{Duration, Instant};

use der::{Decode, Encode};
use pcsc::{Context, Protocols, ReaderState, Scope, ShareMode, State};
use sha2::Digest;
use x509_cert::request::{CertReq, CertReqInfo, Version};
use x509_cert::spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};

use crate::apdu::{Command, Response, Status};
use crate::jpki::{self, CHALLENGE_LEN, CardStatus, Ef, KeyAlg, KeyRef, PinRef, ins};
use crate::{Error, Result};

pub(crate) fn pcsc_err(op: &str, e: pcsc::Error) -> Error {
    use pcsc::Error as E;
    match e {
        E::RemovedCard | E::ResetCard | E::NoSmartcard | E::NotTransacted | E::UnpoweredCard | E::UnresponsiveCard => {
            Error::Removed(op.to_string())
        }
        E::NoService | E::ServiceStopped | E::NoReadersAvailable => Error::NoService(e),
        e => Error::Pcsc(e),
    }
}

/// A PC/SC reader chosen by name.
pub struct Reader {
    ctx: Context,
    name: CString,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader").field("name", &self.name).finish_non_exhaustive()
    }
}

impl Reader {
    /// The readers pcscd knows.
    pub fn list() -> Result<Vec<String>> {
        let ctx = Context::establish(Scope::User).map_err(Error::NoService)?;
        Self::names(&ctx)
    }

    fn names(ctx: &Context) -> Result<Vec<String>> {
        match ctx.list_readers_owned() {
            Ok(r) => Ok(r.into_iter().map(|c| c.to_string_lossy().into_owned()).collect()),
            Err(pcsc::Error::NoReadersAvailable) => Ok(Vec::new()),
            Err(e) => Err(pcsc_err("listing readers", e)),
        }
    }

    /// Opens the reader named exactly `wanted`, or the only one whose name contains it.
    pub fn open(wanted: &str) -> Result<Reader> {
        let ctx = Context::establish(Scope::User).map_err(Error::NoService)?;
        let names = Self::names(&ctx)?;
        let name = if names.iter().any(|n| n == wanted) {
            wanted.to_string()
        } else {
            let matching: Vec<&String> = names.iter().filter(|n| n.contains(wanted)).collect();
            match matching.as_slice() {
                [one] => (*one).clone(),
                _ => {
                    return Err(Error::NoReader {
                        wanted: wanted.to_string(),
                        available: if names.is_empty() { "none".into() } else { names.join(", ") },
                    });
                }
            }
        };
        let name = CString::new(name).map_err(|e| Error::Malformed(e.to_string()))?;
        Ok(Reader { ctx, name })
    }

    /// The reader's name.
    pub fn name(&self) -> String {
        self.name.to_string_lossy().into_owned()
    }

    /// Waits (on status changes, not by polling) until a card is present.
    pub fn wait_card(&self, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        let mut rs = [ReaderState::new(self.name.clone(), State::UNAWARE)];
        loop {
            match self.ctx.get_status_change(timeout.saturating_sub(start.elapsed()), &mut rs) {
                Ok(()) => {}
                Err(pcsc::Error::Timeout) => return Err(Error::NoCard(self.name(), timeout.as_secs())),
                Err(e) => return Err(pcsc_err("waiting for a card", e)),
            }
            let ev = rs[0].event_state();
            if ev.contains(State::PRESENT) && !ev.contains(State::MUTE) {
                return Ok(());
            }
            if start.elapsed() >= timeout {
                return Err(Error::NoCard(self.name(), timeout.as_secs()));
            }
            rs[0].sync_current_state();
        }
    }

    /// Waits (on status changes) until the reader is empty.
    pub fn wait_absent(&self, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        let mut rs = [ReaderState::new(self.name.clone(), State::UNAWARE)];
        loop {
            match self.ctx.get_status_change(timeout.saturating_sub(start.elapsed()), &mut rs) {
                Ok(()) => {}
                Err(pcsc::Error::Timeout) => {
                    return Err(Error::Malformed(format!("a card is still in {:?}", self.name())));
                }
                Err(e) => return Err(pcsc_err("waiting for removal", e)),
            }
            if rs[0].event_state().contains(State::EMPTY) {
                return Ok(());
            }
            rs[0].sync_current_state();
        }
    }

    /// Connects (shared, T=1 or T=0).
    pub fn connect(&self) -> Result<Connection> {
        let card = self.ctx.connect(&self.name, ShareMode::Shared, Protocols::ANY).map_err(|e| match e {
            pcsc::Error::NoSmartcard | pcsc::Error::RemovedCard => Error::NoCard(self.name(), 0),
            e => pcsc_err("connecting", e),
        })?;
        Ok(Connection { card: Some(card) })
    }
}

/// A connected card: [`Connection::finish`] resets it after a successful session; dropping it
/// (an error path, perhaps a pulled card) only disconnects, since asking pcscd 1.9.9 to reset
/// a vanished vpcd card confuses its reader state.
pub struct Connection {
    card: Option<pcsc::Card>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection").finish_non_exhaustive()
    }
}

impl std::ops::Deref for Connection {
    type Target = pcsc::Card;
    fn deref(&self) -> &pcsc::Card {
        self.card.as_ref().unwrap_or_else(|| unreachable!("taken only in drop"))
    }
}

impl std::ops::DerefMut for Connection {
    fn deref_mut(&mut self) -> &mut pcsc::Card {
        self.card.as_mut().unwrap_or_else(|| unreachable!("taken only in drop"))
    }
}

impl Connection {
    /// Ends a successful session: resets the card so no issuer or PIN state outlives it.
    pub fn finish(mut self) -> Result<()> {
        if let Some(card) = self.card.take() {
            card.disconnect(pcsc::Disposition::ResetCard).map_err(|(_, e)| pcsc_err("releasing the card", e))?;
        }
        Ok(())
    }
}

impl Drop for Connection {
    /// After an error: only disconnect (pcscd powers the card down after its grace period,
    /// which ends the card session too).
    fn drop(&mut self) {
        if let Some(card) = self.card.take()
            && let Err((_, e)) = card.disconnect(pcsc::Disposition::LeaveCard)
        {
            tracing::debug!("disconnecting: {e}");
        }
    }
}

/// JPKI-AP commands over a connected card (or a transaction on it).
pub struct Jpki<'c> {
    card: &'c pcsc::Card,
    /// APDUs sent so far.
    pub apdus: u32,
    buf: Vec<u8>,
}

impl std::fmt::Debug for Jpki<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jpki").field("apdus", &self.apdus).finish_non_exhaustive()
    }
}

impl<'c> Jpki<'c> {
    /// Wraps a card.
    pub fn new(card: &'c pcsc::Card) -> Jpki<'c> {
        Jpki { card, apdus: 0, buf: vec![0u8; pcsc::MAX_BUFFER_SIZE_EXTENDED] }
    }

    /// Sends one command.
    pub fn transmit(&mut self, op: &str, c: &Command) -> Result<Response> {
        let bytes = c.encode().map_err(|e| Error::Malformed(e.to_string()))?;
        self.apdus += 1;
        let r = self.card.transmit(&bytes, &mut self.buf).map_err(|e| pcsc_err(op, e))?;
        // vpcd answers a card that died mid-APDU with zero bytes.
        Response::parse(r).map_err(|_| Error::Removed(op.to_string()))
    }

    fn ok(&mut self, op: &str, c: &Command) -> Result<Vec<u8>> {
        let r = self.transmit(op, c)?;
        if r.status != Status::Ok {
            return Err(Error::Card { op: op.to_string(), status: r.status });
        }
        Ok(r.data)
    }

    /// SELECT JPKI-AP.
    pub fn select_ap(&mut self) -> Result<()> {
        self.ok("selecting the JPKI application", &Command::new(0, ins::SELECT, 0x04, 0x0C).with_data(jpki::AID_JPKI))
            .map(drop)
    }

    /// SELECT EF.
    pub fn select_ef(&mut self, ef: Ef) -> Result<()> {
        let op = format!("selecting EF {:04X}", ef.fid());
        self.ok(&op, &Command::new(0, ins::SELECT, 0x02, 0x0C).with_data(ef.fid().to_be_bytes())).map(drop)
    }

    /// GET CARD STATUS.
    pub fn status(&mut self) -> Result<CardStatus> {
        let b = self.ok("reading the card status", &Command::new(0x80, ins::GET_STATUS, 0x01, 0x00).with_le(256))?;
        CardStatus::parse(&b).ok_or_else(|| Error::Malformed(format!("card status of {} bytes", b.len())))
    }

    /// GET CHALLENGE: the card's fresh challenge for issuer authentication (16 bytes). The
    /// answer, a MAC under the card's own issuer key, comes from the CA service
    /// ([`crate::writer::CaClient::issuer_auth`]): the writer holds no issuer key.
    pub fn get_challenge(&mut self) -> Result<Vec<u8>> {
        let ch =
            self.ok("getting a challenge", &Command::new(0, ins::GET_CHALLENGE, 0, 0).with_le(CHALLENGE_LEN as u32))?;
        if ch.len() != CHALLENGE_LEN {
            return Err(Error::Malformed(format!("challenge of {} bytes", ch.len())));
        }
        Ok(ch)
    }

    /// EXTERNAL AUTHENTICATE with the issuer's answer to the last challenge
    /// (`applet::issuer_mac(card_key, challenge, serial)`, computed by whoever holds the key).
    pub fn external_authenticate(&mut self, mac: &[u8]) -> Result<()> {
        let r =
            self.transmit("issuer authentication", &Command::new(0, ins::EXTERNAL_AUTHENTICATE, 0, 0).with_data(mac))?;
        match r.status {
            Status::Ok => Ok(()),
            Status::TriesLeft(n) => Err(Error::IssuerAuth(n)),
            // Cards made before the per-card keys answered `63 00`.
            Status::AuthFailed => {
                let left = self.status().map(|s| s.issuer_tries).unwrap_or(0);
                Err(Error::IssuerAuth(left))
            }
            Status::Blocked => Err(Error::IssuerAuth(0)),
            s => Err(Error::Card { op: "issuer authentication".into(), status: s }),
        }
    }

    /// OPEN PERSONALISATION.
    pub fn open_personalisation(&mut self) -> Result<()> {
        self.ok("opening personalisation", &Command::new(0x80, ins::OPEN_PERSONALISATION, 0, 0)).map(drop)
    }

    /// CLOSE PERSONALISATION.
    pub fn close_personalisation(&mut self) -> Result<()> {
        self.ok("closing personalisation", &Command::new(0x80, ins::CLOSE_PERSONALISATION, 0, 0)).map(drop)
    }

    /// WIPE.
    pub fn wipe(&mut self) -> Result<()> {
        self.ok("wiping the card", &Command::new(0x80, ins::WIPE, 0, 0)).map(drop)
    }

    /// Generates a key pair on the card; returns its SubjectPublicKeyInfo.
    pub fn generate(&mut self, k: KeyRef, alg: KeyAlg) -> Result<Vec<u8>> {
        let op = format!("generating the {} key", k.name());
        self.ok(&op, &Command::new(0, ins::GENERATE_KEY_PAIR, 0x80 | alg.code(), k.p2()).with_le(65536))
    }

    /// Reads a key's public key (SubjectPublicKeyInfo).
    pub fn public_key(&mut self, k: KeyRef) -> Result<Vec<u8>> {
        let op = format!("reading the {} public key", k.name());
        self.ok(&op, &Command::new(0, ins::GENERATE_KEY_PAIR, 0x00, k.p2()).with_le(65536))
    }

    /// COMPUTE DIGITAL SIGNATURE with a key named in P2: a DigestInfo for RSA, a hash for
    /// P-384 (answer: DER `ECDSA-Sig-Value`).
    pub fn sign(&mut self, k: KeyRef, input: &[u8]) -> Result<Vec<u8>> {
        let op = format!("signing with the {} key", k.name());
        let r = self
            .transmit(&op, &Command::new(0x80, ins::COMPUTE_SIGNATURE, 0x00, k.p2()).with_data(input).with_le(65536))?;
        match r.status {
            Status::Ok => Ok(r.data),
            s => Err(Error::Card { op, status: s }),
        }
    }

    /// Replaces a data EF's content (ERASE BINARY, then one extended UPDATE BINARY).
    pub fn write_ef(&mut self, ef: Ef, content: &[u8]) -> Result<()> {
        self.select_ef(ef)?;
        let op = format!("writing EF {:04X}", ef.fid());
        self.ok(&op, &Command::new(0, ins::ERASE_BINARY, 0, 0))?;
        for (i, chunk) in content.chunks(0x7FFF).enumerate() {
            let off = (i * 0x7FFF) as u16;
            let [p1, p2] = off.to_be_bytes();
            self.ok(&op, &Command::new(0, ins::UPDATE_BINARY, p1, p2).with_data(chunk))?;
        }
        Ok(())
    }

    /// Reads a whole data EF (one extended READ BINARY; the capacity is at most 4096).
    pub fn read_ef(&mut self, ef: Ef) -> Result<Vec<u8>> {
        self.select_ef(ef)?;
        let op = format!("reading EF {:04X}", ef.fid());
        self.ok(&op, &Command::new(0, ins::READ_BINARY, 0, 0).with_le(65536))
    }

    /// Sets a PIN and resets its counter (issuer).
    pub fn set_pin(&mut self, p: PinRef, pin: &str) -> Result<()> {
        let v = p.normalize(pin)?;
        self.select_ef(p.ef())?;
        let op = format!("setting the {}", p.name());
        self.ok(&op, &Command::new(0, ins::RESET_RETRY_COUNTER, 0x02, 0x80).with_data(v)).map(drop)
    }

    /// Tries left of a PIN (empty VERIFY; no try consumed).
    pub fn tries_left(&mut self, p: PinRef) -> Result<u8> {
        self.select_ef(p.ef())?;
        let op = format!("asking the {} tries", p.name());
        match self.transmit(&op, &Command::new(0, ins::VERIFY, 0x00, 0x80))?.status {
            Status::TriesLeft(n) => Ok(n),
            s => Err(Error::Card { op, status: s }),
        }
    }

    /// VERIFY a PIN.
    pub fn verify(&mut self, p: PinRef, pin: &str) -> Result<()> {
        let v = match p {
            PinRef::Sign => pin.to_ascii_uppercase().into_bytes(),
            PinRef::Auth => pin.as_bytes().to_vec(),
        };
        self.select_ef(p.ef())?;
        let op = format!("verifying the {}", p.name());
        match self.transmit(&op, &Command::new(0, ins::VERIFY, 0x00, 0x80).with_data(v))?.status {
            Status::Ok => Ok(()),
            Status::TriesLeft(0) | Status::Blocked => Err(Error::PinBlocked(p.name())),
            Status::TriesLeft(n) => Err(Error::WrongPin { pin: p.name(), tries_left: n }),
            s => Err(Error::Card { op, status: s }),
        }
    }

    /// Builds a PKCS#10 CSR for a card key, signed on the card (proof of possession). The
    /// card signs only if the key's PIN was verified in this session (set it and VERIFY it
    /// first). The subject is empty: identity items come from the identity network, never
    /// from the card.
    pub fn csr(&mut self, k: KeyRef, alg: KeyAlg, spki: &[u8]) -> Result<Vec<u8>> {
        let info = CertReqInfo {
            version: Version::V1,
            subject: Default::default(),
            public_key: SubjectPublicKeyInfoOwned::from_der(spki)?,
            attributes: Default::default(),
        };
        let tbs = info.to_der()?;
        let (input, algorithm) = match alg {
            KeyAlg::Rsa2048 => {
                let mut di = SHA256_DIGEST_INFO_PREFIX.to_vec();
                di.extend_from_slice(&sha2::Sha256::digest(&tbs));
                let alg = AlgorithmIdentifierOwned {
                    oid: const_oid::db::rfc5912::SHA_256_WITH_RSA_ENCRYPTION,
                    parameters: Some(der::asn1::Null.into()),
                };
                (di, alg)
            }
            KeyAlg::EcP384 => (
                sha2::Sha384::digest(&tbs).to_vec(),
                AlgorithmIdentifierOwned { oid: const_oid::db::rfc5912::ECDSA_WITH_SHA_384, parameters: None },
            ),
        };
        let sig = self.sign(k, &input)?;
        let req = CertReq { info, algorithm, signature: der::asn1::BitString::from_bytes(&sig)? };
        Ok(req.to_der()?)
    }
}

/// The DER prefix of a SHA-256 DigestInfo (RFC 8017 §9.2 note 1).
pub const SHA256_DIGEST_INFO_PREFIX: [u8; 19] =
    [0x30, 0x31, 0x30, 0x0D, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20];
