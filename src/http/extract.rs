//! Path and query extractors whose rejections are OpenAI-shaped 400s (axum's own are
//! `text/plain`): a path segment that is not UTF-8 once percent-decoded, or a query string
//! that does not parse, gets `invalid_request_error` like any other bad input.

use crate::api::ApiError;
use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

/// [`Path`] with an OpenAI-shaped 400 rejection.
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(v)) => Ok(ApiPath(v)),
            Err(e) => Err(ApiError::invalid_request(format!(
                "Invalid URL path: {}",
                e.body_text()
            ))
            .with_code("invalid_path")
            .into_response()),
        }
    }
}

/// [`Query`] with an OpenAI-shaped 400 rejection.
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(ApiQuery(v)),
            Err(e) => Err(ApiError::invalid_request(e.body_text())
                .with_code("invalid_query")
                .into_response()),
        }
    }
}
