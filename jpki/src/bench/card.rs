//! `jpki bench card`: the card path through the real PC/SC stack (pcscd + vpcd + `jpki
//! card-sim` on reader "Virtual PCD 00 01"), printed as a Markdown table:
//!
//! 1. a full card issuance (`card::writer::issue`, the same code as `jpki card issue`): APDUs
//!    and wall time, split into on-card key generation, the CA's part (here [`BenchCa`], a
//!    throwaway OpenSSL CA in process, so neither the identity network nor the CA service's
//!    HTTPS is measured) and the rest;
//! 2. the round trip of one APDU through pcscd (GET CARD STATUS);
//! 3. signatures per second with the card's authentication key: through our client in one
//!    session, and through `pkcs11-tool` (one process per signature, as a script would), with
//!    in-process OpenSSL RSA-2048 signing of the same DigestInfo as the reference.
//!
//! Needs pcscd with the vpcd readers: `cargo xtask bench card` starts it.

use std::process::{Command, Stdio};

use crate::proc::Kill;
use std::time::{Duration, Instant};

use std::cell::Cell;

use anyhow::{Context, Result, anyhow, ensure};
use card::jpki::{KeyRef, PinRef};
use card::reader::{Jpki, Reader};
use card::writer::{self, CaClient, CaError, CardCert, CardCerts, CardRequest, IssuerPurpose, Mode, Order};
use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{AuthorityKeyIdentifier, BasicConstraints, KeyUsage, SubjectKeyIdentifier};
use openssl::x509::{X509, X509NameBuilder, X509Req};

use zeroize::Zeroizing;

const READER: &str = "Virtual PCD 00 01";
const ISSUANCES: usize = 10;
const APDU_ROUNDS: usize = 500;
const SIGNATURES: usize = 200;
const PKCS11_RUNS: usize = 10;

struct TestCa {
    key: PKey<Private>,
    cert: X509,
}

impl TestCa {
    fn new() -> Result<TestCa> {
        let key = PKey::from_rsa(Rsa::generate(2048)?)?;
        let mut name = X509NameBuilder::new()?;
        name.append_entry_by_text("C", "JP")?;
        name.append_entry_by_text("O", "JPKI-BENCH")?;
        name.append_entry_by_text("CN", "bench issuing CA")?;
        let name = name.build();
        let mut b = X509::builder()?;
        b.set_version(2)?;
        let sn: Asn1Integer = BigNum::from_u32(1)?.to_asn1_integer()?;
        b.set_serial_number(&sn)?;
        b.set_subject_name(&name)?;
        b.set_issuer_name(&name)?;
        b.set_pubkey(&key)?;
        let (from, to): (Asn1Time, Asn1Time) = (Asn1Time::days_from_now(0)?, Asn1Time::days_from_now(3650)?);
        b.set_not_before(&from)?;
        b.set_not_after(&to)?;
        b.append_extension(BasicConstraints::new().critical().ca().build()?)?;
        b.append_extension(KeyUsage::new().critical().key_cert_sign().crl_sign().build()?)?;
        let ski = SubjectKeyIdentifier::new().build(&b.x509v3_context(None, None))?;
        b.append_extension(ski)?;
        b.sign(&key, MessageDigest::sha256())?;
        Ok(TestCa { key, cert: b.build() })
    }

    fn issue(&self, csr: &[u8], serial: u32, cn: &str) -> Result<Vec<u8>> {
        let req = X509Req::from_der(csr)?;
        let pk = req.public_key()?;
        ensure!(req.verify(&pk)?, "CSR signature does not verify");
        let mut name = X509NameBuilder::new()?;
        name.append_entry_by_text("C", "JP")?;
        name.append_entry_by_text("L", "Tokyo-to")?;
        name.append_entry_by_text("CN", cn)?;
        let mut b = X509::builder()?;
        b.set_version(2)?;
        let sn: Asn1Integer = BigNum::from_u32(serial)?.to_asn1_integer()?;
        b.set_serial_number(&sn)?;
        b.set_subject_name(&name.build())?;
        b.set_issuer_name(self.cert.subject_name())?;
        b.set_pubkey(&pk)?;
        let (from, to): (Asn1Time, Asn1Time) = (Asn1Time::days_from_now(0)?, Asn1Time::days_from_now(1825)?);
        b.set_not_before(&from)?;
        b.set_not_after(&to)?;
        b.append_extension(KeyUsage::new().critical().digital_signature().build()?)?;
        let aki = AuthorityKeyIdentifier::new().keyid(true).build(&b.x509v3_context(Some(&self.cert), None))?;
        b.append_extension(aki)?;
        b.sign(&self.key, MessageDigest::sha256())?;
        Ok(b.build().to_der()?)
    }
}

