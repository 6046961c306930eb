//! Migration 1013 (issue 14, docs/scale-identity.md): on PostgreSQL a populated `resident` and
//! `provision_log` are converted into partitioned tables (hash of the resident code; JST months
//! with a default partition) without losing or changing a row; the month partitions are made
//! ahead and a row that landed in the default partition moves into its month when that is
//! made. On SQLite the migration changes nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

use std::collections::BTreeMap;

use identity::store::{self, Backend, Db, SCHEMA, testing};
use sqlx::Row;
use sqlx::migrate::Migrator;

/// 2025-03-31 23:30 JST (still March in Japan, already March 31 14:30 UTC).
const MARCH_2025_LATE: i64 = 1_743_431_400;
/// 2025-04-01 00:30 JST (April in Japan, still March 31 in UTC).
const APRIL_2025_EARLY: i64 = 1_743_435_000;
/// 2026-04-10 (fiscal year 2026).
const APRIL_2026: i64 = 1_775_800_000;
/// 2031-01-15: far beyond the months made ahead.
const JANUARY_2031: i64 = 1_926_000_000;

/// The identity migrations before 1013, as a database migrated by the previous release has them.
fn before_1013(all: &'static Migrator) -> Migrator {
    let mut m = Migrator::with_migrations(all.iter().filter(|m| m.version < 1013).cloned().collect());
    m.set_ignore_missing(true);
    m
}

async fn populate(db: &Db, residents: usize, logs: &[i64]) {
    for i in 0..residents {
        sqlx::query(
            "INSERT INTO resident (resident_code, municipality, status, version, name, date_of_birth, sex, address, record, last_source, last_seq)
             VALUES ($1, '131016', 1, 1, $2, '1980-05-05', 1, '東京都千代田区1', $3, '131016', $4)",
        )
        .bind(format!("{:011}", 20_000_000_000_u64 + i as u64))
        .bind(format!("住民　{i}"))
        .bind(vec![u8::try_from(i % 256).unwrap(); 8])
        .bind(i64::try_from(i).unwrap() + 1)
        .execute(db.pool())
        .await
        .unwrap();
    }
    for (i, at) in logs.iter().enumerate() {
        sqlx::query(
            "INSERT INTO provision_log (at, fiscal_year, function, purpose, provision_class, source, destination, resident_code, fields, result, reason)
             VALUES ($1, 2025, '照会(住民票コード)', 'B1-020', '別表第1', '全国サーバ', $2, NULL, 'name', 'provided', NULL)",
        )
        .bind(*at)
        .bind(format!("agency-{i}"))
        .execute(db.pool())
        .await
        .unwrap();
    }
}

/// Every row of both tables, for comparing before and after.
async fn snapshot(db: &Db) -> (BTreeMap<String, (String, i64, Vec<u8>)>, BTreeMap<i64, (i64, String)>) {
    let residents = sqlx::query("SELECT resident_code, name, last_seq, record FROM resident")
        .fetch_all(db.pool())
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2), r.get(3))))
        .collect();
    let logs = sqlx::query("SELECT id, at, destination FROM provision_log")
        .fetch_all(db.pool())
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect();
    (residents, logs)
}

