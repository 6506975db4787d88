//! TLS to the PostgreSQL log, with libpq's `sslmode` and `sslrootcert` meanings: the server
//! (tests/support/pg.sh) offers TLS with a certificate for `localhost` only, signed by a
//! throwaway CA (`SLUICE_PG_CA`); `SLUICE_PG_OTHER_CA` signed nothing of it. Whether a
//! store's connection is encrypted is read on the server (`pg_stat_ssl`), not assumed.
//! Needs `DATABASE_URL` (tests/run.sh, or `eval "$(bash tests/support/pg.sh start)"`); skipped
//! without it unless `SLUICE_REQUIRE_PG=1`.

#[path = "support/pg_db.rs"]
mod pg_db;

use pg_db::{fresh_db, server_url, with_pg};
use sluice::store::pg::PgStore;

/// The two CA files pg.sh made.
fn cas() -> (String, String) {
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} not set (pg.sh sets it)"));
    (var("SLUICE_PG_CA"), var("SLUICE_PG_OTHER_CA"))
}

/// Connects a store to `db_url` with `params` added; `Ok(encrypted)` read on the server while
/// the store's connection is open, or the connect error's text.
fn connect(admin: &str, db_url: &str, params: &str) -> Result<bool, String> {
    let url = format!("{db_url}?{params}");
    let db = db_url.rsplit('/').next().unwrap_or_default().to_string();
    let store = std::thread::spawn(move || PgStore::connect(&url).map_err(|e| e.to_string()))
        .join()
        .unwrap()?;
    let name = db.clone();
    let encrypted = with_pg(admin, move |c| {
        c.query_one(
            "SELECT bool_and(s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
             WHERE a.datname = $1 AND a.application_name = 'sluice'",
            &[&name],
        )
        .unwrap()
        .get::<_, Option<bool>>(0)
    });
    std::thread::spawn(move || drop(store)).join().unwrap();
    // The next case reads this database's `sluice` backends again: wait (bounded) until this
    // one's has left.
    let t = std::time::Instant::now();
    while backends(admin, &db) > 0 {
        assert!(
            t.elapsed().as_secs() < 10,
            "the store's backend did not leave"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Ok(encrypted.expect("the store's connection is on the server"))
}

/// The `sluice` backends connected to database `db`.
fn backends(admin: &str, db: &str) -> i64 {
    let db = db.to_string();
    with_pg(admin, move |c| {
        c.query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND application_name = 'sluice'",
            &[&db],
        )
        .unwrap()
        .get(0)
    })
}

#[test]
fn sslmode_and_sslrootcert_mean_what_they_mean_in_libpq() {
    let Some(admin) = server_url() else { return };
    let (ca, other) = cas();
    let by_ip = fresh_db(&admin, "sluice_tls");
    let by_name = by_ip.replace("127.0.0.1", "localhost");
    let ok = |url: &str, params: &str| -> bool {
        connect(&admin, url, params).unwrap_or_else(|e| panic!("{params}: {e}"))
    };
    let err = |url: &str, params: &str| -> String {
        match connect(&admin, url, params) {
            Ok(tls) => panic!("{params}: connected (encrypted: {tls}), expected an error"),
            Err(e) => e,
        }
    };
    // No sslmode is libpq's `prefer`: encrypted when the server offers it, nothing checked.
    assert!(ok(&by_ip, "application_name=sluice"));
    assert!(!ok(&by_ip, "sslmode=disable"));
    assert!(ok(&by_ip, "sslmode=require"));
    // `verify-full`: the chain and the name. The certificate names `localhost`, not the IP.
    assert!(ok(
        &by_name,
        &format!("sslmode=verify-full&sslrootcert={ca}")
    ));
    let e = err(&by_ip, &format!("sslmode=verify-full&sslrootcert={ca}"));
    assert!(
        e.contains("certificate not valid for name \"127.0.0.1\""),
        "{e}"
    );
    // `verify-ca`: the chain only.
    assert!(ok(&by_ip, &format!("sslmode=verify-ca&sslrootcert={ca}")));
    // A CA that signed nothing of it: refused by every checking mode, `require` with a root
    // file included (libpq checks the chain then).
    for mode in ["verify-full", "verify-ca", "require"] {
        let e = err(&by_name, &format!("sslmode={mode}&sslrootcert={other}"));
        assert!(e.contains("UnknownIssuer"), "{mode}: {e}");
    }
    // The platform's store does not know the throwaway CA either; `sslrootcert=system`
    // alone means verify-full against it (libpq's rule), so it is refused too.
    for params in ["sslmode=verify-full", "sslrootcert=system"] {
        let e = err(&by_name, params);
        assert!(e.contains("UnknownIssuer"), "{params}: {e}");
    }
    // Checks weaker than they look are refused before connecting.
    let e = err(&by_name, "sslmode=require&sslrootcert=system");
    assert!(
        e.contains("sslrootcert=system needs sslmode=verify-full"),
        "{e}"
    );
    let e = err(&by_ip, "sslmode=verify-ca");
    assert!(
        e.contains("sslmode=verify-ca needs sslrootcert=FILE"),
        "{e}"
    );
    // `prefer` checks nothing, with a root file or not (libpq's meaning).
    assert!(ok(&by_name, &format!("sslmode=prefer&sslrootcert={other}")));
}

/// `sluice check` says when the log would cross a network to a server whose certificate is not
/// checked against its name, and stays quiet with `verify-full` (it connects to nothing).
#[test]
fn check_warns_when_the_log_crosses_a_network_unchecked() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.yaml");
    let run = |url: &str| {
        std::fs::write(
            &file,
            format!(
                "deployments:\n  - name: up\n    provider: openai\n    base_url: http://127.0.0.1:9/v1\n    model: m\nmodels:\n  - name: default\n    deployments: [up]\nlog:\n  backend: postgres\n  url: {url}\n"
            ),
        )
        .unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["check", "--config"])
            .arg(&file)
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = run("postgres://sluice:secret@db.example:5432/log?sslmode=require");
    assert_eq!(
        err,
        "warning: log.url: prompts and answers go to db.example without its certificate \
         checked against its name (no certificate check); add sslmode=verify-full (and \
         sslrootcert=FILE for a private CA)\n"
    );
    assert_eq!(
        run("postgres://sluice:secret@db.example:5432/log?sslmode=verify-full"),
        ""
    );
}
