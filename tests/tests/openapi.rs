//! Issue 13, API descriptions: every service (the three identity node roles, the CA service and
//! the validator's verification API), run as a real process, serves its OpenAPI 3.1 description
//! at `GET /openapi.json` over its mutual-TLS socket; it equals what `jpki openapi SERVICE`
//! prints; openapi-spec-validator (PyPI, pinned) accepts it; every described route is served
//! (requested over the socket, it shows in the process's own request metrics under its route
//! pattern) and every route the process served — the described ones, and every `/v1/…` path the
//! other end-to-end tests use, sent to every service — is described (the replica nodes' HTML
//! operator console under `/console/` aside); every answer to a described
//! operation has a described status and a body valid against its schema. The JSON examples of the
//! docs validate against the descriptions (openapi-schema-validator, pinned;
//! tests/python/openapi_check.py).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Kill, Network, free_port, jpki, jpki_bin, text};
use serde_json::Value;

const PASS: &str = "validator-test-passphrase";

fn python(script: &str, args: &[String], stdin: Option<&str>) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("python").join(script);
    let mut child = Command::new("python3")
        .arg(path)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), stdin.unwrap_or("").as_bytes()).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{script}: {}", text(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// The route patterns `service` counted in its `jpki_http_requests_total` (parsed by the
/// Prometheus client's own parser).
async fn served_routes(metrics: &str, service: &str) -> BTreeSet<String> {
    let body = reqwest::get(format!("{metrics}/metrics")).await.unwrap().text().await.unwrap();
    let samples = python("parse_metrics.py", &[], Some(&body));
    samples
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s[0] == "jpki_http_requests_total" && s[1]["service"] == service)
        .map(|s| s[1]["route"].as_str().unwrap().to_owned())
        .collect()
}

/// Every `/v1/…` path the other end-to-end tests (and their helpers) name, with `{…}` for the
/// parts they fill in.
fn paths_used_by_the_e2e_tests() -> BTreeSet<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.push(dir.join("common/mod.rs"));
    let mut out = BTreeSet::new();
    for f in files.iter().filter(|f| f.extension().is_some_and(|e| e == "rs") && !f.ends_with("openapi.rs")) {
        let src = std::fs::read_to_string(f).unwrap();
        for (i, _) in src.match_indices("/v1/") {
            let path: String =
                src[i..].chars().take_while(|c| c.is_ascii_alphanumeric() || "/-_.{}".contains(*c)).collect();
            let path = path.trim_end_matches('/');
            // (`/v1/` alone, in a comment or a prefix check, names no route.)
            if path.split('/').count() > 2 {
                out.insert(path.to_owned());
            }
        }
    }
    out
}

/// Whether the concrete or `{…}`-templated `path` fits the described `template`.
fn fits(template: &str, path: &str) -> bool {
    let (t, p): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), path.split('/').collect());
    t.len() == p.len() && t.iter().zip(&p).all(|(t, p)| t == p || t.starts_with('{') || p.contains('{'))
}

/// `path` with every `{…}` filled (routing does not look at the values; the handlers refuse
/// them or not, which does not matter here).
fn fill(path: &str) -> String {
    path.split('/').map(|seg| if seg.contains('{') { "131016" } else { seg }).collect::<Vec<_>>().join("/")
}

struct Service {
    name: &'static str,
    url: String,
    metrics: String,
    client: reqwest::Client,
}

