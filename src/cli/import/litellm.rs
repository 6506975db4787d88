//! LiteLLM proxy `config.yaml` → Sluice config (as a JSON value in Sluice's schema, in the
//! order the keys are written), with a [`Note`] for every setting that was not carried over
//! or that means something slightly different in Sluice.
//!
//! Mapped: `model_list` entries → `deployments` (one per entry) and `models` (one per
//! `model_name`, its entries in `order`); provider prefixes → `provider` + `base_url`
//! ([`super::providers`]); `os.environ/VAR` → `${VAR}`; `rpm`/`tpm` → `limits.deployments`;
//! `input_cost_per_token`/`output_cost_per_token` → `price` (USD per 1M tokens);
//! `timeout`/`max_retries`/`weight` → `timeout_ms`/`retries`/`weight`;
//! `router_settings.fallbacks`, `num_retries`, `timeout`, `cooldown_time`, `routing_strategy`,
//! `model_group_alias` (and `litellm_settings.fallbacks`, `num_retries`, `request_timeout`) →
//! `models[].fallbacks`, `retries`, `timeout_ms`, `routing.cooldown_ms`, a `prefer` policy,
//! alias models; `general_settings.master_key` → `server.master_key`.

use super::providers;
use crate::config::ProviderKind;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashSet};

mod settings;

/// A setting that was not imported as it was, at its key path in the LiteLLM config
/// (`model_list[2].litellm_params.temperature`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// Key path in the LiteLLM config.
    pub path: String,
    /// What happened to it and why.
    pub message: String,
}

/// The result of [`convert`].
#[derive(Debug, Clone)]
pub struct Imported {
    /// The Sluice config, keys in the order they are written.
    pub config: Value,
    /// Everything not carried over as it was, in the order met.
    pub notes: Vec<Note>,
}

/// One deployment being built, with what the model list needs to know of it.
struct Dep {
    name: String,
    fields: Map<String, Value>,
    order: Option<f64>,
}

/// Everything gathered while walking the LiteLLM config.
#[derive(Default)]
struct Builder {
    notes: Vec<Note>,
    /// All `model_name`s (and aliases), so deployment names never take one.
    taken: HashSet<String>,
    deployments: Vec<Dep>,
    /// Model name → deployment names, in first-seen order of models.
    models: Vec<(String, Vec<String>)>,
    fallbacks: BTreeMap<String, Vec<String>>,
    limits: Map<String, Value>,
    server: Map<String, Value>,
    routing: Map<String, Value>,
    policies: Vec<Value>,
    /// Router-wide `num_retries`, given to deployments without `max_retries`.
    default_retries: Option<u64>,
    /// Router-wide `timeout` / `request_timeout`, seconds.
    default_timeout_s: Option<f64>,
    any_order: bool,
}

impl Builder {
    fn note(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.notes.push(Note {
            path: path.into(),
            message: message.into(),
        });
    }
}

/// Converts a parsed LiteLLM config. Never fails: what cannot be mapped becomes a [`Note`]
/// (a config that is not a mapping gives an empty Sluice config and one note).
pub fn convert(input: &Value) -> Imported {
    let mut b = Builder::default();
    let Some(top) = input.as_object() else {
        b.note("(top)", "not a mapping: nothing imported");
        return b.finish();
    };
    if let Some(Value::Array(list)) = top.get("model_list") {
        for e in list {
            if let Some(n) = e.get("model_name").and_then(Value::as_str) {
                b.taken.insert(n.to_string());
            }
        }
    }
    // Defaults first: they apply to every deployment.
    settings::defaults(&mut b, top);
    match top.get("model_list") {
        Some(Value::Array(list)) => {
            for (i, e) in list.iter().enumerate() {
                entry(&mut b, &format!("model_list[{i}]"), e);
            }
        }
        Some(_) => b.note("model_list", "not a list: no model imported"),
        None => b.note("model_list", "missing: no model imported"),
    }
    for (k, v) in top {
        match k.as_str() {
            "model_list" => {}
            "router_settings" => settings::router(&mut b, v),
            "litellm_settings" => settings::litellm(&mut b, v),
            "general_settings" => settings::general(&mut b, v),
            "environment_variables" => settings::environment(&mut b, v),
            other => b.note(other, "no Sluice equivalent; left out"),
        }
    }
    settings::strategy(&mut b, top.get("router_settings"));
    b.finish()
}

