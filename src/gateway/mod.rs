//! The gateway core, without HTTP: a typed request and its context in, a reply out.
//! The server calls it for each request; the CLI (`explain`, `replay`) calls it directly.
//!
//! Flow: resolve the model to candidate deployments → try them in order (a connection
//! failure, timeout or 5xx before the first byte reached the client moves on to the next) →
//! reply (whole JSON, or a stream whose first chunk was already read) → exactly one
//! [`RequestRecord`] per request.
//!
//! Layer: below `http`, above `access`, `policy`, `providers` and `store`; never imports
//! `http` or `cli`. Inside: `route` (plan) → `attempt` (tries) → `record` (Recorder), `stream`.

pub mod attempt;
pub mod budget;
pub mod closing;
mod context;
pub mod explain;
mod finish;
pub mod native_stream;
mod output_cap;
pub mod record;
pub mod reload;
pub mod route;
pub mod stream;

use crate::access::Access;
use crate::access::auth::Principal;
use crate::api::ApiError;
use crate::api::RequestBody;
use crate::api::summary::ResponseSummary;
use crate::config::{Config, DeploymentConfig};
use crate::policy::{Decision, DeploymentAttrs, Engine, RequestFacts};
use crate::providers::{Answer, Upstreams, WrittenBody};
use crate::telemetry::{self, metrics::Metrics};
use attempt::{AttemptCtx, Attempted};
use finish::{cache_hit, estimate_usage};
use futures_util::FutureExt;
use record::{Recorder, RequestRecord};
use route::RouteState;
use std::sync::Arc;
use stream::ClientStream;
use tracing::Instrument;

pub use context::{GatewayReply, ReplyBody, RequestContext};

/// The gateway: config, upstream clients, recorder. Cheap to clone: one reference count
/// (axum clones it several times per request), the parts reached through [`Deref`].
#[derive(Clone)]
pub struct Gateway(Arc<Parts>);

impl std::ops::Deref for Gateway {
    type Target = Parts;

    fn deref(&self) -> &Parts {
        &self.0
    }
}

/// What a [`Gateway`] shares; a reload builds new parts (see `reload`).
pub struct Parts {
    /// The loaded config.
    pub config: Arc<Config>,
    upstreams: Upstreams,
    recorder: Recorder,
    access: Arc<Access>,
    policy: Arc<Engine>,
    routes: Arc<RouteState>,
    replica: Arc<reload::ReplicaState>,
    /// Set when the shutdown grace period ends (shared across reloads).
    closing: closing::Closing,
}

impl Gateway {
    /// Builds a gateway over `config`.
    pub fn new(config: Config) -> Result<Self, String> {
        let upstreams = Upstreams::new(&config.deployments)?;
        let deployments: Vec<String> = config.deployments.iter().map(|d| d.name.clone()).collect();
        let models = config.models.iter().map(|m| m.name.clone());
        let metrics = Metrics::with_names(models.chain(deployments.clone()).collect(), deployments);
        let recorder = Recorder::new(Arc::new(metrics));
        let mut access = Access::new(&config, recorder.spend().clone())?;
        if tokio::runtime::Handle::try_current().is_ok() {
            access.start_coordination(&config)?;
        }
        let access = Arc::new(access);
        let policy = Engine::new(&config)?;
        Ok(Gateway::from_parts(Parts {
            access,
            config: Arc::new(config),
            upstreams,
            recorder,
            policy: Arc::new(policy),
            routes: Arc::new(RouteState::default()),
            replica: Arc::new(reload::ReplicaState {
                loaded_at_ms: crate::access::coord::now_ms().into(),
                ..Default::default()
            }),
            closing: closing::Closing::default(),
        }))
    }

    fn from_parts(parts: Parts) -> Self {
        Gateway(Arc::new(parts))
    }

    /// Who may call and what they may spend (keys, limits, budgets).
    pub fn access(&self) -> &Access {
        &self.access
    }