/// The benchmark's CA service: the issuer master and [`TestCa`], in process.
struct BenchCa {
    master: [u8; 32],
    ca: TestCa,
    /// The next certificate serial.
    serial: Cell<u32>,
}

impl CaClient for BenchCa {
    async fn issuer_auth(
        &self,
        _: IssuerPurpose,
        _: Option<&str>,
        serial: &[u8],
        challenge: &[u8],
    ) -> Result<Vec<u8>, CaError> {
        let failed = |e: openssl::error::ErrorStack| CaError::Failed(e.to_string());
        let key = Zeroizing::new(card::applet::card_issuer_key(&self.master, serial).map_err(failed)?);
        card::applet::issuer_mac(key.as_slice(), challenge, serial).map_err(failed)
    }

    async fn issue(&self, req: &CardRequest) -> Result<CardCerts, CaError> {
        let mut certificates = Vec::new();
        for (kind, csr) in [(KeyRef::Auth, &req.authentication_csr), (KeyRef::Sign, &req.signature_csr)] {
            let Some(csr) = csr else { continue };
            let n = self.serial.get();
            self.serial.set(n + 1);
            let der = self.ca.issue(csr, n, &format!("BENCH{n:08}")).map_err(|e| CaError::Failed(e.to_string()))?;
            certificates.push(CardCert { kind, serial: format!("{n:x}"), der });
        }
        let chain = vec![self.ca.cert.to_der().map_err(|e| CaError::Failed(e.to_string()))?];
        Ok(CardCerts { certificates, chain })
    }
}

