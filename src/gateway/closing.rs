//! The end of the shutdown grace period (`server.shutdown_grace_ms`) for the requests still
//! open then: a stream ends with one error event in its own dialect (never a clean end, never
//! a cut connection), a request still waiting for its upstream's answer gets a 503 in its
//! dialect's shape, and each of them gets its row in the request log, like any failure.
//!
//! One [`Closing`] serves a process (every gateway a reload builds shares it); `http::run_live`
//! calls [`Closing::begin`] when the grace period is over, then waits a bounded time for the
//! connections to write those last events before it drains the log.

use crate::api::ApiError;
use crate::providers::ChunkStream;
use crate::providers::native::EventStream;
use futures_util::{Stream, StreamExt};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Whether the server has passed the end of its shutdown grace period, and how many requests
/// are still open (cheap to clone: the clones share the one state).
#[derive(Debug, Clone, Default)]
pub struct Closing(CancellationToken, Arc<Open>);

/// Requests between [`Closing::track`] and their row.
#[derive(Debug, Default)]
struct Open {
    count: AtomicUsize,
    none_left: Notify,
}

/// One request still open (see [`Closing::track`]); each clone counts, so the request closes
/// when the last one is dropped: after its row is handed to the recorder.
#[derive(Debug)]
pub struct Tracked(Arc<Open>);

impl Clone for Tracked {
    fn clone(&self) -> Self {
        self.0.count.fetch_add(1, Ordering::AcqRel);
        Tracked(self.0.clone())
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.none_left.notify_waiters();
        }
    }
}

impl Closing {
    /// Ends every open stream with an error event and every request waiting for an upstream
    /// with a 503 (see the module docs). Idempotent.
    pub fn begin(&self) {
        self.0.cancel();
    }

    /// Whether closing has begun ([`Closing::begin`]).
    pub fn has_begun(&self) -> bool {
        self.0.is_cancelled()
    }

    /// Counts a request as open until the returned handle (and every clone) is dropped; the
    /// gateway holds it until the request's row is recorded (streams: until they end), also
    /// when its client has gone and the work finishes on its own.
    pub fn track(&self) -> Tracked {
        self.1.count.fetch_add(1, Ordering::AcqRel);
        Tracked(self.1.clone())
    }

    /// Requests open now.
    pub fn open(&self) -> usize {
        self.1.count.load(Ordering::Acquire)
    }

    /// Waits until no request is open, at most `within`; true when none is.
    pub async fn until_none_open(&self, within: std::time::Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let notified = self.1.none_left.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.open() == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.open() == 0;
            }
        }
    }

    /// `work`, or [`shutting_down`] when closing begins before it is done (then `work` is
    /// dropped: its upstream request is abandoned).
    pub async fn race<T>(
        &self,
        work: impl Future<Output = Result<T, ApiError>>,
    ) -> Result<T, ApiError> {
        tokio::select! {
            biased;
            r = work => r,
            () = self.0.cancelled() => Err(shutting_down()),
        }
    }

    /// `rest`, ending with one [`shutting_down`] error item as soon as closing begins (items
    /// not yet read from `rest` then are dropped).
    pub fn chunks(&self, rest: ChunkStream) -> ChunkStream {
        Box::pin(cut_short(self.0.clone(), rest))
    }

    /// `rest`, ending with one [`shutting_down`] error item when closing begins first.
    pub fn events(&self, rest: EventStream) -> EventStream {
        Box::pin(cut_short(self.0.clone(), rest))
    }
}

/// 503 `server_error`, code `shutting_down`: the answer was cut off because Sluice was
/// stopping and its shutdown grace period ended first.
pub fn shutting_down() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        "server_error",
        "Sluice is shutting down: the answer was not finished when its shutdown grace period \
         (server.shutdown_grace_ms) ended",
    )
    .with_code("shutting_down")
}

/// The items of `rest` until it ends or `token` is cancelled, then one error item and the end.
fn cut_short<T: Send + 'static>(
    token: CancellationToken,
    rest: std::pin::Pin<Box<dyn Stream<Item = Result<T, ApiError>> + Send>>,
) -> impl Stream<Item = Result<T, ApiError>> + Send {
    let cancelled = Box::pin(token.cancelled_owned());
    futures_util::stream::unfold(Some((rest, cancelled)), |state| async move {
        let (mut rest, mut cancelled) = state?;
        // Closing first: an upstream that never pauses must not keep the stream open.
        tokio::select! {
            biased;
            () = &mut cancelled => Some((Err(shutting_down()), None)),
            item = rest.next() => item.map(|i| (i, Some((rest, cancelled)))),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::Chunk;

    fn pending_after(n: usize) -> ChunkStream {
        let first = (0..n).map(|_| {
            Ok(Chunk {
                json: Some(serde_json::json!({"choices": []})),
                raw: None,
                viewed: None,
            })
        });
        Box::pin(futures_util::stream::iter(first).chain(futures_util::stream::pending()))
    }

    #[tokio::test]
    async fn a_stream_open_when_closing_begins_ends_with_one_shutdown_error() {
        let closing = Closing::default();
        let mut s = closing.chunks(pending_after(2));
        assert!(s.next().await.is_some_and(|i| i.is_ok()));
        assert!(s.next().await.is_some_and(|i| i.is_ok()));
        closing.begin();
        let e = s
            .next()
            .await
            .map(|i| i.err().map(|e| (e.status.as_u16(), e.body.code)));
        assert_eq!(
            e,
            Some(Some((503, Some(serde_json::json!("shutting_down")))))
        );
        assert!(s.next().await.is_none());
    }

    #[tokio::test]
    async fn an_upstream_that_never_pauses_is_cut_too() {
        let closing = Closing::default();
        let endless = futures_util::stream::repeat_with(|| {
            Ok(Chunk {
                json: Some(serde_json::json!({"choices": []})),
                raw: None,
                viewed: None,
            })
        });
        let mut s = closing.chunks(Box::pin(endless));
        assert!(s.next().await.is_some_and(|i| i.is_ok()));
        closing.begin();
        assert!(s.next().await.is_some_and(|i| i.is_err()));
        assert!(s.next().await.is_none());
    }

    #[tokio::test]
    async fn a_request_is_open_until_its_last_handle_is_dropped() {
        let closing = Closing::default();
        let t = closing.track();
        let for_the_stream = t.clone();
        assert_eq!(closing.open(), 2);
        drop(t);
        assert_eq!(closing.open(), 1);
        let c = closing.clone();
        let waiting =
            tokio::spawn(
                async move { c.until_none_open(std::time::Duration::from_secs(30)).await },
            );
        drop(for_the_stream);
        assert_eq!(waiting.await.ok(), Some(true));
        assert_eq!(closing.open(), 0);
        let _open = closing.track();
        assert!(
            !closing
                .until_none_open(std::time::Duration::from_millis(1))
                .await
        );
    }

    #[tokio::test]
    async fn work_still_waiting_when_closing_begins_is_a_503() {
        let closing = Closing::default();
        let c = closing.clone();
        let waiting =
            tokio::spawn(
                async move { c.race(std::future::pending::<Result<(), ApiError>>()).await },
            );
        closing.begin();
        let r = waiting.await.map(|r| r.map_err(|e| e.status.as_u16()));
        assert_eq!(r.ok(), Some(Err(503)));
        assert_eq!(
            closing.race(async { Ok::<_, ApiError>(7) }).await.ok(),
            Some(7)
        );
    }
}
