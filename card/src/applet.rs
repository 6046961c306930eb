//! The virtual card's JPKI applet: answers command APDUs byte for byte as
//! `docs/card-profile.md` describes. The persistent part ([`CardState`]) is what a chip keeps
//! in EEPROM; the session part (selection, verified PINs, issuer authentication) is lost on
//! power-off or reset. Private keys live only in the card state: no command exports them.

#![forbid(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use openssl::ec::{EcGroup, EcKey};
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::rsa::{Padding, Rsa};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::apdu::{Command, Response, Status};
use crate::jpki::{
    self, CHALLENGE_LEN, CardStatus, Ef, EfKind, ISSUER_AUTH_TRIES, ISSUER_KEY_LABEL, KeyAlg, KeyRef, Lifecycle,
    PinRef, ins,
};

/// Format version of the state file. Version 1 held the shared master issuer key; version 2
/// holds the card's own diversified key (see [`card_issuer_key`]).
pub const STATE_VERSION: u32 = 2;

/// A private key as the card stores it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredKey {
    /// Algorithm.
    pub alg: KeyAlg,
    /// PKCS#8 DER, hex (card-internal storage; never sent out).
    pub pkcs8: String,
    /// SubjectPublicKeyInfo DER, hex.
    pub spki: String,
}

/// A PIN as the card stores it: salted hash and retry counter.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredPin {
    /// Salt, hex.
    pub salt: String,
    /// SHA-256(salt ‖ PIN), hex.
    pub hash: String,
    /// Tries left (0 = blocked).
    pub tries_left: u8,
}

/// Everything the card keeps across power cycles.
#[derive(Clone, Serialize, Deserialize)]
pub struct CardState {
    /// Format version of this file.
    pub version: u32,
    /// Card serial (8 bytes, hex).
    pub serial: String,
    /// This card's own issuer-authentication key (32 bytes, hex): `card_issuer_key(master,
    /// serial)`, set at manufacture. The master never reaches the card.
    pub issuer_key: String,
    /// Issuer-authentication tries left.
    pub issuer_tries: u8,
    /// Lifecycle.
    pub lifecycle: Lifecycle,
    /// Data EFs (FID → hex).
    pub files: BTreeMap<u16, String>,
    /// Private keys.
    pub keys: BTreeMap<KeyRef, StoredKey>,
    /// PINs.
    pub pins: BTreeMap<PinRef, StoredPin>,
}

impl std::fmt::Debug for CardState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print keys, PIN hashes or the issuer key.
        f.debug_struct("CardState")
            .field("serial", &self.serial)
            .field("lifecycle", &self.lifecycle)
            .field("files", &self.files.keys().collect::<Vec<_>>())
            .field("keys", &self.keys.keys().collect::<Vec<_>>())
            .field("pins", &self.pins.iter().map(|(k, p)| (k, p.tries_left)).collect::<Vec<_>>())
            .finish()
    }
}

/// Why a card state file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// I/O.
    #[error("card state {path}: {source}")]
    Io {
        /// File.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// Not a card state.
    #[error("card state {path} is corrupt: {why}")]
    Corrupt {
        /// File.
        path: String,
        /// What is wrong.
        why: String,
    },
}

impl CardState {
    /// A blank card as manufactured: a random serial and the issuer key diversified for it
    /// from the issuing authority's `master` ([`card_issuer_key`]). Only the diversified key is
    /// stored: reading one card's state never yields a key valid for another card.
    pub fn blank(master: &[u8; 32]) -> Result<CardState, openssl::error::ErrorStack> {
        let serial: [u8; 8] = rand::random();
        let key = card_issuer_key(master, &serial)?;
        Ok(CardState {
            version: STATE_VERSION,
            serial: hex::encode(serial),
            issuer_key: hex::encode(key),
            issuer_tries: ISSUER_AUTH_TRIES,
            lifecycle: Lifecycle::Blank,
            files: BTreeMap::new(),
            keys: BTreeMap::new(),
            pins: BTreeMap::new(),
        })
    }

    /// Loads a state file, checking every field a corrupt file could break.
    pub fn load(path: &Path) -> Result<CardState, StateError> {
        let p = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| StateError::Io { path: p.clone(), source })?;
        let s: CardState =
            serde_json::from_slice(&bytes).map_err(|e| StateError::Corrupt { path: p.clone(), why: e.to_string() })?;
        let corrupt = |why: String| StateError::Corrupt { path: p.clone(), why };
        if s.version == 1 {
            return Err(corrupt(
                "version 1 holds the shared master issuer key, not a per-card key: make a new blank card".into(),
            ));
        }
        if s.version != STATE_VERSION {
            return Err(corrupt(format!("unknown version {}", s.version)));
        }
        if hex::decode(&s.serial).map_or(true, |b| b.len() != 8) {
            return Err(corrupt("serial is not 8 hex bytes".into()));
        }
        if hex::decode(&s.issuer_key).map_or(true, |b| b.len() != 32) {
            return Err(corrupt("issuer key is not 32 hex bytes".into()));
        }
        for (fid, content) in &s.files {
            let ef = Ef::from_fid(*fid).ok_or_else(|| corrupt(format!("unknown EF {fid:04X}")))?;
            let EfKind::Data { capacity } = ef.kind() else {
                return Err(corrupt(format!("EF {fid:04X} is not a data EF")));
            };
            if hex::decode(content).map_or(true, |b| b.len() > capacity) {
                return Err(corrupt(format!("EF {fid:04X} content is not hex within {capacity} bytes")));
            }
        }
        for (k, key) in &s.keys {
            let der = hex::decode(&key.pkcs8).map_err(|_| corrupt(format!("{} key is not hex", k.name())))?;
            PKey::private_key_from_pkcs8(&der).map_err(|e| corrupt(format!("{} key: {e}", k.name())))?;
        }
        Ok(s)
    }

    /// Writes the state durably and privately, so a power loss leaves either the old or the
    /// new state and no other user can read the keys: a new temporary file with a random name
    /// created with mode 0600 (never an existing file or a symlink), fsync, rename over the
    /// state file, fsync of the directory. (The same steps as `net::keyfile::write_private`;
    /// `card` does not depend on `net`.)
    pub fn save(&self, path: &Path) -> Result<(), StateError> {
        let io = |source| StateError::Io { path: path.display().to_string(), source };
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let tmp = dir.join(format!(".{name}.{:016x}.tmp", rand::random::<u64>()));
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| io(std::io::Error::other(e)))?;
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)?;
            std::fs::File::open(dir)?.sync_all()
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io(e)
        })
    }

    fn file(&self, ef: Ef) -> Vec<u8> {
        self.files.get(&ef.fid()).and_then(|h| hex::decode(h).ok()).unwrap_or_default()
    }

    /// The card status (as GET CARD STATUS answers it).
    pub fn status(&self) -> CardStatus {
        let mut serial = [0u8; 8];
        if let Ok(b) = hex::decode(&self.serial)
            && b.len() == 8
        {
            serial.copy_from_slice(&b);
        }
        CardStatus {
            lifecycle: self.lifecycle,
            auth_key: self.keys.get(&KeyRef::Auth).map(|k| k.alg),
            sign_key: self.keys.get(&KeyRef::Sign).map(|k| k.alg),
            files: Ef::DATA.into_iter().filter(|e| !self.file(*e).is_empty()).collect(),
            auth_pin: self.pins.get(&PinRef::Auth).map(|p| p.tries_left),
            sign_pin: self.pins.get(&PinRef::Sign).map(|p| p.tries_left),
            issuer_tries: self.issuer_tries,
            serial,
        }
    }
}

