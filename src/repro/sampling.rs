//! Sampling overrides: what a deployment's `sampling:`, the matching policies' `sampling:` and
//! the client's `x-sluice-deterministic` header make of the client's sampling parameters, and
//! what each provider kind then receives (docs/reproducibility.md).
//!
//! - Levels, least specific first, each overriding the previous one field by field: the
//!   deployment's `sampling:`, the matching policies' merged `sampling:`, the request header
//!   `x-sluice-deterministic: true|false` (only with top-level `sampling.allow_client_header`).
//! - `deterministic: true` sets `temperature` 0, `top_p` 1, `top_k` 1 (where the backend has
//!   `top_k`), `n` 1, `presence_penalty` and `frequency_penalty` 0, the seed, and
//!   `cache_prompt: false` for backends with the `cache_prompt` capability (llama.cpp). Explicit
//!   `temperature`, `top_p`, `top_k` win over the shorthand; `max_temperature` then clamps;
//!   `strip` removes fields.
//! - The seed sent (`deterministic` or `require_seed`): the configured `seed`, else the
//!   client's, else 0; a plain `seed:` sets it too. Backends without a seed (Anthropic) get none.
//! - [`PROVIDER_MAP`] is the one table of what each provider kind receives for each parameter.

use crate::api::ApiError;
use crate::api::{Endpoint, RequestBody};
use crate::config::{Capability, DeploymentConfig, ProviderKind, SamplingConfig};
use crate::providers::caps::Caps;
use serde_json::{Map, Value};
use std::borrow::Cow;

/// The request header a client may send to ask for (or out of) deterministic sampling.
pub const CLIENT_HEADER: &str = "x-sluice-deterministic";

/// One row of the mapping table: an OpenAI request field, the capability the backend needs for
/// it (`None`: always sent when present), and where it goes upstream (`None`: not sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapping {
    /// OpenAI request field (`temperature`, …).
    pub field: &'static str,
    /// Capability the deployment needs for the field to be sent.
    pub needs: Option<Capability>,
    /// Upstream JSON path, `.`-separated (`options.temperature`); `None` = never sent.
    pub upstream: Option<&'static str>,
}

const fn m(
    field: &'static str,
    needs: Option<Capability>,
    upstream: Option<&'static str>,
) -> Mapping {
    Mapping {
        field,
        needs,
        upstream,
    }
}

/// The sampling parameters Sluice controls, per provider kind: (provider, mappings). Anthropic
/// clamps `temperature` to 0–1 (see [`crate::providers::anthropic`]).
pub const PROVIDER_MAP: [(ProviderKind, [Mapping; 8]); 3] = [
    (
        ProviderKind::Openai,
        [
            m("temperature", None, Some("temperature")),
            m("top_p", None, Some("top_p")),
            m("top_k", Some(Capability::TopK), Some("top_k")),
            m("seed", Some(Capability::Seed), Some("seed")),
            m("n", None, Some("n")),
            m("presence_penalty", None, Some("presence_penalty")),
            m("frequency_penalty", None, Some("frequency_penalty")),
            m(
                "cache_prompt",
                Some(Capability::CachePrompt),
                Some("cache_prompt"),
            ),
        ],
    ),
    (
        ProviderKind::Ollama,
        [
            m("temperature", None, Some("options.temperature")),
            m("top_p", None, Some("options.top_p")),
            m("top_k", Some(Capability::TopK), Some("options.top_k")),
            m("seed", Some(Capability::Seed), Some("options.seed")),
            m("n", None, None),
            m("presence_penalty", None, Some("options.presence_penalty")),
            m("frequency_penalty", None, Some("options.frequency_penalty")),
            m("cache_prompt", None, None),
        ],
    ),
    (
        ProviderKind::Anthropic,
        [
            m("temperature", None, Some("temperature")),
            m("top_p", None, Some("top_p")),
            m("top_k", Some(Capability::TopK), Some("top_k")),
            m("seed", None, None),
            m("n", None, None),
            m("presence_penalty", None, None),
            m("frequency_penalty", None, None),
            m("cache_prompt", None, None),
        ],
    ),
];

