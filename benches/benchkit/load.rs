//! A small HTTP load generator: closed loop (N connections, each sending its next request when
//! the last one finished) and open loop (a fixed offered rate; latency measured from each
//! request's scheduled send time, so a slow server cannot hide queueing delay — no
//! coordinated omission).

use bytes::Bytes;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// How to send.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// `connections` workers, `requests` requests in all.
    Closed {
        /// Concurrent connections.
        connections: usize,
        /// Total requests.
        requests: usize,
    },
    /// `rate` requests per second for `duration`.
    Open {
        /// Offered requests per second.
        rate: f64,
        /// How long to offer it.
        duration: Duration,
    },
}

/// Markers of an error answer inside a 2xx body: OpenAI's error object (whole answers and
/// chat streams), Anthropic's `error` event, the Responses API's failure events.
const ERROR_MARKERS: [&[u8]; 4] = [
    b"{\"error\":",
    b"event: error",
    b"\"type\":\"error\"",
    b"response.failed",
];

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// What makes an answer good: a 2xx status, the whole body read, no error marker in any
/// chunk, and for streams the protocol's last event (`end`, e.g. `[DONE]`) seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Expect {
    /// Bytes the last chunk of a complete stream carries; `None` for whole answers.
    pub end: Option<&'static str>,
}

/// One request's timings, µs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Until the last body byte.
    pub total_us: u64,
    /// Until the first body byte.
    pub ttfb_us: u64,
    /// 2xx, the whole body read, and no error in it (see [`Expect`]).
    pub ok: bool,
}

/// A run's samples and wall time.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Every request's timings.
    pub samples: Vec<Sample>,
    /// Wall time of the run.
    pub elapsed: Duration,
}

impl Report {
    /// The `p`-th percentile (0–100) of total latency over successful requests, µs.
    pub fn total_p(&self, p: f64) -> u64 {
        percentile(self.samples.iter().filter(|s| s.ok).map(|s| s.total_us), p)
    }

    /// The `p`-th percentile of time to first byte, µs.
    pub fn ttfb_p(&self, p: f64) -> u64 {
        percentile(self.samples.iter().filter(|s| s.ok).map(|s| s.ttfb_us), p)
    }

    /// Successful requests per second.
    pub fn rps(&self) -> f64 {
        let ok = self.samples.iter().filter(|s| s.ok).count() as f64;
        ok / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Failed requests.
    pub fn errors(&self) -> usize {
        self.samples.iter().filter(|s| !s.ok).count()
    }
}

/// The `p`-th percentile (nearest rank) of `values`; 0 when empty.
pub fn percentile(values: impl Iterator<Item = u64>, p: f64) -> u64 {
    let mut v: Vec<u64> = values.collect();
    if v.is_empty() {
        return 0;
    }
    v.sort_unstable();
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// A client for load: pooled, no proxy, no Nagle.
pub fn client(pool: usize) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(pool)
        .build()
        .unwrap_or_default()
}

/// Sends one POST and times it. With `disconnect`, reads only the first chunk and drops the
/// connection (a client going away mid-stream).
pub async fn one(
    client: &reqwest::Client,
    url: &str,
    body: Bytes,
    start: Instant,
    disconnect: bool,
    expect: Expect,
) -> Sample {
    let failed = |start: Instant| Sample {
        total_us: start.elapsed().as_micros() as u64,
        ttfb_us: start.elapsed().as_micros() as u64,
        ok: false,
    };
    let mut resp = match client
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
    {
        Ok(r) => r,
        Err(_) => return failed(start),
    };
    let status_ok = resp.status().is_success();
    let mut ttfb = None;
    let mut body_ok = true;
    let mut ended = expect.end.is_none();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                body_ok &= !ERROR_MARKERS.iter().any(|m| contains(&chunk, m));
                if let Some(end) = expect.end {
                    ended = contains(&chunk, end.as_bytes());
                }
                if ttfb.is_none() {
                    ttfb = Some(start.elapsed().as_micros() as u64);
                    if disconnect {
                        break;
                    }
                }
            }
            Ok(None) => break,
            Err(_) => return failed(start),
        }
    }
    let total = start.elapsed().as_micros() as u64;
    Sample {
        total_us: total,
        ttfb_us: ttfb.unwrap_or(total),
        // A client that left on purpose did not wait for the end.
        ok: status_ok && body_ok && (ended || disconnect),
    }
}

