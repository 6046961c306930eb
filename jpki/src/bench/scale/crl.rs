//! The CRL curves of `jpki bench scale`: encode + sign time and peak memory of one CRL at
//! 10^6 and 10^7 entries (ca::crl's streaming encoder: entries to a file, then framed, hashed,
//! signed and copied), each size in its own child process so that its peak resident set
//! (VmHWM) is its own; the shard sizes of 10^7 revocations over 16, 64 and 256 shards; and a
//! verifier's parse + index of one shard (validator::crl_index) in a child process too.

use std::io::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use ca::authority::shard_of;
use ca::crl::{self, CrlParams, Entry, EntryExtensions, Reason, Scope};
use ca::key::{KeyAlgorithm, SoftKey};
use serde::{Deserialize, Serialize};

use super::stats::{human_bytes, human_count, human_secs, power_fit};
use super::synth::Synth;
use super::{Report, peak_rss_kib, rss_kib};
use crate::bench::scale::plot::Series;

/// Seed of the revoked serials.
const SEED: u64 = 0x0C41;
/// The shard counts compared.
const SHARDS: [u64; 3] = [16, 64, 256];

/// What a CRL child reports.
#[derive(Debug, Serialize, Deserialize)]
pub struct CrlRun {
    /// Entries written.
    pub entries: u64,
    /// CRL size.
    pub bytes: u64,
    /// Encode entries to the temporary file.
    pub encode_secs: f64,
    /// Frame, hash, sign, write.
    pub sign_secs: f64,
    /// VmHWM before the work (KiB).
    pub hwm_before_kib: u64,
    /// VmHWM after (KiB).
    pub hwm_after_kib: u64,
}

/// What an index child reports.
#[derive(Debug, Serialize, Deserialize)]
pub struct IndexRun {
    /// Entries indexed.
    pub entries: u64,
    /// Read the file.
    pub read_secs: f64,
    /// Parse and index.
    pub index_secs: f64,
    /// VmHWM growth (KiB).
    pub hwm_growth_kib: u64,
    /// VmRSS growth with the index held and the file's bytes dropped (KiB).
    pub rss_held_kib: u64,
}

fn params(now: i64) -> Result<CrlParams> {
    Ok(CrlParams {
        issuer: "CN=JPKI scale bench CA,O=JPKI".parse().context("issuer name")?,
        issuer_key_id: vec![0x5c; 20],
        number: 1,
        this_update: now,
        next_update: now + 86_400,
        scope: Scope::Shard { url: "http://127.0.0.1/crl/auth-13/g1/0.crl".into() },
    })
}

/// Child: writes `dir/crl.der`, the CRL of the revoked serials 0..`total` that fall in shard
/// `shard` of `shards` (all of them for one shard), signed with a fresh RSA-2048 key; prints a
/// [`CrlRun`] as JSON.
pub fn child_crl(total: u64, shards: u64, shard: u64, dir: &Path) -> Result<()> {
    let hwm_before_kib = peak_rss_kib();
    let now = identity::http::now();
    let synth = Synth::new(SEED);
    let key = SoftKey::ephemeral(KeyAlgorithm::Rsa2048)?;
    let exts = EntryExtensions::new()?;
    let t = Instant::now();
    let entries_path = dir.join("entries");
    let mut w = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&entries_path)?);
    let mut buf = Vec::with_capacity(128);
    let (mut len, mut entries) = (0usize, 0u64);
    for i in 0..total {
        let serial = synth.serial(i);
        if shards > 1 && shard_of(&serial, i64::try_from(shards)?) != i64::try_from(shard)? {
            continue;
        }
        buf.clear();
        let e = Entry {
            serial: &serial,
            revoked_at: synth.revoked_at(i, now, 5 * 365 * 86_400),
            reason: if i % 3 == 0 { Reason::KeyCompromise } else { Reason::AffiliationChanged },
        };
        len += crl::encode_entry(&mut buf, &e, &exts)?;
        w.write_all(&buf)?;
        entries += 1;
    }
    w.flush()?;
    drop(w);
    let encode_secs = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(dir.join("crl.der"))?);
    let bytes = crl::assemble(
        &params(now)?,
        &key,
        len,
        || Ok(std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(&entries_path)?)),
        &mut out,
    )?;
    out.flush()?;
    drop(out);
    let sign_secs = t.elapsed().as_secs_f64();
    std::fs::remove_file(&entries_path)?;
    let run =
        CrlRun { entries, bytes: bytes as u64, encode_secs, sign_secs, hwm_before_kib, hwm_after_kib: peak_rss_kib() };
    println!("{}", serde_json::to_string(&run)?);
    Ok(())
}