/// The mapping rows of `provider`.
pub fn mappings(provider: ProviderKind) -> &'static [Mapping; 8] {
    match provider {
        ProviderKind::Openai => &PROVIDER_MAP[0].1,
        ProviderKind::Ollama => &PROVIDER_MAP[1].1,
        ProviderKind::Anthropic => &PROVIDER_MAP[2].1,
    }
}

/// Whether `dep` can take a `seed`.
pub fn has_seed(dep: &DeploymentConfig) -> bool {
    mappings(dep.provider)
        .iter()
        .any(|m| m.field == "seed" && m.upstream.is_some())
        && Caps::of(dep).has(Capability::Seed)
}

/// What the overrides did for one upstream call.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Applied {
    /// Whether deterministic sampling was in force.
    pub deterministic: bool,
    /// The seed sent upstream; `None` when none was (`no-seed`).
    pub seed: Option<i64>,
    /// Client values that were overridden or stripped: `(field, client value as text)`.
    pub overridden: Vec<(String, String)>,
    /// With the response cache on and deterministic sampling: whether the answer came from
    /// the cache (`x-sluice-cache: hit|miss`).
    pub cache_hit: Option<bool>,
    /// Why deterministic sampling was asked for but could not be sent (`thinking`: Anthropic
    /// takes only `temperature: 1` and no `top_k` with extended thinking); the request then
    /// runs with the backend's own sampling and is not deterministic.
    pub impossible: Option<&'static str>,
}

impl Applied {
    /// The response headers: `x-sluice-sampling: deterministic; seed=42` (`custom` when only
    /// explicit overrides apply; `no-seed` when none was sent) and, when client values were
    /// changed, `x-sluice-overridden: temperature=1.3,top_p=0.5` (`logit_bias=stripped`).
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mode = match (self.deterministic, self.impossible) {
            (_, Some(why)) => format!("not-deterministic ({why})"),
            (true, None) => "deterministic".to_string(),
            (false, None) => "custom".to_string(),
        };
        let seed = match self.seed {
            Some(s) => format!("seed={s}"),
            None => "no-seed".to_string(),
        };
        let mut out = vec![("x-sluice-sampling", format!("{mode}; {seed}"))];
        if !self.overridden.is_empty() {
            let list: Vec<String> = self
                .overridden
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            out.push(("x-sluice-overridden", list.join(",")));
        }
        if let Some(hit) = self.cache_hit {
            out.push((
                "x-sluice-cache",
                if hit { "hit" } else { "miss" }.to_string(),
            ));
        }
        out
    }
}

/// The effective overrides for `dep`: its own `sampling:` overridden field by field by the
/// request-level block (policies, then the client header). `None` when neither sets anything.
pub fn effective(
    dep: &DeploymentConfig,
    request: Option<&SamplingConfig>,
) -> Option<SamplingConfig> {
    let mut out = dep.sampling.clone().unwrap_or_default();
    if let Some(r) = request {
        out.merge(r);
    }
    (!out.is_empty()).then_some(out)
}

/// Folds the client's `x-sluice-deterministic` header into the request-level block, when the
/// config allows it (`allowed`); otherwise the header is ignored.
///
/// Errors: 400 `invalid_request_error`, `param: "x-sluice-deterministic"`, for a value other
/// than `true` or `false`.
pub fn with_client_header(
    allowed: bool,
    headers: &axum::http::HeaderMap,
    request: &mut Option<SamplingConfig>,
) -> Result<(), ApiError> {
    let Some(v) = headers.get(CLIENT_HEADER).filter(|_| allowed) else {
        return Ok(());
    };
    let on = match v.to_str().map(|s| s.trim().to_ascii_lowercase()).as_deref() {
        Ok("true") => true,
        Ok("false") => false,
        _ => {
            return Err(ApiError::invalid_request(format!(
                "The `{CLIENT_HEADER}` header must be `true` or `false`."
            ))
            .with_param(CLIENT_HEADER));
        }
    };
    request
        .get_or_insert_with(SamplingConfig::default)
        .merge(&SamplingConfig {
            deterministic: Some(on),
            ..Default::default()
        });
    Ok(())
}

