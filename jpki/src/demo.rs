//! `jpki demo`: the README's main job. Creates the national operator's network CA in the demo
//! directory and issues every party its credential (and every municipality its notice key),
//! starts a national node, two prefecture nodes and three municipal nodes on SQLite files,
//! serves each over mutual TLS on loopback, calls every route as the party the authorization
//! table names, and plays the identity part of the story, printing every step.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail, ensure};
use ca::network::NetworkCa;
use clap::Args as ClapArgs;
use identity::client::{MoveInNotice, Peer, PoolRequest};
use identity::http::{self, NationalState};
use identity::ids::{LgCode, PrefectureCode, ResidentCode};
use identity::law::{AgencyClass, Field};
use identity::municipal::Municipality;
use identity::national::{self, National};
use identity::notice::{ChangeNotice, NoticeKind, parse_date};
use identity::notice_sig::NoticeVerifier;
use identity::operator::{Operator, Role};
use identity::party::Party;
use identity::person::{FlaggedText, FourItems, Sex};
use identity::provision::{BatchQuery, DisclosureRow, Lookup, Provided, Provider, Query};
use identity::replica::{self, Tier};
use identity::store::Db;
use net::credential::{Credential, Trust};
use net::secret::Secret;

use crate::identity_cmd::{describe, describe_feed, print_checks, print_disclosure};

/// Options of the demo.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Keep the node databases in this directory instead of a temporary one.
    #[arg(long)]
    keep: Option<PathBuf>,
}

/// A prefecture node of the demo and the municipalities it pulls.
struct Prefecture {
    db: Db,
    code: String,
    sources: Vec<replica::Upstream>,
    provider: Provider,
    url: String,
}

/// Lifetime of the demo's credentials and notice keys, in days.
const CREDENTIAL_DAYS: i64 = 30;

/// Step 0: the national operator's network CA in `DIR/net`, the credentials it issued to the
/// demo's parties (keyed by party) and the trust every party shares.
struct Network {
    ca: NetworkCa,
    /// Passphrase of every key file the demo writes (a real deployment gives each party its own).
    pass: Secret,
    trust: Trust,
    creds: BTreeMap<Party, Credential>,
}

fn secret() -> Secret {
    let s = hex::encode(rand::random::<[u8; 24]>());
    remember(&s);
    Secret::new(s.into_bytes())
}

/// Every secret value the demo makes (passphrases, the card issuer master key) and the
/// resident's signature password: with `--keep DIR` they are written to `DIR/secrets.list`
/// (0600), so that `cargo xtask ci` can prove no log of the main job contains any of them.
static SECRETS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// The story's resident codes (personal data): with `--keep DIR`, `DIR/personal.list`, for the
/// same log scan.
static PERSONAL: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

fn remember_personal(s: &str) {
    if let Ok(mut v) = PERSONAL.lock() {
        v.push(s.to_owned());
    }
}

/// Records a secret value for the log scan.
pub(crate) fn remember(s: &str) {
    if let Ok(mut v) = SECRETS.lock() {
        v.push(s.to_owned());
    }
}

/// Writes the secrets list of a kept run.
fn write_secrets(dir: &Path) -> Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    for (file, list) in [("secrets.list", &SECRETS), ("personal.list", &PERSONAL)] {
        let list = list.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.join("\n");
        let mut f =
            std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(dir.join(file))?;
        f.write_all(list.as_bytes())?;
    }
    Ok(())
}

