//! Issue 13: every service's metrics, health and readiness on its own listener
//! (`JPKI_METRICS_LISTEN`), scraped from real processes — the CA service, the three identity
//! nodes with a replication running and provisions made, and the validator answering real OCSP
//! requests — each exposition parsed by the Prometheus client's own parser (PyPI
//! prometheus-client, pinned; tests/python/parse_metrics.py) and checked by `promtool check
//! metrics` (Debian's prometheus package, installed by `cargo xtask ci`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

mod common;

use std::process::{Command, Stdio};

use common::{Network, free_port, text};
use identity::party::Party;
use serde_json::Value;

/// `promtool check metrics` on an exposition: it must parse and pass promtool's lint (names,
/// units, `_total` on counters, help and type lines).
fn promtool(body: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian prometheus; cargo xtask ci installs it)");
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), body.as_bytes()).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "promtool check metrics: {}\n--- exposition ---\n{body}", text(&o));
}

/// Scrapes `base`/metrics, checks it with both parsers and gives its samples.
async fn scrape(base: &str) -> (String, Vec<(String, serde_json::Map<String, Value>, f64)>) {
    let body = reqwest::get(format!("{base}/metrics")).await.unwrap().text().await.unwrap();
    let s = parse(&body);
    (body, s)
}

/// The samples of an exposition, parsed by prometheus_client.
fn parse(body: &str) -> Vec<(String, serde_json::Map<String, Value>, f64)> {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("python/parse_metrics.py");
    let mut child = Command::new("python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), body.as_bytes()).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "the exposition does not parse: {}", text(&o));
    let v: Vec<(String, serde_json::Map<String, Value>, f64)> = serde_json::from_slice(&o.stdout).unwrap();
    v
}

/// The value of the sample `name` whose labels include every pair of `labels` (0 if none).
fn value(samples: &[(String, serde_json::Map<String, Value>, f64)], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|(n, l, _)| n == name && labels.iter().all(|(k, v)| l.get(*k).and_then(Value::as_str) == Some(*v)))
        .map(|(_, _, v)| v)
        .sum()
}

