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
