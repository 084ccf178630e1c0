//! The patient's own pages, opened from their personal link (`/p/{secret}`), with no
//! staff sign-in: a date-of-birth check, then the appointment, the instructions, a
//! calendar file, "I will come" / "please cancel", and the discharge instructions.
//!
//! - A link that is unknown, expired, revoked or locked shows the same plain page
//!   ("this link no longer works, call us"), so nothing tells whether it existed.
//! - The date of birth is compared in constant time; wrong ones count on the link
//!   (it locks after [`MAX_DOB_ATTEMPTS`]) and per client address (shared with the
//!   staff sign-in limit), both in the database so the limits hold across processes.
//! - After the check, a session cookie (random, stored hashed, `HttpOnly`,
//!   `SameSite=Strict`, `Secure` unless configured off) bound to that one link, with a
//!   short idle timeout. Forms carry an anti-forgery token (a cookie before the
//!   check, the session's after) on top of the cross-site write guard.
//! - Every page shown and every attempt is audited as `patient-link:<id>`; the
//!   secret is never logged or stored (request logs carry route templates only).
//! - Pages are in English or Spanish: the patient's preferred language, with a switch.

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use irflow_domain::Actor;
use irflow_letters::{Lang, LetterKind};
use irflow_store::{
    AuditOutcome, DobCheck, LinkStatus, NewAuditEvent, PatientLinkRecord, ResponseKind,
};
use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;

use crate::auth::{constant_time_eq, new_secret, secret_hash};
use crate::ics::clock;
use crate::letters::{LetterExtras, compose};
use crate::patient_links::MAX_DOB_ATTEMPTS;
use crate::scheduling_api::arrive_by;
use crate::session::{ClientAddress, read_cookie};
use crate::{AppError, AppState};

/// A patient session lasts at most this long, however active.
const SESSION_MAX_HOURS: i64 = 2;

/// Failed date-of-birth attempts from one client are counted over this window.
const RATE_WINDOW_MINUTES: i64 = 15;

/// The routes of the patient's pages (no staff session involved).
pub fn routes() -> axum::Router<AppState> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/p/{token}", get(open).post(check_date_of_birth))
        .route("/p/{token}/appointment.ics", get(calendar_file))
        .route("/p/{token}/instructions", get(instructions))
        .route("/p/{token}/discharge", get(discharge))
        .route("/p/{token}/respond", post(respond))
        .route(
            "/p/{token}/follow-up",
            post(crate::patient_follow_up::submit),
        )
        .route("/p/{token}/reminders/stop", post(stop_reminders))
        .route("/p/{token}/sign-out", post(sign_out))
        .route("/static/patient.css", get(stylesheet))
        .merge(crate::patient_links::staff_routes())
}

fn session_cookie(secure: bool) -> &'static str {
    if secure {
        "__Host-irflow_patient"
    } else {
        "irflow_patient"
    }
}

fn csrf_cookie(secure: bool) -> &'static str {
    if secure {
        "__Host-irflow_patient_csrf"
    } else {
        "irflow_patient_csrf"
    }
}

/// A `Set-Cookie` value: `HttpOnly`, `SameSite=Strict`, `Path=/`, `Secure` per settings.
fn set_cookie(name: &str, value: &str, secure: bool, max_age_seconds: i64) -> String {
    let mut c =
        format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_seconds}");
    if secure {
        c.push_str("; Secure");
    }
    c
}

// ---------------------------------------------------------------- words

