//! The upstream HTTP client: hyper's pooled client (`hyper_util`'s legacy client) over
//! rustls with aws-lc-rs and the platform's certificate verifier, HTTP/1.1 and HTTP/2 by
//! ALPN. It never follows redirects and never uses a proxy (a proxy or a redirect target
//! would see prompts and keys no policy judged). A gzip answer is decompressed as it is read.
//!
//! It replaces reqwest on the request path, whose own layers (a retry policy that copies the
//! request, a redirect layer that parses the URL again, a URL → URI conversion, a decoder
//! layer) cost about a twelfth of Sluice's CPU per request (`docs/performance.md`, eleventh
//! round). The API keeps reqwest's names for what the providers use: [`Client::post`],
//! [`RequestBuilder::header`], [`RequestBuilder::send`], [`Response::bytes_stream`].

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{Stream, StreamExt, TryStreamExt};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

mod error;
pub use error::Error;
use error::Kind;

type Inner = hyper_util::client::legacy::Client<Timed<HttpsConnector<HttpConnector>>, Full<Bytes>>;

/// How many times a request refused by an HTTP/2 server before it was processed is sent again
/// (see [`refused_unprocessed`]).
const H2_RETRIES: usize = 2;

/// A boxed error source.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Result of the client's operations.
pub type Result<T> = std::result::Result<T, Error>;

/// A pooled upstream client. Cheap to clone (the pool is shared).
#[derive(Clone, Debug)]
pub struct Client {
    inner: Inner,
}

impl Client {
    /// A client whose connection attempts (DNS, TCP and the TLS handshake together) time out
    /// after `connect_timeout`; idle connections close after 90 s; `TCP_NODELAY` is on, and
    /// TCP keepalive probes an idle connection after 15 s, every 15 s, 3 times.
    ///
    /// Errors: the TLS configuration cannot be built (the platform verifier failed to load).
    pub fn new(connect_timeout: Duration) -> std::result::Result<Self, String> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_keepalive(Some(Duration::from_secs(15)));
        http.set_keepalive_interval(Some(Duration::from_secs(15)));
        http.set_keepalive_retries(Some(3));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_platform_verifier(rustls::crypto::aws_lc_rs::default_provider())
            .map_err(|e| format!("cannot build the TLS configuration: {e}"))?
            .https_or_http()
            .enable_all_versions()
            .wrap_connector(http);
        let connector = Timed {
            inner: https,
            timeout: connect_timeout,
        };
        let inner =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .timer(hyper_util::rt::TokioTimer::new())
                .pool_timer(hyper_util::rt::TokioTimer::new())
                .pool_idle_timeout(Duration::from_secs(90))
                .build(connector);
        Ok(Client { inner })
    }

    /// A `POST` to `url`.
    pub fn post(&self, url: url::Url) -> RequestBuilder {
        RequestBuilder::new(self.clone(), Method::POST, url)
    }

    /// A `POST` to `uri`, a URI without credentials, with `host` as its `host` header when it
    /// goes over HTTP/1 without TLS (see
    /// [`crate::config::DeploymentConfig::upstream_target`]: made once per deployment, where
    /// hyper's client would format it for every request).
    pub fn post_uri(&self, uri: Uri, host: Option<HeaderValue>) -> RequestBuilder {
        let mut req = Request::of(Method::POST, uri, None);
        req.host = host;
        RequestBuilder {
            client: self.clone(),
            req: Ok(req),
        }
    }

    /// A `GET` of `url`.
    pub fn get(&self, url: url::Url) -> RequestBuilder {
        RequestBuilder::new(self.clone(), Method::GET, url)
    }

    /// Sends `req`; with a timeout, the answer's headers and whole body must arrive within it.
    /// Over HTTPS, a request an HTTP/2 server refused before processing it (`REFUSED_STREAM`,
    /// or a graceful `GOAWAY`) is sent again, up to twice, as reqwest did.
    ///
    /// Errors: [`Error::is_connect`] when no connection could be made, [`Error::is_timeout`]
    /// past the timeout (or the connect timeout), else a request error.
    pub async fn execute(&self, req: Request) -> Result<Response> {
        let deadline = req.timeout.map(|t| Instant::now() + t);
        let https = req.inner.uri().scheme() == Some(&http::uri::Scheme::HTTPS);
        let mut retries = if https { H2_RETRIES } else { 0 };
        let mut inner = req.inner;
        if let Some(host) = req.host.filter(|_| !https) {
            inner
                .headers_mut()
                .entry(http::header::HOST)
                .or_insert(host);
        }
        let resp = loop {
            let spare = (retries > 0).then(|| copy_of(&inner));
            let sent = self.inner.request(inner.map(Full::new));
            let result = match deadline {
                Some(d) => tokio::time::timeout_at(d, sent)
                    .await
                    .map_err(|_| Error::new(Kind::Timeout, None))?,
                None => sent.await,
            };
            match (result, spare) {
                (Err(e), Some(again)) if refused_unprocessed(&e) => {
                    retries -= 1;
                    inner = again;
                }
                (result, _) => {
                    break result.map_err(|e| {
                        let kind = if e.is_connect() {
                            Kind::Connect
                        } else {
                            Kind::Request
                        };
                        Error::new(kind, Some(Box::new(e)))
                    })?;
                }
            }
        };
        Ok(Response::new(resp, deadline))
    }
}

