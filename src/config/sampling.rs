//! `sampling:` blocks: the overrides a policy or a deployment asks for ([`SamplingConfig`]),
//! the top-level `sampling:` settings ([`SamplingSettings`]) and the response cache
//! (`cache:`, [`CacheConfig`]). Applying them to the upstream request is the job of
//! [`crate::repro::sampling`] (docs/reproducibility.md).

use serde::{Deserialize, Serialize};

/// Sampling overrides of a policy. Every field is optional; when several matching policies set
/// the same field, the last matching policy wins for that field.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SamplingConfig {
    /// Greedy, reproducible decoding (temperature 0, top_k 1, top_p 1, fixed seed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deterministic: Option<bool>,
    /// Seed to send upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    /// Temperature to force (0–2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// `top_p` to force (0–1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// `top_k` to force.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u32>,
    /// Upper bound for the client's temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_temperature: Option<f64>,
    /// Request fields to remove before the request leaves (e.g. `logit_bias`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub strip: Vec<String>,
    /// Only deployments that take a `seed` may serve the request (others are excluded with a
    /// reason in the 403 explanation), and a seed is always sent (the configured one, else the
    /// client's, else 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_seed: Option<bool>,
}

/// Request fields a `strip:` list may not name: without them there is no request.
const UNSTRIPPABLE: [&str; 6] = [
    "model",
    "messages",
    "prompt",
    "input",
    "stream",
    "stream_options",
];

impl SamplingConfig {
    /// Whether any field is set.
    pub fn is_empty(&self) -> bool {
        *self == SamplingConfig::default()
    }

    /// Checks ranges (`temperature`, `max_temperature` 0–2, `top_p` 0–1, `top_k` ≥ 1) and that
    /// `strip` names no field the request cannot do without. Errors are `(key path, message)`
    /// under `path` (e.g. `policies[0].sampling`).
    pub fn validate(&self, path: &str) -> Result<(), (String, String)> {
        let range = |key: &str, v: Option<f64>, max: f64| match v {
            Some(x) if !(0.0..=max).contains(&x) => Err((
                format!("{path}.{key}"),
                format!("must be between 0 and {max}"),
            )),
            _ => Ok(()),
        };
        range("temperature", self.temperature, 2.0)?;
        range("max_temperature", self.max_temperature, 2.0)?;
        range("top_p", self.top_p, 1.0)?;
        if self.top_k == Some(0) {
            return Err((format!("{path}.top_k"), "must be at least 1".into()));
        }
        for (i, s) in self.strip.iter().enumerate() {
            if UNSTRIPPABLE.contains(&s.as_str()) {
                return Err((
                    format!("{path}.strip[{i}]"),
                    format!("`{s}` cannot be stripped"),
                ));
            }
        }
        Ok(())
    }

    /// Field-wise merge: each field set in `later` replaces the one in `self`; `strip` lists are
    /// joined (without duplicates).
    pub fn merge(&mut self, later: &SamplingConfig) {
        fn take<T: Clone>(a: &mut Option<T>, b: &Option<T>) {
            if b.is_some() {
                a.clone_from(b);
            }
        }
        take(&mut self.deterministic, &later.deterministic);
        take(&mut self.seed, &later.seed);
        take(&mut self.temperature, &later.temperature);
        take(&mut self.top_p, &later.top_p);
        take(&mut self.top_k, &later.top_k);
        take(&mut self.max_temperature, &later.max_temperature);
        take(&mut self.require_seed, &later.require_seed);
        for s in &later.strip {
            if !self.strip.contains(s) {
                self.strip.push(s.clone());
            }
        }
    }
}

/// Top-level `sampling:` settings.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SamplingSettings {
    /// Whether clients may ask with the request header `x-sluice-deterministic: true|false`.
    /// Default false: the header is ignored.
    #[serde(default)]
    pub allow_client_header: bool,
}

/// `cache:` block: answer a repeated deterministic request from the request log.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// Default false.
    #[serde(default)]
    pub enabled: bool,
    /// How old a logged answer may be to be served, seconds. Default 86 400 (one day).
    #[serde(default = "default_ttl")]
    pub ttl_s: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            enabled: false,
            ttl_s: default_ttl(),
        }
    }
}

fn default_ttl() -> u64 {
    86_400
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_fields_win_one_by_one() {
        let mut a = SamplingConfig {
            deterministic: Some(true),
            seed: Some(1),
            strip: vec!["logit_bias".into()],
            ..Default::default()
        };
        let b = SamplingConfig {
            seed: Some(42),
            temperature: Some(0.0),
            strip: vec!["logit_bias".into(), "n".into()],
            ..Default::default()
        };
        a.merge(&b);
        assert_eq!(a.deterministic, Some(true));
        assert_eq!(a.seed, Some(42));
        assert_eq!(a.temperature, Some(0.0));
        assert_eq!(a.strip, vec!["logit_bias".to_string(), "n".to_string()]);
    }
}