/// Everything the patient pages say, in one language.
#[derive(Debug)]
pub(crate) struct Words {
    lang: &'static str,
    other_lang: &'static str,
    other_lang_name: &'static str,
    your_appointment: &'static str,
    dob_intro: &'static str,
    dob_legend: &'static str,
    month: &'static str,
    day: &'static str,
    year: &'static str,
    choose_month: &'static str,
    months: [&'static str; 12],
    weekdays: [&'static str; 7],
    continue_button: &'static str,
    wrong_dob_many: &'static str,
    wrong_dob_one: &'static str,
    locked: &'static str,
    not_a_date: &'static str,
    too_many: &'static str,
    gone_title: &'static str,
    gone_text: &'static str,
    expired_form: &'static str,
    questions: &'static str,
    hello: &'static str,
    date: &'static str,
    start: &'static str,
    arrive_by: &'static str,
    place: &'static str,
    arrive_note: &'static str,
    add_to_calendar: &'static str,
    print_instructions: &'static str,
    will_come: &'static str,
    need_cancel: &'static str,
    cancel_reason: &'static str,
    ask_cancel: &'static str,
    reason_too_long: &'static str,
    confirmed: &'static str,
    cancel_asked: &'static str,
    instructions_title: &'static str,
    instructions_missing: &'static str,
    after_title: &'static str,
    after_text: &'static str,
    read_discharge: &'static str,
    no_appointment: &'static str,
    cancelled: &'static str,
    visit_done: &'static str,
    back: &'static str,
    sign_out: &'static str,
    signed_out: &'static str,
    reminders_title: &'static str,
    reminders_on: &'static str,
    stop_reminders: &'static str,
    reminders_off: &'static str,
}

const EN: Words = Words {
    lang: "en",
    other_lang: "es",
    other_lang_name: "Español",
    your_appointment: "Your appointment",
    dob_intro: "To keep your information private, please enter your date of birth.",
    dob_legend: "Your date of birth",
    month: "Month",
    day: "Day",
    year: "Year",
    choose_month: "Choose a month",
    months: [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ],
    weekdays: [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ],
    continue_button: "Continue",
    wrong_dob_many: "That date of birth does not match our records. Please try again. You have {n} tries left.",
    wrong_dob_one: "That date of birth does not match our records. Please try again. You have 1 try left.",
    locked: "That date of birth does not match our records. To keep your information safe, this link is now locked. Please call us at {phone} and we will send you a new one.",
    not_a_date: "Please enter a real date: the month, the day and the year with 4 numbers (for example 1958).",
    too_many: "There have been too many tries from this device. Please wait 15 minutes and try again, or call us at {phone}.",
    gone_title: "This link no longer works",
    gone_text: "Please call us at {phone}. We will help you and can send you a new link.",
    expired_form: "This page was open too long. Please try again.",
    questions: "Questions? Call us at",
    hello: "Hello, {name}",
    date: "Date",
    start: "Start time",
    arrive_by: "Please arrive by",
    place: "Place",
    arrive_note: "Come {minutes} minutes early to check in.",
    add_to_calendar: "Add to my calendar",
    print_instructions: "Print my instructions",
    will_come: "Yes, I will come",
    need_cancel: "I need to cancel",
    cancel_reason: "Why? (you do not have to say)",
    ask_cancel: "Ask to cancel",
    reason_too_long: "Please make the reason shorter (500 letters at most).",
    confirmed: "Thank you. You told us you will come.",
    cancel_asked: "We got your request to cancel. We will call you soon.",
    instructions_title: "How to get ready",
    instructions_missing: "Your instructions are not ready yet. Please call us if you have questions.",
    after_title: "After your procedure",
    after_text: "What to do after the procedure, and when to call us. You can read it now.",
    read_discharge: "Read the after-care instructions",
    no_appointment: "You do not have an appointment booked right now. We will call you, or you can call us.",
    cancelled: "Your appointment on {date} was cancelled.",
    visit_done: "Your visit on {date} is over. Thank you for coming.",
    back: "Back to my appointment",
    sign_out: "I am done (sign out)",
    signed_out: "You are signed out. To look again, open your link and enter your date of birth.",
    reminders_title: "Reminders",
    reminders_on: "We send you reminders before your visit by email or text. You can stop them here.",
    stop_reminders: "Stop my reminders",
    reminders_off: "You will not get reminders from us. To get them again, call us at {phone}.",
};

const ES: Words = Words {
    lang: "es",
    other_lang: "en",
    other_lang_name: "English",
    your_appointment: "Su cita",
    dob_intro: "Para proteger su información, escriba su fecha de nacimiento.",
    dob_legend: "Su fecha de nacimiento",
    month: "Mes",
    day: "Día",
    year: "Año",
    choose_month: "Elija un mes",
    months: [
        "enero",
        "febrero",
        "marzo",
        "abril",
        "mayo",
        "junio",
        "julio",
        "agosto",
        "septiembre",
        "octubre",
        "noviembre",
        "diciembre",
    ],
    weekdays: [
        "lunes",
        "martes",
        "miércoles",
        "jueves",
        "viernes",
        "sábado",
        "domingo",
    ],
    continue_button: "Continuar",
    wrong_dob_many: "Esa fecha de nacimiento no coincide con nuestros registros. Inténtelo de nuevo. Le quedan {n} intentos.",
    wrong_dob_one: "Esa fecha de nacimiento no coincide con nuestros registros. Inténtelo de nuevo. Le queda 1 intento.",
    locked: "Esa fecha de nacimiento no coincide con nuestros registros. Para proteger su información, este enlace está bloqueado. Llámenos al {phone} y le enviaremos uno nuevo.",
    not_a_date: "Escriba una fecha real: el mes, el día y el año con 4 números (por ejemplo 1958).",
    too_many: "Hubo demasiados intentos desde este aparato. Espere 15 minutos e inténtelo de nuevo, o llámenos al {phone}.",
    gone_title: "Este enlace ya no funciona",
    gone_text: "Llámenos al {phone}. Le ayudaremos y podemos enviarle un enlace nuevo.",
    expired_form: "Esta página estuvo abierta demasiado tiempo. Inténtelo de nuevo.",
    questions: "¿Preguntas? Llámenos al",
    hello: "Hola, {name}",
    date: "Fecha",
    start: "Hora de la cita",
    arrive_by: "Llegue a las",
    place: "Lugar",
    arrive_note: "Llegue {minutes} minutos antes para registrarse.",
    add_to_calendar: "Agregar a mi calendario",
    print_instructions: "Imprimir mis instrucciones",
    will_come: "Sí, iré a la cita",
    need_cancel: "Necesito cancelar",
    cancel_reason: "¿Por qué? (no tiene que decirlo)",
    ask_cancel: "Pedir que cancelen la cita",
    reason_too_long: "Escriba un motivo más corto (500 letras como máximo).",
    confirmed: "Gracias. Nos dijo que vendrá a la cita.",
    cancel_asked: "Recibimos su pedido para cancelar. Le llamaremos pronto.",
    instructions_title: "Cómo prepararse",
    instructions_missing: "Sus instrucciones aún no están listas. Llámenos si tiene preguntas.",
    after_title: "Después del procedimiento",
    after_text: "Qué hacer después del procedimiento y cuándo llamarnos. Puede leerlo ahora.",
    read_discharge: "Leer las instrucciones para después",
    no_appointment: "Ahora no tiene una cita programada. Le llamaremos, o puede llamarnos.",
    cancelled: "Su cita del {date} fue cancelada.",
    visit_done: "Su visita del {date} ya pasó. Gracias por venir.",
    back: "Volver a mi cita",
    sign_out: "Terminé (cerrar sesión)",
    signed_out: "Cerró la sesión. Para verla otra vez, abra su enlace y escriba su fecha de nacimiento.",
    reminders_title: "Recordatorios",
    reminders_on: "Le enviamos recordatorios antes de su cita por correo electrónico o mensaje de texto. Puede dejar de recibirlos aquí.",
    stop_reminders: "No quiero más recordatorios",
    reminders_off: "No recibirá recordatorios. Para recibirlos otra vez, llámenos al {phone}.",
};

fn words(lang: Lang) -> &'static Words {
    match lang {
        Lang::Es => &ES,
        _ => &EN,
    }
}

/// The language asked for (`?lang=`), else the patient's preferred one, else English.
pub(crate) fn choose_lang(asked: Option<&str>, preferred: Option<&str>) -> Lang {
    asked
        .and_then(Lang::parse)
        .or_else(|| preferred.and_then(|p| Lang::parse(p.split('-').next().unwrap_or(p))))
        .unwrap_or(Lang::En)
}

fn long_date(date: Date, w: &Words) -> String {
    let weekday = w.weekdays[usize::from(date.weekday().to_monday_zero_offset().unsigned_abs())];
    let month = w.months[usize::from(date.month().unsigned_abs()).saturating_sub(1)];
    if w.lang == "es" {
        format!("{weekday}, {} de {month} de {}", date.day(), date.year())
    } else {
        format!("{weekday}, {month} {}, {}", date.day(), date.year())
    }
}

// ---------------------------------------------------------------- templates

#[derive(Template)]
#[template(path = "patient_dob.html")]
struct DobPage {
    t: &'static Words,
    department: String,
    phone: String,
    token: String,
    csrf: String,
    error: Option<String>,
    notice: Option<String>,
    month: String,
    day: String,
    year: String,
}

#[derive(Template)]
#[template(path = "patient_gone.html")]
struct GonePage {
    t: &'static Words,
    department: String,
    phone: String,
    title: String,
    message: String,
}

struct AppointmentView {
    date: String,
    start: String,
    arrive: String,
    place: String,
    arrive_note: String,
}

#[derive(Template)]
#[template(path = "patient_home.html")]
struct HomePage {
    t: &'static Words,
    department: String,
    phone: String,
    token: String,
    csrf: String,
    greeting: String,
    procedure: String,
    appointment: Option<AppointmentView>,
    status_note: Option<String>,
    error: Option<String>,
    answered: Option<&'static str>,
    instructions_html: Option<String>,
    /// The follow-up questions, once due.
    follow_up: Option<crate::patient_follow_up::FollowUpPanel>,
    /// The patient asked for no reminders: what that means, else the form to ask.
    reminders_off: Option<String>,
}

#[derive(Template)]
#[template(path = "patient_letter.html")]
struct LetterPage {
    t: &'static Words,
    department: String,
    phone: String,
    token: String,
    title: String,
    body_html: String,
}

/// Patient pages: never cached or framed (the app's headers), not indexed. The URL
/// holds the secret: the app's `Referrer-Policy: same-origin` keeps it from other
/// sites (`no-referrer` would make browsers send `Origin: null` on our own forms,
/// which the cross-site guard refuses).
fn page(template: &impl Template, status: StatusCode, extra_cookies: &[String]) -> Response {
    let mut response = match template.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            let e = AppError::from(e);
            e.log();
            (StatusCode::INTERNAL_SERVER_ERROR, "something went wrong").into_response()
        }
    };
    let h = response.headers_mut();
    h.insert(
        "x-robots-tag",
        HeaderValue::from_static("noindex, nofollow"),
    );
    for c in extra_cookies {
        if let Ok(v) = HeaderValue::from_str(c) {
            h.append(header::SET_COOKIE, v);
        }
    }
    response
}