#[tokio::test]
async fn the_ca_service_exposes_request_and_handshake_metrics_health_and_readiness() {
    let tmp = tempfile::tempdir().unwrap();
    let net = Network::start(tmp.path()).await;
    let resident = net.resident("山田花子", "1990-04-01").await;
    let pki = &net.pki;
    pki.issue("w131016", "window:131016:W01", false);
    let mport = free_port();
    let env = [("JPKI_METRICS_LISTEN", format!("127.0.0.1:{mport}")), ("JPKI_LOG_FORMAT", "json".to_owned())];
    let (_ca, url) = net.serve_ca_with("00".repeat(32).as_str(), &env).await;
    let metrics_url = format!("http://127.0.0.1:{mport}");
    let plain = reqwest::Client::new();
    let r = plain.get(format!("{metrics_url}/health")).send().await.unwrap();
    assert_eq!((r.status().as_u16(), r.text().await.unwrap().as_str()), (200, "ok\n"));
    let r = plain.get(format!("{metrics_url}/ready")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200, "ready once it serves");

    let ca = Some(Party::Ca("jpki-ca".into()));
    let op = pki.client("op1", ca.clone());
    for _ in 0..3 {
        assert_eq!(op.get(format!("{url}/v1/status/head")).send().await.unwrap().status().as_u16(), 200);
    }
    let w = pki.client("w131016", ca);
    let r = w.get(format!("{url}/v1/status/head")).header("x-request-id", "metrics-test-1").send().await.unwrap();
    assert_eq!((r.status().as_u16(), r.headers()["x-request-id"].to_str().unwrap()), (403, "metrics-test-1"));
    assert_eq!(
        w.get(format!("{url}/v1/status/certificates/{}", "ab".repeat(16))).send().await.unwrap().status().as_u16(),
        403
    );
    // A client without a certificate (curl trusting the network CA): refused in the handshake.
    let o = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "--cacert"])
        .arg(pki.ca_pem())
        .arg(format!("{url}/v1/status/head"))
        .output()
        .unwrap();
    assert!(!o.status.success(), "a handshake without a certificate must fail");

    // The CA service follows the national change feed by itself: its follower's gauges appear
    // after its first round.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let (body, s) = loop {
        let body = plain.get(format!("{metrics_url}/metrics")).send().await.unwrap().text().await.unwrap();
        let s = parse(&body);
        if value(&s, "jpki_ca_feed_last_follow_timestamp_seconds", &[]) > 0.0 {
            break (body, s);
        }
        assert!(std::time::Instant::now() < deadline, "no feed-follower metrics: {body}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(value(&s, "jpki_ca_feed_behind", &[]), 0.0, "caught up: {body}");
    promtool(&body);

    // CRLs published through the service (an operator's `jpki ca-op crl`): each gets its
    // thisUpdate (from which an alert computes its age), nextUpdate and entries gauges.
    let mut op_env = pki.env("op1");
    op_env.push(("JPKI_CA_URL".into(), url.clone()));
    let o = common::jpki(&["ca-op", "crl"], &op_env);
    assert!(o.status.success(), "{}", text(&o));
    let (crl_body, crl) = scrape(&metrics_url).await;
    let gauges = |name: &str| crl.iter().filter(|(n, _, _)| n == name).map(|(_, _, v)| *v).collect::<Vec<_>>();
    let (this, next) =
        (gauges("jpki_crl_this_update_timestamp_seconds"), gauges("jpki_crl_next_update_timestamp_seconds"));
    let now = identity::http::now() as f64;
    assert!(!this.is_empty() && this.len() == next.len(), "{crl_body}");
    assert_eq!(gauges("jpki_crl_entries").len(), this.len(), "{crl_body}");
    assert!(this.iter().all(|t| *t <= now && now - *t < 600.0), "published just now: {crl_body}");
    assert!(next.iter().all(|t| *t > now), "{crl_body}");
    // No resident has a certificate yet, so only the roots sign: their ARLs (shard -1).
    assert!(
        crl.iter().any(|(n, l, _)| n == "jpki_crl_entries"
            && l.get("ca").and_then(Value::as_str) == Some("sign-root")
            && l.get("shard").and_then(Value::as_str) == Some("-1")),
        "{crl_body}"
    );
    promtool(&crl_body);
    let ok =
        value(&s, "jpki_http_requests_total", &[("service", "ca"), ("route", "/v1/status/head"), ("status", "200")]);
    assert!(ok >= 3.0, "{ok}: {body}");
    let refused =
        value(&s, "jpki_http_requests_total", &[("service", "ca"), ("route", "/v1/status/head"), ("status", "403")]);
    assert_eq!(refused, 1.0, "{body}");
    // The route label is the pattern, never the path (no serial, no resident in a label).
    let by_serial = value(
        &s,
        "jpki_http_requests_total",
        &[("service", "ca"), ("route", "/v1/status/certificates/{serial}"), ("status", "403")],
    );
    assert_eq!(by_serial, 1.0, "{body}");
    assert!(!body.contains(&"ab".repeat(16)) && !body.contains(&resident), "no serial or resident code in metrics");
    let count = value(&s, "jpki_http_request_seconds_count", &[("service", "ca"), ("route", "/v1/status/head")]);
    assert!(count >= 4.0, "{count}: {body}");
    let handshakes = value(&s, "jpki_tls_handshake_failures_total", &[("service", "ca"), ("cause", "no_certificate")]);
    assert!(handshakes >= 1.0, "{body}");

    // JPKI_LOG_FORMAT=json: every log event is one JSON object a line; the refusal's event
    // carries the request's span (its id, service and route).
    let log = std::fs::read_to_string(tmp.path().join("ca-service.log")).unwrap();
    let events: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}\n--- the whole log ---\n{log}")))
        .collect();
    let refused = events
        .iter()
        .find(|e| e["span"]["request_id"] == "metrics-test-1")
        .unwrap_or_else(|| panic!("no event of request metrics-test-1 in {log}"));
    assert_eq!(refused["level"], "WARN", "{refused}");
    assert_eq!(refused["span"]["route"], "/v1/status/head", "{refused}");
    assert_eq!(refused["span"]["service"], "ca", "{refused}");
    assert!(!log.contains(&resident), "no resident code in the CA service's log");
    // The start-up line is an event too, with its address as a field.
    let banner = events
        .iter()
        .find(|e| e["fields"]["message"] == "CA service listening (mutual TLS)")
        .unwrap_or_else(|| panic!("no start-up event in {log}"));
    assert_eq!(banner["level"], "INFO", "{banner}");
    assert!(banner["fields"]["listen"].as_str().is_some_and(|a| a.starts_with("127.0.0.1:")), "{banner}");
}