impl Network {
    /// Creates the network CA (P-384 root, first CRL) in `dir`.
    fn init(dir: &Path, now: i64) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        let ca = NetworkCa::init(dir, &secret(), now).context("creating the network CA")?;
        let trust = Trust { ca_file: dir.join("ca.pem"), crl_file: Some(dir.join("crl.pem")) };
        println!(
            "   network CA {} (P-384, self-signed; kept apart from the residents' hierarchies): {}, CRL {}",
            ca::network::CA_NAME,
            trust.ca_file.display(),
            dir.join("crl.pem").display()
        );
        Ok(Self { ca, pass: secret(), trust, creds: BTreeMap::new() })
    }

    fn prefix(&self, party: &Party, suffix: &str) -> PathBuf {
        self.ca.dir().join(format!("{}{suffix}", ca::network::short_form(party).replace(':', "-")))
    }

    /// Issues `party` a mutual-TLS credential for 127.0.0.1 and loads it back from its files.
    fn issue(&mut self, party: Party, now: i64) -> Result<String> {
        let prefix = self.prefix(&party, "");
        let issued = self.ca.issue_tls(&party, &["127.0.0.1".into()], CREDENTIAL_DAYS, now, &prefix, &self.pass)?;
        let cred =
            Credential::load(&prefix, &self.pass).with_context(|| format!("loading the credential of {party}"))?;
        ensure!(cred.party == party, "the credential names {}, not {party}", cred.party);
        self.creds.insert(party, cred);
        Ok(format!("TLS serial {}…", &issued.serial[..8]))
    }

    /// Issues `municipality` its change-notice key and loads it as the signer.
    fn notice_key(&self, municipality: &LgCode, now: i64) -> Result<(Arc<net::notice_key::Signer>, String)> {
        let party = Party::Municipality(municipality.clone());
        let prefix = self.prefix(&party, "-notice");
        let issued = self.ca.issue_notice_key(municipality, CREDENTIAL_DAYS, now, &prefix, &self.pass)?;
        let signer = net::notice_key::Signer::load(&prefix, &self.pass, municipality)?;
        Ok((signer, format!("notice key serial {}… (key id {}…)", &issued.serial[..8], &issued.ski[..8])))
    }

    fn cred(&self, party: &Party) -> Result<&Credential> {
        self.creds.get(party).with_context(|| format!("no credential was issued to {party}"))
    }

    /// A client of the node at `url` presenting `party`'s credential, accepting only `server`.
    fn peer(&self, party: &Party, url: &str, server: Party) -> Result<Peer> {
        Ok(Peer::new(url, net::client::client(self.cred(party)?, &self.trust, Some(server))?))
    }

    /// The environment of a separate process presenting `party`'s credential.
    fn env(&self, party: &Party) -> Result<Vec<(String, String)>> {
        self.cred(party)?;
        let path = |p: &Path| p.display().to_string();
        let pass = self.pass.expose_str().context("the demo passphrase is UTF-8")?.to_owned();
        Ok(vec![
            ("JPKI_CREDENTIAL".into(), path(&self.prefix(party, ""))),
            ("JPKI_NETWORK_CA".into(), path(&self.trust.ca_file)),
            ("JPKI_NETWORK_CRL".into(), path(self.trust.crl_file.as_deref().unwrap_or(Path::new("")))),
            ("JPKI_CREDENTIAL_PASSPHRASE".into(), pass),
        ])
    }

    /// A window's process environment: its credential and its clerk's key (issued here).
    fn window_role(&self, window: &Party, clerk: &Party, now: i64) -> Result<crate::demo_ca::Role> {
        let prefix = self.prefix(clerk, "");
        let issued = self.ca.issue_clerk_key(clerk, CREDENTIAL_DAYS, now, &prefix, &self.pass)?;
        println!(
            "   {:<28} clerk request-signing key serial {}… (EKU 1.2.392.200149.8.5.99.2; no TLS credential)",
            ca::network::short_form(clerk),
            &issued.serial[..8]
        );
        let mut env = self.env(window)?;
        let pass = self.pass.expose_str().context("the demo passphrase is UTF-8")?.to_owned();
        env.push(("JPKI_CLERK".into(), prefix.display().to_string()));
        env.push(("JPKI_CLERK_PASSPHRASE".into(), pass));
        Ok(crate::demo_ca::Role { party: window.clone(), env })
    }

    /// A replica's notice verifier (the network CA's notice keys, its CRL).
    fn verifier(&self) -> Arc<dyn NoticeVerifier> {
        net::notice_key::Verifier::new(self.trust.clone())
    }

    /// Serves `router` over mutual TLS as `party` on a loopback port; returns its URL.
    async fn serve(&self, party: &Party, router: axum::Router) -> Result<String> {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.context("binding a loopback port")?;
        let url = format!("https://{}", l.local_addr()?);
        let (config, _verifier) = net::tls::server_config(self.cred(party)?, &self.trust)?;
        let server = net::server::Server::new(router, net::server::Transport::Tls(config));
        let who = party.to_string();
        tokio::spawn(async move {
            if let Err(e) = server.serve(l, std::future::pending()).await {
                tracing::error!(party = %who, error = %e, "demo node stopped");
            }
        });
        Ok(url)
    }
}

fn step(title: &str) {
    println!("\n== {title}");
}

fn code(s: &str) -> Result<LgCode> {
    Ok(s.parse()?)
}

fn items(name: &str, address: &str, dob: &str, sex: Sex) -> Result<FourItems> {
    Ok(FourItems {
        name: FlaggedText::plain("name", name)?,
        address: FlaggedText::plain("address", address)?,
        date_of_birth: parse_date("dob", dob)?,
        sex,
    })
}

