//! `jpki identity …`: clerk commands on a municipal register, and operator commands on the
//! national node (pools, feed, rebuild, disclosure, statistics).

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use identity::client::{MoveInNotice, Peer, PoolRequest};
use identity::ids::{LgCode, PrefectureCode, ResidentCode};
use identity::municipal::Municipality;
use identity::national::{self, FeedEntry};
use identity::notice::{ChangeNotice, NoticeKind, parse_date};
use identity::operator::{Operator, Role};
use identity::person::{FlaggedText, FourItems, Sex};
use identity::provision::DisclosureRow;
use identity::store::Db;

use crate::netargs::NetArgs;
use identity::party::Party;
use time::Date;

/// Identity commands.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Register a resident by birth or first registration (code drawn from the pool).
    Register {
        #[command(flatten)]
        at: Clerk,
        /// How the resident enters the register.
        #[arg(long, value_enum, default_value = "first-registration")]
        kind: Registration,
        #[command(flatten)]
        items: Items,
    },
    /// 転居: a new address within the municipality.
    MoveWithin {
        #[command(flatten)]
        at: Clerk,
        /// The resident.
        #[arg(long)]
        resident: ResidentCode,
        /// New address.
        #[arg(long)]
        address: String,
    },
    /// 転出: move out to another municipality.
    MoveOut {
        #[command(flatten)]
        at: Clerk,
        /// The resident.
        #[arg(long)]
        resident: ResidentCode,
        /// Destination municipality code.
        #[arg(long)]
        to: LgCode,
    },
    /// 転入: register a resident moving in; fetches the 転出証明書情報 from the old
    /// municipality and sends it the 転入通知.
    MoveIn {
        #[command(flatten)]
        at: Clerk,
        /// The resident.
        #[arg(long)]
        resident: ResidentCode,
        /// Base URL of the old municipality's node (https; called with this municipality's
        /// credential, which must name the municipality moved to).
        #[arg(long)]
        from_url: String,
        /// New address.
        #[arg(long)]
        address: String,
        #[command(flatten)]
        net: NetArgs,
    },
    /// Remove a resident from the register (death, emigration, ex-officio removal).
    Remove {
        #[command(flatten)]
        at: Clerk,
        /// The resident.
        #[arg(long)]
        resident: ResidentCode,
        /// Reason.
        #[arg(long, value_enum)]
        reason: Removal,
    },
    /// 職権修正: correct the four items (give all four as they should be).
    Correct {
        #[command(flatten)]
        at: Clerk,
        /// The resident.
        #[arg(long)]
        resident: ResidentCode,
        #[command(flatten)]
        items: Items,
    },
    /// Give a resident a new code on request; the old one is retired forever.
    ChangeCode {
        #[command(flatten)]
        at: Clerk,
        /// The resident.
        #[arg(long)]
        resident: ResidentCode,
    },
    /// Show a resident's record on a municipal register.
    Show {
        /// Municipal database.
        #[arg(long, env = "JPKI_DB")]
        db: String,
        /// Municipality code.
        #[arg(long)]
        municipality: LgCode,
        /// The resident.
        #[arg(long)]
        resident: ResidentCode,
    },
    /// Fetch a pool of resident codes from the national node into a municipal register.
    Pool {
        /// Municipal database.
        #[arg(long, env = "JPKI_DB")]
        db: String,
        /// Municipality code.
        #[arg(long)]
        municipality: LgCode,
        /// National node URL (https; the municipality's own credential draws for itself only).
        #[arg(long)]
        national: String,
        #[command(flatten)]
        net: NetArgs,
        /// How many codes.
        #[arg(long, default_value_t = 1000)]
        count: u32,
    },
    /// Print a node's chain heads.
    Heads {
        /// Node URL.
        #[arg(long)]
        url: String,
        #[command(flatten)]
        net: NetArgs,
    },
    /// Print the national change-information feed.
    Feed {
        /// National node URL.
        #[arg(long)]
        national: String,
        /// Print entries after this feed position.
        #[arg(long, default_value_t = 0)]
        after: u64,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[command(flatten)]
        net: NetArgs,
    },
    /// Rebuild a wiped national node from the prefectures and prove chain-head equality.
    RebuildNational {
        /// The (empty) national database.
        #[arg(long, env = "JPKI_DB")]
        db: String,
        /// Prefecture servers as `CODE=URL` (repeat).
        #[arg(long = "prefecture", value_parser = crate::serve::parse_prefecture)]
        prefectures: Vec<(PrefectureCode, String)>,
        #[command(flatten)]
        net: NetArgs,
    },
    /// Register an agency for purposes of its class at the national node or a prefecture
    /// node (each serves the classes whose data it holds). The agency connects with its own
    /// network credential naming `agency:<id>` (a CA: `ca:<id>`).
    AgencyAdd {
        /// The national or prefecture database.
        #[arg(long, env = "JPKI_DB")]
        db: String,
        /// Agency id (A–Z a–z 0–9 - _).
        #[arg(long)]
        id: String,
        /// Display name, e.g. 日本年金機構.
        #[arg(long)]
        name: String,
        /// Agency class code: B1–B6 (住基法 別表第1–第6) or O1–O3 (ordinance tables).
        #[arg(long)]
        class: String,
        /// Purpose codes from the law table (repeat).
        #[arg(long = "purpose", required = true)]
        purposes: Vec<String>,
        /// Operator id (of the node's tier).
        #[arg(long, env = "JPKI_OPERATOR")]
        operator: String,
        /// Law table (TSV) replacing the built-in seed.
        #[arg(long)]
        law_table: Option<std::path::PathBuf>,
    },
    /// Anti-entropy check: compare the national node's chain heads with each prefecture's
    /// (exit 1 if any municipality differs).
    CompareHeads {
        /// National node URL.
        #[arg(long)]
        national: String,
        /// Prefecture servers as `CODE=URL` (repeat).
        #[arg(long = "prefecture", value_parser = crate::serve::parse_prefecture)]
        prefectures: Vec<(PrefectureCode, String)>,
        #[command(flatten)]
        net: NetArgs,
    },
    /// Resume replication of a source halted by a diverged chain (after investigation).
    Resume {
        /// The replica's database (prefecture or national).
        #[arg(long, env = "JPKI_DB")]
        db: String,
        /// The halted municipality.
        #[arg(long)]
        source: LgCode,
        /// Operator id.
        #[arg(long, env = "JPKI_OPERATOR")]
        operator: String,
        /// The operator's tier.
        #[arg(long, value_enum)]
        tier: TierArg,
    },
    /// A resident's disclosure report: every provision of their record.
    Disclosure {
        /// National node URL.
        #[arg(long)]
        national: String,
        #[command(flatten)]
        net: NetArgs,
        /// The resident.
        #[arg(long)]
        resident: ResidentCode,
    },
    /// Yearly provision statistics per purpose.
    Stats {
        /// National node URL.
        #[arg(long)]
        national: String,
        #[command(flatten)]
        net: NetArgs,
        /// Fiscal years, comma-separated (e.g. 2025,2026).
        #[arg(long)]
        years: String,
    },
}

