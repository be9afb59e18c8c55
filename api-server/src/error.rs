//! API errors as RFC 9457 `application/problem+json`.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(
        "missing or invalid bearer token; pass `Authorization: Bearer <token>` (the standalone server writes one to <data-dir>/cli.json)"
    )]
    Unauthorized,
    #[error("{what} {id} not found")]
    NotFound { what: &'static str, id: String },
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub(crate) fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "ORCA-API-UNAUTHORIZED"),
            ApiError::NotFound { .. } => (StatusCode::NOT_FOUND, "ORCA-API-NOT-FOUND"),
            ApiError::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "ORCA-API-INVALID"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "ORCA-API-CONFLICT"),
            ApiError::Unavailable(_) => (StatusCode::BAD_GATEWAY, "ORCA-API-UNAVAILABLE"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "ORCA-API-INTERNAL"),
        }
    }
}

impl From<orca_store::StoreError> for ApiError {
    fn from(e: orca_store::StoreError) -> Self {
        match e {
            orca_store::StoreError::NotFound { what, id } => ApiError::NotFound { what, id },
            other => {
                tracing::error!(error = %other, "store error");
                ApiError::Internal("the metadata store failed; see the server log".into())
            }
        }
    }
}

/// RFC 9457 problem details (`application/problem+json`).
#[derive(Debug, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Problem {
    /// Always `about:blank`: `code` tells the problems apart.
    #[serde(rename = "type")]
    pub kind: String,
    /// The HTTP reason phrase of `status`.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong, for a human.
    pub detail: String,
    /// Stable machine-readable code, `ORCA-API-…`.
    pub code: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let body = Problem {
            kind: "about:blank".into(),
            title: status.canonical_reason().unwrap_or("error").into(),
            status: status.as_u16(),
            detail: self.to_string(),
            code: code.into(),
        };
        let json = serde_json::to_vec(&body).unwrap_or_default();
        (
            status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            json,
        )
            .into_response()
    }
}

/// Turns error responses that did not come from Orca's own errors — axum's
/// extractor rejections (malformed JSON, wrong types, a body over the size
/// limit, a bad path or query parameter, an unknown method) — into RFC 9457
/// problem+json like every other error, keeping their status and message.
pub async fn problemize(response: Response) -> Response {
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/problem+json"));
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = match axum::body::to_bytes(body, 64 * 1024).await {
        Ok(b) => String::from_utf8_lossy(&b).trim().to_string(),
        Err(_) => String::new(),
    };
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "ORCA-API-TOO-LARGE",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "ORCA-API-MEDIA-TYPE",
        StatusCode::METHOD_NOT_ALLOWED => "ORCA-API-METHOD",
        StatusCode::NOT_FOUND => "ORCA-API-NOT-FOUND",
        s if s.is_server_error() => "ORCA-API-INTERNAL",
        _ => "ORCA-API-BAD-REQUEST",
    };
    let detail = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        text
    };
    let body = Problem {
        kind: "about:blank".into(),
        title: status.canonical_reason().unwrap_or("error").into(),
        status: status.as_u16(),
        detail,
        code: code.into(),
    };
    let mut out = (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        serde_json::to_vec(&body).unwrap_or_default(),
    )
        .into_response();
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
}