fn gone(state: &AppState, lang: Lang, status: StatusCode) -> Response {
    let t = words(lang);
    let phone = state.config().department_phone.clone();
    page(
        &GonePage {
            t,
            department: state.config().department_name.clone(),
            title: t.gone_title.to_owned(),
            message: t.gone_text.replace("{phone}", &phone),
            phone,
        },
        status,
        &[],
    )
}

pub(crate) async fn audit(state: &AppState, event: NewAuditEvent) {
    if let Err(e) = state.store().record_audit(event).await {
        tracing::error!(error = %e, "could not record audit event");
    }
}

fn unknown_actor(client: &str) -> Actor {
    Actor {
        user_id: None,
        username: "patient-link:unknown".to_owned(),
        role: None,
        client: Some(client.to_owned()),
    }
}

/// A link secret as we make them (43 URL-safe base64 characters); anything else is
/// not looked up at all.
fn plausible_token(token: &str) -> bool {
    token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The link for a secret, if it exists and still opens; otherwise the "no longer
/// works" page (the same for every reason), after auditing the attempt.
async fn usable_link(
    state: &AppState,
    token: &str,
    client: &str,
    action: &'static str,
    lang: Lang,
) -> Result<PatientLinkRecord, Response> {
    let found = if plausible_token(token) {
        match state
            .store()
            .patient_link_by_token_hash(&secret_hash(token))
            .await
        {
            Ok(found) => found,
            Err(e) => {
                tracing::error!(error = %e, "patient link lookup failed");
                return Err(gone(state, lang, StatusCode::INTERNAL_SERVER_ERROR));
            }
        }
    } else {
        None
    };
    let Some(link) = found else {
        audit(
            state,
            NewAuditEvent::new(
                &unknown_actor(client),
                action,
                "patient_link",
                AuditOutcome::NotFound,
            ),
        )
        .await;
        return Err(gone(state, lang, StatusCode::NOT_FOUND));
    };
    let status = link.status(Timestamp::now());
    if status != LinkStatus::Active {
        audit(
            state,
            NewAuditEvent::new(
                &link.actor(Some(client.to_owned())),
                action,
                "case",
                AuditOutcome::Denied,
            )
            .entity(link.case_id)
            .detail(format!("link={} {}", link.id, status.as_str())),
        )
        .await;
        return Err(gone(state, lang, StatusCode::NOT_FOUND));
    }
    Ok(link)
}

/// The patient's live session on this link, if the request carries one.
async fn session_for(
    state: &AppState,
    headers: &HeaderMap,
    link: &PatientLinkRecord,
) -> Result<Option<irflow_store::PatientSession>, AppError> {
    let Some(value) = read_cookie(headers, session_cookie(state.config().cookie_secure)) else {
        return Ok(None);
    };
    Ok(state
        .store()
        .live_patient_session(
            &secret_hash(value),
            link.id,
            Timestamp::now(),
            SignedDuration::from_mins(state.config().patient_session_idle_minutes),
        )
        .await?)
}

/// The patient's preferred language on file (part of opening the link, which the
/// caller audits).
async fn preferred_language(state: &AppState, link: &PatientLinkRecord) -> Option<String> {
    state.store().patient_link_language(link).await.ok()
}

/// Query of the patient's pages.
#[derive(Debug, Deserialize)]
pub struct PatientQuery {
    lang: Option<String>,
    done: Option<String>,
}

#[allow(clippy::too_many_arguments)]
fn dob_page(
    state: &AppState,
    lang: Lang,
    token: &str,
    csrf: &str,
    error: Option<String>,
    notice: Option<String>,
    typed: Option<&DobForm>,
    status: StatusCode,
) -> Response {
    let secure = state.config().cookie_secure;
    let cookie = set_cookie(csrf_cookie(secure), csrf, secure, 60 * 60);
    page(
        &DobPage {
            t: words(lang),
            department: state.config().department_name.clone(),
            phone: state.config().department_phone.clone(),
            token: token.to_owned(),
            csrf: csrf.to_owned(),
            error,
            notice,
            month: typed.map(|f| f.month.trim().to_owned()).unwrap_or_default(),
            day: typed.map(|f| f.day.trim().to_owned()).unwrap_or_default(),
            year: typed.map(|f| f.year.trim().to_owned()).unwrap_or_default(),
        },
        status,
        &[cookie],
    )
}

/// `GET /p/{token}`: the date-of-birth form, or — with a live session — the
/// patient's appointment page.
pub async fn open(
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    Path(token): Path<String>,
    Query(q): Query<PatientQuery>,
    headers: HeaderMap,
) -> Response {
    let asked = q.lang.as_deref().and_then(Lang::parse);
    let link = match usable_link(
        &state,
        &token,
        &client,
        "open_patient_link",
        asked.unwrap_or(Lang::En),
    )
    .await
    {
        Ok(link) => link,
        Err(r) => return r,
    };
    let actor = link.actor(Some(client.clone()));
    match session_for(&state, &headers, &link).await {
        Ok(Some(session)) => {
            return home(
                &state,
                &actor,
                &link,
                &token,
                &session.csrf_token,
                q.lang.as_deref(),
                None,
            )
            .await;
        }
        Ok(None) => {}
        Err(e) => {
            e.log();
            return gone(
                &state,
                asked.unwrap_or(Lang::En),
                StatusCode::INTERNAL_SERVER_ERROR,
            );
        }
    }
    let preferred = preferred_language(&state, &link).await;
    let lang = choose_lang(q.lang.as_deref(), preferred.as_deref());
    audit(
        &state,
        NewAuditEvent::new(&actor, "open_patient_link", "case", AuditOutcome::Success)
            .entity(link.case_id)
            .detail(format!("link={} date-of-birth form", link.id)),
    )
    .await;
    let notice =
        (q.done.as_deref() == Some("signed_out")).then(|| words(lang).signed_out.to_owned());
    dob_page(
        &state,
        lang,
        &token,
        &new_secret(""),
        None,
        notice,
        None,
        StatusCode::OK,
    )
}

/// Fields of the date-of-birth form.
#[derive(Debug, Deserialize)]
pub struct DobForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    month: String,
    #[serde(default)]
    day: String,
    #[serde(default)]
    year: String,
    #[serde(default)]
    lang: String,
}