/// Which partition holds the provision-log row of `destination`.
async fn partition_of(db: &Db, destination: &str) -> String {
    sqlx::query("SELECT tableoid::regclass::TEXT FROM provision_log WHERE destination = $1")
        .bind(destination)
        .fetch_one(db.pool())
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn a_populated_database_is_converted_to_partitions_without_losing_a_row() {
    for t in testing::all().await.unwrap() {
        let db = Db::connect(&t.url).await.unwrap();
        let pick = match db.backend() {
            Backend::Sqlite => SCHEMA.sqlite,
            Backend::Postgres => SCHEMA.postgres,
        };
        before_1013(pick).run(db.pool()).await.unwrap();
        populate(&db, 40, &[MARCH_2025_LATE, APRIL_2025_EARLY, APRIL_2026, APRIL_2026 + 1]).await;
        let before = snapshot(&db).await;
        db.migrate(&SCHEMA).await.unwrap();
        let after = snapshot(&db).await;
        assert_eq!(before, after, "{}: rows changed by the conversion", t.label);
        assert_eq!(after.0.len(), 40);
        // The primary key still holds: a resident code is unique across every partition.
        let dup = sqlx::query(
            "INSERT INTO resident (resident_code, municipality, status, version, name, date_of_birth, sex, address, record, last_source, last_seq)
             SELECT resident_code, '271004', status, version, name, date_of_birth, sex, address, record, '271004', 1 FROM resident LIMIT 1",
        )
        .execute(db.pool())
        .await
        .unwrap_err();
        assert!(dup.as_database_error().is_some_and(|e| e.is_unique_violation()), "{}: {dup}", t.label);
        // The log's ids continue after the converted ones.
        populate(&db, 0, &[APRIL_2026 + 2]).await;
        let max_before = *before.1.keys().max().unwrap();
        let newest: i64 = sqlx::query("SELECT id FROM provision_log WHERE at = $1")
            .bind(APRIL_2026 + 2)
            .fetch_one(db.pool())
            .await
            .unwrap()
            .get(0);
        assert!(newest > max_before, "{}: id {newest} after {max_before}", t.label);

        if db.backend() == Backend::Sqlite {
            assert_eq!(store::ensure_partitions(&db, APRIL_2026).await.unwrap(), 0);
            continue;
        }
        // Partitions: 16 of the projection, used by the rows; the log's by JST month.
        let used: i64 =
            sqlx::query("SELECT COUNT(DISTINCT tableoid) FROM resident").fetch_one(db.pool()).await.unwrap().get(0);
        assert!(used > 8, "40 residents spread over the 16 hash partitions, got {used}");
        assert_eq!(partition_of(&db, "agency-0").await, "provision_log_y2025m03", "23:30 JST on March 31 is March");
        assert_eq!(partition_of(&db, "agency-1").await, "provision_log_y2025m04", "00:30 JST on April 1 is April");
        assert_eq!(partition_of(&db, "agency-2").await, "provision_log_y2026m04");
        // A row far beyond the months made ahead is still written, into the default partition.
        populate(&db, 0, &[JANUARY_2031]).await;
        assert_eq!(partition_of(&db, "agency-0").await, "provision_log_y2025m03");
        let far: String = sqlx::query("SELECT tableoid::regclass::TEXT FROM provision_log WHERE at = $1")
            .bind(JANUARY_2031)
            .fetch_one(db.pool())
            .await
            .unwrap()
            .get(0);
        assert_eq!(far, "provision_log_default");
        // Making that month (from a node's keeper) moves the row out of the default partition.
        let made = store::ensure_partitions(&db, JANUARY_2031).await.unwrap();
        assert_eq!(made, 4, "January to April 2031");
        let moved: String = sqlx::query("SELECT tableoid::regclass::TEXT FROM provision_log WHERE at = $1")
            .bind(JANUARY_2031)
            .fetch_one(db.pool())
            .await
            .unwrap()
            .get(0);
        assert_eq!(moved, "provision_log_y2031m01");
        assert_eq!(store::ensure_partitions(&db, JANUARY_2031).await.unwrap(), 0, "idempotent");
        // Nothing lost by the move, and the index works on the moved row's partition.
        let all = snapshot(&db).await;
        assert_eq!(all.1.len(), before.1.len() + 2);
        let by_resident: i64 = sqlx::query("SELECT COUNT(*) FROM provision_log WHERE resident_code IS NULL")
            .fetch_one(db.pool())
            .await
            .unwrap()
            .get(0);
        assert_eq!(by_resident, i64::try_from(all.1.len()).unwrap());
        // A reversed range is refused, not silently empty.
        let err = sqlx::query("SELECT provision_log_ensure_months($1, $2)")
            .bind(APRIL_2026)
            .bind(MARCH_2025_LATE)
            .fetch_one(db.pool())
            .await
            .map(drop)
            .unwrap_err();
        assert!(err.to_string().contains("is before"), "{err}");
        // The tables list names the partitioned tables, not their partitions.
        let tables = testing::tables(&db).await.unwrap();
        assert!(tables.contains("resident") && tables.contains("provision_log"));
        assert!(!tables.iter().any(|t| t.starts_with("resident_h") || t.starts_with("provision_log_")), "{tables:?}");
        db.close().await;
    }
}
