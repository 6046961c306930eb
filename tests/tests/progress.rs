//! Progress on long operator work (issue 13): a bar on stderr only when stderr is a terminal,
//! and a summary line always. Run here as real processes: without a terminal (pipes, as in
//! logs and CI) no escape code reaches either stream; under a pseudo-terminal (`script`, from
//! util-linux) the bar is drawn, so the first check can fail.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

mod common;

use std::process::Command;

use common::{jpki_bin, text};

const ESC: char = '\u{1b}';

/// `jpki ca crl` and an offline `jpki ca ceremony run` piped: their summary lines and no bar.
#[test]
fn without_a_terminal_long_commands_print_a_summary_line_and_no_bar() {
    let dir = tempfile::tempdir().unwrap();
    let d = |f: &str| dir.path().join(f).display().to_string();
    let jpki = |args: &[&str]| common::local_ca(dir.path(), args, &[]);
    let o = jpki(&["ca", "init"]);
    assert!(o.status.success(), "{}", text(&o));

    let o = jpki(&["ca", "crl", "--out", &d("pub")]);
    assert!(o.status.success(), "{}", text(&o));
    let (out, err) = (String::from_utf8(o.stdout).unwrap(), String::from_utf8(o.stderr).unwrap());
    let written = out.lines().filter(|l| l.contains(" -> ")).count();
    assert!(written > 0, "{out}");
    let summary = err.lines().find(|l| l.starts_with("ca crl: ")).unwrap_or_else(|| panic!("no summary line: {err}"));
    assert!(summary.starts_with(&format!("ca crl: {written} CRLs published (")), "{summary}");
    assert!(summary.ends_with(" s"), "{summary}");
    assert!(!out.contains(ESC) && !err.contains(ESC), "escape codes without a terminal: {err:?}");

    std::fs::write(
        d("c.toml"),
        format!(
            "ca = \"sign-root\"\ngeneration = 2\nalgorithm = \"p384\"\nkey = \"software\"\n\
             not_before = \"{}\"\nactivation = \"{}\"\nname = \"same\"\n",
            common::rfc3339(identity::http::now()),
            common::rfc3339(identity::http::now() + 86_400 * 30)
        ),
    )
    .unwrap();
    let o = jpki(&["ca", "ceremony", "run", &d("c.toml")]);
    assert!(o.status.success(), "{}", text(&o));
    let (out, err) = (String::from_utf8(o.stdout).unwrap(), String::from_utf8(o.stderr).unwrap());
    let steps = out.lines().filter(|l| l.contains(". done:")).count();
    assert!(steps > 0, "{out}");
    assert!(
        err.lines()
            .any(|l| l
                .starts_with(&format!("ca ceremony run: sign-root g2: {steps} steps, {steps} done by this run in "))),
        "{err}"
    );
    assert!(!out.contains(ESC) && !err.contains(ESC), "escape codes without a terminal: {err:?}");
}

/// The same `jpki ca crl` under a pseudo-terminal draws (and clears) its bar, then the same
/// summary line.
#[test]
fn on_a_terminal_the_bar_is_drawn() {
    let dir = tempfile::tempdir().unwrap();
    let o = common::local_ca(dir.path(), &["ca", "init"], &[]);
    assert!(o.status.success(), "{}", text(&o));
    let out = dir.path().join("pub");
    // script runs the command on a new pseudo-terminal; its own output is the terminal's.
    let cmd = format!("'{}' ca crl --out '{}' --actor op-1", jpki_bin().display(), out.display());
    let o = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("JPKI_CA_PASSPHRASE", common::LOCAL_CA_PASSPHRASE)
        .env("JPKI_CA_DB", dir.path().join("ca.db"))
        .env("JPKI_CA_KEYS", dir.path().join("keys"))
        .env("TERM", "xterm")
        .output()
        .unwrap();
    let all = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{all}");
    assert!(all.contains("ca crl: ") && all.contains("CRLs published"), "{all}");
    assert!(all.contains(ESC), "no bar drawn on a terminal: {all:?}");
}
