//! What the validator serves under `/crl/`, as metrics: for every CRL file in the CRL directory
//! (`crl/{ca}/g{n}/{shard}.crl`, `arl.crl` for the ARL, as `jpki ca crl --out` writes them),
//! its nextUpdate and entry count, so that an alert catches a publication pipeline that stopped
//! while the validator keeps serving ageing CRLs.
//!
//! | metric | labels |
//! |---|---|
//! | `jpki_crl_served_this_update_timestamp_seconds` | `ca`, `generation`, `shard` (`-1`: the ARL) |
//! | `jpki_crl_served_next_update_timestamp_seconds` | the same |
//! | `jpki_crl_served_entries` | the same |

use std::path::Path;

use der::Decode as _;
use x509_cert::crl::CertificateList;

/// One CRL the validator serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedCrl {
    /// The CA's slug (its directory).
    pub ca: String,
    /// The generation (`g{n}`).
    pub generation: i64,
    /// The shard, `-1` for the ARL.
    pub shard: i64,
    /// thisUpdate (unix seconds): `time() - this_update` is the CRL's age.
    pub this_update: i64,
    /// nextUpdate (unix seconds), if the CRL has one.
    pub next_update: Option<i64>,
    /// Revoked entries.
    pub entries: usize,
}

/// Reads every CRL under `{dir}/crl` (files that do not parse or are not named as published
/// are skipped with a warning: the directory is written by the operator's publication, not by
/// clients) and sets the gauges. Returns what it read.
pub fn record_crl_gauges(dir: &Path) -> Vec<ServedCrl> {
    let mut out = Vec::new();
    let Ok(cas) = std::fs::read_dir(dir.join("crl")) else { return out };
    for ca in cas.flatten() {
        let Ok(gens) = std::fs::read_dir(ca.path()) else { continue };
        let slug = ca.file_name().to_string_lossy().into_owned();
        for g in gens.flatten() {
            let name = g.file_name().to_string_lossy().into_owned();
            let Some(generation) = name.strip_prefix('g').and_then(|n| n.parse::<i64>().ok()) else { continue };
            let Ok(files) = std::fs::read_dir(g.path()) else { continue };
            for f in files.flatten() {
                let file = f.file_name().to_string_lossy().into_owned();
                let shard = match file.strip_suffix(".crl") {
                    Some("arl") => -1,
                    Some(n) => match n.parse::<i64>() {
                        Ok(n) => n,
                        Err(_) => continue,
                    },
                    None => continue,
                };
                match std::fs::read(f.path())
                    .map_err(|e| e.to_string())
                    .and_then(|b| <CertificateList>::from_der(&b).map_err(|e| e.to_string()))
                {
                    Ok(crl) => out.push(ServedCrl {
                        ca: slug.clone(),
                        generation,
                        shard,
                        this_update: crl
                            .tbs_cert_list
                            .this_update
                            .to_unix_duration()
                            .as_secs()
                            .try_into()
                            .unwrap_or(i64::MAX),
                        next_update: crl
                            .tbs_cert_list
                            .next_update
                            .map(|t| t.to_unix_duration().as_secs().try_into().unwrap_or(i64::MAX)),
                        entries: crl.tbs_cert_list.revoked_certificates.as_ref().map_or(0, Vec::len),
                    }),
                    Err(e) => tracing::warn!(ca = %slug, generation, shard, error = %e, "a served CRL does not parse"),
                }
            }
        }
    }
    for c in &out {
        let labels = [("ca", c.ca.clone()), ("generation", c.generation.to_string()), ("shard", c.shard.to_string())];
        metrics::gauge!("jpki_crl_served_this_update_timestamp_seconds", &labels).set(c.this_update as f64);
        if let Some(n) = c.next_update {
            metrics::gauge!("jpki_crl_served_next_update_timestamp_seconds", &labels).set(n as f64);
        }
        metrics::gauge!("jpki_crl_served_entries", &labels).set(c.entries as f64);
    }
    out
}
