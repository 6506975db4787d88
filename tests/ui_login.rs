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
    let get_with_cookie = |path: &str, cookie: &'static str| {
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
    assert_eq!(
        r.headers()["set-cookie"],
        "sluice_key=sk-master-ui; HttpOnly; SameSite=Strict; Path=/ui"
    );
    let cookie = "sluice_key=sk-master-ui";
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
