//! `jpki openapi SERVICE`: prints the OpenAPI 3.1 description a service serves at
//! `GET /openapi.json`, without running it (the same value: both come from the service's
//! router definition).

use anyhow::Result;

/// The services whose JSON APIs are described.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Service {
    /// `jpki serve national`.
    National,
    /// `jpki serve prefecture`.
    Prefecture,
    /// `jpki serve municipality`.
    Municipality,
    /// `jpki serve ca`.
    Ca,
    /// The verification API of `jpki serve validator` (its mutual-TLS `--api-listen`).
    Validator,
}

/// `jpki openapi`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Whose description.
    #[arg(value_enum)]
    pub service: Service,
}

/// Prints the description (pretty JSON) to stdout.
pub fn run(a: Args) -> Result<()> {
    let doc = match a.service {
        Service::National => identity::http::national_openapi(),
        Service::Prefecture => identity::http::prefecture_openapi(),
        Service::Municipality => identity::http::municipal_openapi(),
        Service::Ca => ca::service::openapi(),
        Service::Validator => validator::http::api_openapi(),
    };
    println!("{}", doc.to_pretty_json()?);
    Ok(())
}