/// Polls `base`/metrics until `ready` holds of the samples (or 30 s pass); gives the last
/// exposition and its samples.
async fn scrape_until(
    base: &str,
    what: &str,
    ready: impl Fn(&[(String, serde_json::Map<String, Value>, f64)]) -> bool,
) -> (String, Vec<(String, serde_json::Map<String, Value>, f64)>) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (body, s) = scrape(base).await;
        if ready(&s) {
            return (body, s);
        }
        assert!(std::time::Instant::now() < deadline, "{what} never showed at {base}: {body}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// The identity network (municipality 131016 → prefecture 13 → national) with its replication
/// running: after three registrations each tier has applied exactly the municipality's three
/// notices and is 0 behind and not halted; after three lawful provisions and two refusals at
/// the national node its counters say so, by purpose and reason (never what a request typed).
#[tokio::test]
async fn the_identity_nodes_expose_replication_and_provision_metrics() {
    let tmp = tempfile::tempdir().unwrap();
    let net = Network::start_metered(tmp.path()).await;
    let (m, p, n) = (&net.metrics[0], &net.metrics[1], &net.metrics[2]);
    for base in [m, p, n] {
        let r = reqwest::get(format!("{base}/ready")).await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "{base}");
    }
    let mut codes = Vec::new();
    for (name, dob) in [("山田花子", "1990-04-01"), ("佐藤一郎", "1985-11-23"), ("鈴木次郎", "1979-01-15")]
    {
        codes.push(net.resident(name, dob).await);
    }
    let src = [("source", "131016")];
    let applied = |tier: &'static str| {
        move |s: &[(String, serde_json::Map<String, Value>, f64)]| {
            value(s, "jpki_replication_applied_total", &[("tier", tier), src[0]]) >= 3.0
                && value(s, "jpki_replication_behind", &[("tier", tier), src[0]]) == 0.0
        }
    };
    let (pbody, ps) = scrape_until(p, "the prefecture's replication", applied("prefecture")).await;
    let (nbody, ns) = scrape_until(n, "the national node's replication", applied("national")).await;
    for (tier, s, body) in [("prefecture", &ps, &pbody), ("national", &ns, &nbody)] {
        let l = [("tier", tier), src[0]];
        assert_eq!(value(s, "jpki_replication_applied_total", &l), 3.0, "{tier}: {body}");
        assert_eq!(value(s, "jpki_replication_halted", &l), 0.0, "{tier}");
        let last = value(s, "jpki_replication_last_pull_timestamp_seconds", &l);
        assert!(last > 1.7e9 && last <= identity::http::now() as f64 + 1.0, "{tier}: {last}");
    }
    // The prefecture pulls the municipality over mutual TLS: its notices route counted there.
    let (mbody, ms) = scrape(m).await;
    let pulls = value(
        &ms,
        "jpki_http_requests_total",
        &[("service", "municipality"), ("route", "/v1/sources/{source}/notices"), ("status", "200")],
    );
    assert!(pulls >= 1.0, "{mbody}");
    promtool(&mbody);
    promtool(&pbody);

    // Provisions at the national node, by the CA's registered agency (B1-020).
    let ca = net.pki.client("ca", Some(Party::National));
    let query = |purpose: &str, code: &str| serde_json::json!({"purpose": purpose, "by": {"resident_code": code}, "fields": ["change_info"]});
    for c in &codes {
        let r = ca.post(format!("{}/v1/provision/query", net.national)).json(&query("B1-020", c)).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "{}", r.text().await.unwrap());
    }
    // A purpose of the law table it is not registered for, and one that is not in the table.
    for purpose in ["B1-001", "no-such-purpose-42"] {
        let r = ca.post(format!("{}/v1/provision/query", net.national)).json(&query(purpose, &codes[0])).send().await;
        assert!(!r.unwrap().status().is_success(), "{purpose} must be refused");
    }
    let (nbody, ns) = scrape(n).await;
    assert_eq!(value(&ns, "jpki_provisions_total", &[("purpose", "B1-020")]), 3.0, "{nbody}");
    assert_eq!(value(&ns, "jpki_provisions_total", &[]), 3.0, "only lawful provisions count: {nbody}");
    assert_eq!(value(&ns, "jpki_provision_refusals_total", &[]), 2.0, "{nbody}");
    assert!(!nbody.contains("no-such-purpose-42"), "a typed purpose never becomes a label");
    for c in &codes {
        assert!(!nbody.contains(c.as_str()) && !pbody.contains(c.as_str()), "no resident code in metrics");
    }
    let ok = value(
        &ns,
        "jpki_http_requests_total",
        &[("service", "national"), ("route", "/v1/provision/query"), ("status", "200")],
    );
    assert_eq!(ok, 3.0, "{nbody}");
    promtool(&nbody);
}