/// A copy of `req` to send again (its body is shared, not copied).
fn copy_of(req: &http::Request<Bytes>) -> http::Request<Bytes> {
    let mut copy = http::Request::new(req.body().clone());
    *copy.method_mut() = req.method().clone();
    *copy.uri_mut() = req.uri().clone();
    *copy.version_mut() = req.version();
    *copy.headers_mut() = req.headers().clone();
    copy
}

/// Whether an HTTP/2 server turned the request away before processing it, so sending it
/// again is safe (RFC 9113 §8.7): a `REFUSED_STREAM` reset, or a graceful `GOAWAY`
/// (`NO_ERROR`) from the server.
fn refused_unprocessed(e: &hyper_util::client::legacy::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(h2) = s.downcast_ref::<h2::Error>() {
            return h2.is_remote()
                && ((h2.is_go_away() && h2.reason() == Some(h2::Reason::NO_ERROR))
                    || (h2.is_reset() && h2.reason() == Some(h2::Reason::REFUSED_STREAM)));
        }
        source = s.source();
    }
    false
}

/// A connector whose whole connection attempt (DNS, TCP, TLS) is bounded by `timeout`;
/// past it the attempt fails with an I/O `TimedOut` error ([`Error::is_timeout`]).
#[derive(Clone, Debug)]
struct Timed<C> {
    inner: C,
    timeout: Duration,
}

impl<C> tower::Service<Uri> for Timed<C>
where
    C: tower::Service<Uri> + Send,
    C::Future: Send + 'static,
    C::Error: Into<BoxError>,
{
    type Response = C::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = std::result::Result<C::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<std::result::Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let attempt = self.inner.call(uri);
        let timeout = self.timeout;
        Box::pin(async move {
            match tokio::time::timeout(timeout, attempt).await {
                Ok(done) => done.map_err(Into::into),
                Err(_) => Err(Box::new(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the connection attempt timed out",
                )) as BoxError),
            }
        })
    }
}

/// A request being built: the first invalid part is kept as the error [`RequestBuilder::build`]
/// returns.
#[derive(Debug)]
pub struct RequestBuilder {
    client: Client,
    req: Result<Request>,
}

/// A request ready to send: its body is in memory.
#[derive(Debug)]
pub struct Request {
    inner: http::Request<Bytes>,
    timeout: Option<Duration>,
    /// The `host` header to send over plain HTTP when the request has none (HTTPS leaves it
    /// to the client: HTTP/2 names the host in `:authority`).
    host: Option<HeaderValue>,
}

