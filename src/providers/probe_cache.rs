//! The backend probes of `GET /health/ready`, cached: however many requests come in, each
//! backend is probed at most once per `server.ready_cache_ms` (concurrent requests wait for
//! the one probe in flight and share its results).

use super::Upstreams;
use crate::config::DeploymentConfig;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One backend's probe result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeResult {
    /// Deployment name.
    pub name: String,
    /// Provider (`openai`, `ollama`, `anthropic`).
    pub provider: &'static str,
    /// `Err` holds the connection failure's description.
    pub reachable: Result<(), String>,
}

/// The last probe round and when it ran.
#[derive(Debug, Default)]
pub struct ProbeCache {
    last: tokio::sync::Mutex<Option<(Instant, Arc<Vec<ProbeResult>>)>>,
    rounds: std::sync::atomic::AtomicU64,
}

impl ProbeCache {
    /// The probe results of `deployments` no older than `max_age`: the cached round, or a new
    /// round (every deployment probed in parallel, each within `timeout`).
    pub async fn results(
        &self,
        http: &Upstreams,
        deployments: &[DeploymentConfig],
        timeout: Duration,
        max_age: Duration,
    ) -> Arc<Vec<ProbeResult>> {
        let mut last = self.last.lock().await;
        if let Some((at, results)) = last.as_ref()
            && at.elapsed() < max_age
        {
            return results.clone();
        }
        let probes = deployments.iter().map(|d| async move {
            ProbeResult {
                name: d.name.clone(),
                provider: d.provider.as_str(),
                reachable: super::probe(http, d, timeout).await,
            }
        });
        let results = Arc::new(futures_util::future::join_all(probes).await);
        self.rounds
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        *last = Some((Instant::now(), results.clone()));
        results
    }

    /// Probe rounds run so far.
    pub fn rounds(&self) -> u64 {
        self.rounds.load(std::sync::atomic::Ordering::Relaxed)
    }
}