/// Runs `mode` against `url` with `body`. Every `disconnect_every`-th request (0 = none)
/// disconnects after its first chunk; every answer is checked against `expect`.
pub async fn run(
    url: &str,
    body: Bytes,
    mode: Mode,
    disconnect_every: usize,
    expect: Expect,
) -> Report {
    let started = Instant::now();
    let samples = Arc::new(Mutex::new(Vec::new()));
    let counter = Arc::new(AtomicUsize::new(0));
    match mode {
        Mode::Closed {
            connections,
            requests,
        } => {
            let client = client(connections);
            let mut workers = Vec::new();
            for _ in 0..connections {
                let (client, url, body) = (client.clone(), url.to_string(), body.clone());
                let (samples, counter) = (samples.clone(), counter.clone());
                workers.push(tokio::spawn(async move {
                    loop {
                        let n = counter.fetch_add(1, Ordering::Relaxed);
                        if n >= requests {
                            break;
                        }
                        let cut = disconnect_every > 0 && n.is_multiple_of(disconnect_every);
                        let s = one(&client, &url, body.clone(), Instant::now(), cut, expect).await;
                        if !cut {
                            samples.lock().await.push(s);
                        }
                    }
                }));
            }
            for w in workers {
                let _ = w.await;
            }
        }
        Mode::Open { rate, duration } => {
            let client = client(256);
            let interval = Duration::from_secs_f64(1.0 / rate.max(1e-3));
            let total = (rate * duration.as_secs_f64()).round() as usize;
            let (url, samples) = (url.to_string(), samples.clone());
            let send = move |n: usize, scheduled: Instant| {
                let (client, url, body, samples) =
                    (client.clone(), url.clone(), body.clone(), samples.clone());
                let cut = disconnect_every > 0 && n.is_multiple_of(disconnect_every);
                async move {
                    let s = one(&client, &url, body, scheduled, cut, expect).await;
                    if !cut {
                        samples.lock().await.push(s);
                    }
                }
            };
            for t in paced(started, interval, total, send).await {
                let _ = t.await;
            }
        }
    }
    let elapsed = started.elapsed();
    let samples = std::mem::take(&mut *samples.lock().await);
    Report { samples, elapsed }
}

/// Starts `send(n, scheduled)` as a task at each scheduled time `started + n * interval`,
/// `n` in `0..total`, and returns the tasks. The clock is a thread of its own sleeping with
/// 1 µs timer slack: tokio's timer ticks in whole milliseconds, so pacing with it would send
/// each request up to 1 ms late and put that delay into every open-loop latency (they are
/// measured from the scheduled time).
pub async fn paced<F, Fut>(
    started: Instant,
    interval: Duration,
    total: usize,
    send: F,
) -> Vec<tokio::task::JoinHandle<()>>
where
    F: Fn(usize, Instant) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let handle = tokio::runtime::Handle::current();
    let (done, tasks) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        #[cfg(target_os = "linux")]
        // SAFETY: sets this thread's own timer slack; no memory is handed over.
        unsafe {
            libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong);
        }
        let mut out = Vec::with_capacity(total);
        for n in 0..total {
            let scheduled = started + interval.mul_f64(n as f64);
            let wait = scheduled.saturating_duration_since(Instant::now());
            if !wait.is_zero() {
                std::thread::sleep(wait);
            }
            out.push(handle.spawn(send(n, scheduled)));
        }
        let _ = done.send(out);
    });
    tasks.await.unwrap_or_default()
}

/// For a stream whose chunks carry the mock's send stamps: how long each chunk took from the
/// mock's send to this client's receipt, µs, in order.
pub async fn chunk_delays(url: &str, body: Bytes) -> Vec<u64> {
    let client = client(1);
    let mut out = Vec::new();
    let Ok(mut resp) = client
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
    else {
        return out;
    };
    while let Ok(Some(chunk)) = resp.chunk().await {
        let now = super::mock::unix_us();
        let text = String::from_utf8_lossy(&chunk);
        for frame in text.split("\n\n") {
            if let Some(stamp) = super::mock::stamp_of(frame) {
                out.push(now.saturating_sub(stamp) as u64);
            }
        }
    }
    out
}
