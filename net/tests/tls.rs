//! Mutual TLS over real sockets: certificates made by `openssl` (an independent issuer), our
//! server and client. The caller's party reaches the handler; strangers, other CAs, revoked
//! clients (after the CRL reloads), the wrong server and plain HTTP are refused; half-sent and
//! idle connections are closed; requests beyond the in-flight cap are shed.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test: a panic is a failed test
#![allow(deprecated, reason = "ring's default provider, as in net::tls")]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::{Extension, Router};
use identity::party::Party;
use net::credential::{Credential, Trust};
use net::secret::Secret;
use net::server::{Limits, Server, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PASS: &str = "credential passphrase";

fn openssl(dir: &Path, args: &[&str]) {
    let o = Command::new("openssl").args(args).current_dir(dir).output().unwrap();
    assert!(o.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&o.stderr));
}

/// A CA made with openssl in `dir/NAME`, issuing party credentials.
struct Ca {
    dir: PathBuf,
}

impl Ca {
    fn new(root: &Path, name: &str) -> Ca {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        openssl(
            &dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-384",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-subj",
                &format!("/CN={name}"),
                "-days",
                "2",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        std::fs::write(dir.join("index.txt"), "").unwrap();
        std::fs::write(dir.join("crlnumber"), "01\n").unwrap();
        std::fs::write(
            dir.join("ca.cnf"),
            "[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\ncrlnumber = crlnumber\ndefault_md = sha384\ndefault_crl_days = 1\n",
        )
        .unwrap();
        let ca = Ca { dir };
        ca.crl();
        ca
    }

    /// Issues `party` a credential `dir/NAME.pem` + `.key` (encrypted with our key-file format).
    fn issue(&self, name: &str, party: &str) -> PathBuf {
        let d = &self.dir;
        openssl(
            d,
            &["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384", "-out", &format!("{name}.plain")],
        );
        openssl(
            d,
            &["req", "-new", "-key", &format!("{name}.plain"), "-subj", "/CN=x", "-out", &format!("{name}.csr")],
        );
        std::fs::write(
            d.join(format!("{name}.ext")),
            format!(
                "subjectAltName=URI:{party},IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\nkeyUsage=critical,digitalSignature\nbasicConstraints=CA:FALSE\n"
            ),
        )
        .unwrap();
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "1",
                "-extfile",
                &format!("{name}.ext"),
                "-out",
                &format!("{name}.leaf"),
            ],
        );
        let leaf = std::fs::read_to_string(d.join(format!("{name}.leaf"))).unwrap();
        let ca = std::fs::read_to_string(d.join("ca.pem")).unwrap();
        std::fs::write(d.join(format!("{name}.pem")), format!("{leaf}{ca}")).unwrap();
        let plain = std::fs::read_to_string(d.join(format!("{name}.plain"))).unwrap();
        let (_, der) = der::pem::decode_vec(plain.as_bytes()).unwrap();
        net::keyfile::store(&d.join(format!("{name}.key")), &der, &pass()).unwrap();
        std::fs::remove_file(d.join(format!("{name}.plain"))).unwrap();
        d.join(name)
    }

    fn revoke(&self, name: &str) {
        openssl(
            &self.dir,
            &["ca", "-config", "ca.cnf", "-keyfile", "ca.key", "-cert", "ca.pem", "-revoke", &format!("{name}.leaf")],
        );
        self.crl();
    }

    fn crl(&self) {
        openssl(
            &self.dir,
            &["ca", "-config", "ca.cnf", "-keyfile", "ca.key", "-cert", "ca.pem", "-gencrl", "-out", "crl.tmp"],
        );
        std::fs::rename(self.dir.join("crl.tmp"), self.dir.join("crl.pem")).unwrap();
    }

    fn trust(&self) -> Trust {
        Trust { ca_file: self.dir.join("ca.pem"), crl_file: Some(self.dir.join("crl.pem")) }
    }
}

fn pass() -> Secret {
    Secret::new(PASS.as_bytes().to_vec())
}

fn cred(prefix: &Path) -> Credential {
    Credential::load(prefix, &pass()).unwrap()
}

