//! The card part of the main job: bring up the PC/SC stack if it is not running, insert a
//! virtual JPKI card (`jpki card-sim` behind vpcd) and issue it at the window through the
//! reader, then let OpenSC read it and sign with it, and openssl verify the signature.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::proc::Kill;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use card::reader::Reader;

/// The reader the demo uses (vpcd slot 0, port 35963).
pub const READER: &str = "Virtual PCD 00 00";
/// The PINs the resident chooses in the demo.
pub const AUTH_PIN: &str = "1234";
/// Signature password.
pub const SIGN_PIN: &str = "HANAKO2026";

fn readers_ready() -> bool {
    Reader::list().is_ok_and(|r| r.iter().any(|n| n == READER))
}

/// The PC/SC stack and the inserted virtual card; both go away on drop.
#[derive(Debug)]
pub struct VirtualCard {
    _card: Kill,
    _pcscd: Option<Kill>,
}

impl VirtualCard {
    /// Starts pcscd unless it already serves the vpcd readers, then inserts a blank card.
    pub fn insert(dir: &Path, issuer_key: [u8; 32]) -> Result<VirtualCard> {
        Self::insert_card(dir, issuer_key, "card.json")
    }

    /// [`Self::insert`] for another card (its own state file `state`).
    pub fn insert_card(dir: &Path, issuer_key: [u8; 32], state: &str) -> Result<VirtualCard> {
        let pcscd = if readers_ready() {
            println!("   pcscd already serves {READER}");
            None
        } else {
            if !Path::new("/usr/sbin/pcscd").exists()
                || !Path::new("/usr/lib/pcsc/drivers/serial/libifdvpcd.so").exists()
            {
                bail!(
                    "the PC/SC stack (pcscd, vsmartcard-vpcd, opensc) is not installed: run `cargo xtask demo`, which installs it"
                );
            }
            std::fs::create_dir_all("/run/pcscd")
                .context("cannot create /run/pcscd (run as root, or `cargo xtask pcsc up` first)")?;
            let log = std::fs::File::create(dir.join("pcscd.log"))?;
            let child = Command::new("pcscd")
                .arg("--foreground")
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .context("cannot start pcscd")?;
            let k = Kill(child);
            let deadline = Instant::now() + Duration::from_secs(10);
            while !readers_ready() {
                ensure!(Instant::now() < deadline, "pcscd did not list {READER} within 10 s");
                std::thread::sleep(Duration::from_millis(50));
            }
            println!("   started pcscd (foreground, no systemd); vpcd readers listed");
            Some(k)
        };
        let exe = std::env::current_exe()?;
        let state = dir.join(state);
        let card = Kill(
            Command::new(exe)
                .args(["card-sim", "--port", "35963", "--state"])
                .arg(&state)
                .env("JPKI_CARD_ISSUER_KEY", hex::encode(issuer_key))
                .stderr(Stdio::null())
                .spawn()
                .context("cannot start the virtual card")?,
        );
        Reader::open(READER)?.wait_card(Duration::from_secs(10))?;
        println!("   virtual JPKI card inserted into {READER} (state file {})", state.display());
        Ok(VirtualCard { _card: card, _pcscd: pcscd })
    }
}

fn tool(cmd: &str, args: &[&str]) -> Result<String> {
    let o = Command::new(cmd)
        .args(args)
        .env("OPENSC_DRIVER", "jpki")
        .output()
        .with_context(|| format!("cannot run {cmd}"))?;
    let out = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    ensure!(o.status.success(), "{cmd} {}: {out}", args.join(" "));
    Ok(out)
}

/// OpenSC reads the card and signs a document with the signature key; openssl verifies it
/// against the issued certificate (PEM at `cert`). Returns the document and signature paths.
pub fn opensc_reads_and_signs(dir: &Path, cert: &Path) -> Result<(PathBuf, PathBuf)> {
    let name = tool("opensc-tool", &["--reader", "0", "-n"])?;
    println!("   opensc-tool -n: {}", name.trim());
    let list = tool("pkcs15-tool", &["--reader", "0", "--list-certificates"])?;
    for l in list.lines().filter(|l| l.starts_with("X.509 Certificate")) {
        println!("   pkcs15-tool: {}", l.trim());
    }
    let doc = dir.join("document.txt");
    let sig = dir.join("document.sig");
    std::fs::write(&doc, "転入届の電子申請 / electronic moving-in notification\n")?;
    tool(
        "pkcs11-tool",
        &[
            "--token-label",
            "JPKI (Digital Signature PIN)",
            "--login",
            "--pin",
            SIGN_PIN,
            "--sign",
            "--id",
            "02",
            "-m",
            "SHA256-RSA-PKCS",
            "-i",
            &doc.display().to_string(),
            "-o",
            &sig.display().to_string(),
        ],
    )?;
    let pubkey = Command::new("openssl").arg("x509").arg("-in").arg(cert).args(["-pubkey", "-noout"]).output()?;
    let pubf = dir.join("sign-pub.pem");
    std::fs::write(&pubf, &pubkey.stdout)?;
    let v = Command::new("openssl")
        .args(["dgst", "-sha256", "-verify"])
        .arg(&pubf)
        .arg("-signature")
        .arg(&sig)
        .arg(&doc)
        .output()?;
    let out = String::from_utf8_lossy(&v.stdout).trim().to_string();
    println!("   pkcs11-tool signed a document with the card's signature key; openssl dgst -verify: {out}");
    ensure!(out == "Verified OK", "openssl did not verify the card's signature");
    Ok((doc, sig))
}

/// The resident signs a document with the card's signature key as a CMS SignedData (the card
/// makes the signature; the key never leaves it).
pub fn sign_cms(content: &[u8], cert_der: &[u8], chain: &[Vec<u8>]) -> Result<Vec<u8>> {
    let r = Reader::open(READER)?;
    let conn = r.connect()?;
    let der = {
        let mut j = card::reader::Jpki::new(&conn);
        j.select_ap()?;
        j.verify(card::jpki::PinRef::Sign, SIGN_PIN)?;
        let now = u64::try_from(identity::http::now()).unwrap_or(0);
        card::cms_sign::signed_data(content, cert_der, chain, now, |di| j.sign(card::jpki::KeyRef::Sign, di))?
    };
    conn.finish()?;
    Ok(der)
}
