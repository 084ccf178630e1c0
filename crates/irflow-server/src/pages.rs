//! The web pages: sign-in, the worklist, the case page, and the admin pages.
//! Forms post back with the session's anti-forgery token; errors are shown next
//! to the field they concern and nothing typed is lost.

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use irflow_domain::pathway::TransitionRequest;
use irflow_domain::{Action, CaseState, Role};
use irflow_store::{
    AuditEvent, AuditOutcome, CaseDetail, CaseFilter, CaseSummary, NewAuditEvent, UserRecord,
};
use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;

use crate::api::{AuditQuery, parse_case_id};
use crate::auth::{constant_time_eq, decoy_hash, new_secret, secret_hash, verify_password};
use crate::session::{
    ClientAddress, SignedIn, cookie, login_cookie_name, read_cookie, session_cookie_name,
};
use crate::views::{self, local_time};
use crate::{AppError, AppState};

/// The frame around every page: department, signed-in user, navigation.
#[derive(Debug, Clone)]
pub struct Chrome {
    department: String,
    phone: String,
    time_zone: String,
    user: Option<NavUser>,
    csrf: String,
    current: &'static str,
}

#[derive(Debug, Clone)]
struct NavUser {
    display_name: String,
    role_label: &'static str,
    is_admin: bool,
    is_referrer: bool,
}

impl Chrome {
    fn new(state: &AppState, who: Option<&SignedIn>, current: &'static str) -> Self {
        let c = state.config();
        Self {
            department: c.department_name.clone(),
            phone: c.department_phone.clone(),
            time_zone: c.time_zone_name.clone(),
            user: who.map(|w| NavUser {
                display_name: w.user.display_name.clone(),
                role_label: w.user.role.label(),
                is_admin: w.user.role == Role::Admin,
                is_referrer: w.user.role == Role::Referrer,
            }),
            csrf: who.map(|w| w.csrf.clone()).unwrap_or_default(),
            current,
        }
    }
}

fn render(template: &impl Template, status: StatusCode) -> Response {
    match template.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => error_page_plain(&AppError::from(e)),
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    chrome: Chrome,
    status: u16,
    title: &'static str,
    message: String,
}

fn error_title(e: &AppError) -> &'static str {
    match e {
        AppError::Unauthenticated => "Please sign in",
        AppError::Forbidden(_) => "Not allowed",
        AppError::NotFound(_) => "Not found",
        AppError::BadRequest(_) | AppError::Invalid(_) | AppError::Field { .. } => {
            "That did not work"
        }
        AppError::Conflict(_) => "That could not be done now",
        AppError::TooManyRequests(_) => "Too many attempts",
        AppError::Internal(_) => "Something went wrong",
    }
}

/// An error page with the full frame.
fn error_page(state: &AppState, who: Option<&SignedIn>, e: &AppError) -> Response {
    e.log();
    let page = ErrorPage {
        chrome: Chrome::new(state, who, ""),
        status: e.status().as_u16(),
        title: error_title(e),
        message: e.public_message(),
    };
    render(&page, e.status())
}

/// An error page without state (for extractor failures).
pub fn error_page_plain(e: &AppError) -> Response {
    e.log();
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\
         <link rel=\"stylesheet\" href=\"/static/app.css\"></head><body><main id=\"main\" class=\"narrow\">\
         <h1>{}</h1><p>{}</p><p><a href=\"/\">Back to the start</a></p></main></body></html>",
        error_title(e),
        error_title(e),
        html_escape(&e.public_message())
    );
    (e.status(), Html(body)).into_response()
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#x27;")
}

/// Unknown paths.
pub async fn not_found(State(state): State<AppState>) -> Response {
    error_page(
        &state,
        None,
        &AppError::NotFound("there is no page at this address".to_owned()),
    )
}

/// Static assets, compiled into the binary (no CDN, nothing fetched at run time).
pub async fn static_file(Path(file): Path<String>) -> Response {
    let (body, content_type): (&'static [u8], &str) = match file.as_str() {
        "htmx-2.0.11.min.js" => (
            include_bytes!("../static/htmx-2.0.11.min.js"),
            "text/javascript",
        ),
        "app.css" => (include_bytes!("../static/app.css"), "text/css"),
        "app.js" => (include_bytes!("../static/app.js"), "text/javascript"),
        "favicon.svg" => (include_bytes!("../static/favicon.svg"), "image/svg+xml"),
        _ => return (StatusCode::NOT_FOUND, "not found").into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// `/`: each role's own start page.
pub async fn home(who: SignedIn) -> Redirect {
    match who.user.role {
        Role::Admin => Redirect::to("/admin/audit"),
        _ => Redirect::to("/cases"),
    }
}

// ---------------------------------------------------------------- sign-in

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    chrome: Chrome,
    csrf: String,
    username: String,
    next: String,
    error: Option<String>,
    notice: Option<&'static str>,
}

/// Query of the sign-in page.
#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
    signed_out: Option<String>,
}

