//! Policies: which deployments may serve a request, in which order, and what happens to
//! personal data on the way — decided before any backend is called, and explained.
//!
//! [`Engine::decide`] scans the request for PII, evaluates every policy's `when` in file order,
//! and combines the matching policies into one [`Decision`]:
//! - `require` constraints of all matching policies combine by intersection (each one must
//!   hold; each keeps the name of its policy so an exclusion can say why);
//! - `prefer`: the last matching policy that sets it wins (default `order`);
//! - `action: deny`: the first matching deny rejects the request (403 `policy_denied`);
//! - `pii_action`: `route_local` (default) keeps the constraints, `redact` lifts the policy's
//!   `require.hosting` and redacts the PII kinds it names on remote routes, `block` rejects
//!   (403 `pii_blocked`);
//! - `sampling`: merged field by field, the last matching policy winning per field;
//! - `log`: the last matching policy that sets it wins.
//!
//! Layer: pure decisions; imports only `api` and `config` (never `gateway`, `providers`,
//! `http`, `store`). A new policy condition: its schema in `config::policy`, its matching here.

pub mod attrs;
pub mod catalog;
pub mod checks;
pub mod egress;
pub mod junction;
pub mod normalize;
pub mod pii;
pub mod redact;
pub mod redact_native;
pub mod tier;

use crate::api::ApiError;
use crate::api::RequestBody;
use crate::config::policy::{Action, LogMode, PiiAction, PolicyConfig, Prefer, WhenConfig};
use crate::config::{Config, SamplingConfig};
pub use attrs::DeploymentAttrs;
use axum::http::HeaderMap;
use catalog::Catalog;
use pii::{Detector, Finding};
use serde::Serialize;
use serde_json::Value;
use tier::{Freedom, Hosting, Openness};

/// One constraint on the deployments, from one policy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Constraint {
    /// The policy it comes from.
    pub policy: String,
    /// What it demands.
    pub rule: Rule,
}

/// What a constraint demands of a deployment.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// `require.hosting`.
    Hosting(Hosting),
    /// `require.min_openness`.
    MinOpenness(Openness),
    /// `require.freedoms.<freedom>: <level>` (as a minimum).
    Freedom(String, String),
    /// `require.providers` allow list.
    ProvidersAllow(Vec<String>),
    /// `require.providers.deny`.
    ProvidersDeny(Vec<String>),
    /// `require.deployments` allow list (globs).
    DeploymentsAllow(Vec<String>),
    /// `require.deployments.deny` (globs).
    DeploymentsDeny(Vec<String>),
    /// `require.max_price.input`, USD per 1M tokens.
    MaxInputPrice(f64),
    /// `require.max_price.output`, USD per 1M tokens.
    MaxOutputPrice(f64),
    /// `require.tags`.
    Tags(Vec<String>),
}

fn glob_any(patterns: &[String], value: &str) -> bool {
    patterns.iter().any(|p| glob_match(p, value))
}

/// Glob match (`*`, `?`, `[..]`); a pattern that does not parse matches only itself.
pub fn glob_match(pattern: &str, value: &str) -> bool {
    match glob::Pattern::new(pattern) {
        Ok(p) => p.matches(value),
        Err(_) => pattern == value,
    }
}