/// Session state: lost on power-off and reset.
#[derive(Debug, Default)]
struct Session {
    ap_selected: bool,
    current: Option<Ef>,
    verified: Vec<PinRef>,
    issuer: bool,
    challenge: Option<[u8; CHALLENGE_LEN]>,
}

/// The applet.
pub struct Applet {
    state: CardState,
    session: Session,
    dirty: bool,
    /// Parsed private keys (a chip keeps them ready, too); dropped whenever a key changes.
    parsed: BTreeMap<KeyRef, PKey<Private>>,
}

impl std::fmt::Debug for Applet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Applet").field("state", &self.state).field("session", &self.session).finish_non_exhaustive()
    }
}

type Answer = Result<Vec<u8>, Status>;

impl Applet {
    /// An applet over a card state.
    pub fn new(state: CardState) -> Applet {
        Applet { state, session: Session::default(), dirty: false, parsed: BTreeMap::new() }
    }

    /// The persistent state.
    pub fn state(&self) -> &CardState {
        &self.state
    }

    /// Whether the last commands changed the persistent state (and clears the flag): the
    /// caller saves the state before it sends the response.
    pub fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    /// Power-off, power-on or reset: the session is gone.
    pub fn reset(&mut self) {
        self.session = Session::default();
    }

    /// Processes one command APDU; always returns at least a status word.
    pub fn process(&mut self, apdu: &[u8]) -> Vec<u8> {
        let r = match Command::parse(apdu) {
            Err(_) => Err(Status::WrongLength),
            Ok(c) => self.dispatch(&c),
        };
        match r {
            Ok(data) => Response { data, status: Status::Ok }.to_bytes(),
            Err(sw) => Response::status(sw).to_bytes(),
        }
    }

    fn dispatch(&mut self, c: &Command) -> Answer {
        match (c.cla, c.ins) {
            (0x00, ins::SELECT) => self.select(c),
            (0x00, ins::READ_BINARY) => self.read_binary(c),
            (0x00, ins::VERIFY) => self.verify(c),
            (0x00, ins::CHANGE_REFERENCE_DATA) => self.change_pin(c),
            (0x00, ins::RESET_RETRY_COUNTER) => self.reset_retry_counter(c),
            (0x00, ins::GET_CHALLENGE) => self.get_challenge(c),
            (0x00, ins::EXTERNAL_AUTHENTICATE) => self.external_authenticate(c),
            (0x00, ins::GENERATE_KEY_PAIR) => self.generate(c),
            (0x00, ins::UPDATE_BINARY) => self.update_binary(c),
            (0x00, ins::ERASE_BINARY) => self.erase_binary(c),
            (0x80, ins::COMPUTE_SIGNATURE) => self.sign(c),
            (0x80, ins::GET_STATUS) => self.get_status(c),
            (0x80, ins::OPEN_PERSONALISATION) => self.open_personalisation(c),
            (0x80, ins::CLOSE_PERSONALISATION) => self.close_personalisation(c),
            (0x80, ins::WIPE) => self.wipe(c),
            (0x00 | 0x80, _) => Err(Status::InsNotSupported),
            _ => Err(Status::ClaNotSupported),
        }
    }

    fn select(&mut self, c: &Command) -> Answer {
        match c.p1 {
            0x04 => {
                if c.data == jpki::AID_JPKI {
                    self.session.ap_selected = true;
                    self.session.current = None;
                    Ok(Vec::new())
                } else {
                    // Another application: ours is deselected, as on a real card.
                    self.session = Session::default();
                    Err(Status::FileNotFound)
                }
            }
            0x02 => {
                if !self.session.ap_selected {
                    return Err(Status::FileNotFound);
                }
                if c.data.len() != 2 {
                    return Err(Status::WrongLength);
                }
                let ef = Ef::from_fid(u16::from_be_bytes([c.data[0], c.data[1]])).ok_or(Status::FileNotFound)?;
                if !self.exists(ef) {
                    return Err(Status::FileNotFound);
                }
                self.session.current = Some(ef);
                Ok(Vec::new())
            }
            _ => Err(Status::IncorrectP1P2),
        }
    }

    /// Outside personalisation only EFs with content exist.
    fn exists(&self, ef: Ef) -> bool {
        if self.state.lifecycle == Lifecycle::Personalising {
            return true;
        }
        match ef.kind() {
            EfKind::Data { .. } => !self.state.file(ef).is_empty(),
            EfKind::Key(k) => self.state.keys.contains_key(&k),
            EfKind::Pin(p) => self.state.pins.contains_key(&p),
        }
    }

    fn current_data(&self) -> Result<(Ef, usize), Status> {
        let ef = self.session.current.ok_or(Status::NoCurrentEf)?;
        match ef.kind() {
            EfKind::Data { capacity } => Ok((ef, capacity)),
            _ => Err(Status::IncompatibleFile),
        }
    }

