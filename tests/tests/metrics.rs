//! Issue 13, first part: every service's metrics, health and readiness on its own listener
//! (`JPKI_METRICS_LISTEN`), scraped from a real CA service process and parsed by the Prometheus
//! client's own parser (PyPI prometheus-client, pinned; tests/python/parse_metrics.py).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

mod common;

use std::process::{Command, Stdio};

use common::{Network, free_port, text};
use identity::party::Party;
use serde_json::Value;

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
    // (The start-up banner is a plain line printed before logging matters.)
    let events: Vec<Value> = log
        .lines()
        .filter(|l| !l.starts_with("CA service ") || !l.contains("listening on"))
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
}
