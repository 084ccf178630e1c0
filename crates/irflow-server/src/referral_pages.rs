//! The referral pages: the order form (referrers online, schedulers on the phone),
//! the "received" page, amend-and-resubmit, the radiologist's vetting queue and
//! procedure change, patient-match review, and the admin's procedure catalogue.

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use irflow_domain::{
    BleedingRisk, CaseState, Channel, FieldError, FieldErrors, Modality, Procedure, ReferralForm,
    Role, Side, Urgency, UserId,
};
use irflow_store::{
    CaseFilter, NewReferral, PatientChoice, PatientMatch, ReferralSubject, StoreError,
};
use jiff::Timestamp;
use serde::Deserialize;

use crate::api::parse_case_id;
use crate::auth::constant_time_eq;
use crate::pages::{
    CaseFormError, ChangeProcedureFields, Chrome, case_error, error_page, forged, render, show_case,
};
use crate::session::SignedIn;
use crate::views::local_time;
use crate::{AppError, AppState};

/// Languages offered in the form (BCP 47 tag, name). Others can be typed by API/FHIR.
const LANGUAGES: &[(&str, &str)] = &[
    ("en", "English"),
    ("es", "Spanish"),
    ("pt", "Portuguese"),
    ("pt-BR", "Portuguese (Brazil)"),
    ("zh", "Chinese"),
    ("ht", "Haitian Creole"),
    ("vi", "Vietnamese"),
    ("ar", "Arabic"),
    ("ru", "Russian"),
    ("fr", "French"),
    ("ko", "Korean"),
];

/// Everything the referral form posts.
#[derive(Debug, Deserialize, Default, Clone)]
pub struct ReferralFields {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    referrer: String,
    #[serde(default)]
    family_name: String,
    #[serde(default)]
    given_name: String,
    #[serde(default)]
    date_of_birth: String,
    #[serde(default)]
    mrn: String,
    #[serde(default)]
    phone: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    preferred_language: String,
    #[serde(default)]
    procedure: String,
    #[serde(default)]
    levels: String,
    #[serde(default)]
    side: String,
    #[serde(default)]
    indication: String,
    #[serde(default)]
    icd10: String,
    #[serde(default)]
    urgency: String,
    #[serde(default)]
    imaging_modality: String,
    #[serde(default)]
    imaging_date: String,
    #[serde(default)]
    imaging_place: String,
    #[serde(default)]
    blood_thinners: String,
    #[serde(default)]
    clinical_notes: String,
    #[serde(default)]
    note: String,
}

impl ReferralFields {
    fn form(&self) -> ReferralForm {
        ReferralForm {
            family_name: self.family_name.clone(),
            given_name: self.given_name.clone(),
            date_of_birth: self.date_of_birth.clone(),
            mrn: self.mrn.clone(),
            phone: self.phone.clone(),
            email: self.email.clone(),
            preferred_language: self.preferred_language.clone(),
            procedure: self.procedure.clone(),
            levels: self.levels.clone(),
            side: self.side.clone(),
            indication: self.indication.clone(),
            icd10: self.icd10.clone(),
            urgency: self.urgency.clone(),
            imaging_modality: self.imaging_modality.clone(),
            imaging_date: self.imaging_date.clone(),
            imaging_place: self.imaging_place.clone(),
            blood_thinners: self.blood_thinners.clone(),
            clinical_notes: self.clinical_notes.clone(),
        }
    }
}

/// The order form, new or amending a returned referral.
#[derive(Template)]
#[template(path = "referral_form.html")]
struct ReferralPage {
    chrome: Chrome,
    heading: String,
    action: String,
    amend: Option<AmendInfo>,
    phone_referral: bool,
    referrers: Vec<(i64, String)>,
    v: ReferralFields,
    errors: FieldErrors,
    top_error: Option<String>,
    procedures: Vec<Procedure>,
    languages: &'static [(&'static str, &'static str)],
    sides: &'static [Side],
    urgencies: &'static [Urgency],
    today: String,
}

struct AmendInfo {
    patient: String,
    date_of_birth: String,
    returned_because: String,
}

impl ReferralPage {
    fn summary(&self) -> Vec<(String, String)> {
        self.errors
            .0
            .iter()
            .map(|e| (field_id(e.field), e.message.clone()))
            .collect()
    }
}

