//! Patients and cases, with each case's timeline. Every call here touches patient
//! data, so every call takes the [`Actor`] and leaves an audit event; referrers
//! are confined to the cases they referred by the queries themselves.

use irflow_domain::pathway::{self, TransitionRequest};
use irflow_domain::{
    Action, Actor, CaseId, CaseState, Channel, ImagingModality, NewPatient, PathwayEvent,
    PatientId, PriorImaging, Role, Side, Urgency, UserId,
};
use jiff::Timestamp;
use jiff::civil::Date;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::audit::{AuditOutcome, NewAuditEvent};
use crate::{Result, Store, StoreError, from_micros, micros, parse_stored};

/// A patient as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatientRecord {
    /// Id.
    pub id: PatientId,
    /// Local MRN, when known.
    pub mrn: Option<String>,
    /// Family name.
    pub family_name: String,
    /// Given name(s).
    pub given_name: String,
    /// Date of birth.
    pub date_of_birth: Date,
    /// Phone.
    pub phone: Option<String>,
    /// Email.
    pub email: Option<String>,
    /// Preferred language (BCP 47).
    pub preferred_language: String,
}

/// A case as worklists show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseSummary {
    /// Id.
    pub id: CaseId,
    /// Where it is on the pathway.
    pub state: CaseState,
    /// The patient.
    pub patient_id: PatientId,
    /// Patient family name.
    pub family_name: String,
    /// Patient given name.
    pub given_name: String,
    /// Patient MRN.
    pub mrn: Option<String>,
    /// Patient date of birth.
    pub date_of_birth: Date,
    /// Procedure code.
    pub procedure_code: String,
    /// Procedure name.
    pub procedure_name: String,
    /// Referring provider's user id.
    pub referrer_id: UserId,
    /// Referring provider's name.
    pub referrer_name: String,
    /// Referring provider's clinic.
    pub referrer_organization: Option<String>,
    /// For deferred cases: until when, if a date was set.
    pub deferred_until: Option<Date>,
    /// Opened.
    pub created_at: Timestamp,
    /// Last moved.
    pub updated_at: Timestamp,
    /// Optimistic-concurrency version.
    pub version: i64,
    /// How soon.
    pub urgency: Urgency,
    /// Levels as ordered (normalised), if any.
    pub levels: Option<String>,
    /// Side as ordered.
    pub side: Option<Side>,
    /// The patient record may be a duplicate: staff must confirm the match.
    pub needs_patient_review: bool,
}

impl CaseSummary {
    /// "Family, Given".
    pub fn patient_name(&self) -> String {
        format!("{}, {}", self.family_name, self.given_name)
    }
}

/// One step of a case's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineEntry {
    /// `refer` for the opening entry, otherwise a pathway action name.
    pub action: String,
    /// State before (none for the opening entry).
    pub from: Option<CaseState>,
    /// State after.
    pub to: CaseState,
    /// Who.
    pub actor_username: String,
    /// In which role.
    pub actor_role: Option<Role>,
    /// When.
    pub at: Timestamp,
    /// Why.
    pub reason: Option<String>,
    /// Deferral date.
    pub deferred_until: Option<Date>,
    /// Structured reason code (returns).
    pub reason_code: Option<String>,
}

/// The order's details as stored. Cases from before referrals were recorded in full
/// have these empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReferralRecord {
    /// Why.
    pub indication: Option<String>,
    /// ICD-10-CM code.
    pub icd10: Option<String>,
    /// Prior imaging.
    pub prior_imaging: Option<PriorImaging>,
    /// Known blood thinners.
    pub blood_thinners: Option<String>,
    /// Notes for the radiologist.
    pub clinical_notes: Option<String>,
    /// How it arrived.
    pub channel: Option<Channel>,
    /// Who typed it in (a referrer online, a scheduler on the phone, a FHIR client's user).
    pub entered_by: Option<String>,
    /// Patients this case's patient may duplicate, until staff decide.
    pub review_candidates: Vec<PatientId>,
}

