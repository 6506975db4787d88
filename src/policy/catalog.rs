//! The model catalog: openness tier, licence, context window and list price of well-known
//! model families, matched by glob patterns on a deployment's `model` id.
//!
//! The catalog shipped with Sluice is `config/catalog.yaml` (embedded); the config key
//! `catalog: FILE` names a file of the same shape whose entries are matched first.

use super::tier::Openness;
use crate::config::Price;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The embedded catalog, from `config/catalog.yaml`.
pub const EMBEDDED_CATALOG: &str = include_str!("../../config/catalog.yaml");

/// A catalog file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    entries: Vec<CatalogEntry>,
}

/// One model family (or one size of it with its own licence).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CatalogEntry {
    /// Family name, e.g. `Llama 3.2 1B/3B + Vision (Meta)`.
    pub family: String,
    /// Row of the openness reference data this entry comes from (informational).
    #[serde(default)]
    pub row: Option<u32>,
    /// Glob patterns on the model id (case-insensitive), e.g. `llama3.2*`.
    #[serde(rename = "match")]
    pub patterns: Vec<String>,
    /// Openness tier.
    pub tier: Openness,
    /// Licence of the weights.
    pub licence: String,
    /// Context window, tokens, where known.
    #[serde(default)]
    pub context_window: Option<u64>,
    /// The most output tokens one answer may have, where known.
    #[serde(default)]
    pub max_output: Option<u64>,
    /// List price, USD per 1M tokens, where the family is sold through an API.
    #[serde(default)]
    pub price: Option<Price>,
    /// Where the tier, licence or price comes from.
    pub source: String,
}

/// A loaded catalog: user entries first, then the embedded ones.
#[derive(Debug, Clone)]
pub struct Catalog {
    entries: Vec<(CatalogEntry, Vec<glob::Pattern>)>,
}

const MATCH: glob::MatchOptions = glob::MatchOptions {
    case_sensitive: false,
    require_literal_separator: false,
    require_literal_leading_dot: false,
};

impl Catalog {
    /// The embedded catalog alone.
    ///
    /// Errors: only if the embedded file is broken (a build defect, caught by its tests).
    pub fn embedded() -> Result<Self, String> {
        Self::from_texts(&[("embedded catalog (config/catalog.yaml)", EMBEDDED_CATALOG)])
    }

