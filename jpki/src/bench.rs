//! `jpki bench …`: benchmarks that print a table (being written).

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
}

pub async fn run(which: Which) -> Result<()> {
    let Which::Identity { pg_url } = which;
    anyhow::bail!("benchmark not written yet (pg: {pg_url:?})")
}
