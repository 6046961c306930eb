//! `jpki bench resdoc` (issue 15): signed residence certificates per second per core (PDF build
//! with the subset font + PAdES B-B signature), per document-signing key algorithm (P-384 as the
//! organisation CA generates, RSA-2048 as an HSM might hold), with the references measured in
//! the same run: the build alone, the sign step alone, the key's raw signing rate, and pyHanko's
//! CLI adding a signature to the same PDF (`pyhanko sign addsig pemder`, one process per
//! document, its interpreter start-up measured apart). Also the PDF sizes. About a minute.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use ca::key::{KeyAlgorithm, KeyBackend, SoftKey};
use ca::network::{FileCaKind, NetworkCa, SubjectKey};
use der::Decode;
use identity::person::Sex;
use net::secret::Secret;
use resdoc::{Font, IssueOptions, KeySigner, ResidenceRecord};
use x509_cert::Certificate;

/// How long each rate is measured.
const WINDOW: Duration = Duration::from_secs(3);
/// pyHanko runs (one process each).
const PYHANKO_RUNS: usize = 5;

fn record() -> Result<ResidenceRecord> {
    Ok(ResidenceRecord {
        name: "山田 太郎".into(),
        address: "東京都千代田区千代田一丁目1番1号 霞が関ハイツ101号室".into(),
        date_of_birth: time::macros::date!(1980 - 04 - 01),
        sex: Sex::Male,
        resident_code: Some(identity::ids::ResidentCode::from_body([1, 2, 3, 4, 5, 6, 7, 8, 9, 0])?),
        issue_date: time::macros::date!(2026 - 12 - 06),
        municipality: "東京都千代田区".into(),
    })
}

/// Operations per second of `f` on `threads` threads for [`WINDOW`] (total over threads).
fn rate(threads: usize, f: impl Fn() -> Result<()> + Sync) -> Result<f64> {
    let start = Instant::now();
    let counts = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| -> Result<u64> {
                    let mut n = 0u64;
                    while start.elapsed() < WINDOW {
                        f()?;
                        n += 1;
                    }
                    Ok(n)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().map_err(|_| anyhow::anyhow!("a bench thread panicked"))?)
            .collect::<Result<Vec<_>>>()
    })?;
    Ok(counts.iter().sum::<u64>() as f64 / start.elapsed().as_secs_f64())
}

fn pem(label: &str, der: &[u8]) -> Result<String> {
    Ok(der::pem::encode_string(label, der::pem::LineEnding::LF, der)?)
}

/// Median wall time of `runs` runs of `cmd()`, which must succeed.
fn wall(runs: usize, mut cmd: impl FnMut() -> Command) -> Result<Duration> {
    let mut times = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let out = cmd().stdin(Stdio::null()).output()?;
        ensure!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        times.push(t.elapsed());
    }
    times.sort();
    Ok(times[times.len() / 2])
}

struct Row {
    alg: &'static str,
    issue1: f64,
    issue_n: f64,
    build1: f64,
    sign1: f64,
    raw1: f64,
    size: usize,
    size_code: usize,
    pyhanko: Option<(Duration, Duration)>,
}