    /// The file at `path` (matched first), then the embedded catalog.
    ///
    /// Errors: the file cannot be read, is not valid YAML of the catalog's shape, or holds a
    /// bad glob; the message names the file.
    pub fn with_file(path: Option<&Path>) -> Result<Self, String> {
        match path {
            None => Self::embedded(),
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| format!("catalog {}: cannot read: {e}", p.display()))?;
                let name = format!("catalog {}", p.display());
                Self::from_texts(&[
                    (name.as_str(), text.as_str()),
                    ("embedded catalog (config/catalog.yaml)", EMBEDDED_CATALOG),
                ])
            }
        }
    }

    fn from_texts(texts: &[(&str, &str)]) -> Result<Self, String> {
        let mut entries = Vec::new();
        for (name, text) in texts {
            let file: CatalogFile =
                serde_saphyr::from_str(text).map_err(|e| format!("{name}: {e}"))?;
            for e in file.entries {
                let pats = e
                    .patterns
                    .iter()
                    .map(|p| glob::Pattern::new(p))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|err| format!("{name}: entry `{}`: bad pattern: {err}", e.family))?;
                entries.push((e, pats));
            }
        }
        Ok(Catalog { entries })
    }

    /// The first entry matching `model`: the whole id, or the part after its last `/`
    /// (`meta-llama/Llama-3.2-1B` → `Llama-3.2-1B`), case-insensitively.
    pub fn lookup(&self, model: &str) -> Option<&CatalogEntry> {
        let short = model.rsplit('/').next().unwrap_or(model);
        self.entries
            .iter()
            .find(|(_, pats)| {
                pats.iter()
                    .any(|p| p.matches_with(model, MATCH) || p.matches_with(short, MATCH))
            })
            .map(|(e, _)| e)
    }

    /// Every entry, in match order.
    pub fn entries(&self) -> impl Iterator<Item = &CatalogEntry> {
        self.entries.iter().map(|(e, _)| e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tier(c: &Catalog, model: &str) -> Option<Openness> {
        c.lookup(model).map(|e| e.tier)
    }

    #[test]
    fn the_embedded_catalog_covers_all_49_reference_rows_with_sources() {
        let c = Catalog::embedded().unwrap();
        let mut rows: Vec<u32> = c.entries().filter_map(|e| e.row).collect();
        rows.sort();
        rows.dedup();
        assert_eq!(rows, (1..=49).collect::<Vec<u32>>());
        for e in c.entries() {
            assert!(e.source.starts_with("https://"), "{}", e.family);
            assert!(!e.patterns.is_empty(), "{}", e.family);
        }
    }

    #[test]
    fn ids_and_ollama_tags_map_to_tiers() {
        let c = Catalog::embedded().unwrap();
        let cases = [
            ("gpt-4o-mini", Openness::Api),
            ("gpt-4o-2024-08-06", Openness::Api),
            ("gpt-oss:20b", Openness::OpenWeight),
            ("openai/gpt-oss-120b", Openness::OpenWeight),
            ("claude-sonnet-4-5", Openness::Api),
            ("gemini-2.5-flash", Openness::Api),
            ("gemma3:4b", Openness::AvailableWeights),
            ("google/gemma-3-27b-it", Openness::AvailableWeights),
            ("gemma4:12b", Openness::OpenWeight),
            ("llama3.2:1b", Openness::AvailableWeights),
            ("llama3.2", Openness::AvailableWeights),
            (
                "meta-llama/Llama-3.1-8B-Instruct",
                Openness::AvailableWeights,
            ),
            ("mistral:7b", Openness::OpenWeight),
            ("mistral-small:22b", Openness::AvailableWeights),
            ("mistral-small:24b", Openness::OpenWeight),
            ("qwen2.5:7b", Openness::OpenWeight),
            ("qwen2.5:3b", Openness::AvailableWeights),
            ("qwen2.5:72b", Openness::AvailableWeights),
            ("qwen3:8b", Openness::OpenWeight),
            ("deepseek-r1:70b", Openness::AvailableWeights),
            ("deepseek-r1:14b", Openness::OpenWeight),
            ("phi4-mini", Openness::OpenWeight),
            ("olmo2:7b", Openness::Reproducible),
            ("allenai/OLMo-2-1124-7B", Openness::Reproducible),
            ("EleutherAI/pythia-1b", Openness::Reproducible),
            ("smollm2:135m", Openness::Reproducible),
            ("swiss-ai/Apertus-8B-Instruct-2509", Openness::Reproducible),
            ("falcon:180b", Openness::AvailableWeights),
            ("falcon:7b", Openness::OpenWeight),
            ("granite3.3:8b", Openness::OpenWeight),
            ("kimi-k2:1t-cloud", Openness::AvailableWeights),
        ];
        for (model, want) in cases {
            assert_eq!(tier(&c, model), Some(want), "{model}");
        }
        assert_eq!(tier(&c, "my-private-model"), None);
    }

    #[test]
    fn prices_come_with_api_entries() {
        let c = Catalog::embedded().unwrap();
        let p = c.lookup("gpt-4o-mini").unwrap().price.unwrap();
        assert_eq!((p.input, p.output), (0.15, 0.60));
        let p = c.lookup("claude-haiku-4-5").unwrap().price.unwrap();
        assert_eq!((p.input, p.output), (1.0, 5.0));
        assert_eq!(c.lookup("llama3.2:1b").unwrap().price, None);
    }

    #[test]
    fn a_user_file_is_matched_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cat.yaml");
        std::fs::write(
            &path,
            "entries:\n  - family: Mine\n    match: [\"llama3.2*\"]\n    tier: reproducible\n    licence: mine\n    source: https://example.org\n",
        )
        .unwrap();
        let c = Catalog::with_file(Some(&path)).unwrap();
        assert_eq!(tier(&c, "llama3.2:1b"), Some(Openness::Reproducible));
        assert_eq!(tier(&c, "gpt-4o"), Some(Openness::Api));
        std::fs::write(&path, "entries: [{family: x}]\n").unwrap();
        let e = Catalog::with_file(Some(&path)).unwrap_err();
        assert!(e.contains("cat.yaml"), "{e}");
    }
}
