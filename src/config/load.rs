//! Loading a config: where it comes from ([`locate`]), reading and parsing it ([`load`],
//! [`parse`]: YAML with `${VAR}` expansion, errors naming the file, key path and line), and
//! the checks a parsed config must pass (`Config::validate`).

use super::*;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Where a config came from (shown by `serve` and `check`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// A file on disk.
    File(PathBuf),
    /// The default config embedded in the binary.
    Embedded,
}

impl std::fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigSource::File(p) => write!(f, "{}", p.display()),
            ConfigSource::Embedded => write!(f, "embedded default (config/sluice.yaml)"),
        }
    }
}

/// A config error, naming the file, the key path and, where known, the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file (or "embedded default").
    pub source: String,
    /// Key path such as `deployments[1].base_url`, when known.
    pub path: Option<String>,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.source)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(path) = &self.path {
            write!(f, ": {path}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Finds the config to use: `explicit` (from `--config`), else `$SLUICE_CONFIG`, else
/// `./sluice.yaml` when it exists, else the embedded default.
pub fn locate(explicit: Option<&Path>) -> ConfigSource {
    if let Some(p) = explicit {
        return ConfigSource::File(p.to_path_buf());
    }
    if let Ok(p) = std::env::var("SLUICE_CONFIG")
        && !p.is_empty()
    {
        return ConfigSource::File(PathBuf::from(p));
    }
    let local = PathBuf::from("sluice.yaml");
    if local.exists() {
        return ConfigSource::File(local);
    }
    ConfigSource::Embedded
}

/// Reads, expands, parses and validates the config from `source`.
///
/// Errors: unreadable file, a `${VAR}` that is unset, YAML syntax, unknown key, missing
/// field, wrong type, and the checks of [`Config::validate`].
pub fn load(source: &ConfigSource) -> Result<Config, ConfigError> {
    let (name, text) = match source {
        ConfigSource::File(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| ConfigError {
                source: p.display().to_string(),
                path: None,
                line: None,
                message: format!("cannot read: {e}"),
            })?;
            (p.display().to_string(), text)
        }
        ConfigSource::Embedded => (source.to_string(), DEFAULT_CONFIG.to_string()),
    };
    parse(&name, &text)
}

/// Parses config text (after `${VAR}` expansion) and validates it. `name` is used in errors.
pub fn parse(name: &str, text: &str) -> Result<Config, ConfigError> {
    parse_with_env(name, text, |k| std::env::var(k).ok())
}

/// [`parse`] with the `${VAR}` values taken from `lookup` instead of the environment (e.g. to
/// check a generated config whose variables are set only where it will run).
pub fn parse_with_env(
    name: &str,
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let expanded = expand::expand_env(text, lookup).map_err(|e| ConfigError {
        source: name.to_string(),
        path: None,
        line: Some(e.line),
        message: format!(
            "${{{}}} is referenced but not set in the environment",
            e.var
        ),
    })?;
    let mut config: Config = if expanded.trim().is_empty() {
        Config::default()
    } else {
        serde_saphyr::from_str(&expanded).map_err(|e| yaml_error(name, &e))?
    };
    config.validate().map_err(|(path, message)| ConfigError {
        source: name.to_string(),
        line: expand::line_of_path(text, &path),
        path: Some(path),
        message,
    })?;
    config.drop_disabled();
    config.hash = text_hash(text);
    Ok(config)
}

/// `sha256:` + the first 16 hex digits of the SHA-256 of `text`.
pub fn text_hash(text: &str) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(text.as_bytes());
    format!("sha256:{}", &hex::encode(d)[..16])
}

fn yaml_error(name: &str, e: &serde_saphyr::Error) -> ConfigError {
    let line = e.location().map(|l| l.line() as usize);
    let full = e.to_string();
    // The first line of saphyr's message is the description; the rest is a snippet.
    let message = full
        .lines()
        .next()
        .unwrap_or("invalid YAML")
        .trim()
        .to_string();
    ConfigError {
        source: name.to_string(),
        path: None,
        line,
        message,
    }
}

