//! `jpki bench issuance`: a window's certificate issuance through the CA service (window →
//! `ca::service` over mutual TLS 1.3, the clerk's signature checked, the resident's
//! municipality checked at the national node → certificates back) against the same issuance
//! in process (`Authority::issue_at_window`, the same identity source, the same database
//! settings), in the same run. Each issuance certifies two keys (signature and
//! authentication) of a distinct resident; RSA-2048 CA keys, SQLite with synchronous=FULL, an
//! in-process national node (real notice keys from a network CA). Concurrency: [`TASKS`]
//! windows' requests in flight.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ca::authority::{Authority, IssueRequest, Settings};
use ca::hierarchy::Environment;
use ca::identity_source::IdentitySource;
use ca::key::{KeyAlgorithm, SoftKey};
use ca::keystore::KeyStore;
use ca::service::{CaService, IssueBody, IssuedBody};
use identity::ids::{LgCode, ResidentCode};
use identity::law::{AgencyClass, LawTable};
use identity::municipal::Municipality;
use identity::national::National;
use identity::notice::{NoticeKind, parse_date};
use identity::operator::{Operator, Role};
use identity::party::Party;
use identity::person::{FlaggedText, FourItems, Sex};
use identity::replica::{self, Tier};
use identity::store::Db;
use net::secret::Secret;

use super::ca::median;

const RUNS: usize = 3;
/// Issuances (residents) per run and path.
const ISSUANCES: usize = 60;
/// Requests in flight.
const TASKS: usize = 8;

fn csr(k: &SoftKey) -> Result<Vec<u8>> {
    let mut b = openssl::x509::X509ReqBuilder::new()?;
    b.set_pubkey(k.pkey()?)?;
    b.sign(k.pkey()?, openssl::hash::MessageDigest::sha384())?;
    Ok(b.build().to_der()?)
}

/// Registers `n` residents at `m` and replicates them to `national`.
async fn residents(
    m: &Municipality,
    national: &National,
    verifier: &dyn identity::notice_sig::NoticeVerifier,
    n: usize,
    now: i64,
) -> Result<Vec<ResidentCode>> {
    let clerk = Operator::new("bench-clerk", Role::MunicipalClerk)?;
    let mut out = Vec::new();
    for i in 0..n {
        let items = FourItems {
            name: FlaggedText::plain("name", &format!("山田　花子{i}"))?,
            address: FlaggedText::plain("address", "東京都千代田区千代田一丁目1番1号")?,
            date_of_birth: parse_date("dob", "1980-02-29")?,
            sex: Sex::Female,
        };
        let n = m.register(&clerk, NoticeKind::FirstRegistration, items, parse_date("d", "2026-04-01")?, now).await?;
        out.push(n.body.record.resident_code);
    }
    let mut after = 0;
    loop {
        let page = identity::store::notices_after(m.db(), "131016", after, 1000).await?;
        let Some(last) = page.last() else { break };
        after = last.key.seq;
        replica::apply_batch(national.db(), Tier::National, verifier, &page).await?;
    }
    Ok(out)
}

/// A resident code and the CSRs of its signature and authentication keys.
type CardOrder = (String, Vec<u8>, Vec<u8>);

/// One request per resident: two fresh P-384 keys, their CSRs.
fn requests(codes: &[ResidentCode]) -> Result<Vec<CardOrder>> {
    codes
        .iter()
        .map(|c| {
            let (s, a) = (SoftKey::ephemeral(KeyAlgorithm::EcP384)?, SoftKey::ephemeral(KeyAlgorithm::EcP384)?);
            Ok((c.as_str().to_owned(), csr(&s)?, csr(&a)?))
        })
        .collect()
}

