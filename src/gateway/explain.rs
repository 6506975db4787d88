//! The explanation of a routing decision, as `sluice explain` prints it: matched policies, PII
//! found (kinds and positions, never values), each candidate with its freedoms, price and
//! eligibility, and the final try order. Built from the same [`crate::gateway::Gateway::decide`]
//! the server uses, so the two always agree.

use crate::api::ErrorBody;
use crate::config::SamplingConfig;
use crate::gateway::route::{Candidate, Plan};
use crate::policy::pii::Finding;
use crate::policy::{Decision, Denial};
use serde::Serialize;
use std::fmt::Write;

/// Everything `sluice explain --json` prints.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    /// The requested model name.
    pub model: String,
    /// Matching policies, in order.
    pub policies: Vec<String>,
    /// PII found.
    pub pii: Vec<Finding>,
    /// A policy's rejection, if any (the request would get 403).
    pub denied: Option<Denial>,
    /// `order`, `lowest_cost`, …
    pub prefer: String,
    /// The policy that set `prefer`.
    pub prefer_policy: Option<String>,
    /// PII kinds replaced by placeholders on remote routes.
    pub redact_kinds: Vec<String>,
    /// Merged sampling overrides.
    pub sampling: Option<SamplingConfig>,
    /// Logging mode forced by a policy.
    pub log_mode: Option<String>,
    /// Every candidate (primary first, then fallbacks).
    pub candidates: Vec<Candidate>,
    /// Eligible deployments in try order; empty when the request would be rejected.
    pub order: Vec<String>,
    /// Groups that tie under `prefer`; each request draws their order by `weight`.
    pub ties: Vec<Vec<String>>,
    /// The error the client would get instead of an answer (403 or 404), if any.
    pub error: Option<ErrorBody>,
    /// Its HTTP status.
    pub status: Option<u16>,
}

impl Explanation {
    /// Builds the explanation from a decision and its plan.
    pub fn new(
        model: &str,
        decision: &Decision,
        plan: &Result<Plan, crate::api::ApiError>,
    ) -> Self {
        let (candidates, order, ties, err) = match plan {
            Ok(p) => (
                p.candidates.clone(),
                p.order.clone(),
                p.ties.clone(),
                p.rejection(),
            ),
            Err(e) => (Vec::new(), Vec::new(), Vec::new(), Some(e.clone())),
        };
        // Same precedence as the server: a policy's deny comes first.
        let err = decision.denied.as_ref().map(Denial::to_error).or(err);
        Explanation {
            model: model.to_string(),
            policies: decision.policies.clone(),
            pii: decision.pii.clone(),
            denied: decision.denied.clone(),
            prefer: decision.prefer.as_str().to_string(),
            prefer_policy: decision.prefer_policy.clone(),
            redact_kinds: decision.redact_kinds.clone(),
            sampling: decision.sampling.clone(),
            log_mode: decision.log_mode.map(|m| m.as_str().to_string()),
            order: if decision.denied.is_some() {
                Vec::new()
            } else {
                order
            },
            ties,
            status: err.as_ref().map(|e| e.status.as_u16()),
            error: err.map(|e| e.body),
            candidates,
        }
    }

    /// The human-readable form.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "model: {}", self.model);
        let _ = writeln!(
            s,
            "policies matched: {}",
            if self.policies.is_empty() {
                "none".to_string()
            } else {
                self.policies.join(", ")
            }
        );
        if self.pii.is_empty() {
            let _ = writeln!(s, "personal data: none found");
        } else {
            let _ = writeln!(
                s,
                "personal data (kinds and positions; values never shown):"
            );
            for f in &self.pii {
                let _ = writeln!(
                    s,
                    "  {} at {} chars {}..{}",
                    f.kind, f.location, f.start, f.end
                );
            }
        }
        if !self.redact_kinds.is_empty() {
            let _ = writeln!(
                s,
                "redacted before remote routes: {}",
                self.redact_kinds.join(", ")
            );
        }
        let _ = writeln!(
            s,
            "prefer: {}{}",
            self.prefer,
            self.prefer_policy
                .as_ref()
                .map(|p| format!(" (policy {p})"))
                .unwrap_or_default()
        );
        if let Some(sm) = &self.sampling {
            let _ = writeln!(
                s,
                "sampling: {}",
                serde_json::to_string(sm).unwrap_or_default()
            );
        }
        if let Some(l) = &self.log_mode {
            let _ = writeln!(s, "log: {l}");
        }
        if !self.candidates.is_empty() {
            let _ = writeln!(s, "candidates:");
        }
        for c in &self.candidates {
            let a = &c.attrs;
            let price = a
                .price
                .map(|p| format!("{}/{} USD per 1M in/out", p.input, p.output))
                .unwrap_or_else(|| "unknown".into());
            let via = if c.via == self.model {
                String::new()
            } else {
                format!(" (fallback via {})", c.via)
            };
            let _ = writeln!(
                s,
                "  {}{}: {} — {} {}, model {}, openness {}, price {}",
                a.name,
                via,
                if c.eligible() { "eligible" } else { "excluded" },
                a.provider,
                a.hosting.as_str(),
                a.model,
                a.openness.as_str(),
                price
            );
            let f = &a.freedoms;
            let _ = writeln!(
                s,
                "    freedoms: access {}, model_control {}, data_control {}, autonomy {}, trust {}",
                f.access, f.model_control, f.data_control, f.autonomy, f.trust
            );
            for r in &c.excluded {
                let _ = writeln!(s, "    excluded: {r}");
            }
        }
        if let (Some(status), Some(e)) = (self.status, &self.error) {
            let code = e.code.as_ref().and_then(|c| c.as_str()).unwrap_or_default();
            let _ = writeln!(s, "result: HTTP {status} {} {code}: {}", e.kind, e.message);
        } else {
            let _ = writeln!(s, "order: {}", self.order.join(" → "));
            for t in &self.ties {
                let _ = writeln!(
                    s,
                    "  tie under {}: {} (order drawn by weight per request)",
                    self.prefer,
                    t.join(", ")
                );
            }
        }
        s
    }
}