    fn read_binary(&mut self, c: &Command) -> Answer {
        if c.p1 & 0x80 != 0 {
            return Err(Status::IncorrectP1P2);
        }
        let (ef, _) = self.current_data()?;
        if let jpki::Access::Pin(p) = ef.read_access()
            && !self.session.verified.contains(&p)
        {
            return Err(Status::SecurityNotSatisfied);
        }
        let content = self.state.file(ef);
        let offset = usize::from(u16::from_be_bytes([c.p1, c.p2]));
        if offset > content.len() || (offset == content.len() && !content.is_empty()) {
            return Err(Status::WrongP1P2);
        }
        let le = c.le.unwrap_or(256) as usize;
        let end = (offset + le).min(content.len());
        Ok(content[offset..end].to_vec())
    }

    fn current_pin(&self) -> Result<PinRef, Status> {
        match self.session.current.map(Ef::kind) {
            Some(EfKind::Pin(p)) => Ok(p),
            Some(_) => Err(Status::IncompatibleFile),
            None => Err(Status::NoCurrentEf),
        }
    }

    fn verify(&mut self, c: &Command) -> Answer {
        if c.p1 != 0x00 || c.p2 != 0x80 {
            return Err(Status::IncorrectP1P2);
        }
        let p = self.current_pin()?;
        let stored = self.state.pins.get(&p).ok_or(Status::DataNotFound)?;
        if c.data.is_empty() {
            // Tries left; answered 63 Cx even when verified (OpenSC asks after a VERIFY).
            return Err(Status::TriesLeft(stored.tries_left));
        }
        if stored.tries_left == 0 {
            return Err(Status::Blocked);
        }
        let ok = pin_matches(stored, &c.data);
        let max = p.max_tries();
        let Some(stored) = self.state.pins.get_mut(&p) else { return Err(Status::DataNotFound) };
        if ok {
            if stored.tries_left != max {
                stored.tries_left = max;
                self.dirty = true;
            }
            if !self.session.verified.contains(&p) {
                self.session.verified.push(p);
            }
            Ok(Vec::new())
        } else {
            stored.tries_left -= 1;
            self.dirty = true;
            self.session.verified.retain(|v| *v != p);
            Err(Status::TriesLeft(stored.tries_left))
        }
    }

    fn change_pin(&mut self, c: &Command) -> Answer {
        if c.p1 != 0x01 || c.p2 != 0x80 {
            return Err(Status::IncorrectP1P2);
        }
        let p = self.current_pin()?;
        if !self.session.verified.contains(&p) {
            return Err(Status::SecurityNotSatisfied);
        }
        if !p.well_formed(&c.data) {
            return Err(Status::IncorrectData);
        }
        self.state.pins.insert(p, new_pin(&c.data, p.max_tries()));
        self.dirty = true;
        Ok(Vec::new())
    }

    /// `00 2C 02 80 Lc PIN`: set a new PIN and reset its counter; `00 2C 03 80`: reset the
    /// counter only. Issuer only. On an issued card, either one for the signature password
    /// first destroys the signature key and its certificate (as on a real card, a new
    /// signature password means a new signature certificate): the issuer never gets to sign
    /// with a key the resident holds.
    fn reset_retry_counter(&mut self, c: &Command) -> Answer {
        if c.p2 != 0x80 {
            return Err(Status::IncorrectP1P2);
        }
        let p = self.current_pin()?;
        if !self.session.issuer {
            return Err(Status::SecurityNotSatisfied);
        }
        match c.p1 {
            0x02 if !p.well_formed(&c.data) => return Err(Status::IncorrectData),
            0x03 if !c.data.is_empty() => return Err(Status::WrongLength),
            0x03 if !self.state.pins.contains_key(&p) => return Err(Status::DataNotFound),
            0x02 | 0x03 => {}
            _ => return Err(Status::IncorrectP1P2),
        }
        if self.state.lifecycle == Lifecycle::Issued && p == PinRef::Sign {
            self.destroy_key(KeyRef::Sign);
        }
        match c.p1 {
            0x02 => {
                self.state.pins.insert(p, new_pin(&c.data, p.max_tries()));
            }
            _ => {
                self.state.pins.get_mut(&p).ok_or(Status::DataNotFound)?.tries_left = p.max_tries();
            }
        }
        self.session.verified.retain(|v| *v != p);
        self.dirty = true;
        Ok(Vec::new())
    }

    fn get_challenge(&mut self, c: &Command) -> Answer {
        if c.p1 != 0 || c.p2 != 0 || !c.data.is_empty() {
            return Err(Status::IncorrectP1P2);
        }
        if c.le != Some(CHALLENGE_LEN as u32) {
            return Err(Status::WrongLength);
        }
        let ch: [u8; CHALLENGE_LEN] = rand::random();
        self.session.challenge = Some(ch);
        Ok(ch.to_vec())
    }

    /// `00 82 00 00 20 HMAC-SHA256(issuer key, challenge ‖ serial)`.
    fn external_authenticate(&mut self, c: &Command) -> Answer {
        if c.p1 != 0 || c.p2 != 0 {
            return Err(Status::IncorrectP1P2);
        }
        let challenge = self.session.challenge.take().ok_or(Status::ConditionsNotSatisfied)?;
        if self.state.issuer_tries == 0 {
            return Err(Status::Blocked);
        }
        let key = hex::decode(&self.state.issuer_key).map_err(|_| Status::MemoryFailure)?;
        let serial = hex::decode(&self.state.serial).map_err(|_| Status::MemoryFailure)?;
        let expected = issuer_mac(&key, &challenge, &serial).map_err(|_| Status::MemoryFailure)?;
        if c.data.len() == expected.len() && openssl::memcmp::eq(&c.data, &expected) {
            self.session.issuer = true;
            if self.state.issuer_tries != ISSUER_AUTH_TRIES {
                self.state.issuer_tries = ISSUER_AUTH_TRIES;
                self.dirty = true;
            }
            Ok(Vec::new())
        } else {
            // Burned for good (L5, docs/card-profile.md): the counter survives power cycles.
            self.state.issuer_tries -= 1;
            self.session.issuer = false;
            self.dirty = true;
            Err(Status::TriesLeft(self.state.issuer_tries))
        }
    }