fn parse_dob(form: &DobForm, today: Date) -> Option<Date> {
    let month: i8 = form.month.trim().parse().ok()?;
    let day: i8 = form.day.trim().parse().ok()?;
    let year: i16 = form.year.trim().parse().ok()?;
    if form.year.trim().len() != 4 || year < 1900 {
        return None;
    }
    Date::new(year, month, day).ok().filter(|d| *d <= today)
}

/// `POST /p/{token}`: checks the date of birth; right starts the session.
pub async fn check_date_of_birth(
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    Path(token): Path<String>,
    headers: HeaderMap,
    Form(form): Form<DobForm>,
) -> Response {
    let lang = Lang::parse(form.lang.trim()).unwrap_or(Lang::En);
    let t = words(lang);
    let config = state.config();
    let secure = config.cookie_secure;
    let now = Timestamp::now();
    // The client's recent failures on any link, across processes.
    let since = now - SignedDuration::from_mins(RATE_WINDOW_MINUTES);
    match state
        .store()
        .recent_patient_link_failures(&client, since)
        .await
    {
        Ok(n) if n >= config.login_failures_per_client => {
            audit(
                &state,
                NewAuditEvent::new(
                    &unknown_actor(&client),
                    "verify_date_of_birth",
                    "patient_link",
                    AuditOutcome::Denied,
                )
                .detail("too many attempts from this client"),
            )
            .await;
            let phone = config.department_phone.clone();
            return page(
                &GonePage {
                    t,
                    department: config.department_name.clone(),
                    title: t.your_appointment.to_owned(),
                    message: t.too_many.replace("{phone}", &phone),
                    phone,
                },
                StatusCode::TOO_MANY_REQUESTS,
                &[],
            );
        }
        Ok(_) => {}
        Err(e) => {
            tracing::error!(error = %e, "could not count patient link attempts");
            return gone(&state, lang, StatusCode::INTERNAL_SERVER_ERROR);
        }
    }
    if !plausible_token(&token) {
        if let Err(e) = state
            .store()
            .record_unknown_patient_link_attempt(&client, now)
            .await
        {
            tracing::error!(error = %e, "could not record a patient link attempt");
        }
        return gone(&state, lang, StatusCode::NOT_FOUND);
    }
    let found = match state
        .store()
        .patient_link_by_token_hash(&secret_hash(&token))
        .await
    {
        Ok(found) => found,
        Err(e) => {
            tracing::error!(error = %e, "patient link lookup failed");
            return gone(&state, lang, StatusCode::INTERNAL_SERVER_ERROR);
        }
    };
    let Some(link) = found else {
        if let Err(e) = state
            .store()
            .record_unknown_patient_link_attempt(&client, now)
            .await
        {
            tracing::error!(error = %e, "could not record a patient link attempt");
        }
        return gone(&state, lang, StatusCode::NOT_FOUND);
    };
    let actor = link.actor(Some(client.clone()));
    let expected = read_cookie(&headers, csrf_cookie(secure)).unwrap_or("");
    if expected.is_empty() || !constant_time_eq(expected, &form.csrf) {
        audit(
            &state,
            NewAuditEvent::new(&actor, "verify_date_of_birth", "case", AuditOutcome::Denied)
                .entity(link.case_id)
                .detail(format!(
                    "link={} form without a valid anti-forgery token",
                    link.id
                )),
        )
        .await;
        return dob_page(
            &state,
            lang,
            &token,
            &new_secret(""),
            Some(t.expired_form.to_owned()),
            None,
            None,
            StatusCode::FORBIDDEN,
        );
    }
    if link.status(now) != LinkStatus::Active {
        audit(
            &state,
            NewAuditEvent::new(&actor, "verify_date_of_birth", "case", AuditOutcome::Denied)
                .entity(link.case_id)
                .detail(format!("link={} {}", link.id, link.status(now).as_str())),
        )
        .await;
        return gone(&state, lang, StatusCode::NOT_FOUND);
    }
    let Some(dob) = parse_dob(&form, state.today()) else {
        audit(
            &state,
            NewAuditEvent::new(
                &actor,
                "verify_date_of_birth",
                "case",
                AuditOutcome::Invalid,
            )
            .entity(link.case_id)
            .detail(format!("link={} not a date", link.id)),
        )
        .await;
        return dob_page(
            &state,
            lang,
            &token,
            &form.csrf,
            Some(t.not_a_date.to_owned()),
            None,
            Some(&form),
            StatusCode::UNPROCESSABLE_ENTITY,
        );
    };
    let check = match state
        .store()
        .verify_patient_link_dob(&link, dob, &client, now, MAX_DOB_ATTEMPTS)
        .await
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "date-of-birth check failed");
            return gone(&state, lang, StatusCode::INTERNAL_SERVER_ERROR);
        }
    };
    match check {
        DobCheck::Verified => {
            let session = new_secret("");
            let csrf = new_secret("");
            let expires = now + SignedDuration::from_hours(SESSION_MAX_HOURS);
            if let Err(e) = state
                .store()
                .create_patient_session(link.id, &secret_hash(&session), &csrf, now, expires)
                .await
            {
                tracing::error!(error = %e, "could not start a patient session");
                return gone(&state, lang, StatusCode::INTERNAL_SERVER_ERROR);
            }
            let mut response =
                Redirect::to(&format!("/p/{token}?lang={}", lang.as_str())).into_response();
            let h = response.headers_mut();
            for c in [
                set_cookie(
                    session_cookie(secure),
                    &session,
                    secure,
                    SESSION_MAX_HOURS * 3600,
                ),
                set_cookie(csrf_cookie(secure), "", secure, 0),
            ] {
                if let Ok(v) = HeaderValue::from_str(&c) {
                    h.append(header::SET_COOKIE, v);
                }
            }
            response
        }
        DobCheck::Wrong { attempts_left } if attempts_left > 0 => {
            let message = if attempts_left == 1 {
                t.wrong_dob_one.to_owned()
            } else {
                t.wrong_dob_many.replace("{n}", &attempts_left.to_string())
            };
            dob_page(
                &state,
                lang,
                &token,
                &form.csrf,
                Some(message),
                None,
                None,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
        }
        DobCheck::Wrong { .. } => {
            let phone = config.department_phone.clone();
            page(
                &GonePage {
                    t,
                    department: config.department_name.clone(),
                    title: t.gone_title.to_owned(),
                    message: t.locked.replace("{phone}", &phone),
                    phone,
                },
                StatusCode::FORBIDDEN,
                &[],
            )
        }
        DobCheck::Unusable => gone(&state, lang, StatusCode::NOT_FOUND),
    }
}

