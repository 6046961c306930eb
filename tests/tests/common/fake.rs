//! A compromised (or merely controlled) prefecture for the end-to-end tests: an in-process
//! server with a genuine `prefecture:NN` credential serving chosen chains, and in-process
//! municipalities signing with genuine notice keys (used by trust.rs and id_console.rs).

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use identity::client::Heads;
use identity::ids::ResidentCode;
use identity::municipal::Municipality;
use identity::notice::{ChangeNotice, NoticeKind, parse_date};
use identity::operator::{Operator, Role};
use identity::person::{FlaggedText, FourItems, Sex};
use identity::store::{self, Db};
use net::notice_key::Signer;
use net::secret::Secret;
use net::server::{Server, Transport};

use super::NetPki;

/// A prefecture server the test controls, presenting a genuine `prefecture:NN` credential of
/// the network CA: it serves the replication routes from in-process municipal databases, each
/// advertised source read from a database and a source of the test's choosing (which need not
/// be the same), plus notices of its own appended after that chain.
pub struct FakePrefecture {
    /// (advertised source, database, source actually read from it).
    pub sources: Vec<(&'static str, Db, &'static str)>,
    /// Notices appended after the chain of the source they name.
    pub appended: Mutex<Vec<ChangeNotice>>,
    /// How many `GET /v1/sources/{s}/notices` it has answered (proves the node pulled it).
    pub notice_requests: AtomicUsize,
}

impl FakePrefecture {
    pub fn new(sources: Vec<(&'static str, Db, &'static str)>) -> Arc<Self> {
        Arc::new(Self { sources, appended: Mutex::new(Vec::new()), notice_requests: AtomicUsize::new(0) })
    }

    /// Everything served for `source` after seq `after`.
    pub async fn chain(&self, source: &str, after: u64) -> Vec<ChangeNotice> {
        let Some((_, db, read)) = self.sources.iter().find(|s| s.0 == source) else { return Vec::new() };
        let mut chain = store::notices_after(db, read, 0, identity::http::MAX_PAGE).await.unwrap();
        chain.extend(self.appended.lock().unwrap().iter().filter(|n| n.key.source.as_str() == source).cloned());
        chain.retain(|n| n.key.seq > after);
        chain
    }

    pub async fn heads(&self) -> Heads {
        let mut heads = Vec::new();
        for (source, ..) in &self.sources {
            if let Some(last) = self.chain(source, 0).await.last() {
                let hash = last.hash.iter().map(|b| format!("{b:02x}")).collect();
                heads.push(store::Head { source: (*source).to_owned(), seq: last.key.seq, hash, halted: None });
            }
        }
        Heads::new("prefecture".into(), "fake".into(), heads)
    }

    /// Serves it over mutual TLS (`net::server`, the nodes' own server) with credential
    /// `name`; returns its URL.
    pub async fn serve(self: &Arc<Self>, pki: &NetPki, name: &str) -> String {
        use axum::extract::{Path as P, Query, State};
        use axum::routing::get;
        type S = State<Arc<FakePrefecture>>;
        let router = axum::Router::new()
            .route("/v1/heads", get(|State(f): S| async move { axum::Json(f.heads().await) }))
            .route(
                "/v1/sources/{source}/notices",
                get(|State(f): S, P(s): P<String>, Query(q): Query<HashMap<String, String>>| async move {
                    f.notice_requests.fetch_add(1, Ordering::SeqCst);
                    let after = q.get("after").map_or(0, |a| a.parse().unwrap());
                    let limit = q.get("limit").map_or(500, |l| l.parse().unwrap());
                    let mut page = f.chain(&s, after).await;
                    page.truncate(limit);
                    axum::Json(page)
                }),
            )
            .route(
                "/v1/sources/{source}/keys",
                get(|State(f): S, P(s): P<String>| async move {
                    let (_, db, read) = f.sources.iter().find(|x| x.0 == s).unwrap();
                    axum::Json(store::notice_keys(db, read).await.unwrap())
                }),
            )
            .with_state(self.clone());
        let cred = net::credential::Credential::load(&pki.prefix(name), &passphrase()).unwrap();
        let trust = net::credential::Trust { ca_file: pki.ca_pem(), crl_file: Some(pki.crl_pem()) };
        let (config, _) = net::tls::server_config(&cred, &trust).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://127.0.0.1:{}", listener.local_addr().unwrap().port());
        tokio::spawn(Server::new(router, Transport::Tls(config)).serve(listener, std::future::pending()));
        url
    }
}

pub fn passphrase() -> Secret {
    Secret::new(NetPki::PASSPHRASE.as_bytes().to_vec())
}

/// An in-process municipality `code` on its own SQLite database under `dir`, signing with a
/// genuine notice key `m<code>-notice` of the network CA, with a pool of four codes from
/// `pool` on.
pub async fn municipality(pki: &NetPki, dir: &Path, code: &str, pool: u64) -> (Municipality, Arc<Signer>) {
    let name = format!("m{code}-notice");
    pki.notice_key(&name, code);
    let signer = Signer::load(&pki.prefix(&name), &passphrase(), &code.parse().unwrap()).unwrap();
    let db = Db::open(&dir.join(format!("m{code}.db")).display().to_string()).await.unwrap();
    let m = Municipality::open(db, code.parse().unwrap()).await.unwrap().with_signer(signer.clone()).await.unwrap();
    let codes: Vec<ResidentCode> = (pool..pool + 4)
        .map(|v| ResidentCode::from_body(std::array::from_fn(|k| ((v / 10u64.pow(9 - k as u32)) % 10) as u8)).unwrap())
        .collect();
    m.add_pool(&codes).await.unwrap();
    (m, signer)
}

/// Registers `name` (born 1980-01-01) at `m` by first registration; returns the signed notice.
pub async fn register(m: &Municipality, name: &str) -> ChangeNotice {
    let items = FourItems {
        name: FlaggedText::plain("name", name).unwrap(),
        address: FlaggedText::plain("address", "東京都千代田区1").unwrap(),
        date_of_birth: parse_date("dob", "1980-01-01").unwrap(),
        sex: Sex::Female,
    };
    let clerk = Operator::new("clerk-1", Role::MunicipalClerk).unwrap();
    let kind = NoticeKind::FirstRegistration;
    m.register(&clerk, kind, items, parse_date("date", "2026-01-01").unwrap(), identity::http::now()).await.unwrap()
}
