//! The log commands on a fixed database: exact output of `sluice logs`, `show`, `usage`,
//! `export`, `purge` and `log verify`, run as the real binary.

use serde_json::json;
use sluice::api::Usage;
use sluice::api::summary::ResponseSummary;
use sluice::config::LogMode;
use sluice::store::record::RequestRecord;
use std::path::Path;
use std::process::Command;

const T0: u64 = 1_793_523_600_000; // 2026-11-01 09:00:00 UTC

/// Four requests: a local chat, a remote stream, an upstream failure, a client disconnect.
pub fn fixed_records() -> Vec<RequestRecord> {
    let base = |id: &str, min: u64| RequestRecord {
        id: id.into(),
        started_ms: T0 + min * 60_000,
        endpoint: "chat.completions",
        attempts: 1,
        client_ip: Some("127.0.0.1".into()),
        ..Default::default()
    };
    let resp = |text: &str, finish: &str| ResponseSummary {
        content: text.into(),
        finish_reason: Some(finish.into()),
        ..Default::default()
    };
    vec![
        RequestRecord {
            duration_ms: 840,
            requested_model: "default".into(),
            deployment: Some("gemma-local".into()),
            provider: Some("openai"),
            hosting: Some("local"),
            openness: Some("open-weight"),
            status: 200,
            usage: Usage::new(12, 30),
            response: resp("Anna runs a café.", "stop"),
            end_user: Some("anna".into()),
            sampling: Some(json!({"temperature": 0.0, "seed": 7})),
            deterministic: true,
            request_body: Some(
                serde_json::value::to_raw_value(&json!({"model":"default","messages":[
                {"role":"system","content":"Be brief."},
                {"role":"user","content":"Who is Anna?"}]}))
                .unwrap(),
            ),
            ..base("req-a", 0)
        },
        RequestRecord {
            duration_ms: 1500,
            ttft_ms: Some(200),
            requested_model: "gpt".into(),
            deployment: Some("openai-gpt".into()),
            provider: Some("openai"),
            hosting: Some("remote"),
            openness: Some("api"),
            status: 200,
            stream: true,
            usage: Usage::new(100, 50),
            cost_usd: Some(0.00125),
            api_key_id: Some("team-a".into()),
            policies: vec!["eu-only".into()],
            pii_kinds: vec!["email".into()],
            response: resp("Hello there", "stop"),
            request_body: Some(
                serde_json::value::to_raw_value(&json!({"model":"gpt","stream":true,"messages":[
                {"role":"user","content":"Say hello"}]}))
                .unwrap(),
            ),
            ..base("req-b", 5)
        },
        RequestRecord {
            duration_ms: 30,
            requested_model: "default".into(),
            deployment: Some("gemma-local".into()),
            provider: Some("openai"),
            hosting: Some("local"),
            openness: Some("open-weight"),
            status: 502,
            error_type: Some("server_error".into()),
            error_message: Some("deployment `gemma-local` is unreachable".into()),
            request_body: Some(
                serde_json::value::to_raw_value(&json!({"model":"default","messages":[
                {"role":"user","content":"ping"}]}))
                .unwrap(),
            ),
            ..base("req-c", 10)
        },
        RequestRecord {
            duration_ms: 12500,
            ttft_ms: Some(900),
            requested_model: "gpt".into(),
            deployment: Some("openai-gpt".into()),
            provider: Some("openai"),
            hosting: Some("remote"),
            openness: Some("api"),
            status: 499,
            stream: true,
            error_type: Some("client_closed".into()),
            usage: Usage::new(8, 3),
            usage_estimated: true,
            cost_usd: Some(0.0001),
            api_key_id: Some("team-a".into()),
            response: resp("Once upon", "length"),
            log_mode: Some("metadata".into()),
            ..base("req-d", 15)
        },
    ]
}

fn make_db(path: &Path) {
    let mut conn = sluice::store::open(path).unwrap();
    let pii = sluice::policy::pii::Detector::new(&Default::default()).unwrap();
    let rows: Vec<Box<RequestRecord>> = fixed_records().into_iter().map(Box::new).collect();
    let n = sluice::store::writer::write_batch(&mut conn, &rows, LogMode::Full, &pii).unwrap();
    assert_eq!(n, 4);
}