async fn sync(
    national: &Db,
    verifier: &dyn NoticeVerifier,
    prefs: &[Prefecture],
    national_peers: &[(Peer, Option<String>)],
) -> Result<()> {
    for Prefecture { db, code, sources, .. } in prefs {
        for (peer, prefix) in sources {
            for r in replica::pull(db, Tier::Prefecture, verifier, peer, prefix.as_deref()).await? {
                if r.applied > 0 {
                    println!("   prefecture {code} ← {}: {} notices (cursor {})", r.source, r.applied, r.cursor_seq);
                }
                if let Some(e) = &r.error {
                    bail!("prefecture {code} ← {}: {e}", r.source);
                }
            }
        }
    }
    for (peer, prefix) in national_peers {
        for r in replica::pull(national, Tier::National, verifier, peer, prefix.as_deref()).await? {
            if r.applied > 0 || r.stop.is_some() || r.error.is_some() {
                let extra = match (&r.stop, &r.error) {
                    (Some(replica::Stop::Parked { waiting_for }), _) => format!(", parked: waiting for {waiting_for}"),
                    (Some(s), _) => format!(", stopped: {s:?}"),
                    (_, Some(e)) => format!(", ERROR: {e}"),
                    _ => String::new(),
                };
                println!(
                    "   national ← prefecture {}: source {} {} notices (cursor {}){extra}",
                    prefix.as_deref().unwrap_or("?"),
                    r.source,
                    r.applied,
                    r.cursor_seq
                );
            }
        }
    }
    Ok(())
}

fn show(p: &Provided) -> String {
    if !p.found {
        return "not found".into();
    }
    let items: Vec<String> = p.items.iter().map(|(k, v)| format!("{k}={v}")).collect();
    // The status comes only with change information granted (docs/identity.md).
    let status = p.status.map(|s| format!("status {s:?}; ")).unwrap_or_default();
    format!("{status}{}", items.join(" "))
}

/// The three municipalities of the demo.
const MUNICIPALITIES: [(&str, &str); 3] = [("131016", "千代田区"), ("131041", "新宿区"), ("271004", "大阪市")];
/// The two prefectures of the demo.
const PREFECTURES: [&str; 2] = ["13", "27"];

