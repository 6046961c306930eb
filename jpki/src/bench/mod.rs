//! `jpki bench …`: benchmarks that print a Markdown table with their reference measured in the
//! same run (also run by `cargo xtask bench`). One module per target.

mod ca;
mod card;
mod identity;
mod issuance;
mod metrics;
mod ocsp;
mod ocsp_store;
mod peak;
mod resdoc;
mod rotation;
mod scale;

use anyhow::Result;
use clap::Subcommand;

/// Which benchmark.
#[derive(Debug, Subcommand)]
pub enum Which {
    /// Identity network throughput.
    Identity {
        /// PostgreSQL admin URL (also benchmark PostgreSQL).
        #[arg(long, env = "JPKI_TEST_PG_URL")]
        pg_url: Option<String>,
    },
    /// CA issuance rate against raw OpenSSL signing, and CRL encoding of 1,000,000 entries.
    Ca,
    /// Card issuance and signatures through pcscd + vpcd and the virtual card.
    Card,
    /// OCSP responder vs `openssl ocsp` under wrk; loading and indexing a 1M-entry CRL.
    Ocsp,
    /// OCSP scaled out: keyless responders over a Redis Cluster (hot set under wrk against
    /// nginx serving the same bytes, memory per hot entry, cold-miss latency, revocation to
    /// visible on every responder).
    OcspStore,
    /// What recording metrics costs: the validator's OCSP GET under wrk with the Prometheus
    /// recorder on and off, alternating rounds, medians and their ratio.
    Metrics,
    /// A window's issuance through the CA service (mutual TLS, clerk, municipality check)
    /// against the same issuance in process.
    Issuance,
    /// Signed residence certificates (PDF build + PAdES signature) per second per core, the PDF
    /// size, against the sign step alone, the key's raw signing, and pyHanko's CLI.
    Resdoc,
    /// Per CA algorithm: issuance rate against raw signing, certificate, CRL-entry and OCSP
    /// sizes, OCSP re-signing; a 1,000,000-certificate generation compromised and served
    /// revoked.
    Rotation,
    /// How the parts grow with national sizes (issue 14): CRLs, the OCSP responder, the
    /// identity national tier on PostgreSQL; Markdown tables and PNG plots.
    Scale(scale::Args),
    /// A child process of `bench scale` (measures its own peak memory).
    #[command(hide = true)]
    ScaleChild {
        /// What it does.
        #[command(subcommand)]
        job: scale::Child,
    },
    /// A March-peak day end to end: prefectures and municipalities as mutual-TLS nodes, the
    /// national node, the CA following the feed, the validator; freshness from a municipal
    /// commit to OCSP `revoked`.
    Peak(peak::Args),
}

/// Runs the benchmark `which` and prints its table to stdout (progress goes to stderr).
pub async fn run(which: Which) -> Result<()> {
    match which {
        Which::Identity { pg_url } => identity::run(pg_url).await,
        Which::Ca => ca::run().await,
        Which::Card => card::run().await,
        Which::Ocsp => ocsp::run().await,
        Which::OcspStore => ocsp_store::run().await,
        Which::Metrics => metrics::run().await,
        Which::Issuance => issuance::run().await,
        Which::Rotation => rotation::run().await,
        Which::Resdoc => resdoc::run().await,
        Which::Scale(a) => scale::run(a).await,
        Which::ScaleChild { job } => scale::child(job).await,
        Which::Peak(a) => peak::run(a).await,
    }
}