/// Child: reads and indexes `file`; prints an [`IndexRun`] as JSON.
pub fn child_index(file: &Path) -> Result<()> {
    let (hwm0, rss0) = (peak_rss_kib(), rss_kib());
    let t = Instant::now();
    let bytes = std::fs::read(file)?;
    let read_secs = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let idx = validator::crl_index::CrlIndex::parse(&bytes).map_err(|e| anyhow::anyhow!("parsing the CRL: {e}"))?;
    let index_secs = t.elapsed().as_secs_f64();
    drop(bytes);
    ensure!(idx.contains(&idx.sample_serial()), "the index does not find its own sample");
    let run = IndexRun {
        entries: idx.len() as u64,
        read_secs,
        index_secs,
        hwm_growth_kib: peak_rss_kib().saturating_sub(hwm0),
        rss_held_kib: rss_kib().saturating_sub(rss0),
    };
    println!("{}", serde_json::to_string(&run)?);
    Ok(())
}

fn child<T: for<'de> Deserialize<'de>>(args: &[String]) -> Result<T> {
    let o = Command::new(std::env::current_exe()?)
        .args(["bench", "scale-child"])
        .args(args)
        .output()
        .context("cannot run the bench child")?;
    ensure!(o.status.success(), "bench child {args:?} failed: {}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8(o.stdout)?;
    let line = out.lines().last().context("the bench child printed nothing")?;
    Ok(serde_json::from_str(line)?)
}

fn crl_child(total: u64, shards: u64, dir: &Path) -> Result<CrlRun> {
    child(&[
        "crl".into(),
        "--entries".into(),
        total.to_string(),
        "--shards".into(),
        shards.to_string(),
        "--dir".into(),
        dir.display().to_string(),
    ])
}

/// Runs the CRL curves at `sizes` (entries of one CRL; shards of the largest); adds tables and
/// plots to `report`.
pub fn run(sizes: &[u64], report: &mut Report) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let bar = crate::progress::Bar::new("bench scale crl", "steps");
    let steps = (sizes.len() + SHARDS.len() + 1) as u64;
    let mut step = 0;
    let mut runs = Vec::new();
    for &n in sizes {
        bar.set(step, steps);
        let r = crl_child(n, 1, dir.path())?;
        ensure!(r.entries == n, "CRL of {n}: {} entries", r.entries);
        // An independent parser reads the largest: openssl.
        runs.push(r);
        step += 1;
    }
    let check = Command::new("openssl")
        .args(["crl", "-inform", "DER", "-noout", "-in"])
        .arg(dir.path().join("crl.der"))
        .output()
        .map(|o| if o.status.success() { "`openssl crl` parses it" } else { "`openssl crl` REJECTS it" })
        .unwrap_or("openssl not found");

    let mut t = String::new();
    t += "| entries | CRL size | bytes/entry | encode | frame + SHA-256 + sign + write | total | entries/s | peak RSS (VmHWM) | VmHWM growth |\n";
    t += "|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
    for r in &runs {
        let total = r.encode_secs + r.sign_secs;
        t += &format!(
            "| {} | {} | {:.1} | {} | {} | {} | {:.0} | {:.1} MB | {:.1} MB |\n",
            human_count(r.entries),
            human_bytes(r.bytes as f64),
            r.bytes as f64 / r.entries as f64,
            human_secs(r.encode_secs),
            human_secs(r.sign_secs),
            human_secs(total),
            r.entries as f64 / total,
            r.hwm_after_kib as f64 / 1024.0,
            r.hwm_after_kib.saturating_sub(r.hwm_before_kib) as f64 / 1024.0,
        );
    }
    let time_fit = power_fit(&runs.iter().map(|r| (r.entries as f64, r.encode_secs + r.sign_secs)).collect::<Vec<_>>());
    let mem_fit = power_fit(&runs.iter().map(|r| (r.entries as f64, r.hwm_after_kib as f64)).collect::<Vec<_>>());
    t += &format!(
        "\nEach size in its own child process (RSA-2048 signature; the largest checked: {check}). \
         Growth exponents (log-log fit, 1 = linear, 0 = constant): time {}, peak memory {}.\n",
        time_fit.map_or("–".into(), |f| format!("{:.2}", f.1)),
        mem_fit.map_or("–".into(), |f| format!("{:.2}", f.1)),
    );
    report.section("CRL: encode + sign one CRL", &t);
    report.plot(
        "scale-crl-time.png",
        "CRL encode + sign time",
        "entries",
        "seconds",
        vec![Series {
            label: "encode + sign (s)".into(),
            points: runs.iter().map(|r| (r.entries as f64, r.encode_secs + r.sign_secs)).collect(),
            extrapolated: false,
        }],
    )?;
    report.plot(
        "scale-crl-memory.png",
        "CRL encoder peak memory (child process VmHWM)",
        "entries",
        "MB",
        vec![Series {
            label: "peak RSS (MB)".into(),
            points: runs.iter().map(|r| (r.entries as f64, r.hwm_after_kib as f64 / 1024.0)).collect(),
            extrapolated: false,
        }],
    )?;

    // Shards of the largest set: entry counts per shard (all of them, by the CA's shard
    // function), and one real shard CRL per shard count.
    let largest = sizes.iter().copied().max().unwrap_or(0);
    let synth = Synth::new(SEED);
    let mut t = String::new();
    t += &format!(
        "{} revocations spread by the CA's `shard_of` (low 16 bits of the serial mod shards); shard 0 encoded and signed for real.\n\n",
        human_count(largest)
    );
    t += "| shards | entries per shard (min / mean / max) | shard 0 size (what a verifier downloads) | shard 0 encode + sign |\n";
    t += "|---:|---|---:|---:|\n";
    let mut shard0 = None;
    let mut shard_points = Vec::new();
    for s in SHARDS {
        bar.set(step, steps);
        step += 1;
        let mut counts = vec![0u64; usize::try_from(s)?];
        for i in 0..largest {
            counts[usize::try_from(shard_of(&synth.serial(i), i64::try_from(s)?))?] += 1;
        }
        let r = crl_child(largest, s, dir.path())?;
        ensure!(r.entries == counts[0], "shard 0 of {s}: {} entries, expected {}", r.entries, counts[0]);
        let (min, max) = (counts.iter().min().copied().unwrap_or(0), counts.iter().max().copied().unwrap_or(0));
        t += &format!(
            "| {s} | {} / {} / {} | {} | {} |\n",
            human_count(min),
            human_count(largest / s),
            human_count(max),
            human_bytes(r.bytes as f64),
            human_secs(r.encode_secs + r.sign_secs),
        );
        shard_points.push((s as f64, r.bytes as f64 / 1e6));
        if s == 16 {
            std::fs::rename(dir.path().join("crl.der"), dir.path().join("shard16.der"))?;
            shard0 = Some(r);
        }
    }
    report.section("CRL: shard sizes", &t);
    report.plot(
        "scale-crl-shards.png",
        &format!("CRL shard size, {} revocations", human_count(largest)),
        "shards",
        "MB per shard",
        vec![Series { label: "shard 0 (MB)".into(), points: shard_points, extrapolated: false }],
    )?;

    // A verifier's parse + index of one shard (of 16).
    bar.set(step, steps);
    let idx: IndexRun =
        child(&["index".into(), "--file".into(), dir.path().join("shard16.der").display().to_string()])?;
    let s0 = shard0.context("no 16-shard CRL")?;
    ensure!(idx.entries == s0.entries, "the index holds {} of {} entries", idx.entries, s0.entries);
    let mut t = String::new();
    t += "| shard (1 of 16) | entries | read | parse + index | peak memory growth | held by the index |\n|---|---:|---:|---:|---:|---:|\n";
    t += &format!(
        "| {} | {} | {} | {} | {:.1} MB | {:.1} MB ({:.1} B/entry) |\n",
        human_bytes(s0.bytes as f64),
        human_count(idx.entries),
        human_secs(idx.read_secs),
        human_secs(idx.index_secs),
        idx.hwm_growth_kib as f64 / 1024.0,
        idx.rss_held_kib as f64 / 1024.0,
        idx.rss_held_kib as f64 * 1024.0 / idx.entries.max(1) as f64,
    );
    report.section("CRL: a verifier indexes one shard", &t);
    bar.finish(format_args!("CRLs up to {} entries", human_count(largest)));
    Ok(())
}