impl Request {
    /// A body-less request of `method` to `uri`, accepting any type and gzip, with `basic`
    /// as its `authorization` header when given.
    fn of(method: Method, uri: Uri, basic: Option<HeaderValue>) -> Request {
        let mut inner = http::Request::new(Bytes::new());
        *inner.method_mut() = method;
        *inner.uri_mut() = uri;
        let headers = inner.headers_mut();
        headers.insert(http::header::ACCEPT, HeaderValue::from_static("*/*"));
        headers.insert(
            http::header::ACCEPT_ENCODING,
            HeaderValue::from_static("gzip"),
        );
        if let Some(v) = basic {
            headers.insert(http::header::AUTHORIZATION, v);
        }
        Request {
            inner,
            timeout: None,
            host: None,
        }
    }

    /// The exact body bytes that will be sent.
    pub fn body(&self) -> &[u8] {
        self.inner.body()
    }

    /// The headers that will be sent (without `host` and the framing headers, which the
    /// connection adds).
    pub fn headers(&self) -> &HeaderMap {
        self.inner.headers()
    }
}

impl RequestBuilder {
    fn new(client: Client, method: Method, mut url: url::Url) -> Self {
        // Credentials in the URL become a Basic header (as browsers and reqwest do), never
        // part of the request line.
        let basic = (!url.username().is_empty() || url.password().is_some()).then(|| {
            let user = percent_decoded(url.username());
            let pass = url.password().map(percent_decoded);
            let _ = url.set_username("");
            let _ = url.set_password(None);
            basic_auth(&user, pass.as_deref())
        });
        let req = Uri::try_from(String::from(url))
            .map_err(|e| Error::new(Kind::Builder, Some(Box::new(e))))
            .map(|uri| Request::of(method, uri, basic));
        RequestBuilder { client, req }
    }

    /// Sets `content-type: application/json` and `x-request-id: {request_id}`, the two headers
    /// of every upstream call, from names and a value kept as constants (no copies). An id
    /// that is not a valid header value fails the request's build, as [`Self::header`] does.
    pub fn json_with_request_id(mut self, request_id: &str) -> Self {
        const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
        const JSON: HeaderValue = HeaderValue::from_static("application/json");
        if let Ok(req) = &mut self.req {
            match HeaderValue::from_str(request_id) {
                Ok(id) => {
                    let headers = req.inner.headers_mut();
                    headers.insert(http::header::CONTENT_TYPE, JSON);
                    headers.insert(X_REQUEST_ID, id);
                }
                Err(e) => self.req = Err(Error::new(Kind::Builder, Some(Box::new(e)))),
            }
        }
        self
    }

    /// Sets header `name` to `value` (replacing it).
    pub fn header(mut self, name: &str, value: impl AsRef<str>) -> Self {
        if let Ok(req) = &mut self.req {
            let parsed = HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| Error::new(Kind::Builder, Some(Box::new(e))))
                .and_then(|n| {
                    HeaderValue::from_str(value.as_ref())
                        .map(|v| (n, v))
                        .map_err(|e| Error::new(Kind::Builder, Some(Box::new(e))))
                });
            match parsed {
                Ok((n, v)) => {
                    req.inner.headers_mut().insert(n, v);
                }
                Err(e) => self.req = Err(e),
            }
        }
        self
    }

    /// Adds every header of `headers` (replacing same names).
    pub fn headers(mut self, headers: HeaderMap) -> Self {
        if let Ok(req) = &mut self.req {
            for (name, value) in headers {
                if let Some(name) = name {
                    req.inner.headers_mut().insert(name, value);
                }
            }
        }
        self
    }

    /// `Authorization: Bearer <key>`, marked sensitive.
    pub fn bearer_auth(mut self, key: &str) -> Self {
        if let Ok(req) = &mut self.req {
            match HeaderValue::from_str(&format!("Bearer {key}")) {
                Ok(mut v) => {
                    v.set_sensitive(true);
                    req.inner
                        .headers_mut()
                        .insert(http::header::AUTHORIZATION, v);
                }
                Err(e) => self.req = Err(Error::new(Kind::Builder, Some(Box::new(e)))),
            }
        }
        self
    }

    /// The body.
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        if let Ok(req) = &mut self.req {
            *req.inner.body_mut() = body.into();
        }
        self
    }

    /// The whole request's timeout: the answer's headers and body.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        if let Ok(req) = &mut self.req {
            req.timeout = Some(timeout);
        }
        self
    }

    /// The client and the built request.
    ///
    /// Errors: a URL, header name or value that HTTP cannot carry.
    pub fn build(self) -> (Client, Result<Request>) {
        (self.client, self.req)
    }

    /// Builds and sends the request (see [`Client::execute`]).
    pub async fn send(self) -> Result<Response> {
        let (client, req) = self.build();
        client.execute(req?).await
    }
}

