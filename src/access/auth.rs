//! Who is calling: the master key, virtual keys (declared in config, or created with
//! `sluice keys create` and kept in SQLite as SHA-256 hashes), or nobody when no master key is
//! set (then Sluice only listens on loopback).
//!
//! Keys are read from `Authorization: Bearer <key>` or `x-api-key: <key>`. A presented key is
//! hashed with SHA-256 and compared with stored hashes in constant time; keys, hashes and
//! `Authorization` headers never appear in logs, errors or traces.

use crate::api::ApiError;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A virtual key's settings (config `keys:` entries and SQLite rows share this shape).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySpec {
    /// Display name (unique).
    pub name: String,
    /// Config only: the secret itself, usually `${ENV_VAR}`. Never stored or shown.
    #[serde(default, skip_serializing)]
    pub key: Option<String>,
    /// Config only: the secret's SHA-256 as 64 hex digits (instead of `key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Model names this key may use (globs: `gpt-*`); empty = all.
    #[serde(default)]
    pub models: Vec<String>,
    /// Requests per minute (burst = the whole minute's quota, then one every 60/N s).
    #[serde(default)]
    pub rpm: Option<u32>,
    /// Tokens per minute (prompt estimate charged before the call, corrected after).
    #[serde(default)]
    pub tpm: Option<u32>,
    /// Spending limit.
    #[serde(default)]
    pub budget: Option<Budget>,
    /// Policies that always apply to this key's requests.
    #[serde(default)]
    pub policies: Vec<String>,
    /// Logging mode forced for this key (`full | redacted | metadata | off`).
    #[serde(default)]
    pub log: Option<String>,
    /// May use `/admin/*`, `/ui` and `/metrics`.
    #[serde(default)]
    pub admin: bool,
    /// Team, for budgets and usage per team.
    #[serde(default)]
    pub team: Option<String>,
    /// Free labels (policies may match them).
    #[serde(default)]
    pub tags: Vec<String>,
    /// Free key-value metadata.
    #[serde(default)]
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// Expiry, RFC 3339 or `YYYY-MM-DD` (UTC midnight).
    #[serde(default)]
    pub expires: Option<String>,
    /// Revoked keys stay listed but are refused.
    #[serde(default)]
    pub disabled: bool,
    /// The id of the key that made this one through `POST /admin/keys` (`master`,
    /// `cfg:<name>` or `key_…`); set by Sluice only, never by the request or the config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
}

/// A spending limit in USD per period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// Limit in USD.
    pub usd: f64,
    /// `day` or `month` (UTC calendar periods).
    pub period: BudgetPeriod,
    /// Count only remote spend: local deployments (price 0) keep working past the limit.
    #[serde(default)]
    pub remote_only: bool,
}

/// Budget period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BudgetPeriod {
    /// UTC calendar day.
    Day,
    /// UTC calendar month.
    Month,
}

/// The authenticated caller of one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    /// Key id (`master`, `cfg:<name>` or the SQLite id); `None` when auth is off.
    pub key_id: Option<String>,
    /// The key's settings (empty for the master key and when auth is off). Boxed: the
    /// principal moves through the handler and into the request's context (the settings are
    /// ~350 bytes).
    pub spec: Box<KeySpec>,
    /// May use admin routes.
    pub admin: bool,
    /// Set when this request may only go to local deployments (a `remote_only` budget is
    /// spent); the reason is shown in the routing explanation.
    pub local_only: Option<String>,
    /// The ids of the keys up this key's `created_by` chain, its maker first (`master` not
    /// included; empty for keys made by the master key or in config). A policy's
    /// `when.api_key` matches them as well as `key_id`.
    pub creators: Vec<String>,
    /// The limits of the keys in `creators` that have any (rpm, tpm or a budget), its maker
    /// first: a request counts against them as well as against the key's own, so a key
    /// cannot mint keys to get past its own limits and budget.
    pub creator_limits: Vec<CreatorLimits>,
}

/// The rate limits, budget and model allow-list of one key up a caller's `created_by` chain
/// ([`Principal::creator_limits`]); they hold for every key it made, down the chain.
#[derive(Debug, Clone, PartialEq)]
pub struct CreatorLimits {
    /// The maker's key id (`cfg:<name>` or a database key's id).
    pub key_id: String,
    /// Its requests per minute.
    pub rpm: Option<u32>,
    /// Its tokens per minute.
    pub tpm: Option<u32>,
    /// Its budget.
    pub budget: Option<Budget>,
    /// Its model allow-list (globs; empty = all).
    pub models: Vec<String>,
}

impl CreatorLimits {
    /// `spec`'s limits as the maker `key_id`; `None` when it has none.
    pub fn of(key_id: &str, spec: &KeySpec) -> Option<Self> {
        if spec.rpm.is_none()
            && spec.tpm.is_none()
            && spec.budget.is_none()
            && spec.models.is_empty()
        {
            return None;
        }
        Some(CreatorLimits {
            key_id: key_id.to_string(),
            rpm: spec.rpm,
            tpm: spec.tpm,
            budget: spec.budget.clone(),
            models: spec.models.clone(),
        })
    }
}

