//! API errors: each failure is a status, a stable machine-readable `code`
//! and a message (docs/api.md "Error codes"). Client mistakes are always 4xx.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// One API error.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable code (`missing_token`, `body_too_large`, ...).
    pub code: &'static str,
    /// Human-readable detail.
    pub message: String,
    /// Seconds for `Retry-After` (503s).
    pub retry_after: Option<u64>,
    /// Extra fields (`errors` for reload); boxed to keep `Result`s small.
    pub details: Option<Box<serde_json::Value>>,
}

impl ApiError {
    /// Any status and code.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
            details: None,
        }
    }

    /// 401.
    pub fn unauthenticated(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, code, message)
    }

    /// 403 `forbidden`.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 400 with `code`.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 503 with `Retry-After`.
    pub fn unavailable(
        code: &'static str,
        message: impl Into<String>,
        retry_after: u64,
    ) -> ApiError {
        ApiError {
            retry_after: Some(retry_after.max(1)),
            ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
        }
    }

    /// 500 `internal` (host-side failures only, never client mistakes).
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({"error": {"code": self.code, "message": self.message}});
        if let (Some(details), Some(obj)) = (self.details, body["error"].as_object_mut()) {
            obj.insert("details".into(), *details);
        }
        let mut resp = (self.status, Json(body)).into_response();
        if self.status == StatusCode::REQUEST_TIMEOUT {
            // The rest of the body may still be on its way: never read it.
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if let Some(secs) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}

/// HTTP status of an answer: a run that is not over is `202` (`200` once
/// completed), anything else by its outcome (docs/api.md "Status codes").
pub fn answer_status(answer: &crate::pipeline::answer::Answer) -> StatusCode {
    match &answer.run {
        Some(r) if r.state == "completed" => StatusCode::OK,
        Some(_) => StatusCode::ACCEPTED,
        None => status_for(answer.outcome),
    }
}

/// The HTTP status of an outcome.
pub fn status_for(outcome: crate::Outcome) -> StatusCode {
    match outcome {
        crate::Outcome::Ok => StatusCode::OK,
        crate::Outcome::PendingApproval => StatusCode::ACCEPTED,
        crate::Outcome::InvalidInput
        | crate::Outcome::CapabilityError
        | crate::Outcome::BudgetExhausted(_) => StatusCode::UNPROCESSABLE_ENTITY,
        crate::Outcome::NoRoute => StatusCode::NOT_FOUND,
        crate::Outcome::Denied | crate::Outcome::ApprovalDenied => StatusCode::FORBIDDEN,
        crate::Outcome::ApprovalExpired => StatusCode::GONE,
        crate::Outcome::Trap => StatusCode::BAD_GATEWAY,
        crate::Outcome::Transient => StatusCode::SERVICE_UNAVAILABLE,
    }
}
