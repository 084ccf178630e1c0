//! The web pages: sign-in, the worklist, the case page, and the admin pages.
//! Forms post back with the session's anti-forgery token; errors are shown next
//! to the field they concern and nothing typed is lost.

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use irflow_domain::pathway::TransitionRequest;
use irflow_domain::{Action, CaseState, FieldErrors, ReturnReason, Role, Side, Urgency};
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
    pub(crate) department: String,
    pub(crate) phone: String,
    pub(crate) time_zone: String,
    pub(crate) user: Option<NavUser>,
    pub(crate) csrf: String,
    pub(crate) current: &'static str,
}

#[derive(Debug, Clone)]
pub(crate) struct NavUser {
    pub(crate) display_name: String,
    pub(crate) role_label: &'static str,
    pub(crate) links: Vec<(&'static str, &'static str, &'static str)>,
}

/// Each role's navigation: (key, path, label).
fn nav_links(role: Role) -> Vec<(&'static str, &'static str, &'static str)> {
    match role {
        Role::Admin => vec![
            ("cases", "/cases", "Cases"),
            ("vetting", "/vetting", "Vetting queue"),
            ("calendar", "/calendar", "Calendar"),
            ("imaging-queue", "/imaging/queue", "Imaging queue"),
            ("resources", "/admin/resources", "Rooms & staff"),
            ("procedures", "/admin/procedures", "Procedures"),
            ("outcomes", "/outcomes", "Outcomes"),
            ("audit", "/admin/audit", "Audit log"),
            ("users", "/admin/users", "Users"),
        ],
        Role::Referrer => vec![
            ("cases", "/cases", "My referrals"),
            ("new-referral", "/referrals/new", "New referral"),
        ],
        Role::Scheduler => vec![
            ("cases", "/cases", "Worklist"),
            ("today", "/today", "Today"),
            ("calendar", "/calendar", "Calendar"),
            ("waitlist", "/waitlist", "Waitlist"),
            ("patient-requests", "/patient-requests", "Patient requests"),
            ("imaging-queue", "/imaging/queue", "Imaging queue"),
            ("new-referral", "/referrals/new", "Phone referral"),
        ],
        Role::Radiologist => vec![
            ("vetting", "/vetting", "Vetting queue"),
            ("cases", "/cases", "Worklist"),
            ("today", "/today", "Today"),
            ("calendar", "/calendar", "Calendar"),
            ("imaging-queue", "/imaging/queue", "Imaging queue"),
            ("outcomes", "/outcomes", "Outcomes"),
        ],
        Role::Nurse => vec![
            ("cases", "/cases", "Worklist"),
            ("today", "/today", "Today"),
            ("calendar", "/calendar", "Calendar"),
            ("follow-ups", "/follow-ups", "Follow-ups"),
            ("patient-requests", "/patient-requests", "Patient requests"),
            ("outcomes", "/outcomes", "Outcomes"),
        ],
    }
}

impl Chrome {
    pub(crate) fn new(state: &AppState, who: Option<&SignedIn>, current: &'static str) -> Self {
        let c = state.config();
        Self {
            department: c.department_name.clone(),
            phone: c.department_phone.clone(),
            time_zone: c.time_zone_name.clone(),
            user: who.map(|w| NavUser {
                display_name: w.user.display_name.clone(),
                role_label: w.user.role.label(),
                links: nav_links(w.user.role),
            }),
            csrf: who.map(|w| w.csrf.clone()).unwrap_or_default(),
            current,
        }
    }
}

pub(crate) fn render(template: &impl Template, status: StatusCode) -> Response {
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
pub(crate) fn error_page(state: &AppState, who: Option<&SignedIn>, e: &AppError) -> Response {
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
        "imaging.js" => (include_bytes!("../static/imaging.js"), "text/javascript"),
        "imaging.css" => (include_bytes!("../static/imaging.css"), "text/css"),
        "procedure_day.js" => (
            include_bytes!("../static/procedure_day.js"),
            "text/javascript",
        ),
        "procedure_day.css" => (include_bytes!("../static/procedure_day.css"), "text/css"),
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

pub(crate) fn forged() -> AppError {
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
    number: String,
    urgency: Urgency,
    needs_patient_review: bool,
    patient: String,
    mrn: String,
    date_of_birth: String,
    age: i16,
    procedure: String,
    referrer: String,
    deferred_until: Option<String>,
    updated: String,
    /// Prior imaging in a few words (open cases).
    imaging: Option<crate::imaging_pages::ImagingGlance>,
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
        number: irflow_fhir::referral_number(c.id.get()),
        urgency: c.urgency,
        needs_patient_review: c.needs_patient_review,
        patient: c.patient_name(),
        mrn: c.mrn.clone().unwrap_or_else(|| "—".to_owned()),
        date_of_birth: c.date_of_birth.to_string(),
        age: views::age_on(c.date_of_birth, state.today()),
        procedure: crate::views::order_summary(c),
        referrer: match &c.referrer_organization {
            Some(org) => format!("{} ({org})", c.referrer_name),
            None => c.referrer_name.clone(),
        },
        deferred_until: c.deferred_until.map(|d| d.to_string()),
        updated: local_time(c.updated_at, state.time_zone()),
        imaging: None,
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
    // Each open case's prior imaging, in one audited read (a failure leaves it out).
    let imaging = match crate::imaging_pages::worklist_glance(
        &state,
        &who.actor(),
        &all,
        crate::imaging_pages::IMAGING_STATES,
    )
    .await
    {
        Ok(g) => g,
        Err(e) => {
            e.log();
            std::collections::HashMap::new()
        }
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
                .map(|c| CaseRow {
                    imaging: imaging.get(&c.id).cloned(),
                    ..case_row(c, &state)
                })
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

pub(crate) struct ActionForm {
    action: Action,
    reason_required: bool,
    takes_date: bool,
    takes_return_reason: bool,
    danger: bool,
    /// The refusal message, when this form was just refused.
    error: Option<String>,
    /// What was typed, kept after a refusal.
    reason: String,
    deferred_until: String,
    return_reason: String,
}

pub(crate) struct TimelineRow {
    label: String,
    to: CaseState,
    who: String,
    at: String,
    reason: Option<String>,
    reason_label: Option<&'static str>,
    deferred_until: Option<String>,
}

/// A candidate patient when a match is in doubt.
pub(crate) struct CandidateRow {
    id: i64,
    name: String,
    date_of_birth: String,
    mrn: String,
    phone: String,
}

/// The change-procedure form (radiologists and admins, while vetting or screening).
pub(crate) struct ChangeProcedureForm {
    procedures: Vec<(String, String)>,
    procedure: String,
    levels: String,
    side: String,
    reason: String,
    errors: FieldErrors,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "case.html")]
pub(crate) struct CasePage {
    chrome: Chrome,
    title: String,
    case_id: i64,
    referral_number: String,
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
    levels: String,
    side: String,
    urgency: Urgency,
    indication: String,
    icd10: String,
    prior_imaging: String,
    blood_thinners: String,
    clinical_notes: String,
    channel: String,
    referrer: String,
    deferred_until: Option<String>,
    opened: String,
    actions: Vec<ActionForm>,
    timeline: Vec<TimelineRow>,
    done: Option<String>,
    today: String,
    return_reasons: &'static [ReturnReason],
    sides: &'static [Side],
    /// Why it was returned, for the referrer (latest return).
    returned_because: Option<String>,
    can_amend: bool,
    change: Option<ChangeProcedureForm>,
    candidates: Vec<CandidateRow>,
    review_error: Option<String>,
    can_screen: bool,
    screening: Option<ScreeningPanel>,
    booking: Option<BookingPanel>,
    planning: Option<PlanningPanel>,
    /// Staff see the procedure day's pages (checklist, recovery) from the case.
    day_links: bool,
}

/// Booking on the case page: the appointment, or options to book.
pub(crate) struct BookingPanel {
    appointment: Option<AppointmentView>,
    options: Vec<OptionView>,
    can_book: bool,
    unavailable: Option<String>,
    error: Option<String>,
    /// On the waitlist, with its note.
    waitlist: Option<String>,
}

/// The patient's scheduling preferences and the radiologist's plan, on the case page.
pub(crate) struct PlanningPanel {
    days: Vec<(&'static str, &'static str, bool)>,
    time_of_day: &'static str,
    prefs_note: String,
    prefs_summary: String,
    can_edit_prefs: bool,
    guidance: &'static str,
    contrast: &'static str,
    plan_note: String,
    plan_summary: String,
    guidance_choices: Vec<(&'static str, &'static str)>,
    can_edit_plan: bool,
}

pub(crate) struct AppointmentView {
    when: String,
    arrive: String,
    room: String,
    radiologist: String,
    chair: Option<String>,
}

pub(crate) struct OptionView {
    start: String,
    label: String,
    room: i64,
    room_label: String,
    radiologist: i64,
    radiologist_label: String,
    chair: Option<String>,
}

/// The latest screening on the case page.
pub(crate) struct ScreeningPanel {
    decision: crate::screening_pages::DecisionView,
    screened: String,
    open_actions: Vec<ActionRow>,
    done_actions: Vec<String>,
}

/// An open screening action, with its completion form.
pub(crate) struct ActionRow {
    id: i64,
    label: &'static str,
    description: String,
    prescriber: bool,
    may_complete: bool,
    error: Option<String>,
}

/// A refused form on the case page: which one, the message, and what was typed.
pub(crate) enum CaseFormError {
    Transition {
        action: Action,
        message: String,
        reason: String,
        deferred_until: String,
        return_reason: String,
    },
    ChangeProcedure {
        form: ChangeProcedureFields,
        errors: FieldErrors,
        message: Option<String>,
    },
    PatientMatch(String),
    Action {
        id: i64,
        message: String,
    },
    Booking(String),
}

/// What the change-procedure form posts.
#[derive(Debug, Deserialize, Default, Clone)]
pub struct ChangeProcedureFields {
    #[serde(default)]
    pub(crate) csrf: String,
    #[serde(default)]
    pub(crate) procedure: String,
    #[serde(default)]
    pub(crate) levels: String,
    #[serde(default)]
    pub(crate) side: String,
    #[serde(default)]
    pub(crate) reason: String,
}

/// Query of the case page.
#[derive(Debug, Deserialize)]
pub struct CaseQuery {
    done: Option<String>,
}

fn prior_imaging_text(p: &Option<irflow_domain::PriorImaging>) -> String {
    match p {
        None => "none reported".to_owned(),
        Some(p) => {
            let mut s = p.modality.label().to_owned();
            if let Some(d) = p.date {
                s.push_str(&format!(", {d}"));
            }
            if let Some(place) = &p.place {
                s.push_str(&format!(", {place}"));
            }
            s
        }
    }
}

fn or_dash(v: &Option<String>) -> String {
    v.clone()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "—".to_owned())
}

/// Builds the case page, loading what only some roles see (catalogue, candidates).
pub(crate) async fn case_page_for(
    state: &AppState,
    who: &SignedIn,
    d: &CaseDetail,
    done: Option<String>,
    error: Option<CaseFormError>,
) -> Result<CasePage, AppError> {
    let tz = state.time_zone();
    let c = &d.case;
    let role = who.user.role;
    let transition_error = match &error {
        Some(CaseFormError::Transition {
            action,
            message,
            reason,
            deferred_until,
            return_reason,
        }) => Some((
            *action,
            message.clone(),
            reason.clone(),
            deferred_until.clone(),
            return_reason.clone(),
        )),
        _ => None,
    };
    let can_vet = matches!(role, Role::Radiologist | Role::Admin)
        && matches!(c.state, CaseState::Referred | CaseState::Screening);
    let change = if can_vet {
        let procedures = state
            .store()
            .procedures()
            .await?
            .into_iter()
            .filter(|p| p.active)
            .map(|p| (p.code.clone(), format!("{} · {}", p.code, p.name)))
            .collect();
        Some(match &error {
            Some(CaseFormError::ChangeProcedure {
                form,
                errors,
                message,
            }) => ChangeProcedureForm {
                procedures,
                procedure: form.procedure.clone(),
                levels: form.levels.clone(),
                side: form.side.clone(),
                reason: form.reason.clone(),
                errors: errors.clone(),
                error: message.clone(),
            },
            _ => ChangeProcedureForm {
                procedures,
                procedure: c.procedure_code.clone(),
                levels: c.levels.clone().unwrap_or_default(),
                side: c.side.map(|s| s.as_str().to_owned()).unwrap_or_default(),
                reason: String::new(),
                errors: FieldErrors::default(),
                error: None,
            },
        })
    } else {
        None
    };
    let candidates = if role != Role::Referrer && !d.referral.review_candidates.is_empty() {
        state
            .store()
            .patients_for_review(&who.actor(), &d.referral.review_candidates)
            .await?
            .into_iter()
            .map(|p| CandidateRow {
                id: p.id.get(),
                name: format!("{}, {}", p.family_name, p.given_name),
                date_of_birth: p.date_of_birth.to_string(),
                mrn: p.mrn.unwrap_or_else(|| "—".to_owned()),
                phone: p.phone.unwrap_or_else(|| "—".to_owned()),
            })
            .collect()
    } else {
        Vec::new()
    };
    let screening = if role == Role::Referrer {
        None
    } else {
        match state.store().latest_screening(&who.actor(), c.id).await? {
            None => None,
            Some(r) => {
                let action_error = match &error {
                    Some(CaseFormError::Action { id, message }) => Some((*id, message.clone())),
                    _ => None,
                };
                crate::screening_pages::stored_decision_view(&r.decision_json).map(|decision| {
                    ScreeningPanel {
                        decision,
                        screened: format!("{} by {}", local_time(r.at, tz), r.screened_by),
                        open_actions: r
                            .open_actions()
                            .map(|a| ActionRow {
                                id: a.id,
                                label: a.kind.label(),
                                description: a.description.clone(),
                                prescriber: a.kind
                                    == irflow_domain::screening::ActionKind::PrescriberClearance,
                                may_complete: match a.kind {
                                    irflow_domain::screening::ActionKind::RadiologistReview => {
                                        matches!(role, Role::Radiologist | Role::Admin)
                                    }
                                    _ => matches!(
                                        role,
                                        Role::Nurse | Role::Radiologist | Role::Admin
                                    ),
                                },
                                error: action_error
                                    .as_ref()
                                    .filter(|(id, _)| *id == a.id)
                                    .map(|(_, m)| m.clone()),
                            })
                            .collect(),
                        done_actions: r
                            .actions
                            .iter()
                            .filter(|a| a.status == irflow_store::ActionStatus::Done)
                            .map(|a| {
                                format!(
                                    "{}: {}{}{}",
                                    a.kind.label(),
                                    if a.cleared == Some(false) {
                                        "not cleared"
                                    } else {
                                        "cleared"
                                    },
                                    a.decided_by
                                        .as_ref()
                                        .map(|d| format!(" by {d}"))
                                        .unwrap_or_default(),
                                    a.notes
                                        .as_ref()
                                        .map(|n| format!(" — {n}"))
                                        .unwrap_or_default()
                                )
                            })
                            .collect(),
                    }
                })
            }
        }
    };
    let booking = booking_panel(state, who, c, &error).await?;
    let returned_because = (c.state == CaseState::Returned)
        .then(|| d.timeline.iter().rev().find(|t| t.action == "return"))
        .flatten()
        .map(|t| {
            let label = t
                .reason_code
                .as_deref()
                .and_then(|r| r.parse::<ReturnReason>().ok())
                .map(ReturnReason::label);
            match (label, &t.reason) {
                (Some(l), Some(r)) => format!("{l}: {r}"),
                (Some(l), None) => l.to_owned(),
                (None, Some(r)) => r.clone(),
                (None, None) => String::new(),
            }
        });
    Ok(CasePage {
        chrome: Chrome::new(state, Some(who), "cases"),
        title: views::case_title(c),
        case_id: c.id.get(),
        referral_number: irflow_fhir::referral_number(c.id.get()),
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
        levels: or_dash(&c.levels),
        side: c
            .side
            .map_or_else(|| "—".to_owned(), |s| s.label().to_owned()),
        urgency: c.urgency,
        indication: or_dash(&d.referral.indication),
        icd10: or_dash(&d.referral.icd10),
        prior_imaging: prior_imaging_text(&d.referral.prior_imaging),
        blood_thinners: or_dash(&d.referral.blood_thinners),
        clinical_notes: or_dash(&d.referral.clinical_notes),
        channel: match (&d.referral.channel, &d.referral.entered_by) {
            (Some(ch), Some(by)) => format!("{} (entered by {by})", ch.label()),
            (Some(ch), None) => ch.label().to_owned(),
            _ => "—".to_owned(),
        },
        referrer: match &c.referrer_organization {
            Some(org) => format!("{} · {org}", c.referrer_name),
            None => c.referrer_name.clone(),
        },
        deferred_until: c.deferred_until.map(|d| d.to_string()),
        opened: local_time(c.created_at, tz),
        actions: views::actions_for(c.state, role)
            .into_iter()
            // A returned referral is resubmitted through the amend form; bookings go
            // through the appointment panel, which reserves the resources.
            .filter(|a| {
                !matches!(
                    a,
                    Action::Resubmit
                        | Action::Schedule
                        | Action::Reschedule
                        | Action::Unschedule
                        // The procedure day's steps are taken on its own pages.
                        | Action::StartProcedure
                        | Action::EndProcedure
                        | Action::Discharge
                        // The follow-up is recorded with its answers (/follow-ups).
                        | Action::RecordFollowUp
                )
            })
            .map(|a| {
                let failed = transition_error.as_ref().filter(|e| e.0 == a);
                ActionForm {
                    action: a,
                    reason_required: a.requires_reason(),
                    takes_date: a == Action::Defer,
                    takes_return_reason: a == Action::Return,
                    danger: matches!(a, Action::Cancel | Action::Return | Action::RecordNoShow),
                    error: failed.map(|e| e.1.clone()),
                    reason: failed.map(|e| e.2.clone()).unwrap_or_default(),
                    deferred_until: failed.map(|e| e.3.clone()).unwrap_or_default(),
                    return_reason: failed.map(|e| e.4.clone()).unwrap_or_default(),
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
                reason_label: t
                    .reason_code
                    .as_deref()
                    .and_then(|r| r.parse::<ReturnReason>().ok())
                    .map(ReturnReason::label),
                deferred_until: t.deferred_until.map(|d| d.to_string()),
            })
            .collect(),
        done,
        today: state.today().to_string(),
        return_reasons: ReturnReason::ALL,
        sides: Side::ALL,
        returned_because,
        can_amend: c.state == CaseState::Returned
            && matches!(role, Role::Referrer | Role::Scheduler),
        change,
        candidates,
        review_error: match error {
            Some(CaseFormError::PatientMatch(m)) => Some(m),
            _ => None,
        },
        can_screen: matches!(role, Role::Nurse | Role::Radiologist | Role::Admin)
            && matches!(
                c.state,
                CaseState::Screening
                    | CaseState::Deferred
                    | CaseState::AwaitingAction
                    | CaseState::Ready
            ),
        screening,
        booking,
        planning: planning_panel(state, who, c).await?,
        day_links: role != Role::Referrer
            && matches!(
                c.state,
                CaseState::Arrived
                    | CaseState::InProcedure
                    | CaseState::Recovery
                    | CaseState::Discharged
            ),
    })
}

async fn planning_panel(
    state: &AppState,
    who: &SignedIn,
    c: &irflow_store::CaseSummary,
) -> Result<Option<PlanningPanel>, AppError> {
    use irflow_domain::scheduling::TimeOfDay;
    let role = who.user.role;
    if role == Role::Referrer
        || !matches!(
            c.state,
            CaseState::Referred
                | CaseState::Screening
                | CaseState::Deferred
                | CaseState::AwaitingAction
                | CaseState::Ready
                | CaseState::Scheduled
                | CaseState::Confirmed
        )
    {
        return Ok(None);
    }
    let actor = who.actor();
    let prefs = state
        .store()
        .preferences(&actor, c.id)
        .await
        .map_err(case_error)?;
    let plan = state
        .store()
        .case_plan(&actor, c.id)
        .await
        .map_err(case_error)?;
    let chosen: Vec<&str> = views::WEEKDAYS
        .iter()
        .filter(|d| prefs.days.contains(&d.2))
        .map(|d| d.1)
        .collect();
    let time_of_day = prefs.time_of_day.map_or("any", TimeOfDay::as_str);
    let mut summary = match (chosen.is_empty(), time_of_day) {
        (true, "any") => "No preference recorded".to_owned(),
        (true, t) => format!("Any day, {t}s"),
        (false, "any") => format!("{}, any time", chosen.join(", ")),
        (false, t) => format!("{}, {t}s", chosen.join(", ")),
    };
    if !prefs.note.is_empty() {
        summary.push_str(&format!(" · {}", prefs.note));
    }
    let procedure = state
        .store()
        .procedures()
        .await?
        .into_iter()
        .find(|p| p.code == c.procedure_code);
    let mut guidance_choices = vec![("any", "As the catalogue allows")];
    if let Some(p) = &procedure {
        for m in &p.modalities {
            guidance_choices.push((m.as_str(), m.label()));
        }
    }
    let contrast = match plan.contrast {
        None => "undecided",
        Some(true) => "yes",
        Some(false) => "no",
    };
    let mut plan_summary = match plan.guidance {
        None => "Any guidance the procedure allows".to_owned(),
        Some(g) => format!("{} guidance", g.label()),
    };
    match plan.contrast {
        Some(true) => plan_summary.push_str(", with contrast"),
        Some(false) => plan_summary.push_str(", no contrast"),
        None => {}
    }
    if !plan.note.is_empty() {
        plan_summary.push_str(&format!(" · {}", plan.note));
    }
    Ok(Some(PlanningPanel {
        days: views::WEEKDAYS
            .iter()
            .map(|d| (d.0, d.1, prefs.days.contains(&d.2)))
            .collect(),
        time_of_day,
        prefs_note: prefs.note,
        prefs_summary: summary,
        can_edit_prefs: matches!(role, Role::Scheduler | Role::Nurse | Role::Admin),
        guidance: plan.guidance.map_or("any", irflow_domain::Modality::as_str),
        contrast,
        plan_note: plan.note,
        plan_summary,
        guidance_choices,
        can_edit_plan: matches!(role, Role::Radiologist | Role::Admin),
    }))
}

async fn booking_panel(
    state: &AppState,
    who: &SignedIn,
    c: &irflow_store::CaseSummary,
    error: &Option<CaseFormError>,
) -> Result<Option<BookingPanel>, AppError> {
    let tz = state.time_zone();
    let error = match error {
        Some(CaseFormError::Booking(m)) => Some(m.clone()),
        _ => None,
    };
    let can_book = matches!(who.user.role, Role::Scheduler | Role::Admin);
    match c.state {
        CaseState::Scheduled | CaseState::Confirmed => {
            let Some(a) = state
                .store()
                .appointment_for_case(&who.actor(), c.id)
                .await
                .map_err(case_error)?
            else {
                return Ok(None);
            };
            let (options, unavailable) = if can_book {
                option_views(state, who, c).await?
            } else {
                (Vec::new(), None)
            };
            Ok(Some(BookingPanel {
                waitlist: state.store().waitlist_note(c.id).await?,
                appointment: Some(AppointmentView {
                    when: format!(
                        "{} – {}",
                        local_time(a.start, tz),
                        a.end.to_zoned_datetime(tz.clone()).strftime("%H:%M")
                    ),
                    arrive: local_time(crate::scheduling_api::arrive_by(state, a.start), tz),
                    room: a.room_name.clone(),
                    radiologist: a.radiologist_name.clone(),
                    chair: a.chair_window.map(|(s, e)| {
                        format!(
                            "{} – {}",
                            s.to_zoned_datetime(tz.clone()).strftime("%H:%M"),
                            e.to_zoned_datetime(tz.clone()).strftime("%H:%M %Z")
                        )
                    }),
                }),
                options,
                can_book,
                unavailable,
                error,
            }))
        }
        CaseState::Ready if can_book => {
            let (options, unavailable) = option_views(state, who, c).await?;
            Ok(Some(BookingPanel {
                appointment: None,
                options,
                can_book,
                unavailable,
                error,
                waitlist: state.store().waitlist_note(c.id).await?,
            }))
        }
        _ => Ok(None),
    }
}

/// The earliest options for the case (to book, or to move to), as shown.
async fn option_views(
    state: &AppState,
    who: &SignedIn,
    c: &irflow_store::CaseSummary,
) -> Result<(Vec<OptionView>, Option<String>), AppError> {
    let tz = state.time_zone();
    {
        {
            let (options, unavailable) =
                match crate::scheduling_api::options(state, &who.actor(), c.id, state.today(), 8)
                    .await
                {
                    Ok((dept, found)) => {
                        let views = found
                            .iter()
                            .map(|o| {
                                let room_label = dept
                                    .room(o.room)
                                    .map_or_else(|| o.room.to_string(), |r| r.name.clone());
                                let radiologist_label = dept
                                    .radiologist_name(o.radiologist)
                                    .map_or_else(|| o.radiologist.to_string(), str::to_owned);
                                OptionView {
                                    start: crate::views::rfc3339_local(o.start, tz),
                                    label: o
                                        .start
                                        .to_zoned_datetime(tz.clone())
                                        .strftime("%a %b %-d, %H:%M %Z")
                                        .to_string(),
                                    room: o.room,
                                    room_label,
                                    radiologist: o.radiologist,
                                    radiologist_label,
                                    chair: o.chair.map(|ch| {
                                        format!(
                                            "recovery chair until {}",
                                            ch.end.to_zoned_datetime(tz.clone()).strftime("%H:%M")
                                        )
                                    }),
                                }
                            })
                            .collect();
                        (views, None)
                    }
                    Err(e @ (AppError::Conflict(_) | AppError::Invalid(_))) => {
                        (Vec::new(), Some(e.public_message()))
                    }
                    Err(e) => return Err(e),
                };
            Ok((options, unavailable))
        }
    }
}

pub(crate) fn language_name(tag: &str) -> String {
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
        "ko" => "Korean",
        _ => return tag.to_owned(),
    };
    format!("{name} ({tag})")
}

pub(crate) fn case_error(e: irflow_store::StoreError) -> AppError {
    match e {
        irflow_store::StoreError::NotFound => {
            AppError::NotFound("there is no case with this number that you can see".to_owned())
        }
        other => other.into(),
    }
}

/// Renders the case page (or an error page if it cannot be built).
pub(crate) async fn show_case(
    state: &AppState,
    who: &SignedIn,
    id: irflow_domain::CaseId,
    done: Option<String>,
    error: Option<CaseFormError>,
    status: StatusCode,
) -> Response {
    let d = match state.store().case_detail(&who.actor(), id).await {
        Ok(d) => d,
        Err(e) => return error_page(state, Some(who), &case_error(e)),
    };
    match case_page_for(state, who, &d, done, error).await {
        Ok(page) => render(&page, status),
        Err(e) => error_page(state, Some(who), &e),
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
    let done = q.done.as_deref().map(|a| match a.parse::<Action>() {
        Ok(a) => format!("Done: {}.", a.label()),
        Err(_) => match a {
            "change_procedure" => "Done: the procedure was changed.".to_owned(),
            "patient_match" => "Done: the patient match was recorded.".to_owned(),
            "screening" => "Done: the screening was saved.".to_owned(),
            "action" => "Done: the action was recorded.".to_owned(),
            "preferences" => "Done: the patient's preferences were saved.".to_owned(),
            "plan" => "Done: the procedure plan was saved.".to_owned(),
            "waitlist" => "Done: the case is on the waitlist.".to_owned(),
            "waitlist_removed" => "Done: the case is off the waitlist.".to_owned(),
            _ => "Done.".to_owned(),
        },
    });
    show_case(&state, &who, id, done, None, StatusCode::OK).await
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
    let return_reason = match form.return_reason.trim() {
        "" => Ok(None),
        r => r
            .parse::<ReturnReason>()
            .map(Some)
            .map_err(AppError::Invalid),
    };
    let result = match (parsed_date, return_reason) {
        (Err(_), _) => Err(AppError::Invalid(
            "the date must be written YYYY-MM-DD".to_owned(),
        )),
        (_, Err(e)) => Err(e),
        (Ok(deferred_until), Ok(return_reason)) => {
            let request = TransitionRequest {
                action,
                reason: Some(form.reason.clone()),
                deferred_until,
                return_reason,
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
        Ok(_) => {
            if matches!(action, Action::Cancel | Action::RecordNoShow) {
                crate::reminders::replan_after_change(&state, &who.actor(), id).await;
            }
            Redirect::to(&format!("/cases/{id}?done={action}")).into_response()
        }
        Err(e @ (AppError::NotFound(_) | AppError::Internal(_))) => {
            error_page(&state, Some(&who), &e)
        }
        Err(e) => {
            let error = CaseFormError::Transition {
                action,
                message: e.public_message(),
                reason: form.reason,
                deferred_until: form.deferred_until,
                return_reason: form.return_reason,
            };
            show_case(&state, &who, id, None, Some(error), e.status()).await
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
