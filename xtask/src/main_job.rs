//! The main job (`jpki demo`) as a CI step, and the scan of its logs for personal data and secrets.

use std::{fs, path::Path};

use anyhow::Context;

use crate::cmd::{cargo, run};

/// Runs the main job kept in `dir` (its processes' logs in `dir/logs`, its own log in
/// `dir/demo.log`; its story on stdout).
pub(crate) fn main_job(dir: &Path) -> anyhow::Result<()> {
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir)?;
    let log = fs::File::create(dir.join("demo.log"))?;
    let mut cmd = cargo("run --quiet -p jpki -- demo --keep");
    cmd.arg(dir).stderr(log);
    let r = run(&mut cmd);
    if r.is_err() {
        eprintln!("--- the main job's log ---\n{}", fs::read_to_string(dir.join("demo.log")).unwrap_or_default());
    }
    r
}

/// The residents' names and addresses of the main job's story (jpki/src/demo.rs).
const STORY_PERSONAL_DATA: &[&str] = &[
    "山田",
    "花子",
    "太郎",
    "佐藤",
    "一郎",
    "陽葵",
    "鈴木",
    "次郎",
    "千代田一丁目",
    "西新宿二丁目",
    "神田駿河台",
    "中之島一丁目",
];

/// Every log the main job wrote (its own and each process's) holds none of the residents'
/// names or addresses and none of the secret values it made (`secrets.list`).
pub(crate) fn scan_logs(dir: &Path) -> anyhow::Result<()> {
    let secrets = fs::read_to_string(dir.join("secrets.list")).context("the main job wrote no secrets.list")?;
    let secrets: Vec<&str> = secrets.lines().filter(|l| !l.is_empty()).collect();
    anyhow::ensure!(secrets.len() >= 4, "secrets.list holds only {} values", secrets.len());
    let codes = fs::read_to_string(dir.join("personal.list")).context("the main job wrote no personal.list")?;
    let codes: Vec<&str> = codes.lines().filter(|l| !l.is_empty()).collect();
    anyhow::ensure!(codes.len() >= 4, "personal.list holds only {} resident codes", codes.len());
    let mut logs = vec![dir.join("demo.log")];
    for e in fs::read_dir(dir.join("logs"))? {
        logs.push(e?.path());
    }
    let mut bytes = 0;
    for p in &logs {
        let text = String::from_utf8_lossy(&fs::read(p)?).into_owned();
        bytes += text.len();
        for needle in STORY_PERSONAL_DATA {
            anyhow::ensure!(!text.contains(needle), "{} contains personal data ({needle})", p.display());
        }
        // 住民票コード (11 digits) are personal data too: not in a log file's name.
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        anyhow::ensure!(
            !name.as_bytes().windows(11).any(|w| w.iter().all(u8::is_ascii_digit)),
            "log file {name} is named by a resident code"
        );
        for (i, s) in secrets.iter().enumerate() {
            anyhow::ensure!(!text.contains(s), "{} contains secret #{i} of secrets.list", p.display());
        }
        for (i, c) in codes.iter().enumerate() {
            anyhow::ensure!(!text.contains(c), "{} contains resident code #{i} of personal.list", p.display());
        }
    }
    println!(
        "{} logs ({bytes} bytes) scanned for {} names and addresses, {} resident codes and {} secret values: none found",
        logs.len(),
        STORY_PERSONAL_DATA.len(),
        codes.len(),
        secrets.len()
    );
    Ok(())
}
