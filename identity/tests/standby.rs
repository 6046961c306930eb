//! Provision reads on a hot standby (issue 14, identity::standby), on a real PostgreSQL primary
//! and its streaming standby (`cargo xtask pg --standby`, `cargo xtask ci`:
//! `JPKI_TEST_PG_URL` + `JPKI_TEST_PG_STANDBY_URL`): the standby is checked at start (a primary,
//! another database, an unreachable server, a role without pg_monitor or an SQLite node are
//! refused); provisions read it
//! while its replay lag is within the bound — and then may see a record up to that lag old —
//! and read the primary beyond it (replay paused with `pg_wal_replay_pause()`); every answer's
//! log row is on the primary. Skipped, saying so, without a standby.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use identity::ErrorKind;
use identity::law::{Field, LawTable};
use identity::national::National;
use identity::notice::NoticeKind;
use identity::person::FlaggedText;
use identity::provision::{Lookup, Provided, Query};
use identity::replica::{self, Tier};
use identity::standby::{Lag, ReadStandby};
use identity::store::{self, Db, testing};
use sqlx::Row;

/// `url` with its database replaced by `name`.
fn with_db(url: &str, name: &str) -> String {
    format!("{}/{name}", url.rsplit_once('/').unwrap().0)
}

/// The standby's pool for `db`, once the standby has replayed that database's creation.
async fn standby_of(admin: &str, db: &str) -> Db {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match Db::connect(&with_db(admin, db)).await {
            Ok(d) => return d,
            Err(e) => assert!(Instant::now() < deadline, "the standby never had database {db}: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the standby has replayed everything and streams (lag 0).
async fn caught_up(s: &ReadStandby) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let lag = s.lag().await.unwrap();
        if lag == Lag::Behind(0.0) {
            return;
        }
        assert!(Instant::now() < deadline, "the standby did not catch up: {lag:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn address_of(national: &National, agency: &identity::provision::Agency, code: &str, now: i64) -> String {
    let q = Query {
        purpose: "B1-020".into(),
        by: Lookup::ResidentCode(code.parse().unwrap()),
        fields: [Field::Address, Field::ResidentCode].into_iter().collect::<BTreeSet<_>>(),
    };
    let p: Provided = national.provider().query(agency, &q, now).await.unwrap();
    assert!(p.found);
    p.items["address"]["text"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provisions_read_the_standby_within_its_lag_and_the_primary_beyond_it() {
    let (true, Ok(standby_admin)) = (testing::pg_configured(), std::env::var("JPKI_TEST_PG_STANDBY_URL")) else {
        eprintln!("skipped: no hot standby (run under `cargo xtask pg --standby`)");
        return;
    };
    let admin = Db::connect(&standby_admin).await.unwrap();
    // A run that failed half-way may have left replay paused.
    sqlx::query("SELECT pg_wal_replay_resume()").execute(admin.pool()).await.unwrap();

    // A municipality (SQLite) and the national node on the primary, holding one resident.
    let mdb = testing::sqlite().unwrap();
    let m = signed_municipality(Db::open(&mdb.url).await.unwrap(), "131016").await;
    m.add_pool(&codes(900, 3)).await.unwrap();
    let first = m
        .register(
            &clerk(),
            NoticeKind::FirstRegistration,
            items("山田　花子", "東京都千代田区1", "1980-02-29"),
            date("2026-04-01"),
            NOW,
        )
        .await
        .unwrap();
    let code = first.body.record.resident_code.as_str().to_owned();
    let ndb = testing::postgres().await.unwrap().unwrap();
    let name = ndb.url.rsplit_once('/').unwrap().1.to_owned();
    let law = Arc::new(LawTable::seed().unwrap());
    let national = National::open(Db::open(&ndb.url).await.unwrap(), law).await.unwrap();
    admit_keys_of(national.db(), &m).await;
    let notices = store::notices_after(m.db(), "131016", 0, 100).await.unwrap();
    replica::apply_batch(national.db(), Tier::National, &*verifier(), &notices).await.unwrap();
    let agency = national
        .provider()
        .register_agency(
            &national_operator(),
            "jpki-ca",
            "CA",
            identity::law::AgencyClass::NationalBody,
            &["B1-020"],
            NOW,
        )
        .await
        .unwrap();

    // Refused at start: the primary itself, another database, nothing listening, an SQLite node.
    let e = ReadStandby::connect(&ndb.url, national.db(), Duration::from_secs(1)).await.unwrap_err();
    assert!(e.to_string().contains("not in recovery"), "{e}");
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    let e = ReadStandby::connect(&standby_admin, national.db(), Duration::from_secs(1)).await.unwrap_err();
    assert!(e.to_string().contains("names database postgres"), "{e}");
    let closed = format!("postgres://jpki@127.0.0.1:{}/{name}", common_free_port());
    let e = ReadStandby::connect(&closed, national.db(), Duration::from_secs(1)).await.unwrap_err();
    assert!(e.to_string().contains("cannot connect"), "{e}");
    let sqlite_node = Db::open(&testing::sqlite().unwrap().url).await.unwrap();
    let e =
        ReadStandby::connect(&with_db(&standby_admin, &name), &sqlite_node, Duration::from_secs(1)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid, "{e}");

    // A role without pg_monitor cannot see whether the standby streams: refused.
    let role = format!("reader_{}", &name[7..]);
    // The name is ours (hex), not input: identifiers cannot be bound as parameters.
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE ROLE {role} LOGIN"))).execute(national.db().pool()).await.unwrap();
    let standby_db = standby_of(&standby_admin, &name).await;
    let as_role = with_db(&standby_admin, &name).replace("postgres://jpki@", &format!("postgres://{role}@"));
    let deadline = Instant::now() + Duration::from_secs(30);
    let e = loop {
        // The role reaches the standby once replayed.
        match ReadStandby::connect(&as_role, national.db(), Duration::from_secs(1)).await {
            Err(e) if e.to_string().contains("cannot connect") && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => break other.unwrap_err(),
        }
    };
    assert!(e.to_string().contains("pg_monitor"), "{e}");
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP ROLE {role}"))).execute(national.db().pool()).await.unwrap();
    drop(standby_db);

    // Within the bound (an hour): provisions read the standby.
    let lenient =
        ReadStandby::connect(&with_db(&standby_admin, &name), national.db(), Duration::from_secs(3600)).await.unwrap();
    caught_up(&lenient).await;
    let on_standby = national.clone().with_standby(lenient.clone());
    assert_eq!(address_of(&on_standby, &agency, &code, NOW).await, "東京都千代田区1");

    // Replay paused, then the resident moves: the primary has the new address, the standby not.
    sqlx::query("SELECT pg_wal_replay_pause()").execute(admin.pool()).await.unwrap();
    m.move_within(
        &clerk(),
        &first.body.record.resident_code,
        FlaggedText::plain("address", "東京都千代田区9").unwrap(),
        date("2026-04-02"),
        NOW,
    )
    .await
    .unwrap();
    let notices = store::notices_after(m.db(), "131016", 1, 100).await.unwrap();
    replica::apply_batch(national.db(), Tier::National, &*verifier(), &notices).await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let Lag::Behind(lag) = lenient.lag().await.unwrap() else { panic!("a paused standby is behind") };
    assert!(lag >= 0.5, "paused for 0.6 s, lag {lag}");
    // Within an hour's bound the stale record is what the standby gives: the staleness allowed.
    assert_eq!(address_of(&on_standby, &agency, &code, NOW + 1).await, "東京都千代田区1");
    // A bound of 200 ms is exceeded: the same provision reads the primary.
    let strict =
        ReadStandby::connect(&with_db(&standby_admin, &name), national.db(), Duration::from_millis(200)).await.unwrap();
    let on_strict = national.clone().with_standby(strict);
    assert_eq!(address_of(&on_strict, &agency, &code, NOW + 2).await, "東京都千代田区9");

    // Replay resumed: the standby catches up and gives the new address.
    sqlx::query("SELECT pg_wal_replay_resume()").execute(admin.pool()).await.unwrap();
    caught_up(&lenient).await;
    assert_eq!(address_of(&on_standby, &agency, &code, NOW + 3).await, "東京都千代田区9");

    // Every answer's log row is on the primary (four provisions), none made on the standby.
    let logged: i64 = sqlx::query("SELECT COUNT(*) FROM provision_log WHERE result = 'provided'")
        .fetch_one(national.db().pool())
        .await
        .unwrap()
        .get(0);
    assert_eq!(logged, 4);
    // The standby refuses writes: nothing could have been logged there.
    let ro = sqlx::query("INSERT INTO node_meta (key, value) VALUES ('x', 'y')")
        .execute(lenient.standby().pool())
        .await
        .unwrap_err();
    assert!(ro.to_string().contains("read-only"), "{ro}");
}

/// A port nothing listens on.
fn common_free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}
