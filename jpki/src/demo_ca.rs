//! The CA part of the main job, as separate processes with separate credentials: the CA
//! operator initialises the CA (`jpki ca init`), then `jpki serve ca` — the only process that
//! opens the CA's keys, its database and the card issuer master key — serves windows, CA
//! operators and the validator over mutual TLS as `ca:jpki-ca` (registered at the national node
//! as the B1-020 agency `jpki-ca`) and follows the change feed by itself. Windows are
//! `jpki card …` processes whose whole environment is their own credential, their clerk's key,
//! the CA service's URL and the resident's PINs. The validator is `jpki validator enroll` and
//! `jpki serve validator` with its own credential, reading certificate status from the CA
//! service's status stream (it never opens the CA's database).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use ca::hierarchy::{CaId, Environment, Purpose};
use ca::revocation::CertKind;
use der::Decode;
use identity::ids::ResidentCode;
use identity::law::AgencyClass;
use identity::national::National;
use identity::operator::Operator;
use identity::party::Party;

use crate::proc::{Kill, free_port};

/// One of the resident's certificates, as the window wrote it and the CA service describes it.
#[derive(Debug, Clone)]
struct Cert {
    kind: CertKind,
    serial: String,
    der: Vec<u8>,
    ca: String,
    generation: i64,
    /// The root and issuing CA certificates of its generation (fixed at issuance: after a
    /// key rollover the current ones are others).
    root: Vec<u8>,
    int: Vec<u8>,
}

/// A process of the demo: its command line's name and its whole environment.
#[derive(Debug, Clone)]
pub struct Role {
    /// The party (for the printout).
    pub party: Party,
    /// Its environment: credential, network CA, CRL, passphrase (and nothing else).
    pub env: Vec<(String, String)>,
}

/// What the CA part needs from the main job's network set-up.
#[derive(Debug)]
pub struct Parties {
    /// `ca:jpki-ca` (the CA service's credential, for 127.0.0.1).
    pub ca: Role,
    /// `validator:v1`.
    pub validator: Role,
    /// `window:131016:W01` (千代田区) with its clerk's key env (`JPKI_CLERK`, passphrase).
    pub window: Role,
    /// `window:131041:W01` (新宿区) with its clerk's key env.
    pub other_window: Role,
    /// `operator:ca-operator-1`: a reqwest client of the CA service.
    pub operator: reqwest::Client,
}

/// The CA as the demo runs it.
#[derive(Debug)]
pub struct DemoCa {
    dir: PathBuf,
    parties: Parties,
    ca_url: String,
    master: [u8; 32],
    issued: Vec<Cert>,
    /// The validator's port (its URLs are in the certificates).
    port: u16,
    /// The validator's process (restarted after a rollover); dropped before the CA service.
    validator: Option<Kill>,
    /// The validator's responder-key passphrase (its own secret, kept across restarts).
    validator_secret: String,
    /// The CA service's process.
    _service: Kill,
}

fn pem_file(path: &Path, ders: &[&[u8]]) -> Result<()> {
    let mut s = String::new();
    for d in ders {
        s.push_str(
            &der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, d).map_err(|e| anyhow::anyhow!("{e}"))?,
        );
    }
    Ok(std::fs::write(path, s)?)
}

fn exe() -> Result<PathBuf> {
    std::env::current_exe().context("cannot find the jpki binary")
}

/// `jpki ARGS` with exactly `env` (plus PATH): what a separate party's process sees. Its
/// stderr goes to `DIR/logs/NAME.log`.
fn process(dir: &Path, name: &str, args: &[&str], env: &[(String, String)]) -> Result<Command> {
    std::fs::create_dir_all(dir.join("logs"))?;
    let log = std::fs::File::create(dir.join("logs").join(format!("{name}.log")))?;
    let mut c = Command::new(exe()?);
    c.args(args).env_clear().stdin(Stdio::null()).stderr(log);
    if let Some(p) = std::env::var_os("PATH") {
        c.env("PATH", p);
    }
    c.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    Ok(c)
}

fn log_of(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join("logs").join(format!("{name}.log"))).unwrap_or_default()
}

