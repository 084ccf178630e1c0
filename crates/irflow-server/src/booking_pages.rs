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
        Ok(()) => {
            crate::reminders::replan_after_change(&state, &who.actor(), id).await;
            Redirect::to(&format!("/cases/{id}?done=unschedule")).into_response()
        }
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

/// Shows a refused booking-panel form on the case page with its message.
async fn refused(
    state: &AppState,
    who: &SignedIn,
    id: irflow_domain::CaseId,
    e: AppError,
) -> Response {
    if matches!(e, AppError::NotFound(_) | AppError::Internal(_)) {
        return error_page(state, Some(who), &e);
    }
    let status = e.status();
    show_case(
        state,
        who,
        id,
        None,
        Some(CaseFormError::Booking(e.public_message())),
        status,
    )
    .await
}

/// What the move form posts: one of the offered options (`option` is
/// `start|room|radiologist`) and why.
#[derive(Debug, Deserialize)]
pub struct MoveForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    option: String,
    #[serde(default)]
    reason: String,
}

/// `POST /cases/{id}/move`: moves the booking to another offered time.
pub async fn move_booking(
    State(state): State<AppState>,
    who: SignedIn,
    Path(id): Path<String>,
    Form(f): Form<MoveForm>,
) -> Response {
    if !constant_time_eq(&who.csrf, &f.csrf) {
        return error_page(&state, Some(&who), &forged());
    }
    let id = match parse_case_id(&id) {
        Ok(id) => id,
        Err(e) => return error_page(&state, Some(&who), &e),
    };
    let mut parts = f.option.split('|');
    let parsed = match (
        parts.next().map(str::parse::<Timestamp>),
        parts.next().map(str::parse::<i64>),
        parts.next().map(str::parse::<i64>),
    ) {
        (Some(Ok(start)), Some(Ok(room)), Some(Ok(rad))) => Ok((start, room, rad)),
        _ => Err(AppError::Invalid(
            "choose one of the offered times to move to".to_owned(),
        )),
    };
    let result = match parsed {
        Ok((start, room, rad)) => {
            crate::scheduling_api::move_option(
                &state,
                &who.actor(),
                id,
                start,
                room,
                rad,
                &f.reason,
            )
            .await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(_) => Redirect::to(&format!("/cases/{id}?done=reschedule")).into_response(),
        Err(e) => refused(&state, &who, id, e).await,
    }
}

/// What the waitlist forms post.
#[derive(Debug, Deserialize)]
pub struct WaitlistForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    note: String,
    #[serde(default)]
    remove: Option<String>,
}

/// `POST /cases/{id}/waitlist`: puts the case on the waitlist (or, with `remove`, takes it off).
pub async fn waitlist(
    State(state): State<AppState>,
    who: SignedIn,
    Path(id): Path<String>,
    Form(f): Form<WaitlistForm>,
) -> Response {
    if !constant_time_eq(&who.csrf, &f.csrf) {
        return error_page(&state, Some(&who), &forged());
    }
    let id = match parse_case_id(&id) {
        Ok(id) => id,
        Err(e) => return error_page(&state, Some(&who), &e),
    };
    let now = Timestamp::now();
    let result = if f.remove.is_some() {
        state
            .store()
            .remove_from_waitlist(&who.actor(), id, "removed by a scheduler", now)
            .await
            .map(|_| "waitlist_removed")
    } else if f.note.chars().count() > 500 {
        Err(irflow_store::StoreError::Field {
            field: "note",
            message: "keep the note under 500 characters".to_owned(),
        })
    } else {
        state
            .store()
            .add_to_waitlist(&who.actor(), id, &f.note, now)
            .await
            .map(|_| "waitlist")
    };
    match result {
        Ok(done) => Redirect::to(&format!("/cases/{id}?done={done}")).into_response(),
        Err(e) => refused(&state, &who, id, crate::pages::case_error(e)).await,
    }
}