/// Runs the benchmark and prints the table.
pub async fn run() -> Result<()> {
    ensure!(
        Reader::list().is_ok_and(|r| r.iter().any(|n| n == READER)),
        "pcscd with the vpcd readers is not running: use `cargo xtask bench card`, which starts it"
    );
    let dir = tempfile::tempdir()?;
    let issuer_key: [u8; 32] = rand::random();
    let _card = Kill(
        Command::new(std::env::current_exe()?)
            .args(["card-sim", "--port", "35964", "--state"])
            .arg(dir.path().join("card.json"))
            .env("JPKI_CARD_ISSUER_KEY", hex::encode(issuer_key))
            .stderr(Stdio::null())
            .spawn()?,
    );
    let reader = Reader::open(READER)?;
    reader.wait_card(Duration::from_secs(10))?;
    let ca = BenchCa { master: issuer_key, ca: TestCa::new()?, serial: Cell::new(10) };
    let order = Order {
        resident: "00000000000".into(),
        card_expiry: "2036-12-31".into(),
        env: "prod".into(),
        alg: "rsa2048".into(),
        no_signature: false,
        auth_pin: Some(Zeroizing::new("1234".into())),
        sign_pin: Some(Zeroizing::new("BENCH123".into())),
    };
    let wait = Duration::from_secs(10);

    // 1. Full issuances.
    let (mut total, mut keygen, mut ca_ms, mut rest, mut apdus) = (vec![], vec![], vec![], vec![], 0);
    for _ in 0..ISSUANCES {
        let r = writer::issue(READER, wait, &order, Mode::Issue { resume: false }, &ca).await?;
        total.push(r.total.as_secs_f64() * 1e3);
        keygen.push(r.keygen.as_secs_f64() * 1e3);
        ca_ms.push(r.ca.as_secs_f64() * 1e3);
        rest.push((r.total - r.keygen - r.ca).as_secs_f64() * 1e3);
        apdus = r.apdus;
        // Back to blank for the next round (not timed).
        let mut conn = reader.connect()?;
        {
            let tx = conn.transaction().map_err(|e| anyhow!("{e}"))?;
            let mut j = Jpki::new(&tx);
            j.select_ap()?;
            let st = j.status()?;
            // Reopening an issued card needs the resident's PINs (and destroys the keys).
            j.verify(PinRef::Auth, "1234")?;
            j.verify(PinRef::Sign, "BENCH123")?;
            let challenge = j.get_challenge()?;
            j.external_authenticate(&ca.issuer_auth(IssuerPurpose::Wipe, None, &st.serial, &challenge).await?)?;
            j.open_personalisation()?;
            j.wipe()?;
        }
        conn.finish()?;
    }
    // Issue once more and keep it, for the signature rows.
    let kept = writer::issue(READER, wait, &order, Mode::Issue { resume: false }, &ca).await?;
    let auth = kept.certificates.get(KeyRef::Auth).ok_or_else(|| anyhow!("no authentication certificate"))?;
    let auth_cert = X509::from_der(&auth.der)?;

    // 2 and 3: one session, PIN verified once.
    let digest_info = {
        let mut d = card::reader::SHA256_DIGEST_INFO_PREFIX.to_vec();
        d.extend_from_slice(&openssl::sha::sha256(b"bench document"));
        d
    };
    let (apdu_us, card_sigs) = {
        let conn = reader.connect()?;
        let mut j = Jpki::new(&conn);
        j.select_ap()?;
        let mut lat = Vec::with_capacity(APDU_ROUNDS);
        for _ in 0..APDU_ROUNDS {
            let t = Instant::now();
            j.status()?;
            lat.push(t.elapsed().as_secs_f64() * 1e6);
        }
        j.verify(PinRef::Auth, "1234")?;
        let t = Instant::now();
        let mut last = Vec::new();
        for _ in 0..SIGNATURES {
            last = j.sign(KeyRef::Auth, &digest_info)?;
        }
        let rate = SIGNATURES as f64 / t.elapsed().as_secs_f64();
        let pk = auth_cert.public_key()?;
        let mut v = openssl::sign::Verifier::new(MessageDigest::sha256(), &pk)?;
        v.update(b"bench document")?;
        ensure!(v.verify(&last)?, "the card's signature does not verify");
        drop(j);
        conn.finish()?;
        (super::ca::median(lat), rate)
    };
    // Reference: OpenSSL in-process, same key size and padding.
    let reference = {
        let k = Rsa::generate(2048)?;
        let mut out = vec![0u8; 256];
        let t = Instant::now();
        for _ in 0..SIGNATURES {
            k.private_encrypt(&digest_info, &mut out, openssl::rsa::Padding::PKCS1)?;
        }
        SIGNATURES as f64 / t.elapsed().as_secs_f64()
    };
    // pkcs11-tool: one process per signature.
    std::fs::write(dir.path().join("msg"), b"bench document")?;
    let mut p11 = Vec::new();
    for _ in 0..PKCS11_RUNS {
        let t = Instant::now();
        let o = Command::new("pkcs11-tool")
            .args([
                "--token-label",
                "JPKI (User Authentication PIN)",
                "--login",
                "--pin",
                "1234",
                "--sign",
                "--id",
                "01",
            ])
            .args(["-m", "SHA256-RSA-PKCS", "-i"])
            .arg(dir.path().join("msg"))
            .arg("-o")
            .arg(dir.path().join("sig"))
            .env("OPENSC_DRIVER", "jpki")
            .output()
            .context("cannot run pkcs11-tool")?;
        ensure!(o.status.success(), "pkcs11-tool: {}", String::from_utf8_lossy(&o.stderr));
        p11.push(t.elapsed().as_secs_f64());
    }
    let p11_rate = 1.0 / super::ca::median(p11.clone());

    println!("## card through pcscd + vpcd (virtual card, RSA-2048)\n");
    println!("| measurement | median | min | max |");
    println!("|---|---:|---:|---:|");
    let row = |name: &str, v: &[f64], unit: &str| {
        let mut s = v.to_vec();
        s.sort_by(f64::total_cmp);
        println!("| {name} | {:.1} {unit} | {:.1} {unit} | {:.1} {unit} |", s[s.len() / 2], s[0], s[s.len() - 1]);
    };
    row(&format!("full issuance, {ISSUANCES} runs, {apdus} APDUs"), &total, "ms");
    row("  on-card key generation (2 × RSA-2048)", &keygen, "ms");
    row("  CA (throwaway in-process OpenSSL CA)", &ca_ms, "ms");
    row("  everything else: APDUs, CSRs, writes (target ≤ 500 ms)", &rest, "ms");
    println!("| one APDU round trip through pcscd ({APDU_ROUNDS} × GET CARD STATUS) | {apdu_us:.0} µs | | |");
    println!("\n| signatures (RSA-2048 PKCS#1 v1.5) | per second | vs OpenSSL in-process |");
    println!("|---|---:|---:|");
    println!("| OpenSSL in-process (reference) | {reference:.0} | 100% |");
    println!(
        "| our client, one session, PIN once ({SIGNATURES} signatures) | {card_sigs:.0} | {:.0}% |",
        100.0 * card_sigs / reference
    );
    println!(
        "| pkcs11-tool, one process per signature ({PKCS11_RUNS} runs, median) | {p11_rate:.1} | {:.1}% |",
        100.0 * p11_rate / reference
    );
    Ok(())
}
