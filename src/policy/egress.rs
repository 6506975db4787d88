//! The egress guard: the last check before bytes leave for a deployment that is not `local`.
//!
//! A policy *keeps personal data local* when it has `when.pii` and either `require.hosting:
//! local` (`pii_action: route_local`), `pii_action: redact` or `pii_action: block`. For each
//! such policy whose other conditions hold for the request ([`Guard`], decided with the rest
//! of the [`super::Decision`]), the exact body about to be sent to a non-local deployment —
//! after redaction, sampling overrides and the provider's translation — is scanned once more,
//! every string leaf through [`crate::api::visit::visit_json`]. Any item of a kind the policy
//! is about stops the call: nothing is sent, the client gets 403 `pii_blocked` naming the JSON
//! path (never the value). With redaction, only placeholders may remain.
//!
//! Every string, number and object key is checked ([`crate::api::visit::visit_json`]).
//! Skipped: the top-level `model` (the deployment's own id, from the config). A binary
//! payload (base64 image, file, audio, token ids) cannot be checked and counts as personal
//! data of kind `unscannable` (fail closed): a policy about `any` kind, or about
//! `unscannable`, stops it.

use super::pii::Detector;
use crate::api::ApiError;
use crate::api::visit::{Leaf, Visit, visit_json};
use crate::config::policy::UNSCANNABLE;
use serde::Serialize;
use serde_json::Value;

/// A policy that keeps personal data local and applies to this request (its conditions other
/// than `when.pii` hold).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Guard {
    /// The policy's name.
    pub policy: String,
    /// The PII kinds it is about; empty = any kind.
    pub kinds: Vec<String>,
}

impl Guard {
    fn covers(&self, kind: &str) -> bool {
        self.kinds.is_empty() || self.kinds.iter().any(|k| k == kind)
    }
}

/// What the guard found: where, what kind, which policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked {
    /// JSON path in the outgoing body (`messages[0].content`).
    pub path: String,
    /// The PII kind.
    pub kind: String,
    /// The policy that keeps it local.
    pub policy: String,
}

impl Blocked {
    /// 403 `policy_error`, code `pii_blocked`, `param` = the path; the message names the
    /// deployment, path, kind and policy, never the value.
    pub fn to_error(&self, deployment: &str) -> ApiError {
        ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "policy_error",
            format!(
                "The request for deployment `{deployment}` still carries personal data ({}) at `{}`; policy `{}` keeps it local, so nothing was sent.",
                self.kind, self.path, self.policy
            ),
        )
        .with_code("pii_blocked")
        .with_param(self.path.clone())
    }
}

/// Whether `text` (a value that leaves outside the body, such as the client's request id)
/// holds an item that one of `guards` keeps local.
pub fn carries(detector: &Detector, guards: &[Guard], text: &str) -> bool {
    !guards.is_empty()
        && detector
            .scan(text)
            .iter()
            .any(|m| guards.iter().any(|g| g.covers(&m.kind)))
}

/// The first item in `body` (a JSON request about to be sent) that one of `guards` forbids,
/// in document order; `None` when the body may leave.
pub fn first_violation(detector: &Detector, guards: &[Guard], body: &Value) -> Option<Blocked> {
    struct Scan<'d> {
        detector: &'d Detector,
        guards: &'d [Guard],
        found: Option<Blocked>,
        seams: super::junction::Seams,
    }
    impl Scan<'_> {
        fn check(&mut self, path: &str, text: &str) {
            if self.found.is_some() || path == "model" {
                return;
            }
            self.block_any(path, self.detector.scan(text));
        }
        /// The first of `found` a guard covers, if any, blocks the body.
        fn block_any(&mut self, path: &str, found: Vec<crate::policy::pii::Match>) {
            for m in found {
                if let Some(g) = self.guards.iter().find(|g| g.covers(&m.kind)) {
                    self.found = Some(Blocked {
                        path: path.to_string(),
                        kind: m.kind,
                        policy: g.policy.clone(),
                    });
                    return;
                }
            }
        }
    }
    impl<'a> Visit<'a> for Scan<'_> {
        fn text(&mut self, path: &str, _: Leaf, text: &'a str) {
            self.check(path, text);
            if self.found.is_some() || path == "model" {
                return;
            }
            let (across, before) = self.seams.next(self.detector, path, text);
            if let Some((m, g)) = across
                .iter()
                .find_map(|m| Some((m, self.guards.iter().find(|g| g.covers(&m.kind))?)))
            {
                self.found = Some(Blocked {
                    path: format!("{before} + {path}"),
                    kind: m.kind.clone(),
                    policy: g.policy.clone(),
                });
            }
        }
        fn number(&mut self, path: &str, text: &str) {
            self.check(path, text);
        }
        fn key(&mut self, path: &str, key: &'a str) {
            self.check(path, key);
        }
        fn binary(&mut self, path: &str, payload: &'a str) {
            // What a binary payload encodes cannot be checked: treated as personal data (fail
            // closed); its own text is checked as any string's.
            if self.found.is_some() {
                return;
            }
            if let Some(g) = self.guards.iter().find(|g| g.covers(UNSCANNABLE)) {
                self.found = Some(Blocked {
                    path: path.to_string(),
                    kind: UNSCANNABLE.to_string(),
                    policy: g.policy.clone(),
                });
                return;
            }
            self.block_any(path, self.detector.scan_payload(payload));
        }
    }
    if guards.is_empty() {
        return None;
    }
    let mut s = Scan {
        detector,
        guards,
        found: None,
        seams: super::junction::Seams::new(),
    };
    visit_json(body, &mut s);
    s.found
}