/// The id of a form field's input, for error links.
fn field_id(field: &str) -> String {
    match field {
        "patient" => "family_name".to_owned(),
        other => other.to_owned(),
    }
}

async fn referrer_directory(state: &AppState) -> Result<Vec<(i64, String)>, AppError> {
    Ok(state
        .store()
        .list_users()
        .await?
        .into_iter()
        .filter(|u| u.role == Role::Referrer && u.active)
        .map(|u| {
            let label = match &u.organization {
                Some(o) => format!("{} — {o}", u.display_name),
                None => u.display_name.clone(),
            };
            (u.id.get(), label)
        })
        .collect())
}

async fn new_referral_page(
    state: &AppState,
    who: &SignedIn,
    v: ReferralFields,
    errors: FieldErrors,
    top_error: Option<String>,
) -> Result<ReferralPage, AppError> {
    let phone_referral = who.user.role == Role::Scheduler;
    Ok(ReferralPage {
        chrome: Chrome::new(state, Some(who), "new-referral"),
        heading: if phone_referral {
            "Phone referral".to_owned()
        } else {
            "New referral".to_owned()
        },
        action: "/referrals".to_owned(),
        amend: None,
        phone_referral,
        referrers: if phone_referral {
            referrer_directory(state).await?
        } else {
            Vec::new()
        },
        v,
        errors,
        top_error,
        procedures: state
            .store()
            .procedures()
            .await?
            .into_iter()
            .filter(|p| p.active)
            .collect(),
        languages: LANGUAGES,
        sides: Side::ALL,
        urgencies: Urgency::ALL,
        today: state.today().to_string(),
    })
}

fn may_refer(who: &SignedIn) -> Result<(), AppError> {
    match who.user.role {
        Role::Referrer | Role::Scheduler => Ok(()),
        _ => Err(AppError::Forbidden(
            "referrals are entered by referring providers, or by schedulers taking a phone referral".to_owned(),
        )),
    }
}

/// `GET /referrals/new`.
pub async fn new_referral(State(state): State<AppState>, who: SignedIn) -> Response {
    if let Err(e) = may_refer(&who) {
        return error_page(&state, Some(&who), &e);
    }
    let v = ReferralFields {
        urgency: "routine".into(),
        preferred_language: "en".into(),
        ..Default::default()
    };
    match new_referral_page(&state, &who, v, FieldErrors::default(), None).await {
        Ok(page) => render(&page, StatusCode::OK),
        Err(e) => error_page(&state, Some(&who), &e),
    }
}

fn one_error(field: &'static str, message: String) -> FieldErrors {
    FieldErrors(vec![FieldError { field, message }])
}