/// One `model_list` entry → one deployment under its model.
fn entry(b: &mut Builder, path: &str, e: &Value) {
    let Some(obj) = e.as_object() else {
        return b.note(path, "not a mapping; left out");
    };
    let Some(model_name) = obj.get("model_name").and_then(Value::as_str) else {
        return b.note(format!("{path}.model_name"), "missing; entry left out");
    };
    if model_name.contains('*') {
        return b.note(
            format!("{path}.model_name"),
            format!("`{model_name}`: wildcard routing has no Sluice equivalent; entry left out (list the models you serve)"),
        );
    }
    let Some(params) = obj.get("litellm_params").and_then(Value::as_object) else {
        return b.note(format!("{path}.litellm_params"), "missing; entry left out");
    };
    let pp = format!("{path}.litellm_params");
    let Some(model) = params.get("model").and_then(Value::as_str) else {
        return b.note(format!("{pp}.model"), "missing; entry left out");
    };
    let Some((provider, base, id)) = target(b, &pp, model, params) else {
        return;
    };
    let name = unique_name(b, model_name, &provider_label(model, provider));
    let mut d = Dep {
        name: name.clone(),
        fields: Map::new(),
        order: None,
    };
    d.fields.insert("name".into(), json!(name));
    d.fields.insert("provider".into(), json!(provider.as_str()));
    d.fields.insert("base_url".into(), json!(base));
    d.fields.insert("model".into(), json!(id));
    let mut limit = Map::new();
    let mut price = Prices::default();
    for (k, v) in params {
        param(
            b,
            &mut d,
            &mut limit,
            &mut price,
            &format!("{pp}.{k}"),
            k,
            v,
        );
    }
    for (k, v) in obj {
        let p = format!("{path}.{k}");
        match k.as_str() {
            "model_name" | "litellm_params" => {}
            "rpm" | "tpm" => set_limit(b, &mut limit, &p, k, v),
            "model_info" => model_info(b, &mut price, &p, v),
            _ => b.note(p, "no Sluice equivalent; left out"),
        }
    }
    price.apply(b, path, &mut d.fields);
    if !d.fields.contains_key("retries")
        && let Some(r) = b.default_retries
    {
        d.fields.insert("retries".into(), json!(r));
    }
    if !d.fields.contains_key("timeout_ms")
        && let Some(s) = b.default_timeout_s
    {
        d.fields
            .insert("timeout_ms".into(), json!(seconds_to_ms(s)));
    }
    if !limit.is_empty() {
        b.limits.insert(name.clone(), Value::Object(limit));
    }
    b.any_order |= d.order.is_some();
    match b.models.iter_mut().find(|(m, _)| m == model_name) {
        Some((_, deps)) => deps.push(name),
        None => b.models.push((model_name.to_string(), vec![name])),
    }
    b.deployments.push(d);
}

/// `(provider, base_url, model id)` of an entry, or `None` (with a note) when Sluice cannot
/// serve it.
fn target(
    b: &mut Builder,
    pp: &str,
    model: &str,
    params: &Map<String, Value>,
) -> Option<(ProviderKind, String, String)> {
    let api_base = params
        .get("api_base")
        .or_else(|| params.get("base_url"))
        .and_then(Value::as_str)
        .map(string_value);
    let (prefix, id) = providers::split(model);
    let t = match (&prefix, prefix.as_deref().and_then(providers::lookup)) {
        (_, Some(t)) => t,
        (Some(p), None) => {
            b.note(
                format!("{pp}.model"),
                format!("`{model}`: provider `{p}` has no Sluice equivalent (Sluice speaks OpenAI's, Anthropic's and Ollama's APIs); deployment left out"),
            );
            return None;
        }
        (None, None) if api_base.is_some() => {
            b.note(
                format!("{pp}.model"),
                format!("`{model}` has no provider prefix: imported as an OpenAI-compatible server at api_base"),
            );
            providers::lookup("hosted_vllm")?
        }
        (None, None) => {
            b.note(
                format!("{pp}.model"),
                format!("`{model}`: no provider prefix and no api_base; deployment left out"),
            );
            return None;
        }
    };
    let Some(base) = api_base.or(t.default_base.map(str::to_string)) else {
        b.note(
            format!("{pp}.api_base"),
            format!("`{model}` needs api_base (the server's address); deployment left out"),
        );
        return None;
    };
    let base = native_root(b, pp, t.provider, base);
    Some((t.provider, base, id))
}