/// A case with its patient and timeline.
#[derive(Debug, Clone)]
pub struct CaseDetail {
    /// The case.
    pub case: CaseSummary,
    /// The patient.
    pub patient: PatientRecord,
    /// Its history, oldest first.
    pub timeline: Vec<TimelineEntry>,
    /// The order's details.
    pub referral: ReferralRecord,
}

/// Which cases to list; every condition given must hold.
#[derive(Debug, Clone, Default)]
pub struct CaseFilter {
    /// Only these states (empty: any).
    pub states: Vec<CaseState>,
    /// Only this patient's.
    pub patient: Option<PatientId>,
    /// Only those referred by this user.
    pub referrer: Option<UserId>,
    /// At most this many (capped at 1000; default 500).
    pub limit: Option<u32>,
    /// Skip this many (paging).
    pub offset: Option<u32>,
}

impl CaseFilter {
    /// Cases in one state.
    pub fn in_state(state: CaseState) -> Self {
        Self {
            states: vec![state],
            ..Self::default()
        }
    }

    fn states_param(&self) -> Option<String> {
        (!self.states.is_empty()).then(|| {
            self.states
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(",")
        })
    }

    fn describe(&self) -> String {
        let mut parts = vec![format!(
            "states={}",
            self.states_param().unwrap_or_else(|| "any".to_owned())
        )];
        if let Some(p) = self.patient {
            parts.push(format!("patient={p}"));
        }
        if let Some(r) = self.referrer {
            parts.push(format!("referrer={r}"));
        }
        parts.join(" ")
    }
}

/// Which cases an actor may see.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Scope {
    All,
    ReferredBy(UserId),
}

pub(crate) fn scope_of(actor: &Actor) -> Result<Scope> {
    match (actor.role, actor.user_id) {
        (None, _) => Ok(Scope::All),
        (Some(Role::Referrer), Some(id)) => Ok(Scope::ReferredBy(id)),
        (Some(Role::Referrer), None) => {
            Err(StoreError::Denied("a referrer must be a signed-in user"))
        }
        (Some(_), _) => Ok(Scope::All),
    }
}

impl Scope {
    pub(crate) fn allows(self, referrer: UserId) -> bool {
        match self {
            Scope::All => true,
            Scope::ReferredBy(me) => me == referrer,
        }
    }

    pub(crate) fn referrer_filter(self) -> Option<i64> {
        match self {
            Scope::All => None,
            Scope::ReferredBy(me) => Some(me.get()),
        }
    }
}

/// The columns of a case summary (read by `case_from_row`); macros so that queries
/// stay static strings.
macro_rules! case_columns {
    () => {
        "c.id, c.state, c.patient_id, p.family_name, p.given_name, p.mrn,
                p.date_of_birth, c.procedure_code, c.procedure_name, c.referrer_id,
                u.display_name AS referrer_name, u.organization AS referrer_organization,
                c.deferred_until, c.created_at, c.updated_at, c.version, c.urgency, c.levels,
                c.side, c.patient_review, c.indication, c.icd10, c.prior_imaging_modality,
                c.prior_imaging_date, c.prior_imaging_place, c.blood_thinners, c.clinical_notes,
                c.channel, c.entered_by"
    };
}
/// The tables `case_columns!` reads.
macro_rules! case_tables {
    () => {
        " FROM cases c JOIN patients p ON p.id = c.patient_id JOIN users u ON u.id = c.referrer_id"
    };
}
macro_rules! case_select {
    () => {
        concat!("SELECT ", case_columns!(), case_tables!())
    };
}
pub(crate) use {case_columns, case_tables};

fn date_column(row: &AnyRow, column: &str) -> Result<Option<Date>> {
    let raw: Option<String> = row.try_get(column)?;
    raw.map(|d| parse_stored(column, &d)).transpose()
}

fn opt_parse<T: std::str::FromStr>(row: &AnyRow, column: &str) -> Result<Option<T>>
where
    T::Err: std::fmt::Display,
{
    let raw: Option<String> = row.try_get(column)?;
    raw.filter(|r| !r.is_empty())
        .map(|r| parse_stored(column, &r))
        .transpose()
}

