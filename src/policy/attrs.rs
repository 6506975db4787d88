//! What a deployment is for the policies: its config resolved against the catalog (hosting,
//! openness, freedoms, price).

use super::catalog::Catalog;
use super::tier::{self, Freedoms, Hosting, Openness};
use crate::config::{DeploymentConfig, Price};
use serde::Serialize;

/// What a deployment is, resolved from its config and the catalog.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeploymentAttrs {
    /// Deployment name.
    pub name: String,
    /// Provider kind (`openai`, `ollama`, `anthropic`).
    pub provider: &'static str,
    /// The backend's model id.
    pub model: String,
    /// Where it runs.
    pub hosting: Hosting,
    /// How open the model is.
    pub openness: Openness,
    /// The freedoms of this route (tier capped by hosting).
    pub freedoms: Freedoms,
    /// List price, USD per 1M tokens; `None` = unknown.
    pub price: Option<Price>,
    /// The catalog family it matched, if any.
    pub catalog_family: Option<String>,
    /// Licence from the catalog, if any.
    pub licence: Option<String>,
    /// Context window from the catalog, tokens, if known.
    pub context_window: Option<u64>,
    /// The most output tokens one answer may have: the deployment's `max_output_tokens`, else
    /// the catalog's `max_output`, where known.
    pub max_output: Option<u64>,
    /// The output cap Sluice sends when a request names none (tokens): an `anthropic`
    /// deployment's `max_tokens_default`, else its `max_output` (the model's limit), else 4096
    /// (Anthropic requires one); `None` for providers that send none (the backend's own limit
    /// applies).
    pub output_when_unset: Option<u64>,
    /// Tags from the config.
    pub tags: Vec<String>,
    /// Region from the config.
    pub region: Option<String>,
    /// Load-balancing weight (default 1).
    pub weight: f64,
}

impl DeploymentAttrs {
    /// Resolves `d`: explicit config first, then defaults (hosting `local` only for loopback and
    /// Unix-socket `base_url`s, see [`tier::is_local_url`], and never for Ollama
    /// cloud tags; openness from the catalog else `api`; price from config, else 0 for local,
    /// else the catalog's list price, else unknown).
    pub fn resolve(d: &DeploymentConfig, catalog: &Catalog) -> Self {
        let entry = catalog.lookup(&d.model);
        let hosting = d.hosting.unwrap_or_else(|| {
            if tier::is_local_url(&d.base_url) && !tier::is_cloud_tag(&d.model) {
                Hosting::Local
            } else {
                Hosting::Remote
            }
        });
        let openness = d
            .openness
            .or(entry.map(|e| e.tier))
            .unwrap_or(Openness::Api);
        let price = d.price.or(match hosting {
            Hosting::Local => Some(Price::default()),
            Hosting::Remote => entry.and_then(|e| e.price),
        });
        DeploymentAttrs {
            name: d.name.clone(),
            provider: d.provider.as_str(),
            model: d.model.clone(),
            hosting,
            openness,
            freedoms: Freedoms::of(openness, hosting),
            price,
            catalog_family: entry.map(|e| e.family.clone()),
            licence: entry.map(|e| e.licence.clone()),
            context_window: entry.and_then(|e| e.context_window),
            max_output: d
                .max_output_tokens
                .map(u64::from)
                .or_else(|| entry.and_then(|e| e.max_output)),
            // As `gateway::output_cap` fills it: `max_tokens_default`, else the model's
            // limit, else the provider's 4096.
            output_when_unset: (d.provider == crate::config::ProviderKind::Anthropic).then(|| {
                d.max_tokens_default
                    .map(u64::from)
                    .or(d.max_output_tokens.map(u64::from))
                    .or_else(|| entry.and_then(|e| e.max_output))
                    .unwrap_or(u64::from(
                        crate::providers::anthropic::request::DEFAULT_MAX_TOKENS,
                    ))
            }),
            tags: d.tags.clone(),
            region: d.region.clone(),
            weight: d.weight.unwrap_or(1.0),
        }
    }

    /// Cost of a call in USD, `prompt_tokens × input + completion_tokens × output` per 1M,
    /// ignoring prompt caches (the most a call may cost: budget reservations); `None` when the
    /// price is unknown.
    pub fn cost_usd(&self, prompt_tokens: u64, completion_tokens: u64) -> Option<f64> {
        self.price.map(|p| {
            (prompt_tokens as f64 * p.input + completion_tokens as f64 * p.output) / 1_000_000.0
        })
    }

    /// Cost of a finished call in USD per 1M tokens: uncached prompt tokens × `input`,
    /// cache reads × `cached_input`, cache writes × `cache_write` (each defaulting to `input`),
    /// completion tokens × `output`; `None` when the price is unknown.
    pub fn cost_of(&self, usage: &crate::api::Usage) -> Option<f64> {
        self.price.map(|p| {
            let cached = usage.cached_tokens.min(usage.prompt_tokens);
            let written = usage.cache_write_tokens.min(usage.prompt_tokens - cached);
            let plain = usage.prompt_tokens - cached - written;
            (plain as f64 * p.input
                + cached as f64 * p.cached_input.unwrap_or(p.input)
                + written as f64 * p.cache_write.unwrap_or(p.input)
                + usage.completion_tokens as f64 * p.output)
                / 1_000_000.0
        })
    }
}