/// Where a clerk works.
#[derive(Debug, Args)]
pub struct Clerk {
    /// Municipal database.
    #[arg(long, env = "JPKI_DB")]
    db: String,
    /// Municipality code.
    #[arg(long)]
    municipality: LgCode,
    /// Operator id of the clerk.
    #[arg(long, env = "JPKI_OPERATOR")]
    operator: String,
    /// 異動年月日 (default: today).
    #[arg(long)]
    effective: Option<String>,
    /// The municipality's notice key (PREFIX.pem, PREFIX.key from `jpki net issue
    /// --notice-key`; passphrase from JPKI_CREDENTIAL_PASSPHRASE): every notice is signed.
    #[arg(long, env = "JPKI_NOTICE_KEY")]
    notice_key: std::path::PathBuf,
}

/// The four items on the command line.
#[derive(Debug, Args)]
pub struct Items {
    /// 氏名.
    #[arg(long)]
    name: String,
    /// Substitute-character flags of the name (one 0/1 per character; default all 0).
    #[arg(long)]
    name_flags: Option<String>,
    /// 住所.
    #[arg(long)]
    address: String,
    /// Substitute-character flags of the address.
    #[arg(long)]
    address_flags: Option<String>,
    /// 生年月日, YYYY-MM-DD.
    #[arg(long)]
    dob: String,
    /// 性別: 1 male, 2 female, 9 not applicable.
    #[arg(long)]
    sex: u8,
}

