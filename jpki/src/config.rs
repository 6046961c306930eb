//! The deployment file: every node of a deployment in one TOML file
//! (`docs/deployment.example.toml`), validated as a whole before any node starts: roles,
//! codes, listen addresses, the network CA every node trusts and each node's own credential
//! (and a municipality's notice key). Secrets are never in the file: the key files'
//! passphrase comes from `JPKI_CREDENTIAL_PASSPHRASE` in the node's environment.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use identity::ids::{LgCode, PrefectureCode};
use serde::Deserialize;

use crate::netargs::NetArgs;
use crate::serve::Role;

/// The whole deployment.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deployment {
    /// Pull interval of the replica tiers (ms).
    #[serde(default = "default_interval")]
    pub interval_ms: u64,
    /// The network CA certificate (PEM) every node trusts.
    pub network_ca: PathBuf,
    /// The network CA's CRL, reloaded by the servers when it changes.
    pub network_crl: Option<PathBuf>,
    /// The nodes.
    #[serde(rename = "node", default)]
    pub nodes: Vec<NodeConf>,
}

fn default_interval() -> u64 {
    500
}

/// The role of a node in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RoleName {
    /// 市町村.
    Municipality,
    /// 都道府県サーバ.
    Prefecture,
    /// 全国サーバ.
    National,
}

/// One node.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConf {
    /// Unique name, used to refer to the node.
    pub name: String,
    /// Role.
    pub role: RoleName,
    /// Municipality code (6 digits) or prefecture code (2 digits); none for the national node.
    pub code: Option<String>,
    /// Database URL or SQLite path.
    pub db: String,
    /// Listen address.
    pub listen: String,
    /// Prefecture: names of its municipality nodes.
    #[serde(default)]
    pub municipalities: Vec<String>,
    /// National: names of the prefecture nodes.
    #[serde(default)]
    pub prefectures: Vec<String>,
    /// National or prefecture: a law table replacing the built-in seed.
    pub law_table: Option<PathBuf>,
    /// National or prefecture: a hot standby of `db` for provision reads (`--pg-read-url`).
    pub pg_read_url: Option<String>,
    /// National or prefecture: the standby's largest replay lag in ms (`--max-read-lag-ms`).
    pub max_read_lag_ms: Option<u64>,
    /// The node's network credential: PREFIX of PREFIX.pem and PREFIX.key.
    pub credential: PathBuf,
    /// Municipality: its notice key (PREFIX of PREFIX.pem and PREFIX.key).
    pub notice_key: Option<PathBuf>,
    /// Municipality: names of the other municipality nodes its windows' move-ins reach (the
    /// peer directory, `--peer`).
    #[serde(default)]
    pub peers: Vec<String>,
    /// Municipality: コンビニ交付 (docs/kiosk.md); absent, the node serves no kiosk.
    pub kiosk: Option<KioskConf>,
    /// Municipality: its document-signing key from the organisation CA (a key file; its
    /// passphrase from `JPKI_KIOSK_DOCUMENT_KEY_PASSPHRASE` or `…_FILE` in the node's
    /// environment), for kiosks' and 広域交付 copies. Needs `document_chain` and
    /// `municipality_name`.
    pub document_key: Option<PathBuf>,
    /// Municipality: the document-signing certificate chain (PEM).
    pub document_chain: Option<PathBuf>,
    /// Municipality: its name as printed on the copies (e.g. 東京都千代田区).
    pub municipality_name: Option<String>,
    /// Municipality: its windows ask for 広域交付 copies through the file's national node
    /// (`--national`). National: it relays them (docs/widearea.md), to the municipality nodes
    /// of `municipal_directory`.
    #[serde(default)]
    pub wide_area: bool,
    /// National, with `wide_area`: every municipality's node, one `CODE=https://HOST:PORT` a line
    /// (`--municipal-directory`; a deployment file lists only some of the nodes).
    pub municipal_directory: Option<PathBuf>,
}

