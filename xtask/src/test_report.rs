//! `cargo test` with its output shown as it comes and kept, so that a failure can be named at the
//! end of `cargo xtask ci`: the failing tests and their panic messages, after the summary table,
//! where a reader of only the last lines of the log sees them.

use std::{
    io::{BufRead, BufReader, Read, Write},
    process::{Command, Stdio},
    sync::{Arc, Mutex},
    thread,
};

use anyhow::{Context, bail};

use crate::cmd::show;

/// At most this many lines of digest, so that the summary stays readable.
const MAX_DIGEST_LINES: usize = 60;

/// Runs `cmd` (a `cargo test`), echoing its output; on failure the error carries the digest.
pub(crate) fn run_tests(cmd: &mut Command) -> anyhow::Result<()> {
    println!("$ {}", show(cmd));
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("could not start `{}`", show(cmd)))?;
    let kept = Arc::new(Mutex::new(Vec::<String>::new()));
    let stdout = child.stdout.take().context("no stdout")?;
    let stderr = child.stderr.take().context("no stderr")?;
    let out = echo(stdout, Arc::clone(&kept), false);
    let err = echo(stderr, Arc::clone(&kept), true);
    let status = child.wait().context("waiting for cargo test")?;
    let _ = out.join();
    let _ = err.join();
    if status.success() {
        return Ok(());
    }
    let lines = kept.lock().map(|l| l.clone()).unwrap_or_default();
    bail!("`{}` failed: {status}\n{}", show(cmd), digest(&lines).join("\n"))
}

/// Copies `from` line by line to our stdout or stderr and keeps the lines a digest needs.
fn echo(from: impl Read + Send + 'static, kept: Arc<Mutex<Vec<String>>>, to_stderr: bool) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        for line in BufReader::new(from).lines() {
            let Ok(line) = line else { break };
            if to_stderr {
                let _ = writeln!(std::io::stderr(), "{line}");
            } else {
                let _ = writeln!(std::io::stdout(), "{line}");
            }
            if let Ok(mut kept) = kept.lock() {
                kept.push(line);
            }
        }
    })
}

/// From libtest's and cargo's output: each failing test with the first lines of its panic, and
/// cargo's "to rerun pass" lines (which name the test binary).
pub(crate) fn digest(lines: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_block: Option<usize> = None;
    for line in lines {
        if let Some(name) = line.strip_prefix("---- ").and_then(|l| l.strip_suffix(" stdout ----")) {
            out.push(format!("FAILED {name}"));
            in_block = Some(0);
            continue;
        }
        if line.starts_with("failures:") || line.starts_with("test result:") {
            in_block = None;
        }
        if let Some(shown) = in_block.as_mut() {
            let wanted = line.contains("panicked at") || (*shown > 0 && *shown < 4);
            if wanted && !line.trim().is_empty() {
                out.push(format!("    {}", truncate(line.trim_end(), 200)));
                *shown += 1;
            }
        }
        if line.contains("to rerun pass")
            || line.contains("No space left on device")
            || line.starts_with("test ") && line.ends_with("... FAILED")
        {
            out.push(truncate(line.trim(), 200).to_owned());
        }
    }
    if out.len() > MAX_DIGEST_LINES {
        let more = out.len() - MAX_DIGEST_LINES;
        out.truncate(MAX_DIGEST_LINES);
        out.push(format!("… {more} more line(s) in the log above"));
    }
    out
}

fn truncate(line: &str, max: usize) -> &str {
    match line.char_indices().nth(max) {
        Some((at, _)) => &line[..at],
        None => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_failing_test_its_panic_and_binary() {
        let log = "running 2 tests
test a::passes ... ok
test b::flaky ... FAILED

failures:

---- b::flaky stdout ----
some log line
thread 'b::flaky' panicked at tests/tests/x.rs:10:5:
assertion `left == right` failed
  left: 1
 right: 2
note: run with `RUST_BACKTRACE=1`

failures:
    b::flaky

test result: FAILED. 1 passed; 1 failed
error: test failed, to rerun pass `-p tests --test x`";
        let lines: Vec<String> = log.lines().map(str::to_owned).collect();
        let got = digest(&lines);
        assert_eq!(
            got,
            [
                "test b::flaky ... FAILED",
                "FAILED b::flaky",
                "    thread 'b::flaky' panicked at tests/tests/x.rs:10:5:",
                "    assertion `left == right` failed",
                "      left: 1",
                "     right: 2",
                "error: test failed, to rerun pass `-p tests --test x`",
            ]
        );
    }

    #[test]
    fn a_passing_log_has_an_empty_digest() {
        let lines: Vec<String> = ["test a ... ok", "test result: ok. 1 passed"].map(str::to_owned).to_vec();
        assert!(digest(&lines).is_empty());
    }
}