/// Only same-site relative paths are followed after sign-in.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_owned(),
        _ => "/".to_owned(),
    }
}

fn login_response(state: &AppState, page: LoginPage, status: StatusCode) -> Response {
    let secure = state.config().cookie_secure;
    let mut response = render(&page, status);
    if let Ok(v) = cookie(login_cookie_name(secure), &page.csrf, secure, Some(3600)).parse() {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

/// The sign-in form.
pub async fn login_form(State(state): State<AppState>, Query(q): Query<LoginQuery>) -> Response {
    let page = LoginPage {
        chrome: Chrome::new(&state, None, "login"),
        csrf: new_secret(""),
        username: String::new(),
        next: safe_next(q.next.as_deref()),
        error: None,
        notice: q.signed_out.map(|_| "You have signed out."),
    };
    login_response(&state, page, StatusCode::OK)
}

/// Fields of the sign-in form.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: String,
    next: Option<String>,
}

/// Signs in: checks the anti-forgery token, the rate limit and the password.
pub async fn login_submit(
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let config = state.config().clone();
    let username = form.username.trim().to_ascii_lowercase();
    let next = safe_next(form.next.as_deref());
    let retry = |error: String, status: StatusCode| {
        let page = LoginPage {
            chrome: Chrome::new(&state, None, "login"),
            csrf: new_secret(""),
            username: username.clone(),
            next: next.clone(),
            error: Some(error),
            notice: None,
        };
        login_response(&state, page, status)
    };
    let expected =
        read_cookie(&headers, login_cookie_name(config.cookie_secure)).unwrap_or_default();
    if expected.is_empty() || !constant_time_eq(expected, &form.csrf) {
        return retry(
            "Your sign-in form had expired. Please sign in again.".to_owned(),
            StatusCode::FORBIDDEN,
        );
    }
    if username.is_empty() || form.password.is_empty() {
        return retry(
            "Enter your username and password.".to_owned(),
            StatusCode::UNPROCESSABLE_ENTITY,
        );
    }
    let store = state.store();
    let now = Timestamp::now();
    let window = now - SignedDuration::from_mins(15);
    let (by_user, by_client) = match store
        .recent_login_failures(&username, &client, window)
        .await
    {
        Ok(counts) => counts,
        Err(e) => return error_page(&state, None, &e.into()),
    };
    if by_user >= config.login_failures_per_user || by_client >= config.login_failures_per_client {
        let event = NewAuditEvent::new(
            &anonymous(&username, &client),
            "sign_in",
            "session",
            AuditOutcome::Denied,
        )
        .detail("rate limited");
        if let Err(e) = store.record_audit(event).await {
            return error_page(&state, None, &e.into());
        }
        return retry(
            "Too many failed sign-in attempts. Wait 15 minutes and try again, or ask an administrator to reset your password.".to_owned(),
            StatusCode::TOO_MANY_REQUESTS,
        );
    }
    let found = match store.user_for_sign_in(&username).await {
        Ok(found) => found,
        Err(e) => return error_page(&state, None, &e.into()),
    };
    let password = form.password.clone();
    let (user, ok) = match found {
        Some((user, hash)) => {
            let ok = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
                .await
                .unwrap_or(false);
            (Some(user), ok)
        }
        None => {
            // Same work for an unknown name, so timing does not reveal which names exist.
            let _ =
                tokio::task::spawn_blocking(move || verify_password(&password, decoy_hash())).await;
            (None, false)
        }
    };
    let user = match user {
        Some(u) if ok && u.active => u,
        _ => {
            let recorded = store
                .record_login_attempt(&username, &client, false, now)
                .await;
            let event = NewAuditEvent::new(
                &anonymous(&username, &client),
                "sign_in",
                "session",
                AuditOutcome::Denied,
            )
            .detail("wrong username or password");
            if let Err(e) = recorded.and(store.record_audit(event).await) {
                return error_page(&state, None, &e.into());
            }
            return retry(
                "That username and password do not match. Check them and try again.".to_owned(),
                StatusCode::UNAUTHORIZED,
            );
        }
    };
    let token = new_secret("");
    let csrf = new_secret("");
    let expires = now + SignedDuration::from_hours(config.session_max_hours);
    let started = async {
        store
            .record_login_attempt(&username, &client, true, now)
            .await?;
        store
            .create_session(user.id, &secret_hash(&token), &csrf, now, expires)
            .await?;
        store
            .record_audit(NewAuditEvent::new(
                &user.actor().from_client(client.clone()),
                "sign_in",
                "session",
                AuditOutcome::Success,
            ))
            .await
    };
    if let Err(e) = started.await {
        return error_page(&state, None, &e.into());
    }
    let secure = config.cookie_secure;
    let mut response = Redirect::to(&next).into_response();
    let h = response.headers_mut();
    for c in [
        cookie(session_cookie_name(secure), &token, secure, None),
        cookie(login_cookie_name(secure), "", secure, Some(0)),
    ] {
        if let Ok(v) = c.parse() {
            h.append(header::SET_COOKIE, v);
        }
    }
    response
}

fn anonymous(username: &str, client: &str) -> irflow_domain::Actor {
    let mut a = irflow_domain::Actor::system("anonymous").from_client(client);
    a.username = if username.is_empty() {
        "anonymous".to_owned()
    } else {
        format!("unverified:{username}")
    };
    a
}

/// A form carrying only the anti-forgery token.
#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// Signs out: ends the server-side session and clears the cookie.
pub async fn logout(
    State(state): State<AppState>,
    who: SignedIn,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    if !constant_time_eq(&who.csrf, &form.csrf) {
        return error_page(&state, Some(&who), &forged());
    }
    let secure = state.config().cookie_secure;
    if let Some(token) = read_cookie(&headers, session_cookie_name(secure))
        && let Err(e) = state.store().delete_session(&secret_hash(token)).await
    {
        return error_page(&state, Some(&who), &e.into());
    }
    let event = NewAuditEvent::new(&who.actor(), "sign_out", "session", AuditOutcome::Success);
    if let Err(e) = state.store().record_audit(event).await {
        return error_page(&state, Some(&who), &e.into());
    }
    let mut response = Redirect::to("/login?signed_out=1").into_response();
    if let Ok(v) = cookie(session_cookie_name(secure), "", secure, Some(0)).parse() {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

fn forged() -> AppError {
    AppError::Forbidden(
        "this form had expired or did not come from irflow; go back, reload the page and try again"
            .to_owned(),
    )
}

// ---------------------------------------------------------------- worklist

struct StateGroup {
    state: CaseState,
    cases: Vec<CaseRow>,
}

struct CaseRow {
    id: i64,
    patient: String,
    mrn: String,
    date_of_birth: String,
    age: i16,
    procedure: String,
    referrer: String,
    deferred_until: Option<String>,
    updated: String,
}

struct StateChip {
    state: CaseState,
    count: usize,
    selected: bool,
}

#[derive(Template)]
#[template(path = "worklist.html")]
struct WorklistPage {
    chrome: Chrome,
    heading: &'static str,
    chips: Vec<StateChip>,
    groups: Vec<StateGroup>,
    total: usize,
    show_closed: bool,
    filter: Option<CaseState>,
    is_referrer: bool,
}

/// Query of the worklist.
#[derive(Debug, Deserialize)]
pub struct WorklistQuery {
    state: Option<String>,
    closed: Option<String>,
}

fn case_row(c: &CaseSummary, state: &AppState) -> CaseRow {
    CaseRow {
        id: c.id.get(),
        patient: c.patient_name(),
        mrn: c.mrn.clone().unwrap_or_else(|| "—".to_owned()),
        date_of_birth: c.date_of_birth.to_string(),
        age: views::age_on(c.date_of_birth, state.today()),
        procedure: format!("{} · CPT {}", c.procedure_name, c.procedure_code),
        referrer: match &c.referrer_organization {
            Some(org) => format!("{} ({org})", c.referrer_name),
            None => c.referrer_name.clone(),
        },
        deferred_until: c.deferred_until.map(|d| d.to_string()),
        updated: local_time(c.updated_at, state.time_zone()),
    }
}

/// The worklist: cases grouped by pathway state. Referrers see only their own.
pub async fn worklist(
    State(state): State<AppState>,
    who: SignedIn,
    Query(q): Query<WorklistQuery>,
) -> Response {
    let filter = match q
        .state
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(str::parse::<CaseState>)
        .transpose()
    {
        Ok(f) => f,
        Err(e) => return error_page(&state, Some(&who), &AppError::BadRequest(e.to_string())),
    };
    let show_closed = q.closed.is_some() || filter.is_some_and(CaseState::is_closed);
    let all = match state
        .store()
        .list_cases(
            &who.actor(),
            &CaseFilter {
                limit: Some(1000),
                ..CaseFilter::default()
            },
        )
        .await
    {
        Ok(all) => all,
        Err(e) => return error_page(&state, Some(&who), &e.into()),
    };
    let chips = views::worklist_states()
        .map(|s| StateChip {
            state: s,
            count: all.iter().filter(|c| c.state == s).count(),
            selected: filter == Some(s),
        })
        .filter(|chip| chip.count > 0 || chip.selected)
        .collect();
    let groups: Vec<StateGroup> = views::worklist_states()
        .filter(|s| filter.map_or(show_closed || !s.is_closed(), |f| f == *s))
        .map(|s| StateGroup {
            state: s,
            cases: all
                .iter()
                .filter(|c| c.state == s)
                .map(|c| case_row(c, &state))
                .collect(),
        })
        .filter(|g| !g.cases.is_empty())
        .collect();
    let total = groups.iter().map(|g| g.cases.len()).sum();
    let is_referrer = who.user.role == Role::Referrer;
    let page = WorklistPage {
        chrome: Chrome::new(&state, Some(&who), "cases"),
        heading: if is_referrer {
            "My referrals"
        } else {
            "Worklist"
        },
        chips,
        groups,
        total,
        show_closed,
        filter,
        is_referrer,
    };
    render(&page, StatusCode::OK)
}

// ---------------------------------------------------------------- case page

struct ActionForm {
    action: Action,
    reason_required: bool,
    takes_date: bool,
    danger: bool,
    /// The refusal message, when this form was just refused.
    error: Option<String>,
    /// What was typed, kept after a refusal.
    reason: String,
    deferred_until: String,
}

struct TimelineRow {
    label: String,
    to: CaseState,
    who: String,
    at: String,
    reason: Option<String>,
    deferred_until: Option<String>,
}

#[derive(Template)]
#[template(path = "case.html")]
struct CasePage {
    chrome: Chrome,
    title: String,
    case_id: i64,
    state: CaseState,
    version: i64,
    patient_name: String,
    mrn: String,
    date_of_birth: String,
    age: i16,
    phone: String,
    email: String,
    language: String,
    procedure: String,
    referrer: String,
    deferred_until: Option<String>,
    opened: String,
    actions: Vec<ActionForm>,
    timeline: Vec<TimelineRow>,
    done: Option<String>,
    today: String,
}

struct FormError {
    action: Action,
    message: String,
    reason: String,
    deferred_until: String,
}

/// Query of the case page.
#[derive(Debug, Deserialize)]
pub struct CaseQuery {
    done: Option<String>,
}

fn case_page_for(
    state: &AppState,
    who: &SignedIn,
    d: &CaseDetail,
    done: Option<String>,
    error: Option<FormError>,
) -> CasePage {
    let tz = state.time_zone();
    let c = &d.case;
    CasePage {
        chrome: Chrome::new(state, Some(who), "cases"),
        title: views::case_title(c),
        case_id: c.id.get(),
        state: c.state,
        version: c.version,
        patient_name: c.patient_name(),
        mrn: d
            .patient
            .mrn
            .clone()
            .unwrap_or_else(|| "not recorded".to_owned()),
        date_of_birth: d.patient.date_of_birth.to_string(),
        age: views::patient_age(d, state.today()),
        phone: d
            .patient
            .phone
            .clone()
            .unwrap_or_else(|| "not recorded".to_owned()),
        email: d
            .patient
            .email
            .clone()
            .unwrap_or_else(|| "not recorded".to_owned()),
        language: language_name(&d.patient.preferred_language),
        procedure: format!("{} · CPT {}", c.procedure_name, c.procedure_code),
        referrer: match &c.referrer_organization {
            Some(org) => format!("{} · {org}", c.referrer_name),
            None => c.referrer_name.clone(),
        },
        deferred_until: c.deferred_until.map(|d| d.to_string()),
        opened: local_time(c.created_at, tz),
        actions: views::actions_for(c.state, who.user.role)
            .into_iter()
            .map(|a| {
                let failed = error.as_ref().filter(|e| e.action == a);
                ActionForm {
                    action: a,
                    reason_required: a.requires_reason(),
                    takes_date: a == Action::Defer,
                    danger: matches!(a, Action::Cancel | Action::Return | Action::RecordNoShow),
                    error: failed.map(|e| e.message.clone()),
                    reason: failed.map(|e| e.reason.clone()).unwrap_or_default(),
                    deferred_until: failed.map(|e| e.deferred_until.clone()).unwrap_or_default(),
                }
            })
            .collect(),
        timeline: d
            .timeline
            .iter()
            .map(|t| TimelineRow {
                label: views::timeline_label(t),
                to: t.to,
                who: match t.actor_role {
                    Some(r) => format!("{} ({})", t.actor_username, r.as_str()),
                    None => t.actor_username.clone(),
                },
                at: local_time(t.at, tz),
                reason: t.reason.clone(),
                deferred_until: t.deferred_until.map(|d| d.to_string()),
            })
            .collect(),
        done,
        today: state.today().to_string(),
    }
}

fn language_name(tag: &str) -> String {
    let name = match tag.split('-').next().unwrap_or(tag) {
        "en" => "English",
        "es" => "Spanish",
        "pt" => "Portuguese",
        "zh" => "Chinese",
        "ht" => "Haitian Creole",
        "vi" => "Vietnamese",
        "ar" => "Arabic",
        "ru" => "Russian",
        "fr" => "French",
        _ => return tag.to_owned(),
    };
    format!("{name} ({tag})")
}

fn case_error(e: irflow_store::StoreError) -> AppError {
    match e {
        irflow_store::StoreError::NotFound => {
            AppError::NotFound("there is no case with this number that you can see".to_owned())
        }
        other => other.into(),
    }
}

/// One case: patient, referral, the actions this user may take, and the timeline.
pub async fn case_page(
    State(state): State<AppState>,
    who: SignedIn,
    Path(id): Path<String>,
    Query(q): Query<CaseQuery>,
) -> Response {
    let id = match parse_case_id(&id) {
        Ok(id) => id,
        Err(e) => return error_page(&state, Some(&who), &e),
    };
    match state.store().case_detail(&who.actor(), id).await {
        Ok(d) => {
            let done = q
                .done
                .as_deref()
                .and_then(|a| a.parse::<Action>().ok())
                .map(|a| format!("Done: {}.", a.label()));
            render(&case_page_for(&state, &who, &d, done, None), StatusCode::OK)
        }
        Err(e) => error_page(&state, Some(&who), &case_error(e)),
    }
}

/// Fields of a transition form.
#[derive(Debug, Deserialize)]
pub struct TransitionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    deferred_until: String,
    #[serde(default)]
    return_reason: String,
    version: Option<i64>,
}

/// Moves a case; on refusal, shows the case again with the message beside the form.
pub async fn case_transition(
    State(state): State<AppState>,
    who: SignedIn,
    Path(id): Path<String>,
    Form(form): Form<TransitionForm>,
) -> Response {
    if !constant_time_eq(&who.csrf, &form.csrf) {
        return error_page(&state, Some(&who), &forged());
    }
    let id = match parse_case_id(&id) {
        Ok(id) => id,
        Err(e) => return error_page(&state, Some(&who), &e),
    };
    let Ok(action) = form.action.parse::<Action>() else {
        return error_page(
            &state,
            Some(&who),
            &AppError::BadRequest(format!("unknown action {:?}", form.action)),
        );
    };
    let date = form.deferred_until.trim();
    let parsed_date = if date.is_empty() {
        Ok(None)
    } else {
        date.parse::<jiff::civil::Date>().map(Some)
    };
    let result = match parsed_date {
        Err(_) => Err(AppError::Invalid(
            "the date must be written YYYY-MM-DD".to_owned(),
        )),
        Ok(deferred_until) => {
            let request = TransitionRequest {
                action,
                reason: Some(form.reason.clone()),
                deferred_until,
                return_reason: form.return_reason.trim().parse().ok(),
            };
            state
                .store()
                .transition_case(
                    &who.actor(),
                    id,
                    &request,
                    form.version,
                    Timestamp::now(),
                    state.today(),
                )
                .await
                .map_err(case_error)
        }
    };
    match result {
        Ok(_) => Redirect::to(&format!("/cases/{id}?done={action}")).into_response(),
        Err(e @ (AppError::NotFound(_) | AppError::Internal(_))) => {
            error_page(&state, Some(&who), &e)
        }
        Err(e) => {
            // Show the case again, the message beside the form, the typed text kept.
            match state.store().case_detail(&who.actor(), id).await {
                Ok(d) => {
                    let error = FormError {
                        action,
                        message: e.public_message(),
                        reason: form.reason,
                        deferred_until: form.deferred_until,
                    };
                    render(
                        &case_page_for(&state, &who, &d, None, Some(error)),
                        e.status(),
                    )
                }
                Err(e2) => error_page(&state, Some(&who), &case_error(e2)),
            }
        }
    }
}

// ---------------------------------------------------------------- admin

struct AuditRow {
    id: i64,
    at: String,
    actor: String,
    action: String,
    entity: String,
    outcome: AuditOutcome,
    detail: String,
    client: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    chrome: Chrome,
    rows: Vec<AuditRow>,
    q: AuditQuery,
    error: Option<String>,
    older: Option<String>,
    outcomes: [AuditOutcome; 5],
}

fn audit_row(e: &AuditEvent, state: &AppState) -> AuditRow {
    AuditRow {
        id: e.id,
        at: local_time(e.at, state.time_zone()),
        actor: match e.actor_role {
            Some(r) => format!("{} ({})", e.actor_username, r.as_str()),
            None => e.actor_username.clone(),
        },
        action: e.action.clone(),
        entity: match &e.entity_id {
            Some(id) => format!("{} {id}", e.entity_type),
            None => e.entity_type.clone(),
        },
        outcome: e.outcome,
        detail: e.detail.clone().unwrap_or_default(),
        client: e.client.clone().unwrap_or_default(),
    }
}

fn query_string(q: &AuditQuery, before_id: i64) -> String {
    let mut parts = vec![format!("before_id={before_id}")];
    for (k, v) in [
        ("actor", &q.actor),
        ("action", &q.action),
        ("entity_type", &q.entity_type),
        ("entity_id", &q.entity_id),
        ("outcome", &q.outcome),
        ("since", &q.since),
        ("until", &q.until),
        ("limit", &q.limit),
    ] {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            let enc: String = v
                .bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || b"-_.:".contains(&b) {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect();
            parts.push(format!("{k}={enc}"));
        }
    }
    parts.join("&")
}

/// The audit log with filters (administrators only).
pub async fn audit_page(
    State(state): State<AppState>,
    who: SignedIn,
    Query(q): Query<AuditQuery>,
) -> Response {
    let filter = match q.to_filter(state.time_zone()) {
        Ok(f) => f,
        Err(e) => {
            let page = AuditPage {
                chrome: Chrome::new(&state, Some(&who), "audit"),
                rows: Vec::new(),
                q,
                error: Some(e.public_message()),
                older: None,
                outcomes: AuditOutcome::ALL,
            };
            return render(&page, StatusCode::BAD_REQUEST);
        }
    };
    let limit = filter.limit.unwrap_or(100) as usize;
    match state.store().list_audit(&who.actor(), &filter).await {
        Ok(events) => {
            let older = (events.len() == limit)
                .then(|| events.last().map(|e| query_string(&q, e.id)))
                .flatten();
            let page = AuditPage {
                chrome: Chrome::new(&state, Some(&who), "audit"),
                rows: events.iter().map(|e| audit_row(e, &state)).collect(),
                q,
                error: None,
                older,
                outcomes: AuditOutcome::ALL,
            };
            render(&page, StatusCode::OK)
        }
        Err(e) => error_page(&state, Some(&who), &e.into()),
    }
}

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage {
    chrome: Chrome,
    users: Vec<UserRecord>,
}

/// The people who can sign in (administrators only).
pub async fn users_page(State(state): State<AppState>, who: SignedIn) -> Response {
    if who.user.role != Role::Admin {
        let event = NewAuditEvent::new(&who.actor(), "list", "user", AuditOutcome::Denied);
        if let Err(e) = state.store().record_audit(event).await {
            return error_page(&state, Some(&who), &e.into());
        }
        return error_page(
            &state,
            Some(&who),
            &AppError::Forbidden("only administrators manage users".to_owned()),
        );
    }
    match state.store().list_users().await {
        Ok(users) => render(
            &UsersPage {
                chrome: Chrome::new(&state, Some(&who), "users"),
                users,
            },
            StatusCode::OK,
        ),
        Err(e) => error_page(&state, Some(&who), &e.into()),
    }
}
