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
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            path: default_path(),
            prompts: LogMode::default(),
            retention_days: None,
            user_header: None,
            queue_capacity: default_queue(),
        }
    }
}

fn default_path() -> PathBuf {
    PathBuf::from("./sluice.db")
}

fn default_queue() -> usize {
    10_000
}

impl LogConfig {
    /// Checks values the schema cannot. Errors are `(key path, message)`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if self.path.as_os_str().is_empty() {
            return Err(("log.path".into(), "must not be empty".into()));
        }
        if self.queue_capacity == 0 {
            return Err(("log.queue_capacity".into(), "must be at least 1".into()));
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
