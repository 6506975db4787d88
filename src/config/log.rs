//! The `log:` block: where the request log lives and what it keeps.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// What the request log keeps of each request (`log.prompts`, or a policy's / key's override).
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogMode {
    /// Request body as received and response content as sent.
    #[default]
    Full,
    /// Like `full`, with personal data (emails, phone numbers, card numbers, IBANs) replaced
    /// by kind placeholders such as `[EMAIL]`.
    Redacted,
    /// Every field except message text: no request body, no response content or tool calls.
    Metadata,
    /// No row at all.
    Off,
}

impl LogMode {
    /// The lowercase name used in config and in the log.
    pub fn as_str(self) -> &'static str {
        match self {
            LogMode::Full => "full",
            LogMode::Redacted => "redacted",
            LogMode::Metadata => "metadata",
            LogMode::Off => "off",
        }
    }

    /// Parses `full | redacted | metadata | off`; `None` for anything else.
    pub fn parse(s: &str) -> Option<LogMode> {
        match s {
            "full" => Some(LogMode::Full),
            "redacted" => Some(LogMode::Redacted),
            "metadata" => Some(LogMode::Metadata),
            "off" => Some(LogMode::Off),
            _ => None,
        }
    }

    /// Whether this mode keeps message text (`full`, `redacted`).
    pub fn keeps_text(self) -> bool {
        matches!(self, LogMode::Full | LogMode::Redacted)
    }
}

/// `log:` block.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// SQLite file of the request log. Default `./sluice.db`; created with mode 0600.
    #[serde(default = "default_path")]
    pub path: PathBuf,
    /// What each row keeps: `full` (default), `redacted`, `metadata` or `off`.
    #[serde(default)]
    pub prompts: LogMode,
    /// Rows older than this many days are deleted (hourly, from the old end of the hash
    /// chain). Unset: kept forever.
    #[serde(default)]
    pub retention_days: Option<u32>,
    /// Request header naming the end user (e.g. a chat front-end's user-id header); takes
    /// precedence over the body's `user` field.
    #[serde(default)]
    pub user_header: Option<String>,
    /// Rows the queue in front of the writer holds; when it is full, requests wait. Default
    /// 10 000.
    #[serde(default = "default_queue")]
    pub queue_capacity: usize,
    /// Bytes (approximate size of the queued records: bodies, responses and a fixed part per
    /// row) the queue holds. Default 64 MiB; one record bigger than this takes the whole
    /// queue on its own.
    #[serde(default = "default_queue_bytes")]
    pub queue_bytes: usize,
    /// Where the log lives: `sqlite` (default, the file at `path`) or `postgres` (at `url`).
    #[serde(default)]
    pub backend: LogBackend,
    /// PostgreSQL connection URL (`postgres://user:pass@host:port/db`), for
    /// `backend: postgres`; usually `${DATABASE_URL}`. TLS by libpq's `sslmode` (`disable`,
    /// `prefer` by default, `require`, `verify-ca`, `verify-full`) and `sslrootcert` query
    /// parameters (`store::pg::tls`).
    #[serde(default)]
    pub url: Option<String>,
    /// Most bytes a row keeps of each body (the request body, the response text, the tool
    /// calls); the rest is cut and the text ends with
    /// [`crate::store::record::TRUNCATED`]. A stream gathers no more than this for its row
    /// while it runs. Default 4 MiB.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// JSON-lines file where batches the store refused are kept until it takes them again.
    /// Default: `path` + `.spill.jsonl` (SQLite), `./sluice-spill.jsonl` (PostgreSQL).
    #[serde(default)]
    pub spill_path: Option<PathBuf>,
}

/// `log.backend`: where the request log (and, with PostgreSQL, keys and spend) is kept.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogBackend {
    /// A local SQLite file (`log.path`): the embedded default.
    #[default]
    Sqlite,
    /// A shared PostgreSQL database (`log.url`): several replicas write one log.
    Postgres,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            path: default_path(),
            prompts: LogMode::default(),
            retention_days: None,
            user_header: None,
            queue_capacity: default_queue(),
            queue_bytes: default_queue_bytes(),
            backend: LogBackend::default(),
            url: None,
            spill_path: None,
            max_body_bytes: default_max_body_bytes(),
        }
    }
}

fn default_path() -> PathBuf {
    PathBuf::from("./sluice.db")
}

fn default_queue() -> usize {
    10_000
}

fn default_max_body_bytes() -> usize {
    4 << 20
}

fn default_queue_bytes() -> usize {
    64 << 20
}

impl LogConfig {
    /// The spill file: `spill_path`, else next to the SQLite file, else `./sluice-spill.jsonl`.
    pub fn spill_file(&self) -> PathBuf {
        if let Some(p) = &self.spill_path {
            return p.clone();
        }
        match self.backend {
            LogBackend::Sqlite => {
                let mut s = self.path.clone().into_os_string();
                s.push(".spill.jsonl");
                PathBuf::from(s)
            }
            LogBackend::Postgres => PathBuf::from("./sluice-spill.jsonl"),
        }
    }