impl Principal {
    /// The caller when no master key is set: anonymous, admin, no limits.
    pub fn anonymous() -> Self {
        Principal {
            key_id: None,
            spec: Box::default(),
            admin: true,
            local_only: None,
            creators: Vec::new(),
            creator_limits: Vec::new(),
        }
    }

    /// The rate-limited keys this request counts against, `(key id, rpm, tpm)`: the caller's
    /// own key first, then its makers' up the chain. Only keys with a limit.
    pub fn rate_scopes(&self) -> impl Iterator<Item = (&str, Option<u32>, Option<u32>)> {
        let own = self
            .key_id
            .as_deref()
            .filter(|_| self.spec.rpm.is_some() || self.spec.tpm.is_some())
            .map(|id| (id, self.spec.rpm, self.spec.tpm));
        let makers = self
            .creator_limits
            .iter()
            .filter(|c| c.rpm.is_some() || c.tpm.is_some())
            .map(|c| (c.key_id.as_str(), c.rpm, c.tpm));
        own.into_iter().chain(makers)
    }

    /// The budgets this request counts against, `(key id, budget)`: the caller's own first,
    /// then its makers' up the chain.
    pub fn budgets(&self) -> impl Iterator<Item = (&str, &Budget)> {
        let own = self.key_id.as_deref().zip(self.spec.budget.as_ref());
        let makers = self
            .creator_limits
            .iter()
            .filter_map(|c| Some((c.key_id.as_str(), c.budget.as_ref()?)));
        own.into_iter().chain(makers)
    }

    /// Whether this caller may use `model`: its own allow-list and that of every key up its
    /// `created_by` chain allow it (globs; an empty list allows all). A key cannot reach a
    /// model its maker may not use, whatever patterns it was given.
    pub fn may_use(&self, model: &str) -> bool {
        allows(&self.spec.models, model)
            && self.creator_limits.iter().all(|c| allows(&c.models, model))
    }
}

/// Whether the allow-list `models` (globs; empty = all) lets `model` through.
pub fn allows(models: &[String], model: &str) -> bool {
    models.is_empty()
        || models.iter().any(|g| {
            glob::Pattern::new(g)
                .map(|p| p.matches(model))
                .unwrap_or(g == model)
        })
}

/// SHA-256 of a secret, as 32 bytes.
pub fn hash_key(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Constant-time equality of two hashes.
pub fn hashes_equal(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.ct_eq(b).into()
}

/// An `Authorization` header that is not `Bearer <key>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MalformedAuth;

/// The key a request presents: `Authorization: Bearer <key>`, else `x-api-key`.
/// `Err(MalformedAuth)` when an Authorization header is there but malformed.
pub fn presented_key(headers: &HeaderMap) -> Result<Option<String>, MalformedAuth> {
    if let Some(v) = headers.get(axum::http::header::AUTHORIZATION) {
        let v = v.to_str().map_err(|_| MalformedAuth)?;
        // The scheme is case-insensitive (RFC 9110 §11.1): `Bearer`, `bearer`, `BEARER`.
        let token = match v.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
            _ => return Err(MalformedAuth),
        };
        if token.is_empty() {
            return Err(MalformedAuth);
        }
        return Ok(Some(token.to_string()));
    }
    if let Some(v) = headers.get("x-api-key") {
        let v = v.to_str().map_err(|_| MalformedAuth)?.trim();
        return Ok((!v.is_empty()).then(|| v.to_string()));
    }
    Ok(None)
}

/// 401 `invalid_api_key` with `message`.
pub fn unauthorized(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "authentication_error", message)
        .with_code("invalid_api_key")
}

/// Parses `expires` (RFC 3339, or `YYYY-MM-DD` as UTC midnight) into Unix seconds.
pub fn parse_expiry(s: &str) -> Option<i64> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(t) = time::OffsetDateTime::parse(s, &Rfc3339) {
        return Some(t.unix_timestamp());
    }
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(s, &fmt)
        .ok()
        .map(|d| d.midnight().assume_utc().unix_timestamp())
}

/// Checks a found key's state at `now` (Unix seconds): revoked → 401, expired → 401.
pub fn check_usable(spec: &KeySpec, now: i64) -> Result<(), ApiError> {
    if spec.disabled {
        return Err(unauthorized("This API key has been revoked."));
    }
    if let Some(exp) = spec.expires.as_deref().and_then(parse_expiry)
        && now >= exp
    {
        return Err(unauthorized("This API key has expired."));
    }
    Ok(())
}

/// Keys declared in config, by hash.
#[derive(Debug, Clone, Default)]
pub struct ConfigKeys {
    entries: Vec<([u8; 32], KeySpec)>,
}

