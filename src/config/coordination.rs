//! The `coordination:` block: a shared coordinator for rate limits and budgets across
//! replicas (docs/scaling.md). Absent: every replica limits on its own (in-process).

use serde::{Deserialize, Serialize};

/// `coordination:` block: `{redis: {url, on_unavailable, …}}`.
#[derive(Debug, Clone, Deserialize, Serialize, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CoordinationConfig {
    /// Redis ≥ 7 or Valkey: rate limits and budgets decided there, for all replicas.
    #[serde(default)]
    pub redis: Option<RedisConfig>,
}

/// What a replica does, per request, while the coordinator cannot be reached.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum OnUnavailable {
    /// Refuse the request: 503 `coordinator_unavailable`. The replica also reports not ready.
    FailClosed,
    /// Serve it without limits or budgets.
    FailOpen,
    /// Apply this replica's in-process limits and budgets (a limit of N becomes N per replica).
    #[default]
    Local,
}

impl OnUnavailable {
    /// The snake_case name used in config, `/health/ready` and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            OnUnavailable::FailClosed => "fail_closed",
            OnUnavailable::FailOpen => "fail_open",
            OnUnavailable::Local => "local",
        }
    }
}

/// `coordination.redis:` block.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]`, or `rediss://…` for TLS (the server's
    /// certificate checked, chain and host name, against the system's CAs or
    /// [`RedisConfig::ca_file`]); usually `${REDIS_URL}`. Not serialized: it may hold a
    /// password.
    #[serde(skip_serializing)]
    pub url: String,
    /// For `rediss://`: a PEM file of the CA certificates to trust instead of the system's.
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
    /// `fail_closed`, `fail_open` or `local` (default).
    #[serde(default)]
    pub on_unavailable: OnUnavailable,
    /// Prefix of every key Sluice writes. Default `sluice`.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// How often the server is probed (`PING`), ms. Default 1 000.
    #[serde(default = "default_probe")]
    pub probe_interval_ms: u64,
    /// Connect and response timeout of each call, ms. Default 500.
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
    /// A reservation whose request never settled (the replica died) is released after this
    /// many seconds. Default 900.
    #[serde(default = "default_reservation_ttl")]
    pub reservation_ttl_s: u64,
}

impl RedisConfig {
    /// The client for [`RedisConfig::url`], trusting [`RedisConfig::ca_file`]'s CAs when set.
    ///
    /// Errors: the URL does not parse, or the CA file cannot be read or holds no PEM
    /// certificate; the message names the problem, not the URL (it may hold a password).
    pub fn client(&self) -> Result<redis::Client, String> {
        // rustls picks its one compiled provider itself; installing it first keeps that true
        // whatever else links rustls.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let Some(path) = &self.ca_file else {
            return redis::Client::open(self.url.as_str()).map_err(|e| e.to_string());
        };
        let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
            return Err(format!("{}: no PEM certificate in it", path.display()));
        }
        let certs = redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(pem),
        };
        redis::Client::build_with_tls(self.url.as_str(), certs)
            .map_err(|e| format!("{}: {e}", path.display()))
    }
}

fn default_prefix() -> String {
    "sluice".into()
}
fn default_probe() -> u64 {
    1_000
}
fn default_timeout() -> u64 {
    500
}
fn default_reservation_ttl() -> u64 {
    900
}

impl CoordinationConfig {
    /// Checks what the schema cannot (the URL's form, not its reachability). Errors are
    /// `(key path, message)`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let Some(r) = &self.redis else {
            return Ok(());
        };
        if let Err(e) = redis::Client::open(r.url.as_str()) {
            return Err((
                "coordination.redis.url".into(),
                format!("not a Redis URL (redis://host:port, rediss://…): {e}"),
            ));
        }
        if r.ca_file.is_some() && !r.url.starts_with("rediss://") {
            return Err((
                "coordination.redis.ca_file".into(),
                "only with a rediss:// URL (TLS)".into(),
            ));
        }
        if let Err(e) = r.client() {
            return Err(("coordination.redis.ca_file".into(), e));
        }
        if r.prefix.is_empty() || r.prefix.contains(char::is_whitespace) {
            return Err((
                "coordination.redis.prefix".into(),
                "must be non-empty, without spaces".into(),
            ));
        }
        for (name, v) in [
            ("probe_interval_ms", r.probe_interval_ms),
            ("timeout_ms", r.timeout_ms),
            ("reservation_ttl_s", r.reservation_ttl_s),
        ] {
            if v == 0 {
                return Err((
                    format!("coordination.redis.{name}"),
                    "must be at least 1".into(),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::parse;

    const BASE: &str = "server: {listen: 127.0.0.1:4100}\n";

    #[test]
    fn redis_block_parses_with_defaults_and_validates_the_url() {
        let c = parse(
            "t",
            &format!("{BASE}coordination:\n  redis:\n    url: redis://127.0.0.1:6379\n"),
        )
        .unwrap();
        let r = c.coordination.redis.unwrap();
        assert_eq!(r.on_unavailable, super::OnUnavailable::Local);
        assert_eq!((r.prefix.as_str(), r.probe_interval_ms), ("sluice", 1000));
        let e = parse(
            "t",
            &format!("{BASE}coordination:\n  redis:\n    url: http://x\n    on_unavailable: fail_closed\n"),
        )
        .unwrap_err();
        assert_eq!(e.path.as_deref(), Some("coordination.redis.url"));
        assert_eq!(e.line, Some(4));
        let e = parse(
            "t",
            &format!(
                "{BASE}coordination:\n  redis:\n    url: redis://h\n    on_unavailable: maybe\n"
            ),
        )
        .unwrap_err();
        assert!(
            e.message.contains("maybe") || e.message.contains("variant"),
            "{e}"
        );
    }
}
