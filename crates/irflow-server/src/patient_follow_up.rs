//! The follow-up form behind the patient's link: once the follow-up is due (the
//! discharge date + `[letters] follow_up_days`), the patient's page asks three short
//! questions — pain now (0-10), relief since the injection (%), any problems — and
//! `POST /p/{token}/follow-up` records the answers. Answers without problems close
//! the case as followed up; a problem keeps it on the nurses' list for a call.
//! In English and Spanish, like the rest of the patient's pages.

use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use irflow_domain::procedure_record::FollowUpForm;
use irflow_domain::{Actor, CaseState};
use irflow_letters::Lang;
use irflow_store::{AuditOutcome, NewAuditEvent, PatientLinkRecord};
use jiff::Timestamp;
use serde::Deserialize;

use crate::AppState;
use crate::auth::constant_time_eq;
use crate::patient_pages::{audit, choose_lang, home, with_session};
use crate::session::ClientAddress;

/// What the follow-up form says, in one language.
#[derive(Debug)]
pub(crate) struct FollowUpWords {
    pub(crate) heading: &'static str,
    pub(crate) intro: &'static str,
    pub(crate) pain_now: &'static str,
    pub(crate) relief: &'static str,
    pub(crate) problems: &'static str,
    pub(crate) send: &'static str,
    pub(crate) thanks: &'static str,
    pub(crate) thanks_problems: &'static str,
    pub(crate) unwell: &'static str,
    invalid: &'static str,
    closed: &'static str,
}

const EN: FollowUpWords = FollowUpWords {
    heading: "How are you since your injection?",
    intro: "It is time for your follow-up. Please answer three short questions. A nurse reads every answer.",
    pain_now: "Your pain now, from 0 (no pain) to 10 (worst pain)",
    relief: "How much better is your pain since the injection, in percent? (0 = not better, 100 = gone)",
    problems: "Any problems since the injection? Leave this empty if none.",
    send: "Send my answers",
    thanks: "Thank you. We have your answers.",
    thanks_problems: "Thank you. A nurse will call you about the problem you told us.",
    unwell: "If you feel very unwell, do not wait for our call: phone us at {phone} or get care now.",
    invalid: "Please give your pain as a whole number from 0 to 10, and your relief as a number from 0 to 100.",
    closed: "Your follow-up is already done. Thank you.",
};

const ES: FollowUpWords = FollowUpWords {
    heading: "¿Cómo se siente desde la inyección?",
    intro: "Es momento de su seguimiento. Por favor conteste tres preguntas cortas. Una enfermera lee cada respuesta.",
    pain_now: "Su dolor ahora, de 0 (sin dolor) a 10 (el peor dolor)",
    relief: "¿Cuánto ha mejorado su dolor desde la inyección, en porcentaje? (0 = nada, 100 = ya no tiene dolor)",
    problems: "¿Ha tenido algún problema desde la inyección? Déjelo en blanco si no.",
    send: "Enviar mis respuestas",
    thanks: "Gracias. Recibimos sus respuestas.",
    thanks_problems: "Gracias. Una enfermera le llamará por el problema que nos contó.",
    unwell: "Si se siente muy mal, no espere nuestra llamada: llámenos al {phone} o busque atención ahora.",
    invalid: "Escriba su dolor como un número entero de 0 a 10 y su mejoría como un número de 0 a 100.",
    closed: "Su seguimiento ya está hecho. Gracias.",
};

fn words(lang: Lang) -> &'static FollowUpWords {
    match lang {
        Lang::Es => &ES,
        _ => &EN,
    }
}

/// The follow-up box on the patient's page.
#[derive(Debug)]
pub(crate) struct FollowUpPanel {
    pub(crate) w: &'static FollowUpWords,
    /// Show the form (due, and not answered yet).
    pub(crate) open: bool,
    /// What to say after an answer.
    pub(crate) done: Option<&'static str>,
    /// "If you feel very unwell..." with the phone number.
    pub(crate) unwell: String,
}

/// The box for this link's case, when the follow-up is due or answered; nothing
/// before (the status read is audited as the link's actor).
pub(crate) async fn panel(
    state: &AppState,
    actor: &Actor,
    link: &PatientLinkRecord,
    lang: Lang,
) -> Option<FollowUpPanel> {
    let status = match state
        .store()
        .follow_up_status(
            actor,
            link.case_id,
            state.time_zone(),
            state.config().follow_up_days,
        )
        .await
    {
        Ok(s) => s,
        Err(e) => {
            crate::AppError::from(e).log();
            return None;
        }
    };
    let w = words(lang);
    let unwell = w
        .unwell
        .replace("{phone}", &state.config().department_phone);
    let mine = status
        .answers
        .iter()
        .rev()
        .find(|a| a.recorded_by == actor.username);
    match (status.state, status.due_on, mine) {
        (_, _, Some(a)) => Some(FollowUpPanel {
            w,
            open: false,
            done: Some(if a.problems.is_some() && !a.closed_case {
                w.thanks_problems
            } else {
                w.thanks
            }),
            unwell,
        }),
        (CaseState::Discharged, Some(due), None) if state.today() >= due => Some(FollowUpPanel {
            w,
            open: true,
            done: None,
            unwell,
        }),
        _ => None,
    }
}

/// What the form posts.
#[derive(Debug, Deserialize)]
pub struct PatientFollowUpForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    lang: String,
    #[serde(default)]
    pain_now: String,
    #[serde(default)]
    relief_percent: String,
    #[serde(default)]
    problems: String,
}

/// `POST /p/{token}/follow-up`: the patient's answers.
pub async fn submit(
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    Path(token): Path<String>,
    headers: HeaderMap,
    Form(form): Form<PatientFollowUpForm>,
) -> Response {
    let lang = Lang::parse(form.lang.trim()).map(Lang::as_str);
    let (link, session, actor) = match with_session(&state, &client, &token, &headers, lang).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let w = words(choose_lang(lang, None));
    let back = |status: StatusCode, message: &str| {
        let message = message.to_owned();
        let state = state.clone();
        let actor = actor.clone();
        let link = link.clone();
        let token = token.clone();
        let csrf = session.csrf_token.clone();
        async move {
            home(
                &state,
                &actor,
                &link,
                &token,
                &csrf,
                lang,
                Some((status, message)),
            )
            .await
        }
    };
    if !constant_time_eq(&session.csrf_token, &form.csrf) {
        audit(
            &state,
            NewAuditEvent::new(&actor, "create", "follow_up", AuditOutcome::Denied)
                .entity(link.case_id)
                .detail(format!(
                    "link={} form without a valid anti-forgery token",
                    link.id
                )),
        )
        .await;
        return back(StatusCode::FORBIDDEN, w.invalid).await;
    }
    let answers = match (FollowUpForm {
        pain_now: form.pain_now,
        relief_percent: form.relief_percent,
        problems: form.problems,
    })
    .check()
    {
        Ok(a) => a,
        Err(_) => return back(StatusCode::UNPROCESSABLE_ENTITY, w.invalid).await,
    };
    match state
        .store()
        .record_patient_follow_up(
            &link,
            &client,
            &answers,
            state.time_zone(),
            state.config().follow_up_days,
            Timestamp::now(),
        )
        .await
    {
        Ok(_) => Redirect::to(&format!(
            "/p/{token}?done=follow_up{}",
            lang.map_or_else(String::new, |l| format!("&lang={l}"))
        ))
        .into_response(),
        Err(e) => {
            let e = crate::AppError::from(e);
            e.log();
            back(e.status(), w.closed).await
        }
    }
}