/// Why `dep` may not serve a request under `request` (the policies' and header's block merged
/// with the deployment's own): `require_seed` and no seed. `None` when it may.
pub fn exclusion(dep: &DeploymentConfig, request: Option<&SamplingConfig>) -> Option<String> {
    let eff = effective(dep, request)?;
    (eff.require_seed == Some(true) && !has_seed(dep)).then(|| {
        format!(
            "provider {} takes no seed (require_seed)",
            dep.provider.as_str()
        )
    })
}

/// The request as it goes to `dep`, after the overrides `cfg` (see the module docs), with the
/// sampling fields the backend lacks removed; and what was done (`None` without overrides or
/// for embeddings).
///
/// Errors: 500 when the changed request no longer reads as a request (cannot happen with a
/// validated config).
pub fn apply<'a>(
    body: &'a RequestBody,
    endpoint: Endpoint,
    dep: &DeploymentConfig,
    cfg: Option<&SamplingConfig>,
) -> Result<(Cow<'a, RequestBody>, Option<Applied>), ApiError> {
    if endpoint == Endpoint::Embeddings {
        return Ok((Cow::Borrowed(body), None));
    }
    if let RequestBody::Native(n) = body {
        return Ok(super::native_sampling::apply(body, n, cfg));
    }
    let caps = Caps::of(dep);
    let dropped = |row: &&Mapping| {
        let lacks = row.needs.is_some_and(|c| !caps.has(c));
        lacks && matches!(row.field, "top_k" | "seed" | "cache_prompt")
    };
    // Nothing to override and nothing to drop: the body goes on as it came, unserialised.
    if cfg.is_none()
        && !mappings(dep.provider)
            .iter()
            .filter(dropped)
            .any(|row| field(body, row.field).is_some())
    {
        return Ok((Cow::Borrowed(body), None));
    }
    let mut map = to_map(body);
    let applied = cfg.map(|c| override_fields(&mut map, c, dep, &caps));
    for row in mappings(dep.provider).iter().filter(dropped) {
        map.remove(row.field);
    }
    let out = from_map(body, map)?;
    let applied = applied.map(|mut a| {
        a.seed = sampling_field(&out, "seed")
            .and_then(|v| v.as_i64())
            .filter(|_| has_seed(dep));
        a
    });
    Ok((Cow::Owned(out), applied))
}

fn override_fields(
    map: &mut Map<String, Value>,
    cfg: &SamplingConfig,
    dep: &DeploymentConfig,
    caps: &Caps,
) -> Applied {
    let anthropic = dep.provider == ProviderKind::Anthropic;
    if anthropic && cfg.deterministic == Some(true) && thinking(map) {
        return thinking_refuses_determinism(map, cfg);
    }
    let det = cfg.deterministic == Some(true);
    let mut set: Vec<(&str, Value)> = Vec::new();
    if det {
        set.push(("temperature", Value::from(0.0)));
        // Current Claude models refuse `temperature` and `top_p` together: `top_p` is left
        // out there (removed below when the client sent one).
        if !anthropic {
            set.push(("top_p", Value::from(1.0)));
        }
        if caps.has(Capability::TopK) {
            set.push(("top_k", Value::from(1)));
        }
        set.push(("n", Value::from(1)));
        set.push(("presence_penalty", Value::from(0.0)));
        set.push(("frequency_penalty", Value::from(0.0)));
        if caps.has(Capability::CachePrompt) && dep.provider == ProviderKind::Openai {
            set.push(("cache_prompt", Value::Bool(false)));
        }
    }
    if let Some(t) = cfg.temperature {
        set.push(("temperature", Value::from(t)));
    }
    if let Some(p) = cfg.top_p {
        set.push(("top_p", Value::from(p)));
    }
    if let Some(k) = cfg.top_k {
        set.push(("top_k", Value::from(k)));
    }
    let wants_seed = det || cfg.require_seed == Some(true) || cfg.seed.is_some();
    if wants_seed && has_seed(dep) {
        let seed = cfg
            .seed
            .or_else(|| map.get("seed").and_then(Value::as_i64))
            .unwrap_or(0);
        set.push(("seed", Value::from(seed)));
    }
    let mut applied = set_fields(map, set, cfg, det);
    if anthropic && det && cfg.top_p.is_none() {
        drop_top_p(map, &mut applied);
    }
    applied
}

