//! The policy language (`policies:`), custom PII detectors (`pii:`) and routing settings
//! (`routing:`). Semantics live in [`crate::policy`] and [`crate::gateway::route`]; this module is the
//! YAML schema and its validation. See docs/policies.md.

pub use super::log::LogMode;
use super::sampling::SamplingConfig;
use crate::policy::tier::{Freedom, Hosting, Openness};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One policy. Every policy whose `when` holds applies, in file order.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Name, shown in `x-sluice-policies`, logs and explanations.
    pub name: String,
    /// Conditions, all of which must hold; absent = always.
    #[serde(default)]
    pub when: WhenConfig,
    /// Constraints on the deployments that may serve the request (combined with those of the
    /// other matching policies by intersection).
    #[serde(default)]
    pub require: RequireConfig,
    /// Order among the eligible deployments; the last matching policy that sets it wins.
    #[serde(default)]
    pub prefer: Option<Prefer>,
    /// `deny` rejects the request with 403 `policy_denied` and `message`.
    #[serde(default)]
    pub action: Option<Action>,
    /// Message of a `deny` (shown to the client).
    #[serde(default)]
    pub message: Option<String>,
    /// What to do when the request carries personal data: `route_local` (default: the
    /// `require` constraints apply), `redact` (placeholders go to remote routes, `require.hosting`
    /// is lifted) or `block` (403).
    #[serde(default)]
    pub pii_action: Option<PiiAction>,
    /// Sampling overrides (applied by the sampling module, carried on the decision here).
    #[serde(default)]
    pub sampling: Option<SamplingConfig>,
    /// Logging mode for matching requests, overriding the global one.
    #[serde(default)]
    pub log: Option<LogMode>,
}

/// `when:`. Absent fields always hold.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WhenConfig {
    /// Requested model name: one glob or a list (`gpt-*`).
    #[serde(default)]
    pub model: Option<OneOrMany>,
    /// `any`, or a list of PII kinds (`[email, iban]`).
    #[serde(default)]
    pub pii: Option<OneOrMany>,
    /// Header name (case-insensitive) → exact value or glob.
    #[serde(default)]
    pub header: BTreeMap<String, String>,
    /// API key ids (globs); holds only once keys exist and the request used one of them.
    #[serde(default)]
    pub api_key: Option<OneOrMany>,
    /// Team names (globs), once keys exist.
    #[serde(default)]
    pub team: Option<OneOrMany>,
    /// Key tags that must all be present, once keys exist.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Fields of the request's `metadata` object → exact value or glob.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// Lowest estimated prompt size, tokens (about 4 characters per token).
    #[serde(default)]
    pub min_prompt_tokens: Option<u64>,
    /// Highest estimated prompt size, tokens.
    #[serde(default)]
    pub max_prompt_tokens: Option<u64>,
}

/// `require:`. Every field is a constraint; all must hold for a deployment to be eligible.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RequireConfig {
    /// Where the deployment must run.
    #[serde(default)]
    pub hosting: Option<Hosting>,
    /// Least openness tier.
    #[serde(default)]
    pub min_openness: Option<Openness>,
    /// Least level per freedom, e.g. `{data_control: complete, trust: partial}`.
    #[serde(default)]
    pub freedoms: BTreeMap<String, String>,
    /// Provider kinds allowed/denied (`openai`, `ollama`, `anthropic`).
    #[serde(default)]
    pub providers: Option<AllowDeny>,
    /// Deployment names (globs) allowed/denied.
    #[serde(default)]
    pub deployments: Option<AllowDeny>,
    /// Highest list price, USD per 1M tokens; a deployment of unknown price fails it.
    #[serde(default)]
    pub max_price: Option<MaxPrice>,
    /// Deployment tags that must all be present.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// An allow list, or `{allow: [..], deny: [..]}`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum AllowDeny {
    /// A plain list: only these are allowed.
    Allow(Vec<String>),
    /// Both lists.
    Both(AllowDenyLists),
}

/// `{allow: [..], deny: [..]}`; an empty `allow` allows everything not denied.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AllowDenyLists {
    /// Only these (globs); empty = all.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Never these (globs).
    #[serde(default)]
    pub deny: Vec<String>,
}

impl AllowDeny {
    /// `(allow, deny)`.
    pub fn lists(&self) -> (&[String], &[String]) {
        match self {
            AllowDeny::Allow(a) => (a, &[]),
            AllowDeny::Both(l) => (&l.allow, &l.deny),
        }
    }
}