    /// Where the log is, for messages: the file path or the URL without its password.
    pub fn describe(&self) -> String {
        match (self.backend, &self.url) {
            (LogBackend::Postgres, Some(u)) => redact_url(u),
            _ => self.path.display().to_string(),
        }
    }

    /// Checks values the schema cannot. Errors are `(key path, message)`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if self.path.as_os_str().is_empty() {
            return Err(("log.path".into(), "must not be empty".into()));
        }
        if self.queue_capacity == 0 {
            return Err(("log.queue_capacity".into(), "must be at least 1".into()));
        }
        if self.queue_bytes < 1024 {
            return Err(("log.queue_bytes".into(), "must be at least 1024".into()));
        }
        if self.max_body_bytes < 1024 {
            // Smaller keeps nothing useful of a body: every row would be little but the marker.
            return Err(("log.max_body_bytes".into(), "must be at least 1024".into()));
        }
        match (self.backend, self.url.as_deref()) {
            (LogBackend::Postgres, None | Some("")) => {
                return Err((
                    "log.url".into(),
                    "is required with `backend: postgres` (e.g. ${DATABASE_URL})".into(),
                ));
            }
            (LogBackend::Postgres, Some(u))
                if !(u.starts_with("postgres://") || u.starts_with("postgresql://")) =>
            {
                return Err((
                    "log.url".into(),
                    "must start with postgres:// or postgresql://".into(),
                ));
            }
            (LogBackend::Sqlite, Some(_)) => {
                return Err((
                    "log.url".into(),
                    "is only used with `backend: postgres`".into(),
                ));
            }
            _ => {}
        }
        if self.retention_days == Some(0) {
            return Err((
                "log.retention_days".into(),
                "must be at least 1 (leave it unset to keep rows forever)".into(),
            ));
        }
        if let Some(h) = &self.user_header
            && axum::http::HeaderName::from_bytes(h.as_bytes()).is_err()
        {
            return Err((
                "log.user_header".into(),
                format!("`{h}` is not a valid header name"),
            ));
        }
        Ok(())
    }
}

/// `url` with its password replaced by `***` (for messages and logs): the userinfo's
/// password (everything between the first `:` after the scheme and the last `@`, so a
/// password holding `/` or `@` is hidden too) and a `password=` query parameter. A text that
/// is not `scheme://…` (libpq's `key=value` form) is not shown at all.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "postgres://(unparsable url)".into();
    };
    let (userinfo, host) = match rest.rfind('@') {
        Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
        None => (None, rest),
    };
    let host = match host.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => pair.to_string(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => host.to_string(),
    };
    match userinfo {
        Some(info) => match info.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => format!("{scheme}://{info}@{host}"),
        },
        None => format!("{scheme}://{host}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_url_hides_every_password() {
        for (url, shown) in [
            (
                "postgres://sluice:secret@db:5432/log",
                "postgres://sluice:***@db:5432/log",
            ),
            // A password holding `/` or `@`, which a URL parser reads as a port and a path.
            (
                "postgres://sluice:8080/s3cret@db/log?sslmode=require",
                "postgres://sluice:***@db/log?sslmode=require",
            ),
            (
                "postgres://sluice:a@b@db/log",
                "postgres://sluice:***@db/log",
            ),
            (
                "postgres://db/log?user=u&password=hunter2&sslmode=require",
                "postgres://db/log?user=u&password=***&sslmode=require",
            ),
            ("postgres://sluice@db/log", "postgres://sluice@db/log"),
            ("host=db password=hunter2", "postgres://(unparsable url)"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }

    #[test]
    fn postgres_needs_a_postgres_url_and_the_spill_file_has_a_default() {
        let mut c = LogConfig {
            backend: LogBackend::Postgres,
            ..Default::default()
        };
        assert_eq!(c.validate().unwrap_err().0, "log.url");
        c.url = Some("mysql://x".into());
        assert_eq!(c.validate().unwrap_err().0, "log.url");
        c.url = Some("postgres://sluice:secret@db:5432/sluice".into());
        assert!(c.validate().is_ok());
        assert_eq!(c.describe(), "postgres://sluice:***@db:5432/sluice");
        assert_eq!(c.spill_file(), PathBuf::from("./sluice-spill.jsonl"));
        let s = LogConfig {
            url: Some("postgres://db/x".into()),
            ..Default::default()
        };
        assert_eq!(s.validate().unwrap_err().0, "log.url");
        assert_eq!(
            LogConfig::default().spill_file(),
            PathBuf::from("./sluice.db.spill.jsonl")
        );
        let q = LogConfig {
            queue_bytes: 10,
            ..Default::default()
        };
        assert_eq!(q.validate().unwrap_err().0, "log.queue_bytes");
        let b = LogConfig {
            max_body_bytes: 0,
            ..Default::default()
        };
        assert_eq!(
            b.validate().unwrap_err(),
            (
                "log.max_body_bytes".to_string(),
                "must be at least 1024".to_string()
            )
        );
    }
}