fn referral_from_row(row: &AnyRow) -> Result<ReferralRecord> {
    let modality: Option<ImagingModality> = opt_parse(row, "prior_imaging_modality")?;
    let review: Option<String> = row.try_get("patient_review")?;
    Ok(ReferralRecord {
        indication: row.try_get("indication")?,
        icd10: row.try_get("icd10")?,
        prior_imaging: match modality {
            Some(modality) => Some(PriorImaging {
                modality,
                date: date_column(row, "prior_imaging_date")?,
                place: row.try_get("prior_imaging_place")?,
            }),
            None => None,
        },
        blood_thinners: row.try_get("blood_thinners")?,
        clinical_notes: row.try_get("clinical_notes")?,
        channel: opt_parse(row, "channel")?,
        entered_by: row.try_get("entered_by")?,
        review_candidates: review
            .unwrap_or_default()
            .split_whitespace()
            .map(|id| parse_stored::<i64>("patient_review", id).map(PatientId::new))
            .collect::<Result<_>>()?,
    })
}

pub(crate) fn case_from_row(row: &AnyRow) -> Result<CaseSummary> {
    let state: String = row.try_get("state")?;
    let dob: String = row.try_get("date_of_birth")?;
    let urgency: String = row.try_get("urgency")?;
    let review: Option<String> = row.try_get("patient_review")?;
    Ok(CaseSummary {
        id: CaseId::new(row.try_get("id")?),
        state: parse_stored("case state", &state)?,
        patient_id: PatientId::new(row.try_get("patient_id")?),
        family_name: row.try_get("family_name")?,
        given_name: row.try_get("given_name")?,
        mrn: row.try_get("mrn")?,
        date_of_birth: parse_stored("date of birth", &dob)?,
        procedure_code: row.try_get("procedure_code")?,
        procedure_name: row.try_get("procedure_name")?,
        referrer_id: UserId::new(row.try_get("referrer_id")?),
        referrer_name: row.try_get("referrer_name")?,
        referrer_organization: row.try_get("referrer_organization")?,
        deferred_until: date_column(row, "deferred_until")?,
        created_at: from_micros(row.try_get("created_at")?)?,
        updated_at: from_micros(row.try_get("updated_at")?)?,
        version: row.try_get("version")?,
        urgency: parse_stored("urgency", &urgency)?,
        levels: row.try_get("levels")?,
        side: opt_parse(row, "side")?,
        needs_patient_review: review.is_some_and(|r| !r.trim().is_empty()),
    })
}

pub(crate) fn patient_from_row(row: &AnyRow) -> Result<PatientRecord> {
    let dob: String = row.try_get("date_of_birth")?;
    Ok(PatientRecord {
        id: PatientId::new(row.try_get("id")?),
        mrn: row.try_get("mrn")?,
        family_name: row.try_get("family_name")?,
        given_name: row.try_get("given_name")?,
        date_of_birth: parse_stored("date of birth", &dob)?,
        phone: row.try_get("phone")?,
        email: row.try_get("email")?,
        preferred_language: row.try_get("preferred_language")?,
    })
}

fn timeline_from_row(row: &AnyRow) -> Result<TimelineEntry> {
    let from: Option<String> = row.try_get("from_state")?;
    let to: String = row.try_get("to_state")?;
    let role: Option<String> = row.try_get("actor_role")?;
    Ok(TimelineEntry {
        action: row.try_get("action")?,
        from: from.map(|s| parse_stored("case state", &s)).transpose()?,
        to: parse_stored("case state", &to)?,
        actor_username: row.try_get("actor_username")?,
        actor_role: role.map(|r| parse_stored("role", &r)).transpose()?,
        at: from_micros(row.try_get("at")?)?,
        reason: row.try_get("reason")?,
        deferred_until: date_column(row, "deferred_until")?,
        reason_code: row.try_get("reason_code")?,
    })
}

pub(crate) fn outcome_of(err: &StoreError) -> AuditOutcome {
    match err {
        StoreError::NotFound => AuditOutcome::NotFound,
        StoreError::Denied(_)
        | StoreError::Transition(
            irflow_domain::TransitionError::RoleNotPermitted { .. }
            | irflow_domain::TransitionError::NoRole,
        ) => AuditOutcome::Denied,
        StoreError::Transition(_)
        | StoreError::Invalid(_)
        | StoreError::Field { .. }
        | StoreError::DuplicateCase { .. }
        | StoreError::Duplicate(_)
        | StoreError::Conflict(_) => AuditOutcome::Invalid,
        _ => AuditOutcome::Error,
    }
}

