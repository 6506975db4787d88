//! The gateway's side of budgets (see [`crate::access::budget`]): what a planned request may
//! cost at most, and its reservation. A `remote_only` budget that cannot hold the reservation
//! sends the request to local deployments instead of refusing it.

use super::Gateway;
use super::RequestContext;
use super::route::Plan;
use crate::access::auth::Principal;
use crate::access::budget::{DEFAULT_RESERVED_OUTPUT_TOKENS, MaxCost, unpriced};
use crate::access::coord::Ticket;
use crate::api::{ApiError, Endpoint, RequestBody};
use crate::policy::Decision;
use crate::policy::attrs::DeploymentAttrs;
use crate::policy::tier::Hosting;

/// The output tokens a request may make a deployment with `attrs` generate at most: none on
/// `/v1/embeddings` (it produces no completion tokens); otherwise the request's cap
/// (`max_tokens`, `max_completion_tokens`, `max_output_tokens`), lowered to the deployment's
/// `max_output` as Sluice lowers what it sends; without one, the cap Sluice sends for it
/// (`anthropic`: `max_tokens_default`), else the most the model gives (`max_output`), else
/// [`DEFAULT_RESERVED_OUTPUT_TOKENS`]; times the completions generated
/// ([`RequestBody::completions`]: chat `n`, completions `n` or `best_of`), saturating.
pub fn reserved_output_tokens(
    endpoint: Endpoint,
    body: &RequestBody,
    attrs: &DeploymentAttrs,
) -> u64 {
    if endpoint == Endpoint::Embeddings {
        return 0;
    }
    let per_answer = match body.max_output_tokens() {
        Some(n) => attrs.max_output.map_or(n, |most| n.min(most)),
        None => attrs
            .output_when_unset
            .or(attrs.max_output)
            .unwrap_or(DEFAULT_RESERVED_OUTPUT_TOKENS),
    };
    per_answer.saturating_mul(body.completions())
}

/// The most `body` (sent to `endpoint`) may cost on the eligible deployments of `plan`, USD:
/// `prompt` (its estimated prompt tokens) + [`reserved_output_tokens`] at each one's price;
/// on any of them, and on remote ones only (what a `remote_only` budget counts). Zero without
/// a budget (the key's own or a maker's up its creator chain, [`Principal::budgets`]).
///
/// Errors: 429 `budget_unpriced` when the caller counts against a budget and an eligible
/// deployment is remote with no known price.
pub fn max_cost(
    principal: &Principal,
    endpoint: Endpoint,
    body: &RequestBody,
    prompt: u64,
    plan: &Plan,
) -> Result<MaxCost, ApiError> {
    let mut most = MaxCost::default();
    if principal.budgets().next().is_none() {
        return Ok(most);
    }
    for name in &plan.order {
        let Some(c) = plan.candidate(name) else {
            continue;
        };
        let output = reserved_output_tokens(endpoint, body, &c.attrs);
        let remote = c.attrs.hosting == Hosting::Remote;
        match c.attrs.cost_usd(prompt, output) {
            Some(usd) => {
                most.usd = most.usd.max(usd);
                if remote {
                    most.remote_usd = most.remote_usd.max(usd);
                }
            }
            None if remote => return Err(unpriced(name)),
            None => {}
        }
    }
    Ok(most)
}