/// Ways onto the register.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Registration {
    /// 出生.
    Birth,
    /// 職権記載 / arrival from abroad.
    FirstRegistration,
}

/// Replica tiers.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum TierArg {
    /// A prefecture server.
    Prefecture,
    /// The national server.
    National,
}

/// Ways off the register.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Removal {
    /// 死亡.
    Death,
    /// 国外転出.
    Emigration,
    /// 職権消除.
    ExOfficio,
}

fn text(field: &'static str, t: &str, flags: Option<&str>) -> Result<FlaggedText> {
    Ok(match flags {
        Some(f) => FlaggedText::new(field, t, f)?,
        None => FlaggedText::plain(field, t)?,
    })
}

impl Items {
    fn build(&self) -> Result<FourItems> {
        Ok(FourItems {
            name: text("name", &self.name, self.name_flags.as_deref())?,
            address: text("address", &self.address, self.address_flags.as_deref())?,
            date_of_birth: parse_date("dob", &self.dob)?,
            sex: Sex::try_from(self.sex)?,
        })
    }
}

struct Desk {
    m: Municipality,
    op: Operator,
    effective: Date,
    now: i64,
}

impl Clerk {
    async fn open(&self) -> Result<Desk> {
        let m = Municipality::open(Db::open(&self.db).await?, self.municipality.clone())
            .await?
            .with_signer(crate::netargs::notice_signer(&self.notice_key, &self.municipality)?)
            .await?;
        let op = Operator::new(&self.operator, Role::MunicipalClerk)?;
        let now = identity::http::now();
        let effective = match &self.effective {
            Some(d) => parse_date("effective", d)?,
            None => time::OffsetDateTime::now_utc().date(),
        };
        Ok(Desk { m, op, effective, now })
    }
}

/// One line describing a notice, as the CLI and the demo print it.
pub fn describe(n: &ChangeNotice) -> String {
    format!(
        "{} seq {:>3} {:<8} {} {} ({}) hash {}…",
        n.key.source,
        n.key.seq,
        n.body.kind.label(),
        n.body.record.resident_code,
        n.body.record.items.name.text(),
        n.body.record.items.address.text(),
        &hex::encode(n.hash)[..12]
    )
}