/// `Basic base64(user:pass)`, marked sensitive.
fn basic_auth(user: &str, pass: Option<&str>) -> HeaderValue {
    use base64::Engine;
    let raw = format!("{user}:{}", pass.unwrap_or(""));
    let encoded = base64::engine::general_purpose::STANDARD.encode(raw);
    let mut v = HeaderValue::from_str(&format!("Basic {encoded}"))
        .unwrap_or_else(|_| HeaderValue::from_static("Basic"));
    v.set_sensitive(true);
    v
}

/// `s` with its `%XX` escapes decoded (and nothing else: a `+` stays a `+`).
fn percent_decoded(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// An upstream answer: status and headers read, the body not yet.
#[derive(Debug)]
pub struct Response {
    status: StatusCode,
    headers: HeaderMap,
    body: hyper::body::Incoming,
    deadline: Option<Instant>,
}

impl Response {
    fn new(resp: http::Response<hyper::body::Incoming>, deadline: Option<Instant>) -> Self {
        let (parts, body) = resp.into_parts();
        Response {
            status: parts.status,
            headers: parts.headers,
            body,
            deadline,
        }
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The headers (`content-encoding` still says `gzip` when the body is decompressed).
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The body as it arrives, decompressed when it is gzip. Past the request's timeout the
    /// stream yields one [`Error::is_timeout`] error and ends.
    pub fn bytes_stream(self) -> BoxStream<'static, Result<Bytes>> {
        let gzip = self
            .headers
            .get(http::header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("gzip"));
        let raw = self
            .body
            .into_data_stream()
            .map_err(|e| Error::new(Kind::Body, Some(Box::new(e))))
            .boxed();
        let body = if gzip { gunzipped(raw) } else { raw };
        match self.deadline {
            Some(d) => Deadline {
                inner: body,
                sleep: Some(Box::pin(tokio::time::sleep_until(d))),
            }
            .boxed(),
            None => body,
        }
    }
}

/// `raw` decompressed. An empty body (no data before its end, however it is framed) is not
/// gzip data, whatever the header says: it stays empty (an error answer keeps its status).
fn gunzipped(mut raw: BoxStream<'static, Result<Bytes>>) -> BoxStream<'static, Result<Bytes>> {
    futures_util::stream::once(async move {
        let first = loop {
            match raw.next().await {
                Some(Ok(b)) if b.is_empty() => continue,
                Some(Ok(b)) => break b,
                Some(Err(e)) => return futures_util::stream::iter([Err(e)]).boxed(),
                None => return futures_util::stream::empty().boxed(),
            }
        };
        let whole = futures_util::stream::iter([Ok(first)])
            .chain(raw)
            .map_err(std::io::Error::other);
        let mut decoder = async_compression::tokio::bufread::GzipDecoder::new(
            tokio_util::io::StreamReader::new(whole),
        );
        decoder.multiple_members(true);
        tokio_util::io::ReaderStream::new(decoder)
            .map_err(|e| Error::new(Kind::Decode, Some(Box::new(e))))
            .boxed()
    })
    .flatten()
    .boxed()
}

/// A body stream that ends with a timeout error at its deadline.
struct Deadline {
    inner: BoxStream<'static, Result<Bytes>>,
    /// `None` once the deadline passed (the stream has ended).
    sleep: Option<Pin<Box<Sleep>>>,
}

impl Stream for Deadline {
    type Item = Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let Some(sleep) = self.sleep.as_mut() else {
            return Poll::Ready(None);
        };
        if sleep.as_mut().poll(cx).is_ready() {
            self.sleep = None;
            return Poll::Ready(Some(Err(Error::new(Kind::Timeout, None))));
        }
        self.inner.poll_next_unpin(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> Client {
        Client::new(Duration::from_secs(1)).unwrap()
    }

    #[test]
    fn credentials_in_the_url_become_a_basic_header_and_leave_the_uri() {
        let url = url::Url::parse("http://us%20er:p%40ss@127.0.0.1:9/v1/x").unwrap();
        let (_, req) = client().post(url).build();
        let req = req.unwrap();
        assert_eq!(req.inner.uri().to_string(), "http://127.0.0.1:9/v1/x");
        // base64("us er:p@ss")
        assert_eq!(
            req.inner.headers()["authorization"],
            "Basic dXMgZXI6cEBzcw=="
        );
    }

    #[test]
    fn only_percent_escapes_are_decoded_in_url_credentials() {
        // `+` and `&` are left as they are in a URL's user info, and stay so.
        let url = url::Url::parse("http://u:a+b&c%25@127.0.0.1:9/").unwrap();
        let (_, req) = client().get(url).build();
        // base64("u:a+b&c%")
        assert_eq!(
            req.unwrap().inner.headers()["authorization"],
            "Basic dTphK2ImYyU="
        );
    }

    #[test]
    fn a_header_name_http_cannot_carry_is_a_builder_error() {
        let url = url::Url::parse("http://127.0.0.1:9/").unwrap();
        let (_, req) = client().post(url).header("X Bad", "1").build();
        assert!(req.unwrap_err().is_request());
    }

    #[test]
    fn json_with_request_id_sets_both_headers_and_refuses_a_bad_id() {
        let url = url::Url::parse("http://127.0.0.1:9/v1/chat/completions").unwrap();
        let (_, req) = client()
            .post(url.clone())
            .json_with_request_id("01-ab")
            .build();
        let req = req.unwrap();
        let h = req.inner.headers();
        assert_eq!(h["content-type"], "application/json");
        assert_eq!(h["x-request-id"], "01-ab");
        let (_, req) = client().post(url).json_with_request_id("a\nb").build();
        assert!(req.unwrap_err().is_request());
    }

    #[test]
    fn requests_ask_for_gzip_and_carry_their_exact_body() {
        let url = url::Url::parse("http://127.0.0.1:9/v1/chat/completions").unwrap();
        let (_, req) = client()
            .post(url)
            .header("content-type", "application/json")
            .bearer_auth("sk-1")
            .body(Bytes::from_static(b"{\"a\":1}"))
            .build();
        let req = req.unwrap();
        assert_eq!(req.body(), b"{\"a\":1}");
        let h = req.inner.headers();
        assert_eq!(h["accept-encoding"], "gzip");
        assert_eq!(h["authorization"], "Bearer sk-1");
        assert!(h["authorization"].is_sensitive());
        assert_eq!(h["content-type"], "application/json");
    }

    #[test]
    fn a_header_value_http_cannot_carry_is_a_builder_error() {
        let url = url::Url::parse("http://127.0.0.1:9/").unwrap();
        let (_, req) = client().post(url).header("x-request-id", "a\nb").build();
        let e = req.unwrap_err();
        assert!(e.is_request());
        assert_eq!(e.to_string(), "the request could not be built");
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_connect_error() {
        // Bind then drop: the port is (almost surely) closed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = url::Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
        let e = client().get(url).send().await.unwrap_err();
        assert!(e.is_connect(), "{e:?}");
        assert!(!e.is_timeout());
    }
}