fn sluice(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .env_remove("SLUICE_CONFIG")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn fixture() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    make_db(&db);
    let d = db.to_str().unwrap().to_string();
    (dir, d)
}

#[test]
fn logs_prints_the_table_newest_first_and_filters() {
    let (_dir, d) = fixture();
    let (code, out, _) = sluice(&["logs", "--db", &d]);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "\
TIME (UTC)           MODEL → DEPLOYMENT     HOSTING/TIER       STATUS  TOKENS       COST  LATENCY  ID
2026-11-01 09:15:00  gpt → openai-gpt       remote/api            499   ~8/~3  $0.000100    12.5s  req-d
2026-11-01 09:10:00  default → gemma-local  local/open-weight     502     0/0          -     30ms  req-c
2026-11-01 09:05:00  gpt → openai-gpt       remote/api            200  100/50  $0.001250   1500ms  req-b
2026-11-01 09:00:00  default → gemma-local  local/open-weight     200   12/30          -    840ms  req-a
"
    );
    let ids = |args: &[&str]| -> Vec<String> {
        let mut a = vec!["logs", "--db", &d, "--json"];
        a.extend_from_slice(args);
        let (code, out, err) = sluice(&a);
        assert_eq!(code, 0, "{err}");
        out.lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    };
    assert_eq!(ids(&["--status", "error"]), ["req-d", "req-c"]);
    assert_eq!(ids(&["--status", "ok"]), ["req-b", "req-a"]);
    assert_eq!(ids(&["--status", "502"]), ["req-c"]);
    assert_eq!(ids(&["--model", "gpt"]), ["req-d", "req-b"]);
    assert_eq!(ids(&["--deployment", "gemma-local"]), ["req-c", "req-a"]);
    assert_eq!(ids(&["--key", "team-a"]), ["req-d", "req-b"]);
    assert_eq!(ids(&["--grep", "WHO IS ANNA"]), ["req-a"]);
    assert_eq!(ids(&["--grep", "unreachable"]), ["req-c"]);
    assert_eq!(
        ids(&["--since", "2026-11-01T09:05:00Z"]),
        ["req-d", "req-c", "req-b"]
    );
    assert_eq!(ids(&["--limit", "1"]), ["req-d"]);
    let (_, out, _) = sluice(&[
        "logs", "--db", &d, "--json", "--limit", "1", "--model", "default",
    ]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["request_body"]["messages"][0]["content"], "ping");
    assert_eq!(v["status"], 502);
    assert_eq!(v["policies"], json!([]));
    let (code, _, err) = sluice(&["logs", "--db", &d, "--status", "maybe"]);
    assert_eq!(
        (code, err.as_str()),
        (
            2,
            "error: bad status `maybe`: use ok, error or a status code such as 502\n"
        )
    );
}

#[test]
fn show_prints_one_request_in_full() {
    let (_dir, d) = fixture();
    let (code, out, _) = sluice(&["show", "req-a", "--db", &d]);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "\
request       req-a (row 1)
endpoint      chat.completions
model         default → gemma-local
provider      openai
hosting       local
openness      open-weight
status        200
stream        no
finish        stop
tokens        12 in, 30 out, 42 total
cost          -
started       2026-11-01 09:00:00 UTC
duration      840ms
first token   -
attempts      1
key           -
user          anna
client        127.0.0.1
policies      -
pii           -
sampling      {\"temperature\":0.0,\"seed\":7}
deterministic yes
log mode      full
row hash      a177bdfca6c1a3fef38510966a280a262106990eb2bc09938a1700574cd9e06a

--- prompt
system: Be brief.
user: Who is Anna?

--- response
Anna runs a café.
"
    );
    let (_, out, _) = sluice(&["show", "4", "--db", &d]);
    assert!(out.starts_with("request       req-d (row 4)\n"), "{out}");
    assert!(out.contains("status        499 client_closed\n"));
    assert!(out.contains("tokens        8 in, 3 out, 11 total (estimated)\n"));
    assert!(out.contains("first token   900ms\n"));
    assert!(out.ends_with(
        "--- prompt\n(not kept: log mode metadata)\n\n--- response\n(not kept: log mode metadata)\n"
    ));
    let (_, out, _) = sluice(&["show", "req-b", "--db", &d]);
    assert!(
        out.contains("policies      eu-only\npii           email\n"),
        "{out}"
    );
    let (code, _, err) = sluice(&["show", "req-zzz", "--db", &d]);
    assert_eq!(
        (code, err.as_str()),
        (1, "error: no request `req-zzz` in the log\n")
    );
}