/// `POST /referrals`: checks everything, shows every problem next to its field,
/// keeps what was typed; on success, the referral number and what happens next.
pub async fn submit_referral(
    State(state): State<AppState>,
    who: SignedIn,
    Form(v): Form<ReferralFields>,
) -> Response {
    if !constant_time_eq(&who.csrf, &v.csrf) {
        return error_page(&state, Some(&who), &forged());
    }
    if let Err(e) = may_refer(&who) {
        return error_page(&state, Some(&who), &e);
    }
    let refuse = |v: ReferralFields, errors: FieldErrors, top: Option<String>| {
        let state = state.clone();
        let who = who.clone();
        async move {
            match new_referral_page(&state, &who, v, errors, top).await {
                Ok(page) => render(&page, StatusCode::UNPROCESSABLE_ENTITY),
                Err(e) => error_page(&state, Some(&who), &e),
            }
        }
    };
    let mut errors = FieldErrors::default();
    let referrer = match who.user.role {
        Role::Scheduler => match v.referrer.trim().parse::<i64>() {
            Ok(id) => Some(UserId::new(id)),
            Err(_) => {
                errors.0.push(FieldError {
                    field: "referrer",
                    message: "choose the referring provider who called".to_owned(),
                });
                None
            }
        },
        _ => Some(who.user.id),
    };
    let catalogue = match state.store().procedures().await {
        Ok(c) => c,
        Err(e) => return error_page(&state, Some(&who), &e.into()),
    };
    let today = state.today();
    let form = v.form();
    let patient = form.patient(today).map_err(|e| errors.extend(e)).ok();
    let details = form
        .details(&catalogue, today)
        .map_err(|e| errors.extend(e))
        .ok();
    let (Some(referrer), Some(patient), Some(details), true) =
        (referrer, patient, details, errors.is_empty())
    else {
        return refuse(v, errors, None).await;
    };
    let channel = if who.user.role == Role::Scheduler {
        Channel::Phone
    } else {
        Channel::Online
    };
    let result = state
        .store()
        .submit_referral(
            &who.actor(),
            &NewReferral {
                subject: ReferralSubject::New(patient),
                referrer,
                details,
                channel,
            },
            Timestamp::now(),
        )
        .await;
    match result {
        Ok(receipt) => {
            let flag = if matches!(receipt.patient_match, PatientMatch::Ambiguous(_)) {
                "?check=patient"
            } else {
                ""
            };
            Redirect::to(&format!("/referrals/{}/received{flag}", receipt.case)).into_response()
        }
        Err(StoreError::Field { field, message }) => {
            refuse(v, one_error(field, message), None).await
        }
        Err(e @ StoreError::DuplicateCase { existing }) => {
            let msg = format!("{e}. Open /cases/{existing} to see it, or change the procedure.");
            refuse(v, FieldErrors::default(), Some(msg)).await
        }
        Err(e) => error_page(&state, Some(&who), &e.into()),
    }
}

#[derive(Template)]
#[template(path = "referral_received.html")]
struct ReceivedPage {
    chrome: Chrome,
    case_id: i64,
    referral_number: String,
    patient: String,
    procedure: String,
    received: String,
    patient_check: bool,
    is_referrer: bool,
}

/// Query of the received page.
#[derive(Debug, Deserialize)]
pub struct ReceivedQuery {
    check: Option<String>,
}

/// `GET /referrals/{id}/received`.
pub async fn referral_received(
    State(state): State<AppState>,
    who: SignedIn,
    Path(id): Path<String>,
    axum::extract::Query(q): axum::extract::Query<ReceivedQuery>,
) -> Response {
    let id = match parse_case_id(&id) {
        Ok(id) => id,
        Err(e) => return error_page(&state, Some(&who), &e),
    };
    let d = match state.store().case_detail(&who.actor(), id).await {
        Ok(d) => d,
        Err(e) => return error_page(&state, Some(&who), &case_error(e)),
    };
    let c = &d.case;
    let page = ReceivedPage {
        chrome: Chrome::new(&state, Some(&who), "new-referral"),
        case_id: c.id.get(),
        referral_number: irflow_fhir::referral_number(c.id.get()),
        patient: format!("{} (born {})", c.patient_name(), c.date_of_birth),
        procedure: crate::views::order_summary(c),
        received: local_time(c.created_at, state.time_zone()),
        patient_check: q.check.is_some() || c.needs_patient_review,
        is_referrer: who.user.role == Role::Referrer,
    };
    render(&page, StatusCode::OK)
}

fn fields_from_case(d: &irflow_store::CaseDetail) -> ReferralFields {
    let c = &d.case;
    let r = &d.referral;
    ReferralFields {
        procedure: c.procedure_code.clone(),
        levels: c.levels.clone().unwrap_or_default(),
        side: c.side.map(|s| s.as_str().to_owned()).unwrap_or_default(),
        indication: r.indication.clone().unwrap_or_default(),
        icd10: r.icd10.clone().unwrap_or_default(),
        urgency: c.urgency.as_str().to_owned(),
        imaging_modality: r
            .prior_imaging
            .as_ref()
            .map(|p| p.modality.as_str().to_owned())
            .unwrap_or_default(),
        imaging_date: r
            .prior_imaging
            .as_ref()
            .and_then(|p| p.date)
            .map(|d| d.to_string())
            .unwrap_or_default(),
        imaging_place: r
            .prior_imaging
            .as_ref()
            .and_then(|p| p.place.clone())
            .unwrap_or_default(),
        blood_thinners: r.blood_thinners.clone().unwrap_or_default(),
        clinical_notes: r.clinical_notes.clone().unwrap_or_default(),
        ..ReferralFields::default()
    }
}