/// Arguments of `sluice explain`.
#[derive(Debug, Clone, clap::Args)]
pub struct ExplainArgs {
    /// Config file (else $SLUICE_CONFIG, ./sluice.yaml, the embedded default).
    #[arg(long)]
    pub config: Option<std::path::PathBuf>,
    /// The model name the request asks for.
    #[arg(long)]
    pub model: String,
    /// A request header, `NAME=VALUE` (repeatable).
    #[arg(long = "header", value_name = "K=V")]
    pub headers: Vec<String>,
    /// The text of one user message.
    #[arg(long, conflicts_with = "body")]
    pub message: Option<String>,
    /// A JSON request body (chat completion, completion or embeddings); `--model` replaces its
    /// `model`.
    #[arg(long)]
    pub body: Option<std::path::PathBuf>,
    /// Print the explanation as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Builds the request `sluice explain` describes: `body` (a chat request when it has
/// `messages`, else a completion/embeddings request) or one user `message`, with `model`.
///
/// Errors: a body that is not a valid request (the message says why).
pub fn request_for(
    model: &str,
    message: Option<&str>,
    body: Option<serde_json::Value>,
) -> Result<crate::api::RequestBody, String> {
    use crate::api::RequestBody;
    let mut v = match body {
        Some(v) => v,
        None => serde_json::json!({
            "messages": [{"role": "user", "content": message.unwrap_or("")}]
        }),
    };
    let Some(obj) = v.as_object_mut() else {
        return Err("the body must be a JSON object".into());
    };
    obj.insert("model".into(), serde_json::Value::from(model));
    let bytes = serde_json::to_vec(&v).map_err(|e| e.to_string())?;
    if v.get("messages").is_some() {
        crate::api::parse_request(&bytes)
            .map(|c| RequestBody::Chat(Box::new(c)))
            .map_err(|e| e.body.message)
    } else {
        crate::api::parse_request(&bytes)
            .map(RequestBody::Generic)
            .map_err(|e| e.body.message)
    }
}

/// Parses `NAME=VALUE` pairs into headers.
///
/// Errors: a pair without `=`, or a bad header name or value.
pub fn headers_from(pairs: &[String]) -> Result<axum::http::HeaderMap, String> {
    let mut h = axum::http::HeaderMap::new();
    for p in pairs {
        let (k, v) = p
            .split_once('=')
            .ok_or_else(|| format!("--header `{p}`: expected NAME=VALUE"))?;
        let name = axum::http::HeaderName::from_bytes(k.trim().as_bytes())
            .map_err(|_| format!("--header `{p}`: bad header name"))?;
        let value = axum::http::HeaderValue::from_str(v.trim())
            .map_err(|_| format!("--header `{p}`: bad header value"))?;
        h.append(name, value);
    }
    Ok(h)
}

/// The explanation for one request against `gateway`: the same [`crate::gateway::Gateway::decide`]
/// the server runs (as an anonymous caller), without calling any backend.
pub fn explain(
    gateway: &crate::gateway::Gateway,
    headers: &axum::http::HeaderMap,
    body: &crate::api::RequestBody,
) -> Explanation {
    let principal = crate::access::auth::Principal::anonymous();
    let (decision, plan) = gateway.decide(headers, &principal, body);
    Explanation::new(body.model(), &decision, &plan)
}

/// Runs `sluice explain`: exit 0 after printing, 2 on a bad config or arguments.
pub fn command(args: ExplainArgs) -> std::process::ExitCode {
    use std::process::ExitCode;
    let source = crate::config::locate(args.config.as_deref());
    let cfg = match crate::config::load(&source) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let result = (|| {
        let headers = headers_from(&args.headers)?;
        let body = match &args.body {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| format!("--body {}: {e}", p.display()))?;
                Some(
                    serde_json::from_str(&text)
                        .map_err(|e| format!("--body {}: not JSON: {e}", p.display()))?,
                )
            }
            None => None,
        };
        let req = request_for(&args.model, args.message.as_deref(), body)?;
        let gw = crate::gateway::Gateway::new(cfg)?;
        Ok::<_, String>(explain(&gw, &headers, &req))
    })();
    match result {
        Ok(x) => {
            if args.json {
                println!("{}", serde_json::to_string_pretty(&x).unwrap_or_default());
            } else {
                print!("{}", x.to_text());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// The deployments that may serve `model` for `principal` and `headers` with a prompt free of
/// personal data, in try order, each as `{"name", "provider", "hosting", "openness"}` — the
/// extra `deployments` field of `GET /v1/models` entries.
pub fn model_deployments(
    gateway: &crate::gateway::Gateway,
    principal: &crate::access::auth::Principal,
    headers: &axum::http::HeaderMap,
    model: &str,
) -> Vec<serde_json::Value> {
    let Ok(body) = request_for(model, None, None) else {
        return Vec::new();
    };
    let (decision, plan) = gateway.decide(headers, principal, &body);
    let Ok(plan) = plan else {
        return Vec::new();
    };
    if decision.denied.is_some() {
        return Vec::new();
    }
    plan.order
        .iter()
        .filter_map(|n| plan.candidate(n))
        .map(|c| {
            serde_json::json!({
                "name": c.attrs.name,
                "provider": c.attrs.provider,
                "hosting": c.attrs.hosting.as_str(),
                "openness": c.attrs.openness.as_str(),
            })
        })
        .collect()
}