/// The patient's appointment page (audited as the link's actor), with a refusal to
/// show when a form was not accepted.
pub(crate) async fn home(
    state: &AppState,
    actor: &Actor,
    link: &PatientLinkRecord,
    token: &str,
    csrf: &str,
    asked_lang: Option<&str>,
    error: Option<(StatusCode, String)>,
) -> Response {
    match home_page(state, actor, link, token, csrf, asked_lang, error).await {
        Ok((p, status)) => page(&p, status, &[]),
        Err(e) => {
            e.log();
            gone(
                state,
                choose_lang(asked_lang, None),
                StatusCode::INTERNAL_SERVER_ERROR,
            )
        }
    }
}

async fn home_page(
    state: &AppState,
    actor: &Actor,
    link: &PatientLinkRecord,
    token: &str,
    csrf: &str,
    asked_lang: Option<&str>,
    error: Option<(StatusCode, String)>,
) -> Result<(HomePage, StatusCode), AppError> {
    let detail = state.store().case_detail(actor, link.case_id).await?;
    let lang = choose_lang(asked_lang, Some(&detail.patient.preferred_language));
    let t = words(lang);
    let tz = state.time_zone();
    let config = state.config();
    let spanish = lang == Lang::Es;
    let revision = state
        .store()
        .appointment_revision(actor, link.case_id)
        .await?;
    let responses = state.store().patient_responses(actor, link.case_id).await?;
    // Named as the patient's letters name it, in the page's language.
    let procedure = crate::letters::procedure_name(state, &detail.case.procedure_code, lang)
        .await?
        .unwrap_or_default();
    let place = if config.department_address.trim().is_empty() {
        config.department_name.clone()
    } else {
        format!(
            "{}, {}",
            config.department_name,
            config.department_address.trim()
        )
    };
    // An appointment still to come: one the patient has arrived for, or that is over,
    // is no longer confirmed or cancelled here (the follow-up and the discharge
    // instructions take its place).
    let now = Timestamp::now();
    let booked = revision
        .as_ref()
        .map(|r| &r.appointment)
        .filter(|a| a.status == "booked" && a.attendance.is_none() && a.end > now);
    let (appointment, status_note) = match (&revision, booked) {
        (_, Some(a)) => (
            Some(AppointmentView {
                date: long_date(a.start.to_zoned_datetime(tz.clone()).date(), t),
                start: clock(a.start, tz, spanish),
                arrive: clock(arrive_by(state, a.start), tz, spanish),
                place,
                arrive_note: t
                    .arrive_note
                    .replace("{minutes}", &config.arrive_minutes_before.to_string()),
            }),
            None,
        ),
        // Arrived, or over: the visit has happened (the follow-up comes below).
        (Some(r), None) if r.appointment.status == "booked" => (
            None,
            Some(t.visit_done.replace(
                "{date}",
                &long_date(r.appointment.start.to_zoned_datetime(tz.clone()).date(), t),
            )),
        ),
        (Some(r), None) if r.appointment.attendance.is_none() => (
            None,
            Some(t.cancelled.replace(
                "{date}",
                &long_date(r.appointment.start.to_zoned_datetime(tz.clone()).date(), t),
            )),
        ),
        _ => (None, Some(t.no_appointment.to_owned())),
    };
    let answered = booked.and_then(|a| {
        responses
            .iter()
            .rev()
            .find(|r| r.appointment_id == Some(a.id))
            .map(|r| match r.kind {
                ResponseKind::Confirm => t.confirmed,
                ResponseKind::CancelRequest => t.cancel_asked,
            })
    });
    let instructions_html = if booked.is_some() {
        match compose(
            state,
            actor,
            link.case_id,
            LetterKind::Instructions,
            Some(lang),
            &LetterExtras::default(),
        )
        .await
        {
            Ok(letter) => Some(letter.html_body),
            Err(e) => {
                e.log();
                None
            }
        }
    } else {
        None
    };
    let follow_up = crate::patient_follow_up::panel(state, actor, link, lang).await;
    let reminders_off = state
        .store()
        .reminders_opt_out(actor, link.case_id)
        .await?
        .map(|_| t.reminders_off.replace("{phone}", &config.department_phone));
    audit(
        state,
        NewAuditEvent::new(actor, "patient_view", "case", AuditOutcome::Success)
            .entity(link.case_id)
            .detail(format!("link={} page=appointment", link.id)),
    )
    .await;
    let (status, error) = match error {
        Some((status, message)) => (status, Some(message)),
        None => (StatusCode::OK, None),
    };
    Ok((
        HomePage {
            t,
            department: config.department_name.clone(),
            phone: config.department_phone.clone(),
            token: token.to_owned(),
            csrf: csrf.to_owned(),
            greeting: t.hello.replace("{name}", &detail.patient.given_name),
            procedure,
            appointment,
            status_note,
            error,
            answered,
            instructions_html,
            follow_up,
            reminders_off,
        },
        status,
    ))
}

