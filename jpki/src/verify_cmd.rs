//! `jpki verify cert`: RFC 5280 path validation for verifiers, scriptable. Exit status 0 valid,
//! 1 invalid (reason printed), 2 usage error (bad arguments, unreadable or malformed input), 3
//! status unavailable with `--ocsp` (a responder answered with an OCSP error response such as
//! `unauthorized` or `tryLater`, or nothing answered: the responder failed, not the
//! certificate; the reason names the answer).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use validator::verify::{Input, Revocation, Verdict, verify};

/// What to verify.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Validate a certificate to pinned trust anchors at a given time.
    Cert(CertArgs),
    /// Verify a CMS SignedData (attached or detached, DER or PEM) made with a resident's
    /// signature certificate: signature, signer identity items, signing time, certificate status.
    Doc(DocArgs),
}

/// `jpki verify doc`.
#[derive(Debug, Args)]
pub struct DocArgs {
    /// The CMS SignedData (.p7s / .p7m; DER or PEM).
    pub signed: PathBuf,
    /// The signed content, for a detached signature.
    #[arg(long)]
    pub content: Option<PathBuf>,
    /// A trust anchor (repeat).
    #[arg(long = "anchor", required = true)]
    pub anchors: Vec<PathBuf>,
    /// Extra certificates that may complete the path (repeat).
    #[arg(long = "intermediate")]
    pub intermediates: Vec<PathBuf>,
    /// CRLs (repeat).
    #[arg(long = "crl")]
    pub crls: Vec<PathBuf>,
    /// Do not check revocation.
    #[arg(long, conflicts_with = "crls")]
    pub no_revocation: bool,
    /// Time at which the signer's certificate is validated (RFC 3339); default now. The
    /// message's signingTime is reported, never used for validation.
    #[arg(long)]
    pub at: Option<String>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `jpki verify cert`.
#[derive(Debug, Args)]
pub struct CertArgs {
    /// The certificate (PEM or DER).
    pub leaf: PathBuf,
    /// A trust anchor (repeat); PEM files may hold several.
    #[arg(long = "anchor", required = true)]
    pub anchors: Vec<PathBuf>,
    /// Certificates that may complete the path (repeat).
    #[arg(long = "intermediate")]
    pub intermediates: Vec<PathBuf>,
    /// CRLs to check revocation with (repeat; DER or PEM).
    #[arg(long = "crl")]
    pub crls: Vec<PathBuf>,
    /// Time of interest (RFC 3339); default now.
    #[arg(long)]
    pub at: Option<String>,
    /// Do not check revocation.
    #[arg(long, conflicts_with_all = ["crls", "ocsp"])]
    pub no_revocation: bool,
    /// Check revocation online: OCSP from the responders the certificates name (AIA), the
    /// CRL of the distribution point for a certificate without one. A responder's OCSP error
    /// response (`unauthorized`, `tryLater`, …) is "status unavailable", exit status 3.
    #[arg(long, conflicts_with = "crls")]
    pub ocsp: bool,
    /// RFC 5280 initial-policy-set (repeat; dotted OIDs). Default anyPolicy.
    #[arg(long = "policy")]
    pub policies: Vec<String>,
    /// initial-explicit-policy.
    #[arg(long)]
    pub explicit_policy: bool,
    /// initial-policy-mapping-inhibit.
    #[arg(long)]
    pub inhibit_policy_mapping: bool,
    /// initial-any-policy-inhibit.
    #[arg(long)]
    pub inhibit_any_policy: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Every DER object in a file: the PEM blocks with `label`, or the file itself as DER.
pub(crate) fn read_all(p: &PathBuf, label: &str) -> Result<Vec<Vec<u8>>, String> {
    let b = std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
    if !b.starts_with(b"-----BEGIN") && !b.trim_ascii_start().starts_with(b"-----BEGIN") {
        return Ok(vec![b]);
    }
    let text = String::from_utf8_lossy(&b);
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let mut out = Vec::new();
    let mut rest = text.as_ref();
    while let Some(i) = rest.find(&begin) {
        let j = rest[i..].find(&end).ok_or_else(|| format!("{}: unterminated PEM", p.display()))? + i + end.len();
        let (_, der) =
            der::pem::decode_vec(&rest.as_bytes()[i..j]).map_err(|e| format!("{}: bad PEM: {e}", p.display()))?;
        out.push(der);
        rest = &rest[j..];
    }
    if out.is_empty() {
        return Err(format!("{}: no {label} PEM block", p.display()));
    }
    Ok(out)
}

fn usage(msg: &str) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::from(2)
}

fn at_of(s: &Option<String>) -> Result<u64, String> {
    let t = match s {
        None => time::OffsetDateTime::now_utc().unix_timestamp(),
        Some(s) => time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
            .map_err(|e| format!("--at {s:?} is not RFC 3339: {e}"))?
            .unix_timestamp(),
    };
    u64::try_from(t).map_err(|_| "--at before 1970".to_string())
}

fn doc(a: DocArgs) -> ExitCode {
    let signed = match read_all(&a.signed, "CMS").or_else(|_| read_all(&a.signed, "PKCS7")) {
        Ok(mut v) if v.len() == 1 => v.remove(0),
        Ok(_) => return usage("the signed file must hold one message"),
        Err(e) => return usage(&e),
    };
    let content = match &a.content {
        Some(p) => match std::fs::read(p) {
            Ok(b) => Some(b),
            Err(e) => return usage(&format!("cannot read {}: {e}", p.display())),
        },
        None => None,
    };
    let at = match at_of(&a.at) {
        Ok(t) => t,
        Err(e) => return usage(&e),
    };
    let mut lists = Vec::new();
    for (paths, label) in [(&a.anchors, "CERTIFICATE"), (&a.intermediates, "CERTIFICATE"), (&a.crls, "X509 CRL")] {
        let mut v = Vec::new();
        for p in paths {
            match read_all(p, label) {
                Ok(x) => v.extend(x),
                Err(e) => return usage(&e),
            }
        }
        lists.push(v);
    }
    let crls = lists.pop().unwrap_or_default();
    let intermediates = lists.pop().unwrap_or_default();
    let anchors = lists.pop().unwrap_or_default();
    let revocation = if a.no_revocation { Revocation::None } else { Revocation::Crls(crls) };
    let r =
        match validator::signed_doc::verify_signed(&signed, content.as_deref(), anchors, intermediates, revocation, at)
        {
            Ok(r) => r,
            Err(e) => return usage(&e.to_string()),
        };
    let status = match &r.certificate {
        Verdict::Valid { .. } => "valid".to_string(),
        Verdict::Invalid { reason } => format!("invalid: {reason}"),
        Verdict::Unavailable { reason, .. } => format!("status unavailable: {reason}"),
    };
    let when = r
        .signing_time
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok());
    if a.json {
        let items: serde_json::Map<String, serde_json::Value> =
            r.items.iter().map(|(k, v)| ((*k).to_string(), serde_json::Value::String(v.clone()))).collect();
        println!(
            "{}",
            serde_json::json!({
                "valid": r.valid(), "signature": r.signature_ok, "signature_error": r.signature_error,
                "signer": r.signer, "serial": r.serial, "identity": items, "signing_time": when,
                "certificate": status, "content_bytes": r.content_len,
            })
        );
    } else {
        println!(
            "signature:   {}",
            if r.signature_ok {
                "good".to_string()
            } else {
                format!("BAD: {}", r.signature_error.clone().unwrap_or_default())
            }
        );
        println!("signer:      {} (serial {})", r.signer, r.serial);
        for (k, v) in &r.items {
            println!("  {k:<25} {v}");
        }
        println!("signed at:   {}", when.unwrap_or_else(|| "(no signingTime)".into()));
        println!("certificate: {status}");
        println!("{}", if r.valid() { "VALID" } else { "INVALID" });
    }
    if r.valid() { ExitCode::SUCCESS } else { ExitCode::from(1) }
}

