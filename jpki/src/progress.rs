//! Progress of long operator work: an indicatif bar on stderr while the work runs — drawn only
//! when stderr is a terminal, so logs and pipes never see escape codes — and one summary line
//! on stderr when it ends, always (`ca crl: 12 CRLs published in 0.4 s`).

use std::io::IsTerminal as _;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// A bar for one long operation.
#[derive(Debug)]
pub struct Bar {
    bar: ProgressBar,
    what: String,
    started: Instant,
}

impl Bar {
    /// A bar counting `unit` (`CRLs`, `feed entries`, …) for the operation `what` (the
    /// command, as the summary line names it). Hidden unless stderr is a terminal.
    pub fn new(what: impl Into<String>, unit: &str) -> Self {
        let bar = if std::io::stderr().is_terminal() {
            let b = ProgressBar::new(0);
            b.enable_steady_tick(Duration::from_millis(200));
            b
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(
            ProgressStyle::with_template(&format!("{{bar:40}} {{pos}}/{{len}} {unit} {{elapsed}} {{msg}}"))
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Self { bar, what: what.into(), started: Instant::now() }
    }

    /// A spinner for work whose size is not known up front (it still takes [`Bar::set`]).
    pub fn spinner(what: impl Into<String>, msg: &str) -> Self {
        let b = Self::new(what, "");
        b.bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        b.bar.set_message(msg.to_owned());
        b
    }

    /// `done` of `total` (the total may grow).
    pub fn set(&self, done: u64, total: u64) {
        self.bar.set_length(total);
        self.bar.set_position(done);
    }

    /// Runs `f` (which prints) with the bar hidden, so lines and bar do not mix.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        self.bar.suspend(f)
    }

    /// The bar as a library progress callback ([`identity::progress::Progress`]).
    pub fn callback(&self) -> impl Fn(u64, u64) + Sync + '_ {
        move |done, total| self.set(done, total)
    }

    /// Clears the bar and prints the summary line `WHAT: SUMMARY in N.N s` on stderr.
    pub fn finish(self, summary: impl std::fmt::Display) {
        self.bar.finish_and_clear();
        eprintln!("{}: {summary} in {:.1} s", self.what, self.started.elapsed().as_secs_f64());
    }
}

impl Drop for Bar {
    /// A bar left by an error is cleared, so the error message starts on a clean line.
    fn drop(&mut self) {
        if !self.bar.is_finished() {
            self.bar.finish_and_clear();
        }
    }
}