/// Runs `work` for every item with [`TASKS`] in flight; returns certificates per second.
async fn rate<T: Send + 'static, F>(items: Vec<T>, work: F) -> Result<f64>
where
    F: Fn(T) -> futures_util::future::BoxFuture<'static, Result<usize>> + Send + Sync + 'static,
{
    use futures_util::StreamExt as _;
    let t = Instant::now();
    let certs: Vec<Result<usize>> = futures_util::stream::iter(items).map(work).buffer_unordered(TASKS).collect().await;
    let n = certs.into_iter().sum::<Result<usize>>()?;
    Ok(n as f64 / t.elapsed().as_secs_f64())
}

/// Runs the benchmark and prints its table.
pub async fn run() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let now = identity::http::now();
    let pass = Secret::new(hex::encode(rand::random::<[u8; 16]>()).into_bytes());
    // The network: its CA, the CA service's and the window's credentials, the clerk's key,
    // the municipality's notice key.
    let netdir = dir.path().join("net");
    let netca = ca::network::NetworkCa::init(&netdir, &pass, now)?;
    let trust = net::credential::Trust { ca_file: netdir.join("ca.pem"), crl_file: Some(netdir.join("crl.pem")) };
    let (ca_party, window) = (Party::Ca("bench-ca".into()), Party::Window("131016:W01".into()));
    let clerk = Party::Clerk("131016:C0001".into());
    netca.issue_tls(&ca_party, &["127.0.0.1".into()], 30, now, &netdir.join("ca-service"), &pass)?;
    netca.issue_tls(&window, &[], 30, now, &netdir.join("window-w01"), &pass)?;
    netca.issue_clerk_key(&clerk, 30, now, &netdir.join("clerk-c0001"), &pass)?;
    let code: LgCode = "131016".parse()?;
    netca.issue_notice_key(&code, 30, now, &netdir.join("notice-131016"), &pass)?;
    let signer = net::notice_key::Signer::load(&netdir.join("notice-131016"), &pass, &code)?;
    let verifier = net::notice_key::Verifier::new(trust.clone());
    // The identity network in process: the municipality (pool, signed notices) and the national node.
    let m = Municipality::open(Db::open(&dir.path().join("m.db").display().to_string()).await?, code.clone())
        .await?
        .with_signer(signer)
        .await?;
    let pool: Vec<ResidentCode> = (0..(2 * RUNS * ISSUANCES + 10) as u64)
        .map(|i| {
            let v = 5_000_000 + i;
            ResidentCode::from_body(std::array::from_fn(|k| ((v / 10u64.pow(9 - k as u32)) % 10) as u8))
        })
        .collect::<std::result::Result<_, _>>()?;
    m.add_pool(&pool).await?;
    let law = Arc::new(LawTable::seed().context("built-in law table")?);
    let national = National::open(Db::open(&dir.path().join("n.db").display().to_string()).await?, law).await?;
    let keys = identity::store::notice_keys(m.db(), code.as_str()).await?;
    replica::admit_keys(national.db(), verifier.as_ref(), &code, &keys, now).await?;
    let op = Operator::new("bench-op", Role::NationalOperator)?;
    national.provider().register_agency(&op, "bench-ca", "CA", AgencyClass::NationalBody, &["B1-020"], now).await?;
    let agency = national.provider().registered_agency("bench-ca").await?.context("agency")?;
    let source = IdentitySource::Local { national: national.clone(), agency };
    // The CA: RSA-2048 roots; the prefecture-unit CAs are made by a first issuance.
    let ks = KeyStore::soft(&dir.path().join("ca-keys"), Secret::new(b"bench CA passphrase".to_vec()))?;
    let mut authority =
        Authority::open(ca::schema::open(&dir.path().join("ca.db").display().to_string()).await?, ks, now).await?;
    authority.init("bench-op", Environment::Production, Settings { shards: 4, ..Settings::default() }, now).await?;
    let authority = Arc::new(authority);
    let warm = residents(&m, &national, verifier.as_ref(), 1, now).await?;
    let (w, s, a) = requests(&warm)?.remove(0);
    let req = |id: String, code: String, s: Vec<u8>, a: Vec<u8>| IssueRequest {
        resident_code: code,
        window: "W01".into(),
        card_expiry: time::macros::date!(2035 - 12 - 31),
        environment: Environment::Production,
        signature_csr: Some(s),
        authentication_csr: Some(a),
        request_id: Some(id),
    };
    authority.issue_at_window("bench", "131016", &req("warm".into(), w, s, a), &source, now).await?;
    // The CA service on a loopback port, and the window's client with its clerk.
    let svc = CaService::new(authority.clone(), source.clone(), trust.clone(), None, None, identity::http::now);
    let ca_cred = net::credential::Credential::load(&netdir.join("ca-service"), &pass)?;
    let (config, _) = net::tls::server_config(&ca_cred, &trust)?;
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("https://{}", l.local_addr()?);
    let server = net::server::Server::new(ca::service::router(svc), net::server::Transport::Tls(config));
    let serving = tokio::spawn(async move { server.serve(l, std::future::pending()).await });
    let window_cred = net::credential::Credential::load(&netdir.join("window-w01"), &pass)?;
    let client = net::client::client(&window_cred, &trust, Some(ca_party.clone()))?;
    let clerk_key = net::clerk::ClerkKey::load(&netdir.join("clerk-c0001"), &pass)?;

    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!(
        "Issuance benchmark ({threads} cores, {RUNS} runs, medians; {ISSUANCES} residents × 2 certificates per run and path, {TASKS} requests in flight)\n"
    );
    let (mut local, mut remote) = (Vec::new(), Vec::new());
    for run in 0..RUNS {
        // In process.
        let codes = residents(&m, &national, verifier.as_ref(), ISSUANCES, now).await?;
        let (a, src) = (authority.clone(), source.clone());
        let items: Vec<_> = requests(&codes)?.into_iter().enumerate().collect();
        local.push(
            rate(items, move |(i, (code, s, c))| {
                let (a, src) = (a.clone(), src.clone());
                let r = req(format!("local-{run}-{i}"), code, s, c);
                Box::pin(async move {
                    let issued = a.issue_at_window("bench", "131016", &r, &src, identity::http::now()).await?;
                    Ok(issued.certificates.len())
                })
            })
            .await?,
        );
        // Through the CA service.
        let codes = residents(&m, &national, verifier.as_ref(), ISSUANCES, now).await?;
        let items: Vec<_> = requests(&codes)?.into_iter().enumerate().collect();
        let (client, clerk_key, window, url) = (client.clone(), clerk_key.clone(), window.clone(), url.clone());
        remote.push(
            rate(items, move |(i, (code, s, c))| {
                let (client, clerk_key, window, url) = (client.clone(), clerk_key.clone(), window.clone(), url.clone());
                Box::pin(async move {
                    let body = IssueBody {
                        request_id: format!("remote-{run}-{i}"),
                        resident: code,
                        window: "W01".into(),
                        card_serial: "0102030405060708".into(),
                        card_expiry: "2035-12-31".into(),
                        environment: "prod".into(),
                        renew: false,
                        signature_csr: Some(B64.encode(&s)),
                        authentication_csr: Some(B64.encode(&c)),
                    };
                    let bytes = serde_json::to_vec(&body)?;
                    let mut rq = client.post(format!("{url}/v1/issue")).header("content-type", "application/json");
                    for (k, v) in clerk_key.headers(&window, "POST", "/v1/issue", &bytes, identity::http::now())? {
                        rq = rq.header(k, v);
                    }
                    let r = rq.body(bytes).send().await?;
                    ensure!(r.status().is_success(), "the CA service answered {}", r.status());
                    let issued: IssuedBody = r.json().await?;
                    Ok(issued.certificates.len())
                })
            })
            .await?,
        );
    }
    serving.abort();
    let (l, r) = (median(local), median(remote));
    println!("| path | certificates/s | ratio |");
    println!("|---|---:|---:|");
    println!("| in process: `Authority::issue_at_window` (reference) | {l:.1} | 1.00 |");
    println!("| CA service: window → mutual TLS → clerk check → certificates back | {r:.1} | {:.2} |", r / l);
    Ok(())
}