pub async fn run(cmd: Cmd) -> Result<()> {
    match cmd {
        Cmd::Register { at, kind, items } => {
            let d = at.open().await?;
            let kind = match kind {
                Registration::Birth => NoticeKind::Birth,
                Registration::FirstRegistration => NoticeKind::FirstRegistration,
            };
            let n = d.m.register(&d.op, kind, items.build()?, d.effective, d.now).await?;
            println!("{}", describe(&n));
        }
        Cmd::MoveWithin { at, resident, address } => {
            let d = at.open().await?;
            let n =
                d.m.move_within(&d.op, &resident, FlaggedText::plain("address", &address)?, d.effective, d.now).await?;
            println!("{}", describe(&n));
        }
        Cmd::MoveOut { at, resident, to } => {
            let d = at.open().await?;
            let n = d.m.move_out(&d.op, &resident, to, d.effective, d.now).await?;
            println!("{}", describe(&n));
        }
        Cmd::MoveIn { at, resident, from_url, address, net } => {
            let d = at.open().await?;
            // The old municipality is named by the certificate it answers with (checked against
            // the record below); this municipality's credential must name itself.
            let old = net.load_as(&Party::Municipality(d.m.code().clone()))?.peer(&from_url, None)?;
            let cert = old.move_out_certificate(&resident).await.context("fetching the 転出証明書情報")?;
            anyhow::ensure!(
                cert.destination == *d.m.code(),
                "the 転出証明書 names {} as destination, not {}",
                cert.destination,
                d.m.code()
            );
            let n = d.m.move_in(&d.op, &cert, FlaggedText::plain("address", &address)?, d.effective, d.now).await?;
            println!("{}", describe(&n));
            let notice =
                MoveInNotice { resident_code: resident, new_municipality: d.m.code().clone(), notice_seq: n.key.seq };
            let fresh = old
                .send_move_in_notice(&notice)
                .await
                .context("sending the 転入通知 (retry with the same command is safe)")?;
            println!(
                "転入通知 sent to {} ({})",
                cert.move_out.source,
                if fresh { "recorded" } else { "already recorded" }
            );
        }
        Cmd::Remove { at, resident, reason } => {
            let d = at.open().await?;
            let kind = match reason {
                Removal::Death => NoticeKind::Death,
                Removal::Emigration => NoticeKind::Emigration,
                Removal::ExOfficio => NoticeKind::RemovalExOfficio,
            };
            let n = d.m.remove(&d.op, &resident, kind, d.effective, d.now).await?;
            println!("{}", describe(&n));
        }
        Cmd::Correct { at, resident, items } => {
            let d = at.open().await?;
            let n = d.m.correct(&d.op, &resident, items.build()?, d.effective, d.now).await?;
            println!("{}", describe(&n));
        }
        Cmd::ChangeCode { at, resident } => {
            let d = at.open().await?;
            let n = d.m.change_code(&d.op, &resident, d.effective, d.now).await?;
            println!("{}  (retired {resident})", describe(&n));
        }
        Cmd::Show { db, municipality, resident } => {
            let m = Municipality::open(Db::open(&db).await?, municipality).await?;
            println!("{}", serde_json::to_string_pretty(&m.get(&resident).await?)?);
        }
        Cmd::Pool { db, municipality, national, net, count } => {
            let m = Municipality::open(Db::open(&db).await?, municipality.clone()).await?;
            let peer =
                net.load_as(&Party::Municipality(municipality.clone()))?.peer(&national, Some(Party::National))?;
            let codes = peer.allocate_pool(&PoolRequest { municipality, count }).await?;
            let added = m.add_pool(&codes).await?;
            println!("{added} codes added; {} unused in the pool", m.pool_remaining().await?);
        }
        Cmd::Heads { url, net } => {
            let h = net.load()?.peer(&url, None)?.heads().await?;
            println!("{} {}", h.role, h.code);
            for h in h.heads {
                println!(
                    "  {} seq {:>6} {}{}",
                    h.source,
                    h.seq,
                    h.hash,
                    h.halted.map(|r| format!("  HALTED: {r}")).unwrap_or_default()
                );
            }
        }
        Cmd::Feed { national, after, limit, net } => {
            for e in net.load()?.peer(&national, Some(Party::National))?.feed(after, limit).await? {
                println!("{}", describe_feed(&e));
            }
        }
        Cmd::RebuildNational { db, prefectures, net } => {
            let net = net.load_as(&Party::National)?;
            let db = Db::open(&db).await?;
            identity::store::claim_identity(&db, "national", "national").await?;
            let peers: Vec<Peer> = prefectures
                .iter()
                .map(|(c, u)| net.peer(u, Some(Party::Prefecture(c.clone()))))
                .collect::<Result<_>>()?;
            let bar = crate::progress::Bar::new("identity rebuild-national", "notices");
            let checks = national::rebuild_with(&db, net.verifier().as_ref(), &peers, &bar.callback()).await?;
            let equal = checks.iter().filter(|c| c.equal).count();
            bar.finish(format_args!(
                "{} sources rebuilt, {equal} with chain heads equal to the prefectures'",
                checks.len()
            ));
            let bad = print_checks(&checks);
            if bad > 0 {
                bail!("{bad} sources differ from the prefectures after the rebuild");
            }
        }
        Cmd::AgencyAdd { db, id, name, class, purposes, operator, law_table } => {
            let class: identity::law::AgencyClass = class.parse().map_err(|e: String| anyhow::anyhow!(e))?;
            let law = std::sync::Arc::new(crate::serve::law_table(law_table.as_deref())?);
            let provider = identity::provision::Provider::open(Db::open(&db).await?, law).await?;
            let role = match provider.holder() {
                identity::provision::Holder::National => Role::NationalOperator,
                identity::provision::Holder::Prefecture(_) => Role::PrefectureOperator,
            };
            let op = Operator::new(&operator, role)?;
            let purposes: Vec<&str> = purposes.iter().map(String::as_str).collect();
            provider.register_agency(&op, &id, &name, class, &purposes, identity::http::now()).await?;
            println!(
                "agency {id} registered for {}; it connects with a network credential naming agency:{id} (a CA: ca:{id})",
                purposes.join(", ")
            );
        }
        Cmd::CompareHeads { national: url, prefectures, net } => {
            let net = net.load()?;
            let ours = net.peer(&url, Some(Party::National))?.heads().await?.heads;
            let mut theirs = Vec::new();
            for (code, purl) in &prefectures {
                let p = net.peer(purl, Some(Party::Prefecture(code.clone())))?;
                theirs.extend(p.heads().await?.heads.into_iter().filter(|h| h.source.starts_with(code.as_str())));
            }
            let checks = national::compare(ours, theirs);
            let bad = print_checks(&checks);
            if bad > 0 {
                bail!("{bad} of {} sources differ between the national node and the prefectures", checks.len());
            }
        }
        Cmd::Resume { db, source, operator, tier } => {
            let role = match tier {
                TierArg::Prefecture => Role::PrefectureOperator,
                TierArg::National => Role::NationalOperator,
            };
            let db = Db::open(&db).await?;
            identity::replica::resume(&db, &Operator::new(&operator, role)?, source.as_str(), identity::http::now())
                .await?;
            println!("{source} resumed; the next pull verifies its chain from the applied head");
        }
        Cmd::Disclosure { national, net, resident } => {
            let peer = net.load()?.peer(&national, Some(Party::National))?;
            let rows: Vec<DisclosureRow> = peer.get_json(&format!("/v1/disclosure/{resident}")).await?;
            print_disclosure(&resident, &rows);
        }
        Cmd::Stats { national, net, years } => {
            let peer = net.load()?.peer(&national, Some(Party::National))?;
            print!("{}", peer.get_text(&format!("/v1/statistics?years={years}")).await?);
        }
    }
    Ok(())
}

