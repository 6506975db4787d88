//! `/ui` with a master key: a browser is sent to the login form, an admin key starts a session
//! (a random token in the cookie, never the key), the cookie opens `/ui` but never `/admin` or
//! `/v1`; sessions expire, end at logout and with their key; failed logins are throttled.

mod support;

use support::*;

#[tokio::test]
async fn browser_login_with_a_cookie_for_ui_only() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "server:\n  master_key: sk-master-ui\nlog:\n  path: {}\nkeys:\n  - name: plain\n    key: sk-plain\n",
        dir.path().join("ui.db").display()
    );
    let s = Sluice::start_logged(&yaml).await;
    let get_with_cookie = |path: &str, cookie: &str| {
        reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .get(s.url(path))
            .header("cookie", cookie)
            .send()
    };
    let c = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    let r = c.get(s.url("/ui")).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/ui/login");
    let form = c
        .get(s.url("/ui/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(form.contains(r#"<input type="password" name="key""#));

    let r = c
        .post(s.url("/ui/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("key=sk-plain")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.headers().get("set-cookie").is_none());
    let r = c
        .post(s.url("/ui/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("key=sk-wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    let r = c
        .post(s.url("/ui/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("key=sk-master-ui")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/ui");
    let set = r.headers()["set-cookie"].to_str().unwrap().to_string();
    let token = session_of(&set);
    assert_eq!(
        set,
        format!("sluice_session={token}; HttpOnly; SameSite=Strict; Path=/ui; Max-Age=28800")
    );
    assert!(
        !set.contains("sk-master-ui"),
        "the key is never in the cookie"
    );
    let cookie = format!("sluice_session={token}");
    let cookie = cookie.as_str();
    // The old cookie carrying the key itself opens nothing.
    let r = get_with_cookie("/ui", "sluice_key=sk-master-ui")
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let r = get_with_cookie("/ui", "sluice_session=sk-master-ui")
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let r = get_with_cookie("/ui", cookie).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("<html"));
    // The cookie is for /ui only.
    let r = get_with_cookie("/admin/logs", cookie).await.unwrap();
    assert_eq!(r.status(), 401);
    let r = get_with_cookie("/v1/models", cookie).await.unwrap();
    assert_eq!(r.status(), 401);
    // A form without `key` gets the OpenAI error shape, not a bare 422.
    let r = c
        .post(s.url("/ui/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("nokey=1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["error"]["param"],
        "key"
    );
    // An API client with a wrong key header gets the JSON error, not a redirect.
    let r = c
        .get(s.url("/ui"))
        .bearer_auth("sk-wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    s.stop().await;
}

/// The token of a `Set-Cookie: sluice_session=TOKEN; …` value (64 hex digits).
fn session_of(set_cookie: &str) -> String {
    let token = set_cookie
        .strip_prefix("sluice_session=")
        .and_then(|r| r.split(';').next())
        .unwrap()
        .to_string();
    assert_eq!(token.len(), 64, "{set_cookie}");
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
    token
}

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn log_in(s: &Sluice, key: &str) -> reqwest::Response {
    browser()
        .post(s.url("/ui/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("key={key}"))
        .send()
        .await
        .unwrap()
}

async fn ui_status(s: &Sluice, token: &str) -> u16 {
    browser()
        .get(s.url("/ui"))
        .header("cookie", format!("sluice_session={token}"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn logged_config(dir: &tempfile::TempDir, extra: &str) -> String {
    format!(
        "server:\n  master_key: sk-master-ui\n{extra}log:\n  path: {}\n",
        dir.path().join("ui.db").display()
    )
}

#[tokio::test]
async fn sessions_end_at_logout_with_their_key_and_when_they_expire() {
    let dir = tempfile::tempdir().unwrap();
    let s = Sluice::start_logged(&logged_config(&dir, "  ui_session_ttl_s: 1\n")).await;
    // An admin key made through the admin API, logged in, then revoked.
    let r = client()
        .post(s.url("/admin/keys"))
        .bearer_auth("sk-master-ui")
        .json(&serde_json::json!({"name":"ops","admin":true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: serde_json::Value = r.json().await.unwrap();
    let (id, secret) = (v["id"].as_str().unwrap(), v["secret"].as_str().unwrap());
    let r = log_in(&s, secret).await;
    assert_eq!(r.status(), 303);
    let set = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(set.ends_with("; Max-Age=1"), "{set}");
    let ops = session_of(&set);
    assert_eq!(ui_status(&s, &ops).await, 200);
    let r = client()
        .delete(s.url(&format!("/admin/keys/{id}")))
        .bearer_auth("sk-master-ui")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(ui_status(&s, &ops).await, 303, "the key was revoked");

    // Logout ends the session on the server, whatever the browser keeps.
    let master = session_of(
        log_in(&s, "sk-master-ui").await.headers()["set-cookie"]
            .to_str()
            .unwrap(),
    );
    let r = browser()
        .post(s.url("/ui/logout"))
        .header("cookie", format!("sluice_session={master}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(
        r.headers()["set-cookie"],
        "sluice_session=; HttpOnly; SameSite=Strict; Path=/ui; Max-Age=0"
    );
    assert_eq!(ui_status(&s, &master).await, 303);

    // A session expires after `server.ui_session_ttl_s` (1 s here): polled, at most 5 s.
    let short = session_of(
        log_in(&s, "sk-master-ui").await.headers()["set-cookie"]
            .to_str()
            .unwrap(),
    );
    let started = std::time::Instant::now();
    assert_eq!(ui_status(&s, &short).await, 200);
    while ui_status(&s, &short).await == 200 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "never expired"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(started.elapsed() >= std::time::Duration::from_millis(900));
    s.stop().await;
}

#[tokio::test]
async fn behind_tls_the_cookie_is_secure() {
    let dir = tempfile::tempdir().unwrap();
    let s = Sluice::start_logged(&logged_config(&dir, "")).await;
    let r = browser()
        .post(s.url("/ui/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-forwarded-proto", "https")
        .body("key=sk-master-ui")
        .send()
        .await
        .unwrap();
    let set = r.headers()["set-cookie"].to_str().unwrap();
    assert!(set.ends_with("; Max-Age=28800; Secure"), "{set}");
    s.stop().await;
}

#[tokio::test]
async fn five_failed_logins_a_minute_then_429_even_for_the_right_key() {
    let dir = tempfile::tempdir().unwrap();
    let s = Sluice::start_logged(&logged_config(&dir, "")).await;
    for i in 0..5 {
        assert_eq!(
            log_in(&s, &format!("sk-guess-{i}")).await.status(),
            401,
            "try {i}"
        );
    }
    let r = log_in(&s, "sk-master-ui").await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().get("set-cookie").is_none());
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let e: serde_json::Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "login_throttled");
    // Only the login form is throttled: the master key still works as a header.
    let r = client()
        .get(s.url("/admin/keys"))
        .bearer_auth("sk-master-ui")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    s.stop().await;
}
