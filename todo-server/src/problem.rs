//! Errors as RFC 9457 `application/problem+json`, mapped from core errors in one place.

use poem::error::ResponseError;
use poem::http::{HeaderValue, StatusCode, header};
use poem::{Error, Response};
use poem_openapi::error::{
    AuthorizationError, ContentTypeError, ParseParamError, ParsePathError, ParseRequestPayloadError,
};
use poem_openapi::{ApiResponse, Object, payload::Json};
use serde::Serialize;
use todo_core::{AuthError, ValidationError};

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The `Content-Type` of `resp`, or `""` when it has none (or one that is not text).
pub(crate) fn content_type(resp: &Response) -> &str {
    resp.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// One invalid field.
#[derive(Debug, Clone, Object, Serialize)]
pub struct FieldProblem {
    /// The field or parameter name (`title`, `limit`, ...).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// An RFC 9457 problem document. `detail` is a human sentence (FastAPI frontends display it).
#[derive(Debug, Clone, Object, Serialize)]
pub struct Problem {
    /// A URI reference identifying the problem type (`about:blank`: see `title` and `status`).
    #[oai(rename = "type")]
    #[serde(rename = "type")]
    pub kind: String,
    /// The HTTP status phrase.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong, for humans.
    pub detail: String,
    /// For validation errors: each invalid field.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldProblem>>,
}

/// Every error the API answers with. Each variant documents a status in the OpenAPI contract.
#[derive(Debug, ApiResponse)]
pub enum ApiError {
    /// Malformed request (for example JSON that does not parse).
    #[oai(status = 400, content_type = "application/problem+json")]
    BadRequest(Json<Problem>),
    /// Missing, malformed or rejected credentials.
    #[oai(status = 401, content_type = "application/problem+json")]
    Unauthorized(Json<Problem>, #[oai(header = "WWW-Authenticate")] String),
    /// The path's user id is not the authenticated user, or a per-user quota is reached.
    #[oai(status = 403, content_type = "application/problem+json")]
    Forbidden(Json<Problem>),
    /// No such task for this user.
    #[oai(status = 404, content_type = "application/problem+json")]
    NotFound(Json<Problem>),
    /// The resource already exists (for example an email already registered).
    #[oai(status = 409, content_type = "application/problem+json")]
    Conflict(Json<Problem>),
    /// The request body did not arrive in time; the connection is closed.
    #[oai(status = 408, content_type = "application/problem+json")]
    RequestTimeout(Json<Problem>, #[oai(header = "Connection")] String),
    /// `If-Match` does not match the task's current ETag, or cannot be read.
    #[oai(status = 412, content_type = "application/problem+json")]
    PreconditionFailed(Json<Problem>),
    /// The body is larger than 1 MiB.
    #[oai(status = 413, content_type = "application/problem+json")]
    PayloadTooLarge(Json<Problem>),
    /// The body is not JSON.
    #[oai(status = 415, content_type = "application/problem+json")]
    UnsupportedMediaType(Json<Problem>),
    /// Well-formed input that breaks a rule.
    #[oai(status = 422, content_type = "application/problem+json")]
    Unprocessable(Json<Problem>),
    /// Too many attempts (login, registration) or too many searches at once; retry after
    /// `Retry-After` seconds. `RateLimit-Policy` and `RateLimit` (IETF draft) describe the limit
    /// when one was counted.
    #[oai(status = 429, content_type = "application/problem+json")]
    TooManyRequests(
        Json<Problem>,
        #[oai(header = "Retry-After")] String,
        #[oai(header = "RateLimit-Policy")] Option<String>,
        #[oai(header = "RateLimit")] Option<String>,
    ),
    /// An unexpected server error (details are logged, never sent).
    #[oai(status = 500, content_type = "application/problem+json")]
    Internal(Json<Problem>),
    /// The database or the server is busy or unavailable; retry after `Retry-After` seconds.
    #[oai(status = 503, content_type = "application/problem+json")]
    Unavailable(Json<Problem>, #[oai(header = "Retry-After")] String),
    /// The database has no room left for the write; nothing was changed.
    #[oai(status = 507, content_type = "application/problem+json")]
    InsufficientStorage(Json<Problem>),
}

/// A problem body for a status.
pub fn problem(status: StatusCode, detail: impl Into<String>) -> Json<Problem> {
    Json(Problem {
        kind: "about:blank".to_owned(),
        title: status.canonical_reason().unwrap_or("Error").to_owned(),
        status: status.as_u16(),
        detail: detail.into(),
        errors: None,
    })
}

/// The `WWW-Authenticate` challenge sent with every 401.
pub fn bearer_challenge(error: &str, description: &str) -> String {
    format!("Bearer realm=\"todo\", error=\"{error}\", error_description=\"{description}\"")
}

impl ApiError {
    /// 400 with a sentence.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::BadRequest(problem(StatusCode::BAD_REQUEST, detail))
    }

    /// 401 for a rejected or missing credential.
    pub fn unauthorized(reason: &AuthError) -> Self {
        let detail = reason.to_string();
        let error = if matches!(reason, AuthError::Missing) {
            "invalid_request"
        } else {
            "invalid_token"
        };
        Self::Unauthorized(
            problem(StatusCode::UNAUTHORIZED, detail.clone()),
            bearer_challenge(error, &detail),
        )
    }

    /// 401 for bad login credentials.
    pub fn bad_credentials() -> Self {
        Self::Unauthorized(
            problem(StatusCode::UNAUTHORIZED, "invalid email or password"),
            "Bearer realm=\"todo\"".to_owned(),
        )
    }

    /// 403 when the path's user is not the token's user.
    pub fn forbidden() -> Self {
        Self::Forbidden(problem(
            StatusCode::FORBIDDEN,
            "the user id in the path does not match the authenticated user",
        ))
    }

    /// 404.
    pub fn not_found() -> Self {
        Self::NotFound(problem(StatusCode::NOT_FOUND, "task not found"))
    }

    /// 404 for a tag no task of the user carries.
    pub fn tag_not_found() -> Self {
        Self::NotFound(problem(StatusCode::NOT_FOUND, "tag not found"))
    }

    /// 409.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::Conflict(problem(StatusCode::CONFLICT, detail))
    }

    /// 412.
    pub fn precondition_failed(detail: impl Into<String>) -> Self {
        Self::PreconditionFailed(problem(StatusCode::PRECONDITION_FAILED, detail))
    }

    /// 415.
    pub fn unsupported_media_type(detail: impl Into<String>) -> Self {
        Self::UnsupportedMediaType(problem(StatusCode::UNSUPPORTED_MEDIA_TYPE, detail))
    }

    /// 413.
    pub fn payload_too_large() -> Self {
        Self::PayloadTooLarge(problem(
            StatusCode::PAYLOAD_TOO_LARGE,
            "the request body is larger than 1 MiB",
        ))
    }

    /// 422 with one entry per invalid field.
    pub fn validation(v: &ValidationError) -> Self {
        let mut body = problem(StatusCode::UNPROCESSABLE_ENTITY, v.to_string());
        body.0.errors = Some(
            v.errors
                .iter()
                .map(|e| FieldProblem {
                    field: e.field.clone(),
                    message: e.message.clone(),
                })
                .collect(),
        );
        Self::Unprocessable(body)
    }

    /// 422 for a single field.
    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        Self::validation(&ValidationError::field(field, message))
    }

    /// 500; the cause is logged by the caller, never sent.
    pub fn internal() -> Self {
        Self::Internal(problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "an unexpected error occurred",
        ))
    }

    /// 408: the body did not arrive within the body-read timeout. The connection is closed,
    /// since the rest of the body may still be on its way.
    pub fn request_timeout() -> Self {
        Self::RequestTimeout(
            problem(
                StatusCode::REQUEST_TIMEOUT,
                "the request body did not arrive in time",
            ),
            "close".to_owned(),
        )
    }

    /// 429 with the seconds to wait and, when a rate limit was counted, its fields.
    pub fn too_many_requests(
        detail: impl Into<String>,
        retry_after: u64,
        fields: Option<crate::ratelimit::RateFields>,
    ) -> Self {
        let (policy, limit) = crate::ratelimit::RateFields::header_values(fields);
        Self::TooManyRequests(
            problem(StatusCode::TOO_MANY_REQUESTS, detail),
            retry_after.max(1).to_string(),
            policy,
            limit,
        )
    }

    /// 503 with `Retry-After: 1`: the database, or the server itself, cannot serve now.
    pub fn busy(detail: impl Into<String>) -> Self {
        Self::Unavailable(
            problem(StatusCode::SERVICE_UNAVAILABLE, detail),
            "1".to_owned(),
        )
    }

    /// 507.
    pub fn insufficient_storage() -> Self {
        Self::InsufficientStorage(problem(
            StatusCode::INSUFFICIENT_STORAGE,
            "the database has no room left for this write; nothing was changed",
        ))
    }

    /// 503.
    pub fn unavailable() -> Self {
        Self::busy("the database is unavailable; retry shortly")
    }
}

impl From<todo_core::Error> for ApiError {
    fn from(e: todo_core::Error) -> Self {
        use todo_core::Error as E;
        match e {
            E::Validation(v) => Self::validation(&v),
            E::NotFound => Self::not_found(),
            E::VersionMismatch { .. } => Self::precondition_failed(
                "the task has changed since the ETag in If-Match was read",
            ),
            E::IdempotencyConflict => Self::invalid_field(
                "Idempotency-Key",
                "was already used for a request with a different body",
            ),
            E::Unavailable(source) => {
                tracing::warn!(error = %source, "unavailable (database, or password hashing saturated)");
                Self::unavailable()
            }
            E::OutOfSpace(source) => {
                tracing::error!(error = %source, "database out of space");
                Self::insufficient_storage()
            }
            E::QuotaExceeded { what, limit } => Self::Forbidden(problem(
                StatusCode::FORBIDDEN,
                format!("quota reached: at most {limit} {what} per user"),
            )),
            E::Busy => Self::too_many_requests(
                "too many of your searches are running; retry shortly",
                1,
                None,
            ),
            E::Storage(source) => {
                tracing::error!(error = %source, "storage error");
                Self::internal()
            }
            E::EmailTaken => Self::conflict("an account with this email already exists"),
            E::InvalidCredentials => Self::bad_credentials(),
            E::Config(msg) => {
                tracing::error!(error = %msg, "configuration error");
                Self::internal()
            }
        }
    }
}

/// A problem raised outside a handler (in an extractor or middleware) that must keep its status.
#[derive(Debug, thiserror::Error)]
#[error("{status}")]
pub struct RawProblem {
    status: StatusCode,
    body: String,
    headers: Vec<(header::HeaderName, String)>,
}

impl ResponseError for RawProblem {
    fn status(&self) -> StatusCode {
        self.status
    }

    fn as_response(&self) -> Response {
        let mut resp = Response::builder()
            .status(self.status)
            .content_type(PROBLEM_JSON)
            .body(self.body.clone());
        for (name, value) in &self.headers {
            if let Ok(value) = HeaderValue::from_str(value) {
                resp.headers_mut().insert(name.clone(), value);
            }
        }
        resp
    }
}

impl From<ApiError> for RawProblem {
    fn from(e: ApiError) -> Self {
        let mut headers = Vec::new();
        let json = match e {
            ApiError::Unauthorized(p, c) => {
                headers.push((header::WWW_AUTHENTICATE, c));
                p
            }
            ApiError::Unavailable(p, r) => {
                headers.push((header::RETRY_AFTER, r));
                p
            }
            ApiError::RequestTimeout(p, c) => {
                headers.push((header::CONNECTION, c));
                p
            }
            ApiError::TooManyRequests(p, r, policy, limit) => {
                headers.push((header::RETRY_AFTER, r));
                if let Some(policy) = policy {
                    headers.push((header::HeaderName::from_static("ratelimit-policy"), policy));
                }
                if let Some(limit) = limit {
                    headers.push((header::HeaderName::from_static("ratelimit"), limit));
                }
                p
            }
            ApiError::BadRequest(p)
            | ApiError::Forbidden(p)
            | ApiError::NotFound(p)
            | ApiError::Conflict(p)
            | ApiError::PreconditionFailed(p)
            | ApiError::PayloadTooLarge(p)
            | ApiError::UnsupportedMediaType(p)
            | ApiError::Unprocessable(p)
            | ApiError::Internal(p)
            | ApiError::InsufficientStorage(p) => p,
        };
        Self {
            status: StatusCode::from_u16(json.0.status)
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            body: serde_json::to_string(&json.0).unwrap_or_default(),
            headers,
        }
    }
}

impl RawProblem {
    /// Adds a header to the answer.
    pub fn with_header(mut self, name: header::HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

impl ApiError {
    /// As a `poem::Error` keeping status, body and headers (for extractors and middleware).
    pub fn into_poem(self) -> Error {
        Error::from(RawProblem::from(self))
    }
}

/// Turns every error that reaches the top into a problem document with the right status.
pub async fn catch_all(err: Error) -> Response {
    if err.is_from_response() || err.is::<RawProblem>() {
        return err.into_response();
    }
    let status = err.status();
    let api = if err.is::<AuthorizationError>() {
        ApiError::unauthorized(&AuthError::Missing)
    } else if let Some(e) = err.downcast_ref::<ParseParamError>() {
        ApiError::invalid_field(e.name, e.reason.clone())
    } else if let Some(e) = err.downcast_ref::<ParsePathError>() {
        ApiError::invalid_field("path", e.reason.clone())
    } else if let Some(e) = err.downcast_ref::<ParseRequestPayloadError>() {
        ApiError::bad_request(format!("the request body is not valid JSON: {}", e.reason))
    } else if err.is::<ContentTypeError>() {
        ApiError::unsupported_media_type(
            "the request body must be JSON (Content-Type: application/json)",
        )
    } else if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::payload_too_large()
    } else if status.is_server_error() {
        tracing::error!(error = %err, "unhandled error");
        ApiError::internal()
    } else {
        let mut p = problem(status, err.to_string());
        if status == StatusCode::NOT_FOUND {
            p.0.detail = "no such route".to_owned();
        }
        return RawProblem {
            status,
            body: serde_json::to_string(&p.0).unwrap_or_default(),
            headers: Vec::new(),
        }
        .as_response();
    };
    RawProblem::from(api).as_response()
}
