//! The shared PostgreSQL server of the tests (`DATABASE_URL`, started by tests/run.sh through
//! tests/support/pg.sh): a fresh database per test and small synchronous queries on it.
//! Without `DATABASE_URL` a test says so and passes, unless `SLUICE_REQUIRE_PG=1` (tests/run.sh
//! and CI set it): then it fails.
#![allow(dead_code)]

/// The shared server's URL, or `None` (test skipped) when there is none and it is not
/// required.
pub fn server_url() -> Option<String> {
    match std::env::var("DATABASE_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ if std::env::var("SLUICE_REQUIRE_PG").as_deref() == Ok("1") => {
            panic!(
                "SLUICE_REQUIRE_PG=1 but DATABASE_URL is not set (tests/run.sh starts PostgreSQL)"
            )
        }
        _ => {
            eprintln!(
                "DATABASE_URL not set: PostgreSQL tests not run here (tests/run.sh runs them)"
            );
            None
        }
    }
}

/// Runs `f` with a client on a plain thread (the sync client must not run on the test's
/// runtime).
pub fn with_pg<T: Send + 'static>(
    url: &str,
    f: impl FnOnce(&mut postgres::Client) -> T + Send + 'static,
) -> T {
    let url = url.to_string();
    std::thread::spawn(move || {
        let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        f(&mut c)
    })
    .join()
    .unwrap()
}

/// A new empty database `name` on the server at `base`; its URL.
pub fn fresh_db(base: &str, name: &str) -> String {
    let n = name.to_string();
    with_pg(base, move |c| {
        c.batch_execute(&format!("DROP DATABASE IF EXISTS {n} WITH (FORCE)"))
            .unwrap();
        c.batch_execute(&format!("CREATE DATABASE {n}")).unwrap();
    });
    let (head, _) = base.rsplit_once('/').unwrap();
    format!("{head}/{name}")
}

/// The one BIGINT `sql` returns.
pub fn count(url: &str, sql: &str) -> i64 {
    let sql = sql.to_string();
    with_pg(url, move |c| c.query_one(&sql, &[]).unwrap().get(0))
}
