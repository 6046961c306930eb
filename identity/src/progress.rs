//! Progress of long library work, reported to whoever draws it: library code never prints
//! (the `jpki` binary draws an indicatif bar on a terminal and prints a summary line).

/// A progress callback: `(done, total)` units of the work at hand (CRLs, feed entries, notices,
/// responses, ceremony steps). `total` may grow while the work runs (a feed that moves on);
/// `done` never exceeds the `total` of the same call.
pub type Progress<'a> = &'a (dyn Fn(u64, u64) + Sync);

/// A callback that ignores progress (services, tests).
pub const SILENT: Progress<'static> = &|_, _| {};