impl Store {
    /// Records a patient.
    pub async fn create_patient(&self, actor: &Actor, patient: &NewPatient) -> Result<PatientId> {
        let result = self.insert_patient(actor, patient).await;
        if let Err(e) = &result {
            self.record_audit(NewAuditEvent::new(
                actor,
                "create",
                "patient",
                outcome_of(e),
            ))
            .await?;
        }
        result
    }

    async fn insert_patient(&self, actor: &Actor, patient: &NewPatient) -> Result<PatientId> {
        if matches!(actor.role, Some(Role::Admin)) {
            return Err(StoreError::Denied("administrators do not record patients"));
        }
        let now = Timestamp::now();
        let mut tx = self.pool.begin().await?;
        let id = self.insert_patient_row(&mut tx, patient, now).await?;
        self.insert_audit(
            &mut *tx,
            &NewAuditEvent::new(actor, "create", "patient", AuditOutcome::Success).entity(id),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Inserts a patient row inside the caller's transaction.
    pub(crate) async fn insert_patient_row(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        patient: &NewPatient,
        now: Timestamp,
    ) -> Result<PatientId> {
        let inserted = sqlx::query_scalar::<_, i64>(self.sql(
            "INSERT INTO patients (mrn, family_name, given_name, date_of_birth, phone, email,
                                   preferred_language, created_at, match_key)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        ))
        .bind(patient.mrn.as_ref().map(|m| m.as_str().to_owned()))
        .bind(patient.name.family().to_owned())
        .bind(patient.name.given().to_owned())
        .bind(patient.date_of_birth.to_string())
        .bind(patient.phone.as_ref().map(|p| p.as_str().to_owned()))
        .bind(patient.email.as_ref().map(|e| e.as_str().to_owned()))
        .bind(patient.preferred_language.as_str().to_owned())
        .bind(micros(now))
        .bind(crate::referrals::match_key(patient))
        .fetch_one(&mut **tx)
        .await;
        match inserted {
            Ok(id) => Ok(PatientId::new(id)),
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() => Err(
                StoreError::Duplicate("a patient with this MRN is already on file".to_owned()),
            ),
            Err(e) => Err(e.into()),
        }
    }

    /// Lists the cases the actor may see, most recently moved first.
    pub async fn list_cases(&self, actor: &Actor, filter: &CaseFilter) -> Result<Vec<CaseSummary>> {
        let detail = filter.describe();
        let result = self.select_cases(actor, filter).await;
        let event = NewAuditEvent::new(
            actor,
            "list",
            "case",
            result
                .as_ref()
                .map_or_else(outcome_of, |_| AuditOutcome::Success),
        );
        let detail = match &result {
            Ok(rows) => format!("{detail} results={}", rows.len()),
            Err(_) => detail,
        };
        self.record_audit(event.detail(detail)).await?;
        result
    }

    async fn select_cases(&self, actor: &Actor, filter: &CaseFilter) -> Result<Vec<CaseSummary>> {
        let scope = scope_of(actor)?;
        let limit = i64::from(filter.limit.unwrap_or(500).clamp(1, 1000));
        let offset = i64::from(filter.offset.unwrap_or(0));
        let states = filter.states_param();
        let rows = sqlx::query(self.sql(concat!(
            case_select!(),
            " WHERE (CAST(? AS TEXT) IS NULL OR (',' || ? || ',') LIKE ('%,' || c.state || ',%'))
               AND (CAST(? AS BIGINT) IS NULL OR c.referrer_id = ?)
               AND (CAST(? AS BIGINT) IS NULL OR c.referrer_id = ?)
               AND (CAST(? AS BIGINT) IS NULL OR c.patient_id = ?)
             ORDER BY c.updated_at DESC, c.id DESC
             LIMIT ? OFFSET ?"
        )))
        .bind(states.clone())
        .bind(states)
        .bind(scope.referrer_filter())
        .bind(scope.referrer_filter())
        .bind(filter.referrer.map(|r| r.get()))
        .bind(filter.referrer.map(|r| r.get()))
        .bind(filter.patient.map(|p| p.get()))
        .bind(filter.patient.map(|p| p.get()))
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(case_from_row).collect()
    }

    /// How many cases match a filter (ignoring limit and offset), within the actor's scope.
    /// Counting is part of a search the caller audits through [`Store::list_cases`].
    pub async fn count_cases(&self, actor: &Actor, filter: &CaseFilter) -> Result<i64> {
        let scope = scope_of(actor)?;
        let states = filter.states_param();
        let n: i64 = sqlx::query_scalar(self.sql(
            "SELECT COUNT(*) FROM cases c
             WHERE (CAST(? AS TEXT) IS NULL OR (',' || ? || ',') LIKE ('%,' || c.state || ',%'))
               AND (CAST(? AS BIGINT) IS NULL OR c.referrer_id = ?)
               AND (CAST(? AS BIGINT) IS NULL OR c.referrer_id = ?)
               AND (CAST(? AS BIGINT) IS NULL OR c.patient_id = ?)",
        ))
        .bind(states.clone())
        .bind(states)
        .bind(scope.referrer_filter())
        .bind(scope.referrer_filter())
        .bind(filter.referrer.map(|r| r.get()))
        .bind(filter.referrer.map(|r| r.get()))
        .bind(filter.patient.map(|p| p.get()))
        .bind(filter.patient.map(|p| p.get()))
        .fetch_one(&self.pool)
        .await?;
        Ok(n)
    }

    /// One case with its patient and timeline, if the actor may see it.
    /// A case the actor may not see is reported as not found (and audited as denied).
    pub async fn case_detail(&self, actor: &Actor, id: CaseId) -> Result<CaseDetail> {
        let result = self.select_case_detail(actor, id).await;
        let outcome = result
            .as_ref()
            .map_or_else(outcome_of, |_| AuditOutcome::Success);
        self.record_audit(NewAuditEvent::new(actor, "read", "case", outcome).entity(id))
            .await?;
        result.map_err(hide_denial)
    }

    async fn select_case_detail(&self, actor: &Actor, id: CaseId) -> Result<CaseDetail> {
        let scope = scope_of(actor)?;
        let (case, referral) = self.case_with_referral(id).await?;
        if !scope.allows(case.referrer_id) {
            return Err(StoreError::Denied("not a case this referrer referred"));
        }
        let patient = sqlx::query(self.sql(
            "SELECT id, mrn, family_name, given_name, date_of_birth, phone, email, preferred_language
             FROM patients WHERE id = ?",
        ))
        .bind(case.patient_id.get())
        .fetch_one(&self.pool)
        .await?;
        let timeline = sqlx::query(self.sql(
            "SELECT action, from_state, to_state, actor_username, actor_role, at, reason, deferred_until,
                    reason_code
             FROM case_events WHERE case_id = ? ORDER BY id",
        ))
        .bind(id.get())
        .fetch_all(&self.pool)
        .await?;
        Ok(CaseDetail {
            case,
            patient: patient_from_row(&patient)?,
            timeline: timeline
                .iter()
                .map(timeline_from_row)
                .collect::<Result<_>>()?,
            referral,
        })
    }

    pub(crate) async fn case_summary(&self, id: CaseId) -> Result<CaseSummary> {
        Ok(self.case_with_referral(id).await?.0)
    }

    async fn case_with_referral(&self, id: CaseId) -> Result<(CaseSummary, ReferralRecord)> {
        let row = sqlx::query(self.sql(concat!(case_select!(), " WHERE c.id = ?")))
            .bind(id.get())
            .fetch_optional(&self.pool)
            .await?;
        let row = row.ok_or(StoreError::NotFound)?;
        Ok((case_from_row(&row)?, referral_from_row(&row)?))
    }

    /// Moves a case along the pathway: checks the transition in the domain, applies it
    /// only if nobody moved the case meanwhile (`expected_version`, when given), and
    /// records the timeline entry and the audit event in the same transaction.
    pub async fn transition_case(
        &self,
        actor: &Actor,
        id: CaseId,
        request: &TransitionRequest,
        expected_version: Option<i64>,
        at: Timestamp,
        today: Date,
    ) -> Result<PathwayEvent> {
        let result = self
            .apply_transition(actor, id, request, expected_version, at, today)
            .await;
        if let Err(e) = &result {
            self.record_audit(
                NewAuditEvent::new(actor, "transition", "case", outcome_of(e))
                    .entity(id)
                    .detail(format!("action={}", request.action)),
            )
            .await?;
        }
        result.map_err(hide_denial)
    }

    async fn apply_transition(
        &self,
        actor: &Actor,
        id: CaseId,
        request: &TransitionRequest,
        expected_version: Option<i64>,
        at: Timestamp,
        today: Date,
    ) -> Result<PathwayEvent> {
        let scope = scope_of(actor)?;
        let case = self.case_summary(id).await?;
        if !scope.allows(case.referrer_id) {
            return Err(StoreError::Denied("not a case this referrer referred"));
        }
        if let Some(v) = expected_version
            && v != case.version
        {
            return Err(StoreError::Conflict(
                "this case was changed by someone else while you were looking at it; reload and try again"
                    .to_owned(),
            ));
        }
        let event = pathway::decide(case.state, request, actor, at, today)?;
        if matches!(
            event.action,
            Action::Schedule | Action::Reschedule | Action::Unschedule
        ) {
            // Booking reserves rooms, radiologists and chairs; a bare state change would not.
            return Err(StoreError::Conflict(
                "appointments are booked, moved and cancelled through the case's appointment, so that the room, radiologist and chair are reserved".to_owned(),
            ));
        }
        // The procedure day has its own records: the checklist gates the start, the end
        // starts the monitoring clock, the discharge checks it (see procedure_day.rs).
        let day_step = match event.action {
            Action::StartProcedure => Some(
                "the procedure starts from the pre-procedure checklist once it is complete (POST /api/v1/cases/{id}/start)",
            ),
            Action::EndProcedure => Some(
                "the end of the procedure is recorded from the day's board or checklist (POST /api/v1/cases/{id}/end), so that recovery monitoring starts",
            ),
            Action::Discharge => Some(
                "discharge is recorded from recovery (POST /api/v1/cases/{id}/discharge), which checks the discharge criteria and the monitoring time",
            ),
            Action::NotTreated => Some(
                "a patient sent home untreated is recorded from the checklist (POST /api/v1/cases/{id}/not-treated), which releases the booking",
            ),
            // The follow-up is recorded with its answers (procedure_records.rs).
            Action::RecordFollowUp => Some(
                "the follow-up is recorded with the patient's answers, from the follow-up list (POST /api/v1/cases/{id}/follow-up)",
            ),
            _ => None,
        };
        if let Some(how) = day_step {
            return Err(StoreError::Conflict(how.replace("{id}", &id.to_string())));
        }
        let mut tx = self.pool.begin().await?;
        let updated = sqlx::query(self.sql(
            "UPDATE cases SET state = ?, deferred_until = ?, version = version + 1, updated_at = ?
             WHERE id = ? AND version = ?",
        ))
        .bind(event.to.as_str())
        .bind(event.deferred_until.map(|d| d.to_string()))
        .bind(micros(at))
        .bind(id.get())
        .bind(case.version)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() != 1 {
            return Err(StoreError::concurrent_change());
        }
        self.record_attendance(&mut tx, id, &event, at).await?;
        self.insert_timeline(
            &mut tx,
            id,
            &Timeline {
                action: event.action.as_str(),
                from: Some(event.from),
                to: event.to,
                reason: event.reason.clone(),
                deferred_until: event.deferred_until,
                reason_code: event.return_reason.map(|r| r.as_str()),
            },
            actor,
            at,
        )
        .await?;
        self.insert_audit(
            &mut *tx,
            &NewAuditEvent::new(actor, "transition", "case", AuditOutcome::Success)
                .entity(id)
                .detail(format!(
                    "action={} {}->{}",
                    event.action, event.from, event.to
                )),
            at,
        )
        .await?;
        tx.commit().await?;
        Ok(event)
    }
}

impl Store {
    /// Keeps the case's booked appointment in step with a pathway move, in the same
    /// transaction: check-in marks it arrived; a no-show or a cancellation ends it and
    /// releases its room, radiologist and chair so that the time can be offered again.
    async fn record_attendance(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        case: CaseId,
        event: &PathwayEvent,
        at: Timestamp,
    ) -> Result<()> {
        let booked: Option<i64> = sqlx::query_scalar(
            self.sql("SELECT MAX(id) FROM appointments WHERE case_id = ? AND status = 'booked'"),
        )
        .bind(case.get())
        .fetch_one(&mut **tx)
        .await?;
        let Some(appointment) = booked else {
            return Ok(());
        };
        let why = event.reason.clone().unwrap_or_default();
        let (attendance, release, reason) = match event.action {
            Action::CheckIn => (Some("arrived"), false, None),
            Action::RecordNoShow => (Some("no_show"), true, Some(format!("no-show: {why}"))),
            Action::Cancel => (None, true, Some(format!("case cancelled: {why}"))),
            _ => return Ok(()),
        };
        if release {
            sqlx::query(self.sql("DELETE FROM reservations WHERE appointment_id = ?"))
                .bind(appointment)
                .execute(&mut **tx)
                .await?;
        }
        sqlx::query(self.sql(
            "UPDATE appointments
             SET attendance = COALESCE(?, attendance),
                 attendance_at = COALESCE(?, attendance_at),
                 status = CASE WHEN ? = 1 THEN 'cancelled' ELSE status END,
                 cancelled_reason = COALESCE(?, cancelled_reason)
             WHERE id = ?",
        ))
        .bind(attendance)
        .bind(attendance.map(|_| micros(at)))
        .bind(i64::from(release))
        .bind(reason)
        .bind(appointment)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }
}

/// A timeline entry to write.
pub(crate) struct Timeline {
    pub(crate) action: &'static str,
    pub(crate) from: Option<CaseState>,
    pub(crate) to: CaseState,
    pub(crate) reason: Option<String>,
    pub(crate) deferred_until: Option<Date>,
    pub(crate) reason_code: Option<&'static str>,
}

impl Store {
    /// Moves a case to a state inside the caller's transaction, only if nobody changed
    /// it since it was read at `version` (otherwise a conflict, and the caller rolls back).
    pub(crate) async fn set_case_state(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        case: CaseId,
        state: CaseState,
        version: i64,
        at: Timestamp,
    ) -> Result<()> {
        let updated = sqlx::query(self.sql(
            "UPDATE cases SET state = ?, version = version + 1, updated_at = ? WHERE id = ? AND version = ?",
        ))
        .bind(state.as_str())
        .bind(micros(at))
        .bind(case.get())
        .bind(version)
        .execute(&mut **tx)
        .await?;
        if updated.rows_affected() == 1 {
            Ok(())
        } else {
            Err(StoreError::concurrent_change())
        }
    }

    /// Appends to a case's timeline inside the caller's transaction.
    pub(crate) async fn insert_timeline(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        case: CaseId,
        entry: &Timeline,
        actor: &Actor,
        at: Timestamp,
    ) -> Result<()> {
        sqlx::query(self.sql(
            "INSERT INTO case_events (case_id, action, from_state, to_state, actor_user_id,
                                      actor_username, actor_role, at, reason, deferred_until, reason_code)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        ))
        .bind(case.get())
        .bind(entry.action)
        .bind(entry.from.map(CaseState::as_str))
        .bind(entry.to.as_str())
        .bind(actor.user_id.map(|u| u.get()))
        .bind(actor.username.clone())
        .bind(actor.role.map(|r| r.as_str()))
        .bind(micros(at))
        .bind(entry.reason.clone())
        .bind(entry.deferred_until.map(|d| d.to_string()))
        .bind(entry.reason_code)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }
}

/// Callers outside the store see "not found" for a case they may not see, so that
/// case numbers reveal nothing; the audit log keeps the truth.
pub(crate) fn hide_denial(e: StoreError) -> StoreError {
    match e {
        StoreError::Denied("not a case this referrer referred") => StoreError::NotFound,
        other => other,
    }
}
