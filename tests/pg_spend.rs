//! Spend on PostgreSQL is stored apart from the log mode, as on SQLite: a `log: off` request
//! reaches the store as a spend-only row that adds its cost to `spend` and writes no request
//! row. Needs `DATABASE_URL` (tests/run.sh, or `eval "$(bash tests/support/pg.sh start)"`);
//! skipped without it unless `SLUICE_REQUIRE_PG=1`.

use sluice::config::LogMode;
use sluice::policy::pii::Detector;
use sluice::store::backend::LogStore;
use sluice::store::record::RequestRecord;
use sluice::store::row;

fn server_url() -> Option<String> {
    match std::env::var("DATABASE_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ if std::env::var("SLUICE_REQUIRE_PG").as_deref() == Ok("1") => {
            panic!("SLUICE_REQUIRE_PG=1 but DATABASE_URL is not set")
        }
        _ => None,
    }
}

/// A new empty database `name` beside the one at `base`; its URL.
fn fresh_db(base: &str, name: &str) -> String {
    let (admin, n) = (base.to_string(), name.to_string());
    std::thread::spawn(move || {
        let mut c = postgres::Client::connect(&admin, postgres::NoTls).unwrap();
        c.batch_execute(&format!("DROP DATABASE IF EXISTS {n} WITH (FORCE)"))
            .unwrap();
        c.batch_execute(&format!("CREATE DATABASE {n}")).unwrap();
    })
    .join()
    .unwrap();
    let (head, _) = base.rsplit_once('/').unwrap();
    format!("{head}/{name}")
}

fn record(id: &str, cost: f64) -> RequestRecord {
    RequestRecord {
        id: id.into(),
        started_ms: 20_000 * 86_400_000 + 5,
        endpoint: "chat",
        requested_model: "m".into(),
        status: 200,
        api_key_id: Some("k1".into()),
        hosting: Some("remote"),
        cost_usd: Some(cost),
        ..Default::default()
    }
}

/// A batch of one logged row ($0.25) and one `log: off` spend-only record ($0.50), key `k1`.
fn logged_and_quiet() -> Vec<sluice::store::backend::PreparedRow> {
    let pii = Detector::new(&Default::default()).unwrap();
    vec![
        row::prepare(&record("logged", 0.25), LogMode::Full, &pii).unwrap(),
        row::prepare(&record("quiet", 0.5), LogMode::Off, &pii).unwrap(),
    ]
}

#[test]
fn log_off_requests_add_spend_without_a_row_on_postgres() {
    let Some(base) = server_url() else { return };
    let url = fresh_db(&base, "t_spend_off");
    // On a plain thread: the PostgreSQL client runs its own runtime.
    std::thread::spawn(move || {
        let mut store = sluice::store::pg::PgStore::connect(&url).unwrap();
        let batch = logged_and_quiet();
        assert_eq!(store.append(&batch).unwrap(), 1);
        let rows = store.all_since(None).unwrap();
        let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["logged"]);
        let spend = store.spend_since(0).unwrap();
        assert_eq!(spend.len(), 1);
        assert_eq!(
            (
                spend[0].key_id.as_str(),
                spend[0].day,
                spend[0].all_usd,
                spend[0].remote_usd
            ),
            ("k1", 20_000, 0.75, 0.75)
        );
        assert!(matches!(
            store.verify().unwrap(),
            sluice::store::chain::Verdict::Ok { rows: 1, .. }
        ));
    })
    .join()
    .unwrap();
}

/// A batch whose commit succeeded but was never acknowledged is written again (retried, or
/// replayed from the spill file): its logged row is recognised by its `row_uid`, and so is
/// its spend-only record, whose cost used to be added a second time. Uids older than 7 days
/// are forgotten.
#[test]
fn a_batch_written_twice_adds_its_log_off_spend_once_on_postgres() {
    let Some(base) = server_url() else { return };
    let url = fresh_db(&base, "t_spend_twice");
    std::thread::spawn(move || {
        let mut store = sluice::store::pg::PgStore::connect(&url).unwrap();
        let batch = logged_and_quiet();
        let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        // A uid from eight days ago (UUIDv7, simple form), as an earlier batch left it.
        let old_ms = sluice::store::now_ms() - 8 * 86_400_000;
        let old = uuid::Builder::from_unix_timestamp_millis(old_ms, &[7; 10])
            .into_uuid()
            .simple()
            .to_string();
        c.execute("INSERT INTO spend_applied (row_uid) VALUES ($1)", &[&old])
            .unwrap();
        assert_eq!(store.append(&batch).unwrap(), 1);
        assert_eq!(store.append(&batch).unwrap(), 0);
        let spend = store.spend_since(0).unwrap();
        assert_eq!(spend.iter().map(|s| s.all_usd).collect::<Vec<_>>(), [0.75]);
        let kept: Vec<String> = c
            .query("SELECT row_uid FROM spend_applied", &[])
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(kept, [batch[1].uid.clone()]);
        assert_eq!(store.all_since(None).unwrap().len(), 1);
    })
    .join()
    .unwrap();
}