/// Anthropic's and Ollama's `base_url` is the server root: a trailing `/v1` is cut off.
fn native_root(b: &mut Builder, pp: &str, provider: ProviderKind, base: String) -> String {
    let trimmed = base.trim_end_matches('/');
    if provider != ProviderKind::Openai && trimmed.ends_with("/v1") {
        let root = trimmed.trim_end_matches("/v1").to_string();
        b.note(
            format!("{pp}.api_base"),
            format!(
                "`{base}`: Sluice's {} provider takes the server root, imported as `{root}`",
                provider.as_str()
            ),
        );
        return root;
    }
    base
}

/// The provider part of a deployment's name: the LiteLLM prefix, else `openai`.
fn provider_label(model: &str, provider: ProviderKind) -> String {
    match providers::split(model).0 {
        Some(p) if model.starts_with(&format!("{p}/")) => p,
        _ => provider.as_str().to_string(),
    }
}

/// `{model_name}-{provider}`, with `-2`, `-3`… when taken (model and deployment names share
/// one namespace in Sluice).
fn unique_name(b: &mut Builder, model_name: &str, provider: &str) -> String {
    let base: String = format!("{model_name}-{provider}")
        .chars()
        .map(|c| if c.is_whitespace() { '-' } else { c })
        .collect();
    let mut name = base.clone();
    let mut n = 2;
    while b.taken.contains(&name) {
        name = format!("{base}-{n}");
        n += 1;
    }
    b.taken.insert(name.clone());
    name
}

/// One key of `litellm_params`.
fn param(
    b: &mut Builder,
    d: &mut Dep,
    limit: &mut Map<String, Value>,
    price: &mut Prices,
    path: &str,
    k: &str,
    v: &Value,
) {
    match k {
        "model" | "api_base" | "base_url" => {}
        "api_key" => match v.as_str() {
            Some(s) => {
                d.fields.insert("api_key".into(), json!(string_value(s)));
            }
            None => b.note(path, "not a string; left out"),
        },
        "rpm" | "tpm" => set_limit(b, limit, path, k, v),
        "timeout" | "request_timeout" => match number(v) {
            Some(s) => {
                d.fields
                    .insert("timeout_ms".into(), json!(seconds_to_ms(s)));
            }
            None => b.note(path, "not a number of seconds; left out"),
        },
        "stream_timeout" => b.note(
            path,
            "no single Sluice equivalent: `timeout_ms` bounds a stream until its headers and `stream_idle_timeout_ms` the silence between chunks; left out",
        ),
        "max_retries" | "num_retries" => match whole(v) {
            Some(r) => {
                d.fields.insert("retries".into(), json!(r));
            }
            None => b.note(path, "not a whole number; left out"),
        },
        "weight" => match number(v) {
            Some(w) if w > 0.0 => {
                d.fields.insert("weight".into(), json!(w));
            }
            _ => b.note(path, "not a positive number; left out"),
        },
        "order" => match number(v) {
            Some(o) => d.order = Some(o),
            None => b.note(path, "not a number; left out"),
        },
        "input_cost_per_token" | "output_cost_per_token" => price.set(b, path, k, v),
        _ => b.note(
            path,
            "no per-deployment equivalent in Sluice (clients send request parameters themselves); left out",
        ),
    }
}

/// `model_info`: prices are taken; the rest is LiteLLM's own bookkeeping.
fn model_info(b: &mut Builder, price: &mut Prices, path: &str, v: &Value) {
    let Some(info) = v.as_object() else {
        return b.note(path, "not a mapping; left out");
    };
    for (k, v) in info {
        let p = format!("{path}.{k}");
        match k.as_str() {
            "input_cost_per_token" | "output_cost_per_token" => price.set(b, &p, k, v),
            "mode" => b.note(p, "not needed: Sluice serves chat, completions and embeddings through every deployment"),
            "id" => b.note(p, "not needed: the deployment is named `{model_name}-{provider}`"),
            _ => b.note(p, "no Sluice equivalent (the catalog gives context window and openness); left out"),
        }
    }
}