/// Whether the body asks for Anthropic's extended thinking (`thinking.type` other than
/// `disabled`).
pub(super) fn thinking(map: &Map<String, Value>) -> bool {
    map.get("thinking")
        .and_then(|t| t.get("type"))
        .and_then(Value::as_str)
        .is_some_and(|t| t != "disabled")
}

/// Deterministic sampling asked for with Anthropic's extended thinking, which takes only
/// `temperature: 1` and no `top_k`: nothing is forced (the backend would refuse it), the
/// request runs with the backend's own sampling and says so (`not-deterministic (thinking)`);
/// explicit values and `strip` still apply.
pub(super) fn thinking_refuses_determinism(
    map: &mut Map<String, Value>,
    cfg: &SamplingConfig,
) -> Applied {
    let explicit = SamplingConfig {
        deterministic: None,
        ..cfg.clone()
    };
    let mut set: Vec<(&str, Value)> = Vec::new();
    if let Some(t) = cfg.temperature {
        set.push(("temperature", Value::from(t)));
    }
    let mut applied = set_fields(map, set, &explicit, false);
    applied.impossible = Some("thinking");
    applied
}

/// Removes a client's `top_p` (Anthropic refuses it beside `temperature`), noting it in the
/// documented place (after `temperature`).
pub(super) fn drop_top_p(map: &mut Map<String, Value>, applied: &mut Applied) {
    if let Some(old) = map.remove("top_p") {
        applied.overridden.retain(|(f, _)| f != "top_p");
        let mut one = Applied::default();
        note(&mut one, "top_p", &old);
        let at = applied
            .overridden
            .iter()
            .position(|(f, _)| f != "temperature")
            .unwrap_or(applied.overridden.len());
        applied.overridden.splice(at..at, one.overridden);
    }
}

/// Writes `set` into `map`, caps `temperature` at `cfg.max_temperature` and removes
/// `cfg.strip`, noting each field that changed: the part shared by the chat and native paths.
pub(super) fn set_fields(
    map: &mut Map<String, Value>,
    set: Vec<(&str, Value)>,
    cfg: &SamplingConfig,
    det: bool,
) -> Applied {
    let mut applied = Applied {
        deterministic: det,
        ..Default::default()
    };
    for (k, v) in set {
        if let Some(old) = map.insert(k.to_string(), v.clone())
            && !same(&old, &v)
        {
            note(&mut applied, k, &old);
        }
    }
    if let Some(max) = cfg.max_temperature
        && let Some(t) = map.get("temperature").and_then(Value::as_f64)
        && t > max
        && let Some(old) = map.insert("temperature".into(), Value::from(max))
    {
        note(&mut applied, "temperature", &old);
    }
    for k in &cfg.strip {
        if map.remove(k).is_some() {
            applied.overridden.retain(|(f, _)| f != k);
            applied.overridden.push((k.clone(), "stripped".into()));
        }
    }
    applied
}

/// Records the client's value of `field` once (the first, i.e. the client's own).
pub(super) fn note(applied: &mut Applied, field: &str, old: &Value) {
    if applied.overridden.iter().any(|(f, _)| f == field) {
        return;
    }
    let text = match old {
        Value::String(s) => s.clone(),
        Value::Number(_) | Value::Bool(_) | Value::Null => old.to_string(),
        _ => "…".to_string(),
    };
    applied.overridden.push((field.to_string(), text));
}

