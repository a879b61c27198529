//! API errors as Docker sends them: a status code and `{"message": "…"}`. The docker CLI prints
//! the message (`Error response from daemon: …`), so it must name the thing that was wrong.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

/// One failed request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub status: u16,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status: status.as_u16(),
            message: message.into(),
        }
    }

    /// 404, worded as Docker words it.
    pub fn no_container(name: &str) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, format!("No such container: {name}"))
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::CONFLICT, message)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
}

#[derive(serde::Serialize)]
struct Body<'a> {
    message: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (
            status,
            Json(Body {
                message: &self.message,
            }),
        )
            .into_response()
    }
}