/// Runs `jpki verify …` and returns its exit status.
pub fn run(cmd: Cmd) -> ExitCode {
    let a = match cmd {
        Cmd::Cert(a) => a,
        Cmd::Doc(a) => return doc(a),
    };
    let at = match &a.at {
        None => time::OffsetDateTime::now_utc().unix_timestamp(),
        Some(s) => match time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339) {
            Ok(t) => t.unix_timestamp(),
            Err(e) => return usage(&format!("--at {s:?} is not RFC 3339: {e}")),
        },
    };
    let Ok(at) = u64::try_from(at) else { return usage("--at before 1970") };
    let collect = |paths: &[PathBuf], label: &str| -> Result<Vec<Vec<u8>>, String> {
        let mut v = Vec::new();
        for p in paths {
            v.extend(read_all(p, label)?);
        }
        Ok(v)
    };
    let leaf = match read_all(&a.leaf, "CERTIFICATE") {
        Ok(mut v) if v.len() == 1 => v.remove(0),
        Ok(_) => return usage("the certificate file must hold one certificate"),
        Err(e) => return usage(&e),
    };
    let (anchors, intermediates, crls) = match (
        collect(&a.anchors, "CERTIFICATE"),
        collect(&a.intermediates, "CERTIFICATE"),
        collect(&a.crls, "X509 CRL"),
    ) {
        (Ok(x), Ok(y), Ok(z)) => (x, y, z),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return usage(&e),
    };
    let revocation = if a.no_revocation {
        Revocation::None
    } else if a.ocsp {
        Revocation::Online(fetch)
    } else {
        Revocation::Crls(crls)
    };
    let mut input = Input::new(leaf, anchors, intermediates, at, revocation);
    input.policies = a.policies;
    input.explicit_policy = a.explicit_policy;
    input.inhibit_mapping = a.inhibit_policy_mapping;
    input.inhibit_any = a.inhibit_any_policy;
    let verdict = match verify(&input) {
        Ok(v) => v,
        Err(e) => return usage(&e.to_string()),
    };
    match verdict {
        Verdict::Valid { path } => {
            if a.json {
                println!("{}", serde_json::json!({ "valid": true, "path": path, "at": at }));
            } else {
                println!("valid: {}", path.join(" -> "));
            }
            ExitCode::SUCCESS
        }
        Verdict::Invalid { reason } => {
            if a.json {
                println!("{}", serde_json::json!({ "valid": false, "reason": reason, "at": at }));
            } else {
                println!("invalid: {reason}");
            }
            ExitCode::from(1)
        }
        Verdict::Unavailable { reason, ocsp_status } => {
            if a.json {
                println!(
                    "{}",
                    serde_json::json!({
                        "valid": false, "unavailable": true, "reason": reason, "at": at,
                        "ocsp_status": ocsp_status.map(|s| s.name()),
                    })
                );
            } else {
                println!("status unavailable: {reason}");
            }
            ExitCode::from(3)
        }
    }
}

/// POSTs a DER OCSP request (RFC 6960 A.1) or GETs a CRL; `None` on any failure (no answer, a
/// non-2xx status). What an answer says, an OCSP error response included, is
/// [`validator::verify`]'s to judge.
fn fetch(url: &str, req: Option<&[u8]>) -> Option<Vec<u8>> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
    rt.block_on(async {
        let client = reqwest::Client::builder().timeout(std::time::Duration::from_secs(10)).build().ok()?;
        let r = match req {
            Some(body) => client
                .post(url)
                .header("Content-Type", "application/ocsp-request")
                .body(body.to_vec())
                .send()
                .await
                .ok()?,
            None => client.get(url).send().await.ok()?,
        };
        if !r.status().is_success() {
            return None;
        }
        r.bytes().await.ok().map(|b| b.to_vec())
    })
}
