//! LiteLLM's `router_settings`, `litellm_settings`, `general_settings` and
//! `environment_variables` blocks.

use super::{Builder, number, seconds_to_ms, string_value, whole};
use serde_json::{Map, Value, json};

/// Router-wide `num_retries` and `timeout` (also `litellm_settings.num_retries` and
/// `request_timeout`), read before the model list so every deployment gets them.
pub(super) fn defaults(b: &mut Builder, top: &Map<String, Value>) {
    for block in ["litellm_settings", "router_settings"] {
        let Some(s) = top.get(block).and_then(Value::as_object) else {
            continue;
        };
        if let Some(r) = s.get("num_retries").and_then(whole) {
            b.default_retries = Some(r);
        }
        for k in ["request_timeout", "timeout"] {
            if let Some(t) = s.get(k).and_then(number) {
                b.default_timeout_s = Some(t);
            }
        }
    }
}

/// `router_settings`.
pub(super) fn router(b: &mut Builder, v: &Value) {
    let Some(s) = v.as_object() else {
        return b.note("router_settings", "not a mapping; left out");
    };
    for (k, v) in s {
        let p = format!("router_settings.{k}");
        match k.as_str() {
            "routing_strategy" => {} // see `strategy`, once the models are known
            "num_retries" | "timeout" => retries_or_timeout(b, &p, k, v),
            "fallbacks" => fallbacks(b, &p, v),
            "model_group_alias" => aliases(b, &p, v),
            "cooldown_time" => match number(v).filter(|s| *s >= 0.0) {
                Some(s) => {
                    b.routing
                        .insert("cooldown_ms".into(), json!(seconds_to_ms(s)));
                }
                None => b.note(p, "not a number of seconds; left out"),
            },
            "allowed_fails" => b.note(
                p,
                "no Sluice equivalent: Sluice cools a deployment down after its first failed attempt (a model with one deployment never cools down); left out",
            ),
            "context_window_fallbacks" | "content_policy_fallbacks" | "default_fallbacks" => b
                .note(
                    p,
                    "no Sluice equivalent (Sluice falls back on errors and unavailability, per model: models[].fallbacks); left out",
                ),
            k if k.starts_with("redis_") => b.note(
                p,
                "Sluice keeps routing state in the process; left out",
            ),
            _ => b.note(p, "no Sluice equivalent; left out"),
        }
    }
}

/// `litellm_settings`.
pub(super) fn litellm(b: &mut Builder, v: &Value) {
    let Some(s) = v.as_object() else {
        return b.note("litellm_settings", "not a mapping; left out");
    };
    for (k, v) in s {
        let p = format!("litellm_settings.{k}");
        match k.as_str() {
            "num_retries" | "request_timeout" => retries_or_timeout(b, &p, k, v),
            "fallbacks" => fallbacks(b, &p, v),
            "drop_params" => b.note(
                p,
                "no switch in Sluice: a parameter a deployment cannot take is answered per its `supports:` list (docs/providers.md); left out",
            ),
            _ => b.note(p, "no Sluice equivalent; left out"),
        }
    }
}

/// `general_settings`: `master_key` → `server.master_key`.
pub(super) fn general(b: &mut Builder, v: &Value) {
    let Some(s) = v.as_object() else {
        return b.note("general_settings", "not a mapping; left out");
    };
    for (k, v) in s {
        let p = format!("general_settings.{k}");
        match (k.as_str(), v.as_str()) {
            ("master_key", Some(key)) => {
                b.server
                    .insert("master_key".into(), json!(string_value(key)));
                if !key.starts_with("os.environ/") {
                    b.note(
                        p,
                        "imported as written: a literal key in a config file; consider ${SLUICE_MASTER_KEY}",
                    );
                }
            }
            ("database_url", _) => b.note(
                p,
                "Sluice keeps its request log and keys in SQLite (`log:` block, docs/log.md); left out",
            ),
            _ => b.note(p, "no Sluice equivalent; left out"),
        }
    }
}

/// `environment_variables`: names only (values may be secrets).
pub(super) fn environment(b: &mut Builder, v: &Value) {
    let Some(s) = v.as_object() else {
        return b.note("environment_variables", "not a mapping; left out");
    };
    for k in s.keys() {
        b.note(
            format!("environment_variables.{k}"),
            "set it in Sluice's environment instead (the value is not copied); left out",
        );
    }
}

