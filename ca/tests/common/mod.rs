//! Fixtures of the CA tests: an identity world (a municipality and the national node, on real
//! databases) with the CA registered as an agency for B1-020, a CA on its own database with a
//! software key store, subject keys with CSRs, and the independent oracles (`openssl`, `pkilint`).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // test fixtures: a panic is a failed test

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use ca::authority::{Authority, IssueRequest, Settings};
use ca::hierarchy::Environment;
use ca::identity_source::IdentitySource;
use ca::key::{KeyAlgorithm, KeyBackend, SoftKey};
use ca::keystore::KeyStore;
use identity::ids::{LgCode, ResidentCode};
use identity::law::{AgencyClass, LawTable};
use identity::municipal::Municipality;
use identity::national::National;
use identity::notice::{NoticeKind, parse_date};
use identity::operator::{Operator, Role};
use identity::person::{FlaggedText, FourItems, Sex};
use identity::replica::{self, Tier};
use identity::store::{self, Db, testing::TestDb};
use identity::test_keys::TestNetworkCa;

/// The identity network's CA for notice keys (the HMAC test double of `identity::test_keys`).
pub fn notice_ca() -> TestNetworkCa {
    TestNetworkCa::new("ca-tests")
}

/// 2026-11-24 00:00 UTC.
pub const NOW: i64 = 1_795_478_400;

pub fn clerk() -> Operator {
    Operator::new("clerk-1", Role::MunicipalClerk).unwrap()
}

pub fn items(name: &str, address: &str, dob: &str) -> FourItems {
    FourItems {
        name: FlaggedText::plain("name", name).unwrap(),
        address: FlaggedText::plain("address", address).unwrap(),
        date_of_birth: parse_date("dob", dob).unwrap(),
        sex: Sex::Female,
    }
}

pub fn codes(start: u64, n: usize) -> Vec<ResidentCode> {
    (0..n as u64)
        .map(|i| {
            let v = start + i;
            let body: [u8; 10] = std::array::from_fn(|k| ((v / 10u64.pow(9 - k as u32)) % 10) as u8);
            ResidentCode::from_body(body).unwrap()
        })
        .collect()
}

pub async fn fresh(like: &TestDb) -> TestDb {
    if like.label == "postgres" {
        store::testing::postgres().await.unwrap().unwrap()
    } else {
        store::testing::sqlite().unwrap()
    }
}

/// The identity network and a CA.
pub struct World {
    pub m: Municipality,
    pub national: National,
    pub source: IdentitySource,
    pub ca: Authority,
    pub dir: tempfile::TempDir,
    pub label: &'static str,
    pub dbs: Vec<TestDb>,
}

impl World {
    pub async fn new(like: &TestDb, alg: KeyAlgorithm) -> World {
        let (mdb, ndb, cdb) = (fresh(like).await, fresh(like).await, fresh(like).await);
        let code = "131016".parse::<LgCode>().unwrap();
        let m = Municipality::open(Db::open(&mdb.url).await.unwrap(), code.clone())
            .await
            .unwrap()
            .with_signer(notice_ca().issue(&code, "1"))
            .await
            .unwrap();
        m.add_pool(&codes(4_000_000, 30)).await.unwrap();
        let law = Arc::new(LawTable::parse(include_str!("../../../identity/seed/law_table.tsv")).unwrap());
        let national = National::open(Db::open(&ndb.url).await.unwrap(), law).await.unwrap();
        let keys = store::notice_keys(m.db(), code.as_str()).await.unwrap();
        replica::admit_keys(national.db(), &*notice_ca().verifier(), &code, &keys, NOW).await.unwrap();
        let op = Operator::new("nat-1", Role::NationalOperator).unwrap();
        national
            .provider()
            .register_agency(&op, "jlis-ca", "J-LIS CA", AgencyClass::NationalBody, &["B1-020"], NOW)
            .await
            .unwrap();
        let agency = national.provider().registered_agency("jlis-ca").await.unwrap().unwrap();
        let source = IdentitySource::Local { national: national.clone(), agency };
        let dir = tempfile::tempdir().unwrap();
        let keys =
            KeyStore::soft(&dir.path().join("keys"), net::secret::Secret::new(b"test passphrase".to_vec())).unwrap();
        let mut ca = Authority::open(ca::schema::open(&cdb.url).await.unwrap(), keys, NOW).await.unwrap();
        let settings = Settings { ca_algorithm: alg, shards: 4, ..Settings::default() };
        ca.init("op-1", Environment::Production, settings, NOW).await.unwrap();
        World { m, national, source, ca, dir, label: like.label, dbs: vec![mdb, ndb, cdb] }
    }