/// One line per feed entry.
pub fn describe_feed(e: &FeedEntry) -> String {
    format!(
        "feed {:>4}: {} seq {:>3} {:<8} {} changed [{}] effective {}",
        e.feed_seq,
        e.source,
        e.seq,
        e.kind.label(),
        e.resident_code,
        e.changed.join(", "),
        e.effective_date
    )
}

/// Prints a rebuild comparison; returns the number of unequal sources.
pub fn print_checks(checks: &[national::HeadCheck]) -> usize {
    let mut bad = 0;
    for c in checks {
        let n = c
            .national
            .as_ref()
            .map(|h| format!("seq {} {}…", h.seq, &h.hash[..12]))
            .unwrap_or_else(|| "missing".into());
        println!(
            "  {} prefecture seq {} {}… | national {} {}",
            c.source,
            c.prefecture.seq,
            &c.prefecture.hash[..12],
            n,
            if c.equal { "EQUAL" } else { "DIFFERENT" }
        );
        bad += usize::from(!c.equal);
    }
    bad
}

/// Prints a disclosure report.
pub fn print_disclosure(resident: &ResidentCode, rows: &[DisclosureRow]) {
    println!("  本人確認情報提供状況 for {resident}: {} entries", rows.len());
    println!("  | 提供年月日 | 機能区分 | 利用事由 | 提供事務区分 | 提供元 | 提供先 | 提供項目 | 結果 |");
    for r in rows {
        println!(
            "  | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.date, r.function, r.purpose, r.provision_class, r.source, r.destination, r.fields, r.result
        );
    }
}