impl Gateway {
    /// Reserves the planned request's most cost against the caller's budgets (coordinated:
    /// with the key and model rate limits, see [`crate::access::Access::reserve`]). When a
    /// budget cannot hold it and one of them is `remote_only`, the request is planned again
    /// for local deployments only (`decision` and `plan` are replaced): those cost a
    /// remote-only budget nothing, and each all-spend budget is asked again for their price.
    /// A refusal becomes the plan's error. Without a coordinator this never waits (see
    /// [`crate::access::Access::is_coordinated`]).
    pub(super) async fn reserve_budget(
        &self,
        ctx: &mut RequestContext,
        body: &RequestBody,
        decision: &mut Decision,
        plan: &mut Result<Plan, ApiError>,
    ) -> Option<Ticket> {
        let Ok(p) = &*plan else {
            return None;
        };
        let prompt = ctx.prompt_tokens(body);
        let reserved = match max_cost(&ctx.principal, ctx.endpoint, body, prompt, p) {
            Ok(cost) => {
                self.access
                    .reserve(&ctx.principal, body.model(), prompt, cost)
                    .await
            }
            Err(e) => Err(e),
        };
        let e = match reserved {
            Ok(r) => return r,
            Err(e) => e,
        };
        let remote_only = ctx.principal.budgets().any(|(_, b)| b.remote_only);
        let over_budget = e.body.code == Some(serde_json::json!("budget_exceeded"));
        if !remote_only || !over_budget || ctx.principal.local_only.is_some() {
            *plan = Err(e);
            return None;
        }
        ctx.principal.local_only = Some(e.body.message.clone());
        (*decision, *plan) = self.decide(&ctx.headers, &ctx.principal, body);
        let reserved = match plan
            .as_ref()
            .map(|p| max_cost(&ctx.principal, ctx.endpoint, body, prompt, p))
        {
            Ok(Ok(cost)) => {
                self.access
                    .reserve(&ctx.principal, body.model(), prompt, cost)
                    .await
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Ok(None),
        };
        match reserved {
            Ok(r) => r,
            Err(e) => {
                *plan = Err(e);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::parse_request;

    fn body(endpoint: Endpoint, json: &str) -> RequestBody {
        match endpoint {
            Endpoint::ChatCompletions => {
                RequestBody::Chat(Box::new(parse_request(json.as_bytes()).unwrap()))
            }
            _ => RequestBody::Generic(parse_request(json.as_bytes()).unwrap()),
        }
    }

    /// The attributes of a deployment described by `yaml` (the embedded catalog).
    fn attrs(yaml: &str) -> DeploymentAttrs {
        let d: crate::config::DeploymentConfig = serde_saphyr::from_str(yaml).unwrap();
        DeploymentAttrs::resolve(&d, &crate::policy::catalog::Catalog::embedded().unwrap())
    }

    /// A request without an output cap reserves what the deployment may really give: found by
    /// an attacker test, 30 parallel uncapped streams each reserved 4096 tokens and were each
    /// billed 8000, twice a $50 budget.
    #[test]
    fn an_uncapped_request_reserves_what_the_deployment_may_give() {
        let chat = Endpoint::ChatCompletions;
        let uncapped = body(
            chat,
            r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#,
        );
        let capped = body(
            chat,
            r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":100000}"#,
        );
        let set = attrs(
            "{name: d, provider: openai, base_url: 'http://x/v1', model: m, max_output_tokens: 16384}",
        );
        assert_eq!(reserved_output_tokens(chat, &uncapped, &set), 16384);
        assert_eq!(reserved_output_tokens(chat, &capped, &set), 16384);
        let unknown = attrs("{name: d, provider: openai, base_url: 'http://x/v1', model: m}");
        assert_eq!(reserved_output_tokens(chat, &uncapped, &unknown), 4096);
        assert_eq!(reserved_output_tokens(chat, &capped, &unknown), 100_000);
        let claude = attrs(
            "{name: d, provider: anthropic, base_url: 'http://x', model: m, max_output_tokens: 64000, max_tokens_default: 8192}",
        );
        assert_eq!(reserved_output_tokens(chat, &uncapped, &claude), 8192);
        let claude = attrs(
            "{name: d, provider: anthropic, base_url: 'http://x', model: m, max_output_tokens: 64000}",
        );
        // Without `max_tokens_default`, Sluice sends the model's limit (`gateway::output_cap`).
        assert_eq!(reserved_output_tokens(chat, &uncapped, &claude), 64000);
        assert_eq!(reserved_output_tokens(chat, &capped, &claude), 64000);
        let unknown = attrs(
            "{name: d, provider: anthropic, base_url: 'http://x', model: not-in-the-catalog}",
        );
        assert_eq!(reserved_output_tokens(chat, &uncapped, &unknown), 4096);
    }

    #[test]
    fn the_output_reserved_counts_every_completion_and_none_for_embeddings() {
        let d = &attrs("{name: d, provider: openai, base_url: 'http://x/v1', model: m}");
        let chat = Endpoint::ChatCompletions;
        let msg = r#""messages":[{"role":"user","content":"hi"}]"#;
        let one = body(chat, &format!(r#"{{"model":"m",{msg},"max_tokens":1000}}"#));
        assert_eq!(reserved_output_tokens(chat, &one, d), 1000);
        let twenty = body(
            chat,
            &format!(r#"{{"model":"m",{msg},"max_tokens":1000,"n":20}}"#),
        );
        assert_eq!(reserved_output_tokens(chat, &twenty, d), 20_000);
        let unset = body(chat, &format!(r#"{{"model":"m",{msg},"n":3}}"#));
        assert_eq!(reserved_output_tokens(chat, &unset, d), 3 * 4096);
        let comp = Endpoint::Completions;
        let best = body(
            comp,
            r#"{"model":"m","prompt":"hi","max_tokens":1000,"best_of":10,"n":1}"#,
        );
        assert_eq!(reserved_output_tokens(comp, &best, d), 10_000);
        let n = body(
            comp,
            r#"{"model":"m","prompt":"hi","max_tokens":100,"best_of":2,"n":5}"#,
        );
        assert_eq!(reserved_output_tokens(comp, &n, d), 500);
        let emb = Endpoint::Embeddings;
        let e = body(emb, r#"{"model":"m","input":"hi"}"#);
        assert_eq!(reserved_output_tokens(emb, &e, d), 0);
    }
}