impl ConfigKeys {
    /// Builds the table from `keys:` entries. Errors name the entry:
    /// `(key path, message)`; two entries with one `name` are refused (a key is known by its
    /// name: `cfg:<name>` in the log, and as the maker of the keys it makes).
    pub fn new(specs: &[KeySpec]) -> Result<Self, (String, String)> {
        let mut entries = Vec::new();
        for (i, s) in specs.iter().enumerate() {
            if specs[..i].iter().any(|o| o.name == s.name) {
                return Err((
                    format!("keys[{i}].name"),
                    format!("duplicate key name `{}`", s.name),
                ));
            }
            let hash = match (&s.key, &s.sha256) {
                (Some(k), None) if !k.is_empty() => hash_key(k),
                (None, Some(h)) => parse_hex32(h).ok_or_else(|| {
                    (
                        format!("keys[{i}].sha256"),
                        "must be 64 hexadecimal digits".to_string(),
                    )
                })?,
                _ => {
                    return Err((
                        format!("keys[{i}]"),
                        "give exactly one of `key` (non-empty) or `sha256`".to_string(),
                    ));
                }
            };
            entries.push((hash, s.clone()));
        }
        Ok(ConfigKeys { entries })
    }

    /// The entry named `name`.
    pub fn by_name(&self, name: &str) -> Option<&KeySpec> {
        self.entries.iter().map(|(_, s)| s).find(|s| s.name == name)
    }

    /// The entry whose hash equals `hash` (every entry compared in constant time).
    pub fn find(&self, hash: &[u8; 32]) -> Option<&KeySpec> {
        let mut found = None;
        for (h, spec) in &self.entries {
            if hashes_equal(h, hash) {
                found = Some(spec);
            }
        }
        found
    }
}

fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    let bytes = hex::decode(s.trim()).ok()?;
    bytes.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presented_key_forms() {
        let mut h = HeaderMap::new();
        assert_eq!(presented_key(&h), Ok(None));
        h.insert("x-api-key", "sk-a".parse().unwrap());
        assert_eq!(presented_key(&h), Ok(Some("sk-a".into())));
        h.insert("authorization", "Bearer sk-b".parse().unwrap());
        assert_eq!(presented_key(&h), Ok(Some("sk-b".into())));
        h.insert("authorization", "BEARER sk-c".parse().unwrap());
        assert_eq!(presented_key(&h), Ok(Some("sk-c".into())));
        h.insert("authorization", "Basic abc".parse().unwrap());
        assert_eq!(presented_key(&h), Err(MalformedAuth));
        h.insert("authorization", "Bearersk-d".parse().unwrap());
        assert_eq!(presented_key(&h), Err(MalformedAuth));
    }

    #[test]
    fn config_keys_by_secret_or_hash() {
        let by_hash = hex::encode(hash_key("sk-two"));
        let keys = ConfigKeys::new(&[
            KeySpec {
                name: "one".into(),
                key: Some("sk-one".into()),
                ..Default::default()
            },
            KeySpec {
                name: "two".into(),
                sha256: Some(by_hash),
                ..Default::default()
            },
        ])
        .unwrap();
        assert_eq!(keys.find(&hash_key("sk-one")).unwrap().name, "one");
        assert_eq!(keys.find(&hash_key("sk-two")).unwrap().name, "two");
        assert!(keys.find(&hash_key("sk-three")).is_none());
        let bad = ConfigKeys::new(&[KeySpec {
            name: "x".into(),
            sha256: Some("zz".into()),
            ..Default::default()
        }]);
        assert_eq!(bad.unwrap_err().0, "keys[0].sha256");
    }

    #[test]
    fn expiry_and_revocation() {
        let mut s = KeySpec {
            expires: Some("2026-01-01".into()),
            ..Default::default()
        };
        let jan1 = parse_expiry("2026-01-01").unwrap();
        assert_eq!(jan1, 1767225600);
        assert!(check_usable(&s, jan1 - 1).is_ok());
        assert_eq!(
            check_usable(&s, jan1).unwrap_err().body.message,
            "This API key has expired."
        );
        s.expires = None;
        s.disabled = true;
        assert_eq!(
            check_usable(&s, 0).unwrap_err().status,
            StatusCode::UNAUTHORIZED
        );
    }

    #[test]
    fn two_config_keys_with_one_name_are_refused() {
        let key = |name: &str, secret: &str| KeySpec {
            name: name.into(),
            key: Some(secret.into()),
            ..Default::default()
        };
        assert!(ConfigKeys::new(&[key("ops", "sk-a"), key("dev", "sk-b")]).is_ok());
        assert_eq!(
            ConfigKeys::new(&[key("ops", "sk-a"), key("ops", "sk-b")]).err(),
            Some((
                "keys[1].name".to_string(),
                "duplicate key name `ops`".to_string()
            ))
        );
    }

    #[test]
    fn model_globs() {
        let p = Principal {
            key_id: Some("k".into()),
            spec: Box::new(KeySpec {
                models: vec!["gemma-*".into(), "default".into()],
                ..Default::default()
            }),
            admin: false,
            local_only: None,
            creators: Vec::new(),
            creator_limits: Vec::new(),
        };
        assert!(p.may_use("gemma-local"));
        assert!(p.may_use("default"));
        assert!(!p.may_use("gpt-4o"));
    }
}