    fn personalising(&self) -> Result<(), Status> {
        if self.state.lifecycle != Lifecycle::Personalising {
            return Err(Status::ConditionsNotSatisfied);
        }
        if !self.session.issuer {
            return Err(Status::SecurityNotSatisfied);
        }
        Ok(())
    }

    /// `00 46 80|alg P2 00 00 00`: generate; `00 46 00 P2 00 00 00`: read the public key.
    fn generate(&mut self, c: &Command) -> Answer {
        let k = KeyRef::from_p2(c.p2).ok_or(Status::IncorrectP1P2)?;
        if c.p1 == 0x00 {
            let key = self.state.keys.get(&k).ok_or(Status::DataNotFound)?;
            return hex::decode(&key.spki).map_err(|_| Status::MemoryFailure);
        }
        let alg = KeyAlg::from_code(c.p1 & 0x7F).filter(|_| c.p1 & 0x80 != 0).ok_or(Status::IncorrectP1P2)?;
        self.personalising()?;
        let pkey: PKey<Private> = match alg {
            KeyAlg::Rsa2048 => Rsa::generate(2048).and_then(PKey::from_rsa),
            KeyAlg::EcP384 => {
                EcGroup::from_curve_name(Nid::SECP384R1).and_then(|g| EcKey::generate(&g)).and_then(PKey::from_ec_key)
            }
        }
        .map_err(|_| Status::MemoryFailure)?;
        let pkcs8 = pkey.private_key_to_pkcs8().map_err(|_| Status::MemoryFailure)?;
        let spki = pkey.public_key_to_der().map_err(|_| Status::MemoryFailure)?;
        self.state.keys.insert(k, StoredKey { alg, pkcs8: hex::encode(pkcs8), spki: hex::encode(&spki) });
        self.parsed.insert(k, pkey);
        self.dirty = true;
        Ok(spki)
    }

    fn update_binary(&mut self, c: &Command) -> Answer {
        if c.p1 & 0x80 != 0 {
            return Err(Status::IncorrectP1P2);
        }
        let (ef, capacity) = self.current_data()?;
        self.personalising()?;
        let offset = usize::from(u16::from_be_bytes([c.p1, c.p2]));
        let mut content = self.state.file(ef);
        if offset > content.len() {
            return Err(Status::WrongP1P2);
        }
        if offset + c.data.len() > capacity {
            return Err(Status::NotEnoughMemory);
        }
        let end = offset + c.data.len();
        if content.len() < end {
            content.resize(end, 0);
        }
        content[offset..end].copy_from_slice(&c.data);
        self.state.files.insert(ef.fid(), hex::encode(content));
        self.dirty = true;
        Ok(Vec::new())
    }

    fn erase_binary(&mut self, c: &Command) -> Answer {
        if c.p1 != 0 || c.p2 != 0 {
            return Err(Status::IncorrectP1P2);
        }
        let (ef, _) = self.current_data()?;
        self.personalising()?;
        if self.state.files.remove(&ef.fid()).is_some() {
            self.dirty = true;
        }
        Ok(Vec::new())
    }

    /// `80 2A 00 80` (key of the selected EF) or `80 2A 00 97|9A`: RSA keys pad the given
    /// DigestInfo with PKCS#1 v1.5; P-384 keys sign the given hash and answer a DER
    /// `ECDSA-Sig-Value`. Needs the key's own PIN verified in this session, in every lifecycle
    /// state: issuer authentication never lets anyone sign (the writer signs the CSR after it
    /// has set and verified the new PINs, or, on renewal, after the resident's VERIFY).
    fn sign(&mut self, c: &Command) -> Answer {
        if c.p1 != 0x00 {
            return Err(Status::IncorrectP1P2);
        }
        let k = if c.p2 == 0x80 {
            match self.session.current.map(Ef::kind) {
                Some(EfKind::Key(k)) => k,
                Some(_) => return Err(Status::IncompatibleFile),
                None => return Err(Status::NoCurrentEf),
            }
        } else {
            if !self.session.ap_selected {
                return Err(Status::ConditionsNotSatisfied);
            }
            KeyRef::from_p2(c.p2).ok_or(Status::IncorrectP1P2)?
        };
        let key = self.state.keys.get(&k).ok_or(Status::DataNotFound)?;
        if self.state.lifecycle == Lifecycle::Blank {
            return Err(Status::ConditionsNotSatisfied);
        }
        if !self.session.verified.contains(&k.pin()) {
            return Err(Status::SecurityNotSatisfied);
        }
        let alg = key.alg;
        let pkey = match self.parsed.entry(k) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(v) => {
                let der = hex::decode(&key.pkcs8).map_err(|_| Status::MemoryFailure)?;
                v.insert(PKey::private_key_from_pkcs8(&der).map_err(|_| Status::MemoryFailure)?)
            }
        };
        match alg {
            KeyAlg::Rsa2048 => {
                let rsa = pkey.rsa().map_err(|_| Status::MemoryFailure)?;
                if c.data.is_empty() || c.data.len() > rsa.size() as usize - 11 {
                    return Err(Status::IncorrectData);
                }
                let mut out = vec![0u8; rsa.size() as usize];
                let n = rsa.private_encrypt(&c.data, &mut out, Padding::PKCS1).map_err(|_| Status::MemoryFailure)?;
                out.truncate(n);
                Ok(out)
            }
            KeyAlg::EcP384 => {
                if c.data.is_empty() || c.data.len() > 64 {
                    return Err(Status::IncorrectData);
                }
                let ec = pkey.ec_key().map_err(|_| Status::MemoryFailure)?;
                let sig = openssl::ecdsa::EcdsaSig::sign(&c.data, &ec).map_err(|_| Status::MemoryFailure)?;
                sig.to_der().map_err(|_| Status::MemoryFailure)
            }
        }
    }

    fn get_status(&mut self, c: &Command) -> Answer {
        if c.p1 != 0x01 || c.p2 != 0x00 {
            return Err(Status::IncorrectP1P2);
        }
        Ok(self.state.status().encode())
    }

    fn open_personalisation(&mut self, c: &Command) -> Answer {
        if c.p1 != 0 || c.p2 != 0 {
            return Err(Status::IncorrectP1P2);
        }
        if !self.session.issuer {
            return Err(Status::SecurityNotSatisfied);
        }
        match self.state.lifecycle {
            Lifecycle::Personalising => {}
            Lifecycle::Blank => {
                self.state.lifecycle = Lifecycle::Personalising;
                self.dirty = true;
            }
            Lifecycle::Issued => {
                // Renewal. The resident consents: every PIN of a key on the card was verified
                // in this session. And the resident's keys do not survive the reopening: both
                // private keys and their certificates are destroyed first, so personalisation
                // never reaches a key the resident uses (C1).
                if self.state.keys.keys().any(|k| !self.session.verified.contains(&k.pin())) {
                    return Err(Status::SecurityNotSatisfied);
                }
                for k in [KeyRef::Auth, KeyRef::Sign] {
                    self.destroy_key(k);
                }
                self.state.lifecycle = Lifecycle::Personalising;
                self.dirty = true;
            }
        }
        Ok(Vec::new())
    }

    /// Destroys a private key and its certificate, and clears its certificate-presence flag
    /// in EF 0008 (byte 0 signature, byte 1 authentication).
    fn destroy_key(&mut self, k: KeyRef) {
        self.state.keys.remove(&k);
        self.parsed.remove(&k);
        self.state.files.remove(&k.cert().fid());
        let mut presence = self.state.file(Ef::Presence);
        let i = match k {
            KeyRef::Sign => 0,
            KeyRef::Auth => 1,
        };
        if let Some(b) = presence.get_mut(i) {
            *b = 0;
            self.state.files.insert(Ef::Presence.fid(), hex::encode(presence));
        }
        self.dirty = true;
    }

    /// Closes personalisation. Every key present needs its certificate, its CA certificate
    /// and its PIN; the authentication key is mandatory; EF 0006 and 0008 must be written.
    fn close_personalisation(&mut self, c: &Command) -> Answer {
        if c.p1 != 0 || c.p2 != 0 {
            return Err(Status::IncorrectP1P2);
        }
        self.personalising()?;
        if !self.state.keys.contains_key(&KeyRef::Auth) {
            return Err(Status::ConditionsNotSatisfied);
        }
        for k in self.state.keys.keys() {
            if self.state.file(k.cert()).is_empty()
                || self.state.file(k.ca_cert()).is_empty()
                || !self.state.pins.contains_key(&k.pin())
            {
                return Err(Status::ConditionsNotSatisfied);
            }
        }
        if self.state.file(Ef::TokenInfo).is_empty() || self.state.file(Ef::Presence).is_empty() {
            return Err(Status::ConditionsNotSatisfied);
        }
        self.state.lifecycle = Lifecycle::Issued;
        self.session.current = None;
        self.dirty = true;
        Ok(Vec::new())
    }

    /// Wipes an interrupted or abandoned personalisation back to a blank card.
    fn wipe(&mut self, c: &Command) -> Answer {
        if c.p1 != 0 || c.p2 != 0 {
            return Err(Status::IncorrectP1P2);
        }
        self.personalising()?;
        self.state.files.clear();
        self.state.keys.clear();
        self.parsed.clear();
        self.state.pins.clear();
        self.state.lifecycle = Lifecycle::Blank;
        self.session = Session { ap_selected: true, issuer: true, ..Session::default() };
        self.dirty = true;
        Ok(Vec::new())
    }
}