async fn amend_page(
    state: &AppState,
    who: &SignedIn,
    d: &irflow_store::CaseDetail,
    v: ReferralFields,
    errors: FieldErrors,
    top_error: Option<String>,
) -> Result<ReferralPage, AppError> {
    let returned_because = d
        .timeline
        .iter()
        .rev()
        .find(|t| t.action == "return")
        .map(|t| {
            let label = t
                .reason_code
                .as_deref()
                .and_then(|r| r.parse::<irflow_domain::ReturnReason>().ok())
                .map(|r| format!("{}: ", r.label()))
                .unwrap_or_default();
            format!("{label}{}", t.reason.clone().unwrap_or_default())
        })
        .unwrap_or_default();
    Ok(ReferralPage {
        chrome: Chrome::new(state, Some(who), "cases"),
        heading: format!(
            "Amend referral {}",
            irflow_fhir::referral_number(d.case.id.get())
        ),
        action: format!("/cases/{}/amend", d.case.id),
        amend: Some(AmendInfo {
            patient: d.case.patient_name(),
            date_of_birth: d.case.date_of_birth.to_string(),
            returned_because,
        }),
        phone_referral: false,
        referrers: Vec::new(),
        v,
        errors,
        top_error,
        procedures: state
            .store()
            .procedures()
            .await?
            .into_iter()
            .filter(|p| p.active)
            .collect(),
        languages: LANGUAGES,
        sides: Side::ALL,
        urgencies: Urgency::ALL,
        today: state.today().to_string(),
    })
}

async fn returned_case(
    state: &AppState,
    who: &SignedIn,
    raw: &str,
) -> Result<irflow_store::CaseDetail, AppError> {
    let id = parse_case_id(raw)?;
    if !matches!(who.user.role, Role::Referrer | Role::Scheduler) {
        return Err(AppError::Forbidden(
            "returned referrals are amended by the referrer, or a scheduler for them".to_owned(),
        ));
    }
    let d = state
        .store()
        .case_detail(&who.actor(), id)
        .await
        .map_err(case_error)?;
    if d.case.state != CaseState::Returned {
        return Err(AppError::Conflict(format!(
            "only a returned referral can be amended; this one is {}",
            d.case.state.label().to_lowercase()
        )));
    }
    Ok(d)
}

/// `GET /cases/{id}/amend`.
pub async fn amend_form(
    State(state): State<AppState>,
    who: SignedIn,
    Path(id): Path<String>,
) -> Response {
    let d = match returned_case(&state, &who, &id).await {
        Ok(d) => d,
        Err(e) => return error_page(&state, Some(&who), &e),
    };
    match amend_page(
        &state,
        &who,
        &d,
        fields_from_case(&d),
        FieldErrors::default(),
        None,
    )
    .await
    {
        Ok(page) => render(&page, StatusCode::OK),
        Err(e) => error_page(&state, Some(&who), &e),
    }
}

/// `POST /cases/{id}/amend`: amends the order and resubmits it for vetting.
pub async fn amend_submit(
    State(state): State<AppState>,
    who: SignedIn,
    Path(id): Path<String>,
    Form(v): Form<ReferralFields>,
) -> Response {
    if !constant_time_eq(&who.csrf, &v.csrf) {
        return error_page(&state, Some(&who), &forged());
    }
    let d = match returned_case(&state, &who, &id).await {
        Ok(d) => d,
        Err(e) => return error_page(&state, Some(&who), &e),
    };
    let catalogue = match state.store().procedures().await {
        Ok(c) => c,
        Err(e) => return error_page(&state, Some(&who), &e.into()),
    };
    let details = match v.form().details(&catalogue, state.today()) {
        Ok(details) => details,
        Err(errors) => {
            return match amend_page(&state, &who, &d, v, errors, None).await {
                Ok(page) => render(&page, StatusCode::UNPROCESSABLE_ENTITY),
                Err(e) => error_page(&state, Some(&who), &e),
            };
        }
    };
    let note = Some(v.note.trim().to_owned()).filter(|n| !n.is_empty());
    match state
        .store()
        .resubmit_referral(
            &who.actor(),
            d.case.id,
            &details,
            note,
            Timestamp::now(),
            state.today(),
        )
        .await
    {
        Ok(()) => Redirect::to(&format!("/cases/{}?done=resubmit", d.case.id)).into_response(),
        Err(StoreError::Field { field, message }) => {
            match amend_page(&state, &who, &d, v, one_error(field, message), None).await {
                Ok(page) => render(&page, StatusCode::UNPROCESSABLE_ENTITY),
                Err(e) => error_page(&state, Some(&who), &e),
            }
        }
        Err(e) => error_page(&state, Some(&who), &case_error(e)),
    }
}