/// Parses preferred days and time of day from form or JSON words.
pub(crate) fn parse_preferences(
    days: &[String],
    time_of_day: Option<&str>,
    note: &str,
) -> Result<irflow_store::Preferences, AppError> {
    use irflow_domain::scheduling::TimeOfDay;
    let days = days
        .iter()
        .map(|d| {
            crate::views::parse_weekday(d).ok_or_else(|| {
                AppError::Invalid(format!(
                    "{:?} is not a day of the week (use mon, tue, wed, thu, fri, sat or sun)",
                    d.trim().to_ascii_lowercase()
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let time_of_day = match time_of_day.map(str::trim) {
        None | Some("" | "any") => None,
        Some("morning") => Some(TimeOfDay::Morning),
        Some("afternoon") => Some(TimeOfDay::Afternoon),
        Some(other) => {
            return Err(AppError::Invalid(format!(
                "{other:?} is not a time of day (use morning, afternoon or any)"
            )));
        }
    };
    if note.chars().count() > 500 {
        return Err(AppError::Invalid(
            "keep the note under 500 characters".to_owned(),
        ));
    }
    Ok(irflow_store::Preferences {
        days,
        time_of_day,
        note: note.trim().to_owned(),
    })
}

/// `POST /cases/{id}/preferences` (form; days repeat).
pub async fn preferences(
    State(state): State<AppState>,
    who: SignedIn,
    Path(id): Path<String>,
    body: String,
) -> Response {
    let pairs = crate::views::form_pairs(&body);
    let get = |k: &str| {
        pairs
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    if !constant_time_eq(&who.csrf, &get("csrf").unwrap_or_default()) {
        return error_page(&state, Some(&who), &forged());
    }
    let id = match parse_case_id(&id) {
        Ok(id) => id,
        Err(e) => return error_page(&state, Some(&who), &e),
    };
    let days: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| k == "day")
        .map(|(_, v)| v.clone())
        .collect();
    let prefs = parse_preferences(
        &days,
        get("time_of_day").as_deref(),
        &get("note").unwrap_or_default(),
    );
    let result = match prefs {
        Ok(p) => state
            .store()
            .set_preferences(&who.actor(), id, &p, Timestamp::now())
            .await
            .map_err(crate::pages::case_error),
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => Redirect::to(&format!("/cases/{id}?done=preferences")).into_response(),
        Err(e) => refused(&state, &who, id, e).await,
    }
}

/// Parses the radiologist's plan from form or JSON words.
pub(crate) fn parse_plan(
    guidance: Option<&str>,
    contrast: Option<&str>,
    note: &str,
) -> Result<irflow_store::CasePlan, AppError> {
    let guidance = match guidance.map(str::trim) {
        None | Some("" | "any") => None,
        Some(g) => Some(g.parse::<irflow_domain::Modality>().map_err(|_| {
            AppError::Invalid(format!(
                "{g:?} is not a guidance (use fluoroscopy, ct or any)"
            ))
        })?),
    };
    let contrast = match contrast.map(str::trim) {
        None | Some("" | "undecided") => None,
        Some("yes" | "true") => Some(true),
        Some("no" | "false") => Some(false),
        Some(other) => {
            return Err(AppError::Invalid(format!(
                "{other:?}: say yes, no or undecided for contrast"
            )));
        }
    };
    Ok(irflow_store::CasePlan {
        guidance,
        contrast,
        note: note.trim().to_owned(),
    })
}

/// What the plan form posts.
#[derive(Debug, Deserialize)]
pub struct PlanForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    guidance: String,
    #[serde(default)]
    contrast: String,
    #[serde(default)]
    note: String,
}

/// `POST /cases/{id}/plan` (radiologist).
pub async fn plan(
    State(state): State<AppState>,
    who: SignedIn,
    Path(id): Path<String>,
    Form(f): Form<PlanForm>,
) -> Response {
    if !constant_time_eq(&who.csrf, &f.csrf) {
        return error_page(&state, Some(&who), &forged());
    }
    let id = match parse_case_id(&id) {
        Ok(id) => id,
        Err(e) => return error_page(&state, Some(&who), &e),
    };
    let result = match parse_plan(Some(&f.guidance), Some(&f.contrast), &f.note) {
        Ok(p) => state
            .store()
            .set_case_plan(&who.actor(), id, &p, Timestamp::now())
            .await
            .map_err(crate::pages::case_error),
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => Redirect::to(&format!("/cases/{id}?done=plan")).into_response(),
        Err(e) => refused(&state, &who, id, e).await,
    }
}
