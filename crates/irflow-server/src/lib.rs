//! irflow's HTTP edge: the staff and referrer pages (askama + htmx), the JSON API
//! under `/api/v1`, sign-in and sessions, role checks, health and metrics.
//!
//! The app is a library with one seam, [`serve`], that takes an already-bound
//! listener, so tests run the real app on port 0.

mod api;
pub mod auth;
mod booking_pages;
mod calendar_pages;
mod day_pages;
pub mod dicom_scp;
mod error;
mod fhir;
mod fhir_imaging;
mod fhir_procedure;
mod fhir_scheduling;
mod follow_up_pages;
mod ics;
pub mod imaging;
mod imaging_pages;
mod imaging_view;
mod letters;
mod observe;
mod pages;
mod patient_follow_up;
mod patient_links;
mod patient_pages;
mod procedure_day;
mod procedure_record_pages;
mod procedure_report;
mod referral_pages;
mod reminders;
mod resource_pages;
mod scheduling_api;
pub mod screening_json;
mod screening_pages;
mod session;
mod views;
mod waitlist;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use irflow_store::Store;
use jiff::tz::TimeZone;

pub use error::AppError;
pub use observe::init_metrics;
pub use procedure_day::send_discharge_instructions;
pub use procedure_record_pages::send_procedure_report;
pub use reminders::plan_reminders_for_booked_cases;

/// Settings the HTTP edge needs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The department's name, shown in the header.
    pub department_name: String,
    /// The department's phone number, shown to users.
    pub department_phone: String,
    /// The department's address, on one line (patient letters).
    pub department_address: String,
    /// A directory of letter templates (`en/`, `es/`); `None`: the built-in ones.
    pub letters_dir: Option<std::path::PathBuf>,
    /// Days after the procedure when the follow-up call comes (patient letters).
    pub follow_up_days: u32,
    /// The site's IANA time zone name (times are shown in it).
    pub time_zone_name: String,
    /// Mark cookies `Secure` (and use the `__Host-` prefix). Off only for plain-HTTP loopback.
    pub cookie_secure: bool,
    /// Minutes of inactivity that end a session.
    pub session_idle_minutes: i64,
    /// Hours after which a session ends regardless.
    pub session_max_hours: i64,
    /// Failed sign-ins per username in 15 minutes before further attempts are refused.
    pub login_failures_per_user: i64,
    /// Failed sign-ins per client address in 15 minutes before further attempts are refused.
    pub login_failures_per_client: i64,
    /// The URL clients reach irflow at (for FHIR `Location` and links); default: the request's host over http.
    pub public_base_url: Option<String>,
    /// The identifier system of the hospital's MRNs in FHIR resources.
    pub mrn_system: String,
    /// Minutes before the start that patients are asked to arrive.
    pub arrive_minutes_before: i64,
    /// The least notice a booking gives, in minutes.
    pub min_notice_minutes: i64,
    /// Local hours in which no reminder is sent (default 20:00-08:00).
    pub reminder_quiet_hours: irflow_domain::reminders::QuietHours,
    /// Days a patient link keeps working after the appointment (or after it is made).
    pub patient_link_days: i64,
    /// Minutes of inactivity that end a patient's session (opened from their link).
    pub patient_session_idle_minutes: i64,
    /// Where original DICOM files are kept (default here: in memory; `irflow serve`: `<data_dir>/images`).
    pub image_store: imaging::ImageStoreConfig,
    /// Limits on one upload or import (size, file count, zip nesting, compression ratio).
    pub imaging_limits: irflow_dicom::Limits,
    /// Prior imaging older than this many months is flagged as out of date.
    pub imaging_max_age_months: u32,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            department_name: "Spine Injection Service".to_owned(),
            department_phone: "617-726-6773".to_owned(),
            department_address: DEFAULT_DEPARTMENT_ADDRESS.to_owned(),
            letters_dir: None,
            follow_up_days: letters::FOLLOW_UP_DAYS,
            time_zone_name: "America/New_York".to_owned(),
            cookie_secure: true,
            session_idle_minutes: 30,
            session_max_hours: 12,
            login_failures_per_user: 5,
            login_failures_per_client: 20,
            public_base_url: None,
            mrn_system: irflow_fhir::DEFAULT_MRN_SYSTEM.to_owned(),
            arrive_minutes_before: scheduling_api::ARRIVE_MINUTES_BEFORE,
            min_notice_minutes: scheduling_api::MIN_NOTICE_MINUTES,
            reminder_quiet_hours: irflow_domain::reminders::QuietHours::default(),
            patient_link_days: patient_links::PATIENT_LINK_DAYS,
            patient_session_idle_minutes: patient_links::PATIENT_SESSION_IDLE_MINUTES,
            image_store: imaging::ImageStoreConfig::default(),
            imaging_limits: irflow_dicom::Limits::default(),
            imaging_max_age_months: irflow_domain::imaging::DEFAULT_MAX_AGE_MONTHS,
        }
    }
}