impl Config {
    /// Checks what the schema alone cannot: unique names, parseable URLs and listen address,
    /// models that name existing deployments. Errors are `(key path, message)`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let listen = self.server.listen.parse::<SocketAddr>().map_err(|e| {
            (
                "server.listen".to_string(),
                format!("not a host:port address: {e}"),
            )
        })?;
        self.check_auth_exposure(listen)?;
        if self.server.workers == Some(0) {
            return Err((
                "server.workers".into(),
                "must be at least 1 (leave it out for one per core)".into(),
            ));
        }
        crate::access::auth::ConfigKeys::new(&self.keys)?;
        let key_names = crate::access::validate::Names::of(self);
        for (i, k) in self.keys.iter().enumerate() {
            crate::access::validate::validate(k, &key_names)
                .map_err(|(f, m)| (format!("keys[{i}].{f}"), m))?;
        }
        let mut names = HashSet::new();
        for (i, d) in self.deployments.iter().enumerate() {
            if d.name.trim().is_empty() {
                return Err((format!("deployments[{i}].name"), "must not be empty".into()));
            }
            if !names.insert(d.name.as_str()) {
                return Err((
                    format!("deployments[{i}].name"),
                    format!("duplicate name `{}`", d.name),
                ));
            }
            let url = url::Url::parse(&d.base_url).map_err(|e| {
                (
                    format!("deployments[{i}].base_url"),
                    format!("bad URL `{}`: {e}", d.base_url),
                )
            })?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err((
                    format!("deployments[{i}].base_url"),
                    format!("bad URL `{}`: scheme must be http or https", d.base_url),
                ));
            }
            capability::check_native_base_url(d.provider, &url)
                .map_err(|m| (format!("deployments[{i}].base_url"), m))?;
        }
        for (i, d) in self.deployments.iter().enumerate() {
            if d.weight.is_some_and(|w| !(w > 0.0 && w.is_finite())) {
                return Err((
                    format!("deployments[{i}].weight"),
                    "must be a positive number".into(),
                ));
            }
            if let Some(s) = &d.sampling {
                s.validate(&format!("deployments[{i}].sampling"))?;
            }
            if d.max_concurrency == Some(0) {
                return Err((
                    format!("deployments[{i}].max_concurrency"),
                    "must be at least 1".into(),
                ));
            }
            // A cap of 0 would turn every answer into a 502: refused here instead.
            let caps = [
                ("max_response_bytes", d.max_response_bytes),
                ("max_error_body_bytes", d.max_error_body_bytes),
                ("max_stream_event_bytes", d.max_stream_event_bytes),
                ("max_stream_bytes", d.max_stream_bytes),
            ];
            if let Some((key, _)) = caps.iter().find(|(_, v)| *v == Some(0)) {
                return Err((
                    format!("deployments[{i}].{key}"),
                    "must be at least 1 (leave it out for the default)".into(),
                ));
            }
            if let Some(p) = d.price
                && !(p.input >= 0.0 && p.output >= 0.0)
            {
                return Err((
                    format!("deployments[{i}].price"),
                    "must not be negative".into(),
                ));
            }
        }
        for (i, m) in self.models.iter().enumerate() {
            if !names.insert(m.name.as_str()) {
                return Err((
                    format!("models[{i}].name"),
                    format!(
                        "duplicate name `{}` (models and deployments share one namespace)",
                        m.name
                    ),
                ));
            }
            for (j, dep) in m.deployments.iter().enumerate() {
                if !self.deployments.iter().any(|d| &d.name == dep) {
                    return Err((
                        format!("models[{i}].deployments[{j}]"),
                        format!("unknown deployment `{dep}`"),
                    ));
                }
            }
        }
        for (i, m) in self.models.iter().enumerate() {
            for (j, f) in m.fallbacks.iter().enumerate() {
                if f == &m.name || !names.contains(f.as_str()) {
                    return Err((
                        format!("models[{i}].fallbacks[{j}]"),
                        format!("`{f}` is not another model or deployment name"),
                    ));
                }
            }
        }
        for (kind, map) in [
            ("models", &self.limits.models),
            ("deployments", &self.limits.deployments),
        ] {
            for (name, l) in map {
                for (key, v) in [("rpm", l.rpm), ("tpm", l.tpm)] {
                    if v == Some(0) {
                        return Err((
                            format!("limits.{kind}.{name}.{key}"),
                            "must be at least 1 (leave it out for no limit)".into(),
                        ));
                    }
                }
            }
        }
        policy::validate(&self.policies, &self.pii)?;
        for (i, k) in self.keys.iter().enumerate() {
            for (j, name) in k.policies.iter().enumerate() {
                if !self.policies.iter().any(|p| &p.name == name) {
                    return Err((
                        format!("keys[{i}].policies[{j}]"),
                        format!("unknown policy `{name}`"),
                    ));
                }
            }
        }
        for (i, p) in self.policies.iter().enumerate() {
            if let Some(s) = &p.sampling {
                s.validate(&format!("policies[{i}].sampling"))?;
            }
        }
        self.log.validate()?;
        self.coordination.validate()?;
        Ok(())
    }

    /// Refuses a non-loopback listen address without a master key unless
    /// `server.allow_unauthenticated` says so.
    pub fn check_auth_exposure(&self, listen: SocketAddr) -> Result<(), (String, String)> {
        let has_key = self
            .server
            .master_key
            .as_deref()
            .is_some_and(|k| !k.is_empty());
        if !has_key && !listen.ip().is_loopback() && !self.server.allow_unauthenticated {
            return Err((
                "server.listen".to_string(),
                format!(
                    "{listen} is not a loopback address: set server.master_key, or server.allow_unauthenticated: true to serve without auth"
                ),
            ));
        }
        Ok(())
    }

    /// Removes the deployments with `enabled: false`, and their names from every model's list
    /// (a model may end up with none: its requests then get an error naming it).
    pub fn drop_disabled(&mut self) {
        let disabled: HashSet<String> = self
            .deployments
            .iter()
            .filter(|d| !d.enabled)
            .map(|d| d.name.clone())
            .collect();
        self.deployments.retain(|d| d.enabled);
        for m in &mut self.models {
            m.deployments.retain(|d| !disabled.contains(d));
        }
        let mut names: Vec<String> = disabled.into_iter().collect();
        names.sort();
        self.disabled.extend(names);
    }

    /// The deployment named `name`.
    pub fn deployment(&self, name: &str) -> Option<&DeploymentConfig> {
        self.deployments.iter().find(|d| d.name == name)
    }

    /// The names a request for `name` answers to for model-scoped limits and policies: `name`
    /// itself, and when `name` is a deployment addressed directly (not a model name), every
    /// model that lists it among its deployments — so naming a deployment cannot skip its
    /// models' rate limits or `when.model` policies.
    pub fn model_scopes<'a>(&'a self, name: &'a str) -> Vec<&'a str> {
        let mut out = vec![name];
        if self.models.iter().any(|m| m.name == name) {
            return out;
        }
        out.extend(
            self.models
                .iter()
                .filter(|m| m.deployments.iter().any(|d| d == name))
                .map(|m| m.name.as_str()),
        );
        out
    }

    /// The listen address (validated by [`Config::validate`]).
    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.server.listen.parse().map_err(|e| ConfigError {
            source: "config".into(),
            path: Some("server.listen".into()),
            line: None,
            message: format!("{e}"),
        })
    }
}