/// A patient page that needs the session; without one, back to the date-of-birth form.
/// As [`with_session`], for a form the patient sent: one without the session's
/// anti-forgery token is refused (audited as `denied` with `audited`'s action and
/// entity type) and the patient's page shown again with the reason.
async fn with_form_session(
    state: &AppState,
    client: &str,
    token: &str,
    headers: &HeaderMap,
    lang: Option<&str>,
    csrf: &str,
    (action, entity_type): (&'static str, &'static str),
) -> Result<(PatientLinkRecord, irflow_store::PatientSession, Actor), Response> {
    let (link, session, actor) = with_session(state, client, token, headers, lang).await?;
    if constant_time_eq(&session.csrf_token, csrf) {
        return Ok((link, session, actor));
    }
    audit(
        state,
        NewAuditEvent::new(&actor, action, entity_type, AuditOutcome::Denied)
            .entity(link.case_id)
            .detail(format!(
                "link={} form without a valid anti-forgery token",
                link.id
            )),
    )
    .await;
    let t = words(choose_lang(lang, None));
    Err(home(
        state,
        &actor,
        &link,
        token,
        &session.csrf_token,
        lang,
        Some((StatusCode::FORBIDDEN, t.expired_form.to_owned())),
    )
    .await)
}

pub(crate) async fn with_session(
    state: &AppState,
    client: &str,
    token: &str,
    headers: &HeaderMap,
    lang: Option<&str>,
) -> Result<(PatientLinkRecord, irflow_store::PatientSession, Actor), Response> {
    let link = usable_link(
        state,
        token,
        client,
        "patient_view",
        choose_lang(lang, None),
    )
    .await?;
    match session_for(state, headers, &link).await {
        Ok(Some(session)) => {
            let actor = link.actor(Some(client.to_owned()));
            Ok((link, session, actor))
        }
        Ok(None) => Err(Redirect::to(&format!(
            "/p/{token}{}",
            lang.and_then(Lang::parse)
                .map_or_else(String::new, |l| format!("?lang={}", l.as_str()))
        ))
        .into_response()),
        Err(e) => {
            e.log();
            Err(gone(
                state,
                choose_lang(lang, None),
                StatusCode::INTERNAL_SERVER_ERROR,
            ))
        }
    }
}