#[test]
fn usage_groups_and_totals() {
    let (_dir, d) = fixture();
    let (code, out, _) = sluice(&["usage", "--db", &d]);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "\
MODEL    REQUESTS  ERRORS  TOKENS IN  TOKENS OUT       COST     P50    P95   LOCAL
gpt             2       1        108          53  $0.001350  1500ms  12.5s    0.0%
default         2       1         12          30  $0.000000    30ms  840ms  100.0%
total           4       2        120          83  $0.001350   840ms  12.5s   20.7%

20.7% of tokens stayed local (42 of 203).
"
    );
    let (_, out, _) = sluice(&["usage", "--db", &d, "--by", "day", "--since", "2026-10-01"]);
    assert_eq!(
        out,
        "\
DAY         REQUESTS  ERRORS  TOKENS IN  TOKENS OUT       COST    P50    P95  LOCAL
2026-11-01         4       2        120          83  $0.001350  840ms  12.5s  20.7%
total              4       2        120          83  $0.001350  840ms  12.5s  20.7%

20.7% of tokens stayed local (42 of 203).
"
    );
    let (_, out, _) = sluice(&["usage", "--db", &d, "--by", "key", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["by"], "key");
    assert_eq!(v["groups"][0]["key"], "team-a");
    assert_eq!(v["groups"][0]["prompt_tokens"], 108);
    assert_eq!(v["groups"][1]["key"], "-");
    assert_eq!(v["total"]["requests"], 4);
    assert_eq!(v["total"]["local_tokens"], 42);
}

#[test]
fn export_writes_csv_and_jsonl() {
    let (dir, d) = fixture();
    let out_path = dir.path().join("out.csv");
    let (code, _, err) = sluice(&[
        "export",
        "--db",
        &d,
        "--format",
        "csv",
        "--out",
        out_path.to_str().unwrap(),
    ]);
    assert_eq!(code, 0);
    assert_eq!(
        err,
        format!("exported 4 requests to {}\n", out_path.display())
    );
    let csv = std::fs::read_to_string(&out_path).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 5);
    assert_eq!(
        lines[0],
        "seq,id,started_ms,duration_ms,ttft_ms,endpoint,requested_model,deployment,provider,hosting,openness,policies,pii_kinds,api_key_id,end_user,client_ip,status,error_type,error_message,stream,finish_reason,prompt_tokens,completion_tokens,total_tokens,usage_estimated,cost_usd,sampling,attempts,log_mode,request_body,response_model,response_content,response_tool_calls,prev_hash,row_hash"
    );
    assert_eq!(
        lines[4],
        "4,req-d,1793524500000,12500,900,chat.completions,gpt,openai-gpt,openai,remote,api,[],[],team-a,,127.0.0.1,499,client_closed,,true,length,8,3,11,true,0.0001,,1,metadata,,,,,7abd31950ebc0b364f56f5eac117f1bbff9e828d11a6e960a556dbfc7b787c93,df9666dc87523405f1ff259534872dc1253a564cbb0e5d578a297bd1580a8ac9"
    );
    let (_, out, _) = sluice(&[
        "export",
        "--db",
        &d,
        "--format",
        "jsonl",
        "--since",
        "2026-11-01T09:10:00Z",
    ]);
    let ids: Vec<String> = out
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(ids, ["req-c", "req-d"]);
    let (code, _, err) = sluice(&["export", "--db", &d, "--format", "xml"]);
    assert_eq!(
        (code, err.as_str()),
        (2, "error: bad format `xml`: use jsonl or csv\n")
    );
}

