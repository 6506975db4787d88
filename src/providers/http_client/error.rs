//! The upstream client's error: what went wrong, as kinds the gateway maps to statuses, with
//! its cause chain; its text never holds the URL.

use super::BoxError;

/// What went wrong with an upstream request. Its text never holds the URL (which could
/// carry credentials).
#[derive(Debug)]
pub struct Error {
    kind: Kind,
    source: Option<BoxError>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// The request could not be built (a URL or header HTTP cannot carry).
    Builder,
    /// No connection (refused, unresolved, TLS failed, connect timeout).
    Connect,
    /// The request failed after connecting.
    Request,
    /// The body broke off.
    Body,
    /// The gzip body is not valid gzip.
    Decode,
    /// The request's timeout passed.
    Timeout,
}

impl Error {
    pub(super) fn new(kind: Kind, source: Option<BoxError>) -> Self {
        Error { kind, source }
    }

    /// The request's timeout passed, or a connection attempt timed out.
    pub fn is_timeout(&self) -> bool {
        if self.kind == Kind::Timeout {
            return true;
        }
        let mut source = self.source.as_deref().map(|e| e as &dyn std::error::Error);
        while let Some(e) = source {
            if let Some(io) = e.downcast_ref::<std::io::Error>()
                && io.kind() == std::io::ErrorKind::TimedOut
            {
                return true;
            }
            source = e.source();
        }
        false
    }

    /// No connection could be made.
    pub fn is_connect(&self) -> bool {
        self.kind == Kind::Connect
    }

    /// The body could not be read.
    pub fn is_body(&self) -> bool {
        self.kind == Kind::Body
    }

    /// The body could not be decompressed.
    pub fn is_decode(&self) -> bool {
        self.kind == Kind::Decode
    }

    /// The request could not be built or sent.
    pub fn is_request(&self) -> bool {
        matches!(self.kind, Kind::Builder | Kind::Request)
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.kind {
            Kind::Builder => "the request could not be built",
            Kind::Connect => "connection failed",
            Kind::Request => "the request could not be sent",
            Kind::Body => "the body could not be read",
            Kind::Decode => "the gzip body could not be decompressed",
            Kind::Timeout => "timed out",
        })
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}
