//! `cargo xtask golden [--check]`: the golden test vectors (validator/tests/golden.rs and the
//! files in validator/tests/golden/). Without `--check` the test rewrites the files from the
//! fixed keys and clock (`JPKI_GOLDEN_UPDATE=1`); with it, any difference fails. Both runs check
//! the vectors with openssl and, for ML-DSA-65, pyca/cryptography from `cargo xtask oracles`.

use std::process::Command;

use crate::cmd::{cargo, run as run_cmd};

/// Regenerates the vectors (`check == false`) or checks them (`check == true`).
pub fn run(check: bool) -> anyhow::Result<()> {
    let mut test = cargo("test -p validator --test golden");
    if check {
        test.env_remove("JPKI_GOLDEN_UPDATE");
    } else {
        test.env("JPKI_GOLDEN_UPDATE", "1");
    }
    test.args(["--", "--nocapture"]);
    run_cmd(&mut test)?;
    if !check {
        // What changed, for review before committing.
        run_cmd(
            Command::new("git")
                .args(["status", "--short", "--", "validator/tests/golden"])
                .current_dir(crate::cmd::project_root()),
        )?;
    }
    Ok(())
}