pub async fn run(args: Args) -> Result<()> {
    let tmp;
    let kept = args.keep.is_some();
    let dir = match args.keep {
        Some(d) => {
            std::fs::create_dir_all(&d)?;
            d
        }
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_owned()
        }
    };
    let db = |name: &str| dir.join(format!("{name}.db")).display().to_string();
    let now = http::now();
    let today = time::OffsetDateTime::now_utc().date();

    step(
        "0. The national operator's network CA issues each party its credential (mutual TLS 1.3) and each municipality its notice key",
    );
    let mut net = Network::init(&dir.join("net"), now)?;
    let nat_party = Party::National;
    let ca_party = Party::Ca("jpki-ca".into());
    let operator = Party::Operator("national-operator-1".into());
    let ca_operator = Party::Operator("ca-operator-1".into());
    let validator_party = Party::Validator("v1".into());
    let (chiyoda_window, shinjuku_window) = (Party::Window("131016:W01".into()), Party::Window("131041:W01".into()));
    let (jps_party, jlis_party, gov_party) =
        (Party::Agency("jps".into()), Party::Agency("jlis-ca".into()), Party::Agency("osaka-gov".into()));
    let mut signers = Vec::new();
    for (c, name) in MUNICIPALITIES {
        let party = Party::Municipality(code(c)?);
        let tls = net.issue(party.clone(), now)?;
        let (signer, key) = net.notice_key(&code(c)?, now)?;
        println!("   {:<28} {tls}; {key} ({name})", ca::network::short_form(&party));
        signers.push(signer);
    }
    let mut others: Vec<Party> =
        PREFECTURES.iter().map(|p| Ok(Party::Prefecture(p.parse::<PrefectureCode>()?))).collect::<Result<_>>()?;
    others.extend([nat_party.clone(), ca_party.clone(), jps_party.clone(), jlis_party.clone(), gov_party.clone()]);
    others.extend([operator.clone(), ca_operator.clone(), validator_party.clone()]);
    others.extend([chiyoda_window.clone(), shinjuku_window.clone()]);
    for party in others {
        let tls = net.issue(party.clone(), now)?;
        println!("   {:<28} {tls}", ca::network::short_form(&party));
    }
    println!(
        "   files PARTY.pem (certificate + CA) and PARTY.key (encrypted, scrypt) in {}; every server and client trusts only ca.pem and checks crl.pem",
        net.ca.dir().display()
    );
    let verifier = net.verifier();
    let ca_parties = crate::demo_ca::Parties {
        ca: crate::demo_ca::Role { party: ca_party.clone(), env: net.env(&ca_party)? },
        validator: crate::demo_ca::Role { party: validator_party.clone(), env: net.env(&validator_party)? },
        window: net.window_role(&chiyoda_window, &Party::Clerk("131016:C0001".into()), now)?,
        other_window: net.window_role(&shinjuku_window, &Party::Clerk("131041:C0001".into()), now)?,
        operator: net::client::client(net.cred(&ca_operator)?, &net.trust, Some(ca_party.clone()))?,
    };

    step(
        "1. Bring up the network: national node, prefectures 13 (東京都) and 27 (大阪府), municipalities 千代田区, 新宿区, 大阪市",
    );
    let law = Arc::new(crate::serve::law_table(None)?);
    let national_db = Db::open(&db("national")).await?;
    let national = National::open(national_db.clone(), law.clone()).await?;
    let nat_op = Operator::new("national-operator-1", Role::NationalOperator)?;
    let nat_url = net.serve(&nat_party, http::national_router(NationalState { national: national.clone() })).await?;
    println!("   national node      {nat_url}  as {nat_party}  ({})", db("national"));

    let mut munis = Vec::new();
    for ((c, name), signer) in MUNICIPALITIES.into_iter().zip(signers) {
        let m = Municipality::open(Db::open(&db(c)).await?, code(c)?).await?.with_signer(signer).await?;
        let party = Party::Municipality(m.code().clone());
        let url = net.serve(&party, http::municipal_router(m.clone())).await?;
        println!("   municipality {c} {name}  {url}  as {party}");
        munis.push((m, url));
    }
    let mut prefs = Vec::new();
    let mut national_peers = Vec::new();
    for p in PREFECTURES {
        let pcode: PrefectureCode = p.parse()?;
        let party = Party::Prefecture(pcode.clone());
        let pdb = Db::open(&db(&format!("prefecture-{p}"))).await?;
        identity::store::claim_identity(&pdb, "prefecture", p).await?;
        let provider = Provider::open(pdb.clone(), law.clone()).await?;
        let url = net
            .serve(
                &party,
                http::prefecture_router(http::PrefectureState {
                    db: pdb.clone(),
                    code: pcode,
                    provider: provider.clone(),
                }),
            )
            .await?;
        println!("   prefecture {p}        {url}  as {party}");
        // The prefecture pulls its municipalities as itself; the national node pulls it as `national`.
        let mut sources = Vec::new();
        for (m, u) in munis.iter().filter(|(m, _)| m.code().as_str().starts_with(p)) {
            sources.push((net.peer(&party, u, Party::Municipality(m.code().clone()))?, Some(p.to_owned())));
        }
        national_peers.push((net.peer(&nat_party, &url, party.clone())?, Some(p.to_owned())));
        prefs.push(Prefecture { db: pdb, code: p.to_owned(), sources, provider, url });
    }
    let (chiyoda, shinjuku, osaka) = (&munis[0], &munis[1], &munis[2]);
    let as_muni = |m: &Municipality| Party::Municipality(m.code().clone());

    step("2. Resident-code pools: each municipality draws non-overlapping codes from the national node, as itself");
    for (m, _) in &munis {
        let own = net.peer(&as_muni(m), &nat_url, nat_party.clone())?;
        let codes = own.allocate_pool(&PoolRequest { municipality: m.code().clone(), count: 50 }).await?;
        m.add_pool(&codes).await?;
        println!("   {} received {} codes (first {})", m.code(), codes.len(), codes[0]);
    }
    let other = net.peer(&as_muni(&chiyoda.0), &nat_url, nat_party.clone())?;
    match other.allocate_pool(&PoolRequest { municipality: osaka.0.code().clone(), count: 50 }).await {
        Ok(_) => bail!("a municipality drew a pool for another"),
        Err(e) => println!("   {} asking for a pool for {} → {e}", chiyoda.0.code(), osaka.0.code()),
    }

    step("3. Register residents (one transaction each: record version + chained, signed change notice + operator log)");
    let clerk = Operator::new("chiyoda-clerk-07", Role::MunicipalClerk)?;
    let yamada = chiyoda
        .0
        .register(
            &clerk,
            NoticeKind::FirstRegistration,
            items("山田　花子", "東京都千代田区千代田一丁目1番1号", "1980-02-29", Sex::Female)?,
            today,
            now,
        )
        .await?;
    println!("   {}", describe(&yamada));
    let shinjuku_clerk = Operator::new("shinjuku-clerk-02", Role::MunicipalClerk)?;
    let sato = shinjuku
        .0
        .register(
            &shinjuku_clerk,
            NoticeKind::FirstRegistration,
            items("佐藤　一郎", "東京都新宿区西新宿二丁目8番1号", "1931-05-05", Sex::Male)?,
            today,
            now,
        )
        .await?;
    println!("   {}", describe(&sato));
    let baby = shinjuku
        .0
        .register(
            &shinjuku_clerk,
            NoticeKind::Birth,
            items("佐藤　陽葵", "東京都新宿区西新宿二丁目8番1号", &identity::notice::format_date(today), Sex::Female)?,
            today,
            now,
        )
        .await?;
    println!("   {}", describe(&baby));
    let suzuki = chiyoda
        .0
        .register(
            &clerk,
            NoticeKind::FirstRegistration,
            items("鈴木　次郎", "東京都千代田区神田駿河台一丁目6番地", "1985-07-07", Sex::Male)?,
            today,
            now,
        )
        .await?;
    println!("   {}", describe(&suzuki));
    if let Some(s) = &yamada.signature {
        println!(
            "   each notice is signed by its municipality's notice key: {} key id {}…",
            yamada.key.source,
            &s.key_id[..16]
        );
    }
    let hanako = yamada.body.record.resident_code.clone();
    for n in [&yamada, &sato, &baby, &suzuki] {
        remember_personal(n.body.record.resident_code.as_str());
    }
    let ichiro = sato.body.record.resident_code.clone();

    step(
        "4. Replicate: prefectures pull their municipalities (as prefecture:NN), the national node pulls the prefectures (as national); every signature is verified",
    );
    sync(&national_db, verifier.as_ref(), &prefs, &national_peers).await?;
    let rec = national.record(&hanako).await?;
    println!(
        "   national projection of {hanako}: {} / {} / status {:?} / owner {}",
        rec.items.name.text(),
        rec.items.address.text(),
        rec.status,
        rec.municipality
    );

    step("4a. The CA: roots of both hierarchies; 山田花子's certificates from the 東京都 (13) prefecture-unit CAs");
    let ca_peer = net.peer(&ca_party, &nat_url, nat_party.clone())?;
    let mut ca = crate::demo_ca::DemoCa::start(&dir, &national, &nat_url, ca_parties, &nat_op, now).await?;
    ca.issue(&hanako, &baby.body.record.resident_code, now).await?;

    step(
        "4b. Key rollover: the CA operator re-keys the sign-root (same name, P-384) and 東京都's issuing CAs to P-384 through the CA service",
    );
    ca.rollover(&suzuki.body.record.resident_code).await?;

    step("5. Move across prefectures: 転出 at 千代田区, 転入 at 大阪市 with the 転出証明書情報, 転入通知 back");
    let out = chiyoda.0.move_out(&clerk, &hanako, code("271004")?, today, now).await?;
    println!("   {}", describe(&out));
    // 大阪市 (the destination) fetches the 転出証明書情報 and sends the 転入通知, as itself.
    let osaka_to_chiyoda = net.peer(&as_muni(&osaka.0), &chiyoda.1, as_muni(&chiyoda.0))?;
    let cert = osaka_to_chiyoda.move_out_certificate(&hanako).await?;
    let shinjuku_to_chiyoda = net.peer(&as_muni(&shinjuku.0), &chiyoda.1, as_muni(&chiyoda.0))?;
    match shinjuku_to_chiyoda.move_out_certificate(&hanako).await {
        Ok(_) => bail!("the 転出証明書情報 went to a municipality that is not the destination"),
        Err(e) => println!("   新宿区 (not the destination) asks for it → {e}"),
    }
    let osaka_clerk = Operator::new("osaka-clerk-11", Role::MunicipalClerk)?;
    let moved_in = osaka
        .0
        .move_in(&osaka_clerk, &cert, FlaggedText::plain("address", "大阪府大阪市北区中之島一丁目3番20号")?, today, now)
        .await?;
    println!("   {}", describe(&moved_in));
    let notice = MoveInNotice {
        resident_code: hanako.clone(),
        new_municipality: osaka.0.code().clone(),
        notice_seq: moved_in.key.seq,
    };
    let first = osaka_to_chiyoda.send_move_in_notice(&notice).await?;
    let retry = osaka_to_chiyoda.send_move_in_notice(&notice).await?;
    println!("   転入通知 to 千代田区: first delivery recorded={first}, retry recorded={retry} (idempotent)");
    let old = chiyoda.0.get(&hanako).await?;
    let new = osaka.0.get(&hanako).await?;
    println!(
        "   registers: 千代田区 status {:?}, 大阪市 status {:?} → exactly one active record",
        old.status, new.status
    );
    ensure!(old.status != new.status, "two active records");

    step("6. Causal order: the national node pulls 大阪府 first, so the 転入 must wait for the 転出");
    for (peer, prefix) in &prefs[1].sources {
        replica::pull(&prefs[1].db, Tier::Prefecture, verifier.as_ref(), peer, prefix.as_deref()).await?;
    }
    for r in replica::pull(&national_db, Tier::National, verifier.as_ref(), &national_peers[1].0, Some("27")).await? {
        println!(
            "   national ← 27: source {} applied {} (cursor {}) {}",
            r.source,
            r.applied,
            r.cursor_seq,
            match &r.stop {
                Some(replica::Stop::Parked { waiting_for }) => format!("PARKED until {waiting_for} is applied"),
                _ => String::new(),
            }
        );
    }
    sync(&national_db, verifier.as_ref(), &prefs, &national_peers).await?;
    let rec = national.record(&hanako).await?;
    println!(
        "   national projection now: {} / status {:?} / owner {}",
        rec.items.address.text(),
        rec.status,
        rec.municipality
    );

    step("7. Death: 佐藤一郎 dies; 新宿区 records it and the notice replicates");
    let death = shinjuku.0.remove(&shinjuku_clerk, &ichiro, NoticeKind::Death, today, now).await?;
    println!("   {}", describe(&death));
    sync(&national_db, verifier.as_ref(), &prefs, &national_peers).await?;

    step("8. Change-information feed (served only to CAs: read here as ca:jpki-ca)");
    for e in ca_peer.feed(0, 100).await? {
        println!("   {}", describe_feed(&e));
    }

    step("8a. The CA follows the feed: the move revokes the signature certificate, not the authentication one");
    ca.after_move().await?;

    step("9. Provision to agencies, bound by the law table; each agency is the name in its certificate");
    let pension = law.purposes().find(|p| p.bulk).context("the law table has no bulk purpose")?;
    let jpki = law
        .purposes()
        .find(|p| p.description.contains("公的個人認証法") && p.agency_class == AgencyClass::NationalBody)
        .context("the law table has no 公的個人認証 purpose")?;
    // A purpose of the same class whose law-table row grants no change information.
    let narrow = law
        .purposes()
        .find(|p| p.agency_class == AgencyClass::NationalBody && !p.fields.contains(&Field::ChangeInfo))
        .context("the law table has no purpose without change information")?;
    national
        .provider()
        .register_agency(&nat_op, "jps", "日本年金機構", pension.agency_class, &[&pension.code], now)
        .await?;
    national
        .provider()
        .register_agency(&nat_op, "jlis-ca", "J-LIS 認証局", jpki.agency_class, &[&jpki.code, &narrow.code], now)
        .await?;
    println!(
        "   agencies: {jps_party} = 日本年金機構 for {} (bulk), {jlis_party} = J-LIS 認証局 for {} and {}",
        pension.code, jpki.code, narrow.code
    );
    let jps = net.peer(&jps_party, &nat_url, nat_party.clone())?;
    let jlis = net.peer(&jlis_party, &nat_url, nat_party.clone())?;
    let fields = |f: &[Field]| f.iter().copied().collect::<std::collections::BTreeSet<_>>();
    let q = Query {
        purpose: jpki.code.clone(),
        by: Lookup::ResidentCode(hanako.clone()),
        fields: fields(&[Field::Name, Field::Address, Field::DateOfBirth, Field::Sex]),
    };
    let r: Provided = jlis.post_json("/v1/provision/query", &q).await?;
    println!("   lawful:   jlis-ca asks for {hanako} under {} ({}) → {}", jpki.code, jpki.description, show(&r));
    let q4 = Query {
        purpose: jpki.code.clone(),
        by: Lookup::FourItems(national.record(&hanako).await?.items),
        fields: fields(&[Field::ResidentCode]),
    };
    let r4: Provided = jlis.post_json("/v1/provision/query", &q4).await?;
    println!("   lawful:   the same agency by an exact match of the four items → {}", show(&r4));
    let bad = Query {
        purpose: pension.code.clone(),
        by: Lookup::ResidentCode(hanako.clone()),
        fields: fields(&[Field::Name, Field::Address]),
    };
    match jlis.post_json::<_, Provided>("/v1/provision/query", &bad).await {
        Ok(_) => bail!("an unlawful query was answered"),
        Err(e) => println!("   unlawful: jlis-ca asks under the pension purpose {} → {e}", pension.code),
    }
    let nosy = Query { purpose: narrow.code.clone(), fields: fields(&[Field::ChangeInfo]), ..q.clone() };
    match jlis.post_json::<_, Provided>("/v1/provision/query", &nosy).await {
        Ok(_) => bail!("an unlawful field was provided"),
        Err(e) => println!("   unlawful: jlis-ca asks for change_info under {} → {e}", narrow.code),
    }
    let batch = BatchQuery {
        purpose: pension.code.clone(),
        fields: fields(&[Field::ChangeInfo]),
        resident_codes: vec![hanako.clone(), ichiro.clone()],
    };
    let alive: Vec<Provided> = jps.post_json("/v1/provision/batch", &batch).await?;
    for (c, p) in batch.resident_codes.iter().zip(&alive) {
        println!("   bulk liveness check by jps: {c} → {}", show(p));
    }
    // What replaced the bearer tokens: the certificate decides who the caller is.
    let muni_feed = net.peer(&as_muni(&chiyoda.0), &nat_url, nat_party.clone())?;
    match muni_feed.feed(0, 10).await {
        Ok(_) => bail!("the feed was served to a municipality"),
        Err(e) => {
            ensure!(e.to_string().contains("party_not_allowed"), "unexpected refusal: {e}");
            println!("   a municipality's credential ({}) asks for the feed → {e}", as_muni(&chiyoda.0));
        }
    }
    let anonymous = anonymous_client(&net.trust, &nat_url)?;
    match anonymous.feed_head().await {
        Ok(_) => bail!("a client without a certificate was served"),
        Err(e) => println!("   a client without a certificate (trusting the network CA) → handshake refused: {e}"),
    }

    let passport = law
        .purposes()
        .find(|p| p.description.starts_with("旅券法") && p.agency_class == AgencyClass::OwnPrefectureGovernor)
        .context("the law table has no 旅券法 purpose for governors")?;
    let osaka_pref = &prefs[1];
    let pref_op = Operator::new("osaka-pref-operator-1", Role::PrefectureOperator)?;
    osaka_pref
        .provider
        .register_agency(&pref_op, "osaka-gov", "大阪府知事", passport.agency_class, &[&passport.code], now)
        .await?;
    let governor = net.peer(&gov_party, &osaka_pref.url, Party::Prefecture("27".parse()?))?;
    let q = Query {
        purpose: passport.code.clone(),
        by: Lookup::ResidentCode(hanako.clone()),
        fields: fields(&[Field::Name, Field::Address, Field::DateOfBirth]),
    };
    let r: Provided = governor.post_json("/v1/provision/query", &q).await?;
    println!(
        "   lawful:   大阪府知事 ({gov_party}) asks the 大阪府 server under {} ({}) → {}",
        passport.code,
        passport.description,
        show(&r)
    );
    match national
        .provider()
        .register_agency(&nat_op, "osaka-gov", "大阪府知事", passport.agency_class, &[&passport.code], now)
        .await
    {
        Ok(_) => bail!("the national server took a prefecture-held class"),
        Err(e) => println!("   registering 大阪府知事 at the national server instead → {e}"),
    }
    let gov_at_national = net.peer(&gov_party, &nat_url, nat_party.clone())?;
    match gov_at_national.post_json::<_, Provided>("/v1/provision/query", &q).await {
        Ok(_) => bail!("an agency not registered at the national node was answered"),
        Err(e) => println!("   大阪府知事 asks the national server → {e}"),
    }

    let op = net.peer(&operator, &nat_url, nat_party.clone())?;
    step(&format!("10. Disclosure report for {hanako} (本人確認情報の提供状況の開示), asked by {operator}"));
    let rows: Vec<DisclosureRow> = op.get_json(&format!("/v1/disclosure/{hanako}")).await?;
    print_disclosure(&hanako, &rows);

    step("11. Yearly statistics of provisions per purpose (shape of the prefecture usage tables)");
    let fy = Provider::fiscal_year_of(now)?;
    let stats = op.get_text(&format!("/v1/statistics?years={},{fy}", fy - 1)).await?;
    for line in stats.lines() {
        println!("   {line}");
    }

    step("12. Disaster drill: wipe the national node, rebuild it from the prefectures, prove equal chain heads");
    let fresh = Db::open(&db("national-rebuilt")).await?;
    identity::store::claim_identity(&fresh, "national", "national").await?;
    let peers: Vec<Peer> = national_peers.iter().map(|(p, _)| p.clone()).collect();
    let checks = national::rebuild(&fresh, verifier.as_ref(), &peers).await?;
    let bad = print_checks(&checks);
    ensure!(bad == 0, "{bad} chains differ after the rebuild");
    let rebuilt = national_rebuilt_record(&fresh, &law, &hanako).await?;
    println!("   rebuilt projection of {hanako}: {} / owner {}", rebuilt, national.record(&hanako).await?.municipality);

    step("13. Tampering: forged copies of 千代田区's next notice reach the national node");
    let genuine = chiyoda
        .0
        .register(
            &clerk,
            NoticeKind::Birth,
            items("山田　太郎", "東京都千代田区千代田一丁目1番1号", &identity::notice::format_date(today), Sex::Male)?,
            today,
            now,
        )
        .await?;
    let mut forged = genuine.clone();
    forged.body.record.items.name = FlaggedText::plain("name", "偽造　次郎")?;
    tamper(
        &national_db,
        verifier.as_ref(),
        &nat_op,
        forged,
        "a copy with a changed name (its hash no longer matches)",
        now,
    )
    .await?;
    // A valid chain (prev_hash of the real head, hash recomputed over the forged content)
    // carrying the genuine notice's signature envelope: only the notice key could sign it.
    let mut body = genuine.body.clone();
    body.record.items.name = FlaggedText::plain("name", "偽造　次郎")?;
    let mut appended = ChangeNotice::seal(genuine.key.source.clone(), genuine.key.seq, genuine.prev_hash, body);
    appended.signature = genuine.signature.clone();
    ensure!(appended.verify_hash().is_ok(), "the appended forgery should chain correctly");
    tamper(
        &national_db,
        verifier.as_ref(),
        &nat_op,
        appended,
        "an appended notice with a valid chain but no valid signature",
        now,
    )
    .await?;
    println!("   the genuine chain is pulled:");
    sync(&national_db, verifier.as_ref(), &prefs, &national_peers).await?;
    ensure!(national.record(&genuine.body.record.resident_code).await?.items.name.text() == "山田　太郎");

    if kept {
        remember(crate::demo_card::SIGN_PIN);
        write_secrets(&dir)?;
    }
    println!("\nDone. Databases in {}{}", dir.display(), if tmp_kept(&dir) { "" } else { " (temporary, removed now)" });
    Ok(())
}