fn whoami() -> Router {
    Router::new()
        .route(
            "/whoami",
            get(|p: Option<Extension<Party>>| async move { p.map(|Extension(p)| p.uri()).unwrap_or_default() }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(1500)).await;
                "done"
            }),
        )
}

/// Starts `server` on a loopback port; returns its address.
async fn start(server: Server) -> std::net::SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(server.serve(l, std::future::pending()));
    addr
}

async fn call(c: &reqwest::Client, url: &str) -> Result<String, String> {
    match c.get(url).send().await {
        Ok(r) if r.status().is_success() => Ok(r.text().await.unwrap()),
        Ok(r) => Err(format!("{}", r.status())),
        Err(e) => Err(format!("{e:?}")),
    }
}

#[tokio::test]
async fn mutual_tls_names_the_caller_and_refuses_strangers_other_cas_revoked_clients_and_the_wrong_server() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = Ca::new(tmp.path(), "network");
    let other = Ca::new(tmp.path(), "other");
    let server_cred = cred(&ca.issue("national", "urn:jpki:national"));
    let (config, verifier) = net::tls::server_config(&server_cred, &ca.trust()).unwrap();
    let addr = start(Server::new(whoami(), Transport::Tls(config))).await;
    let url = format!("https://127.0.0.1:{}/whoami", addr.port());

    // A municipality's credential: the handler sees its party.
    let chiyoda = cred(&ca.issue("chiyoda", "urn:jpki:municipality:131016"));
    assert_eq!(chiyoda.party.uri(), "urn:jpki:municipality:131016");
    let c = net::client::client(&chiyoda, &ca.trust(), Some(Party::National)).unwrap();
    assert_eq!(call(&c, &url).await.unwrap(), "urn:jpki:municipality:131016");

    // The client pins the server's party: the national node is not prefecture 27.
    let pinned = net::client::client(&chiyoda, &ca.trust(), Some("prefecture:27".parse().unwrap())).unwrap();
    let e = call(&pinned, &url).await.unwrap_err();
    assert!(e.contains("expected urn:jpki:prefecture:27"), "{e}");

    // A client without a certificate fails the handshake.
    let no_cert = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(ca.trust().roots().unwrap())
        .with_no_client_auth();
    let anon = reqwest::Client::builder().use_preconfigured_tls(no_cert).build().unwrap();
    assert!(call(&anon, &url).await.is_err());

    // A credential from another CA (same party name) fails the handshake.
    let forged = cred(&other.issue("chiyoda", "urn:jpki:municipality:131016"));
    let c2 = net::client::client(&forged, &ca.trust(), Some(Party::National)).unwrap();
    assert!(call(&c2, &url).await.is_err());

    // A certificate that names no party is refused even from the right CA.
    let nameless = ca.issue("nameless", "https://example.org/x");
    assert!(Credential::load(&nameless, &pass()).is_err());

    // Revoked after a CRL reload: new connections of that client fail, others still work.
    let osaka = cred(&ca.issue("osaka", "urn:jpki:municipality:271004"));
    ca.revoke("chiyoda");
    // mtime granularity: make sure the CRL file looks changed.
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(verifier.reload_if_changed().unwrap());
    let c = net::client::client(&chiyoda, &ca.trust(), Some(Party::National)).unwrap();
    assert!(call(&c, &url).await.is_err(), "a revoked client still got through");
    let c = net::client::client(&osaka, &ca.trust(), Some(Party::National)).unwrap();
    assert_eq!(call(&c, &url).await.unwrap(), "urn:jpki:municipality:271004");

    // Plain http:// is refused by the client, and by the link check.
    let e = call(&c, &format!("http://127.0.0.1:{}/whoami", addr.port())).await.unwrap_err();
    assert!(e.contains("BadScheme"), "{e}");
    assert!(net::client::require_https("http://127.0.0.1:1").is_err());
    assert!(net::client::require_https("https://127.0.0.1:1").is_ok());
}