fn measure(dir: &Path, ca: &NetworkCa, font: &Font, alg: KeyAlgorithm, threads: usize) -> Result<Row> {
    let key = SoftKey::ephemeral(alg)?;
    let out = dir.join(format!("signer-{}", alg.name()));
    let issued = ca.issue_document_signer(
        &"131016".parse()?,
        "Chiyoda-ku",
        "http://127.0.0.1:9/crl.der",
        30,
        time::OffsetDateTime::now_utc().unix_timestamp(),
        &out,
        SubjectKey::Given(key.public_key_der()),
    )?;
    let text = std::fs::read_to_string(&issued.chain)?;
    let leaf = text.split_inclusive("-----END CERTIFICATE-----\n").next().unwrap_or_default();
    let chain = vec![
        Certificate::from_der(&der::pem::decode_vec(leaf.as_bytes())?.1)?,
        Certificate::from_der(ca.certificate_der())?,
    ];
    let record = record()?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let opts = IssueOptions::new(font, now);
    let signer = KeySigner(&key);
    let pdf = resdoc::issue(&record, &opts, &signer, &chain)?;
    let with_code = resdoc::issue(&record, &IssueOptions { show_resident_code: true, ..opts }, &signer, &chain)?;
    let prepared = resdoc::prepare(&record, &opts)?;

    eprintln!("{}: issue, build, sign, raw signing ({} s each)…", alg.name(), WINDOW.as_secs());
    let issue = || resdoc::issue(&record, &opts, &signer, &chain).map(|_| ()).map_err(anyhow::Error::from);
    let issue1 = rate(1, issue)?;
    let issue_n = rate(threads, issue)?;
    let build1 = rate(1, || resdoc::prepare(&record, &opts).map(|_| ()).map_err(anyhow::Error::from))?;
    let sign1 = rate(1, || prepared.clone().sign(&signer, &chain).map(|_| ()).map_err(anyhow::Error::from))?;
    let digest = ca::key::digest(&key, b"benchmark")?;
    let raw1 = rate(1, || key.sign_digest(&digest).map(|_| ()).map_err(anyhow::Error::from))?;

    // pyHanko adds a second signature to the same PDF with the same key and chain.
    let pyhanko = if Command::new("pyhanko").arg("--version").output().is_ok_and(|o| o.status.success()) {
        eprintln!("{}: pyHanko sign addsig × {PYHANKO_RUNS}…", alg.name());
        let input = dir.join(format!("in-{}.pdf", alg.name()));
        std::fs::write(&input, &pdf)?;
        let key_pem = dir.join(format!("key-{}.pem", alg.name()));
        net::keyfile::write_private(&key_pem, pem("PRIVATE KEY", key.pkcs8_secret()?.expose())?.as_bytes())?;
        let cert_pem = dir.join(format!("cert-{}.pem", alg.name()));
        std::fs::write(&cert_pem, pem("CERTIFICATE", &der::Encode::to_der(&chain[0])?)?)?;
        let root_pem = dir.join("root.pem");
        std::fs::write(&root_pem, pem("CERTIFICATE", ca.certificate_der())?)?;
        let output = dir.join(format!("out-{}.pdf", alg.name()));
        let sign = wall(PYHANKO_RUNS, || {
            let mut c = Command::new("pyhanko");
            c.args(["sign", "addsig", "--field", "Signature2", "--use-pades", "pemder", "--no-pass", "--key"])
                .arg(&key_pem)
                .arg("--cert")
                .arg(&cert_pem)
                .arg("--chain")
                .arg(&root_pem)
                .arg(&input)
                .arg(&output);
            c
        })?;
        let startup = wall(PYHANKO_RUNS, || {
            let mut c = Command::new("pyhanko");
            c.arg("--version");
            c
        })?;
        Some((sign, startup))
    } else {
        eprintln!("pyhanko is not installed: no pyHanko reference (cargo xtask ci installs it)");
        None
    };
    Ok(Row {
        alg: alg.name(),
        issue1,
        issue_n,
        build1,
        sign1,
        raw1,
        size: pdf.len(),
        size_code: with_code.len(),
        pyhanko,
    })
}

/// Runs the benchmark and prints its table.
pub async fn run() -> Result<()> {
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let dir = tempfile::tempdir()?;
    let ca = NetworkCa::init_kind(
        FileCaKind::Organisation,
        &dir.path().join("org"),
        &Secret::new(b"benchmark passphrase".to_vec()),
        time::OffsetDateTime::now_utc().unix_timestamp(),
    )?;
    let font = Font::load_default().context("the font (apt fonts-ipaexfont-gothic)")?;
    let rows = [KeyAlgorithm::EcP384, KeyAlgorithm::Rsa2048]
        .into_iter()
        .map(|alg| measure(dir.path(), &ca, &font, alg, threads))
        .collect::<Result<Vec<_>>>()?;

    println!("Residence-certificate benchmark ({threads} cores; rates over {} s windows)\n", WINDOW.as_secs());
    println!("| document-signing key | measure | value | reference | ratio |");
    println!("|---|---|---|---|---|");
    for r in &rows {
        let a = r.alg;
        println!("| {a} | signed PDFs/s, 1 thread (build + sign) | {:.0}/s | | |", r.issue1);
        println!(
            "| {a} | signed PDFs/s per core, {threads} threads | {:.0}/s | 1 thread: {:.0}/s | {:.2} |",
            r.issue_n / threads as f64,
            r.issue1,
            r.issue_n / threads as f64 / r.issue1
        );
        println!("| {a} | build alone (page, subset font, PDF), 1 thread | {:.0}/s | | |", r.build1);
        println!(
            "| {a} | sign step alone (digest, CMS, key), 1 thread | {:.0}/s | raw key signing: {:.0}/s | {:.2} |",
            r.sign1,
            r.raw1,
            r.sign1 / r.raw1
        );
        println!("| {a} | PDF size | {} bytes | with 住民票コード: {} bytes | |", r.size, r.size_code);
        match r.pyhanko {
            Some((sign, startup)) => {
                let ours = 1.0 / r.issue1;
                println!(
                    "| {a} | pyHanko CLI adds a PAdES signature to the same PDF | {:.0} ms/document | ours, build + sign: {:.2} ms | {:.0}× |",
                    sign.as_secs_f64() * 1000.0,
                    ours * 1000.0,
                    sign.as_secs_f64() / ours
                );
                println!(
                    "| {a} | … of which the interpreter start-up (`pyhanko --version`) | {:.0} ms | sign without start-up: {:.0} ms | |",
                    startup.as_secs_f64() * 1000.0,
                    (sign.as_secs_f64() - startup.as_secs_f64()).max(0.0) * 1000.0
                );
            }
            None => println!("| {a} | pyHanko CLI | not installed | | |"),
        }
    }
    Ok(())
}