fn new_pin(pin: &[u8], tries: u8) -> StoredPin {
    let salt: [u8; 16] = rand::random();
    StoredPin { salt: hex::encode(salt), hash: hex::encode(pin_hash(&salt, pin)), tries_left: tries }
}

fn pin_hash(salt: &[u8], pin: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(pin);
    h.finalize().into()
}

fn pin_matches(stored: &StoredPin, pin: &[u8]) -> bool {
    let (Ok(salt), Ok(hash)) = (hex::decode(&stored.salt), hex::decode(&stored.hash)) else { return false };
    let got = pin_hash(&salt, pin);
    hash.len() == got.len() && openssl::memcmp::eq(&hash, &got)
}

/// A card's own issuer key, diversified from the issuing authority's master:
/// `HMAC-SHA256(master, "jpki-card-issuer-v1" ‖ serial)`. The card stores only this; the
/// writer derives it from the master for the card in front of it.
pub fn card_issuer_key(master: &[u8], serial: &[u8]) -> Result<[u8; 32], openssl::error::ErrorStack> {
    let mac = issuer_mac(master, ISSUER_KEY_LABEL, serial)?;
    let mut key = [0u8; 32];
    key.copy_from_slice(&mac);
    Ok(key)
}

/// The issuer's answer to a challenge: HMAC-SHA256(card's issuer key, challenge ‖ card serial).
pub fn issuer_mac(key: &[u8], challenge: &[u8], serial: &[u8]) -> Result<Vec<u8>, openssl::error::ErrorStack> {
    let k = PKey::hmac(key)?;
    let mut s = openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &k)?;
    s.update(challenge)?;
    s.update(serial)?;
    s.sign_to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apdu(a: &mut Applet, hexs: &str) -> String {
        let b = hex::decode(hexs.replace(' ', "")).unwrap();
        hex::encode_upper(a.process(&b))
    }

    /// EXTERNAL AUTHENTICATE with the card key derived from `master`; the status word.
    fn issuer_try(a: &mut Applet, master: &[u8; 32]) -> String {
        let r = a.process(&[0, 0x84, 0, 0, CHALLENGE_LEN as u8]);
        assert_eq!(&r[CHALLENGE_LEN..], &[0x90, 0]);
        let serial = hex::decode(&a.state().serial).unwrap();
        let mac = issuer_mac(&card_issuer_key(master, &serial).unwrap(), &r[..CHALLENGE_LEN], &serial).unwrap();
        let mut c = vec![0, 0x82, 0, 0, mac.len() as u8];
        c.extend_from_slice(&mac);
        hex::encode_upper(a.process(&c))
    }

    fn issuer(a: &mut Applet, master: &[u8; 32]) {
        assert_eq!(issuer_try(a, master), "9000");
    }

    const DIGEST_INFO: &str =
        "3031300D0609608648016503040201050004201111111111111111111111111111111111111111111111111111111111111111";

    /// A card issued with both RSA keys, auth PIN 1234 and signature password ABC123, as the
    /// writer makes it: keys, PINs set and verified, CSR signatures, files, close.
    fn issued_card(master: &[u8; 32]) -> Applet {
        let mut a = Applet::new(CardState::blank(master).unwrap());
        assert_eq!(apdu(&mut a, "00A4040C0AD392F000260100000001"), "9000");
        issuer(&mut a, master);
        assert_eq!(apdu(&mut a, "80100000"), "9000");
        for p2 in ["97", "9A"] {
            assert!(apdu(&mut a, &format!("004681{p2}000000")).ends_with("9000"));
        }
        // The issuer alone cannot sign, even with the keys it just generated.
        assert_eq!(apdu(&mut a, &format!("802A009733{DIGEST_INFO}00")), "6982");
        for (fid, pin) in [("0018", "31323334"), ("001B", "414243313233")] {
            assert_eq!(apdu(&mut a, &format!("00A4020C02{fid}")), "9000");
            assert_eq!(apdu(&mut a, &format!("002C0280{:02X}{pin}", pin.len() / 2)), "9000");
            assert_eq!(apdu(&mut a, &format!("00200080{:02X}{pin}", pin.len() / 2)), "9000");
        }
        for p2 in ["97", "9A"] {
            assert!(apdu(&mut a, &format!("802A00{p2}33{DIGEST_INFO}00")).ends_with("9000"));
        }
        for fid in ["0001", "0002", "000A", "000B"] {
            assert_eq!(apdu(&mut a, &format!("00A4020C02{fid}")), "9000");
            assert_eq!(apdu(&mut a, "00D6000004308200AB"), "9000");
        }
        for (fid, data) in [("0006", "AA".repeat(160)), ("0008", "8F8F00".into())] {
            assert_eq!(apdu(&mut a, &format!("00A4020C02{fid}")), "9000");
            assert_eq!(apdu(&mut a, &format!("00D60000{:02X}{data}", data.len() / 2)), "9000");
        }
        assert_eq!(apdu(&mut a, "80120000"), "9000");
        a.reset();
        a
    }

    #[test]
    fn the_issuer_session_never_signs_with_a_resident_key() {
        let master = [3u8; 32];
        let mut a = issued_card(&master);
        let auth_spki = a.state().keys[&KeyRef::Auth].spki.clone();
        // C1: issuer authentication, OPEN PERSONALISATION, COMPUTE SIGNATURE without VERIFY.
        assert_eq!(apdu(&mut a, "00A4040C0AD392F000260100000001"), "9000");
        issuer(&mut a, &master);
        assert_eq!(apdu(&mut a, "80100000"), "6982", "reopening needs the resident's PINs");
        assert_eq!(a.state().lifecycle, Lifecycle::Issued);
        for p2 in ["97", "9A"] {
            assert_eq!(apdu(&mut a, &format!("802A00{p2}33{DIGEST_INFO}00")), "6982");
        }
        assert_eq!(apdu(&mut a, "00A4020C02001A"), "9000");
        assert_eq!(apdu(&mut a, &format!("802A008033{DIGEST_INFO}00")), "6982");
        assert_eq!(apdu(&mut a, "80120000"), "6985");
        // The authentication PIN alone does not reopen a card that has a signature key.
        assert_eq!(apdu(&mut a, "00A4020C020018"), "9000");
        assert_eq!(apdu(&mut a, "002000800431323334"), "9000");
        assert_eq!(apdu(&mut a, "80100000"), "6982");
        assert_eq!(apdu(&mut a, &format!("802A009A33{DIGEST_INFO}00")), "6982");
        // Renewal: the resident verified both; reopening destroys both keys and certificates.
        assert_eq!(apdu(&mut a, "00A4020C02001B"), "9000");
        assert_eq!(apdu(&mut a, "0020008006414243313233"), "9000");
        assert_eq!(apdu(&mut a, "80100000"), "9000");
        assert!(a.take_dirty());
        let st = a.state().status();
        assert_eq!((st.lifecycle, st.auth_key, st.sign_key), (Lifecycle::Personalising, None, None));
        assert!(!st.files.contains(&Ef::AuthCert) && !st.files.contains(&Ef::SignCert));
        assert_eq!(apdu(&mut a, &format!("802A009A33{DIGEST_INFO}00")), "6A88");
        assert_eq!(apdu(&mut a, "0046009700 0000".replace(' ', "").as_str()), "6A88");
        // New keys: signed with the PINs verified in this session (the CSR's proof of possession).
        let spki = apdu(&mut a, "0046819700 0000".replace(' ', "").as_str());
        assert!(spki.ends_with("9000") && !spki.starts_with(&auth_spki.to_uppercase()));
        assert!(apdu(&mut a, &format!("802A009733{DIGEST_INFO}00")).ends_with("9000"));
        // After a reset, personalising or not, the issuer alone cannot sign with it.
        a.reset();
        assert_eq!(apdu(&mut a, "00A4040C0AD392F000260100000001"), "9000");
        issuer(&mut a, &master);
        assert_eq!(apdu(&mut a, "80100000"), "9000");
        assert_eq!(apdu(&mut a, &format!("802A009733{DIGEST_INFO}00")), "6982");
    }

    #[test]
    fn resetting_the_signature_password_costs_the_signature_key() {
        let master = [4u8; 32];
        let mut a = issued_card(&master);
        assert_eq!(apdu(&mut a, "00A4040C0AD392F000260100000001"), "9000");
        issuer(&mut a, &master);
        // The clerk's reset of the authentication PIN keeps the key (review finding M7, open).
        assert_eq!(apdu(&mut a, "00A4020C020018"), "9000");
        assert_eq!(apdu(&mut a, "002C02800439393939"), "9000");
        assert!(a.state().keys.contains_key(&KeyRef::Auth));
        // A new signature password (or an unblock) destroys the signature key first: the
        // issuer can set a password but never sign with the resident's key.
        assert_eq!(apdu(&mut a, "00A4020C02001B"), "9000");
        assert_eq!(apdu(&mut a, "002C0280035A5A5A"), "6A80", "a malformed password changes nothing");
        assert!(a.state().keys.contains_key(&KeyRef::Sign));
        assert_eq!(apdu(&mut a, "002C0280065A5A5A313233"), "9000");
        assert!(!a.state().keys.contains_key(&KeyRef::Sign));
        let st = a.state().status();
        assert!(!st.files.contains(&Ef::SignCert) && st.files.contains(&Ef::SignCaCert));
        assert_eq!(a.state().file(Ef::Presence), [0x00, 0x8F, 0x00]);
        assert_eq!(apdu(&mut a, "00200080065A5A5A313233"), "9000");
        assert_eq!(apdu(&mut a, &format!("802A009A33{DIGEST_INFO}00")), "6A88");
        assert_eq!(apdu(&mut a, "00A4020C020001"), "6A82");
        assert_eq!(apdu(&mut a, "002C0380"), "9000");
        assert_eq!(a.state().lifecycle, Lifecycle::Issued);
    }

    #[test]
    fn each_card_holds_its_own_issuer_key() {
        let master = [5u8; 32];
        let mut a = Applet::new(CardState::blank(&master).unwrap());
        let b = CardState::blank(&master).unwrap();
        assert_ne!(a.state().serial, b.serial);
        assert_ne!(a.state().issuer_key, b.issuer_key);
        assert_ne!(a.state().issuer_key, hex::encode(master), "the master is never on the card");
        let serial_a = hex::decode(&a.state().serial).unwrap();
        assert_eq!(hex::encode(card_issuer_key(&master, &serial_a).unwrap()), a.state().issuer_key);
        // A MAC for card A's challenge and serial, under card B's key: refused, a try used.
        assert_eq!(apdu(&mut a, "00A4040C0AD392F000260100000001"), "9000");
        let r = a.process(&[0, 0x84, 0, 0, CHALLENGE_LEN as u8]);
        let key_b = hex::decode(&b.issuer_key).unwrap();
        let mac = issuer_mac(&key_b, &r[..CHALLENGE_LEN], &serial_a).unwrap();
        assert_eq!(apdu(&mut a, &format!("00820000 20 {}", hex::encode(mac)).replace(' ', "")), "63C9");
        // The master itself is not a card key either.
        let r = a.process(&[0, 0x84, 0, 0, CHALLENGE_LEN as u8]);
        let mac = issuer_mac(&master, &r[..CHALLENGE_LEN], &serial_a).unwrap();
        assert_eq!(apdu(&mut a, &format!("00820000 20 {}", hex::encode(mac)).replace(' ', "")), "63C8");
        // The derived key works (and restores the counter); ten wrong MACs block for good.
        issuer(&mut a, &master);
        assert_eq!(a.state().issuer_tries, ISSUER_AUTH_TRIES);
        for left in (0..ISSUER_AUTH_TRIES).rev() {
            let _ = a.process(&[0, 0x84, 0, 0, CHALLENGE_LEN as u8]);
            assert_eq!(apdu(&mut a, &format!("00820000 20 {}", "00".repeat(32))), format!("63C{left:X}"));
        }
        assert_eq!(issuer_try(&mut a, &master), "6983");
        a.reset();
        assert_eq!(issuer_try(&mut a, &master), "6983", "the counter survives a power cycle");
    }

    #[test]
    fn the_open_source_contract_and_the_lifecycle() {
        let key = [7u8; 32];
        let mut a = Applet::new(CardState::blank(&key).unwrap());
        // Unknown AIDs, INS and CLA, as OpenSC's other drivers probe them.
        assert_eq!(apdu(&mut a, "00A4040C06D27600012401"), "6A82");
        assert_eq!(apdu(&mut a, "00CADF3005"), "6D00");
        assert_eq!(apdu(&mut a, "B0A4000000"), "6E00");
        assert_eq!(apdu(&mut a, "00A4040C0AD392F000260100000001"), "9000");
        // Blank card: no EFs, personalisation needs the issuer.
        assert_eq!(apdu(&mut a, "00A4020C02000A"), "6A82");
        assert_eq!(apdu(&mut a, "8010000000"), "6982");
        // A wrong issuer MAC costs a try.
        let _ = a.process(&[0, 0x84, 0, 0, CHALLENGE_LEN as u8]);
        assert_eq!(apdu(&mut a, &format!("00820000 20 {}", "00".repeat(32))), "63C9");
        assert_eq!(a.state().issuer_tries, ISSUER_AUTH_TRIES - 1);
        // Replaying without a fresh challenge is refused.
        assert_eq!(apdu(&mut a, &format!("00820000 20 {}", "00".repeat(32))), "6985");
        issuer(&mut a, &key);
        assert_eq!(a.state().issuer_tries, ISSUER_AUTH_TRIES);
        assert_eq!(apdu(&mut a, "80100000"), "9000");
        assert!(a.take_dirty());
        // Generate the auth key, write a cert, set the PIN.
        let spki = a.process(&hex::decode("0046819700 0000".replace(' ', "")).unwrap());
        assert_eq!(&spki[spki.len() - 2..], &[0x90, 0]);
        assert_eq!(a.process(&hex::decode("0046009700 0000".replace(' ', "")).unwrap()), spki);
        let cert = {
            let mut c = vec![0x30, 0x82, 0x01, 0x00];
            c.extend(std::iter::repeat_n(0xAB, 0x100));
            c
        };
        assert_eq!(apdu(&mut a, "00A4020C02000A"), "9000");
        let mut upd = vec![0, 0xD6, 0, 0, 0, 0x01, 0x04];
        upd.extend_from_slice(&cert);
        assert_eq!(a.process(&upd), [0x90, 0]);
        assert_eq!(apdu(&mut a, "00A4020C02000B"), "9000");
        assert_eq!(a.process(&upd), [0x90, 0]);
        assert_eq!(apdu(&mut a, "00A4020C020018"), "9000");
        assert_eq!(apdu(&mut a, "002C028003313233"), "6A80", "3-digit PIN refused");
        assert_eq!(apdu(&mut a, "002C02800431323334"), "9000");
        // Not closable yet: EF 0006/0008 missing.
        assert_eq!(apdu(&mut a, "80120000"), "6985");
        for (fid, data) in [("0006", "AA".repeat(160)), ("0008", "008F00".into())] {
            assert_eq!(apdu(&mut a, &format!("00A4020C02{fid}")), "9000");
            assert_eq!(apdu(&mut a, &format!("00D60000{:02X}{data}", data.len() / 2)), "9000");
        }
        assert_eq!(apdu(&mut a, "80120000"), "9000");
        // Issued: personalisation closed.
        assert_eq!(apdu(&mut a, "00A4020C02000A"), "9000");
        assert_eq!(apdu(&mut a, "00D6000001AA"), "6985");
        // READ BINARY of the 4-byte header and the rest.
        assert_eq!(apdu(&mut a, "00B0000004"), "308201009000");
        let r = a.process(&hex::decode("00B0000000").unwrap());
        assert_eq!(r.len(), 258);
        // Empty VERIFY: tries; wrong PIN: 63C2; right: 9000 and still 63C3 when asked.
        assert_eq!(apdu(&mut a, "00A4020C020018"), "9000");
        assert_eq!(apdu(&mut a, "00200080"), "63C3");
        assert_eq!(apdu(&mut a, "0020008004 39393939"), "63C2");
        assert_eq!(apdu(&mut a, "0020008004 31323334"), "9000");
        assert_eq!(apdu(&mut a, "00200080"), "63C3");
        // Sign with the auth key over a DigestInfo; openssl verifies.
        let di = "3031300D060960864801650304020105000420".to_string() + &"11".repeat(32);
        assert_eq!(apdu(&mut a, "00A4020C020017"), "9000");
        let sig = a.process(&hex::decode(format!("802A0080 33 {di} 00").replace(' ', "")).unwrap());
        assert_eq!(sig.len(), 258);
        let pk = PKey::public_key_from_der(&spki[..spki.len() - 2]).unwrap();
        let mut out = vec![0u8; 256];
        let n = pk.rsa().unwrap().public_decrypt(&sig[..256], &mut out, Padding::PKCS1).unwrap();
        assert_eq!(hex::encode_upper(&out[..n]), di);
        // Session gone after reset: signing needs the PIN again.
        a.reset();
        assert_eq!(apdu(&mut a, "00A4040C0AD392F000260100000001"), "9000");
        assert_eq!(apdu(&mut a, &format!("802A009733{di}00")), "6982");
        // Three wrong PINs block; the issuer resets the counter.
        assert_eq!(apdu(&mut a, "00A4020C020018"), "9000");
        for left in ["63C2", "63C1", "63C0"] {
            assert_eq!(apdu(&mut a, "002000800439393939"), left);
        }
        assert_eq!(apdu(&mut a, "002000800431323334"), "6983");
        assert_eq!(apdu(&mut a, "00200080"), "63C0");
        assert_eq!(apdu(&mut a, "002C0380"), "6982");
        issuer(&mut a, &key);
        assert_eq!(apdu(&mut a, "00A4020C020018"), "9000");
        assert_eq!(apdu(&mut a, "002C0380"), "9000");
        assert_eq!(apdu(&mut a, "00200080"), "63C3");
        // Malformed APDUs get 6700, never a panic.
        assert_eq!(apdu(&mut a, "00B0"), "6700");
        assert_eq!(apdu(&mut a, "00D60000050102"), "6700");
    }

    #[test]
    fn p384_keys_sign_hashes_that_openssl_verifies() {
        let key = [9u8; 32];
        let mut a = Applet::new(CardState::blank(&key).unwrap());
        assert_eq!(apdu(&mut a, "00A4040C0AD392F000260100000001"), "9000");
        issuer(&mut a, &key);
        assert_eq!(apdu(&mut a, "80100000"), "9000");
        // GENERATE with alg 02 (P-384) for the signature key.
        let spki = a.process(&hex::decode("0046829A000000").unwrap());
        assert_eq!(&spki[spki.len() - 2..], &[0x90, 0]);
        let pk = PKey::public_key_from_der(&spki[..spki.len() - 2]).unwrap();
        assert_eq!(pk.bits(), 384);
        assert_eq!(a.state().status().sign_key, Some(KeyAlg::EcP384));
        // Personalising: the issuer alone may not sign; after the new signature password is
        // set and verified it may (proof of possession); the card answers DER.
        let hash = openssl::sha::sha384(b"certification request info");
        let mut c = vec![0x80, 0x2A, 0x00, 0x9A, hash.len() as u8];
        c.extend_from_slice(&hash);
        c.push(0);
        assert_eq!(a.process(&c), [0x69, 0x82]);
        assert_eq!(apdu(&mut a, "00A4020C02001B"), "9000");
        assert_eq!(apdu(&mut a, "002C028006414243313233"), "9000");
        assert_eq!(apdu(&mut a, "0020008006414243313233"), "9000");
        let sig = a.process(&c);
        assert_eq!(&sig[sig.len() - 2..], &[0x90, 0]);
        let der = openssl::ecdsa::EcdsaSig::from_der(&sig[..sig.len() - 2]).unwrap();
        assert!(der.verify(&hash, &pk.ec_key().unwrap()).unwrap());
        // An oversized "hash" is refused.
        let mut c = vec![0x80, 0x2A, 0x00, 0x9A, 65];
        c.extend_from_slice(&[1; 65]);
        assert_eq!(a.process(&c), [0x6A, 0x80]);
    }

    #[test]
    fn state_files_round_trip_and_corruption_is_named() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("card.json");
        let s = CardState::blank(&[1; 32]).unwrap();
        // An older, world-readable file is replaced by a private one.
        std::fs::write(&p, b"{}").unwrap();
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
        s.save(&p).unwrap();
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&p).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600, "the state file holds private keys: mode {mode:o}");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1, "no temporary file left");
        let back = CardState::load(&p).unwrap();
        assert_eq!(back.serial, s.serial);
        assert!(!format!("{back:?}").contains(&s.issuer_key), "Debug must not print the issuer key");
        std::fs::write(&p, b"{not json").unwrap();
        assert!(matches!(CardState::load(&p), Err(StateError::Corrupt { .. })));
        let mut bad = serde_json::to_value(&s).unwrap();
        bad["files"] = serde_json::json!({"23": "00"});
        std::fs::write(&p, serde_json::to_vec(&bad).unwrap()).unwrap();
        let e = CardState::load(&p).unwrap_err().to_string();
        assert!(e.contains("EF 0017 is not a data EF"), "{e}");
        // A version-1 file held the shared master key: refused by name.
        let mut old = serde_json::to_value(&s).unwrap();
        old["version"] = serde_json::json!(1);
        std::fs::write(&p, serde_json::to_vec(&old).unwrap()).unwrap();
        let e = CardState::load(&p).unwrap_err().to_string();
        assert!(e.contains("shared master issuer key"), "{e}");
    }
}