    /// The process's end of the shutdown grace period (see [`closing`]).
    pub fn closing(&self) -> &closing::Closing {
        &self.closing
    }

    /// The gateway's metrics.
    pub fn metrics(&self) -> &Metrics {
        self.recorder.metrics()
    }

    /// Builds a gateway over `config` that also writes every request to the request log at
    /// `log.path` (opened or created, migrated, writer thread started). With
    /// `log.prompts: off` no log is opened. Call inside a tokio runtime.
    ///
    /// Errors: a bad deployment, or the log cannot be opened.
    pub fn with_request_log(config: Config) -> Result<Self, String> {
        let gw = Gateway::new(config)?;
        // Nothing else holds the new gateway yet, so its parts can still change.
        let mut gw =
            Arc::try_unwrap(gw.0).map_err(|_| "the new gateway is already shared".to_string())?;
        if gw.config.log.prompts != crate::config::LogMode::Off {
            let log = crate::store::writer::start_with_metrics(
                &gw.config.log,
                &gw.config.pii,
                Some(gw.recorder.metrics_arc()),
            )
            .map_err(|e| format!("request log {}: {e}", gw.config.log.describe()))?;
            gw.recorder = gw.recorder.clone().with_log(log);
            let log_cfg = gw.config.log.clone();
            let mut access = Access::clone(&gw.access);
            access.open_key_db(&log_cfg)?;
            gw.access = Arc::new(access);
        }
        Ok(Gateway::from_parts(gw))
    }

    /// The recorder (its log queue, for stats and flushing).
    pub fn recorder(&self) -> &Recorder {
        &self.recorder
    }

    /// Waits until every request recorded so far is in the log (graceful shutdown).
    pub async fn flush_log(&self) {
        self.recorder.flush().await;
    }

    /// The policy engine (catalog, PII detectors, resolved deployments).
    pub fn policy(&self) -> &Engine {
        &self.policy
    }

    /// The routing decision for a request, without calling anything: the policies' decision
    /// and the plan (candidates, exclusions, try order). `sluice explain` and the server use
    /// this same function.
    ///
    /// Errors (in the plan): see [`crate::gateway::route::plan`]; a policy's deny comes back in
    /// `Decision::denied`.
    pub fn decide(
        &self,
        headers: &axum::http::HeaderMap,
        principal: &Principal,
        body: &RequestBody,
    ) -> (Decision, Result<crate::gateway::route::Plan, ApiError>) {
        let scopes = self.config.model_scopes(body.model());
        let facts = RequestFacts {
            headers: Some(headers),
            api_key_id: principal.key_id.as_deref(),
            api_key_creators: &principal.creators,
            team: principal.spec.team.as_deref(),
            key_tags: &principal.spec.tags,
            key_policies: &principal.spec.policies,
            model_owners: &scopes[1..],
        };
        let mut decision = self.policy.decide(&facts, body);
        if principal.local_only.is_some() {
            decision.constraints.push(crate::policy::Constraint {
                policy: "budget".into(),
                rule: crate::policy::Rule::Hosting(crate::policy::tier::Hosting::Local),
            });
        }
        let header = crate::repro::sampling::with_client_header(
            self.config.sampling.allow_client_header,
            headers,
            &mut decision.sampling,
        );
        let plan = header.and_then(|()| {
            crate::gateway::route::plan(
                &self.config,
                &self.policy,
                &decision,
                body.model(),
                Some(&self.routes),
            )
        });
        (decision, plan)
    }

    /// The shared upstream clients.
    pub fn upstreams(&self) -> &Upstreams {
        &self.upstreams
    }

