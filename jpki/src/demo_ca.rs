//! The CA part of the main job: the CA (network party `ca:jpki-ca`) is registered at the
//! national node as the B1-020 agency `jpki-ca`, issues a resident's certificates from the
//! prefecture-unit CAs of her prefecture (identity items fetched over mutual TLS under the law
//! table, as itself), then follows the change feed (served only to CAs) after her
//! cross-prefecture move and publishes CRLs that `openssl verify -crl_check` reads.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, ensure};
use ca::authority::{Authority, IssueRequest, Issued, Settings};
use ca::hierarchy::{CaId, Environment, Purpose};
use ca::identity_source::IdentitySource;
use ca::key::{KeyAlgorithm, SoftKey};
use ca::keystore::KeyStore;
use ca::revocation::CertKind;
use identity::client::Peer;
use identity::ids::ResidentCode;
use identity::law::AgencyClass;
use identity::national::National;
use identity::operator::Operator;
use identity::party::Party;

/// The CA as the demo runs it.
#[derive(Debug)]
pub struct DemoCa {
    ca: Authority,
    source: IdentitySource,
    /// Checks the signed notice behind every feed entry (the network CA's notice keys).
    verifier: std::sync::Arc<dyn identity::notice_sig::NoticeVerifier>,
    dir: PathBuf,
    issued: Option<Issued>,
    /// The validator's port (its URLs are in the certificates).
    port: u16,
    validator: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for DemoCa {
    fn drop(&mut self) {
        if let Some(v) = self.validator.take() {
            v.abort();
        }
    }
}

fn csr(k: &SoftKey) -> Result<Vec<u8>> {
    let mut b = openssl::x509::X509ReqBuilder::new()?;
    b.set_pubkey(k.pkey())?;
    b.sign(k.pkey(), openssl::hash::MessageDigest::sha256())?;
    Ok(b.build().to_der()?)
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

/// Starts the CA: database, key store, roots of both hierarchies, agency registration.
/// `national` is a client of the national node presenting the CA's network credential (its
/// `party`, `ca:<id>`); the national operator `op` registers `<id>` as the B1-020 agency;
/// `verifier` checks the signed notice behind each feed entry the CA follows.
pub async fn start(
    dir: &Path,
    national: &National,
    client: Peer,
    party: &Party,
    verifier: std::sync::Arc<dyn identity::notice_sig::NoticeVerifier>,
    op: &Operator,
    now: i64,
) -> Result<DemoCa> {
    let Party::Ca(id) = party else { anyhow::bail!("the CA's credential names {party}, not a CA") };
    // The key-store passphrase: 32 random hex characters (at least 12 bytes are required).
    let keys = KeyStore::soft(
        &dir.join("ca-keys"),
        net::secret::Secret::new(hex::encode(rand::random::<[u8; 16]>()).into_bytes()).passphrase("CA key store")?,
    )?;
    let db = ca::schema::open(&dir.join("ca.db").display().to_string()).await?;
    let mut ca = Authority::open(db, keys, now).await?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let settings = Settings {
        shards: 4,
        crl_base: format!("http://127.0.0.1:{port}"),
        ocsp_url: format!("http://127.0.0.1:{port}/ocsp"),
        ..Settings::default()
    };
    for g in ca.init("ca-operator-1", Environment::Production, settings, now).await? {
        println!(
            "   root {} g{}: {} key (encrypted PKCS#8 via OpenSSL), key id {}",
            g.ca,
            g.generation,
            g.algorithm.name(),
            hex::encode(&g.key_id[..8])
        );
    }
    national
        .provider()
        .register_agency(op, id, "公的個人認証サービス CA", AgencyClass::NationalBody, &["B1-020"], now)
        .await?;
    println!(
        "   the CA ({party}) is registered at the national node as agency {id} for B1-020 (公的個人認証法); it reaches the node over mutual TLS with its own credential"
    );
    let source = IdentitySource::Http(client);
    Ok(DemoCa { ca, source, verifier, dir: dir.to_owned(), issued: None, port, validator: None })
}

impl DemoCa {
    /// Issues both certificates to an adult and shows the refusal of a signature certificate
    /// to a child.
    pub async fn issue(&mut self, adult: &ResidentCode, child: &ResidentCode, now: i64) -> Result<()> {
        // The card, through the real PC/SC stack: keys generated on it, CSRs signed by it.
        let vc = crate::demo_card::VirtualCard::insert(&self.dir)?;
        let order = card::writer::Order {
            resident: adult.as_str().to_owned(),
            card_expiry: "2036-12-31".into(),
            env: "prod".into(),
            alg: "rsa2048".into(),
            no_signature: false,
            auth_pin: Some(zeroize::Zeroizing::new(crate::demo_card::AUTH_PIN.into())),
            sign_pin: Some(zeroize::Zeroizing::new(crate::demo_card::SIGN_PIN.into())),
        };
        // The CA is in process here, and so is its part of the card writer.
        let local =
            crate::card_local::LocalCa::new(vc.issuer_key, &self.ca, &self.source, "window-W13101001", "W13101001");
        let wait = std::time::Duration::from_secs(10);
        let mode = card::writer::Mode::Issue { resume: false };
        let report = card::writer::issue(crate::demo_card::READER, wait, &order, mode, &local).await?;
        crate::card_cmd::print_report(&report);
        let issued = local.last_issued().context("the CA issued nothing")?;
        let req = IssueRequest {
            resident_code: adult.as_str().to_owned(),
            window: "W13101001".into(),
            card_expiry: identity::notice::parse_date("card", "2036-12-31")?,
            environment: Environment::Production,
            signature_csr: None,
            authentication_csr: None,
            request_id: None,
        };
        for c in &issued.certificates {
            println!(
                "   issued {:<14} serial {} by {} g{} (CRL shard {}), valid until {}",
                c.kind.name(),
                c.serial,
                c.ca,
                c.generation,
                c.shard,
                ca::validity::jst_date(time::OffsetDateTime::from_unix_timestamp(c.not_after)?)
            );
        }
        let sig = issued.get(CertKind::Signature).context("no signature certificate")?;
        let x = <x509_cert::certificate::Certificate as der::Decode>::from_der(&sig.der)?;
        println!("   signature certificate subject: {}", x.tbs_certificate().subject());
        println!(
            "   identity items are in its subjectAltName (1.2.392.200149.8.5.5.1–6), fetched from the national node, not from the request"
        );
        let (ok, out) = self.verify(sig.der.as_slice(), Purpose::Signature, &[], now).await?;
        println!("   openssl verify: {}", out.trim());
        ensure!(ok, "openssl rejected the signature certificate");
        let cert = self.dir.join("signature.pem");
        pem_file(&cert, &[&sig.der])?;
        crate::demo_card::opensc_reads_and_signs(&self.dir, &cert)?;
        // A CMS SignedData signed by the card, checked by a verifier (our library, then openssl).
        let doc = "転入届の電子申請 / electronic moving-in notification\n".as_bytes();
        let int = self.ca.current(&CaId::issuing(Purpose::Signature, Environment::Production, "13")?, now).await?;
        let p7m = crate::demo_card::sign_cms(doc, &sig.der, std::slice::from_ref(&int.certificate))?;
        std::fs::write(self.dir.join("document.p7m"), &p7m)?;
        drop(vc);
        let published = self.ca.publish_crls("ca-operator-1", &self.dir.join("publish"), now, &|_, _| {}).await?;
        let crls = published.iter().map(|p| std::fs::read(&p.path)).collect::<std::io::Result<Vec<_>>>()?;
        let root = self.ca.current(&CaId::root(Purpose::Signature, Environment::Production), now).await?;
        let r = validator::signed_doc::verify_signed(
            &p7m,
            None,
            vec![root.certificate.clone()],
            Vec::new(),
            validator::verify::Revocation::Crls(crls),
            // Validated now (the card's certificates were issued on the real clock, after the
            // demo's `now`); the document's signingTime is reported, not trusted.
            u64::try_from(identity::http::now()).unwrap_or(0),
        )?;
        println!(
            "   verifier: CMS SignedData made by the card ({} bytes): signature {}, signer certificate {} (RFC 5280 path to the sign-root, CRLs checked)",
            p7m.len(),
            if r.signature_ok { "good" } else { "BAD" },
            match &r.certificate {
                validator::verify::Verdict::Valid { .. } => "valid".to_string(),
                validator::verify::Verdict::Invalid { reason } => format!("INVALID: {reason}"),
            }
        );
        for (k, v) in &r.items {
            println!("      {k:<25} {v}");
        }
        ensure!(r.valid(), "the card-signed document should verify");
        let rp = self.dir.join("cms-root.pem");
        pem_file(&rp, &[&root.certificate])?;
        let o = Command::new("openssl")
            .args(["cms", "-verify", "-inform", "DER", "-purpose", "any", "-out", "/dev/null", "-in"])
            .arg(self.dir.join("document.p7m"))
            .arg("-CAfile")
            .arg(&rp)
            .output()
            .context("cannot run openssl")?;
        let said = String::from_utf8_lossy(&o.stderr).trim().to_string();
        println!("   openssl cms -verify: {said}");
        ensure!(o.status.success(), "openssl cms -verify rejected the card's signature: {said}");
        let kid = SoftKey::ephemeral(KeyAlgorithm::Rsa2048)?;
        let child_req = IssueRequest {
            resident_code: child.as_str().to_owned(),
            signature_csr: Some(csr(&kid)?),
            authentication_csr: None,
            request_id: None,
            ..req
        };
        match self.ca.issue("window-W13101001", &child_req, &self.source, now).await {
            Err(e) => println!("   signature certificate for the newborn {child}: {e}"),
            Ok(_) => anyhow::bail!("a signature certificate was issued to a child"),
        }
        self.issued = Some(issued);
        self.start_validator(now).await?;
        for kind in [CertKind::Signature, CertKind::Authentication] {
            let st = self.ocsp(kind, now).await?;
            println!("   verifier: openssl ocsp for the {} certificate: {st}", kind.name());
            ensure!(st.ends_with(": good"), "OCSP should say good before the move");
        }
        Ok(())
    }

    async fn verify(&self, der: &[u8], purpose: Purpose, crls: &[PathBuf], now: i64) -> Result<(bool, String)> {
        let root = self.ca.current(&CaId::root(purpose, Environment::Production), now).await?;
        let int = self.ca.current(&CaId::issuing(purpose, Environment::Production, "13")?, now).await?;
        let (r, i, l) = (self.dir.join("root.pem"), self.dir.join("int.pem"), self.dir.join("leaf.pem"));
        pem_file(&r, &[&root.certificate])?;
        pem_file(&i, &[&int.certificate])?;
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

    /// Follows the feed (the move revokes the signature certificate) and publishes CRLs.
    pub async fn after_move(&self, now: i64) -> Result<()> {
        let r = self.ca.follow("ca-feed", &self.source, self.verifier.as_ref(), now).await?;
        for x in &r.revoked {
            println!("   revoked {} {} ({}) by {}", x.kind.name(), x.serial, x.reason.name(), x.cause);
        }
        println!("   {} feed entries applied, each checked against its signed notice; cursor {}", r.entries, r.cursor);
        let out = self.dir.join("publish");
        let published = self.ca.publish_crls("ca-operator-1", &out, now, &|_, _| {}).await?;
        let issued = self.issued.as_ref().context("nothing issued")?;
        for kind in [CertKind::Signature, CertKind::Authentication] {
            let c = issued.get(kind).context("missing certificate")?;
            let crl = published.iter().find(|p| p.ca == c.ca && p.shard == c.shard).context("no CRL for the shard")?;
            let purpose = if kind == CertKind::Signature { Purpose::Signature } else { Purpose::Authentication };
            let root_slug = CaId::root(purpose, Environment::Production).slug();
            let arl = published.iter().find(|p| p.ca == root_slug).context("no ARL")?;
            println!(
                "   {} g{} shard {} CRL #{}: {} entries, {} bytes",
                crl.ca, crl.generation, crl.shard, crl.number, crl.entries, crl.bytes
            );
            let (ok, out) = self.verify(&c.der, purpose, &[crl.path.clone(), arl.path.clone()], now).await?;
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
        let t = std::time::Instant::now();
        loop {
            let st = self.ocsp(CertKind::Signature, now).await?;
            if st.contains("revoked") || t.elapsed() > std::time::Duration::from_secs(3) {
                println!(
                    "   verifier: openssl ocsp for the signature certificate: {st} ({} ms after the revocation)",
                    t.elapsed().as_millis()
                );
                ensure!(st.contains("revoked"), "OCSP should say revoked after the move");
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let st = self.ocsp(CertKind::Authentication, now).await?;
        println!("   verifier: openssl ocsp for the authentication certificate: {st}");
        ensure!(st.ends_with(": good"), "the authentication certificate stays good after a move");
        Ok(())
    }

    /// Enrols delegated responders for the two issuing CAs and serves OCSP and CRLs on the
    /// port written into the certificates.
    async fn start_validator(&mut self, now: i64) -> Result<()> {
        let mut responders = Vec::new();
        for purpose in [Purpose::Signature, Purpose::Authentication] {
            let ca = CaId::issuing(purpose, Environment::Production, "13")?;
            let key = SoftKey::ephemeral(KeyAlgorithm::Rsa2048)?;
            let c = self
                .ca
                .issue_responder("ca-operator-1", &ca, ca::key::KeyBackend::public_key_der(&key), 30, now)
                .await?;
            responders.push(validator::responder::Responder::new(std::sync::Arc::new(key), &c.der)?);
        }
        let svc = std::sync::Arc::new(
            validator::responder::Service::open(
                ca::status::StatusReader::open(&self.dir.join("ca.db").display().to_string()).await?,
                responders,
                86_400,
                100.0,
            )
            .await?,
        );
        let n = svc.load(now).await?;
        let state = std::sync::Arc::new(validator::http::AppState {
            ocsp: svc.clone(),
            crl_dir: Some(self.dir.join("publish")),
            crl_max_age: 3600,
        });
        let l = tokio::net::TcpListener::bind(("127.0.0.1", self.port)).await?;
        let poller = svc.clone();
        self.validator = Some(tokio::spawn(async move {
            let serve = net::server::Server::new(validator::http::router(state), net::server::Transport::Plain)
                .shed(std::sync::Arc::new(validator::http::overloaded))
                .serve(l, std::future::pending());
            let poll = async {
                loop {
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    let _ = poller.poll(identity::http::now()).await;
                }
            };
            tokio::select! { _ = serve => {}, _ = poll => {} }
        }));
        println!(
            "   validator: delegated OCSP responders for sign-13 and auth-13 (keys held by the validator, not the CA); {n} certificates pre-signed; http://127.0.0.1:{}/ocsp",
            self.port
        );
        Ok(())
    }

    /// `openssl ocsp` against the validator for one of the resident's certificates.
    async fn ocsp(&self, kind: CertKind, now: i64) -> Result<String> {
        let c = self.issued.as_ref().and_then(|i| i.get(kind)).context("nothing issued")?;
        let purpose = if kind == CertKind::Signature { Purpose::Signature } else { Purpose::Authentication };
        let root = self.ca.current(&CaId::root(purpose, Environment::Production), now).await?;
        let int = self.ca.current(&CaId::issuing(purpose, Environment::Production, "13")?, now).await?;
        let (r, i, l) = (self.dir.join("o-root.pem"), self.dir.join("o-int.pem"), self.dir.join("o-leaf.pem"));
        pem_file(&r, &[&root.certificate])?;
        pem_file(&i, &[&int.certificate])?;
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
