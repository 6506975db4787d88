//! `sampling:` block of a policy: sampling overrides a matching policy asks for. Parsed and
//! carried on the routing decision here; applying it to the upstream request is the job of the
//! sampling module.

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
    /// Reject requests that carry no `seed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_seed: Option<bool>,
}

impl SamplingConfig {
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