/// A municipality node's kiosk service (`jpki serve municipality --kiosk-*`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KioskConf {
    /// The CA service that names a card's holder (`https://HOST:PORT`).
    pub ca_url: String,
    /// The CA service's party.
    #[serde(default = "default_ca_party")]
    pub ca_party: String,
    /// This network's validator (`http://HOST:PORT`), asked for every kiosk card's status.
    pub validator: String,
    /// The production user-authentication roots (PEM).
    pub anchors: Vec<PathBuf>,
    /// Intermediate CA certificates of the authentication hierarchy (PEM).
    #[serde(default)]
    pub intermediates: Vec<PathBuf>,
    /// Lifetime of a kiosk session, in seconds (1–300).
    #[serde(default = "default_session_secs")]
    pub session_secs: i64,
}

fn default_ca_party() -> String {
    "ca:jpki-ca".into()
}

fn default_session_secs() -> i64 {
    identity::kiosk::DEFAULT_TTL_SECS
}

impl Deployment {
    /// Reads and validates a deployment file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("deployment file {}", path.display()))
    }

    /// Parses and validates a deployment.
    pub fn parse(text: &str) -> Result<Self> {
        let d: Self = toml::from_str(text)?;
        d.validate()?;
        Ok(d)
    }

    fn node(&self, name: &str) -> Result<&NodeConf> {
        self.nodes.iter().find(|n| n.name == name).with_context(|| format!("no node named {name:?}"))
    }

    fn national(&self) -> Option<&NodeConf> {
        self.nodes.iter().find(|n| n.role == RoleName::National)
    }

    /// A municipality node's kiosk and document-signing settings, as its flags would give them.
    fn kiosk(n: &NodeConf) -> crate::kiosk_cmd::KioskServeArgs {
        let mut k = crate::kiosk_cmd::KioskServeArgs {
            kiosk_ca_party: default_ca_party(),
            kiosk_session_secs: default_session_secs(),
            kiosk_document_key: n.document_key.clone(),
            kiosk_document_chain: n.document_chain.clone(),
            kiosk_municipality_name: n.municipality_name.clone(),
            ..Default::default()
        };
        if let Some(c) = &n.kiosk {
            k.kiosk_ca_url = Some(c.ca_url.clone());
            k.kiosk_ca_party = c.ca_party.clone();
            k.kiosk_validator = Some(c.validator.clone());
            k.kiosk_anchors = c.anchors.clone();
            k.kiosk_intermediates = c.intermediates.clone();
            k.kiosk_session_secs = c.session_secs;
        }
        k
    }

    fn url(&self, name: &str) -> Result<String> {
        Ok(format!("https://{}", self.node(name)?.listen))
    }

    /// The party node `n` is, from its entry.
    pub fn party(n: &NodeConf) -> Result<identity::party::Party> {
        use identity::party::{Party, PartyKind};
        let kind = match n.role {
            RoleName::Municipality => PartyKind::Municipality,
            RoleName::Prefecture => PartyKind::Prefecture,
            RoleName::National => PartyKind::National,
        };
        Ok(Party::new(kind, n.code.as_deref())?)
    }

    fn net(&self, n: &NodeConf) -> NetArgs {
        NetArgs {
            credential: Some(n.credential.clone()),
            network_ca: Some(self.network_ca.clone()),
            network_crl: self.network_crl.clone(),
        }
    }

    /// Checks node `n`'s credential against the network CA (chain, validity, CRL, TLS use)
    /// and that it names the node's party; returns that party.
    pub fn check_credential(&self, n: &NodeConf) -> Result<identity::party::Party> {
        let trust = self.net(n).trust()?;
        let got = net::credential::check_chain(&n.credential, &trust)
            .with_context(|| format!("node {:?}: credential {}", n.name, n.credential.display()))?;
        let want = Self::party(n)?;
        anyhow::ensure!(got == want, "node {:?}: its credential names {got}, but the node is {want}", n.name);
        if let Some(k) = &n.notice_key {
            let chain = net::credential::read_certs(&net::credential::with_ext(k, "pem"))?;
            let key_party = net::credential::party_of(&chain[0])?;
            anyhow::ensure!(key_party == want, "node {:?}: its notice key names {key_party}", n.name);
        }
        Ok(got)
    }

    fn validate(&self) -> Result<()> {
        if self.nodes.is_empty() {
            bail!("no [[node]] entries");
        }
        if self.interval_ms == 0 {
            bail!("interval_ms must be positive");
        }
        let mut names = BTreeSet::new();
        let mut listens = BTreeMap::new();
        for n in &self.nodes {
            let at = || format!("node {:?}", n.name);
            if n.name.is_empty() || !names.insert(n.name.as_str()) {
                bail!("{}: node names must be non-empty and unique", at());
            }
            let addr: SocketAddr =
                n.listen.parse().with_context(|| format!("{}: listen {:?} is not HOST:PORT", at(), n.listen))?;
            if let Some(other) = listens.insert(addr, n.name.as_str()) {
                bail!("{}: listen {addr} is already used by node {other:?}", at());
            }
            let code = n.code.as_deref();
            match n.role {
                RoleName::Municipality => {
                    code.with_context(|| format!("{}: a municipality needs its code", at()))?
                        .parse::<LgCode>()
                        .with_context(at)?;
                }
                RoleName::Prefecture => {
                    code.with_context(|| format!("{}: a prefecture needs its code", at()))?
                        .parse::<PrefectureCode>()
                        .with_context(at)?;
                }
                RoleName::National => {
                    if code.is_some() {
                        bail!("{}: the national node has no code", at());
                    }
                }
            }
            if n.role != RoleName::Prefecture && !n.municipalities.is_empty() {
                bail!("{}: only prefectures list municipalities", at());
            }
            if n.role != RoleName::Municipality && !n.peers.is_empty() {
                bail!("{}: only municipalities list peers", at());
            }
            if n.role != RoleName::National && !n.prefectures.is_empty() {
                bail!("{}: only the national node lists prefectures", at());
            }
            if n.role == RoleName::Municipality && n.law_table.is_some() {
                bail!("{}: a municipality provides nothing to agencies: no law table", at());
            }
            if n.role == RoleName::Municipality && (n.pg_read_url.is_some() || n.max_read_lag_ms.is_some()) {
                bail!("{}: a municipality provides nothing to agencies: no provision standby", at());
            }
            if (n.role == RoleName::Municipality) != n.notice_key.is_some() {
                bail!("{}: a municipality needs its notice_key, and only a municipality has one", at());
            }
            let documents = [n.document_key.is_some(), n.document_chain.is_some(), n.municipality_name.is_some()];
            if n.role != RoleName::Municipality && (n.kiosk.is_some() || documents.contains(&true)) {
                bail!("{}: only a municipality serves kiosks and signs documents", at());
            }
            if documents.contains(&true) && documents.contains(&false) {
                bail!("{}: document_key, document_chain and municipality_name go together", at());
            }
            if n.kiosk.as_ref().is_some_and(|k| !(1..=identity::kiosk::MAX_TTL_SECS).contains(&k.session_secs)) {
                bail!("{}: kiosk session_secs must be 1–{}", at(), identity::kiosk::MAX_TTL_SECS);
            }
            if n.role == RoleName::Prefecture && n.wide_area {
                bail!("{}: a prefecture takes no part in 広域交付", at());
            }
            if n.municipal_directory.is_some() != (n.role == RoleName::National && n.wide_area) {
                bail!(
                    "{}: the national node relays 広域交付 (wide_area) with its municipal_directory, and only it has one",
                    at()
                );
            }
        }
        if self.nodes.iter().filter(|n| n.role == RoleName::National).count() > 1 {
            bail!("more than one national node");
        }
        if let Some(n) = self.nodes.iter().find(|n| n.role == RoleName::Municipality && n.wide_area)
            && !self.national().is_some_and(|national| national.wide_area)
        {
            bail!("node {:?} asks for 広域交付 copies through the national node, which does not relay them", n.name);
        }
        for n in &self.nodes {
            for m in &n.municipalities {
                let target = self.node(m).with_context(|| format!("node {:?} lists municipality {m:?}", n.name))?;
                let pref = n.code.as_deref().unwrap_or_default();
                if target.role != RoleName::Municipality
                    || !target.code.as_deref().unwrap_or_default().starts_with(pref)
                {
                    bail!("node {:?} (prefecture {pref}) lists {m:?}, which is not one of its municipalities", n.name);
                }
            }
            for m in &n.peers {
                let target = self.node(m).with_context(|| format!("node {:?} lists peer {m:?}", n.name))?;
                if target.role != RoleName::Municipality || target.name == n.name {
                    bail!("node {:?} lists {m:?} as a peer, but it is not another municipality", n.name);
                }
            }
            for p in &n.prefectures {
                let target = self.node(p).with_context(|| format!("node {:?} lists prefecture {p:?}", n.name))?;
                if target.role != RoleName::Prefecture {
                    bail!("node {:?} lists {p:?} as a prefecture, but it is a {:?}", n.name, target.role);
                }
            }
        }
        Ok(())
    }

    /// A node's provision reads on a hot standby, as its command line would give them.
    fn reads(&self, n: &NodeConf) -> crate::serve::ReadArgs {
        crate::serve::ReadArgs {
            pg_read_url: n.pg_read_url.clone(),
            max_read_lag_ms: n.max_read_lag_ms.unwrap_or(5_000),
        }
    }

    /// The command-line role of node `name`, with peer URLs and credentials from the file.
    pub fn role(&self, name: &str) -> Result<Role> {
        let n = self.node(name)?;
        let code = n.code.clone().unwrap_or_default();
        let net = self.net(n);
        Ok(match n.role {
            RoleName::Municipality => Role::Municipality {
                db: n.db.clone(),
                code: code.parse()?,
                listen: n.listen.clone(),
                notice_key: n.notice_key.clone().context("a municipality needs its notice_key")?,
                peers: n
                    .peers
                    .iter()
                    .map(|m| Ok((self.node(m)?.code.clone().unwrap_or_default().parse()?, self.url(m)?)))
                    .collect::<Result<_>>()?,
                kiosk: Self::kiosk(n),
                wide_area_national: match (n.wide_area, self.national()) {
                    (true, Some(national)) => Some(self.url(&national.name)?),
                    _ => None,
                },
                net,
            },
            RoleName::Prefecture => Role::Prefecture {
                db: n.db.clone(),
                code: code.parse()?,
                listen: n.listen.clone(),
                municipalities: n
                    .municipalities
                    .iter()
                    .map(|m| Ok((self.node(m)?.code.clone().unwrap_or_default().parse()?, self.url(m)?)))
                    .collect::<Result<_>>()?,
                interval_ms: self.interval_ms,
                law_table: n.law_table.clone(),
                reads: self.reads(n),
                net,
            },
            RoleName::National => Role::National {
                db: n.db.clone(),
                listen: n.listen.clone(),
                prefectures: n
                    .prefectures
                    .iter()
                    .map(|p| Ok((self.node(p)?.code.clone().unwrap_or_default().parse()?, self.url(p)?)))
                    .collect::<Result<_>>()?,
                law_table: n.law_table.clone(),
                interval_ms: self.interval_ms,
                reads: self.reads(n),
                wide_area: crate::serve::WideAreaArgs {
                    municipal_directory: n.municipal_directory.clone().filter(|_| n.wide_area),
                    wide_area_rate: identity::widearea::DEFAULT_RATE.per_second,
                    wide_area_burst: identity::widearea::DEFAULT_RATE.burst,
                },
                net,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../docs/deployment.example.toml");

    fn err(text: &str) -> String {
        match Deployment::parse(text) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(e) => format!("{e:#}"),
        }
    }

    #[test]
    fn kiosks_documents_and_wide_area_come_from_the_file() {
        let d = Deployment::parse(EXAMPLE).unwrap_or_else(|e| panic!("{e:#}"));
        match d.role("chiyoda").unwrap_or_else(|e| panic!("{e:#}")) {
            Role::Municipality { kiosk, wide_area_national, .. } => {
                assert_eq!(wide_area_national.as_deref(), Some("https://127.0.0.1:8301"));
                assert_eq!(kiosk.kiosk_ca_url.as_deref(), Some("https://127.0.0.1:8401"));
                assert_eq!(kiosk.kiosk_ca_party, "ca:jpki-ca");
                assert_eq!(kiosk.kiosk_validator.as_deref(), Some("http://127.0.0.1:8180"));
                assert_eq!(kiosk.kiosk_anchors, vec![PathBuf::from("/etc/jpki/kiosk/auth-root.pem")]);
                assert_eq!(kiosk.kiosk_session_secs, 120);
                assert_eq!(kiosk.kiosk_document_key.as_deref(), Some(Path::new("/etc/jpki/doc/chiyoda.key")));
                assert_eq!(kiosk.kiosk_municipality_name.as_deref(), Some("東京都千代田区"));
            }
            other => panic!("{other:?}"),
        }
        // A node without them serves no kiosk, signs nothing and relays nothing.
        match d.role("shinjuku").unwrap_or_else(|e| panic!("{e:#}")) {
            Role::Municipality { kiosk, wide_area_national, .. } => {
                assert!(wide_area_national.is_none() && kiosk.kiosk_ca_url.is_none());
                assert!(kiosk.kiosk_document_key.is_none());
            }
            other => panic!("{other:?}"),
        }
        match d.role("national").unwrap_or_else(|e| panic!("{e:#}")) {
            Role::National { wide_area, .. } => {
                assert_eq!(wide_area.municipal_directory.as_deref(), Some(Path::new("/etc/jpki/municipalities.txt")));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn kiosk_document_and_wide_area_settings_are_checked() {
        let at = |node: &str, add: &str| {
            EXAMPLE.replacen(&format!("name = \"{node}\"\n"), &format!("name = \"{node}\"\n{add}\n"), 1)
        };
        let e = err(&at("tokyo-prefecture", "document_key = \"/k\""));
        assert!(e.contains("only a municipality serves kiosks and signs documents"), "{e}");
        let e = err(&at("shinjuku", "document_key = \"/k\""));
        assert!(e.contains("go together"), "{e}");
        let e = err(&at("tokyo-prefecture", "wide_area = true"));
        assert!(e.contains("no part in 広域交付"), "{e}");
        let e = err(&at("shinjuku", "municipal_directory = \"/d\""));
        assert!(e.contains("only it has one"), "{e}");
        let e = err(&EXAMPLE.replace("wide_area = true\nmunicipal_directory = \"/etc/jpki/municipalities.txt\"\n", ""));
        assert!(e.contains("which does not relay them"), "{e}");
        let e = err(&EXAMPLE.replace("session_secs = 120", "session_secs = 301"));
        assert!(e.contains("session_secs must be 1–300"), "{e}");
    }

    #[test]
    fn the_example_deployment_resolves_every_node() {
        let d = Deployment::parse(EXAMPLE).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(d.nodes.len(), 6);
        match d.role("national").unwrap_or_else(|e| panic!("{e:#}")) {
            Role::National { prefectures, net, .. } => {
                let got: Vec<(String, String)> =
                    prefectures.into_iter().map(|(c, u)| (c.as_str().to_owned(), u)).collect();
                assert_eq!(
                    got,
                    vec![
                        ("13".into(), "https://127.0.0.1:8201".into()),
                        ("27".into(), "https://127.0.0.1:8202".into())
                    ]
                );
                assert_eq!(net.credential.as_deref(), Some(Path::new("/etc/jpki/net/national")));
                assert_eq!(net.network_ca.as_deref(), Some(Path::new("/etc/jpki/net/ca.pem")));
            }
            other => panic!("{other:?}"),
        }
        match d.role("tokyo-prefecture").unwrap_or_else(|e| panic!("{e:#}")) {
            Role::Prefecture { municipalities, .. } => {
                let got: Vec<(String, String)> =
                    municipalities.into_iter().map(|(c, u)| (c.as_str().to_owned(), u)).collect();
                assert_eq!(
                    got,
                    vec![
                        ("131016".into(), "https://127.0.0.1:8101".into()),
                        ("131041".into(), "https://127.0.0.1:8102".into())
                    ]
                );
            }
            other => panic!("{other:?}"),
        }
        match d.role("chiyoda").unwrap_or_else(|e| panic!("{e:#}")) {
            Role::Municipality { notice_key, peers, .. } => {
                assert_eq!(notice_key, Path::new("/etc/jpki/net/chiyoda-notice"));
                let got: Vec<(String, String)> = peers.into_iter().map(|(c, u)| (c.as_str().to_owned(), u)).collect();
                assert_eq!(
                    got,
                    vec![
                        ("131041".into(), "https://127.0.0.1:8102".into()),
                        ("271004".into(), "https://127.0.0.1:8103".into())
                    ]
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(d.role("nowhere").is_err());
    }

    /// A national node's provision standby and lag bound reach its command-line role; without
    /// them it reads its primary only (the bound defaults to 5 s).
    #[test]
    fn a_provision_standby_reaches_the_national_role() {
        let with = EXAMPLE.replace(
            "# pg_read_url = \"postgres://jpki_read@127.0.0.1:5433/national\"\n# max_read_lag_ms = 5000",
            "pg_read_url = \"postgres://jpki_read@127.0.0.1:5433/national\"\nmax_read_lag_ms = 750",
        );
        assert_ne!(with, EXAMPLE, "the example shows the keys");
        let d = Deployment::parse(&with).unwrap_or_else(|e| panic!("{e:#}"));
        match d.role("national").unwrap_or_else(|e| panic!("{e:#}")) {
            Role::National { reads, .. } => {
                assert_eq!(reads.pg_read_url.as_deref(), Some("postgres://jpki_read@127.0.0.1:5433/national"));
                assert_eq!(reads.max_read_lag_ms, 750);
            }
            other => panic!("{other:?}"),
        }
        match Deployment::parse(EXAMPLE).unwrap().role("national").unwrap() {
            Role::National { reads, .. } => assert_eq!((reads.pg_read_url, reads.max_read_lag_ms), (None, 5_000)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn corrupt_deployments_are_refused_with_the_reason() {
        let node = |extra: &str| {
            format!(
                "[[node]]\nname = \"a\"\nrole = \"municipality\"\ncode = \"131016\"\ndb = \"a.db\"\nlisten = \"127.0.0.1:1\"\ncredential = \"a\"\nnotice_key = \"a-notice\"\n{extra}"
            )
        };
        let err = |text: &str| err(&format!("network_ca = \"ca.pem\"\n{text}"));
        assert!(err("[[node]\nname=").contains("TOML parse error"));
        assert!(err("").contains("no [[node]]"));
        assert!(err(&node("colour = \"blue\"")).contains("unknown field"));
        assert!(err(&node("").replace("131016", "131017")).contains("check digit"));
        assert!(err(&node("").replace("127.0.0.1:1", "localhost")).contains("not HOST:PORT"));
        assert!(err(&format!("{}\n{}", node(""), node("").replace(":1", ":2"))).contains("unique"));
        assert!(err(&format!("{}\n{}", node(""), node("").replace("\"a\"", "\"b\""))).contains("already used"));
        let pref = "[[node]]\nname = \"p\"\nrole = \"prefecture\"\ncode = \"27\"\ndb = \"p.db\"\nlisten = \"127.0.0.1:3\"\ncredential = \"p\"\nmunicipalities = [\"a\"]\n";
        assert!(err(&format!("{}\n{pref}", node(""))).contains("not one of its municipalities"));
        let nat = "[[node]]\nname = \"n\"\nrole = \"national\"\ndb = \"n.db\"\nlisten = \"127.0.0.1:4\"\ncredential = \"n\"\nprefectures = [\"a\"]\n";
        assert!(err(&format!("{}\n{nat}", node(""))).contains("is a Municipality"));
        assert!(err(&format!("{}\n{}", node(""), nat.replace("[\"a\"]", "[\"zz\"]"))).contains("no node named \"zz\""));
        assert!(err(&node("prefectures = [\"x\"]")).contains("only the national node"));
        assert!(err(&node("peers = [\"a\"]")).contains("not another municipality"));
        assert!(err(&node("peers = [\"zz\"]")).contains("no node named \"zz\""));
        assert!(
            err(&format!("{}\n{}", node(""), nat.replace("prefectures = [\"a\"]", "peers = [\"a\"]")))
                .contains("only municipalities list peers")
        );
        assert!(err(&node("").replace("notice_key = \"a-notice\"\n", "")).contains("needs its notice_key"));
        assert!(err(&node("pg_read_url = \"postgres://r@h/a\"")).contains("no provision standby"));
        assert!(err(&node("max_read_lag_ms = 100")).contains("no provision standby"));
        let no_ca = Deployment::parse(&node("")).err().map(|e| format!("{e:#}")).unwrap_or_default();
        assert!(no_ca.contains("network_ca"), "{no_ca}");
    }
}