    /// Registers a resident and replicates the change to the national node.
    pub async fn register(&self, name: &str, dob: &str) -> ResidentCode {
        let n = self
            .m
            .register(
                &clerk(),
                NoticeKind::FirstRegistration,
                items(name, "東京都千代田区千代田1-1", dob),
                parse_date("d", "2026-04-01").unwrap(),
                NOW,
            )
            .await
            .unwrap();
        self.sync().await;
        n.body.record.resident_code
    }

    /// Copies the municipality's new notices to the national node.
    pub async fn sync(&self) {
        let notices = store::notices_after(self.m.db(), "131016", 0, 1000).await.unwrap();
        replica::apply_batch(self.national.db(), Tier::National, &*notice_ca().verifier(), &notices).await.unwrap();
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// A subject key held by a test "card", with a CSR as its proof of possession.
pub fn subject(alg: KeyAlgorithm) -> (SoftKey, Vec<u8>) {
    let k = SoftKey::ephemeral(alg).unwrap();
    let c = csr_for(&k);
    (k, c)
}

/// A PKCS#10 request signed by `k` (made by OpenSSL, as a card writer would).
pub fn csr_for(k: &SoftKey) -> Vec<u8> {
    let mut b = openssl::x509::X509ReqBuilder::new().unwrap();
    b.set_pubkey(k.pkey().unwrap()).unwrap();
    let md = match k.algorithm() {
        KeyAlgorithm::EcP384 => openssl::hash::MessageDigest::sha384(),
        _ => openssl::hash::MessageDigest::sha256(),
    };
    b.sign(k.pkey().unwrap(), md).unwrap();
    b.build().to_der().unwrap()
}

pub fn request(code: &ResidentCode, sig: Option<&[u8]>, auth: Option<&[u8]>) -> IssueRequest {
    IssueRequest {
        resident_code: code.as_str().to_owned(),
        window: "W1310101".into(),
        card_expiry: parse_date("card", "2036-01-01").unwrap(),
        environment: Environment::Production,
        signature_csr: sig.map(<[u8]>::to_vec),
        authentication_csr: auth.map(<[u8]>::to_vec),
        request_id: None,
    }
}

pub fn pem(label: &str, der: &[u8]) -> String {
    der::pem::encode_string(label, der::pem::LineEnding::LF, der).unwrap()
}

pub fn write_pem(path: &Path, label: &str, ders: &[&[u8]]) {
    let s: String = ders.iter().map(|d| pem(label, d)).collect();
    std::fs::write(path, s).unwrap();
}

/// Runs a command; returns (success, stdout+stderr).
pub fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// `openssl verify` of `leaf` to `root` through `intermediate`, optionally with CRLs.
pub fn openssl_verify(dir: &Path, root: &[u8], intermediate: &[u8], leaf: &[u8], crls: &[&Path]) -> (bool, String) {
    write_pem(&dir.join("root.pem"), "CERTIFICATE", &[root]);
    write_pem(&dir.join("int.pem"), "CERTIFICATE", &[intermediate]);
    write_pem(&dir.join("leaf.pem"), "CERTIFICATE", &[leaf]);
    let mut c = Command::new("openssl");
    c.arg("verify").arg("-CAfile").arg(dir.join("root.pem")).arg("-untrusted").arg(dir.join("int.pem"));
    if !crls.is_empty() {
        c.arg("-crl_check");
        for p in crls {
            c.arg("-CRLfile").arg(p);
        }
    }
    c.arg("-attime").arg((NOW + 3600).to_string()).arg(dir.join("leaf.pem"));
    run(&mut c)
}

/// pkilint of a certificate: findings at ERROR or above (the tool's exit status counts them).
pub fn pkilint_cert(dir: &Path, der: &[u8]) -> (bool, String) {
    let p = dir.join("lint.der");
    std::fs::write(&p, der).unwrap();
    run(Command::new("lint_pkix_cert").args(["lint", "-s", "ERROR", "--document-format", "DER"]).arg(&p))
}

/// pkilint of a CRL (`CRL`) or ARL (`ARL`) under the PKIX profile.
pub fn pkilint_crl(path: &Path, kind: &str) -> (bool, String) {
    run(Command::new("lint_crl")
        .args(["lint", "-t", kind, "-p", "PKIX", "-s", "ERROR", "--document-format", "DER"])
        .arg(path))
}

pub fn key_der(k: &SoftKey) -> Vec<u8> {
    k.public_key_der().to_vec()
}