/// `num_retries`, `timeout`, `request_timeout`: read by [`defaults`]; here only checked.
fn retries_or_timeout(b: &mut Builder, p: &str, k: &str, v: &Value) {
    let ok = if k == "num_retries" {
        whole(v).is_some()
    } else {
        number(v).is_some()
    };
    if !ok {
        b.note(p, "not a number; left out");
    }
}

/// `fallbacks: [{model: [other, …]}, …]` → `models[].fallbacks`.
fn fallbacks(b: &mut Builder, p: &str, v: &Value) {
    let Some(list) = v.as_array() else {
        return b.note(p, "not a list; left out");
    };
    for (i, rule) in list.iter().enumerate() {
        let Some(rule) = rule.as_object() else {
            b.note(format!("{p}[{i}]"), "not a mapping; left out");
            continue;
        };
        for (model, targets) in rule {
            let rp = format!("{p}[{i}].{model}");
            if !b.has_model(model) {
                b.note(rp, format!("`{model}` is not an imported model; left out"));
                continue;
            }
            let targets: Vec<&str> = match targets {
                Value::Array(t) => t.iter().filter_map(Value::as_str).collect(),
                Value::String(s) => vec![s.as_str()],
                _ => Vec::new(),
            };
            for t in targets {
                if t == model || !b.has_model(t) {
                    b.note(
                        rp.clone(),
                        format!("fallback `{t}` is not another imported model; left out"),
                    );
                    continue;
                }
                let list = b.fallbacks.entry(model.clone()).or_default();
                if !list.iter().any(|x| x == t) {
                    list.push(t.to_string());
                }
            }
        }
    }
}

/// `model_group_alias: {alias: model}` (or `{alias: {model, hidden}}`) → a model of that name
/// over the same deployments.
fn aliases(b: &mut Builder, p: &str, v: &Value) {
    let Some(map) = v.as_object() else {
        return b.note(p, "not a mapping; left out");
    };
    for (alias, target) in map {
        let ap = format!("{p}.{alias}");
        let target = match target {
            Value::String(s) => s.as_str(),
            Value::Object(o) => {
                if o.get("hidden").and_then(Value::as_bool) == Some(true) {
                    b.note(
                        ap.clone(),
                        "`hidden` has no Sluice equivalent: the alias is listed by /v1/models",
                    );
                }
                o.get("model").and_then(Value::as_str).unwrap_or("")
            }
            _ => "",
        };
        let deps = b
            .models
            .iter()
            .find(|(m, _)| m == target)
            .map(|(_, d)| d.clone());
        match deps {
            Some(deps)
                if !b.has_model(alias) && !b.deployments.iter().any(|d| &d.name == alias) =>
            {
                b.models.push((alias.clone(), deps));
            }
            Some(_) => b.note(ap, format!("`{alias}` is already a name; left out")),
            None => b.note(ap, format!("`{target}` is not an imported model; left out")),
        }
    }
}

/// `routing_strategy` → a policy with `prefer:` for every request, when any model has more
/// than one deployment (else the order does not matter and nothing is written).
pub(super) fn strategy(b: &mut Builder, router: Option<&Value>) {
    let given = router
        .and_then(|r| r.get("routing_strategy"))
        .and_then(Value::as_str);
    let p = "router_settings.routing_strategy";
    let strategy = given.unwrap_or("simple-shuffle");
    let prefer = match strategy {
        "simple-shuffle" if b.any_order => {
            b.note(
                p,
                "`simple-shuffle` (LiteLLM's default) with `order` on deployments: imported as the model's list in `order` (Sluice's default, prefer: order); the shuffle within one order is not kept",
            );
            return;
        }
        "simple-shuffle" => "shuffle",
        "latency-based-routing" => "lowest_latency",
        "cost-based-routing" => "lowest_cost",
        "least-busy" | "usage-based-routing" | "usage-based-routing-v2" => {
            b.note(
                p,
                format!("`{strategy}` has no Sluice equivalent: imported as prefer: shuffle (a random order weighted by `weight`; `max_concurrency` and `limits:` cap a deployment)"),
            );
            "shuffle"
        }
        other => {
            b.note(
                p,
                format!("`{other}` is not a LiteLLM strategy Sluice knows; left out"),
            );
            return;
        }
    };
    if b.models.iter().any(|(_, d)| d.len() > 1) {
        b.policies.push(json!({
            "name": format!("litellm-{strategy}"),
            "prefer": prefer,
        }));
    }
}