/// Header values are checked like body strings, but for the deployment's credentials, which
/// come from the config (`authorization`, `x-api-key`, `proxy-authorization`), the W3C trace
/// context (`traceparent`, `tracestate`: random hex ids, about one in a thousand of which
/// reads as a card number) and `x-request-id` (see [`carries`]): a client's value forwarded upstream (`anthropic-beta`)
/// holding an item a guard keeps local stops the call. A value that is not text counts as
/// `unscannable`. The blocked path is `header <name>`.
pub fn check_headers(
    detector: &Detector,
    guards: &[Guard],
    deployment: &str,
    headers: &axum::http::HeaderMap,
) -> Result<(), ApiError> {
    // `x-request-id` has its own rule (`egress::carries`: a client's id that carries an item
    // is not forwarded, a fresh UUIDv7 goes instead), and a random id may read as a card.
    const NOT_SCANNED: [&str; 6] = [
        "authorization",
        "proxy-authorization",
        "x-api-key",
        "traceparent",
        "tracestate",
        "x-request-id",
    ];
    if guards.is_empty() {
        return Ok(());
    }
    for (name, value) in headers {
        if NOT_SCANNED.contains(&name.as_str()) {
            continue;
        }
        let blocked = |kind: String, policy: &str| Blocked {
            path: format!("header {name}"),
            kind,
            policy: policy.to_string(),
        };
        let Ok(text) = value.to_str() else {
            if let Some(g) = guards.iter().find(|g| g.covers(UNSCANNABLE)) {
                return Err(blocked(UNSCANNABLE.into(), &g.policy).to_error(deployment));
            }
            continue;
        };
        for m in detector.scan(text) {
            if let Some(g) = guards.iter().find(|g| g.covers(&m.kind)) {
                return Err(blocked(m.kind, &g.policy).to_error(deployment));
            }
        }
    }
    Ok(())
}

