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
use tokio_util::sync::CancellationToken;

/// Whether the server has passed the end of its shutdown grace period (cheap to clone: the
/// clones share the one state).
#[derive(Debug, Clone, Default)]
pub struct Closing(CancellationToken);

impl Closing {
    /// Ends every open stream with an error event and every request waiting for an upstream
    /// with a 503 (see the module docs). Idempotent.
    pub fn begin(&self) {
        self.0.cancel();
    }

    /// Whether [`Closing::begin`] was called.
    pub fn has_begun(&self) -> bool {
        self.0.is_cancelled()
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