/// `GET /p/{token}/appointment.ics`: "Add to my calendar".
pub async fn calendar_file(
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    Path(token): Path<String>,
    Query(q): Query<PatientQuery>,
    headers: HeaderMap,
) -> Response {
    let (link, _, actor) =
        match with_session(&state, &client, &token, &headers, q.lang.as_deref()).await {
            Ok(s) => s,
            Err(r) => return r,
        };
    let lang = q.lang.as_deref().and_then(Lang::parse).map(Lang::as_str);
    audit(
        &state,
        NewAuditEvent::new(&actor, "patient_view", "case", AuditOutcome::Success)
            .entity(link.case_id)
            .detail(format!("link={} page=calendar", link.id)),
    )
    .await;
    match crate::ics::ics_response(&state, &actor, link.case_id, lang).await {
        Ok(r) => r,
        Err(e) => {
            e.log();
            gone(&state, choose_lang(q.lang.as_deref(), None), e.status())
        }
    }
}

/// `GET /p/{token}/instructions`: the print-ready preparation letter.
pub async fn instructions(
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    Path(token): Path<String>,
    Query(q): Query<PatientQuery>,
    headers: HeaderMap,
) -> Response {
    letter(
        &state,
        &client,
        &token,
        &q,
        &headers,
        LetterKind::Instructions,
    )
    .await
}

/// `GET /p/{token}/discharge`: the after-care (discharge) instructions, available in advance.
pub async fn discharge(
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    Path(token): Path<String>,
    Query(q): Query<PatientQuery>,
    headers: HeaderMap,
) -> Response {
    letter(&state, &client, &token, &q, &headers, LetterKind::Discharge).await
}

async fn letter(
    state: &AppState,
    client: &str,
    token: &str,
    q: &PatientQuery,
    headers: &HeaderMap,
    kind: LetterKind,
) -> Response {
    let (link, _, actor) =
        match with_session(state, client, token, headers, q.lang.as_deref()).await {
            Ok(s) => s,
            Err(r) => return r,
        };
    let asked = q.lang.as_deref().and_then(Lang::parse);
    let lang = match asked {
        Some(l) => l,
        None => choose_lang(None, preferred_language(state, &link).await.as_deref()),
    };
    let page_name = if kind == LetterKind::Discharge {
        "discharge"
    } else {
        "instructions"
    };
    let composed = compose(
        state,
        &actor,
        link.case_id,
        kind,
        Some(lang),
        &LetterExtras::default(),
    )
    .await;
    audit(
        state,
        NewAuditEvent::new(
            &actor,
            "patient_view",
            "case",
            if composed.is_ok() {
                AuditOutcome::Success
            } else {
                AuditOutcome::Error
            },
        )
        .entity(link.case_id)
        .detail(format!("link={} page={page_name}", link.id)),
    )
    .await;
    let letter = match composed {
        Ok(l) => l,
        Err(e) => {
            e.log();
            let t = words(lang);
            let config = state.config();
            let phone = config.department_phone.clone();
            return page(
                &GonePage {
                    t,
                    department: config.department_name.clone(),
                    title: t.your_appointment.to_owned(),
                    message: t.instructions_missing.to_owned(),
                    phone,
                },
                StatusCode::CONFLICT,
                &[],
            );
        }
    };
    if kind == LetterKind::Instructions {
        // The whole print-ready letter, as staff print it.
        return crate::letters::letter_response(state, letter, false);
    }
    let config = state.config();
    page(
        &LetterPage {
            t: words(lang),
            department: config.department_name.clone(),
            phone: config.department_phone.clone(),
            token: token.to_owned(),
            title: letter.subject.clone(),
            body_html: letter.html_body,
        },
        StatusCode::OK,
        &[],
    )
}

/// Fields of the confirm / ask-to-cancel forms.
#[derive(Debug, Deserialize)]
pub struct RespondForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    lang: String,
}

/// `POST /p/{token}/respond`: "I will come" or "please cancel" (with an optional
/// reason), recorded on the case and its timeline for staff.
pub async fn respond(
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    Path(token): Path<String>,
    headers: HeaderMap,
    Form(form): Form<RespondForm>,
) -> Response {
    let lang = Lang::parse(form.lang.trim()).map(Lang::as_str);
    let (link, session, actor) = match with_form_session(
        &state,
        &client,
        &token,
        &headers,
        lang,
        &form.csrf,
        ("patient_response", "case"),
    )
    .await
    {
        Ok(s) => s,
        Err(r) => return r,
    };
    let kind = match form.kind.parse::<ResponseKind>() {
        Ok(k) => k,
        Err(e) => {
            return home(
                &state,
                &actor,
                &link,
                &token,
                &session.csrf_token,
                lang,
                Some((StatusCode::UNPROCESSABLE_ENTITY, e)),
            )
            .await;
        }
    };
    let reason = (kind == ResponseKind::CancelRequest).then_some(form.reason.as_str());
    match state
        .store()
        .record_patient_response(&link, &client, kind, reason, Timestamp::now())
        .await
    {
        Ok(_) => Redirect::to(&format!(
            "/p/{token}?done={}{}",
            kind.as_str(),
            lang.map_or_else(String::new, |l| format!("&lang={l}"))
        ))
        .into_response(),
        Err(e) => {
            // Said in the patient's words, not the store's.
            let t = words(choose_lang(lang, None));
            let message = match &e {
                irflow_store::StoreError::Conflict(_) => t.no_appointment.to_owned(),
                irflow_store::StoreError::Field { .. } => t.reason_too_long.to_owned(),
                _ => t
                    .gone_text
                    .replace("{phone}", &state.config().department_phone),
            };
            let e = AppError::from(e);
            e.log();
            home(
                &state,
                &actor,
                &link,
                &token,
                &session.csrf_token,
                lang,
                Some((e.status(), message)),
            )
            .await
        }
    }
}