/// `max_price:` USD per 1M tokens; either bound may be left out.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MaxPrice {
    /// Highest input price, USD per 1M prompt tokens.
    #[serde(default)]
    pub input: Option<f64>,
    /// Highest output price, USD per 1M completion tokens.
    #[serde(default)]
    pub output: Option<f64>,
}

/// One string or a list of strings.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum OneOrMany {
    /// A single value.
    One(String),
    /// Several values.
    Many(Vec<String>),
}

impl OneOrMany {
    /// The values as a list.
    pub fn items(&self) -> Vec<&str> {
        match self {
            OneOrMany::One(s) => vec![s.as_str()],
            OneOrMany::Many(v) => v.iter().map(String::as_str).collect(),
        }
    }
}

/// How eligible deployments are ordered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Prefer {
    /// The order of the model's `deployments` list.
    #[default]
    Order,
    /// Cheapest first (input + output list price; unknown price last).
    LowestCost,
    /// Highest openness tier first.
    MostOpen,
    /// Local deployments first, then the list order.
    LocalFirst,
    /// Lowest observed latency first (deployments not yet measured first, to measure them).
    LowestLatency,
    /// A random order drawn per request, weighted by each deployment's `weight` (load
    /// spreading, as LiteLLM's `simple-shuffle`).
    Shuffle,
}

impl Prefer {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Prefer::Order => "order",
            Prefer::LowestCost => "lowest_cost",
            Prefer::MostOpen => "most_open",
            Prefer::LocalFirst => "local_first",
            Prefer::LowestLatency => "lowest_latency",
            Prefer::Shuffle => "shuffle",
        }
    }
}

/// `action:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Let the request through (the default; useful to only set `prefer` or `log`).
    Allow,
    /// Reject with 403 `policy_denied`.
    Deny,
}

/// `pii_action:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PiiAction {
    /// The policy's constraints apply (usually `hosting: local`).
    RouteLocal,
    /// Replace each item by a placeholder before the request goes to a remote deployment; the
    /// client gets the originals back.
    Redact,
    /// Reject with 403 `pii_blocked`.
    Block,
}

/// `pii:` block: detectors of your own, beside the built-in ones.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PiiConfig {
    /// Regular expressions (Rust `regex` syntax), each a kind of its own.
    #[serde(default)]
    pub patterns: Vec<PiiPattern>,
    /// Keyword lists (whole words, case-insensitive), each a kind of its own.
    #[serde(default)]
    pub keywords: Vec<PiiKeywords>,
    /// Built-in kinds to turn off (`ip`, `phone`, …).
    #[serde(default)]
    pub disable: Vec<String>,
}

/// A user-defined regex detector.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PiiPattern {
    /// The kind name (`employee_id`); placeholders are `[EMPLOYEE_ID_1]`.
    pub name: String,
    /// The regex.
    pub regex: String,
}

/// A user-defined keyword detector.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PiiKeywords {
    /// The kind name.
    pub name: String,
    /// The words or phrases.
    pub words: Vec<String>,
}

/// `routing:` block.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingConfig {
    /// How long a failing deployment is skipped, ms. Default 30 000; a 429 with
    /// `Retry-After` uses that instead. 0 turns cooldowns off.
    #[serde(default = "default_cooldown_ms")]
    pub cooldown_ms: u64,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        RoutingConfig {
            cooldown_ms: default_cooldown_ms(),
        }
    }
}

fn default_cooldown_ms() -> u64 {
    30_000
}

/// The names of the built-in PII kinds.
pub const BUILTIN_PII_KINDS: [&str; 8] = [
    "email", "phone", "card", "iban", "ip", "ssn", "dni", "secret",
];

/// The kind of a binary payload (base64 image, file or audio) that cannot be scanned:
/// `when: {pii: unscannable}` matches it, and `pii: any` includes it (fail closed).
pub const UNSCANNABLE: &str = "unscannable";