impl Rule {
    /// `Ok` when `d` satisfies the rule, else why not (e.g. `hosting is remote, local required`).
    pub fn check(&self, d: &DeploymentAttrs) -> Result<(), String> {
        match self {
            Rule::Hosting(h) => (d.hosting == *h).then_some(()).ok_or_else(|| {
                format!("hosting is {}, {} required", d.hosting.as_str(), h.as_str())
            }),
            Rule::MinOpenness(t) => (d.openness >= *t).then_some(()).ok_or_else(|| {
                format!(
                    "openness is {}, at least {} required",
                    d.openness.as_str(),
                    t.as_str()
                )
            }),
            Rule::Freedom(key, level) => {
                let Some(f) = Freedom::ALL.iter().find(|f| f.key() == key) else {
                    return Err(format!("unknown freedom {key}"));
                };
                let have = d.freedoms.get(*f);
                match (f.rank(have), f.rank(level)) {
                    (Some(h), Some(w)) if h >= w => Ok(()),
                    _ => Err(format!("{key} is {have}, at least {level} required")),
                }
            }
            Rule::ProvidersAllow(list) => list
                .iter()
                .any(|p| p == d.provider)
                .then_some(())
                .ok_or_else(|| format!("provider {} is not in [{}]", d.provider, list.join(", "))),
            Rule::ProvidersDeny(list) => (!list.iter().any(|p| p == d.provider))
                .then_some(())
                .ok_or_else(|| format!("provider {} is denied", d.provider)),
            Rule::DeploymentsAllow(globs) => glob_any(globs, &d.name)
                .then_some(())
                .ok_or_else(|| format!("deployment is not in [{}]", globs.join(", "))),
            Rule::DeploymentsDeny(globs) => (!glob_any(globs, &d.name))
                .then_some(())
                .ok_or_else(|| "deployment is denied".to_string()),
            Rule::MaxInputPrice(max) => match d.price {
                Some(p) if p.input <= *max => Ok(()),
                Some(p) => Err(format!(
                    "input price {} USD/1M tokens is above {max}",
                    p.input
                )),
                None => Err(format!(
                    "price unknown, input at most {max} USD/1M tokens required"
                )),
            },
            Rule::MaxOutputPrice(max) => match d.price {
                Some(p) if p.output <= *max => Ok(()),
                Some(p) => Err(format!(
                    "output price {} USD/1M tokens is above {max}",
                    p.output
                )),
                None => Err(format!(
                    "price unknown, output at most {max} USD/1M tokens required"
                )),
            },
            Rule::Tags(tags) => {
                let missing: Vec<&str> = tags
                    .iter()
                    .filter(|t| !d.tags.contains(t))
                    .map(String::as_str)
                    .collect();
                missing
                    .is_empty()
                    .then_some(())
                    .ok_or_else(|| format!("missing tags [{}]", missing.join(", ")))
            }
        }
    }
}

/// Why a request is rejected before routing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Denial {
    /// The policy that rejected it.
    pub policy: String,
    /// `policy_denied` or `pii_blocked`.
    pub code: String,
    /// The message for the client.
    pub message: String,
}

impl Denial {
    /// The client's error: 403 `policy_error` with this code and message.
    pub fn to_error(&self) -> ApiError {
        ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "policy_error",
            self.message.clone(),
        )
        .with_code(&self.code)
    }
}

/// The outcome of the policies for one request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    /// Names of the matching policies, in file order.
    pub policies: Vec<String>,
    /// PII found (kinds and positions only).
    pub pii: Vec<Finding>,
    /// Set when a policy rejects the request.
    pub denied: Option<Denial>,
    /// Constraints of all matching policies (all must hold).
    pub constraints: Vec<Constraint>,
    /// The order among eligible deployments.
    pub prefer: Prefer,
    /// The policy that set `prefer`, if any.
    pub prefer_policy: Option<String>,
    /// PII kinds to replace by placeholders before the request reaches a remote deployment.
    pub redact_kinds: Vec<String>,
    /// Merged sampling overrides of the matching policies.
    pub sampling: Option<SamplingConfig>,
    /// Logging mode forced by a policy.
    pub log_mode: Option<LogMode>,
    /// Policies that keep personal data local and apply to this request whatever PII it
    /// holds: the egress guard checks every body sent to a non-local deployment against them.
    pub egress: Vec<egress::Guard>,
}

impl Decision {
    /// The distinct PII kinds found, in order of first appearance.
    pub fn pii_kinds(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for f in &self.pii {
            if !out.contains(&f.kind) {
                out.push(f.kind.clone());
            }
        }
        out
    }