/// Fields of the stop-reminders form.
#[derive(Debug, Deserialize)]
pub struct StopRemindersForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    lang: String,
}

/// `POST /p/{token}/reminders/stop`: the patient wants no more reminders. The same
/// opt-out staff record (every planned reminder of the patient cancelled, audited and
/// on the case's timeline), as the link's actor.
pub async fn stop_reminders(
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    Path(token): Path<String>,
    headers: HeaderMap,
    Form(form): Form<StopRemindersForm>,
) -> Response {
    let lang = Lang::parse(form.lang.trim()).map(Lang::as_str);
    let (link, session, actor) = match with_form_session(
        &state,
        &client,
        &token,
        &headers,
        lang,
        &form.csrf,
        ("update", "reminder_opt_out"),
    )
    .await
    {
        Ok(s) => s,
        Err(r) => return r,
    };
    let t = words(choose_lang(lang, None));
    let done = async {
        let already = state
            .store()
            .reminders_opt_out(&actor, link.case_id)
            .await?
            .is_some();
        if !already {
            crate::reminders::set_opt_out(&state, &actor, link.case_id, true).await?;
        }
        Ok::<_, AppError>(())
    }
    .await;
    match done {
        Ok(()) => Redirect::to(&format!(
            "/p/{token}{}#patient-reminders",
            lang.map_or_else(String::new, |l| format!("?lang={l}"))
        ))
        .into_response(),
        Err(e) => {
            let status = e.status();
            e.log();
            home(
                &state,
                &actor,
                &link,
                &token,
                &session.csrf_token,
                lang,
                Some((
                    status,
                    t.gone_text
                        .replace("{phone}", &state.config().department_phone),
                )),
            )
            .await
        }
    }
}

/// Fields of the sign-out form.
#[derive(Debug, Deserialize)]
pub struct SignOutForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    lang: String,
}

/// `POST /p/{token}/sign-out`: ends the patient's session (a shared computer).
pub async fn sign_out(
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    Path(token): Path<String>,
    headers: HeaderMap,
    Form(form): Form<SignOutForm>,
) -> Response {
    let lang = Lang::parse(form.lang.trim()).map(Lang::as_str);
    let (link, session, actor) = match with_session(&state, &client, &token, &headers, lang).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if !constant_time_eq(&session.csrf_token, &form.csrf) {
        return home(
            &state,
            &actor,
            &link,
            &token,
            &session.csrf_token,
            lang,
            None,
        )
        .await;
    }
    let secure = state.config().cookie_secure;
    if let Some(value) = read_cookie(&headers, session_cookie(secure))
        && let Err(e) = state
            .store()
            .delete_patient_session(&secret_hash(value))
            .await
    {
        tracing::error!(error = %e, "could not end a patient session");
    }
    audit(
        &state,
        NewAuditEvent::new(&actor, "patient_sign_out", "case", AuditOutcome::Success)
            .entity(link.case_id)
            .detail(format!("link={}", link.id)),
    )
    .await;
    let mut response = Redirect::to(&format!(
        "/p/{token}?done=signed_out{}",
        lang.map_or_else(String::new, |l| format!("&lang={l}"))
    ))
    .into_response();
    if let Ok(v) = HeaderValue::from_str(&set_cookie(session_cookie(secure), "", secure, 0)) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

/// `GET /static/patient.css`: the patient pages' stylesheet (large type, one column).
pub async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../static/patient.css"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_of_birth_are_parsed_strictly() {
        let today = Date::new(2026, 11, 26).unwrap_or_default();
        let form = |m: &str, d: &str, y: &str| DobForm {
            csrf: String::new(),
            month: m.to_owned(),
            day: d.to_owned(),
            year: y.to_owned(),
            lang: String::new(),
        };
        assert_eq!(
            parse_dob(&form("3", "14", "1958"), today),
            Date::new(1958, 3, 14).ok()
        );
        assert_eq!(parse_dob(&form("2", "30", "1958"), today), None);
        assert_eq!(parse_dob(&form("3", "14", "58"), today), None);
        assert_eq!(parse_dob(&form("13", "1", "1958"), today), None);
        assert_eq!(parse_dob(&form("1", "1", "2030"), today), None);
        assert_eq!(parse_dob(&form("", "", ""), today), None);
    }

    #[test]
    fn dates_read_naturally_in_both_languages() {
        let d = Date::new(2027, 3, 16).unwrap_or_default();
        assert_eq!(long_date(d, &EN), "Tuesday, March 16, 2027");
        assert_eq!(long_date(d, &ES), "martes, 16 de marzo de 2027");
        assert_eq!(choose_lang(Some("es"), Some("en")), Lang::Es);
        assert_eq!(choose_lang(None, Some("es-US")), Lang::Es);
        assert_eq!(choose_lang(None, Some("vi")), Lang::En);
        assert!(plausible_token(&new_secret("")));
        assert!(!plausible_token("../../etc/passwd"));
    }
}