/// Checks the `policies:` and `pii:` blocks. Errors are `(key path, message)`.
pub fn validate(policies: &[PolicyConfig], pii: &PiiConfig) -> Result<(), (String, String)> {
    let mut kinds: Vec<String> = BUILTIN_PII_KINDS.iter().map(|s| s.to_string()).collect();
    kinds.push(UNSCANNABLE.to_string());
    for (i, p) in pii.patterns.iter().enumerate() {
        check_kind_name(&p.name).map_err(|m| (format!("pii.patterns[{i}].name"), m))?;
        regex::Regex::new(&p.regex).map_err(|e| {
            (
                format!("pii.patterns[{i}].regex"),
                format!("bad regex: {e}"),
            )
        })?;
        kinds.push(p.name.clone());
    }
    for (i, k) in pii.keywords.iter().enumerate() {
        check_kind_name(&k.name).map_err(|m| (format!("pii.keywords[{i}].name"), m))?;
        if k.words.iter().all(|w| w.trim().is_empty()) {
            return Err((
                format!("pii.keywords[{i}].words"),
                "must not be empty".into(),
            ));
        }
        kinds.push(k.name.clone());
    }
    for (i, d) in pii.disable.iter().enumerate() {
        if !BUILTIN_PII_KINDS.contains(&d.as_str()) {
            return Err((
                format!("pii.disable[{i}]"),
                format!(
                    "unknown built-in kind `{d}` (one of {})",
                    BUILTIN_PII_KINDS.join(", ")
                ),
            ));
        }
    }
    let mut names = std::collections::HashSet::new();
    for (i, p) in policies.iter().enumerate() {
        let at = |k: &str| format!("policies[{i}].{k}");
        if p.name.trim().is_empty() {
            return Err((at("name"), "must not be empty".into()));
        }
        if !names.insert(p.name.as_str()) {
            return Err((at("name"), format!("duplicate policy name `{}`", p.name)));
        }
        if let Some(pii_when) = &p.when.pii {
            for k in pii_when.items() {
                if k != "any" && !kinds.iter().any(|x| x == k) {
                    return Err((
                        at("when.pii"),
                        format!(
                            "unknown PII kind `{k}` (use `any`, a built-in kind or a pii.patterns/keywords name)"
                        ),
                    ));
                }
            }
        }
        for globs in [&p.when.model, &p.when.api_key, &p.when.team]
            .into_iter()
            .flatten()
        {
            for g in globs.items() {
                check_glob(g).map_err(|m| (at("when"), m))?;
            }
        }
        for (h, v) in &p.when.header {
            axum::http::HeaderName::from_bytes(h.as_bytes())
                .map_err(|_| (at("when.header"), format!("`{h}` is not a header name")))?;
            check_glob(v).map_err(|m| (at(&format!("when.header.{h}")), m))?;
        }
        for (f, level) in &p.require.freedoms {
            let freedom = Freedom::ALL.iter().find(|x| x.key() == f).ok_or_else(|| {
                (
                    at("require.freedoms"),
                    format!("unknown freedom `{f}` (access, model_control, data_control, autonomy, trust)"),
                )
            })?;
            if freedom.rank(level).is_none() {
                return Err((
                    at(&format!("require.freedoms.{f}")),
                    format!(
                        "unknown level `{level}` (one of {})",
                        freedom.levels().join(", ")
                    ),
                ));
            }
        }
        if let Some(ad) = &p.require.deployments {
            let (a, d) = ad.lists();
            for g in a.iter().chain(d) {
                check_glob(g).map_err(|m| (at("require.deployments"), m))?;
            }
        }
        if let Some(ad) = &p.require.providers {
            let (a, d) = ad.lists();
            for name in a.iter().chain(d) {
                if !["openai", "ollama", "anthropic"].contains(&name.as_str()) {
                    return Err((
                        at("require.providers"),
                        format!("unknown provider `{name}` (openai, ollama, anthropic)"),
                    ));
                }
            }
        }
        match (p.action, &p.message) {
            (Some(Action::Deny), None) => {
                return Err((at("message"), "`action: deny` needs a `message`".into()));
            }
            (Some(Action::Allow) | None, Some(_)) => {
                return Err((
                    at("message"),
                    "`message` is only used with `action: deny`".into(),
                ));
            }
            _ => {}
        }
        if p.pii_action.is_some() && p.when.pii.is_none() {
            return Err((
                at("pii_action"),
                "`pii_action` needs a `when.pii` condition to act on".into(),
            ));
        }
    }
    Ok(())
}

fn check_kind_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !ok {
        return Err(format!(
            "`{name}` must be lowercase letters, digits and `_` (it becomes the placeholder name)"
        ));
    }
    if BUILTIN_PII_KINDS.contains(&name) || name == "any" || name == UNSCANNABLE {
        return Err(format!("`{name}` is a built-in kind name"));
    }
    Ok(())
}

fn check_glob(g: &str) -> Result<(), String> {
    glob::Pattern::new(g)
        .map(|_| ())
        .map_err(|e| format!("bad pattern `{g}`: {e}"))
}
