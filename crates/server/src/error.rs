//! API errors: a status and a JSON body saying what went wrong and what to
//! do next.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use slipway_api::ApiError;

#[derive(Debug)]
pub struct ApiErr {
    pub status: StatusCode,
    pub body: ApiError,
}

impl ApiErr {
    pub fn new(status: StatusCode, error: impl Into<String>, fix: Option<&str>) -> ApiErr {
        ApiErr { status, body: ApiError { error: error.into(), fix: fix.map(str::to_string) } }
    }
    pub fn bad_request(e: impl Into<String>, fix: &str) -> ApiErr {
        ApiErr::new(StatusCode::BAD_REQUEST, e, Some(fix))
    }
    pub fn unauthorized(e: impl Into<String>, fix: &str) -> ApiErr {
        ApiErr::new(StatusCode::UNAUTHORIZED, e, Some(fix))
    }
    pub fn forbidden(e: impl Into<String>, fix: &str) -> ApiErr {
        ApiErr::new(StatusCode::FORBIDDEN, e, Some(fix))
    }
    pub fn not_found(e: impl Into<String>) -> ApiErr {
        ApiErr::new(StatusCode::NOT_FOUND, e, None)
    }
    pub fn conflict(e: impl Into<String>, fix: &str) -> ApiErr {
        ApiErr::new(StatusCode::CONFLICT, e, Some(fix))
    }
    pub fn internal(e: impl std::fmt::Display) -> ApiErr {
        ApiErr::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None)
    }
}

impl IntoResponse for ApiErr {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            eprintln!("slipway serve: {}", self.body.error);
        }
        (self.status, axum::Json(self.body)).into_response()
    }
}

impl From<sqlx::Error> for ApiErr {
    fn from(e: sqlx::Error) -> ApiErr {
        ApiErr::internal(format!("database: {e}"))
    }
}

impl From<anyhow::Error> for ApiErr {
    fn from(e: anyhow::Error) -> ApiErr {
        ApiErr::internal(format!("{e:#}"))
    }
}

pub type ApiResult<T> = Result<T, ApiErr>;

/// Turns axum's plain-text rejections (a body that is not the JSON
/// expected, a bad path or query) into the API's `{error, fix}` body.
pub async fn json_rejections(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let resp = next.run(req).await;
    let plain = resp
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/plain"));
    if !(resp.status().is_client_error() && plain) {
        return resp;
    }
    let status = resp.status();
    let text = match axum::body::to_bytes(resp.into_body(), 64 << 10).await {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(_) => String::new(),
    };
    ApiErr::new(status, text, Some("the request format is in /v1/openapi.json")).into_response()
}

/// `axum::Json`, `Query` and `Path`, except that a request they cannot read
/// is answered like every other error (400 with an `ApiError` body) instead
/// of axum's plain-text 400/415/422, which the OpenAPI document cannot
/// describe. `Json` is also a response, as axum's is.
pub struct Json<T>(pub T);
pub struct Query<T>(pub T);
pub struct Path<T>(pub T);

const READ_FIX: &str = "see the operation in /v1/openapi.json (JSON bodies need 'Content-Type: application/json')";

impl<T: serde::de::DeserializeOwned, S: Send + Sync> axum::extract::FromRequest<S> for Json<T> {
    type Rejection = ApiErr;
    async fn from_request(req: axum::extract::Request, st: &S) -> Result<Self, ApiErr> {
        axum::Json::<T>::from_request(req, st)
            .await
            .map(|axum::Json(v)| Json(v))
            .map_err(|r| ApiErr::bad_request(r.body_text(), READ_FIX))
    }
}

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

impl<T: serde::de::DeserializeOwned, S: Send + Sync> axum::extract::FromRequestParts<S> for Query<T> {
    type Rejection = ApiErr;
    async fn from_request_parts(parts: &mut axum::http::request::Parts, st: &S) -> Result<Self, ApiErr> {
        axum::extract::Query::<T>::from_request_parts(parts, st)
            .await
            .map(|axum::extract::Query(v)| Query(v))
            .map_err(|r| ApiErr::bad_request(r.body_text(), READ_FIX))
    }
}

impl<T: serde::de::DeserializeOwned + Send, S: Send + Sync> axum::extract::FromRequestParts<S> for Path<T> {
    type Rejection = ApiErr;
    async fn from_request_parts(parts: &mut axum::http::request::Parts, st: &S) -> Result<Self, ApiErr> {
        axum::extract::Path::<T>::from_request_parts(parts, st)
            .await
            .map(|axum::extract::Path(v)| Path(v))
            .map_err(|r| ApiErr::bad_request(r.body_text(), READ_FIX))
    }
}
