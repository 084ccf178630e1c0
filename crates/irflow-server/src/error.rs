//! One error type for the HTTP edge, mapped to status codes in one place.
//! Clients never see internal error text; it goes to the log (without patient data).

use axum::http::StatusCode;
use irflow_domain::TransitionError;
use irflow_store::StoreError;

/// What went wrong, in terms a client can act on.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Not signed in (or the token is wrong).
    #[error("sign in first")]
    Unauthenticated,
    /// Signed in, but this role may not.
    #[error("{0}")]
    Forbidden(String),
    /// Nothing there (or not theirs).
    #[error("{0}")]
    NotFound(String),
    /// The request itself is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// Well-formed, but the values are not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// One field of a form is not acceptable.
    #[error("{field}: {message}")]
    Field {
        /// The field's name.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The current state forbids it, or someone else changed it first.
    #[error("{0}")]
    Conflict(String),
    /// Too many attempts.
    #[error("{0}")]
    TooManyRequests(String),
    /// Our fault. The text is logged, never shown.
    #[error("internal error")]
    Internal(String),
}

impl AppError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::Unauthenticated => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Invalid(_) | AppError::Field { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::Unauthenticated => "unauthenticated",
            AppError::Forbidden(_) => "forbidden",
            AppError::NotFound(_) => "not_found",
            AppError::BadRequest(_) => "bad_request",
            AppError::Invalid(_) | AppError::Field { .. } => "invalid",
            AppError::Conflict(_) => "conflict",
            AppError::TooManyRequests(_) => "too_many_requests",
            AppError::Internal(_) => "internal",
        }
    }

    /// The message safe to show.
    pub fn public_message(&self) -> String {
        match self {
            AppError::Internal(_) => {
                "something went wrong on our side; the error has been logged".to_owned()
            }
            other => other.to_string(),
        }
    }

    /// Logs internal errors (detail only, no request data).
    pub(crate) fn log(&self) {
        if let AppError::Internal(detail) = self {
            tracing::error!(error = %detail, "internal error");
        }
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => AppError::NotFound("not found".to_owned()),
            StoreError::Denied(why) => AppError::Forbidden(why.to_owned()),
            StoreError::Transition(t) => t.into(),
            StoreError::Conflict(m) | StoreError::Duplicate(m) => AppError::Conflict(m),
            StoreError::Invalid(m) => AppError::Invalid(m),
            StoreError::Field { field, message } => AppError::Field { field, message },
            e @ StoreError::DuplicateCase { .. } => AppError::Conflict(e.to_string()),
            other @ (StoreError::Config(_)
            | StoreError::Migration(_)
            | StoreError::Corrupt(_)
            | StoreError::Database(_)) => AppError::Internal(other.to_string()),
        }
    }
}

impl From<TransitionError> for AppError {
    fn from(e: TransitionError) -> Self {
        match e {
            TransitionError::RoleNotPermitted { .. } | TransitionError::NoRole => {
                AppError::Forbidden(e.to_string())
            }
            TransitionError::NotFromState { .. } => AppError::Conflict(e.to_string()),
            TransitionError::ReasonRequired(_)
            | TransitionError::ReasonTooLong(_)
            | TransitionError::DeferDateNotFuture { .. }
            | TransitionError::UnexpectedDate
            | TransitionError::ReturnReasonRequired
            | TransitionError::UnexpectedReturnReason => AppError::Invalid(e.to_string()),
        }
    }
}

impl From<askama::Error> for AppError {
    fn from(e: askama::Error) -> Self {
        AppError::Internal(format!("template: {e}"))
    }
}