/// Rows `r1`..`rN`, row i started at i seconds, prepared in full mode.
fn numbered_rows(n: u64) -> Vec<sluice::store::backend::PreparedRow> {
    let pii = Detector::new(&Default::default()).unwrap();
    (1..=n)
        .map(|i| {
            let r = RequestRecord {
                started_ms: 1_000 * i,
                ..record(&format!("r{i}"), 0.0)
            };
            row::prepare(&r, LogMode::Full, &pii).unwrap()
        })
        .collect()
}

/// Retention on PostgreSQL deletes in chunks (one transaction each, so the chain's lock is
/// held briefly): with chunks of 3, rows 1–7 of 10 go, the anchor is row 7, the chain still
/// verifies, and a second purge finds nothing.
#[test]
fn a_purge_in_chunks_keeps_one_verifiable_chain() {
    let Some(base) = server_url() else { return };
    let url = fresh_db(&base, "t_purge_chunks");
    std::thread::spawn(move || {
        let mut store = sluice::store::pg::PgStore::connect(&url).unwrap();
        let batch = numbered_rows(10);
        assert_eq!(store.append(&batch).unwrap(), 10);
        let p = store.purge_before_in_chunks(8_000, 3).unwrap();
        assert_eq!((p.rows, p.anchor_seq), (7, 7));
        let ids: Vec<String> = store
            .all_since(None)
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(ids, ["r8", "r9", "r10"]);
        assert!(
            matches!(
                store.verify().unwrap(),
                sluice::store::chain::Verdict::Ok {
                    rows: 3,
                    head_seq: 10,
                    ..
                }
            ),
            "the chain verifies after the purge"
        );
        let again = store.purge_before_in_chunks(8_000, 3).unwrap();
        assert_eq!((again.rows, again.anchor_seq), (0, 7));
    })
    .join()
    .unwrap();
}

/// `verify` on PostgreSQL reports the anchor with the head, and names a tampered `chain` row as
/// SQLite does: a head moved back before rows that exist, a changed head hash, an empty table.
#[test]
fn verify_reports_the_anchor_and_names_a_tampered_chain_on_postgres() {
    use sluice::store::chain::Verdict;
    let Some(base) = server_url() else { return };
    let url = fresh_db(&base, "t_verify_tamper");
    std::thread::spawn(move || {
        let mut store = sluice::store::pg::PgStore::connect(&url).unwrap();
        let batch = numbered_rows(4);
        assert_eq!(store.append(&batch).unwrap(), 4);
        let mut sql = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        let hash = |sql: &mut postgres::Client, seq: i64| -> String {
            sql.query_one("SELECT row_hash FROM requests WHERE seq = $1", &[&seq])
                .unwrap()
                .get(0)
        };
        let (h1, h4) = (hash(&mut sql, 1), hash(&mut sql, 4));
        let p = store.purge_before_in_chunks(2_000, 10).unwrap();
        assert_eq!((p.rows, p.anchor_seq, p.anchor_hash.clone()), (1, 1, h1.clone()));
        assert_eq!(
            store.verify().unwrap(),
            Verdict::Ok {
                rows: 3,
                head_seq: 4,
                head_hash: h4.clone(),
                anchor_seq: 1,
                anchor_hash: h1,
            }
        );
        sql.batch_execute("UPDATE chain SET head_seq = 3").unwrap();
        assert_eq!(
            store.verify().unwrap(),
            Verdict::Broken {
                seq: 4,
                reason: "rows 4..4 lie after the head the chain table records, row 3 (the head was moved back)".into()
            }
        );
        sql.batch_execute("UPDATE chain SET head_seq = 4, head_hash = repeat('0', 64)")
            .unwrap();
        assert_eq!(
            store.verify().unwrap(),
            Verdict::Broken {
                seq: 4,
                reason: "the head's hash does not match the hash of row 4, the last row (the head was changed)".into()
            }
        );
        sql.batch_execute("DELETE FROM chain").unwrap();
        assert_eq!(
            store.verify().unwrap(),
            Verdict::Broken {
                seq: 0,
                reason: sluice::store::chain::NO_CHAIN_ROW.into()
            }
        );
    })
    .join()
    .unwrap();
}