    /// The candidate deployments for a client-facing model name, in order: a configured model's
    /// deployments, or the deployment of that name.
    ///
    /// Errors: 404 `model_not_found` when the name is neither.
    pub fn candidates(&self, model: &str) -> Result<Vec<&DeploymentConfig>, ApiError> {
        if let Some(m) = self.config.models.iter().find(|m| m.name == model) {
            return Ok(m
                .deployments
                .iter()
                .filter_map(|d| self.config.deployment(d))
                .collect());
        }
        if let Some(d) = self.config.deployment(model) {
            return Ok(vec![d]);
        }
        Err(ApiError::model_not_found(model))
    }

    /// One request through the whole pipeline: admit (the caller's permission, budget and rate
    /// limits, [`Access::admit`]) → decide → route → attempt → record. `ctx` carries the
    /// request's headers and principal. Returns the reply or the error, and the rate-limit
    /// headers to put on whichever response is made of it. Every outcome is recorded.
    ///
    /// Not an `async fn`: admission is synchronous, and the returned future is
    /// [`Gateway::handle`]'s own, without a second copy of `ctx` and `body` around it (the
    /// future is copied whole into the box that runs it).
    pub fn serve(
        &self,
        mut ctx: RequestContext,
        body: RequestBody,
    ) -> impl Future<Output = (Result<GatewayReply, ApiError>, Vec<(&'static str, String)>)> + Send + '_
    {
        use futures_util::future::Either;
        let estimate = ctx.prompt_tokens(&body);
        let limit_headers = match self
            .access
            .admit(&mut ctx.principal, body.model(), estimate)
        {
            Ok(h) => h,
            Err(rej) => {
                // Boxed: the rare path.
                return Either::Left(Box::pin(async move {
                    self.record_rejection(&ctx, Some(&body), &rej.error).await;
                    (Err(rej.error), rej.headers)
                }));
            }
        };
        // gen_ai.operation.name is the upstream operation (`chat` for bridged dialects too:
        // OpenTelemetry names Anthropic's Messages calls so).
        ctx.span = telemetry::request_span(
            &ctx.headers,
            ctx.endpoint.operation(),
            body.model(),
            &ctx.id,
        );
        telemetry::record_request(&ctx.span, &body, self.config.telemetry.capture_content);
        let span = ctx.span.clone();
        Either::Right(
            self.handle(ctx, body)
                .instrument(span)
                .map(move |result| (result, limit_headers)),
        )
    }

    /// Serves one request. Every outcome — reply or error — is recorded exactly once (for
    /// streams, when the stream ends).
    pub async fn handle(
        &self,
        mut ctx: RequestContext,
        body: RequestBody,
    ) -> Result<GatewayReply, ApiError> {
        ctx.open = Some(self.closing.track());
        let mut base = self.base_record(&ctx, &body);
        let (decision, plan) = {
            let _route = tracing::info_span!("route").entered();
            self.decide(&ctx.headers, &ctx.principal, &body)
        };
        // Held until the request's real cost is recorded (dropped at the end of this function,
        // or with the stream).
        let (mut decision, mut plan) = (decision, plan);
        let mut reservation = if self.access.is_coordinated() {
            // Boxed: a Redis round trip's future is large and only coordinated requests wait.
            Box::pin(self.reserve_budget(&mut ctx, &body, &mut decision, &mut plan)).await
        } else {
            // Without a coordinator reserving never waits: it runs to its end here, so this
            // future does not hold its state.
            let reserved = self
                .reserve_budget(&mut ctx, &body, &mut decision, &mut plan)
                .now_or_never();
            match reserved {
                Some(r) => r,
                None => {
                    plan = Err(ApiError::internal(
                        "the local budget reservation did not complete",
                    ));
                    None
                }
            }
        };
        // Coordinated: the `x-ratelimit-*` headers come with the admission.
        let limit_headers = reservation
            .as_mut()
            .map(|t| t.take_headers())
            .unwrap_or_default();
        base.policies = decision.policies.clone();
        base.pii_kinds = decision.pii_kinds();
        if let Some(mode) = decision.log_mode {
            base.log_mode = Some(mode.as_str().to_string());
        }
        // The request's text for the log, written before the call: a chat or completions
        // request sent unchanged but for its model goes upstream as this text.
        let request_text = self.request_text(&base, &body);
        let written = request_text
            .as_deref()
            .filter(|_| !matches!(body, RequestBody::Native(_)))
            .map(|t| WrittenBody {
                body: &body,
                text: t.get(),
            });
        let call = Box::pin(self.route_and_call(&ctx, &body, &decision, plan, &mut base, written));
        let result = self.closing.race(call).await;
        base.request_body = request_text;
        let policies = decision.policies.join(",");
        match result {
            Ok(Attempted::Complete {
                attrs,
                bytes,
                json,
                guard,
                sampling,
                native,
            }) => {
                drop(guard);
                // The bridges read the bytes' view themselves, or the tree when there is
                // one (a restored redaction, an answer the view refused), handed over below.
                let bridged = native.is_none() && matches!(body, RequestBody::Native(_));
                let (summary, json) = match json {
                    Answer::Tree(json) => {
                        let summary = match native {
                            Some(d) => crate::api::native_summary::summarize(d, &json),
                            None => ResponseSummary::from_response(&json),
                        };
                        (summary, bridged.then_some(json))
                    }
                    Answer::Summary(summary) => (*summary, None),
                };
                let (usage, estimated) = match summary.usage {
                    Some(u) => (u, false),
                    None => (estimate_usage(&body, &summary), true),
                };
                base.status = 200;
                if ctx.client_gone.load(std::sync::atomic::Ordering::SeqCst) {
                    base.status = 499;
                    base.error_type = Some("client_closed".into());
                    base.error_message =
                        Some("the client closed the connection before the answer".into());
                }
                base.usage = usage;
                base.usage_estimated = estimated;
                base.cost_usd = if cache_hit(sampling.as_ref()) {
                    Some(0.0)
                } else {
                    attrs.cost_of(&usage)
                };
                base.response = summary;
                // A bridged Messages answer the translation cannot give (no choices, tool
                // arguments that are not an object) is the client's 502: the row says so too
                // (it said 200 while the client got the error).
                let untranslatable = match &body {
                    RequestBody::Native(n)
                        if bridged && n.dialect == crate::api::native::Dialect::Messages =>
                    {
                        crate::bridge::messages::response::check(&base.response).err()
                    }
                    _ => None,
                };
                if let Some(e) = &untranslatable
                    && base.status == 200
                {
                    base.status = e.status.as_u16();
                    base.error_type = Some(e.body.kind.clone());
                    base.error_message = Some(e.body.message.clone());
                }
                self.access.settle_tokens(
                    &ctx.principal,
                    body.model(),
                    ctx.prompt_tokens(&body),
                    usage.prompt_tokens + usage.completion_tokens,
                );
                base.overhead_us = base
                    .upstream_us
                    .map(|u| (ctx.started.elapsed().as_micros() as u64).saturating_sub(u));
                let (cost, remote) = (base.cost_usd, base.hosting == Some("remote"));
                if let Some(t) = reservation.as_mut() {
                    t.settling(cost, remote);
                }
                if let Some(wait) = self.finish_record(&ctx, base) {
                    wait.await;
                }
                if let Some(t) = reservation {
                    t.finish(usage.prompt_tokens + usage.completion_tokens, cost, remote);
                }
                if let Some(e) = untranslatable {
                    return Err(e);
                }
                let mut reply = self.reply(&attrs, policies, ReplyBody::Json(bytes));
                reply.native = native.is_some();
                // A bridged answer with a tree is translated from it (not from the bytes).
                if json.is_some() {
                    reply.json = json;
                }
                reply.add_route(&body);
                reply.add_sampling(sampling.as_ref());
                reply.headers.extend(limit_headers);
                reply.log_mode = decision.log_mode;
                Ok(reply)
            }
            Ok(Attempted::Events {
                attrs,
                dialect,
                first,
                rest,
                restorer,
                guard,
                sampling,
            }) => {
                let estimated = ctx.prompt_tokens(&body);
                let on_finish =
                    self.on_stream_finish(&ctx, &body, base, &attrs, guard, reservation, false);
                let stream = native_stream::NativeStream::new(
                    dialect,
                    attrs.name.clone(),
                    first,
                    self.closing.events(rest),
                    restorer,
                    estimated,
                    on_finish,
                )
                .with_log_limit(self.config.log.max_body_bytes);
                let mut reply = self.reply(&attrs, policies, ReplyBody::Native(stream));
                reply.native = true;
                reply.add_route(&body);
                reply.add_sampling(sampling.as_ref());
                reply.headers.extend(limit_headers);
                reply.log_mode = decision.log_mode;
                Ok(reply)
            }
            Ok(Attempted::Stream {
                attrs,
                first,
                rest,
                guard,
                sampling,
            }) => {
                let cached = cache_hit(sampling.as_ref());
                let on_finish =
                    self.on_stream_finish(&ctx, &body, base, &attrs, guard, reservation, cached);
                let stream = ClientStream::new(
                    first,
                    self.closing.chunks(rest),
                    body.wants_stream_usage(),
                    ctx.prompt_tokens(&body),
                    on_finish,
                )
                .with_log_limit(self.config.log.max_body_bytes);
                let mut reply = self.reply(&attrs, policies, ReplyBody::Sse(stream));
                reply.add_route(&body);
                reply.add_sampling(sampling.as_ref());
                reply.headers.extend(limit_headers);
                reply.log_mode = decision.log_mode;
                Ok(reply)
            }
            Err(e) => {
                base.status = e.status.as_u16();
                base.error_type = Some(e.body.kind.clone());
                base.error_message = Some(e.body.message.clone());
                if let Some(wait) = self.finish_record(&ctx, base) {
                    wait.await;
                }
                Err(e)
            }
        }
    }

    fn reply(&self, attrs: &DeploymentAttrs, policies: String, body: ReplyBody) -> GatewayReply {
        let mut headers = vec![
            ("x-sluice-deployment", attrs.name.clone()),
            ("x-sluice-openness", attrs.openness.as_str().to_string()),
            ("x-sluice-hosting", attrs.hosting.as_str().to_string()),
        ];
        if !policies.is_empty() {
            headers.push(("x-sluice-policies", policies));
        }
        GatewayReply {
            headers,
            deployment: attrs.name.clone(),
            body,
            native: false,
            json: None,
            log_mode: None,
        }
    }

    /// Applies the decision: a policy's deny → 403; else tries the plan's deployments (see
    /// [`attempt::attempt`]), recording each attempt.
    async fn route_and_call(
        &self,
        ctx: &RequestContext,
        body: &RequestBody,
        decision: &Decision,
        plan: Result<crate::gateway::route::Plan, ApiError>,
        record: &mut RequestRecord,
        written: Option<WrittenBody<'_>>,
    ) -> Result<Attempted, ApiError> {
        if let Some(denial) = &decision.denied {
            return Err(denial.to_error());
        }
        let plan = plan?;
        if let Some(e) = plan.rejection() {
            return Err(e);
        }
        let cx = AttemptCtx {
            upstreams: &self.upstreams,
            config: &self.config,
            engine: &self.policy,
            state: &self.routes,
            access: &self.access,
            endpoint: ctx.endpoint,
            request_id: &ctx.id,
            written,
        };
        attempt::attempt(&cx, decision, &plan, body, record).await
    }
}

/// Whether another deployment may be tried after this error: server-side failures only.
pub fn is_retryable(e: &ApiError) -> bool {
    e.status.is_server_error() || e.status.as_u16() == 429 || e.status.as_u16() == 408
}