fn indent(text: &str) -> String {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| format!("   {}", l.trim_start()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs a short-lived party process; fails with its output and log if it fails.
fn run_process(dir: &Path, name: &str, args: &[&str], env: &[(String, String)]) -> Result<String> {
    let o =
        process(dir, name, args, env)?.stdout(Stdio::piped()).output().with_context(|| format!("cannot run {name}"))?;
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    ensure!(o.status.success(), "{name} failed: {out}{}", log_of(dir, name));
    Ok(out)
}

impl DemoCa {
    /// The CA operator initialises the CA (a separate `jpki ca init` process holding the CA
    /// passphrase), the national operator `op` registers it as the B1-020 agency, and the CA
    /// service starts as its own process with the CA's credential and the card issuer master
    /// key (made here, the card factory's and the CA's secret; the virtual card is made from
    /// it too). `national_url` is the national node.
    pub async fn start(
        dir: &Path,
        national: &National,
        national_url: &str,
        parties: Parties,
        op: &Operator,
        now: i64,
    ) -> Result<DemoCa> {
        let Party::Ca(id) = &parties.ca.party else { bail!("the CA's credential names {}", parties.ca.party) };
        // The CA's own secrets: its key-store passphrase and the card issuer master key, in
        // the CA's processes' environment only.
        let ca_secret = hex::encode(rand::random::<[u8; 16]>());
        let master: [u8; 32] = rand::random();
        crate::demo::remember(&ca_secret);
        crate::demo::remember(&hex::encode(master));
        let port = free_port()?;
        let ca_store = vec![
            ("JPKI_CA_DB".to_owned(), dir.join("ca.db").display().to_string()),
            ("JPKI_CA_KEYS".to_owned(), dir.join("ca-keys").display().to_string()),
            ("JPKI_CA_PASSPHRASE".to_owned(), ca_secret),
        ];
        let base = format!("http://127.0.0.1:{port}");
        let ocsp = format!("{base}/ocsp");
        let args =
            ["ca", "init", "--actor", "ca-operator-1", "--shards", "4", "--crl-base", &base, "--ocsp-url", &ocsp];
        let out = run_process(dir, "ca-init", &args, &ca_store)?;
        println!("   the CA operator: jpki ca init (its own process, the only other holder of the CA passphrase)");
        println!("{}", indent(&out));
        national
            .provider()
            .register_agency(op, id, "公的個人認証サービス CA", AgencyClass::NationalBody, &["B1-020"], now)
            .await?;
        let ca_port = free_port()?;
        let ca_url = format!("https://127.0.0.1:{ca_port}");
        let mut env = parties.ca.env.clone();
        env.extend(ca_store);
        env.push(("JPKI_CARD_ISSUER_KEY".into(), hex::encode(master)));
        let listen = format!("127.0.0.1:{ca_port}");
        let publish = dir.join("publish").display().to_string();
        let args = [
            "serve",
            "ca",
            "--listen",
            &listen,
            "--national",
            national_url,
            "--publish-dir",
            &publish,
            "--follow-interval-ms",
            "200",
        ];
        let service = Kill(process(dir, "ca-service", &args, &env)?.stdout(Stdio::null()).spawn()?);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = parties.operator.get(format!("{ca_url}/v1/status/head")).send().await
                && r.status().is_success()
            {
                break;
            }
            ensure!(Instant::now() < deadline, "the CA service did not come up: {}", log_of(dir, "ca-service"));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        println!(
            "   the CA service: jpki serve ca as {} on {ca_url} (mutual TLS; its own process, the only one holding the CA keys and the card issuer master key); registered at the national node as agency {id} for B1-020, it follows the change feed by itself",
            parties.ca.party
        );
        Ok(DemoCa {
            dir: dir.to_owned(),
            parties,
            ca_url,
            master,
            issued: Vec::new(),
            port,
            validator: None,
            validator_secret: {
                let s = hex::encode(rand::random::<[u8; 16]>());
                crate::demo::remember(&s);
                s
            },
            _service: service,
        })
    }

    /// A window process: `jpki card issue` for `resident`, as `window` with its clerk.
    fn window(&self, window: &Role, resident: &ResidentCode, out: &Path) -> Result<(bool, String)> {
        let mut env = window.env.clone();
        env.push(("JPKI_CA_URL".into(), self.ca_url.clone()));
        env.push(("JPKI_CARD_AUTH_PIN".into(), crate::demo_card::AUTH_PIN.into()));
        env.push(("JPKI_CARD_SIGN_PIN".into(), crate::demo_card::SIGN_PIN.into()));
        let out_dir = out.display().to_string();
        let args = [
            "card",
            "issue",
            "--reader",
            crate::demo_card::READER,
            "--resident",
            resident.as_str(),
            "--card-expiry",
            "2036-12-31",
            "--out",
            &out_dir,
        ];
        // Numbered, not named by the resident: a log file's name is not for personal data.
        static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(1);
        let name = format!("window-{}", RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        let o = process(&self.dir, &name, &args, &env)?.stdout(Stdio::piped()).output()?;
        let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), log_of(&self.dir, &name));
        Ok((o.status.success(), text))
    }

    async fn operator_get(&self, path: &str) -> Result<reqwest::Response> {
        let r = self.parties.operator.get(format!("{}{path}", self.ca_url)).send().await?;
        ensure!(r.status().is_success(), "CA service {path}: {}", r.status());
        Ok(r)
    }

    /// The current certificate of a CA, from the CA service.
    async fn ca_cert(&self, ca: &CaId) -> Result<Vec<u8>> {
        Ok(self.operator_get(&format!("/v1/ca/{}/certificate", ca.slug())).await?.bytes().await?.to_vec())
    }

    /// Publishes every CRL through the CA service (as the CA operator).
    async fn publish(&self) -> Result<Vec<ca::service::PublishedBody>> {
        let r = self.parties.operator.post(format!("{}/v1/crl/publish", self.ca_url)).send().await?;
        ensure!(r.status().is_success(), "CRL publication: {}", r.status());
        Ok(r.json().await?)
    }

    fn crl_path(&self, ca: &str, generation: i64, shard: i64) -> PathBuf {
        let file = if shard < 0 { "arl.crl".to_owned() } else { format!("{shard}.crl") };
        self.dir.join("publish").join("crl").join(ca).join(format!("g{generation}")).join(file)
    }

    /// The windows at work: 千代田区's window cannot issue for a 新宿区 resident; 新宿区's
    /// window is refused a signature certificate for the newborn; 千代田区's window issues
    /// 山田花子's card. Then the card signs, OpenSC reads it, and the validator starts.
    pub async fn issue(&mut self, adult: &ResidentCode, child: &ResidentCode, now: i64) -> Result<()> {
        // The card, through the real PC/SC stack: keys generated on it, CSRs signed by it.
        let vc = crate::demo_card::VirtualCard::insert(&self.dir, self.master)?;
        let names: Vec<&str> = self.parties.window.env.iter().map(|(k, _)| k.as_str()).collect();
        println!(
            "   window processes ({} and {}): their whole environment is {} + JPKI_CA_URL + the resident's PINs — no CA passphrase, no issuer key, no CA files",
            self.parties.window.party,
            self.parties.other_window.party,
            names.join(", ")
        );
        let (ok, text) = self.window(&self.parties.window, child, &self.dir.join("w-child"))?;
        ensure!(!ok, "千代田区's window issued for a 新宿区 resident: {text}");
        println!("   千代田区's window asks for {child} (registered in 新宿区): {}", last_error(&text));
        let (ok, text) = self.window(&self.parties.other_window, child, &self.dir.join("w-child2"))?;
        ensure!(!ok, "a signature certificate was issued to a child: {text}");
        println!("   新宿区's window asks for the newborn {child}'s signature certificate: {}", last_error(&text));
        let out = self.dir.join("w-adult");
        let (ok, text) = self.window(&self.parties.window, adult, &out)?;
        ensure!(ok, "the window could not issue the card: {text}");
        println!(
            "{}",
            indent(
                text.lines()
                    .filter(|l| !l.contains(" WARN ") && !l.contains(" INFO "))
                    .collect::<Vec<_>>()
                    .join("\n")
                    .as_str()
            )
        );
        for (kind, file) in [(CertKind::Authentication, "authentication.pem"), (CertKind::Signature, "signature.pem")] {
            let pem = std::fs::read(out.join(file)).with_context(|| format!("the window wrote no {file}"))?;
            let (_, der) = der::pem::decode_vec(&pem).map_err(|e| anyhow::anyhow!("{file}: {e}"))?;
            let serial =
                hex::encode(x509_cert::Certificate::from_der(&der)?.tbs_certificate().serial_number().as_bytes());
            let serial = serial.trim_start_matches("00").to_owned();
            let st: ca::service::CertStatusBody =
                self.operator_get(&format!("/v1/status/certificates/{serial}")).await?.json().await?;
            let purpose = if kind == CertKind::Signature { Purpose::Signature } else { Purpose::Authentication };
            let root = self.ca_cert(&CaId::root(purpose, Environment::Production)).await?;
            let int = self.ca_cert(&CaId::issuing(purpose, Environment::Production, "13")?).await?;
            self.issued.push(Cert {
                kind,
                serial,
                der,
                ca: st.issuer_slug,
                generation: st.issuer_generation,
                root,
                int,
            });
        }
        for c in &self.issued {
            println!(
                "   issued {:<14} serial {} by {} g{} (good at the CA)",
                c.kind.name(),
                c.serial,
                c.ca,
                c.generation
            );
        }
        let sig = self.cert(CertKind::Signature)?.clone();
        let x = x509_cert::Certificate::from_der(&sig.der)?;
        println!("   signature certificate subject: {}", x.tbs_certificate().subject());
        println!(
            "   identity items are in its subjectAltName (1.2.392.200149.8.5.5.1–6), fetched by the CA service from the national node, not from the window's request"
        );
        let (ok, out) = self.verify(&sig.der, &sig.root, &sig.int, &[])?;
        println!("   openssl verify: {}", out.trim());
        ensure!(ok, "openssl rejected the signature certificate");
        let cert = self.dir.join("signature.pem");
        pem_file(&cert, &[&sig.der])?;
        crate::demo_card::opensc_reads_and_signs(&self.dir, &cert)?;
        // A CMS SignedData signed by the card, checked by a verifier (our library, then openssl).
        let doc = "転入届の電子申請 / electronic moving-in notification\n".as_bytes();
        let int = self.ca_cert(&CaId::issuing(Purpose::Signature, Environment::Production, "13")?).await?;
        let p7m = crate::demo_card::sign_cms(doc, &sig.der, std::slice::from_ref(&int))?;
        std::fs::write(self.dir.join("document.p7m"), &p7m)?;
        drop(vc);
        let published = self.publish().await?;
        let crls = published
            .iter()
            .map(|p| std::fs::read(self.crl_path(&p.ca, p.generation, p.shard)))
            .collect::<std::io::Result<Vec<_>>>()?;
        let root = self.ca_cert(&CaId::root(Purpose::Signature, Environment::Production)).await?;
        let r = validator::signed_doc::verify_signed(
            &p7m,
            None,
            vec![root.clone()],
            Vec::new(),
            validator::verify::Revocation::Crls(crls),
            // Validated now; the document's signingTime is reported, not trusted.
            u64::try_from(identity::http::now()).unwrap_or(0),
        )?;
        println!(
            "   verifier: CMS SignedData made by the card ({} bytes): signature {}, signer certificate {} (RFC 5280 path to the sign-root, CRLs checked)",
            p7m.len(),
            if r.signature_ok { "good" } else { "BAD" },
            match &r.certificate {
                validator::verify::Verdict::Valid { .. } => "valid".to_string(),
                validator::verify::Verdict::Invalid { reason }
                | validator::verify::Verdict::Unavailable { reason, .. } => format!("INVALID: {reason}"),
            }
        );
        for (k, v) in &r.items {
            println!("      {k:<25} {v}");
        }
        ensure!(r.valid(), "the card-signed document should verify");
        let (ok, said) = self.cms_verify("document.p7m", &root)?;
        println!("   openssl cms -verify: {said}");
        ensure!(ok, "openssl cms -verify rejected the card's signature: {said}");
        self.start_validator().await?;
        for kind in [CertKind::Signature, CertKind::Authentication] {
            let st = self.ocsp(kind).await?;
            println!("   verifier: openssl ocsp for the {} certificate: {st}", kind.name());
            ensure!(st.ends_with(": good"), "OCSP should say good before the move");
        }
        let _ = now;
        Ok(())
    }

    /// `openssl cms -verify` of `DIR/file` with only `root` trusted: (success, what it said).
    fn cms_verify(&self, file: &str, root: &[u8]) -> Result<(bool, String)> {
        let rp = self.dir.join("cms-root.pem");
        pem_file(&rp, &[root])?;
        let o = Command::new("openssl")
            .args(["cms", "-verify", "-inform", "DER", "-purpose", "any", "-out", "/dev/null", "-in"])
            .arg(self.dir.join(file))
            .arg("-CAfile")
            .arg(&rp)
            .output()
            .context("cannot run openssl")?;
        Ok((o.status.success(), String::from_utf8_lossy(&o.stderr).trim().to_string()))
    }

    fn cert(&self, kind: CertKind) -> Result<&Cert> {
        self.issued.iter().find(|c| c.kind == kind).context("nothing issued")
    }

    /// `openssl verify` of `der` with only `root` trusted and `int` (and whatever else it holds,
    /// concatenated DER-by-DER as PEM) offered.
    fn verify(&self, der: &[u8], root: &[u8], int: &[u8], crls: &[PathBuf]) -> Result<(bool, String)> {
        self.verify_with(der, root, &[int], crls)
    }

    fn verify_with(&self, der: &[u8], root: &[u8], int: &[&[u8]], crls: &[PathBuf]) -> Result<(bool, String)> {
        let (r, i, l) = (self.dir.join("root.pem"), self.dir.join("int.pem"), self.dir.join("leaf.pem"));
        pem_file(&r, &[root])?;
        pem_file(&i, int)?;
        pem_file(&l, &[der])?;
        let mut c = Command::new("openssl");
        c.arg("verify").arg("-CAfile").arg(&r).arg("-untrusted").arg(&i);
        if !crls.is_empty() {
            c.arg("-crl_check");
            for p in crls {
                c.arg("-CRLfile").arg(p);
            }
        }
        let out = c.arg(&l).output().context("cannot run openssl")?;
        Ok((
            out.status.success(),
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
                .replace(&l.display().to_string(), "leaf"),
        ))
    }

    /// The CA service follows the feed by itself (the move revokes the signature certificate);
    /// the CA operator publishes CRLs through it; the validator answers revoked.
    pub async fn after_move(&self) -> Result<()> {
        let t = Instant::now();
        let sig = self.cert(CertKind::Signature)?;
        loop {
            let st: ca::service::CertStatusBody =
                self.operator_get(&format!("/v1/status/certificates/{}", sig.serial)).await?.json().await?;
            if st.status == "revoked" {
                println!(
                    "   the CA service revoked signature certificate {} (reason code {}; seen {} ms into this step); it checked each feed entry against its signed notice",
                    sig.serial,
                    st.reason.unwrap_or_default(),
                    t.elapsed().as_millis()
                );
                break;
            }
            ensure!(
                t.elapsed() < Duration::from_secs(20),
                "the CA service did not revoke: {}",
                log_of(&self.dir, "ca-service")
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let published = self.publish().await?;
        for kind in [CertKind::Signature, CertKind::Authentication] {
            let c = self.cert(kind)?;
            let serial = hex::decode(&c.serial)?;
            let shard = ca::authority::shard_of(&serial, 4);
            let crl = published.iter().find(|p| p.ca == c.ca && p.shard == shard).context("no CRL for the shard")?;
            let purpose = if kind == CertKind::Signature { Purpose::Signature } else { Purpose::Authentication };
            let root_slug = CaId::root(purpose, Environment::Production).slug();
            let arl = published.iter().find(|p| p.ca == root_slug).context("no ARL")?;
            println!(
                "   {} g{} shard {} CRL #{}: {} entries, {} bytes (published by the CA operator through the CA service)",
                crl.ca, crl.generation, crl.shard, crl.number, crl.entries, crl.bytes
            );
            let paths = [self.crl_path(&crl.ca, crl.generation, crl.shard), self.crl_path(&arl.ca, arl.generation, -1)];
            let (ok, out) = self.verify(&c.der, &c.root, &c.int, &paths)?;
            println!(
                "   openssl verify -crl_check, {} certificate: {}",
                kind.name(),
                out.lines()
                    .find(|l| l.contains("revoked"))
                    .or_else(|| out.lines().find(|l| l.contains("OK")))
                    .unwrap_or(out.trim())
                    .trim()
            );
            ensure!(ok == (kind == CertKind::Authentication), "unexpected status for the {} certificate", kind.name());
        }
        // The validator picks the revocation up from the CA's status table by itself.
        let t = Instant::now();
        loop {
            let st = self.ocsp(CertKind::Signature).await?;
            if st.contains("revoked") || t.elapsed() > Duration::from_secs(3) {
                println!(
                    "   verifier: openssl ocsp for the signature certificate: {st} ({} ms after the CRLs)",
                    t.elapsed().as_millis()
                );
                ensure!(st.contains("revoked"), "OCSP should say revoked after the move");
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let st = self.ocsp(CertKind::Authentication).await?;
        println!("   verifier: openssl ocsp for the authentication certificate: {st}");
        ensure!(st.ends_with(": good"), "the authentication certificate stays good after a move");
        Ok(())
    }

    /// Runs a ceremony file through the CA service as the CA operator; prints its steps.
    async fn ceremony(&self, file: &str) -> Result<()> {
        let body = ca::service::CeremonyBody { file: file.to_owned() };
        let r = self.parties.operator.post(format!("{}/v1/ceremony/run", self.ca_url)).json(&body).send().await?;
        let status = r.status();
        let text = r.text().await?;
        ensure!(status.is_success(), "the ceremony failed: {status} {text}");
        let steps: Vec<ca::service::StepBody> = serde_json::from_str(&text)?;
        for (i, s) in steps.iter().enumerate() {
            println!("      {}. {}", i + 1, s.step);
        }
        Ok(())
    }

    /// Story step 5 (issue 11): the CA operator rotates 東京都's CAs to P-384 through the CA
    /// service — a same-name re-key of the sign-root (link certificates both ways), then the
    /// sign-13 and auth-13 issuing CAs; 山田花子's earlier signature still validates; a card
    /// issued after the switch to 鈴木次郎 carries P-384 certificates, which a verifier trusting
    /// only the old root validates through the link certificate.
    pub async fn rollover(&mut self, jiro: &ResidentCode) -> Result<()> {
        let rfc = |t: i64| -> Result<String> {
            Ok(time::OffsetDateTime::from_unix_timestamp(t)?.format(&time::format_description::well_known::Rfc3339)?)
        };
        let file = |ca: &str, at: i64| -> Result<String> {
            Ok(format!(
                "ca = \"{ca}\"\ngeneration = 2\nalgorithm = \"p384\"\nkey = \"software\"\nnot_before = \"{}\"\nactivation = \"{}\"\nname = \"same\"\n",
                rfc(at)?,
                rfc(at + 3)?
            ))
        };
        let wait_until = |t: i64| async move {
            while identity::http::now() < t {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        let now = identity::http::now();
        let root_file = file("sign-root", now)?;
        println!("   the CA operator's reviewed ceremony file, run by the CA service (POST /v1/ceremony/run):");
        println!("{}", indent(root_file.trim_end()));
        self.ceremony(&root_file).await?;
        wait_until(now + 3).await;
        let now = identity::http::now();
        for ca in ["sign-13", "auth-13"] {
            println!("   {ca}: P-384, certified by the current sign/auth root, activation in 3 s");
            self.ceremony(&file(ca, now)?).await?;
        }
        wait_until(now + 3).await;
        let st: Vec<ca::service::GenerationBody> = self.operator_get("/v1/ceremony/status").await?.json().await?;
        for g in st.iter().filter(|g| matches!(g.ca.as_str(), "sign-root" | "sign-13" | "auth-13")) {
            println!(
                "   {:<10} g{} {:<8} {:<8} key id {}…{}",
                g.ca,
                g.generation,
                g.algorithm,
                g.state,
                &g.key_id[..16],
                if g.links.is_empty() { String::new() } else { format!(" links: {}", g.links.len()) }
            );
        }
        let links = pem_certs(&self.operator_get("/v1/ca/sign-root/links").await?.bytes().await?)?;
        ensure!(links.len() == 2, "expected NewWithOld and OldWithNew, got {}", links.len());
        let (new_with_old, old_with_new) = (&links[0], &links[1]);
        // The validator enrols responders for the new generations and restarts.
        self.validator = None;
        self.start_validator().await?;
        // 山田花子's signature made before the rollover still validates.
        let sig = self.cert(CertKind::Signature)?.clone();
        let new_root = self.ca_cert(&CaId::root(Purpose::Signature, Environment::Production)).await?;
        let (ok, out) = self.verify_with(&sig.der, &new_root, &[&sig.int, old_with_new], &[])?;
        println!(
            "   verifier trusting only the new P-384 sign-root, her RSA certificate through OldWithNew: {}",
            out.trim()
        );
        ensure!(ok, "the old certificate should verify under the new root through OldWithNew");
        // Our verifier, trusting only the new root: the document's chain reaches it through
        // OldWithNew, and every CRL on the way is checked, including those the retired RSA keys
        // keep signing (a CRL signed by another key of the same issuer, RFC 5280 §6.3.3 (f)).
        let published = self.publish().await?;
        let crls = published
            .iter()
            .map(|p| std::fs::read(self.crl_path(&p.ca, p.generation, p.shard)))
            .collect::<std::io::Result<Vec<_>>>()?;
        let p7m = std::fs::read(self.dir.join("document.p7m"))?;
        let r = validator::signed_doc::verify_signed(
            &p7m,
            None,
            vec![new_root.clone()],
            vec![old_with_new.clone()],
            validator::verify::Revocation::Crls(crls),
            u64::try_from(identity::http::now()).unwrap_or(0),
        )?;
        println!(
            "   our verifier, trusting only the new root, her document signed before the rollover: signature {}, certificate {} (through OldWithNew; CRLs of both generations checked)",
            if r.signature_ok { "good" } else { "BAD" },
            match &r.certificate {
                validator::verify::Verdict::Valid { .. } => "valid".to_string(),
                validator::verify::Verdict::Invalid { reason }
                | validator::verify::Verdict::Unavailable { reason, .. } => format!("INVALID: {reason}"),
            }
        );
        ensure!(r.valid(), "the earlier signature should verify under the new root");
        let (ok, said) = self.cms_verify("document.p7m", &sig.root)?;
        println!("   her document signed before the rollover, openssl cms -verify (the old root): {said}");
        ensure!(ok, "the earlier signature should still verify: {said}");
        let st = self.ocsp_of(&sig)?;
        println!("   verifier: openssl ocsp for her signature certificate (RSA, retired sign-13 g1): {st}");
        ensure!(st.ends_with(": good"), "her certificate stays good after the rollover");
        // A card issued after the switch: the window asks for the card profile (P-384).
        let vc = crate::demo_card::VirtualCard::insert_card(&self.dir, self.master, "card2.json")?;
        let out = self.dir.join("w-jiro");
        let (ok, text) = self.window(&self.parties.window, jiro, &out)?;
        ensure!(ok, "the window could not issue the second card: {text}");
        let pem = std::fs::read(out.join("signature.pem")).context("the window wrote no signature.pem")?;
        let (_, der) = der::pem::decode_vec(&pem).map_err(|e| anyhow::anyhow!("signature.pem: {e}"))?;
        // He signs with the card's P-384 key through our reader (OpenSC's jpki driver is
        // RSA-only); a verifier holding only the old root checks it with the link certificate.
        let int = self.ca_cert(&CaId::issuing(Purpose::Signature, Environment::Production, "13")?).await?;
        let doc = "転居届の電子申請 / electronic change-of-address notification\n".as_bytes();
        // The signed document carries the issuing CA and the NewWithOld link, so that a verifier
        // holding only the old root can build the path (openssl cms takes no -untrusted).
        let p7m = crate::demo_card::sign_cms(doc, &der, &[int.clone(), new_with_old.clone()])?;
        drop(vc);
        std::fs::write(self.dir.join("document2.p7m"), &p7m)?;
        let (ok, said) = self.cms_verify("document2.p7m", &sig.root)?;
        println!(
            "   鈴木次郎 signs with his card's P-384 key through our reader (OpenSC's jpki driver is RSA-only); openssl cms -verify with only the old root (the document carries the NewWithOld link): {said}"
        );
        ensure!(ok, "the P-384 card's signature should verify: {said}");
        let c = x509_cert::Certificate::from_der(&der)?;
        let spki_alg =
            c.tbs_certificate().subject_public_key_info().algorithm.parameters.as_ref().map(|p| p.value().to_vec());
        let p384 = spki_alg.as_deref() == Some(&[0x2b, 0x81, 0x04, 0x00, 0x22][..]);
        println!(
            "   鈴木次郎's new card: keys generated on the card, signature certificate key {} signed with {} by sign-13 g2",
            if p384 { "ECDSA P-384" } else { "NOT P-384" },
            if c.signature_algorithm().oid.to_string() == "1.2.840.10045.4.3.3" { "ecdsa-with-SHA384" } else { "?" }
        );
        ensure!(p384, "a card issued after the switch should carry P-384 keys");
        let (ok, out) = self.verify_with(&der, &sig.root, &[&int, new_with_old], &[])?;
        println!(
            "   verifier trusting only the old RSA sign-root, the new certificate through NewWithOld: {}",
            out.trim()
        );
        ensure!(ok, "the new certificate should verify under the old root through NewWithOld");
        let (ok, out) = self.verify_with(&der, &sig.root, &[&int], &[])?;
        println!(
            "   …and without the link certificate: {}",
            out.lines().find(|l| l.contains("error")).unwrap_or(out.trim()).trim()
        );
        ensure!(!ok, "without the link the old root cannot reach the new certificate");
        let serial = hex::encode(c.tbs_certificate().serial_number().as_bytes()).trim_start_matches("00").to_owned();
        let jiro_sig =
            Cert { kind: CertKind::Signature, serial, der, ca: "sign-13".into(), generation: 2, root: new_root, int };
        let st = self.ocsp_of(&jiro_sig)?;
        println!("   verifier: openssl ocsp for his signature certificate (the new generation's own responder): {st}");
        ensure!(st.ends_with(": good"), "the new certificate should be good");
        Ok(())
    }

    /// The validator enrols at the CA service with its own credential (responder keys it
    /// keeps, certificates by CSR) and serves OCSP and CRLs on the port written into the
    /// certificates, reading certificate status from the CA service's status stream with its
    /// own credential (`--ca-service`; the CA's database is not opened).
    async fn start_validator(&mut self) -> Result<()> {
        let vdir = self.dir.join("validator");
        let mut env = self.parties.validator.env.clone();
        env.push(("JPKI_VALIDATOR_PASSPHRASE".into(), self.validator_secret.clone()));
        env.push(("JPKI_CA_URL".into(), self.ca_url.clone()));
        let keys = vdir.join("keys").display().to_string();
        let out = run_process(&self.dir, "validator-enroll", &["validator", "enroll", "--out", &keys], &env)?;
        println!(
            "   the validator ({}), its own process: jpki validator enroll at the CA service",
            self.parties.validator.party
        );
        println!("{}", indent(&out));
        let listen = format!("127.0.0.1:{}", self.port);
        let crl_dir = self.dir.join("publish").display().to_string();
        let args = [
            "serve",
            "validator",
            "--ca-service",
            &self.ca_url,
            "--responders",
            &keys,
            "--crl-dir",
            &crl_dir,
            "--listen",
            &listen,
        ];
        self.validator = Some(Kill(process(&self.dir, "validator", &args, &env)?.stdout(Stdio::null()).spawn()?));
        let health = format!("http://127.0.0.1:{}/health", self.port);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !reqwest::get(&health).await.is_ok_and(|r| r.status().is_success()) {
            ensure!(Instant::now() < deadline, "the validator did not come up: {}", log_of(&self.dir, "validator"));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        println!(
            "   jpki serve validator: delegated OCSP responders (keys held by the validator, not the CA), status read from the CA service's status stream; http://127.0.0.1:{}/ocsp",
            self.port
        );
        Ok(())
    }

    /// `openssl ocsp` against the validator for one of the resident's certificates.
    async fn ocsp(&self, kind: CertKind) -> Result<String> {
        let c = self.cert(kind)?;
        self.ocsp_of(c)
    }

    /// `openssl ocsp` for `c` against the validator, trusting only its own root.
    fn ocsp_of(&self, c: &Cert) -> Result<String> {
        let (r, i, l) = (self.dir.join("o-root.pem"), self.dir.join("o-int.pem"), self.dir.join("o-leaf.pem"));
        pem_file(&r, &[&c.root])?;
        pem_file(&i, &[&c.int])?;
        pem_file(&l, &[&c.der])?;
        let out = Command::new("openssl")
            .arg("ocsp")
            .arg("-issuer")
            .arg(&i)
            .arg("-cert")
            .arg(&l)
            .arg("-CAfile")
            .arg(&r)
            .arg("-verify_other")
            .arg(&i)
            .args(["-no_nonce", "-url", &format!("http://127.0.0.1:{}/ocsp", self.port)])
            .output()
            .context("cannot run openssl")?;
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        ensure!(text.contains("Response verify OK"), "openssl ocsp: {text}");
        let leaf = l.display().to_string();
        let line = text.lines().find(|x| x.starts_with(&leaf)).unwrap_or_default();
        Ok(format!("Response verify OK, {}", line.replace(&leaf, "certificate")))
    }
}

/// The certificates of a PEM bundle (DER each).
fn pem_certs(pem: &[u8]) -> Result<Vec<Vec<u8>>> {
    let text = std::str::from_utf8(pem).context("the PEM bundle is not text")?;
    let mut out = Vec::new();
    for block in text.split_inclusive("-----END CERTIFICATE-----\n") {
        if block.trim().is_empty() {
            continue;
        }
        let (_, der) = der::pem::decode_vec(block.trim_start().as_bytes()).map_err(|e| anyhow::anyhow!("PEM: {e}"))?;
        out.push(der);
    }
    Ok(out)
}

/// The refusal a failed window run reports (`refused (code): why`, once).
fn last_error(text: &str) -> String {
    let line = text.lines().rev().find(|l| l.contains("refused (")).unwrap_or(text.trim());
    let from = line.find("refused (").unwrap_or(0);
    let rest = &line[from..];
    let end = rest[1..].find(": refused (").map_or(rest.len(), |i| i + 1);
    rest[..end].trim().to_owned()
}