    /// `Ok` when `d` satisfies every constraint, else every reason it fails, each naming its
    /// policy: `hosting is remote, local required (policy personal-data-stays-local)`.
    pub fn check(&self, d: &DeploymentAttrs) -> Result<(), Vec<String>> {
        let reasons: Vec<String> = self
            .constraints
            .iter()
            .filter_map(|c| {
                c.rule
                    .check(d)
                    .err()
                    .map(|r| format!("{r} (policy {})", c.policy))
            })
            .collect();
        if reasons.is_empty() {
            Ok(())
        } else {
            Err(reasons)
        }
    }

    /// Whether the request sent to `d` must be redacted.
    pub fn redacts_for(&self, d: &DeploymentAttrs) -> bool {
        !self.redact_kinds.is_empty() && d.hosting == Hosting::Remote
    }
}

/// Facts about the request besides its body that policies can match on.
#[derive(Debug, Clone, Default)]
pub struct RequestFacts<'a> {
    /// The request headers.
    pub headers: Option<&'a HeaderMap>,
    /// The id of the API key used, once keys exist.
    pub api_key_id: Option<&'a str>,
    /// The ids of the keys that made that key, its maker first (`when.api_key` matches them
    /// too: a key cannot make a key that escapes a policy on it).
    pub api_key_creators: &'a [String],
    /// The key's team, once keys exist.
    pub team: Option<&'a str>,
    /// The key's tags, once keys exist.
    pub key_tags: &'a [String],
    /// Policies the key names: they apply whatever their `when` says.
    pub key_policies: &'a [String],
    /// When the request names a deployment directly: the models that list it. `when.model`
    /// matches them as well as the name itself (see [`crate::config::Config::model_scopes`]).
    pub model_owners: &'a [&'a str],
}

/// Policies, PII detectors and the resolved deployments: everything needed to decide.
#[derive(Debug)]
pub struct Engine {
    policies: Vec<PolicyConfig>,
    detector: Detector,
    catalog: Catalog,
    /// Shared: a request's candidates and its answer hold them without copying.
    attrs: Vec<std::sync::Arc<DeploymentAttrs>>,
}

impl Engine {
    /// Builds the engine for `config`: loads the catalog (embedded plus `catalog:` file),
    /// compiles the PII detectors, resolves every deployment's attributes.
    ///
    /// Errors: unreadable or malformed catalog file, bad user regex.
    pub fn new(config: &Config) -> Result<Self, String> {
        let catalog = Catalog::with_file(config.catalog.as_deref())?;
        let detector = Detector::new(&config.pii)?;
        let attrs = config
            .deployments
            .iter()
            .map(|d| std::sync::Arc::new(DeploymentAttrs::resolve(d, &catalog)))
            .collect();
        Ok(Engine {
            policies: config.policies.clone(),
            detector,
            catalog,
            attrs,
        })
    }

    /// The catalog in use.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The resolved attributes of deployment `name`.
    pub fn attrs(&self, name: &str) -> Option<&std::sync::Arc<DeploymentAttrs>> {
        self.attrs.iter().find(|a| a.name == name)
    }

    /// The PII detectors.
    pub fn detector(&self) -> &Detector {
        &self.detector
    }