#[tokio::test]
async fn half_sent_idle_and_unhandshaken_connections_are_closed() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = Ca::new(tmp.path(), "network");
    let limits = Limits {
        handshake_timeout: Duration::from_secs(1),
        header_read_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(2),
        ..Limits::default()
    };
    let plain = start(Server::new(whoami(), Transport::Plain).limits(limits.clone())).await;
    let (config, _) = net::tls::server_config(&cred(&ca.issue("n", "urn:jpki:national")), &ca.trust()).unwrap();
    let tls = start(Server::new(whoami(), Transport::Tls(config)).limits(limits)).await;

    // Closed = the server ends the stream (read returns 0 or an error) within `within`.
    async fn closed_within(mut s: tokio::net::TcpStream, within: Duration) -> Duration {
        let t = Instant::now();
        let mut buf = [0u8; 1024];
        loop {
            match tokio::time::timeout(within, s.read(&mut buf)).await {
                Ok(Ok(0) | Err(_)) => return t.elapsed(),
                Ok(Ok(_)) => continue, // e.g. a 408 answer before the close
                Err(_) => panic!("connection still open after {within:?}"),
            }
        }
    }
    // Half-sent headers (slowloris): closed by the header-read timeout.
    let mut s = tokio::net::TcpStream::connect(plain).await.unwrap();
    s.write_all(b"GET /whoami HTTP/1.1\r\nHost: x\r\nX-Slow: ").await.unwrap();
    assert!(closed_within(s, Duration::from_secs(5)).await < Duration::from_secs(4));
    // Idle after connecting, no byte sent.
    let s = tokio::net::TcpStream::connect(plain).await.unwrap();
    assert!(closed_within(s, Duration::from_secs(5)).await < Duration::from_secs(4));
    // A TLS port that never sees a ClientHello.
    let s = tokio::net::TcpStream::connect(tls).await.unwrap();
    assert!(closed_within(s, Duration::from_secs(5)).await < Duration::from_secs(4));
    // A complete request on the plain server is still answered.
    let got = reqwest::get(format!("http://127.0.0.1:{}/whoami", plain.port())).await.unwrap();
    assert!(got.status().is_success());
}

#[tokio::test]
async fn requests_beyond_the_in_flight_cap_are_shed_with_503() {
    let limits = Limits { max_in_flight: 1, ..Limits::default() };
    let addr = start(Server::new(whoami(), Transport::Plain).limits(limits)).await;
    let url = format!("http://127.0.0.1:{}/slow", addr.port());
    let (a, b) = tokio::join!(reqwest::get(&url), async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        reqwest::get(&url).await
    });
    let mut statuses = [a.unwrap().status().as_u16(), b.unwrap().status().as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 503]);
}

#[tokio::test]
async fn a_revocation_closes_connections_opened_before_it() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = Ca::new(tmp.path(), "network");
    let (config, verifier) =
        net::tls::server_config(&cred(&ca.issue("national", "urn:jpki:national")), &ca.trust()).unwrap();
    let addr = start(Server::new(whoami(), Transport::Tls(config)).revalidate(verifier.clone())).await;
    let open = |name: &str, party: &str| {
        let c = cred(&ca.issue(name, party));
        let tls = net::tls::client_config(&c, &ca.trust(), Some(Party::National)).unwrap();
        async move {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
            let mut s = tokio_rustls::TlsConnector::from(Arc::new(tls)).connect(name, tcp).await.unwrap();
            s.write_all(b"GET /whoami HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
            let mut buf = vec![0u8; 4096];
            let n = s.read(&mut buf).await.unwrap();
            assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
            s
        }
    };
    let mut revoked = open("chiyoda", "urn:jpki:municipality:131016").await;
    let mut kept = open("osaka", "urn:jpki:municipality:271004").await;
    ca.revoke("chiyoda");
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(verifier.reload_if_changed().unwrap());
    // The revoked client's open connection is closed by the server…
    let mut buf = vec![0u8; 4096];
    match tokio::time::timeout(Duration::from_secs(3), revoked.read(&mut buf)).await {
        Ok(Ok(0) | Err(_)) => {}
        other => panic!("the revoked client's connection is still open: {other:?}"),
    }
    // …and the other client's keeps working.
    kept.write_all(b"GET /whoami HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let n = kept.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).contains("municipality:271004"));
}