#[test]
fn verify_and_purge_keep_the_chain_whole() {
    let (_dir, d) = fixture();
    let (code, out, _) = sluice(&["log", "verify", "--db", &d]);
    assert_eq!(
        (code, out.as_str()),
        (
            0,
            "OK: 4 rows verified; head row 4, hash df9666dc87523405f1ff259534872dc1253a564cbb0e5d578a297bd1580a8ac9\n\
             anchor: row 0, hash 0000000000000000000000000000000000000000000000000000000000000000 (no row was ever deleted)\n"
        )
    );
    let anchor = "anchor: row 2, hash a1953234a1fa1659c6a318dc9b87b3892896cb3f6ea8bdee2ecb98c6832d44b5 (rows 1..2 were deleted by retention or purge)\n";
    let (code, out, _) = sluice(&["purge", "--db", &d, "--before", "2026-11-01T09:07:00Z"]);
    assert_eq!(
        (code, out),
        (
            0,
            format!(
                "deleted 2 requests that started before 2026-11-01 09:07:00 UTC; the chain is now anchored at row 2\n{anchor}"
            )
        )
    );
    let (code, out, _) = sluice(&["log", "verify", "--db", &d]);
    assert_eq!(
        (code, out),
        (
            0,
            format!(
                "OK: 2 rows verified; head row 4, hash df9666dc87523405f1ff259534872dc1253a564cbb0e5d578a297bd1580a8ac9\n{anchor}"
            )
        )
    );
    let (_, out, _) = sluice(&["purge", "--db", &d, "--before", "2026-11-01"]);
    assert_eq!(
        out,
        format!(
            "deleted 0 requests that started before 2026-11-01 00:00:00 UTC; the chain is now anchored at row 2\n{anchor}"
        )
    );
    rusqlite::Connection::open(&d)
        .unwrap()
        .execute("UPDATE requests SET cost_usd = 0 WHERE seq = 4", [])
        .unwrap();
    let (code, out, _) = sluice(&["log", "verify", "--db", &d]);
    assert_eq!(
        (code, out.as_str()),
        (
            1,
            "BROKEN at row 4: row content does not match its row_hash (the row was changed)\n"
        )
    );
}

#[test]
fn the_database_is_found_through_the_config() {
    let (dir, d) = fixture();
    let cfg = dir.path().join("sluice.yaml");
    std::fs::write(&cfg, format!("log:\n  path: {d}\n")).unwrap();
    let (code, out, _) = sluice(&[
        "logs",
        "--config",
        cfg.to_str().unwrap(),
        "--limit",
        "1",
        "--json",
    ]);
    assert_eq!(code, 0);
    assert!(out.contains("\"id\":\"req-d\""));
    let (code, _, err) = sluice(&["logs", "--db", dir.path().join("none.db").to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.starts_with("error: no request log at "), "{err}");
}

/// `sluice show` and `logs --json` name a Messages or Responses request's route and the tools a
/// bridged request dropped (columns `route` and `dropped_tools`); other rows have neither.
#[test]
fn show_and_json_name_the_route_and_the_dropped_tools() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let mut conn = sluice::store::open(&db).unwrap();
    let pii = sluice::policy::pii::Detector::new(&Default::default()).unwrap();
    let rows = vec![
        Box::new(RequestRecord {
            id: "req-chat".into(),
            started_ms: T0,
            endpoint: "chat.completions",
            requested_model: "default".into(),
            status: 200,
            ..Default::default()
        }),
        Box::new(RequestRecord {
            id: "req-msg".into(),
            started_ms: T0 + 60_000,
            endpoint: "messages",
            requested_model: "claude".into(),
            status: 200,
            route: Some("bridged".into()),
            dropped_tools: vec!["web_search".into(), "code_execution".into()],
            ..Default::default()
        }),
    ];
    let n = sluice::store::writer::write_batch(&mut conn, &rows, LogMode::Full, &pii).unwrap();
    assert_eq!(n, 2);
    drop(conn);
    let d = db.to_str().unwrap();
    let (code, out, err) = sluice(&["show", "req-msg", "--db", d]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("stream        no\nroute         bridged\ndropped tools web_search, code_execution\nfinish"),
        "{out}"
    );
    let (_, out, _) = sluice(&["show", "req-chat", "--db", d]);
    assert!(out.contains("stream        no\nfinish"), "{out}");
    let (code, out, err) = sluice(&["logs", "--db", d, "--json"]);
    assert_eq!(code, 0, "{err}");
    let rows: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows[0]["id"], "req-msg");
    assert_eq!(rows[0]["route"], "bridged");
    assert_eq!(
        rows[0]["dropped_tools"],
        json!(["web_search", "code_execution"])
    );
    assert_eq!(rows[1]["id"], "req-chat");
    assert_eq!(rows[1].get("route"), None);
    assert_eq!(rows[1].get("dropped_tools"), None);
}