/// Offers one forged notice of 131016 to the national node: it must be refused and halt the
/// source with the cursor unchanged; an operator then investigates and resumes.
async fn tamper(
    db: &Db,
    verifier: &dyn NoticeVerifier,
    op: &Operator,
    forged: ChangeNotice,
    what: &str,
    now: i64,
) -> Result<()> {
    let source = forged.key.source.as_str().to_owned();
    let (before, _) = replica::cursor(db, &source).await?;
    match replica::apply_batch(db, Tier::National, verifier, &[forged]).await {
        Ok(_) => bail!("a forged notice was applied ({what})"),
        Err(e) => println!("   {what}:\n      national node: {e}"),
    }
    let (cursor, halted) = replica::cursor(db, &source).await?;
    ensure!(cursor.applied_seq == before.applied_seq && halted.is_some(), "the forgery should halt {source}");
    println!(
        "      {source} at the national node: cursor {} (unchanged), halted: {}",
        cursor.applied_seq,
        halted.is_some()
    );
    replica::resume(db, op, &source, now).await?;
    println!("      an operator investigates and resumes {source}");
    Ok(())
}

/// A client that trusts the network CA but presents no certificate (what anyone on the
/// network could try): the servers require one, so the TLS 1.3 handshake is refused.
fn anonymous_client(trust: &Trust, url: &str) -> Result<Peer> {
    let pem = std::fs::read(&trust.ca_file)?;
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem)?)
        .tls_built_in_root_certs(false)
        .https_only(true)
        .build()?;
    Ok(Peer::new(url, http))
}

async fn national_rebuilt_record(db: &Db, law: &Arc<identity::law::LawTable>, code: &ResidentCode) -> Result<String> {
    let n = National::open(db.clone(), law.clone()).await?;
    let r = n.record(code).await?;
    Ok(format!("{} / {} / status {:?}", r.items.name.text(), r.items.address.text(), r.status))
}

fn tmp_kept(dir: &std::path::Path) -> bool {
    !dir.starts_with(std::env::temp_dir())
}