/// [`first_violation`] over raw JSON bytes. A body that is not JSON cannot be checked and is
/// not sent (fail closed).
pub fn check_bytes(
    detector: &Detector,
    guards: &[Guard],
    deployment: &str,
    bytes: &[u8],
) -> Result<(), ApiError> {
    if guards.is_empty() {
        return Ok(());
    }
    let v: Value = crate::api::json::from_bytes(bytes).map_err(|_| {
        Blocked {
            path: String::new(),
            kind: "unscannable".into(),
            policy: guards[0].policy.clone(),
        }
        .to_error(deployment)
    })?;
    match first_violation(detector, guards, &v) {
        Some(b) => Err(b.to_error(deployment)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PiiConfig;
    use serde_json::json;

    fn guard(kinds: &[&str]) -> Vec<Guard> {
        vec![Guard {
            policy: "p".into(),
            kinds: kinds.iter().map(|k| k.to_string()).collect(),
        }]
    }

    #[test]
    fn an_item_split_over_neighbouring_strings_does_not_leave() {
        let d = Detector::new(&PiiConfig::default()).unwrap();
        let body = json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "mail ana@"}, {"type": "text", "text": "example.com"}]}]});
        assert_eq!(
            first_violation(&d, &guard(&[]), &body),
            Some(Blocked {
                path: "messages[0].content[0].text + messages[0].content[1].text".into(),
                kind: "email".into(),
                policy: "p".into()
            })
        );
        // The same two strings, not neighbours: nothing to join.
        let apart = json!({"model": "m", "user": "mail ana@", "notes": "example.com"});
        assert_eq!(first_violation(&d, &guard(&[]), &apart), None);
    }

    #[test]
    fn finds_the_first_covered_item_by_path_never_by_value() {
        let d = Detector::new(&PiiConfig::default()).unwrap();
        let body = json!({"model": "a@b.example.com", "messages": [
            {"role": "user", "content": "call +34 612 345 678"},
            {"role": "user", "content": [{"type": "text", "text": "mail [EMAIL_1] or ana@example.com"}]}],
            "notes": {"x": "bob@example.org"}});
        let b = first_violation(&d, &guard(&[]), &body).unwrap();
        assert_eq!(
            b,
            Blocked {
                path: "messages[0].content".into(),
                kind: "phone".into(),
                policy: "p".into()
            }
        );
        let b = first_violation(&d, &guard(&["email"]), &body).unwrap();
        assert_eq!(b.path, "messages[1].content[0].text");
        let e = b.to_error("cloud");
        assert_eq!(e.status.as_u16(), 403);
        assert_eq!(e.body.param.as_deref(), Some("messages[1].content[0].text"));
        assert_eq!(e.body.code, Some(Value::from("pii_blocked")));
        assert!(!e.body.message.contains("ana@"), "{}", e.body.message);
        assert_eq!(first_violation(&d, &guard(&["iban"]), &body), None);
        assert_eq!(first_violation(&d, &[], &body), None);
    }

    #[test]
    fn headers_are_checked_but_for_the_deployments_credentials() {
        use axum::http::{HeaderMap, HeaderValue};
        let d = Detector::new(&PiiConfig::default()).unwrap();
        let mut h = HeaderMap::new();
        h.insert(
            "authorization",
            HeaderValue::from_static("Bearer sk-proj-abcdefghijklmnopqrstuvwx"),
        );
        h.insert(
            "x-api-key",
            HeaderValue::from_static("sk-ant-abcdefghijklmnopqrstuvwx"),
        );
        h.insert("anthropic-version", HeaderValue::from_static("2023-06-01"));
        h.insert("x-request-id", HeaderValue::from_static("req-42"));
        assert_eq!(
            check_headers(&d, &guard(&[]), "cloud", &h).map_err(|e| e.body.message),
            Ok(())
        );
        h.insert(
            "anthropic-beta",
            HeaderValue::from_static("context-1m,4111111111111111"),
        );
        let e = check_headers(&d, &guard(&[]), "cloud", &h).unwrap_err();
        assert_eq!(e.status.as_u16(), 403);
        assert_eq!(e.body.param.as_deref(), Some("header anthropic-beta"));
        assert!(!e.body.message.contains("4111"), "{}", e.body.message);
        assert!(check_headers(&d, &guard(&["email"]), "cloud", &h).is_ok());
        assert!(check_headers(&d, &[], "cloud", &h).is_ok());
        let mut h = HeaderMap::new();
        h.insert("x-custom", HeaderValue::from_bytes(b"00-\xff").unwrap());
        let e = check_headers(&d, &guard(&[]), "cloud", &h).unwrap_err();
        assert_eq!(e.body.param.as_deref(), Some("header x-custom"));
        // A trace id that reads as a card is not the request's data (random hex).
        let mut h = HeaderMap::new();
        h.insert(
            "traceparent",
            HeaderValue::from_static("00-e48755828c32af87fa4ca11931b1e320-2c05b62079900030-01"),
        );
        assert!(check_headers(&d, &guard(&[]), "cloud", &h).is_ok());
        // The request id has its own rule (`carries`): a fresh UUIDv7 sent instead of a
        // client's that carried an item may itself read as a card (one in a thousand: the
        // privacy suite's run got a 403 from it), and is not the request's data.
        let mut h = HeaderMap::new();
        h.insert(
            "x-request-id",
            HeaderValue::from_static("4111-1111-1111-1111"),
        );
        assert!(check_headers(&d, &guard(&[]), "cloud", &h).is_ok());
    }

    #[test]
    fn placeholders_pass_and_bytes_that_are_not_json_do_not() {
        let d = Detector::new(&PiiConfig::default()).unwrap();
        let ok = br#"{"messages":[{"role":"user","content":"mail [EMAIL_1]"}]}"#;
        assert!(check_bytes(&d, &guard(&[]), "cloud", ok).is_ok());
        let img = format!(
            r#"{{"messages":[{{"role":"user","content":[{{"type":"image_url","image_url":{{"url":"data:image/png;base64,{}"}}}}]}}]}}"#,
            "QUJD".repeat(20)
        );
        let e = check_bytes(&d, &guard(&[]), "cloud", img.as_bytes()).unwrap_err();
        assert_eq!(
            e.body.param.as_deref(),
            Some("messages[0].content[0].image_url.url")
        );
        assert!(check_bytes(&d, &guard(&["email"]), "cloud", img.as_bytes()).is_ok());
        let e = check_bytes(&d, &guard(&[]), "cloud", b"not json").unwrap_err();
        assert_eq!(e.status.as_u16(), 403);
        assert!(check_bytes(&d, &[], "cloud", b"not json").is_ok());
    }
}