/// The default department address in letters (the reference department's radiology).
pub const DEFAULT_DEPARTMENT_ADDRESS: &str =
    "Department of Radiology, 55 Fruit Street, Boston, MA 02114";

/// Shared state for handlers. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    config: ServerConfig,
    time_zone: TimeZone,
    rules: irflow_domain::screening::RulePack,
    letters: irflow_letters::Templates,
    images: imaging::ImageStore,
    imaging_views: imaging_view::ImagingViews,
    upload_slots: imaging_pages::UploadSlots,
}

impl AppState {
    /// Builds the state; fails if the configured time zone is unknown or a letter
    /// template is missing or broken (the message names the file and line).
    pub fn new(
        store: Store,
        config: ServerConfig,
        rules: irflow_domain::screening::RulePack,
    ) -> Result<Self, String> {
        let time_zone = TimeZone::get(&config.time_zone_name).map_err(|e| {
            format!(
                "time zone {:?} is not a known IANA zone (e.g. America/New_York): {e}",
                config.time_zone_name
            )
        })?;
        let letters = match &config.letters_dir {
            Some(dir) => irflow_letters::Templates::load_dir(dir).map_err(|e| {
                format!("{e}; fix the template or drop letters.dir / IRFLOW_LETTERS_DIR")
            })?,
            None => irflow_letters::Templates::builtin()
                .map_err(|e| format!("the built-in letter templates are broken: {e}"))?,
        };
        let images = imaging::ImageStore::open(&config.image_store)?;
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                config,
                time_zone,
                rules,
                letters,
                images,
                imaging_views: imaging_view::ImagingViews::default(),
                upload_slots: imaging_pages::UploadSlots::default(),
            }),
        })
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The settings.
    pub fn config(&self) -> &ServerConfig {
        &self.inner.config
    }

    /// The screening rule pack in force.
    pub fn rules(&self) -> &irflow_domain::screening::RulePack {
        &self.inner.rules
    }

    /// The patient-letter templates in force.
    pub fn letters(&self) -> &irflow_letters::Templates {
        &self.inner.letters
    }

    /// The image store (original DICOM files).
    pub fn images(&self) -> &imaging::ImageStore {
        &self.inner.images
    }

    /// View grants and rendered PNGs of outside imaging.
    pub(crate) fn imaging_views(&self) -> &imaging_view::ImagingViews {
        &self.inner.imaging_views
    }

    /// The uploads of outside imaging that may be received at once.
    pub(crate) fn upload_slots(&self) -> &imaging_pages::UploadSlots {
        &self.inner.upload_slots
    }

    /// The site's time zone.
    pub fn time_zone(&self) -> &TimeZone {
        &self.inner.time_zone
    }

    /// Today's date at the site.
    pub fn today(&self) -> jiff::civil::Date {
        jiff::Timestamp::now()
            .to_zoned_datetime(self.time_zone().clone())
            .date()
    }
}

