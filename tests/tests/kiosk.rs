//! コンビニ交付 end to end, every party its own process with its own credential over mutual
//! TLS: the identity network, the CA service, the validator (OCSP), a window that issues the
//! resident's card through pcscd + vpcd + our virtual card, the municipality node serving kiosks,
//! and two kiosks (`jpki kiosk issue`, and the test itself playing a hostile or slow kiosk with
//! the kiosk crate's card side through PC/SC).
//!
//! Needs pcscd with the vpcd readers (`cargo xtask pcsc up`) and uses the fixed vpcd ports:
//! run it under `flock /work/notes/card.lock` next to other card tests.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test: a panic is a failed test

mod common;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{
    AUTH_PIN, ISSUER_KEY, Kill, Network, READER0, READER1, SIGN_PIN, card_sim, free_port, jpki, jpki_bin, ready,
    require_pcsc_stack, text,
};
use identity::kiosk::{ChallengeAnswer, IssueRequest};
use identity::party::Party;
use sqlx::Row;

const PASS: &str = "kiosk-test-validator-passphrase";
const DOC_KEY_PASS: &str = "document-signing key passphrase";
/// The municipality node's kiosk session lifetime in this test.
const SESSION_SECS: i64 = 6;

/// `jpki card issue` as window `window:131016:W01` with clerk `clerk:131016:C1` (their own
/// credentials only); returns the authentication certificate's serial.
fn issue_card(net: &Network, ca_url: &str, reader: &str, resident: &str, env_name: &str) -> String {
    let mut env = net.pki.env("window");
    env.push(("JPKI_CLERK".into(), net.pki.prefix("clerk").display().to_string()));
    env.push(("JPKI_CLERK_PASSPHRASE".into(), common::NetPki::PASSPHRASE.into()));
    env.push(("JPKI_CA_URL".into(), ca_url.into()));
    env.push(("JPKI_CARD_AUTH_PIN".into(), AUTH_PIN.into()));
    env.push(("JPKI_CARD_SIGN_PIN".into(), SIGN_PIN.into()));
    let args = [
        "card",
        "issue",
        "--reader",
        reader,
        "--resident",
        resident,
        "--card-expiry",
        "2035-12-31",
        "--env",
        env_name,
        "--wait",
        "10",
    ];
    let o = jpki(&args, &env);
    assert!(o.status.success(), "card issue: {}", text(&o));
    text(&o)
        .lines()
        .find(|l| l.trim_start().starts_with("authentication certificate") && l.contains("written"))
        .and_then(|l| l.split_whitespace().nth(2))
        .unwrap_or_else(|| panic!("no authentication certificate in: {}", text(&o)))
        .to_owned()
}

/// The kiosks of the test and the municipality they talk to.
struct Kiosks<'a> {
    net: &'a Network,
    municipality: String,
}

impl Kiosks<'_> {
    /// `jpki kiosk issue` as kiosk credential `name` with the resident's `pin`, plus `extra`.
    fn run(&self, name: &str, reader: &str, pin: &str, extra: &[&str]) -> Output {
        let target = format!("131016={}", self.municipality);
        let mut env = self.net.pki.env(name);
        env.push(("JPKI_KIOSK_PIN".into(), pin.into()));
        let args =
            [&["kiosk", "issue", "--municipality", &target, "--reader", reader, "--wait", "5"][..], extra].concat();
        let mut c = Command::new(jpki_bin());
        c.args(&args).env_clear().envs(env);
        if let Some(p) = std::env::var_os("PATH") {
            c.env("PATH", p);
        }
        c.output().unwrap()
    }

    /// A mutual-TLS client of kiosk credential `name`, pinned to the municipality.
    fn client(&self, name: &str) -> reqwest::Client {
        self.net.pki.client(name, Some(Party::Municipality("131016".parse().unwrap())))
    }

    async fn challenge(&self, name: &str) -> ChallengeAnswer {
        let r = self.client(name).post(format!("{}/v1/kiosk/challenge", self.municipality)).send().await.unwrap();
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }

    /// Submits `q` as kiosk `name`: (status, reason or "", body).
    async fn submit(&self, name: &str, q: &IssueRequest) -> (u16, String, serde_json::Value) {
        let r = self.client(name).post(format!("{}/v1/kiosk/issue", self.municipality)).json(q).send().await.unwrap();
        let status = r.status().as_u16();
        let body: serde_json::Value = r.json().await.unwrap();
        (status, body["reason"].as_str().unwrap_or_default().to_owned(), body)
    }
}

