//! The coordinator at `check` and `serve`: is `coordination.redis` reachable and new enough?
//! At `check` an unreachable server is a warning (it may be reachable from where Sluice will
//! run); at `serve` it is an error only with `on_unavailable: fail_closed` (that replica could
//! serve nothing).

use crate::config::{Config, OnUnavailable};
use std::time::Duration;

/// Connects to `coordination.redis` (when configured) and asks `INFO server`: `Ok(Some(version))`
/// when reachable, `Ok(None)` without a coordinator.
///
/// Errors: unreachable, refused (auth), or older than Redis 7 (no `FUNCTION`).
pub async fn probe(config: &Config) -> Result<Option<String>, String> {
    let Some(r) = &config.coordination.redis else {
        return Ok(None);
    };
    let client = r.client()?;
    let t = Duration::from_millis(r.timeout_ms.max(1000));
    let fut = async {
        let mut c = client
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| e.to_string())?;
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query_async(&mut c)
            .await
            .map_err(|e| e.to_string())?;
        Ok::<String, String>(info)
    };
    let info = tokio::time::timeout(t, fut)
        .await
        .map_err(|_| format!("no answer within {} ms", t.as_millis()))??;
    let version = info
        .lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .unwrap_or("?")
        .trim()
        .to_string();
    let major: u32 = version
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    if major < 7 {
        return Err(format!(
            "server version {version}: Redis ≥ 7 or Valkey is needed (server-side functions)"
        ));
    }
    Ok(Some(version))
}

/// `sluice check`: prints the coordinator's state; unreachable is a warning.
pub fn check(config: &Config) {
    let Some(r) = &config.coordination.redis else {
        return;
    };
    if let Some(w) = plaintext_warning(&r.url) {
        eprintln!("warning: {w}");
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("warning: coordination.redis: cannot check: {e}");
            return;
        }
    };
    match rt.block_on(probe(config)) {
        Ok(v) => println!(
            "coordination: redis {} reachable (on_unavailable: {})",
            v.unwrap_or_default(),
            r.on_unavailable.as_str()
        ),
        Err(e) => eprintln!(
            "warning: coordination.redis.url: unreachable from here: {e} (on_unavailable: {}{})",
            r.on_unavailable.as_str(),
            if r.on_unavailable == OnUnavailable::FailClosed {
                "; `sluice serve` refuses to start while it is unreachable"
            } else {
                ""
            }
        ),
    }
}

/// `sluice serve`, before listening: an unreachable coordinator is an error with
/// `fail_closed`, else a warning (the probe keeps trying and coordination resumes when it
/// answers).
///
/// Errors: the message to print, with `fail_closed`.
pub async fn at_serve(config: &Config) -> Result<(), String> {
    let Some(r) = &config.coordination.redis else {
        return Ok(());
    };
    match probe(config).await {
        Ok(_) => Ok(()),
        Err(e) if r.on_unavailable == OnUnavailable::FailClosed => Err(format!(
            "coordination.redis.url: unreachable: {e} (on_unavailable: fail_closed)"
        )),
        Err(e) => {
            eprintln!(
                "warning: coordination.redis.url: unreachable: {e}; serving with on_unavailable: {} until it answers",
                r.on_unavailable.as_str()
            );
            Ok(())
        }
    }
}

/// A warning when the coordinator is reached in plain TCP across a network (`redis://` or
/// `valkey://` to a host that is not loopback): its answers decide limits and budgets, and its password, if
/// any, travels in the clear. `None` for `rediss://`, loopback, or a URL that does not parse.
pub fn plaintext_warning(url: &str) -> Option<String> {
    let u = url::Url::parse(url).ok()?;
    if u.scheme() != "redis" && u.scheme() != "valkey" {
        return None;
    }
    let host = u.host_str()?;
    // `http://`: the URL parser reads IP literals only for special schemes.
    let as_http = format!("http://{host}/");
    (!crate::policy::tier::is_local_url(&as_http)).then(|| {
        format!(
            "coordination.redis.url: limits and budgets are decided over plain TCP to {host}; \
             use rediss:// (TLS, the certificate checked)"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_tcp_across_a_network_is_warned_of() {
        for (url, warns) in [
            ("redis://cache.internal:6379", true),
            ("redis://:pw@10.1.2.3:6379/0", true),
            ("rediss://cache.internal:6380", false),
            ("redis://127.0.0.1:6379", false),
            ("redis://localhost:6379", false),
            ("redis://[::1]:6379", false),
            ("valkey://cache.internal:6379", true),
            ("valkeys://cache.internal:6380", false),
        ] {
            assert_eq!(plaintext_warning(url).is_some(), warns, "{url}");
        }
    }
}