/// Per-token prices of one entry, per 1M tokens once both are known.
#[derive(Default)]
struct Prices {
    input: Option<f64>,
    output: Option<f64>,
    path: Option<String>,
}

impl Prices {
    fn set(&mut self, b: &mut Builder, path: &str, k: &str, v: &Value) {
        let Some(x) = number(v).filter(|x| *x >= 0.0) else {
            return b.note(path, "not a non-negative number; left out");
        };
        let per_million = (x * 1e6 * 1e9).round() / 1e9;
        if k.starts_with("input") {
            self.input = Some(per_million);
        } else {
            self.output = Some(per_million);
        }
        self.path = Some(path.to_string());
    }

    fn apply(&self, b: &mut Builder, path: &str, fields: &mut Map<String, Value>) {
        match (self.input, self.output) {
            (Some(i), Some(o)) => {
                fields.insert("price".into(), json!({"input": i, "output": o}));
            }
            (None, None) => {}
            _ => b.note(
                self.path.clone().unwrap_or_else(|| path.to_string()),
                "only one of input_cost_per_token / output_cost_per_token: Sluice's `price` needs both; left out",
            ),
        }
    }
}

fn set_limit(b: &mut Builder, limit: &mut Map<String, Value>, path: &str, k: &str, v: &Value) {
    match whole(v).filter(|n| *n <= u64::from(u32::MAX)) {
        Some(n) => {
            limit.insert(k.to_string(), json!(n));
        }
        None => b.note(path, "not a whole number; left out"),
    }
}

impl Builder {
    fn finish(self) -> Imported {
        let models = self.model_values();
        let mut out = Map::new();
        if !self.server.is_empty() {
            out.insert("server".into(), Value::Object(self.server));
        }
        let deps: Vec<Value> = self
            .deployments
            .into_iter()
            .map(|d| Value::Object(d.fields))
            .collect();
        out.insert("deployments".into(), Value::Array(deps));
        out.insert("models".into(), Value::Array(models));
        if !self.limits.is_empty() {
            out.insert("limits".into(), json!({"deployments": self.limits}));
        }
        if !self.routing.is_empty() {
            out.insert("routing".into(), Value::Object(self.routing));
        }
        if !self.policies.is_empty() {
            out.insert("policies".into(), Value::Array(self.policies));
        }
        Imported {
            config: Value::Object(out),
            notes: self.notes,
        }
    }

    /// The `models:` list: deployments sorted by LiteLLM's `order` (lower first, unset last).
    fn model_values(&self) -> Vec<Value> {
        let order_of = |name: &str| {
            self.deployments
                .iter()
                .find(|d| d.name == name)
                .and_then(|d| d.order)
                .unwrap_or(f64::INFINITY)
        };
        let mut out = Vec::new();
        for (name, deps) in &self.models {
            let mut deps = deps.clone();
            deps.sort_by(|a, b| order_of(a).total_cmp(&order_of(b)));
            let mut m = Map::new();
            m.insert("name".into(), json!(name));
            m.insert("deployments".into(), json!(deps));
            if let Some(f) = self.fallbacks.get(name) {
                m.insert("fallbacks".into(), json!(f));
            }
            out.push(Value::Object(m));
        }
        out
    }

    /// Whether `name` is an imported model.
    fn has_model(&self, name: &str) -> bool {
        self.models.iter().any(|(m, _)| m == name)
    }
}

/// A string value: `os.environ/VAR` → `${VAR}`; a literal `${` is escaped as `$${`.
pub fn string_value(s: &str) -> String {
    match s.strip_prefix("os.environ/") {
        Some(var) => format!("${{{var}}}"),
        None => s.replace("${", "$${"),
    }
}

/// A number, also when written as a string (`"600"`).
fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|x: &f64| x.is_finite())
}

/// A whole non-negative number.
fn whole(v: &Value) -> Option<u64> {
    number(v)
        .filter(|x| *x >= 0.0 && x.fract() == 0.0 && *x < 1e15)
        .map(|x| x as u64)
}

fn seconds_to_ms(s: f64) -> u64 {
    (s.max(0.0) * 1000.0).round() as u64
}