/// The card in `reader` signs `ch` (PIN verified on the card), through PC/SC.
fn card_signs(reader: &str, ch: &ChallengeAnswer) -> kiosk::client::CardAnswer {
    tokio::task::block_in_place(|| kiosk::client::sign_with_card(reader, Duration::from_secs(5), AUTH_PIN, ch))
        .unwrap()
        .unwrap_or_else(|o| panic!("the card refused: {o:?}"))
}

/// Waits until the validator at `base` answers its health check.
async fn validator_up(base: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !reqwest::get(format!("{base}/health")).await.is_ok_and(|r| r.status().is_success()) {
        assert!(Instant::now() < deadline, "validator did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kiosk_issues_only_for_the_card_that_signs_its_fresh_challenge() {
    require_pcsc_stack();
    let dir = tempfile::tempdir().unwrap();
    let d = |f: &str| dir.path().join(f).display().to_string();
    let vport = free_port();
    let vbase = format!("http://127.0.0.1:{vport}");
    let net = Network::start_with(dir.path(), &["--crl-base", &vbase, "--ocsp-url", &format!("{vbase}/ocsp")]).await;
    // The test hierarchy too (its own roots and policies), for a card that must be refused.
    let o = net.jpki(&[
        "ca",
        "init",
        "--actor",
        "op-1",
        "--env",
        "test",
        "--shards",
        "2",
        "--crl-base",
        &vbase,
        "--ocsp-url",
        &format!("{vbase}/ocsp"),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let resident = net.resident("山田　花子", "1980-02-29").await;
    let (_ca, ca_url) = net.serve_ca(ISSUER_KEY).await;

    // The validator: its own credential, responder keys certified by the CA service, status
    // from the CA service's stream.
    let (venv, _) = net.enrol_validator(&ca_url, &d("v"), PASS);
    // The resident's card, issued at the window of 131016.
    net.pki.issue("window", "window:131016:W01", false);
    net.pki.clerk_key("clerk", "clerk:131016:C1");
    let _card = card_sim(&dir.path().join("card.json"), 35963, None);
    let auth_serial = issue_card(&net, &ca_url, READER0, &resident, "prod");

    // The validator, enrolled before this first card of prefecture 13 was issued: the card's
    // issuing CA (auth-13) came into existence with it (docs/ca.md), so the validator has no
    // responder for it yet and answers its OCSP requests `unauthorized` (below, step 0). It
    // runs without --auto-enroll here, so that it stays so (a validator that enrols by itself:
    // tests/tests/validator_enroll.rs).
    let o = net.jpki(&["ca", "crl", "--actor", "op-1", "--out", &d("pub")]);
    assert!(o.status.success(), "{}", text(&o));
    let start_validator = |log: &str| {
        Kill(
            Command::new(jpki_bin())
                .args(["serve", "validator", "--ca-service", &ca_url, "--responders", &d("v"), "--crl-dir", &d("pub")])
                .args(["--listen", &format!("127.0.0.1:{vport}"), "--auto-enroll", "false"])
                .envs(venv.iter().map(|(k, v)| (k, v)))
                .stderr(std::fs::File::create(d(log)).unwrap())
                .spawn()
                .unwrap(),
        )
    };
    let validator = start_validator("validator.log");
    validator_up(&vbase).await;

    // The municipality node again, now serving kiosks: the CA service, this network's
    // validator, the production authentication root; its log kept for the personal-data check.
    std::fs::write(d("auth-root.pem"), net.jpki(&["ca", "cert", "--actor", "op-1", "auth-root"]).stdout).unwrap();
    std::fs::write(d("auth-13.pem"), net.jpki(&["ca", "cert", "--actor", "op-1", "auth-13"]).stdout).unwrap();
    // The municipality's document-signing key, from the organisation CA (a file CA).
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let secret = |s: &str| net::secret::Secret::new(s.as_bytes().to_vec());
    let org = ca::network::NetworkCa::init_kind(
        ca::network::FileCaKind::Organisation,
        &dir.path().join("org"),
        &secret("organisation CA passphrase"),
        now,
    )
    .unwrap();
    let signer = org
        .issue_document_signer(
            &"131016".parse().unwrap(),
            "Chiyoda-ku",
            &format!("{vbase}/org/crl.der"),
            30,
            now,
            &dir.path().join("chiyoda-document"),
            ca::network::SubjectKey::Generate(&secret(DOC_KEY_PASS)),
        )
        .unwrap();
    let doc_key = signer.key.clone().unwrap().display().to_string();
    let doc_chain = signer.chain.display().to_string();
    let mport: u16 = net.municipality.rsplit(':').next().unwrap().parse().unwrap();
    let mut net = net;
    drop(net.nodes.remove(0));
    let session = SESSION_SECS.to_string();
    let node_args = [
        "serve",
        "municipality",
        "--db",
        &d("m.db"),
        "--code",
        "131016",
        "--listen",
        &format!("127.0.0.1:{mport}"),
        "--notice-key",
        &net.pki.prefix("m131016-notice").display().to_string(),
        "--kiosk-ca-url",
        &ca_url,
        "--kiosk-validator",
        &vbase,
        "--kiosk-anchor",
        &d("auth-root.pem"),
        "--kiosk-intermediate",
        &d("auth-13.pem"),
        "--kiosk-session-secs",
        &session,
        "--kiosk-document-key",
        &doc_key,
        "--kiosk-document-chain",
        &doc_chain,
        "--kiosk-municipality-name",
        "東京都千代田区",
    ];
    // The node's environment: its credential and the document key's passphrase.
    let mut node_env = net.pki.env("m131016");
    node_env.push(("JPKI_KIOSK_DOCUMENT_KEY_PASSPHRASE".into(), DOC_KEY_PASS.into()));
    // A test-hierarchy root cannot anchor kiosk cards: the node refuses to start.
    let o = net.jpki(&["ca", "cert", "--actor", "op-1", "test-auth-root"]);
    assert!(o.status.success() && o.stdout.starts_with(b"-----BEGIN CERTIFICATE"), "{}", text(&o));
    std::fs::write(d("test-root.pem"), o.stdout).unwrap();
    let mut bad = node_args.to_vec();
    let at = bad.iter().position(|a| *a == "--kiosk-anchor").unwrap() + 1;
    let test_root = d("test-root.pem");
    bad[at] = &test_root;
    let o = jpki(&bad, &node_env);
    assert!(!o.status.success() && text(&o).contains("test-hierarchy root"), "{}", text(&o));
    std::fs::write(d("empty.pem"), b"").unwrap();
    let empty = d("empty.pem");
    bad[at] = &empty;
    let o = jpki(&bad, &node_env);
    assert!(!o.status.success() && text(&o).contains("not a certificate"), "{}", text(&o));
    let _node = Kill(
        Command::new(jpki_bin())
            .args(node_args)
            .env_remove("JPKI_DB")
            .envs(node_env)
            .stderr(std::fs::File::create(d("municipality.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    ready(&net.municipality, &net.pki.client("op1", None)).await;
    net.pki.issue("kiosk1", "kiosk:cvs-0001", false);
    net.pki.issue("kiosk2", "kiosk:cvs-0002", false);
    let k = Kiosks { net: &net, municipality: net.municipality.clone() };
    let node_log = || std::fs::read_to_string(d("municipality.log")).unwrap_or_default();

    // 0. The validator has no responder for the card's issuing CA: its OCSP answer is an
    // error response (`unauthorized`), which settles nothing: the check cannot be made (not a
    // verdict on the card), nothing issued, and the node's log says why.
    let o = k.run("kiosk1", READER0, AUTH_PIN, &[]);
    assert!(!o.status.success() && text(&o).contains("check_unavailable"), "{}", text(&o));
    let log = node_log();
    assert!(
        log.lines().any(|l| l.contains("answered unauthorized") && l.contains("/ocsp")),
        "the node did not log the validator's error response: {log}"
    );
    // The operator enrols the validator again (the responder keys it has are kept; auth-13 and
    // sign-13 are added) and restarts it.
    let o = common::jpki(&["validator", "enroll", "--out", &d("v")], &venv);
    assert!(o.status.success() && text(&o).contains("auth-13 g1: responder certificate"), "{}", text(&o));
    drop(validator);
    let _validator = start_validator("validator2.log");
    validator_up(&vbase).await;

    // 1. A good card: the record of the card's holder, found through the CA's records (the
    // kiosk sent no name, no code). The resident asked for the 住民票コード.
    let o = k.run(
        "kiosk1",
        READER0,
        AUTH_PIN,
        &["--with-resident-code", "--out", &d("doc.pdf"), "--transcript", &d("t.json")],
    );
    let out = text(&o);
    assert!(o.status.success(), "{out}\nthe node's log:\n{}", node_log());
    for want in [
        "証明書を交付しました",
        "山田　花子",
        "東京都千代田区1",
        "1980-02-29",
        "女",
        resident.as_str(),
        "document: signed PDF",
    ] {
        assert!(out.contains(want), "{want}: {out}");
    }
    // The document is the municipality's signed PDF: its text (poppler's pdftotext) shows the
    // record, and pdfsig finds one intact signature by the municipality's document key.
    let pdf_text = |f: &str| text(&Command::new("pdftotext").args([f, "-"]).output().unwrap());
    let page = pdf_text(&d("doc.pdf"));
    for want in ["山田", "花子", "東京都千代田区1", resident.as_str(), "東京都千代田区"] {
        assert!(page.contains(want), "{want} not on the page: {page}");
    }
    let o = Command::new("pdfsig").arg(d("doc.pdf")).output().unwrap();
    assert!(text(&o).contains("Signature is Valid") && text(&o).contains("Chiyoda-ku"), "{}", text(&o));
    let sent = std::fs::read_to_string(d("t.json")).unwrap();
    assert!(
        !sent.contains(&resident) && !sent.contains("山田"),
        "the kiosk sent something naming the resident: {sent}"
    );
    // Without asking, no 住民票コード, on the screen or the page.
    let o = k.run("kiosk1", READER0, AUTH_PIN, &["--out", &d("doc2.pdf")]);
    assert!(o.status.success() && !text(&o).contains(&resident), "{}", text(&o));
    let page = pdf_text(&d("doc2.pdf"));
    assert!(page.contains("花子") && !page.contains(&resident), "{page}");

    // 2. Replay: the captured request, as is, from the same kiosk.
    let captured: IssueRequest = serde_json::from_str(&sent).unwrap();
    let (status, reason, _) = k.submit("kiosk1", &captured).await;
    assert_eq!((status, reason.as_str()), (403, "challenge_unknown"));

    // 3. A wrong PIN: the card refuses it and says how many tries are left; nothing issued.
    let o = k.run("kiosk1", READER0, "9999", &[]);
    assert!(!o.status.success() && text(&o).contains("暗証番号が違います（残り2回）"), "{}", text(&o));
    let o = net.jpki(&["card", "status", "--reader", READER0]);
    assert!(text(&o).contains("authentication PIN: 2/3 tries left"), "{}", text(&o));
    let o = k.run("kiosk1", READER0, AUTH_PIN, &[]);
    assert!(o.status.success(), "{}", text(&o));

    // 4. Another kiosk's challenge: refused, and it stays good for its own kiosk.
    let ch = k.challenge("kiosk1").await;
    let signed = card_signs(READER0, &ch);
    let q = kiosk::client::request(&ch, &signed, false);
    let (status, reason, body) = k.submit("kiosk2", &q).await;
    assert_eq!((status, reason.as_str()), (403, "challenge_other_kiosk"), "{body}");
    assert!(body["message"].as_str().unwrap().contains("別の端末"), "{body}");
    let (status, _, body) = k.submit("kiosk1", &q).await;
    assert_eq!(status, 200, "{body}");
    // A window (or any other party) cannot open a kiosk session.
    let w = net.pki.client("window", Some(Party::Municipality("131016".parse().unwrap())));
    let r = w.post(format!("{}/v1/kiosk/challenge", k.municipality)).send().await.unwrap();
    assert_eq!(r.status(), 403);

    // 5. A signature over another challenge: refused, the challenge used up.
    let (a, b) = (k.challenge("kiosk1").await, k.challenge("kiosk1").await);
    let over_a = card_signs(READER0, &a);
    let (status, reason, _) = k.submit("kiosk1", &kiosk::client::request(&b, &over_a, false)).await;
    assert_eq!((status, reason.as_str()), (403, "bad_signature"));
    let (status, reason, _) = k.submit("kiosk1", &kiosk::client::request(&b, &over_a, false)).await;
    assert_eq!((status, reason.as_str()), (403, "challenge_unknown"));

    // 6. An expired session: signed in time, submitted too late.
    let ch = k.challenge("kiosk1").await;
    let late = card_signs(READER0, &ch);
    let wait = u64::try_from(ch.expires_at + 1 - time::OffsetDateTime::now_utc().unix_timestamp()).unwrap_or(0);
    tokio::time::sleep(Duration::from_secs(wait)).await;
    let (status, reason, body) = k.submit("kiosk1", &kiosk::client::request(&ch, &late, false)).await;
    assert_eq!((status, reason.as_str()), (403, "session_expired"), "{body}");

    // 7. The card's authentication certificate revoked: refused once the validator knows.
    net.revoke(&auth_serial);
    let deadline = Instant::now() + Duration::from_secs(30);
    let out = loop {
        let o = k.run("kiosk2", READER0, AUTH_PIN, &[]);
        if !o.status.success() {
            break text(&o);
        }
        assert!(Instant::now() < deadline, "still issued after the revocation: {}", text(&o));
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(out.contains("certificate_revoked") && out.contains("失効しています"), "{out}");

    // 8. A test-hierarchy card: refused with its own message.
    let _test_card = card_sim(&dir.path().join("test-card.json"), 35964, None);
    issue_card(&net, &ca_url, READER1, &resident, "test");
    let o = k.run("kiosk2", READER1, AUTH_PIN, &[]);
    assert!(!o.status.success() && text(&o).contains("certificate_test"), "{}", text(&o));
    assert!(text(&o).contains("テスト用の証明書"), "{}", text(&o));

    // The operator log names the kiosk for every issuance, with the items and the serial; the
    // node's log names kiosks and reasons, never the resident.
    let db = identity::store::Db::open(&d("m.db")).await.unwrap();
    let rows = sqlx::query("SELECT operator, role, subject FROM operator_log WHERE action = 'kiosk_issue' ORDER BY at")
        .fetch_all(db.pool())
        .await
        .unwrap();
    let issued: Vec<(String, String, String)> =
        rows.iter().map(|r| (r.try_get(0).unwrap(), r.try_get(1).unwrap(), r.try_get(2).unwrap())).collect();
    assert!(issued.len() >= 4, "{issued:?}");
    assert!(
        issued
            .iter()
            .all(|(op, role, s)| op.starts_with("kiosk:cvs-000") && role == "kiosk" && s.starts_with(&resident))
    );
    assert!(issued[0].2.contains("resident_code") && !issued[1].2.contains("resident_code"), "{issued:?}");
    assert!(issued.iter().all(|(_, _, s)| s.contains(&format!("auth-cert={auth_serial}"))), "{issued:?}");
    let log = std::fs::read_to_string(d("municipality.log")).unwrap();
    for reason in [
        "challenge_unknown",
        "challenge_other_kiosk",
        "bad_signature",
        "session_expired",
        "certificate_test",
        "certificate_revoked",
    ] {
        assert!(log.lines().any(|l| l.contains("kiosk:cvs-000") && l.contains(reason)), "{reason} not logged: {log}");
    }
    for personal in [resident.as_str(), "山田", "千代田区", "1980-02-29"] {
        assert!(!log.contains(personal), "the node logged personal data ({personal}): {log}");
    }
    // The CA audited each holder answer under the municipality, and the refusals.
    let o = net.jpki(&["ca", "audit", "--actor", "auditor", "--limit", "1000"]);
    assert!(
        text(&o).lines().any(|l| l.contains("urn:jpki:municipality:131016") && l.contains("kiosk_holder")),
        "{}",
        text(&o)
    );
}