/// Every route. Each handler checks its own role requirement on the server.
pub fn router(state: AppState) -> Router {
    let pages = Router::new()
        .route("/", get(pages::home))
        .route("/login", get(pages::login_form).post(pages::login_submit))
        .route("/logout", post(pages::logout))
        .route("/cases", get(pages::worklist))
        .route("/cases/{id}", get(pages::case_page))
        .route("/cases/{id}/transitions", post(pages::case_transition))
        .route("/referrals/new", get(referral_pages::new_referral))
        .route("/referrals", post(referral_pages::submit_referral))
        .route(
            "/referrals/{id}/received",
            get(referral_pages::referral_received),
        )
        .route(
            "/cases/{id}/amend",
            get(referral_pages::amend_form).post(referral_pages::amend_submit),
        )
        .route(
            "/cases/{id}/procedure",
            post(referral_pages::change_procedure),
        )
        .route(
            "/cases/{id}/patient-match",
            post(referral_pages::patient_match),
        )
        .route("/vetting", get(referral_pages::vetting_queue))
        .route(
            "/cases/{id}/screening",
            get(screening_pages::screening_form).post(screening_pages::screening_submit),
        )
        .route(
            "/cases/{id}/screening/preview",
            post(screening_pages::screening_preview),
        )
        .route(
            "/cases/{id}/screening/summary",
            get(screening_pages::screening_summary),
        )
        .route(
            "/cases/{id}/actions/{action_id}",
            post(screening_pages::complete_action),
        )
        .route(
            "/cases/{id}/patient-link",
            get(patient_links::page).post(patient_links::send),
        )
        .route(
            "/cases/{id}/patient-link/revoke",
            post(patient_links::revoke),
        )
        .route(
            "/cases/{id}/appointment.ics",
            get(ics::page_appointment_ics),
        )
        .route("/cases/{id}/instructions", get(letters::page_instructions))
        .route(
            "/cases/{id}/discharge-instructions",
            get(letters::page_discharge),
        )
        .route("/cases/{id}/messages", get(reminders::page))
        .route(
            "/cases/{id}/reminders/opt-out",
            post(reminders::opt_out_form),
        )
        .route("/cases/{id}/book", post(booking_pages::book))
        .route("/cases/{id}/move", post(booking_pages::move_booking))
        .route("/cases/{id}/waitlist", post(booking_pages::waitlist))
        .route("/cases/{id}/preferences", post(booking_pages::preferences))
        .route("/cases/{id}/plan", post(booking_pages::plan))
        .route("/waitlist", get(waitlist::page))
        .route("/waitlist/take", post(waitlist::take))
        .route(
            "/cases/{id}/cancel-appointment",
            post(booking_pages::cancel),
        )
        .route("/calendar", get(calendar_pages::calendar))
        .route("/calendar/check-in/{id}", post(calendar_pages::check_in))
        .route("/calendar/no-show/{id}", post(calendar_pages::no_show))
        .route("/admin/procedures", get(referral_pages::procedures_page))
        .route(
            "/admin/procedures/{code}",
            get(referral_pages::procedure_form).post(referral_pages::procedure_submit),
        )
        .route("/admin/audit", get(pages::audit_page))
        .route("/admin/users", get(pages::users_page))
        .route("/static/{file}", get(pages::static_file));
    let api = Router::new()
        .route("/api/v1/openapi.json", get(api::openapi))
        .route("/api/v1/me", get(api::me))
        .route("/api/v1/cases", get(api::list_cases))
        .route("/api/v1/cases/{id}", get(api::get_case))
        .route("/api/v1/cases/{id}/transitions", post(api::transition_case))
        .route("/api/v1/cases/{id}/triage", post(api::triage_case))
        .route(
            "/api/v1/cases/{id}/screening",
            get(api::get_screening).post(api::post_screening),
        )
        .route("/api/v1/cases/{id}/slots", get(scheduling_api::slots))
        .route("/api/v1/cases/{id}/messages", get(reminders::api_messages))
        .route(
            "/api/v1/cases/{id}/reminders/opt-out",
            get(reminders::api_get_opt_out)
                .put(reminders::api_put_opt_out)
                .post(reminders::api_post_opt_out)
                .delete(reminders::api_delete_opt_out),
        )
        .route(
            "/api/v1/cases/{id}/instructions",
            get(letters::api_instructions),
        )
        .route(
            "/api/v1/cases/{id}/discharge-instructions",
            get(letters::api_discharge),
        )
        .route(
            "/api/v1/cases/{id}/appointment.ics",
            get(ics::api_appointment_ics),
        )
        .route(
            "/api/v1/cases/{id}/patient-link",
            get(patient_links::api_list)
                .post(patient_links::api_create)
                .delete(patient_links::api_revoke),
        )
        .route(
            "/api/v1/cases/{id}/patient-responses",
            get(patient_links::api_responses),
        )
        .route(
            "/api/v1/cases/{id}/appointment",
            get(scheduling_api::get)
                .post(scheduling_api::book)
                .put(scheduling_api::reschedule)
                .delete(scheduling_api::cancel),
        )
        .route(
            "/api/v1/cases/{id}/preferences",
            get(scheduling_api::get_preferences).put(scheduling_api::put_preferences),
        )
        .route(
            "/api/v1/cases/{id}/plan",
            get(scheduling_api::get_plan).put(scheduling_api::put_plan),
        )
        .route(
            "/api/v1/cases/{id}/waitlist",
            post(waitlist::api_add).delete(waitlist::api_remove),
        )
        .route("/api/v1/cases/{id}/waitlist/take", post(waitlist::api_take))
        .route("/api/v1/waitlist", get(waitlist::api_list))
        .route(
            "/api/v1/cases/{id}/screening/for-date",
            get(api::screening_for_date),
        )
        .route(
            "/api/v1/cases/{id}/actions/{action_id}",
            post(api::complete_action),
        )
        .route(
            "/api/v1/appointments",
            get(calendar_pages::appointments_api),
        )
        .route("/api/v1/audit", get(api::list_audit))
        .route("/api/v1/{*rest}", axum::routing::any(api::no_such_route));
    let fhir = Router::new()
        .route("/fhir/r4/metadata", get(fhir::metadata))
        .route(
            "/fhir/r4/ServiceRequest",
            get(fhir::search_service_requests).post(fhir::create_service_request),
        )
        .route(
            "/fhir/r4/ServiceRequest/{id}",
            get(fhir::read_service_request),
        )
        .route("/fhir/r4/Patient/{id}", get(fhir::read_patient))
        .route("/fhir/r4/Practitioner/{id}", get(fhir::read_practitioner))
        .route("/fhir/r4/Questionnaire/{id}", get(fhir::read_questionnaire))
        .route(
            "/fhir/r4/QuestionnaireResponse",
            get(fhir::search_questionnaire_responses),
        )
        .route(
            "/fhir/r4/QuestionnaireResponse/{id}",
            get(fhir::read_questionnaire_response),
        )
        .route(
            "/fhir/r4/Appointment",
            get(fhir_scheduling::search_appointments),
        )
        .route(
            "/fhir/r4/Appointment/{id}",
            get(fhir_scheduling::read_appointment),
        )
        .route("/fhir/r4/Slot", get(fhir_scheduling::search_slots))
        .route("/fhir/r4/Slot/{id}", get(fhir_scheduling::read_slot))
        .route("/fhir/r4/Schedule", get(fhir_scheduling::search_schedules))
        .route(
            "/fhir/r4/Schedule/{id}",
            get(fhir_scheduling::read_schedule),
        )
        .route(
            "/fhir/r4/Location/{id}",
            get(fhir_scheduling::read_location),
        )
        .route(
            "/fhir/r4/ImagingStudy",
            get(fhir_imaging::search_imaging_studies),
        )
        .route(
            "/fhir/r4/ImagingStudy/{id}",
            get(fhir_imaging::read_imaging_study),
        )
        .route("/fhir/r4/{*rest}", axum::routing::any(fhir::not_supported));
    let ops = Router::new()
        .route("/healthz", get(observe::healthz))
        .route("/readyz", get(observe::readyz))
        .route("/metrics", get(observe::metrics));
    Router::new()
        .merge(pages)
        .merge(api)
        .merge(fhir)
        .merge(ops)
        .merge(resource_pages::routes())
        .merge(patient_pages::routes())
        .merge(procedure_record_pages::routes())
        .merge(follow_up_pages::routes())
        .merge(fhir_procedure::routes())
        .merge(procedure_day::routes())
        .merge(imaging_pages::routes(state.config()))
        .fallback(pages::not_found)
        .layer(axum::middleware::from_fn(observe::security_headers))
        .layer(axum::middleware::from_fn(session::reject_cross_site_writes))
        .layer(axum::middleware::from_fn(observe::record_request))
        .layer(axum::extract::DefaultBodyLimit::max(1024 * 1024))
        .with_state(state)
}

/// Serves the app on an already-bound listener until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
