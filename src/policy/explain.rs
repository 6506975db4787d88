//! The explanation of a routing decision, as `sluice explain` prints it: matched policies, PII
//! found (kinds and positions, never values), each candidate with its freedoms, price and
//! eligibility, and the final try order. Built from the same [`crate::gateway::Gateway::decide`]
//! the server uses, so the two always agree.

use super::pii::Finding;
use super::{Decision, Denial};
use crate::api::ErrorBody;
use crate::config::SamplingConfig;
use crate::route::{Candidate, Plan};
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
        let (candidates, order, err) = match plan {
            Ok(p) => (p.candidates.clone(), p.order.clone(), p.rejection()),
            Err(e) => (Vec::new(), Vec::new(), Some(e.clone())),
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
            let _ = writeln!(s, "personal data (kinds and positions; values never shown):");
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
            let code = e
                .code
                .as_ref()
                .and_then(|c| c.as_str())
                .unwrap_or_default();
            let _ = writeln!(s, "result: HTTP {status} {} {code}: {}", e.kind, e.message);
        } else {
            let _ = writeln!(s, "order: {}", self.order.join(" → "));
        }
        s
    }
}
