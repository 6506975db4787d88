//! `/ui` with a master key: a browser is sent to the login form, an admin key sets the cookie,
//! the cookie opens `/ui` but never `/admin` or `/v1`.

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
    assert_eq!(
        r.headers()["set-cookie"],
        "sluice_key=sk-master-ui; HttpOnly; SameSite=Strict; Path=/ui"
    );
    let cookie = "sluice_key=sk-master-ui";
    let r = c
        .get(s.url("/ui"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("<html"));
    // The cookie is for /ui only.
    let r = c
        .get(s.url("/admin/logs"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = c
        .get(s.url("/v1/models"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
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