#[tokio::test(flavor = "multi_thread")]
async fn every_service_serves_its_description_and_serves_exactly_what_it_describes() {
    let dir = tempfile::tempdir().unwrap();
    let d = |f: &str| dir.path().join(f).display().to_string();
    let net = Network::start(dir.path()).await;
    let ca_metrics = free_port();
    let (_ca, ca_url) =
        net.serve_ca_with(&"00".repeat(32), &[("JPKI_METRICS_LISTEN", format!("127.0.0.1:{ca_metrics}"))]).await;

    // The validator: responder keys enrolled at the CA service, CRLs published, one registered
    // verifier (agency:bank-1), and its verification API on a mutual-TLS listener.
    let (venv, _) = net.enrol_validator(&ca_url, &d("v"), PASS);
    let o = net.jpki(&["ca", "crl", "--actor", "op-1", "--out", &d("pub")]);
    assert!(o.status.success(), "{}", text(&o));
    net.add_bank_verifier(&d("vdb.db"));
    let (api_port, v_metrics) = (free_port(), free_port());
    let _validator = Kill(
        Command::new(jpki_bin())
            .args(["serve", "validator", "--ca-service", &ca_url, "--responders", &d("v"), "--crl-dir", &d("pub")])
            .args(["--db", &d("vdb.db"), "--listen", &format!("127.0.0.1:{}", free_port())])
            .args(["--api-listen", &format!("127.0.0.1:{api_port}")])
            .envs(venv.iter().map(|(k, v)| (k, v)))
            .env("JPKI_METRICS_LISTEN", format!("127.0.0.1:{v_metrics}"))
            .stderr(std::fs::File::create(d("validator.log")).unwrap())
            .spawn()
            .unwrap(),
    );

    let op = || net.pki.client("op1", None);
    let services = [
        Service { name: "municipality", url: net.municipality.clone(), metrics: net.metrics[0].clone(), client: op() },
        Service { name: "prefecture", url: net.prefecture.clone(), metrics: net.metrics[1].clone(), client: op() },
        Service { name: "national", url: net.national.clone(), metrics: net.metrics[2].clone(), client: op() },
        Service { name: "ca", url: ca_url.clone(), metrics: format!("http://127.0.0.1:{ca_metrics}"), client: op() },
        Service {
            name: "validator",
            url: format!("https://127.0.0.1:{api_port}"),
            metrics: format!("http://127.0.0.1:{v_metrics}"),
            client: net.pki.client("bank-1", None),
        },
    ];
    let deadline = Instant::now() + Duration::from_secs(60);
    while !services[4]
        .client
        .get(format!("{}/openapi.json", services[4].url))
        .send()
        .await
        .is_ok_and(|r| r.status() == 200)
    {
        assert!(
            Instant::now() < deadline,
            "the validator did not come up: {}",
            std::fs::read_to_string(d("validator.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Each description, fetched over the service's own mutual-TLS socket, is what
    // `jpki openapi` prints; the routes it describes.
    let mut described: BTreeMap<&str, Vec<(String, String)>> = BTreeMap::new();
    let mut files = Vec::new();
    for s in &services {
        let r = s.client.get(format!("{}/openapi.json", s.url)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{}", s.name);
        assert_eq!(r.headers()["content-type"], "application/json", "{}", s.name);
        let served: Value = r.json().await.unwrap();
        let o = jpki::<&str, &str>(&["openapi", s.name], &[]);
        assert!(o.status.success(), "{}", text(&o));
        let printed: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(served, printed, "{}: served and printed descriptions differ", s.name);
        assert_eq!(served["openapi"], "3.1.0", "{}", s.name);
        let file = d(&format!("{}.openapi.json", s.name));
        std::fs::write(&file, serde_json::to_vec(&served).unwrap()).unwrap();
        files.push(format!("{}={file}", s.name));
        let ops = served["paths"]
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(p, item)| item.as_object().unwrap().keys().map(|m| (m.clone(), p.clone())))
            .collect();
        described.insert(s.name, ops);
    }

    // Every /v1/ path the other e2e tests use is described by at least one service.
    let used = paths_used_by_the_e2e_tests();
    assert!(used.len() >= 10, "{used:?}");
    for p in &used {
        let by: Vec<&&str> =
            described.iter().filter(|(_, ops)| ops.iter().any(|(_, t)| fits(t, p))).map(|(n, _)| n).collect();
        assert!(!by.is_empty(), "{p} (used by the e2e tests) is described by no service");
    }

    // Every described operation, and every path the e2e tests use (GET and POST), requested of
    // every service; the answers to the described operations are kept, to be checked against
    // the descriptions (status described, body valid).
    let mut answers = Vec::new();
    for s in &services {
        let mut requests: Vec<(String, String, Option<String>)> =
            described[s.name].iter().map(|(m, t)| (m.clone(), fill(t), Some(t.clone()))).collect();
        for p in &used {
            requests.push(("get".into(), fill(p), None));
            requests.push(("post".into(), fill(p), None));
        }
        // The replica nodes' operator console (HTML, issue 12), outside the descriptions.
        if matches!(s.name, "prefecture" | "national") {
            requests.push(("get".into(), "/console/".into(), None));
        }
        for (m, path, template) in requests {
            let url = format!("{}{path}", s.url);
            let r = match m.as_str() {
                "get" => s.client.get(url).send().await.unwrap(),
                "post" => {
                    s.client.post(url).header("content-type", "application/json").body("{}").send().await.unwrap()
                }
                other => panic!("{other}: a method no route uses"),
            };
            let status = r.status().as_u16();
            let ctype = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
            let body = String::from_utf8_lossy(&r.bytes().await.unwrap()).into_owned();
            if let Some(t) = template {
                answers.push(serde_json::json!({
                    "service": s.name, "method": m, "template": t, "status": status,
                    "content_type": ctype, "body": body,
                }));
            }
        }
    }

    // What each process counted: the described routes, all of them, and nothing else.
    for s in &services {
        // (Each server's `service` label is its party kind, which is the service's name here.)
        let mut served = served_routes(&s.metrics, s.name).await;
        // The console's pages are for people and described nowhere; they must be there on the
        // replica nodes (requested above) and nowhere else, and they are not the API.
        let console: BTreeSet<String> = served.iter().filter(|r| r.starts_with("/console")).cloned().collect();
        assert_eq!(!console.is_empty(), matches!(s.name, "prefecture" | "national"), "{}: {console:?}", s.name);
        served.retain(|r| !console.contains(r));
        let templates: BTreeSet<String> = described[s.name].iter().map(|(_, t)| t.clone()).collect();
        let undescribed: Vec<&String> = served.difference(&templates).collect();
        assert!(undescribed.is_empty(), "{}: served but not described: {undescribed:?}", s.name);
        let unserved: Vec<&String> = templates.difference(&served).collect();
        assert!(unserved.is_empty(), "{}: described but not served: {unserved:?}", s.name);
    }

    // Every answer to a described operation is described: its status, its content type, and its
    // JSON body valid against the described schema.
    std::fs::write(d("answers.json"), serde_json::to_vec(&answers).unwrap()).unwrap();
    let args = [&["answers".to_owned()][..], &files, &["--".to_owned(), d("answers.json")]].concat();
    let r = python("openapi_check.py", &args, None);
    let checked = r["answers"].as_array().unwrap();
    assert_eq!(checked.len(), answers.len());
    let wrong: Vec<&Value> = checked.iter().filter(|a| a["ok"] != true).collect();
    assert!(wrong.is_empty(), "answers that do not fit the description: {wrong:#?}");

    // openapi-spec-validator accepts every description.
    let paths: Vec<String> = files.iter().map(|f| f.split_once('=').unwrap().1.to_owned()).collect();
    let r = python("openapi_check.py", &[&["spec".to_owned()][..], &paths].concat(), None);
    for spec in r["specs"].as_array().unwrap() {
        assert_eq!(spec["ok"], true, "{spec}");
    }
    assert_eq!(r["specs"].as_array().unwrap().len(), 5);

    // The docs' JSON examples validate against the descriptions, and each would be refused
    // without its required properties.
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("docs");
    let mut args = vec!["examples".to_owned()];
    args.extend(files.iter().cloned());
    args.push("--".into());
    for e in std::fs::read_dir(&docs).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "md") {
            args.push(p.display().to_string());
        }
    }
    let r = python("openapi_check.py", &args, None);
    let examples = r["examples"].as_array().unwrap();
    for e in examples {
        assert_eq!(e["ok"], true, "{e}");
        assert_ne!(e["mutant_rejected"], false, "a mutant was accepted: {e}");
    }
    let services_with_examples: BTreeSet<&str> = examples.iter().map(|e| e["service"].as_str().unwrap()).collect();
    assert!(examples.len() >= 15, "{r}");
    for s in ["national", "municipality", "ca", "validator"] {
        assert!(services_with_examples.contains(s), "no example for {s}: {r}");
    }
}