    /// Scans `body` and applies every policy (see the module docs for the combination rules).
    pub fn decide(&self, facts: &RequestFacts<'_>, body: &RequestBody) -> Decision {
        let pii = self.detector.scan_request(body);
        let prompt_tokens = body.prompt_estimate();
        let mut d = Decision {
            policies: Vec::new(),
            pii,
            denied: None,
            constraints: Vec::new(),
            prefer: Prefer::Order,
            prefer_policy: None,
            redact_kinds: Vec::new(),
            sampling: None,
            log_mode: None,
            egress: Vec::new(),
        };
        for p in &self.policies {
            let holds = when_holds(&p.when, facts, body, &d.pii, prompt_tokens);
            let forced = facts.key_policies.contains(&p.name);
            let Some(pii_kinds) = holds.or_else(|| forced.then(|| pii_kinds_of(&p.when, &d.pii)))
            else {
                continue;
            };
            d.policies.push(p.name.clone());
            if p.action == Some(Action::Deny) && d.denied.is_none() {
                d.denied = Some(Denial {
                    policy: p.name.clone(),
                    code: "policy_denied".into(),
                    message: p.message.clone().unwrap_or_default(),
                });
            }
            let pii_action = match (&p.when.pii, p.pii_action) {
                // A key-forced policy without PII in the request only keeps its constraints.
                (Some(_), Some(a)) if !pii_kinds.is_empty() => a,
                _ => PiiAction::RouteLocal,
            };
            match pii_action {
                PiiAction::Block => {
                    if d.denied.is_none() {
                        d.denied = Some(Denial {
                            policy: p.name.clone(),
                            code: "pii_blocked".into(),
                            message: format!(
                                "The request contains personal data ({}) and policy `{}` blocks such requests.",
                                pii_kinds.join(", "),
                                p.name
                            ),
                        });
                    }
                    push_constraints(&mut d.constraints, p, true);
                }
                PiiAction::Redact => {
                    for k in pii_kinds {
                        if !d.redact_kinds.contains(&k) {
                            d.redact_kinds.push(k);
                        }
                    }
                    push_constraints(&mut d.constraints, p, false);
                }
                PiiAction::RouteLocal => push_constraints(&mut d.constraints, p, true),
            }
            if let Some(pref) = p.prefer {
                d.prefer = pref;
                d.prefer_policy = Some(p.name.clone());
            }
            if let Some(s) = &p.sampling {
                d.sampling
                    .get_or_insert_with(SamplingConfig::default)
                    .merge(s);
            }
            if let Some(l) = p.log {
                d.log_mode = Some(l);
            }
        }
        d.egress = self.guards(facts, body, prompt_tokens);
        d
    }

    /// The policies that keep personal data local (see [`egress`]) and whose conditions other
    /// than `when.pii` hold for this request (or that its key names).
    fn guards(
        &self,
        facts: &RequestFacts<'_>,
        body: &RequestBody,
        prompt_tokens: u64,
    ) -> Vec<egress::Guard> {
        self.policies
            .iter()
            .filter(|p| keeps_pii_local(p))
            .filter(|p| {
                facts.key_policies.contains(&p.name)
                    || others_hold(&p.when, facts, body, prompt_tokens).is_some()
            })
            .map(|p| {
                let items = p.when.pii.as_ref().map(|w| w.items()).unwrap_or_default();
                let any = items.contains(&"any");
                egress::Guard {
                    policy: p.name.clone(),
                    kinds: if any {
                        Vec::new()
                    } else {
                        items.iter().map(|k| k.to_string()).collect()
                    },
                }
            })
            .collect()
    }
}

/// Whether `p` keeps personal data local: `when.pii` with `require.hosting: local`
/// (route_local), or `pii_action: redact` / `block`.
fn keeps_pii_local(p: &PolicyConfig) -> bool {
    if p.when.pii.is_none() || p.action == Some(Action::Deny) {
        return false;
    }
    match p.pii_action.unwrap_or(PiiAction::RouteLocal) {
        PiiAction::RouteLocal => p.require.hosting == Some(Hosting::Local),
        PiiAction::Redact | PiiAction::Block => true,
    }
}

