//! `jpki demo`: the README's main job. Starts a national node, two prefecture nodes and
//! three municipal nodes on SQLite files in a temporary directory, serves each over HTTP on
//! loopback, and plays the identity part of the story, printing every step.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail, ensure};
use clap::Args as ClapArgs;
use identity::client::{MoveInNotice, Peer, PoolRequest};
use identity::http::{self, NationalState};
use identity::ids::{LgCode, ResidentCode};
use identity::law::{AgencyClass, Field};
use identity::municipal::Municipality;
use identity::national::{self, National};
use identity::notice::{NoticeKind, parse_date};
use identity::operator::{Operator, Role};
use identity::person::{FlaggedText, FourItems, Sex};
use identity::provision::{BatchQuery, DisclosureRow, Lookup, Provided, Provider, Query};
use identity::replica::{self, Tier};
use identity::store::Db;

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

struct Node {
    url: String,
}

async fn start(router: axum::Router) -> Result<Node> {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.context("binding a loopback port")?;
    let url = format!("http://{}", l.local_addr()?);
    tokio::spawn(http::serve(l, router));
    Ok(Node { url })
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

async fn sync(national: &Db, prefs: &[Prefecture], national_peers: &[(Peer, Option<String>)]) -> Result<()> {
    for Prefecture { db, code, sources, .. } in prefs {
        for (peer, prefix) in sources {
            for r in
                replica::pull(db, Tier::Prefecture, crate::notice_keys::verifier().as_ref(), peer, prefix.as_deref())
                    .await?
            {
                if r.applied > 0 {
                    println!("   prefecture {code} ← {}: {} notices (cursor {})", r.source, r.applied, r.cursor_seq);
                }
            }
        }
    }
    for (peer, prefix) in national_peers {
        for r in
            replica::pull(national, Tier::National, crate::notice_keys::verifier().as_ref(), peer, prefix.as_deref())
                .await?
        {
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
    let status = p.status.map(|s| format!("{s:?}")).unwrap_or_default();
    format!("status {status}; {}", items.join(" "))
}

pub async fn run(args: Args) -> Result<()> {
    let tmp;
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
        "1. Bring up the network: national node, prefectures 13 (東京都) and 27 (大阪府), municipalities 千代田区, 新宿区, 大阪市",
    );
    let law = Arc::new(crate::serve::law_table(None)?);
    let national_db = Db::open(&db("national")).await?;
    let national = National::open(national_db.clone(), law.clone()).await?;
    let operator_token = hex::encode(rand::random::<[u8; 24]>());
    // Node-to-node routes (replication, 転出証明書, 転入通知, feed) need the network's secret.
    let secret = Some(hex::encode(rand::random::<[u8; 24]>()));
    let token = || http::PeerToken(secret.clone());
    let peer = |url: &str| Peer::new(url).with_token(secret.clone());
    let nat_op = Operator::new("national-operator-1", Role::NationalOperator)?;
    let nat = start(http::national_router(NationalState {
        national: national.clone(),
        operator_token: operator_token.clone(),
        operator: nat_op.clone(),
        peer_token: token(),
    }))
    .await?;
    println!("   national node      {}  ({})", nat.url, db("national"));

    let mut munis = Vec::new();
    for (c, name) in [("131016", "千代田区"), ("131041", "新宿区"), ("271004", "大阪市")] {
        let m = Municipality::open(Db::open(&db(c)).await?, code(c)?)
            .await?
            .with_signer(crate::notice_keys::signer(&code(c)?))
            .await?;
        let node = start(http::municipal_router(m.clone(), token())).await?;
        println!("   municipality {c} {name}  {}", node.url);
        munis.push((m, node));
    }
    let mut prefs = Vec::new();
    let mut national_peers = Vec::new();
    for p in ["13", "27"] {
        let pdb = Db::open(&db(&format!("prefecture-{p}"))).await?;
        identity::store::claim_identity(&pdb, "prefecture", p).await?;
        let provider = Provider::open(pdb.clone(), law.clone()).await?;
        let node = start(http::prefecture_router(http::PrefectureState {
            db: pdb.clone(),
            code: p.to_owned(),
            peer_token: token(),
            provider: provider.clone(),
            operator_token: operator_token.clone(),
        }))
        .await?;
        println!("   prefecture {p}        {}", node.url);
        let sources: Vec<(Peer, Option<String>)> = munis
            .iter()
            .filter(|(m, _)| m.code().as_str().starts_with(p))
            .map(|(_, n)| (peer(&n.url), Some(p.to_owned())))
            .collect();
        national_peers.push((peer(&node.url), Some(p.to_owned())));
        prefs.push(Prefecture { db: pdb, code: p.to_owned(), sources, provider, url: node.url.clone() });
    }
    let (chiyoda, shinjuku, osaka) = (&munis[0], &munis[1], &munis[2]);

    step("2. Resident-code pools: each municipality draws non-overlapping codes from the national node");
    let natp = peer(&nat.url);
    for (m, _) in &munis {
        let codes =
            natp.allocate_pool(&operator_token, &PoolRequest { municipality: m.code().clone(), count: 50 }).await?;
        m.add_pool(&codes).await?;
        println!("   {} received {} codes (first {})", m.code(), codes.len(), codes[0]);
    }

    step("3. Register residents (one transaction each: record version + chained change notice + operator log)");
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
    let hanako = yamada.body.record.resident_code.clone();
    let ichiro = sato.body.record.resident_code.clone();

    step("4. Replicate: prefectures pull their municipalities, the national node pulls the prefectures");
    sync(&national_db, &prefs, &national_peers).await?;
    let rec = national.record(&hanako).await?;
    println!(
        "   national projection of {hanako}: {} / {} / status {:?} / owner {}",
        rec.items.name.text(),
        rec.items.address.text(),
        rec.status,
        rec.municipality
    );

    step("4a. The CA: roots of both hierarchies; 山田花子's certificates from the 東京都 (13) prefecture-unit CAs");
    let mut ca = crate::demo_ca::start(&dir, &national, &nat.url, &nat_op, secret.clone(), now).await?;
    ca.issue(&hanako, &baby.body.record.resident_code, now).await?;

    step("5. Move across prefectures: 転出 at 千代田区, 転入 at 大阪市 with the 転出証明書情報, 転入通知 back");
    let out = chiyoda.0.move_out(&clerk, &hanako, code("271004")?, today, now).await?;
    println!("   {}", describe(&out));
    let cert = peer(&chiyoda.1.url).move_out_certificate(&hanako).await?;
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
    let first = peer(&chiyoda.1.url).send_move_in_notice(&notice).await?;
    let retry = peer(&chiyoda.1.url).send_move_in_notice(&notice).await?;
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
        replica::pull(&prefs[1].db, Tier::Prefecture, crate::notice_keys::verifier().as_ref(), peer, prefix.as_deref())
            .await?;
    }
    for r in replica::pull(
        &national_db,
        Tier::National,
        crate::notice_keys::verifier().as_ref(),
        &national_peers[1].0,
        Some("27"),
    )
    .await?
    {
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
    sync(&national_db, &prefs, &national_peers).await?;
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
    sync(&national_db, &prefs, &national_peers).await?;

    step("8. Change-information feed (what the CAs consume)");
    for e in natp.feed(0, 100).await? {
        println!("   {}", describe_feed(&e));
    }

    step("8a. The CA follows the feed: the move revokes the signature certificate, not the authentication one");
    ca.after_move(now + 1).await?;

    step("9. Provision to agencies, bound by the law table");
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
    let jps = national
        .provider()
        .register_agency(&nat_op, "jps", "日本年金機構", pension.agency_class, &[&pension.code], now)
        .await?;
    let jlis = national
        .provider()
        .register_agency(&nat_op, "jlis-ca", "J-LIS 認証局", jpki.agency_class, &[&jpki.code, &narrow.code], now)
        .await?;
    println!(
        "   agencies: jps = 日本年金機構 for {} (bulk), jlis-ca = J-LIS 認証局 for {} and {}",
        pension.code, jpki.code, narrow.code
    );
    let fields = |f: &[Field]| f.iter().copied().collect::<std::collections::BTreeSet<_>>();
    let q = Query {
        purpose: jpki.code.clone(),
        by: Lookup::ResidentCode(hanako.clone()),
        fields: fields(&[Field::Name, Field::Address, Field::DateOfBirth, Field::Sex]),
    };
    let r: Provided = natp.post_json("/v1/provision/query", &jlis, &q).await?;
    println!("   lawful:   jlis-ca asks for {hanako} under {} ({}) → {}", jpki.code, jpki.description, show(&r));
    let q4 = Query {
        purpose: jpki.code.clone(),
        by: Lookup::FourItems(national.record(&hanako).await?.items),
        fields: fields(&[Field::ResidentCode]),
    };
    let r4: Provided = natp.post_json("/v1/provision/query", &jlis, &q4).await?;
    println!("   lawful:   the same agency by an exact match of the four items → {}", show(&r4));
    let bad = Query {
        purpose: pension.code.clone(),
        by: Lookup::ResidentCode(hanako.clone()),
        fields: fields(&[Field::Name, Field::Address]),
    };
    match natp.post_json::<_, Provided>("/v1/provision/query", &jlis, &bad).await {
        Ok(_) => bail!("an unlawful query was answered"),
        Err(e) => println!("   unlawful: jlis-ca asks under the pension purpose {} → {e}", pension.code),
    }
    let nosy = Query { purpose: narrow.code.clone(), fields: fields(&[Field::ChangeInfo]), ..q.clone() };
    match natp.post_json::<_, Provided>("/v1/provision/query", &jlis, &nosy).await {
        Ok(_) => bail!("an unlawful field was provided"),
        Err(e) => println!("   unlawful: jlis-ca asks for change_info under {} → {e}", narrow.code),
    }
    let batch = BatchQuery {
        purpose: pension.code.clone(),
        fields: fields(&[Field::ChangeInfo]),
        resident_codes: vec![hanako.clone(), ichiro.clone()],
    };
    let alive: Vec<Provided> = natp.post_json("/v1/provision/batch", &jps, &batch).await?;
    for (c, p) in batch.resident_codes.iter().zip(&alive) {
        println!("   bulk liveness check by jps: {c} → {}", show(p));
    }
    match natp.post_json::<_, Provided>("/v1/provision/query", "jps:wrong-secret", &q).await {
        Ok(_) => bail!("a bad credential was accepted"),
        Err(e) => println!("   bad credentials → {e}"),
    }

    let passport = law
        .purposes()
        .find(|p| p.description.starts_with("旅券法") && p.agency_class == AgencyClass::OwnPrefectureGovernor)
        .context("the law table has no 旅券法 purpose for governors")?;
    let osaka_pref = &prefs[1];
    let pref_op = Operator::new("osaka-pref-operator-1", Role::PrefectureOperator)?;
    let governor = osaka_pref
        .provider
        .register_agency(&pref_op, "osaka-gov", "大阪府知事", passport.agency_class, &[&passport.code], now)
        .await?;
    let q = Query {
        purpose: passport.code.clone(),
        by: Lookup::ResidentCode(hanako.clone()),
        fields: fields(&[Field::Name, Field::Address, Field::DateOfBirth]),
    };
    let r: Provided = peer(&osaka_pref.url).post_json("/v1/provision/query", &governor, &q).await?;
    println!(
        "   lawful:   大阪府知事 asks the 大阪府 server under {} ({}) → {}",
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

    step(&format!("10. Disclosure report for {hanako} (本人確認情報の提供状況の開示)"));
    let rows: Vec<DisclosureRow> = natp.get_json(&format!("/v1/disclosure/{hanako}"), &operator_token).await?;
    print_disclosure(&hanako, &rows);

    step("11. Yearly statistics of provisions per purpose (shape of the prefecture usage tables)");
    let fy = Provider::fiscal_year_of(now)?;
    let stats = natp.get_text(&format!("/v1/statistics?years={},{fy}", fy - 1), &operator_token).await?;
    for line in stats.lines() {
        println!("   {line}");
    }

    step("12. Disaster drill: wipe the national node, rebuild it from the prefectures, prove equal chain heads");
    let fresh = Db::open(&db("national-rebuilt")).await?;
    identity::store::claim_identity(&fresh, "national", "national").await?;
    let peers: Vec<Peer> = national_peers.iter().map(|(p, _)| p.clone()).collect();
    let checks = national::rebuild(&fresh, crate::notice_keys::verifier().as_ref(), &peers).await?;
    let bad = print_checks(&checks);
    ensure!(bad == 0, "{bad} chains differ after the rebuild");
    let rebuilt = national_rebuilt_record(&fresh, &law, &hanako).await?;
    println!("   rebuilt projection of {hanako}: {} / owner {}", rebuilt, national.record(&hanako).await?.municipality);

    step("13. Tampering: a forged copy of 千代田区's next notice reaches the national node");
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
    match replica::apply_batch(&national_db, Tier::National, crate::notice_keys::verifier().as_ref(), &[forged]).await {
        Ok(_) => bail!("a forged notice was applied"),
        Err(e) => println!("   national node: {e}"),
    }
    let (cursor, halted) = replica::cursor(&national_db, "131016").await?;
    println!("   131016 at the national node: cursor {} (unchanged), halted: {}", cursor.applied_seq, halted.is_some());
    replica::resume(&national_db, &nat_op, "131016", now).await?;
    println!("   an operator investigates and resumes 131016; the genuine chain is pulled:");
    sync(&national_db, &prefs, &national_peers).await?;
    ensure!(national.record(&genuine.body.record.resident_code).await?.items.name.text() == "山田　太郎");

    println!("\nDone. Databases in {}{}", dir.display(), if tmp_kept(&dir) { "" } else { " (temporary, removed now)" });
    Ok(())
}

async fn national_rebuilt_record(db: &Db, law: &Arc<identity::law::LawTable>, code: &ResidentCode) -> Result<String> {
    let n = National::open(db.clone(), law.clone()).await?;
    let r = n.record(code).await?;
    Ok(format!("{} / {} / status {:?}", r.items.name.text(), r.items.address.text(), r.status))
}

fn tmp_kept(dir: &std::path::Path) -> bool {
    !dir.starts_with(std::env::temp_dir())
}
