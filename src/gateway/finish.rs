//! The end of a request: the callback a client stream runs once, however it ends, to fill the
//! record, settle limits and budget, and write the row; and the small facts the end needs.

use super::record::RequestRecord;
use super::route::InflightGuard;
use super::stream::{OnFinish, StreamEnd, StreamOutcome, apply_stream_outcome};
use super::{Gateway, RequestContext};
use crate::access::coord::Ticket;
use crate::api::summary::ResponseSummary;
use crate::api::summary::estimate_tokens;
use crate::api::{RequestBody, Usage};
use crate::policy::DeploymentAttrs;
use crate::telemetry;

impl Gateway {
    /// The callback for a stream from `attrs`' deployment: releases the concurrency slot,
    /// fills `base` from the outcome, settles the token limits on the real usage, prices it
    /// (nothing when `cached`), records the row and then gives the budget reservation back.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_stream_finish(
        &self,
        ctx: &RequestContext,
        body: &RequestBody,
        base: Box<RequestRecord>,
        attrs: &std::sync::Arc<DeploymentAttrs>,
        guard: InflightGuard,
        mut reservation: Option<Ticket>,
        cached: bool,
    ) -> OnFinish {
        let recorder = self.recorder.clone();
        let started = ctx.started;
        recorder.metrics().open_streams.inc();
        let request_span = ctx.span.clone();
        let stream_span = tracing::info_span!(parent: &ctx.span, "stream");
        let cost_attrs = attrs.clone();
        let access = self.access.clone();
        let principal = ctx.principal.clone();
        let model = body.model().to_string();
        let estimated = ctx.prompt_tokens(body);
        let client_gone = ctx.client_gone.clone();
        let open = ctx.open.clone();
        let closing = self.closing.clone();
        Box::new(move |mut out: StreamOutcome| {
            if matches!(out.end, StreamEnd::ClientGone) && closing.has_begun() {
                // Dropped with its connection at shutdown (a client that stopped reading
                // cannot be sent the error event): Sluice ended it, not the client.
                out.end = StreamEnd::Failed(super::closing::shutting_down());
            }
            drop(guard);
            recorder.metrics().open_streams.dec();
            let mut r = base;
            apply_stream_outcome(&mut r, out, started);
            super::stream::mark_client_gone(&mut r, &client_gone);
            access.settle_tokens(
                &principal,
                &model,
                estimated,
                r.usage.prompt_tokens + r.usage.completion_tokens,
            );
            r.cost_usd = if cached {
                Some(0.0)
            } else {
                cost_attrs.cost_of(&r.usage)
            };
            drop(stream_span);
            telemetry::record_outcome(&request_span, &r);
            let (tokens, cost, remote) = (
                r.usage.prompt_tokens + r.usage.completion_tokens,
                r.cost_usd,
                r.hosting == Some("remote"),
            );
            if let Some(t) = reservation.as_mut() {
                t.settling(cost, remote);
            }
            recorder.record_now(r);
            drop(open);
            // The real cost is in the spend now: give the reservation back (coordinated: the
            // server adds the cost and frees it).
            if let Some(t) = reservation {
                t.finish(tokens, cost, remote);
            }
        })
    }
}

/// Whether the answer came from the response cache (then it cost nothing).
pub(super) fn cache_hit(sampling: Option<&crate::repro::sampling::Applied>) -> bool {
    sampling.and_then(|a| a.cache_hit) == Some(true)
}

/// Usage estimated from the texts when the backend reported none.
pub(super) fn estimate_usage(body: &RequestBody, summary: &ResponseSummary) -> Usage {
    Usage::new(
        estimate_tokens(&body.texts()),
        estimate_tokens(&[summary.content.as_str()]),
    )
}