fn push_constraints(out: &mut Vec<Constraint>, p: &PolicyConfig, with_hosting: bool) {
    let r = &p.require;
    let mut push = |rule: Rule| {
        out.push(Constraint {
            policy: p.name.clone(),
            rule,
        })
    };
    if with_hosting && let Some(h) = r.hosting {
        push(Rule::Hosting(h));
    }
    if let Some(t) = r.min_openness {
        push(Rule::MinOpenness(t));
    }
    for (k, v) in &r.freedoms {
        push(Rule::Freedom(k.clone(), v.clone()));
    }
    if let Some(ad) = &r.providers {
        let (allow, deny) = ad.lists();
        if !allow.is_empty() {
            push(Rule::ProvidersAllow(allow.to_vec()));
        }
        if !deny.is_empty() {
            push(Rule::ProvidersDeny(deny.to_vec()));
        }
    }
    if let Some(ad) = &r.deployments {
        let (allow, deny) = ad.lists();
        if !allow.is_empty() {
            push(Rule::DeploymentsAllow(allow.to_vec()));
        }
        if !deny.is_empty() {
            push(Rule::DeploymentsDeny(deny.to_vec()));
        }
    }
    if let Some(mp) = r.max_price {
        if let Some(i) = mp.input {
            push(Rule::MaxInputPrice(i));
        }
        if let Some(o) = mp.output {
            push(Rule::MaxOutputPrice(o));
        }
    }
    if !r.tags.is_empty() {
        push(Rule::Tags(r.tags.clone()));
    }
}

/// `Some(pii kinds the policy is about)` when every condition of `when` holds, else `None`.
fn when_holds(
    w: &WhenConfig,
    facts: &RequestFacts<'_>,
    body: &RequestBody,
    pii: &[Finding],
    prompt_tokens: u64,
) -> Option<Vec<String>> {
    let kinds = pii_kinds_of(w, pii);
    if w.pii.is_some() && kinds.is_empty() {
        return None;
    }
    others_hold(w, facts, body, prompt_tokens).map(|()| kinds)
}

/// `Some(())` when every condition of `when` except `pii` holds.
fn others_hold(
    w: &WhenConfig,
    facts: &RequestFacts<'_>,
    body: &RequestBody,
    prompt_tokens: u64,
) -> Option<()> {
    if let Some(models) = &w.model
        && !models.items().iter().any(|p| {
            glob_match(p, body.model()) || facts.model_owners.iter().any(|m| glob_match(p, m))
        })
    {
        return None;
    }
    for (name, pattern) in &w.header {
        let value = facts
            .headers
            .and_then(|h| h.get(name.as_str()))
            .and_then(|v| v.to_str().ok())?;
        if !glob_match(pattern, value) {
            return None;
        }
    }
    if let Some(keys) = &w.api_key {
        let id = facts.api_key_id?;
        let mut ids = std::iter::once(id).chain(facts.api_key_creators.iter().map(String::as_str));
        if !ids.any(|id| keys.items().iter().any(|p| glob_match(p, id))) {
            return None;
        }
    }
    if let Some(teams) = &w.team {
        let team = facts.team?;
        if !teams.items().iter().any(|p| glob_match(p, team)) {
            return None;
        }
    }
    if !w.tags.iter().all(|t| facts.key_tags.contains(t)) {
        return None;
    }
    if !w.metadata.is_empty() {
        let meta = request_metadata(body)?;
        for (k, pattern) in &w.metadata {
            let v = match meta.get(k)? {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            if !glob_match(pattern, &v) {
                return None;
            }
        }
    }
    if w.min_prompt_tokens.is_some_and(|min| prompt_tokens < min)
        || w.max_prompt_tokens.is_some_and(|max| prompt_tokens > max)
    {
        return None;
    }
    Some(())
}

/// The distinct kinds found that `when.pii` is about (none when it has no `pii`).
fn pii_kinds_of(w: &WhenConfig, pii: &[Finding]) -> Vec<String> {
    let mut kinds: Vec<String> = Vec::new();
    if let Some(want) = &w.pii {
        let want = want.items();
        for f in pii {
            if (want.contains(&"any") || want.contains(&f.kind.as_str()))
                && !kinds.contains(&f.kind)
            {
                kinds.push(f.kind.clone());
            }
        }
    }
    kinds
}

fn request_metadata(body: &RequestBody) -> Option<&serde_json::Map<String, Value>> {
    match body {
        RequestBody::Chat(r) => r.metadata.as_ref(),
        RequestBody::Generic(r) => r.extra.get("metadata").and_then(Value::as_object),
        RequestBody::Native(r) => r.metadata(),
    }
}

#[cfg(test)]
mod tests;