/// `POST /cases/{id}/procedure`: a radiologist changes the ordered procedure.
pub async fn change_procedure(
    State(state): State<AppState>,
    who: SignedIn,
    Path(id): Path<String>,
    Form(f): Form<ChangeProcedureFields>,
) -> Response {
    if !constant_time_eq(&who.csrf, &f.csrf) {
        return error_page(&state, Some(&who), &forged());
    }
    let id = match parse_case_id(&id) {
        Ok(id) => id,
        Err(e) => return error_page(&state, Some(&who), &e),
    };
    let d = match state.store().case_detail(&who.actor(), id).await {
        Ok(d) => d,
        Err(e) => return error_page(&state, Some(&who), &case_error(e)),
    };
    let catalogue = match state.store().procedures().await {
        Ok(c) => c,
        Err(e) => return error_page(&state, Some(&who), &e.into()),
    };
    let mut fields = fields_from_case(&d);
    fields.procedure = f.procedure.as_str().to_owned();
    fields.levels = f.levels.as_str().to_owned();
    fields.side = f.side.as_str().to_owned();
    let mut errors = FieldErrors::default();
    if f.reason.as_str().trim().is_empty() {
        errors.0.push(FieldError {
            field: "reason",
            message: "say why the procedure changes".to_owned(),
        });
    }
    let details = fields
        .form()
        .details(&catalogue, state.today())
        .map_err(|e| errors.extend(e))
        .ok();
    let refuse = |errors: FieldErrors, message: Option<String>, status: StatusCode| {
        let (state, who, f) = (state.clone(), who.clone(), f.clone());
        async move {
            show_case(
                &state,
                &who,
                id,
                None,
                Some(CaseFormError::ChangeProcedure {
                    form: f,
                    errors,
                    message,
                }),
                status,
            )
            .await
        }
    };
    let (Some(details), true) = (details, errors.is_empty()) else {
        return refuse(errors, None, StatusCode::UNPROCESSABLE_ENTITY).await;
    };
    match state
        .store()
        .change_procedure(
            &who.actor(),
            id,
            &details,
            f.reason.as_str(),
            Timestamp::now(),
        )
        .await
    {
        Ok(()) => Redirect::to(&format!("/cases/{id}?done=change_procedure")).into_response(),
        Err(StoreError::Field { field, message }) => {
            refuse(
                one_error(field, message),
                None,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
        Err(e @ (StoreError::Conflict(_) | StoreError::Denied(_))) => {
            let e = AppError::from(e);
            refuse(FieldErrors::default(), Some(e.public_message()), e.status()).await
        }
        Err(e) => error_page(&state, Some(&who), &case_error(e)),
    }
}

/// What the patient-match form posts.
#[derive(Debug, Deserialize)]
pub struct PatientMatchForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    choice: String,
}

/// `POST /cases/{id}/patient-match`: staff decide a doubtful patient match.
pub async fn patient_match(
    State(state): State<AppState>,
    who: SignedIn,
    Path(id): Path<String>,
    Form(f): Form<PatientMatchForm>,
) -> Response {
    if !constant_time_eq(&who.csrf, &f.csrf) {
        return error_page(&state, Some(&who), &forged());
    }
    let id = match parse_case_id(&id) {
        Ok(id) => id,
        Err(e) => return error_page(&state, Some(&who), &e),
    };
    let choice = match f.choice.as_str() {
        "separate" => PatientChoice::Separate,
        raw => match raw.parse::<i64>() {
            Ok(p) => PatientChoice::SameAs(irflow_domain::PatientId::new(p)),
            Err(_) => {
                return error_page(
                    &state,
                    Some(&who),
                    &AppError::BadRequest("choose a patient or \"different person\"".to_owned()),
                );
            }
        },
    };
    match state
        .store()
        .resolve_patient_review(&who.actor(), id, choice, Timestamp::now())
        .await
    {
        Ok(()) => Redirect::to(&format!("/cases/{id}?done=patient_match")).into_response(),
        Err(StoreError::NotFound) => {
            error_page(&state, Some(&who), &case_error(StoreError::NotFound))
        }
        Err(e) => {
            let e = AppError::from(e);
            show_case(
                &state,
                &who,
                id,
                None,
                Some(CaseFormError::PatientMatch(e.public_message())),
                e.status(),
            )
            .await
        }
    }
}

struct QueueRow {
    id: i64,
    number: String,
    patient: String,
    procedure: String,
    urgency: Urgency,
    referrer: String,
    received: String,
    waiting_days: i64,
    needs_patient_review: bool,
}

#[derive(Template)]
#[template(path = "vetting.html")]
struct VettingPage {
    chrome: Chrome,
    rows: Vec<QueueRow>,
    reviews: Vec<ReviewRow>,
}

struct ReviewRow {
    id: i64,
    patient: String,
    procedure: String,
    what: String,
}

/// `GET /vetting`: referrals waiting for a radiologist, most urgent and oldest first.
pub async fn vetting_queue(State(state): State<AppState>, who: SignedIn) -> Response {
    if !matches!(who.user.role, Role::Radiologist | Role::Admin) {
        return error_page(
            &state,
            Some(&who),
            &AppError::Forbidden("the vetting queue is for radiologists".to_owned()),
        );
    }
    let mut cases = match state
        .store()
        .list_cases(
            &who.actor(),
            &CaseFilter {
                limit: Some(1000),
                ..CaseFilter::in_state(CaseState::Referred)
            },
        )
        .await
    {
        Ok(c) => c,
        Err(e) => return error_page(&state, Some(&who), &e.into()),
    };
    let rank = |u: Urgency| match u {
        Urgency::Asap => 0,
        Urgency::Urgent => 1,
        Urgency::Routine => 2,
    };
    cases.sort_by_key(|c| (rank(c.urgency), c.created_at));
    let now = Timestamp::now();
    let rows = cases
        .iter()
        .map(|c| QueueRow {
            id: c.id.get(),
            number: irflow_fhir::referral_number(c.id.get()),
            patient: c.patient_name(),
            procedure: crate::views::order_summary(c),
            urgency: c.urgency,
            referrer: match &c.referrer_organization {
                Some(o) => format!("{} ({o})", c.referrer_name),
                None => c.referrer_name.clone(),
            },
            received: local_time(c.created_at, state.time_zone()),
            waiting_days: (now - c.created_at).as_secs() / 86_400,
            needs_patient_review: c.needs_patient_review,
        })
        .collect();
    let reviews = match state
        .store()
        .cases_with_open_actions(
            &who.actor(),
            irflow_domain::screening::ActionKind::RadiologistReview,
        )
        .await
    {
        Ok(r) => r
            .into_iter()
            .map(|(c, what)| ReviewRow {
                id: c.id.get(),
                patient: c.patient_name(),
                procedure: crate::views::order_summary(&c),
                what: what.join("; "),
            })
            .collect(),
        Err(e) => return error_page(&state, Some(&who), &e.into()),
    };
    render(
        &VettingPage {
            chrome: Chrome::new(&state, Some(&who), "vetting"),
            rows,
            reviews,
        },
        StatusCode::OK,
    )
}

#[derive(Template)]
#[template(path = "procedures.html")]
struct ProceduresPage {
    chrome: Chrome,
    procedures: Vec<Procedure>,
    done: Option<String>,
}

#[derive(Template)]
#[template(path = "procedure_edit.html")]
struct ProcedureEditPage {
    chrome: Chrome,
    p: Procedure,
    error: Option<String>,
    modalities: [Modality; 2],
    risks: [BleedingRisk; 3],
}

fn admin_only(who: &SignedIn) -> Result<(), AppError> {
    if who.user.role == Role::Admin {
        Ok(())
    } else {
        Err(AppError::Forbidden(
            "only administrators edit the procedure catalogue".to_owned(),
        ))
    }
}

/// Query of the catalogue page.
#[derive(Debug, Deserialize)]
pub struct ProceduresQuery {
    done: Option<String>,
}

/// `GET /admin/procedures`.
pub async fn procedures_page(
    State(state): State<AppState>,
    who: SignedIn,
    axum::extract::Query(q): axum::extract::Query<ProceduresQuery>,
) -> Response {
    if let Err(e) = admin_only(&who) {
        return error_page(&state, Some(&who), &e);
    }
    match state.store().procedures().await {
        Ok(procedures) => render(
            &ProceduresPage {
                chrome: Chrome::new(&state, Some(&who), "procedures"),
                procedures,
                done: q.done.map(|code| format!("Saved {code}.")),
            },
            StatusCode::OK,
        ),
        Err(e) => error_page(&state, Some(&who), &e.into()),
    }
}

async fn find_procedure(state: &AppState, code: &str) -> Result<Procedure, AppError> {
    state
        .store()
        .procedures()
        .await?
        .into_iter()
        .find(|p| p.code == code)
        .ok_or_else(|| AppError::NotFound(format!("no procedure {code} in the catalogue")))
}

/// `GET /admin/procedures/{code}`.
pub async fn procedure_form(
    State(state): State<AppState>,
    who: SignedIn,
    Path(code): Path<String>,
) -> Response {
    if let Err(e) = admin_only(&who) {
        return error_page(&state, Some(&who), &e);
    }
    match find_procedure(&state, &code).await {
        Ok(p) => render(
            &ProcedureEditPage {
                chrome: Chrome::new(&state, Some(&who), "procedures"),
                p,
                error: None,
                modalities: Modality::ALL,
                risks: BleedingRisk::ALL,
            },
            StatusCode::OK,
        ),
        Err(e) => error_page(&state, Some(&who), &e),
    }
}

/// What the catalogue edit form posts (checkboxes repeat, so read the raw pairs).
pub async fn procedure_submit(
    State(state): State<AppState>,
    who: SignedIn,
    Path(code): Path<String>,
    body: String,
) -> Response {
    let pairs: Vec<(String, String)> = crate::views::form_pairs(&body);
    let get = |k: &str| {
        pairs
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    if !constant_time_eq(&who.csrf, &get("csrf")) {
        return error_page(&state, Some(&who), &forged());
    }
    if let Err(e) = admin_only(&who) {
        return error_page(&state, Some(&who), &e);
    }
    let mut p = match find_procedure(&state, &code).await {
        Ok(p) => p,
        Err(e) => return error_page(&state, Some(&who), &e),
    };
    p.name = get("name");
    p.patient_name = get("patient_name");
    p.modalities = pairs
        .iter()
        .filter(|(k, _)| k == "modality")
        .filter_map(|(_, v)| v.parse().ok())
        .collect();
    p.risk_source = get("risk_source");
    p.active = get("active") == "on";
    let mut problems = Vec::new();
    match get("duration_minutes").trim().parse::<u16>() {
        Ok(d) => p.duration_minutes = d,
        Err(_) => problems.push("duration must be a whole number of minutes".to_owned()),
    }
    match (get("risk_asra").parse(), get("risk_sir").parse()) {
        (Ok(a), Ok(s)) => {
            p.risk_asra = a;
            p.risk_sir = s;
        }
        _ => problems.push("choose both bleeding-risk classes".to_owned()),
    }
    let result = if problems.is_empty() {
        state
            .store()
            .update_procedure(&who.actor(), &p)
            .await
            .map_err(AppError::from)
    } else {
        Err(AppError::Invalid(problems.join("; ")))
    };
    match result {
        Ok(()) => Redirect::to(&format!("/admin/procedures?done={code}")).into_response(),
        Err(e @ (AppError::Invalid(_) | AppError::Field { .. })) => render(
            &ProcedureEditPage {
                chrome: Chrome::new(&state, Some(&who), "procedures"),
                p,
                error: Some(e.public_message()),
                modalities: Modality::ALL,
                risks: BleedingRisk::ALL,
            },
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        Err(e) => error_page(&state, Some(&who), &e),
    }
}