/// Numbers compare by value (`1` = `1.0`).
pub(super) fn same(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

fn to_map(body: &RequestBody) -> Map<String, Value> {
    let v = match body {
        RequestBody::Chat(c) => serde_json::to_value(c),
        RequestBody::Generic(g) => serde_json::to_value(g),
        RequestBody::Native(n) => return n.body.clone(),
    };
    match v {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

fn from_map(like: &RequestBody, map: Map<String, Value>) -> Result<RequestBody, ApiError> {
    let v = Value::Object(map);
    let out = match like {
        RequestBody::Chat(_) => serde_json::from_value(v).map(RequestBody::Chat),
        RequestBody::Generic(_) => serde_json::from_value(v).map(RequestBody::Generic),
        RequestBody::Native(n) => {
            let mut n = n.clone();
            if let Value::Object(m) = v {
                n.body = m;
            }
            Ok(RequestBody::Native(n))
        }
    };
    out.map_err(|e| ApiError::internal(format!("sampling overrides broke the request: {e}")))
}

/// The value of an OpenAI sampling field in `body`.
fn sampling_field(body: &RequestBody, name: &str) -> Option<Value> {
    field(body, name).filter(|v| !v.is_null())
}

/// The value of the mapping table's field `name` (see [`PROVIDER_MAP`]) in `body` as the
/// client sent it (`Some(Null)` for an explicit `null` kept among the unknown fields), without
/// serialising the whole body.
fn field(body: &RequestBody, name: &str) -> Option<Value> {
    let c = match body {
        RequestBody::Chat(c) => c,
        RequestBody::Generic(g) => return g.extra.get(name).cloned(),
        RequestBody::Native(n) => return n.body.get(name).cloned(),
    };
    let num = |v: Option<f64>| v.map(Value::from);
    match name {
        "temperature" => num(c.temperature),
        "top_p" => num(c.top_p),
        "presence_penalty" => num(c.presence_penalty),
        "frequency_penalty" => num(c.frequency_penalty),
        "top_k" => c.top_k.map(Value::from),
        "n" => c.n.map(Value::from),
        "seed" => c.seed.map(Value::from),
        _ => c.extra.get(name).cloned(),
    }
}

/// The sampling parameters `dep` receives for `body` (already through [`apply`]), under their
/// upstream names (Ollama: nested under `options`), following [`PROVIDER_MAP`]; Anthropic's
/// `temperature` clamped to 0–1. `None` for embeddings. This is the log's `sampling` column.
pub fn upstream_params(
    body: &RequestBody,
    endpoint: Endpoint,
    dep: &DeploymentConfig,
) -> Option<Value> {
    if endpoint == Endpoint::Embeddings {
        return None;
    }
    let caps = Caps::of(dep);
    let mut out = Map::new();
    for row in mappings(dep.provider) {
        let Some(path) = row.upstream else { continue };
        if row.needs.is_some_and(|c| !caps.has(c)) {
            continue;
        }
        let Some(mut v) = sampling_field(body, row.field) else {
            continue;
        };
        if dep.provider == ProviderKind::Anthropic
            && row.field == "temperature"
            && let Some(t) = v.as_f64()
        {
            v = Value::from(t.clamp(0.0, 1.0));
        }
        if dep.provider == ProviderKind::Ollama && row.field == "n" {
            continue;
        }
        put_path(&mut out, path, v);
    }
    Some(Value::Object(out))
}

fn put_path(out: &mut Map<String, Value>, path: &str, v: Value) {
    match path.split_once('.') {
        Some((head, rest)) => {
            let inner = out
                .entry(head.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(m) = inner {
                put_path(m, rest, v);
            }
        }
        None => {
            out.insert(path.to_string(), v);
        }
    }
}

#[cfg(test)]
#[path = "sampling_tests.rs"]
mod tests;
