//! `jpki`: the one operator binary. `serve <role>` runs a node, `identity …` does clerk
//! and operator work, `net …` runs the network CA, `demo` plays the end-to-end story (the
//! README's main job).

mod backup_cmd;
mod bench;
mod ca_cmd;
mod ca_remote;
mod ca_serve;
mod card_cmd;
mod config;
mod demo;
mod demo_ca;
mod demo_card;
mod enrol;
mod identity_cmd;
mod kiosk_cmd;
mod net_cmd;
mod netargs;
mod ocsp_store_cmd;
mod openapi_cmd;
mod proc;
mod progress;
mod resdoc_cmd;
mod serve;
mod validator_cmd;
mod verify_cmd;
mod window_serve;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// National resident PKI and identity network (JPKI / Juki Net model).
#[derive(Debug, Parser)]
#[command(name = "jpki", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one node of the identity network as a server.
    #[command(subcommand)]
    Serve(serve::Role),
    /// Clerk and operator commands of the identity network.
    #[command(subcommand)]
    Identity(identity_cmd::Cmd),
    /// Certificate-authority operator commands: init, issue, revoke, follow, crl, list, show, audit.
    #[command(subcommand)]
    Ca(ca_cmd::Cmd),
    /// A CA operator's commands through the running CA service (no CA secret): revoke, crl,
    /// revocations.
    #[command(subcommand)]
    CaOp(ca_remote::Cmd),
    /// The municipal window's card writer: issue, renew, status, pin-reset, verify-pin, wipe.
    #[command(subcommand)]
    Card(card_cmd::Cmd),
    /// コンビニ交付 at a kiosk: the resident's card signs the municipality's challenge through
    /// PC/SC, and the municipality issues the residence certificate (docs/kiosk.md).
    #[command(subcommand)]
    Kiosk(kiosk_cmd::Cmd),
    /// The network CA of the parties (mutual TLS, notice keys): init, issue, revoke, crl, list.
    #[command(subcommand)]
    Net(net_cmd::Cmd),
    /// Validator set-up: responder keys and their certificates.
    #[command(subcommand)]
    Validator(validator_cmd::Cmd),
    /// Residence certificates (住民票の写し) as PAdES-signed PDFs (docs/resdoc.md).
    #[command(subcommand)]
    Resdoc(resdoc_cmd::Cmd),
    /// Print a service's OpenAPI description (what it serves at `GET /openapi.json`).
    Openapi(openapi_cmd::Args),
    /// Run a virtual JPKI card connected to vsmartcard's vpcd inside pcscd.
    CardSim(card_cmd::SimArgs),
    /// Verification for verifiers: `jpki verify cert LEAF --anchor ROOT … [--crl …]`
    /// (exit 0 valid, 1 invalid, 2 usage error).
    #[command(subcommand)]
    Verify(verify_cmd::Cmd),
    /// Back up a node's SQLite database while it runs (identity node, CA, validator): a
    /// consistent snapshot, checked, written beside --out and linked into place.
    Backup(backup_cmd::BackupArgs),
    /// Put a backup back as a node's database (the node stopped); a CA database is then
    /// reconciled with `jpki ca reconcile` before it issues.
    Restore(backup_cmd::RestoreArgs),
    /// Benchmarks that print a table (also run by `cargo xtask bench`).
    #[command(subcommand)]
    Bench(bench::Which),
    /// Play the end-to-end story on SQLite in a temporary directory, printing each step.
    Demo(demo::Args),
}

/// No argument of any command ever shows its environment variable's value in `--help` (a
/// database URL may carry a password; secrets are never clap arguments at all).
fn hide_env_values(cmd: clap::Command) -> clap::Command {
    cmd.mut_args(|a| a.hide_env_values(true)).mut_subcommands(hide_env_values)
}

fn main() -> std::process::ExitCode {
    // Logs go to stderr; `JPKI_LOG_FORMAT=json` makes each event one JSON object with its span
    // (the request's id, service and route) for a log pipeline.
    let filter = || {
        tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| "warn,identity=info,jpki=info,certval=off".into())
    };
    if std::env::var("JPKI_LOG_FORMAT").is_ok_and(|v| v == "json") {
        tracing_subscriber::fmt().json().with_env_filter(filter()).with_writer(std::io::stderr).init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter()).with_writer(std::io::stderr).init();
    }
    let cli = match Cli::from_arg_matches(&hide_env_values(Cli::command()).get_matches()) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    if let Command::Verify(cmd) = cli.command {
        return verify_cmd::run(cmd);
    }
    if let Command::Openapi(args) = cli.command {
        return match openapi_cmd::run(args) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    // The metrics recorder before any work, so that what a service records while it starts
    // (pre-signing, first pulls) is counted; only with a listener to read it.
    if let Command::Serve(_) = cli.command
        && std::env::var_os("JPKI_METRICS_LISTEN").is_some()
    {
        net::metrics::install();
    }
    let result = rt.block_on(async {
        match cli.command {
            Command::Serve(role) => serve::run(role).await,
            Command::Identity(cmd) => identity_cmd::run(cmd).await,
            Command::Ca(cmd) => ca_cmd::run(cmd).await,
            Command::CaOp(cmd) => ca_remote::run(cmd).await,
            Command::Card(cmd) => card_cmd::run(cmd).await,
            Command::Kiosk(cmd) => kiosk_cmd::run(cmd).await,
            Command::Validator(cmd) => validator_cmd::run(cmd).await,
            Command::Net(cmd) => net_cmd::run(cmd),
            Command::Resdoc(cmd) => resdoc_cmd::run(cmd),
            Command::CardSim(args) => tokio::task::block_in_place(|| card_cmd::run_sim(args)),
            Command::Demo(args) => demo::run(args).await,
            Command::Verify(_) | Command::Openapi(_) => unreachable!("handled before the runtime starts"),
            Command::Bench(which) => bench::run(which).await,
            Command::Backup(args) => backup_cmd::backup(args).await,
            Command::Restore(args) => backup_cmd::restore(args).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every subcommand's arguments are consistent (clap checks names, flags and defaults
    /// only when a subcommand is built, so a clash would otherwise show only at run time).
    #[test]
    fn the_command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
