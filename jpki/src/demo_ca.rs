//! The CA part of the main job: the CA registers at the national node as a B1-020 agency,
//! issues a resident's certificates from the prefecture-unit CAs of her prefecture (identity
//! items fetched over HTTP under the law table), then follows the change feed after her
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
use identity::store::Db;

/// The CA as the demo runs it.
#[derive(Debug)]
pub struct DemoCa {
    ca: Authority,
    source: IdentitySource,
    dir: PathBuf,
    issued: Option<Issued>,
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
pub async fn start(
    dir: &Path,
    national: &National,
    national_url: &str,
    op: &Operator,
    secret: Option<String>,
    now: i64,
) -> Result<DemoCa> {
    let keys = KeyStore::soft(&dir.join("ca-keys"), hex::encode(rand::random::<[u8; 16]>()).as_bytes())?;
    let db = Db::open(&dir.join("ca.db").display().to_string()).await?;
    let mut ca = Authority::open(db, keys, now).await?;
    let settings = Settings { shards: 4, ..Settings::default() };
    for g in ca.init("ca-operator-1", Environment::Production, settings, now).await? {
        println!(
            "   root {} g{}: {} key (encrypted PKCS#8 via OpenSSL), key id {}",
            g.ca,
            g.generation,
            g.algorithm.name(),
            hex::encode(&g.key_id[..8])
        );
    }
    let token = national
        .provider()
        .register_agency(op, "jpki-ca", "公的個人認証サービス CA", AgencyClass::NationalBody, &["B1-020"], now)
        .await?;
    println!("   the CA is registered at the national node as agency jpki-ca for B1-020 (公的個人認証法)");
    let source = IdentitySource::Http {
        provision: Peer::new(national_url),
        token,
        feed: Peer::new(national_url).with_token(secret),
    };
    Ok(DemoCa { ca, source, dir: dir.to_owned(), issued: None })
}

impl DemoCa {
    /// Issues both certificates to an adult and shows the refusal of a signature certificate
    /// to a child.
    pub async fn issue(&mut self, adult: &ResidentCode, child: &ResidentCode, now: i64) -> Result<()> {
        // The card, through the real PC/SC stack: keys generated on it, CSRs signed by it.
        let vc = crate::demo_card::VirtualCard::insert(&self.dir)?;
        let order = crate::card_cmd::Order {
            resident: adult.as_str().to_owned(),
            actor: "window-W13101001".into(),
            window: "W13101001".into(),
            card_expiry: "2036-12-31".into(),
            env: "prod".into(),
            alg: "rsa2048".into(),
            no_signature: false,
            issuer_key: vc.issuer_key,
            auth_pin: Some(crate::demo_card::AUTH_PIN.into()),
            sign_pin: Some(crate::demo_card::SIGN_PIN.into()),
        };
        let reader = crate::card_cmd::ReaderArgs { reader: crate::demo_card::READER.into(), wait: 10 };
        let report = crate::card_cmd::issue_card(
            &reader,
            &self.ca,
            &self.source,
            &order,
            crate::card_cmd::Mode::Issue { resume: false },
        )
        .await?;
        crate::card_cmd::print_report(&report);
        let issued = report.issued;
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
        drop(vc);
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
        let r = self.ca.follow("ca-feed", &self.source, now).await?;
        for x in &r.revoked {
            println!("   revoked {} {} ({}) by {}", x.kind.name(), x.serial, x.reason.name(), x.cause);
        }
        println!("   {} feed entries applied; cursor {}", r.entries, r.cursor);
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
        Ok(())
    }
}