/// Logged text is the clients' and the backends': `sluice show` and `sluice logs` write its
/// control characters (a screen clear, an OSC window title, a carriage return that overwrites
/// the line) and bidi overrides visibly, never raw, while `--json` keeps serde's output byte for
/// byte.
#[test]
fn show_and_logs_never_write_control_characters_raw() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let mut conn = sluice::store::open(&db).unwrap();
    let pii = sluice::policy::pii::Detector::new(&Default::default()).unwrap();
    let esc = "\x1b[2J\x1b]0;pwned\x07\r\x1b[K";
    let rows = vec![Box::new(RequestRecord {
        id: "esc-1\u{9b}2J".into(),
        started_ms: T0,
        endpoint: "chat.completions",
        requested_model: "d-echo\x1b[31m".into(),
        status: 404,
        error_type: Some("invalid_request_error".into()),
        error_message: Some(format!("no model{esc}")),
        end_user: Some(format!("mallory{esc}")),
        response: ResponseSummary {
            content: "fine\u{202e}txt.exe".into(),
            ..Default::default()
        },
        request_body: Some(
            serde_json::value::to_raw_value(&json!({"model":"d-echo","messages":[
            {"role":"user","content":format!("hi{esc}\u{2066}x\u{2069}")}]}))
            .unwrap(),
        ),
        ..Default::default()
    })];
    let n = sluice::store::writer::write_batch(&mut conn, &rows, LogMode::Full, &pii).unwrap();
    assert_eq!(n, 1);
    drop(conn);
    let d = db.to_str().unwrap();
    let raw = |s: &str| {
        s.chars()
            .filter(|c| sluice::cli::output::is_unsafe(*c))
            .collect::<String>()
    };
    let (code, out, err) = sluice(&["show", "1", "--db", d]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(raw(&out), "");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "request       esc-1\\u{9b}2J (row 1)");
    assert_eq!(lines[2], "model         d-echo\\x1b[31m → -");
    assert_eq!(
        lines[6],
        "status        404 invalid_request_error: no model\\x1b[2J\\x1b]0;pwned\\x07\\x0d\\x1b[K"
    );
    assert_eq!(
        lines[16],
        "user          mallory\\x1b[2J\\x1b]0;pwned\\x07\\x0d\\x1b[K"
    );
    assert!(
        out.ends_with(
            "--- prompt\nuser: hi\\x1b[2J\\x1b]0;pwned\\x07\\x0d\\x1b[K\\u{2066}x\\u{2069}\n\n\
             --- response\nfine\\u{202e}txt.exe\n"
        ),
        "{out}"
    );
    let (code, out, err) = sluice(&["logs", "--db", d]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "\
TIME (UTC)           MODEL → DEPLOYMENT  HOSTING/TIER  STATUS  TOKENS  COST  LATENCY  ID
2026-11-01 09:00:00  d-echo\\x1b[31m → -  -/-              404     0/0     -      0ms  esc-1\\u{9b}2J
"
    );
    let (code, out, err) = sluice(&["logs", "--db", d, "--json"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(r#""requested_model":"d-echo\u001b[31m""#),
        "{out}"
    );
    // What serde leaves raw (C1 controls, bidi overrides) is escaped too: the same value.
    assert!(out.contains(r#""id":"esc-1\u009b2J""#), "{out}");
    assert!(out.contains(r#"fine\u202etxt.exe"#), "{out}");
    assert!(
        !out.contains('\u{202e}') && !out.contains('\u{9b}'),
        "{out}"
    );
    let v: serde_json::Value = serde_json::from_str(out.trim_end()).unwrap();
    assert_eq!(v["end_user"], format!("mallory{esc}"));
    assert_eq!(v["response_content"], "fine\u{202e}txt.exe");
    let (_, show_json, _) = sluice(&["show", "1", "--db", d, "--json"]);
    assert_eq!(show_json, out);
}

/// `log verify` prints where the chain starts (the anchor) as well as where it ends: rows cut
/// at the old end with the anchor moved by hand verify like a purge, and only the anchor, moved
/// from row 0 to row 2 without a purge, shows it. `purge` prints the anchor it moved to.
#[test]
fn verify_prints_the_anchor_so_a_cut_at_the_old_end_shows() {
    let (dir, d) = fixture();
    let head = "head row 4, hash df9666dc87523405f1ff259534872dc1253a564cbb0e5d578a297bd1580a8ac9";
    let row2: String = rusqlite::Connection::open(&d)
        .unwrap()
        .query_row("SELECT row_hash FROM requests WHERE seq = 2", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(
        row2,
        "a1953234a1fa1659c6a318dc9b87b3892896cb3f6ea8bdee2ecb98c6832d44b5"
    );
    let (code, out, _) = sluice(&["log", "verify", "--db", &d]);
    assert_eq!(
        (code, out),
        (
            0,
            format!(
                "OK: 4 rows verified; {head}\nanchor: row 0, hash {} (no row was ever deleted)\n",
                "0".repeat(64)
            )
        )
    );
    // Cut rows 1 and 2 and move the anchor as a purge would: the head is unchanged.
    let cut = dir.path().join("cut.db");
    std::fs::copy(&d, &cut).unwrap();
    rusqlite::Connection::open(&cut)
        .unwrap()
        .execute_batch(
            "UPDATE chain SET anchor_seq = 2, anchor_hash = (SELECT row_hash FROM requests WHERE seq = 2);
             DELETE FROM requests WHERE seq <= 2;",
        )
        .unwrap();
    let anchored =
        format!("anchor: row 2, hash {row2} (rows 1..2 were deleted by retention or purge)\n");
    let (code, out, _) = sluice(&["log", "verify", "--db", cut.to_str().unwrap()]);
    assert_eq!(
        (code, out),
        (0, format!("OK: 2 rows verified; {head}\n{anchored}"))
    );
    // A real purge moves the anchor to the same place, and says so.
    let (code, out, _) = sluice(&["purge", "--db", &d, "--before", "2026-11-01T09:07:00Z"]);
    assert_eq!(
        (code, out),
        (
            0,
            format!(
                "deleted 2 requests that started before 2026-11-01 09:07:00 UTC; the chain is now anchored at row 2\n{anchored}"
            )
        )
    );
}

/// A tampered `chain` table is named as what was changed: the head's hash, the head moved back
/// before rows that exist, the table emptied; rows deleted at the end still read as such.
#[test]
fn verify_names_what_was_done_to_the_chain_table() {
    let (dir, d) = fixture();
    let tampered = |name: &str, sql: &str| {
        let p = dir.path().join(name);
        std::fs::copy(&d, &p).unwrap();
        rusqlite::Connection::open(&p)
            .unwrap()
            .execute_batch(sql)
            .unwrap();
        let (code, out, err) = sluice(&["log", "verify", "--db", p.to_str().unwrap()]);
        (code, out, err)
    };
    assert_eq!(
        tampered(
            "hash.db",
            "UPDATE chain SET head_hash = '00' || substr(head_hash, 3)"
        ),
        (
            1,
            "BROKEN at row 4: the head's hash does not match the hash of row 4, the last row (the head was changed)\n".into(),
            String::new()
        )
    );
    assert_eq!(
        tampered("seq.db", "UPDATE chain SET head_seq = 3"),
        (
            1,
            "BROKEN at row 4: rows 4..4 lie after the head the chain table records, row 3 (the head was moved back)\n".into(),
            String::new()
        )
    );
    assert_eq!(
        tampered("empty.db", "DELETE FROM chain"),
        (
            1,
            "BROKEN: the chain table is empty (its anchor and head were deleted), so no row can be verified\n".into(),
            String::new()
        )
    );
    assert_eq!(
        tampered("tail.db", "DELETE FROM requests WHERE seq >= 3"),
        (
            1,
            "BROKEN at row 3: the chain ends at row 2 but its head is row 4 (rows 3..4 at the end were deleted)\n".into(),
            String::new()
        )
    );
}
