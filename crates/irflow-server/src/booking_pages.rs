//! Booking from the case page: choose one of the offered options, or cancel.

use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use jiff::Timestamp;
use serde::Deserialize;

use crate::api::parse_case_id;
use crate::auth::constant_time_eq;
use crate::pages::{CaseFormError, error_page, forged, show_case};
use crate::session::SignedIn;
use crate::{AppError, AppState};

/// What the booking form posts.
#[derive(Debug, Deserialize)]
pub struct BookForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    start: String,
    room: Option<i64>,
    radiologist: Option<i64>,
}

/// `POST /cases/{id}/book`.
pub async fn book(
    State(state): State<AppState>,
    who: SignedIn,
    Path(id): Path<String>,
    Form(f): Form<BookForm>,
) -> Response {
    if !constant_time_eq(&who.csrf, &f.csrf) {
        return error_page(&state, Some(&who), &forged());
    }
    let id = match parse_case_id(&id) {
        Ok(id) => id,
        Err(e) => return error_page(&state, Some(&who), &e),
    };
    let parsed = match (f.start.parse::<Timestamp>(), f.room, f.radiologist) {
        (Ok(start), Some(room), Some(rad)) => Ok((start, room, rad)),
        _ => Err(AppError::BadRequest(
            "choose one of the offered times".to_owned(),
        )),
    };
    let result = match parsed {
        Ok((start, room, rad)) => {
            crate::scheduling_api::book_option(&state, &who.actor(), id, start, room, rad, None)
                .await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(_) => Redirect::to(&format!("/cases/{id}?done=schedule")).into_response(),
        Err(e @ (AppError::NotFound(_) | AppError::Internal(_))) => {
            error_page(&state, Some(&who), &e)
        }
        Err(e) => {
            show_case(
                &state,
                &who,
                id,
                None,
                Some(CaseFormError::Booking(e.public_message())),
                e.status(),
            )
            .await
        }
    }
}

/// What the cancel form posts.
#[derive(Debug, Deserialize)]
pub struct CancelForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
}

/// `POST /cases/{id}/cancel-appointment`.
pub async fn cancel(
    State(state): State<AppState>,
    who: SignedIn,
    Path(id): Path<String>,
    Form(f): Form<CancelForm>,
) -> Response {
    if !constant_time_eq(&who.csrf, &f.csrf) {
        return error_page(&state, Some(&who), &forged());
    }
    let id = match parse_case_id(&id) {
        Ok(id) => id,
        Err(e) => return error_page(&state, Some(&who), &e),
    };
    match state
        .store()
        .cancel_appointment(&who.actor(), id, &f.reason, Timestamp::now(), state.today())
        .await
    {
        Ok(()) => Redirect::to(&format!("/cases/{id}?done=unschedule")).into_response(),
        Err(e) => {
            let e = crate::pages::case_error(e);
            let status = if matches!(e, AppError::Internal(_)) {
                StatusCode::INTERNAL_SERVER_ERROR
            } else {
                e.status()
            };
            show_case(
                &state,
                &who,
                id,
                None,
                Some(CaseFormError::Booking(e.public_message())),
                status,
            )
            .await
        }
    }
}