/// The validator answering real `openssl ocsp` requests: pre-signed answers (no nonce) count
/// as `cached`, nonce requests as `live`, by path; the CRLs it serves show as gauges with the
/// nextUpdate and entry count of the files `jpki ca crl` wrote.
#[tokio::test]
async fn the_validator_exposes_ocsp_answers_by_path_and_the_crls_it_serves() {
    const PASS: &str = "validator-metrics-passphrase";
    let tmp = tempfile::tempdir().unwrap();
    let d = |f: &str| tmp.path().join(f).display().to_string();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let url = format!("{base}/ocsp");
    let net = Network::start_with(tmp.path(), &["--crl-base", &base, "--ocsp-url", &url]).await;
    let resident = net.resident("山田花子", "1990-04-01").await;
    let (sign_csr, auth_csr) = (common::csr(tmp.path(), "sign"), common::csr(tmp.path(), "auth"));
    let args = common::ca_issue_args("w1", &resident, &sign_csr, &auth_csr, &d("out"));
    let o = net.jpki(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(o.status.success(), "{}", text(&o));
    let serial = text(&o)
        .lines()
        .find(|l| l.starts_with("issued signature certificate"))
        .and_then(|l| l.split_whitespace().nth(3))
        .unwrap()
        .to_owned();
    std::fs::copy(d(&format!("out/signature-{serial}.pem")), d("sig.pem")).unwrap();
    std::fs::write(d("int.pem"), net.jpki(&["ca", "cert", "--actor", "op-1", "sign-13"]).stdout).unwrap();
    let (_ca_service, ca_url) = net.serve_ca(&"00".repeat(32)).await;
    net.enrol_validator(&ca_url, &d("v"), PASS);
    // One revocation, so that a CRL has an entry.
    let o = net.jpki(&[
        "ca",
        "revoke",
        "--actor",
        "op-1",
        "--serial",
        &serial,
        "--reason",
        "key-compromise",
        "--cause",
        "metrics test",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let o = net.jpki(&["ca", "crl", "--actor", "op-1", "--out", &d("pub")]);
    assert!(o.status.success(), "{}", text(&o));
    let published = text(&o).lines().filter(|l| l.contains(" -> ")).count();

    let mport = free_port();
    let metrics = format!("http://127.0.0.1:{mport}");
    let _validator = common::Kill(
        Command::new(common::jpki_bin())
            .args(["serve", "validator", "--ca-db", &d("ca.db"), "--responders", &d("v"), "--crl-dir", &d("pub")])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env("JPKI_VALIDATOR_PASSPHRASE", PASS)
            .env("JPKI_METRICS_LISTEN", format!("127.0.0.1:{mport}"))
            .env_remove("JPKI_DB")
            .stderr(std::fs::File::create(d("validator.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while reqwest::get(format!("{metrics}/ready")).await.map(|r| r.status().as_u16()).ok() != Some(200) {
        assert!(std::time::Instant::now() < deadline, "{}", std::fs::read_to_string(d("validator.log")).unwrap());
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let ocsp = |extra: &[&str]| {
        let o = Command::new("openssl")
            .args(["ocsp", "-issuer", &d("int.pem"), "-cert", &d("sig.pem"), "-url", &url, "-noverify"])
            .args(extra)
            .output()
            .unwrap();
        assert!(text(&o).contains(": revoked"), "{}", text(&o));
    };
    for _ in 0..4 {
        ocsp(&["-no_nonce"]);
    }
    for _ in 0..2 {
        ocsp(&[]);
    }
    let (body, s) = scrape(&metrics).await;
    assert_eq!(value(&s, "jpki_ocsp_answers_total", &[("path", "cached")]), 4.0, "{body}");
    assert_eq!(value(&s, "jpki_ocsp_answers_total", &[("path", "live")]), 2.0, "{body}");
    assert_eq!(value(&s, "jpki_ocsp_answers_total", &[("path", "try_later")]), 0.0, "{body}");
    let answered =
        value(&s, "jpki_http_requests_total", &[("service", "validator"), ("route", "/ocsp"), ("status", "200")]);
    assert_eq!(answered, 6.0, "{body}");
    // The served CRLs: one gauge pair per file, the revocation in sign-13's shard, nextUpdate
    // ahead.
    let served: Vec<_> = s.iter().filter(|(n, _, _)| n == "jpki_crl_served_next_update_timestamp_seconds").collect();
    assert_eq!(served.len(), published, "{body}");
    let now = identity::http::now() as f64;
    assert!(served.iter().all(|(_, _, v)| *v > now), "{body}");
    // thisUpdate, from which an alert computes each served CRL's age: one per file, in the past,
    // and at most a day old (they were published by this test).
    let this: Vec<_> = s.iter().filter(|(n, _, _)| n == "jpki_crl_served_this_update_timestamp_seconds").collect();
    assert_eq!(this.len(), published, "{body}");
    assert!(this.iter().all(|(_, _, v)| *v <= now && now - *v < 86_400.0), "{body}");
    assert_eq!(value(&s, "jpki_crl_served_entries", &[("ca", "sign-13")]), 1.0, "{body}");
    assert_eq!(value(&s, "jpki_crl_served_entries", &[]), 1.0, "{body}");
    assert!(!body.contains(&resident) && !body.contains(&serial), "no resident or serial in metrics");
    promtool(&body);
}
