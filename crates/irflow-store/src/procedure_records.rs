//! The procedure record and the follow-up.
//!
//! - A record is drafted and signed by a radiologist. Signing stores the values the
//!   domain checked (`ProcedureRecordDetails`); a signed version is never changed
//!   (a database trigger refuses it) — an amendment is a new version with its reason.
//! - The follow-up is due `follow_up_days` after the discharge date (at the site).
//!   A nurse records it from a phone call, or the patient answers the short form
//!   behind their link; either closes the case as followed up (`RecordFollowUp`),
//!   except a patient's answer that reports problems, which stays on the nurses'
//!   list for a call.
//! - Outcomes: per procedure done, the complications and the relief reported.
//!
//! Every call takes the actor and is audited; referrers see only their own cases'
//! signed records, and never the follow-up list or the outcomes.

use irflow_domain::pathway::{self, TransitionRequest};
use irflow_domain::procedure_record::{
    Complication, FollowUpAnswers, FollowUpMethod, OutcomeRow, ProcedureRecordDetails,
    ProcedureRecordForm, follow_up_due, follow_up_is_early,
};
use irflow_domain::{Action, Actor, CaseId, CaseState, Email, PatientId, Role, UserId};
use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::audit::{AuditOutcome, NewAuditEvent};
use crate::cases::{Scope, Timeline, hide_denial, outcome_of, scope_of};
use crate::patient_links::{LinkStatus, PatientLinkRecord};
use crate::{Result, Store, StoreError, from_micros, micros, parse_stored};

/// Who signed a version, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// The radiologist's user id.
    pub user_id: UserId,
    /// Their username.
    pub username: String,
    /// Their name as shown then.
    pub name: String,
    /// When.
    pub at: Timestamp,
}

/// One version of a case's procedure record: a draft, or signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcedureRecordVersion {
    /// Row id (the FHIR `DocumentReference` id of a signed version).
    pub id: i64,
    /// The case.
    pub case_id: CaseId,
    /// 1, 2, ... (2 onwards are amendments).
    pub version: i64,
    /// The values: as typed for a draft, as checked for a signed version.
    pub form: ProcedureRecordForm,
    /// The catalogue's name for the procedure done (signed versions).
    pub procedure_name: Option<String>,
    /// Who started this version.
    pub created_by: String,
    /// When.
    pub created_at: Timestamp,
    /// Last saved.
    pub updated_at: Timestamp,
    /// The signature, once signed.
    pub signed: Option<Signature>,
}

impl ProcedureRecordVersion {
    /// The checked values of a signed version.
    pub fn details(&self) -> Result<ProcedureRecordDetails> {
        ProcedureRecordDetails::from_signed(
            &self.form,
            self.procedure_name.as_deref().unwrap_or_default(),
        )
        .map_err(|e| StoreError::Corrupt(format!("procedure record {}: {e}", self.id)))
    }
}

/// What signing did: the version signed, and where the report goes.
#[derive(Debug, Clone)]
pub struct SignedRecord {
    /// The signed version.
    pub record: ProcedureRecordVersion,
    /// The referring provider's name.
    pub referrer_name: String,
    /// Their email, when known.
    pub referrer_email: Option<String>,
}

/// A case's signed procedure, for FHIR and the report: its latest signed version,
/// every signed version (oldest first), and when the procedure started and ended
/// (from the case's timeline).
#[derive(Debug, Clone)]
pub struct SignedProcedure {
    /// The case.
    pub case_id: CaseId,
    /// The patient.
    pub patient_id: PatientId,
    /// "Family, Given".
    pub patient_name: String,
    /// The referring provider.
    pub referrer_id: UserId,
    /// Their name.
    pub referrer_name: String,
    /// Signed versions, oldest first (never empty).
    pub versions: Vec<ProcedureRecordVersion>,
    /// Started (timeline), when recorded.
    pub started_at: Option<Timestamp>,
    /// Ended (timeline), when recorded.
    pub ended_at: Option<Timestamp>,
}

impl SignedProcedure {
    /// The version in force.
    pub fn current(&self) -> &ProcedureRecordVersion {
        // `versions` is never empty (only cases with a signed version are returned).
        &self.versions[self.versions.len() - 1]
    }
}

/// Follow-up answers as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowUpRecord {
    /// Id.
    pub id: i64,
    /// The case.
    pub case_id: CaseId,
    /// When it was due.
    pub due_on: Date,
    /// The patient's form or a phone call.
    pub method: FollowUpMethod,
    /// Pain now, 0-10.
    pub pain_now: u8,
    /// Relief, percent.
    pub relief_percent: u8,
    /// Problems reported.
    pub problems: Option<String>,
    /// Whether these answers closed the case.
    pub closed_case: bool,
    /// Who (a username, or `patient-link:<id>`).
    pub recorded_by: String,
    /// When.
    pub recorded_at: Timestamp,
}

/// A discharged case waiting for its follow-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowUpTask {
    /// The case.
    pub case_id: CaseId,
    /// "Family, Given".
    pub patient_name: String,
    /// MRN.
    pub mrn: Option<String>,
    /// Date of birth.
    pub date_of_birth: Date,
    /// Phone on file.
    pub phone: Option<String>,
    /// Preferred language.
    pub preferred_language: String,
    /// Procedure ordered.
    pub procedure_name: String,
    /// Discharged at.
    pub discharged_at: Timestamp,
    /// Due on.
    pub due_on: Date,
    /// The patient's own answer, when they gave one that reported problems.
    pub patient_answer: Option<FollowUpRecord>,
}

/// Where a case's follow-up stands, for the patient's page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowUpStatus {
    /// The case's state.
    pub state: CaseState,
    /// Due on (once discharged).
    pub due_on: Option<Date>,
    /// Answers recorded so far, oldest first.
    pub answers: Vec<FollowUpRecord>,
}

/// Where the procedure record may be written.
const RECORD_STATES: [CaseState; 4] = [
    CaseState::InProcedure,
    CaseState::Recovery,
    CaseState::Discharged,
    CaseState::FollowedUp,
];

macro_rules! record_select {
    () => {
        "SELECT id, case_id, version, procedure_code, procedure_name, levels, side, guidance,
                contrast_agent, contrast_ml, steroid_agent, steroid_mg, anaesthetic_agent,
                anaesthetic_mg, fluoroscopy_seconds, dap_mgycm2, dlp_mgycm, pain_before, pain_after,
                complication, complication_text, notes, amendment_reason, particulate_acknowledged,
                created_by, created_at, updated_at, signed_by, signed_by_user_id, signed_by_name,
                signed_at
         FROM procedure_records"
    };
}

macro_rules! follow_up_select {
    () => {
        "SELECT id, case_id, due_on, method, pain_now, relief_percent, problems, closed_case,
                recorded_by, recorded_at
         FROM follow_ups"
    };
}

fn text(row: &AnyRow, column: &str) -> Result<String> {
    Ok(row
        .try_get::<Option<String>, _>(column)?
        .unwrap_or_default())
}

fn record_from_row(row: &AnyRow) -> Result<ProcedureRecordVersion> {
    let signed_at: Option<i64> = row.try_get("signed_at")?;
    let signed = match signed_at {
        Some(at) => Some(Signature {
            user_id: UserId::new(
                row.try_get::<Option<i64>, _>("signed_by_user_id")?
                    .ok_or_else(|| StoreError::Corrupt("signed record without signer".into()))?,
            ),
            username: text(row, "signed_by")?,
            name: text(row, "signed_by_name")?,
            at: from_micros(at)?,
        }),
        None => None,
    };
    Ok(ProcedureRecordVersion {
        id: row.try_get("id")?,
        case_id: CaseId::new(row.try_get("case_id")?),
        version: row.try_get("version")?,
        form: ProcedureRecordForm {
            procedure: text(row, "procedure_code")?,
            levels: text(row, "levels")?,
            side: text(row, "side")?,
            guidance: text(row, "guidance")?,
            contrast_agent: text(row, "contrast_agent")?,
            contrast_ml: text(row, "contrast_ml")?,
            steroid_agent: text(row, "steroid_agent")?,
            steroid_mg: text(row, "steroid_mg")?,
            anaesthetic_agent: text(row, "anaesthetic_agent")?,
            anaesthetic_mg: text(row, "anaesthetic_mg")?,
            fluoroscopy_seconds: text(row, "fluoroscopy_seconds")?,
            dap: text(row, "dap_mgycm2")?,
            dlp: text(row, "dlp_mgycm")?,
            pain_before: text(row, "pain_before")?,
            pain_after: text(row, "pain_after")?,
            complication: text(row, "complication")?,
            complication_text: text(row, "complication_text")?,
            notes: text(row, "notes")?,
            amendment_reason: text(row, "amendment_reason")?,
            particulate_acknowledged: row.try_get::<i64, _>("particulate_acknowledged")? == 1,
        },
        procedure_name: row.try_get("procedure_name")?,
        created_by: row.try_get("created_by")?,
        created_at: from_micros(row.try_get("created_at")?)?,
        updated_at: from_micros(row.try_get("updated_at")?)?,
        signed,
    })
}

fn follow_up_from_row(row: &AnyRow) -> Result<FollowUpRecord> {
    let due: String = row.try_get("due_on")?;
    let method: String = row.try_get("method")?;
    let small = |column: &str| -> Result<u8> {
        let n: i64 = row.try_get(column)?;
        u8::try_from(n).map_err(|_| StoreError::Corrupt(format!("{column} {n}")))
    };
    Ok(FollowUpRecord {
        id: row.try_get("id")?,
        case_id: CaseId::new(row.try_get("case_id")?),
        due_on: parse_stored("due date", &due)?,
        method: parse_stored("follow-up method", &method)?,
        pain_now: small("pain_now")?,
        relief_percent: small("relief_percent")?,
        problems: row.try_get("problems")?,
        closed_case: row.try_get::<i64, _>("closed_case")? == 1,
        recorded_by: row.try_get("recorded_by")?,
        recorded_at: from_micros(row.try_get("recorded_at")?)?,
    })
}

/// Draft values to store: empty strings as NULL.
fn nz(s: &str) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_owned())
}

/// The first field error of a form, as the store reports it.
fn field_error(errors: irflow_domain::FieldErrors) -> StoreError {
    match errors.0.into_iter().next() {
        Some(e) => StoreError::Field {
            field: e.field,
            message: e.message,
        },
        None => StoreError::Invalid("the record is not complete".to_owned()),
    }
}

fn radiologist_only(actor: &Actor) -> Result<()> {
    match actor.role {
        Some(Role::Radiologist) if actor.user_id.is_some() => Ok(()),
        _ => Err(StoreError::Denied(
            "the procedure record is written and signed by a radiologist",
        )),
    }
}

/// Staff who work with patients on the day and after (not referrers; admins only read
/// the aggregate outcomes).
fn clinical_staff(actor: &Actor) -> Result<()> {
    match actor.role {
        Some(Role::Nurse | Role::Radiologist | Role::Scheduler) => Ok(()),
        _ => Err(StoreError::Denied(
            "the follow-up list is for the department's nurses, radiologists and schedulers",
        )),
    }
}

impl Store {
    async fn record_case_in_scope(
        &self,
        actor: &Actor,
        case: CaseId,
    ) -> Result<crate::CaseSummary> {
        let scope = scope_of(actor)?;
        let summary = self.case_summary(case).await?;
        if !scope.allows(summary.referrer_id) {
            return Err(StoreError::Denied("not a case this referrer referred"));
        }
        Ok(summary)
    }

    async fn versions_of(&self, case: CaseId) -> Result<Vec<ProcedureRecordVersion>> {
        let rows = sqlx::query(self.sql(concat!(
            record_select!(),
            " WHERE case_id = ? ORDER BY version"
        )))
        .bind(case.get())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(record_from_row).collect()
    }

    /// Every version of a case's procedure record, oldest first (referrers: the signed
    /// ones of their own cases only).
    pub async fn procedure_record_versions(
        &self,
        actor: &Actor,
        case: CaseId,
    ) -> Result<Vec<ProcedureRecordVersion>> {
        let result = async {
            self.record_case_in_scope(actor, case).await?;
            let mut versions = self.versions_of(case).await?;
            if matches!(scope_of(actor)?, Scope::ReferredBy(_)) {
                versions.retain(|v| v.signed.is_some());
            }
            Ok(versions)
        }
        .await;
        let outcome = result
            .as_ref()
            .map_or_else(outcome_of, |_| AuditOutcome::Success);
        self.record_audit(
            NewAuditEvent::new(actor, "read", "procedure_record", outcome).entity(case),
        )
        .await?;
        result.map_err(hide_denial)
    }

    /// Saves the radiologist's draft (what was typed; checked only for size). The
    /// draft is the newest version while unsigned; after a signature it starts the
    /// next version (an amendment).
    pub async fn save_procedure_record_draft(
        &self,
        actor: &Actor,
        case: CaseId,
        form: &ProcedureRecordForm,
        at: Timestamp,
    ) -> Result<ProcedureRecordVersion> {
        let result = async {
            radiologist_only(actor)?;
            form.check_draft().map_err(field_error)?;
            let summary = self.record_case_in_scope(actor, case).await?;
            if !RECORD_STATES.contains(&summary.state) {
                return Err(StoreError::Conflict(format!(
                    "the procedure record is written once the procedure has started; this case is {}",
                    summary.state.label().to_lowercase()
                )));
            }
            let versions = self.versions_of(case).await?;
            let mut tx = self.pool.begin().await?;
            let id = match versions.last() {
                Some(draft) if draft.signed.is_none() => {
                    let updated = self
                        .write_values(&mut tx, Some(draft.id), case, draft.version, form, None, actor, at)
                        .await?;
                    updated.ok_or_else(StoreError::concurrent_change)?
                }
                last => {
                    let version = last.map_or(1, |v| v.version + 1);
                    self.write_values(&mut tx, None, case, version, form, None, actor, at)
                        .await?
                        .ok_or_else(StoreError::concurrent_change)?
                }
            };
            self.insert_audit(
                &mut *tx,
                &NewAuditEvent::new(actor, "save_draft", "procedure_record", AuditOutcome::Success)
                    .entity(case)
                    .detail(format!("record={id}")),
                at,
            )
            .await?;
            tx.commit().await?;
            self.record_by_id(id).await
        }
        .await;
        if let Err(e) = &result {
            self.record_audit(
                NewAuditEvent::new(actor, "save_draft", "procedure_record", outcome_of(e))
                    .entity(case),
            )
            .await?;
        }
        result.map_err(hide_denial)
    }

    async fn record_by_id(&self, id: i64) -> Result<ProcedureRecordVersion> {
        let row = sqlx::query(self.sql(concat!(record_select!(), " WHERE id = ?")))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        record_from_row(&row)
    }

    /// Inserts a version (`existing` none) or updates a draft; `None` when the draft
    /// was signed or the version taken meanwhile.
    #[allow(clippy::too_many_arguments)]
    async fn write_values(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        existing: Option<i64>,
        case: CaseId,
        version: i64,
        form: &ProcedureRecordForm,
        procedure_name: Option<&str>,
        actor: &Actor,
        at: Timestamp,
    ) -> Result<Option<i64>> {
        let values = [
            nz(&form.procedure),
            procedure_name.map(str::to_owned),
            nz(&form.levels),
            nz(&form.side),
            nz(&form.guidance),
            nz(&form.contrast_agent),
            nz(&form.contrast_ml),
            nz(&form.steroid_agent),
            nz(&form.steroid_mg),
            nz(&form.anaesthetic_agent),
            nz(&form.anaesthetic_mg),
            nz(&form.fluoroscopy_seconds),
            nz(&form.dap),
            nz(&form.dlp),
            nz(&form.pain_before),
            nz(&form.pain_after),
            nz(&form.complication),
            nz(&form.complication_text),
            nz(&form.notes),
            nz(&form.amendment_reason),
        ];
        let acknowledged = i64::from(form.particulate_acknowledged);
        match existing {
            Some(id) => {
                let mut q = sqlx::query(self.sql(
                    "UPDATE procedure_records SET procedure_code = ?, procedure_name = ?, levels = ?,
                        side = ?, guidance = ?, contrast_agent = ?, contrast_ml = ?, steroid_agent = ?,
                        steroid_mg = ?, anaesthetic_agent = ?, anaesthetic_mg = ?,
                        fluoroscopy_seconds = ?, dap_mgycm2 = ?, dlp_mgycm = ?, pain_before = ?,
                        pain_after = ?, complication = ?, complication_text = ?, notes = ?,
                        amendment_reason = ?, particulate_acknowledged = ?, updated_at = ?
                     WHERE id = ? AND signed_at IS NULL",
                ));
                for v in values {
                    q = q.bind(v);
                }
                let done = q
                    .bind(acknowledged)
                    .bind(micros(at))
                    .bind(id)
                    .execute(&mut **tx)
                    .await?;
                Ok((done.rows_affected() == 1).then_some(id))
            }
            None => {
                let mut q = sqlx::query_scalar::<_, i64>(self.sql(
                    "INSERT INTO procedure_records (procedure_code, procedure_name, levels, side,
                        guidance, contrast_agent, contrast_ml, steroid_agent, steroid_mg,
                        anaesthetic_agent, anaesthetic_mg, fluoroscopy_seconds, dap_mgycm2, dlp_mgycm,
                        pain_before, pain_after, complication, complication_text, notes,
                        amendment_reason, particulate_acknowledged, case_id, version, created_by,
                        created_at, updated_at)
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                     RETURNING id",
                ));
                for v in values {
                    q = q.bind(v);
                }
                let inserted = q
                    .bind(acknowledged)
                    .bind(case.get())
                    .bind(version)
                    .bind(actor.username.clone())
                    .bind(micros(at))
                    .bind(micros(at))
                    .fetch_one(&mut **tx)
                    .await;
                match inserted {
                    Ok(id) => Ok(Some(id)),
                    Err(sqlx::Error::Database(db)) if db.is_unique_violation() => Ok(None),
                    Err(e) => Err(e.into()),
                }
            }
        }
    }

    /// Signs the record with values the domain has checked. The signer is the actor
    /// (a radiologist; the server has them confirm it). Once a version is signed, a
    /// further signature is an amendment: a new version, with its reason. Signing
    /// goes on the case's timeline.
    pub async fn sign_procedure_record(
        &self,
        actor: &Actor,
        signer_name: &str,
        case: CaseId,
        details: &ProcedureRecordDetails,
        at: Timestamp,
    ) -> Result<SignedRecord> {
        let result = async {
            radiologist_only(actor)?;
            let user_id = actor
                .user_id
                .ok_or(StoreError::Denied("a signature needs a signed-in radiologist"))?;
            let summary = self.record_case_in_scope(actor, case).await?;
            if !RECORD_STATES.contains(&summary.state) {
                return Err(StoreError::Conflict(format!(
                    "the procedure record is signed once the procedure has started; this case is {}",
                    summary.state.label().to_lowercase()
                )));
            }
            let versions = self.versions_of(case).await?;
            let amending = versions.iter().any(|v| v.signed.is_some());
            match (amending, &details.amendment_reason) {
                (true, None) => {
                    return Err(StoreError::Field {
                        field: "amendment_reason",
                        message: "this record is signed: say why it is amended".to_owned(),
                    });
                }
                (false, Some(_)) => {
                    return Err(StoreError::Field {
                        field: "amendment_reason",
                        message: "nothing is signed yet, so this is not an amendment".to_owned(),
                    });
                }
                _ => {}
            }
            let form = ProcedureRecordForm::from_details(details);
            let form = ProcedureRecordForm {
                amendment_reason: details.amendment_reason.clone().unwrap_or_default(),
                ..form
            };
            let mut tx = self.pool.begin().await?;
            let (id, version) = match versions.last() {
                Some(draft) if draft.signed.is_none() => (
                    self.write_values(
                        &mut tx,
                        Some(draft.id),
                        case,
                        draft.version,
                        &form,
                        Some(&details.procedure_name),
                        actor,
                        at,
                    )
                    .await?
                    .ok_or_else(StoreError::concurrent_change)?,
                    draft.version,
                ),
                last => {
                    let version = last.map_or(1, |v| v.version + 1);
                    (
                        self.write_values(
                            &mut tx,
                            None,
                            case,
                            version,
                            &form,
                            Some(&details.procedure_name),
                            actor,
                            at,
                        )
                        .await?
                        .ok_or_else(StoreError::concurrent_change)?,
                        version,
                    )
                }
            };
            let signed = sqlx::query(self.sql(
                "UPDATE procedure_records
                 SET signed_by = ?, signed_by_user_id = ?, signed_by_name = ?, signed_at = ?, updated_at = ?
                 WHERE id = ? AND signed_at IS NULL",
            ))
            .bind(actor.username.clone())
            .bind(user_id.get())
            .bind(signer_name.trim().to_owned())
            .bind(micros(at))
            .bind(micros(at))
            .bind(id)
            .execute(&mut *tx)
            .await?;
            if signed.rows_affected() != 1 {
                return Err(StoreError::concurrent_change());
            }
            self.insert_timeline(
                &mut tx,
                case,
                &Timeline {
                    action: if version == 1 {
                        "sign_procedure_record"
                    } else {
                        "amend_procedure_record"
                    },
                    from: Some(summary.state),
                    to: summary.state,
                    reason: details.amendment_reason.clone(),
                    deferred_until: None,
                    reason_code: None,
                },
                actor,
                at,
            )
            .await?;
            self.insert_audit(
                &mut *tx,
                &NewAuditEvent::new(actor, "sign", "procedure_record", AuditOutcome::Success)
                    .entity(case)
                    .detail(format!("record={id} version={version}")),
                at,
            )
            .await?;
            tx.commit().await?;
            let email: Option<String> =
                sqlx::query_scalar(self.sql("SELECT email FROM users WHERE id = ?"))
                    .bind(summary.referrer_id.get())
                    .fetch_one(&self.pool)
                    .await?;
            Ok(SignedRecord {
                record: self.record_by_id(id).await?,
                referrer_name: summary.referrer_name.clone(),
                referrer_email: email.filter(|e| !e.trim().is_empty()),
            })
        }
        .await;
        if let Err(e) = &result {
            self.record_audit(
                NewAuditEvent::new(actor, "sign", "procedure_record", outcome_of(e)).entity(case),
            )
            .await?;
        }
        result.map_err(hide_denial)
    }

    /// The case a signed version belongs to (to resolve a `DocumentReference` id; the
    /// caller then reads the case through [`Store::signed_procedure`], audited).
    pub async fn case_of_procedure_record(&self, id: i64) -> Result<Option<CaseId>> {
        let case: Option<i64> =
            sqlx::query_scalar(self.sql(
                "SELECT case_id FROM procedure_records WHERE id = ? AND signed_at IS NOT NULL",
            ))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(case.map(CaseId::new))
    }

    /// A case's signed procedure (FHIR `Procedure`, the report), if it has one the
    /// actor may see.
    pub async fn signed_procedure(&self, actor: &Actor, case: CaseId) -> Result<SignedProcedure> {
        let result = async {
            let summary = self.record_case_in_scope(actor, case).await?;
            self.signed_procedure_of(&summary)
                .await?
                .ok_or(StoreError::NotFound)
        }
        .await;
        let outcome = result
            .as_ref()
            .map_or_else(outcome_of, |_| AuditOutcome::Success);
        self.record_audit(
            NewAuditEvent::new(actor, "read", "procedure_record", outcome).entity(case),
        )
        .await?;
        result.map_err(hide_denial)
    }

    async fn signed_procedure_of(
        &self,
        summary: &crate::CaseSummary,
    ) -> Result<Option<SignedProcedure>> {
        let versions: Vec<ProcedureRecordVersion> = self
            .versions_of(summary.id)
            .await?
            .into_iter()
            .filter(|v| v.signed.is_some())
            .collect();
        if versions.is_empty() {
            return Ok(None);
        }
        let at = |action: &'static str| async move {
            let t: Option<i64> = sqlx::query_scalar(
                self.sql("SELECT MAX(at) FROM case_events WHERE case_id = ? AND action = ?"),
            )
            .bind(summary.id.get())
            .bind(action)
            .fetch_one(&self.pool)
            .await?;
            t.map(from_micros).transpose()
        };
        Ok(Some(SignedProcedure {
            case_id: summary.id,
            patient_id: summary.patient_id,
            patient_name: summary.patient_name(),
            referrer_id: summary.referrer_id,
            referrer_name: summary.referrer_name.clone(),
            versions,
            started_at: at(Action::StartProcedure.as_str()).await?,
            ended_at: at(Action::EndProcedure.as_str()).await?,
        }))
    }

    /// The signed procedures of a patient's cases the actor may see (FHIR searches).
    pub async fn signed_procedures_for_patient(
        &self,
        actor: &Actor,
        patient: PatientId,
    ) -> Result<Vec<SignedProcedure>> {
        let result = async {
            let scope = scope_of(actor)?;
            let ids: Vec<i64> = sqlx::query_scalar(self.sql(
                "SELECT DISTINCT c.id FROM cases c JOIN procedure_records r ON r.case_id = c.id
                 WHERE c.patient_id = ? AND r.signed_at IS NOT NULL
                   AND (CAST(? AS BIGINT) IS NULL OR c.referrer_id = ?)
                 ORDER BY c.id",
            ))
            .bind(patient.get())
            .bind(scope.referrer_filter())
            .bind(scope.referrer_filter())
            .fetch_all(&self.pool)
            .await?;
            let mut out = Vec::new();
            for id in ids {
                let summary = self.case_summary(CaseId::new(id)).await?;
                if let Some(p) = self.signed_procedure_of(&summary).await? {
                    out.push(p);
                }
            }
            Ok(out)
        }
        .await;
        let event = NewAuditEvent::new(
            actor,
            "list",
            "procedure_record",
            result
                .as_ref()
                .map_or_else(outcome_of, |_| AuditOutcome::Success),
        )
        .detail(match &result {
            Ok(found) => format!("patient={patient} results={}", found.len()),
            Err(_) => format!("patient={patient}"),
        });
        self.record_audit(event).await?;
        result
    }
}

// ---------------------------------------------------------------- follow-up

impl Store {
    /// The local date a case was discharged (its latest discharge on the timeline).
    async fn discharged_at(&self, case: CaseId) -> Result<Option<Timestamp>> {
        let t: Option<i64> = sqlx::query_scalar(
            self.sql("SELECT MAX(at) FROM case_events WHERE case_id = ? AND action = ?"),
        )
        .bind(case.get())
        .bind(Action::Discharge.as_str())
        .fetch_one(&self.pool)
        .await?;
        t.map(from_micros).transpose()
    }

    async fn answers_of(&self, case: CaseId) -> Result<Vec<FollowUpRecord>> {
        let rows = sqlx::query(self.sql(concat!(
            follow_up_select!(),
            " WHERE case_id = ? ORDER BY id"
        )))
        .bind(case.get())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(follow_up_from_row).collect()
    }

    /// Discharged cases waiting for their follow-up, due first (those due after
    /// `until` are left out). Nurses, radiologists and schedulers.
    pub async fn follow_up_tasks(
        &self,
        actor: &Actor,
        tz: &TimeZone,
        follow_up_days: u32,
        until: Option<Date>,
    ) -> Result<Vec<FollowUpTask>> {
        let result = async {
            clinical_staff(actor)?;
            let rows = sqlx::query(self.sql(
                "SELECT c.id, p.family_name, p.given_name, p.mrn, p.date_of_birth, p.phone,
                        p.preferred_language, c.procedure_name,
                        (SELECT MAX(e.at) FROM case_events e
                         WHERE e.case_id = c.id AND e.action = ?) AS discharged_at
                 FROM cases c JOIN patients p ON p.id = c.patient_id
                 WHERE c.state = ?
                 ORDER BY c.id",
            ))
            .bind(Action::Discharge.as_str())
            .bind(CaseState::Discharged.as_str())
            .fetch_all(&self.pool)
            .await?;
            let mut tasks = Vec::new();
            for row in &rows {
                let Some(discharged) = row.try_get::<Option<i64>, _>("discharged_at")? else {
                    continue;
                };
                let discharged_at = from_micros(discharged)?;
                let due_on = follow_up_due(
                    discharged_at.to_zoned_datetime(tz.clone()).date(),
                    follow_up_days,
                );
                if until.is_some_and(|u| due_on > u) {
                    continue;
                }
                let case_id = CaseId::new(row.try_get("id")?);
                let dob: String = row.try_get("date_of_birth")?;
                let family: String = row.try_get("family_name")?;
                let given: String = row.try_get("given_name")?;
                tasks.push(FollowUpTask {
                    case_id,
                    patient_name: format!("{family}, {given}"),
                    mrn: row.try_get("mrn")?,
                    date_of_birth: parse_stored("date of birth", &dob)?,
                    phone: row.try_get("phone")?,
                    preferred_language: row.try_get("preferred_language")?,
                    procedure_name: row.try_get("procedure_name")?,
                    discharged_at,
                    due_on,
                    patient_answer: self.answers_of(case_id).await?.pop(),
                });
            }
            tasks.sort_by_key(|t| (t.due_on, t.case_id));
            Ok(tasks)
        }
        .await;
        let event = NewAuditEvent::new(
            actor,
            "list",
            "follow_up",
            result
                .as_ref()
                .map_or_else(outcome_of, |_| AuditOutcome::Success),
        )
        .detail(match &result {
            Ok(t) => format!("results={}", t.len()),
            Err(_) => "follow-up list".to_owned(),
        });
        self.record_audit(event).await?;
        result
    }

    /// A case's follow-up: its state, due date and answers.
    pub async fn follow_up_status(
        &self,
        actor: &Actor,
        case: CaseId,
        tz: &TimeZone,
        follow_up_days: u32,
    ) -> Result<FollowUpStatus> {
        let result = async {
            let summary = self.record_case_in_scope(actor, case).await?;
            let due_on = self
                .discharged_at(case)
                .await?
                .map(|t| follow_up_due(t.to_zoned_datetime(tz.clone()).date(), follow_up_days));
            Ok(FollowUpStatus {
                state: summary.state,
                due_on,
                answers: self.answers_of(case).await?,
            })
        }
        .await;
        let outcome = result
            .as_ref()
            .map_or_else(outcome_of, |_| AuditOutcome::Success);
        self.record_audit(NewAuditEvent::new(actor, "read", "follow_up", outcome).entity(case))
            .await?;
        result.map_err(hide_denial)
    }

    /// A nurse records the follow-up call: the answers are stored and the case
    /// closes as followed up (`RecordFollowUp`), in one transaction.
    #[allow(clippy::too_many_arguments)]
    pub async fn record_follow_up(
        &self,
        actor: &Actor,
        case: CaseId,
        answers: &FollowUpAnswers,
        tz: &TimeZone,
        follow_up_days: u32,
        at: Timestamp,
        today: Date,
    ) -> Result<FollowUpRecord> {
        let result = async {
            let summary = self.record_case_in_scope(actor, case).await?;
            let mut request = TransitionRequest::new(Action::RecordFollowUp);
            request.reason = Some(format!(
                "phone: pain {}/10, {}% relief{}",
                answers.pain_now,
                answers.relief_percent,
                if answers.problems.is_some() {
                    "; problems reported"
                } else {
                    ""
                }
            ));
            let event = pathway::decide(summary.state, &request, actor, at, today)?;
            let due_on = self.discharged_at(case).await?.map_or(today, |t| {
                follow_up_due(t.to_zoned_datetime(tz.clone()).date(), follow_up_days)
            });
            let mut tx = self.pool.begin().await?;
            self.set_case_state(&mut tx, case, event.to, summary.version, at)
                .await?;
            let id = self
                .insert_follow_up(
                    &mut tx,
                    case,
                    due_on,
                    FollowUpMethod::Phone,
                    answers,
                    true,
                    actor,
                    at,
                )
                .await?;
            self.insert_timeline(
                &mut tx,
                case,
                &Timeline {
                    action: event.action.as_str(),
                    from: Some(event.from),
                    to: event.to,
                    reason: event.reason.clone(),
                    deferred_until: None,
                    reason_code: None,
                },
                actor,
                at,
            )
            .await?;
            self.insert_audit(
                &mut *tx,
                &NewAuditEvent::new(actor, "create", "follow_up", AuditOutcome::Success)
                    .entity(case)
                    .detail(format!(
                        "follow_up={id} method=phone {}->{}",
                        event.from, event.to
                    )),
                at,
            )
            .await?;
            tx.commit().await?;
            self.follow_up_by_id(id).await
        }
        .await;
        if let Err(e) = &result {
            self.record_audit(
                NewAuditEvent::new(actor, "create", "follow_up", outcome_of(e))
                    .entity(case)
                    .detail("method=phone"),
            )
            .await?;
        }
        result.map_err(hide_denial)
    }

    /// The patient answers the follow-up form behind their link (only once it is due,
    /// while the case is discharged). Answers without problems close the case as
    /// followed up; answers that report a problem stay on the nurses' list for a call.
    pub async fn record_patient_follow_up(
        &self,
        link: &PatientLinkRecord,
        client: &str,
        answers: &FollowUpAnswers,
        tz: &TimeZone,
        follow_up_days: u32,
        now: Timestamp,
    ) -> Result<FollowUpRecord> {
        let actor = link.actor(Some(client.to_owned()));
        let case = link.case_id;
        let result = async {
            if link.status(now) != LinkStatus::Active {
                return Err(StoreError::Denied("this link no longer works"));
            }
            let summary = self.case_summary(case).await?;
            if summary.state != CaseState::Discharged
                || Action::RecordFollowUp.target(summary.state).is_none()
            {
                return Err(StoreError::Conflict(
                    "the follow-up is not open: it was recorded already, or the procedure has not been done"
                        .to_owned(),
                ));
            }
            let discharged = self.discharged_at(case).await?.ok_or_else(|| {
                StoreError::Conflict("the follow-up is not open yet".to_owned())
            })?;
            let due_on = follow_up_due(discharged.to_zoned_datetime(tz.clone()).date(), follow_up_days);
            if now.to_zoned_datetime(tz.clone()).date() < due_on {
                return Err(StoreError::Conflict(format!(
                    "the follow-up form opens on {due_on}"
                )));
            }
            let closes = answers.problems.is_none();
            let mut tx = self.pool.begin().await?;
            if closes {
                self.set_case_state(&mut tx, case, CaseState::FollowedUp, summary.version, now)
                    .await?;
            }
            let id = self
                .insert_follow_up(
                    &mut tx,
                    case,
                    due_on,
                    FollowUpMethod::PatientForm,
                    answers,
                    closes,
                    &actor,
                    now,
                )
                .await?;
            let reason = format!(
                "patient's form: pain {}/10, {}% relief{}",
                answers.pain_now,
                answers.relief_percent,
                if closes {
                    ""
                } else {
                    "; problems reported: a nurse calls"
                }
            );
            self.insert_timeline(
                &mut tx,
                case,
                &Timeline {
                    action: if closes {
                        Action::RecordFollowUp.as_str()
                    } else {
                        "patient_follow_up"
                    },
                    from: Some(summary.state),
                    to: if closes {
                        CaseState::FollowedUp
                    } else {
                        summary.state
                    },
                    reason: Some(reason),
                    deferred_until: None,
                    reason_code: None,
                },
                &actor,
                now,
            )
            .await?;
            self.insert_audit(
                &mut *tx,
                &NewAuditEvent::new(&actor, "create", "follow_up", AuditOutcome::Success)
                    .entity(case)
                    .detail(format!(
                        "follow_up={id} method=patient_form link={} closed={closes}",
                        link.id
                    )),
                now,
            )
            .await?;
            tx.commit().await?;
            self.follow_up_by_id(id).await
        }
        .await;
        if let Err(e) = &result {
            self.record_audit(
                NewAuditEvent::new(&actor, "create", "follow_up", outcome_of(e))
                    .entity(case)
                    .detail(format!("method=patient_form link={}", link.id)),
            )
            .await?;
        }
        result
    }

    #[allow(clippy::too_many_arguments)]
    async fn insert_follow_up(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        case: CaseId,
        due_on: Date,
        method: FollowUpMethod,
        answers: &FollowUpAnswers,
        closed_case: bool,
        actor: &Actor,
        at: Timestamp,
    ) -> Result<i64> {
        Ok(sqlx::query_scalar(self.sql(
            "INSERT INTO follow_ups (case_id, due_on, method, pain_now, relief_percent, problems,
                                     closed_case, recorded_by, recorded_by_user_id, recorded_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        ))
        .bind(case.get())
        .bind(due_on.to_string())
        .bind(method.as_str())
        .bind(i64::from(answers.pain_now))
        .bind(i64::from(answers.relief_percent))
        .bind(answers.problems.clone())
        .bind(i64::from(closed_case))
        .bind(actor.username.clone())
        .bind(actor.user_id.map(|u| u.get()))
        .bind(micros(at))
        .fetch_one(&mut **tx)
        .await?)
    }

    async fn follow_up_by_id(&self, id: i64) -> Result<FollowUpRecord> {
        let row = sqlx::query(self.sql(concat!(follow_up_select!(), " WHERE id = ?")))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        follow_up_from_row(&row)
    }

    /// The outcome facts of every case with a signed record (its latest signed version
    /// and its latest follow-up answer), signed from `since` on when given. Staff and
    /// admins (aggregates for the outcomes page); not referrers.
    pub async fn outcome_rows(
        &self,
        actor: &Actor,
        since: Option<Timestamp>,
        tz: &TimeZone,
    ) -> Result<Vec<OutcomeRow>> {
        let result = async {
            if matches!(actor.role, Some(Role::Referrer)) {
                return Err(StoreError::Denied(
                    "outcomes are for the department's staff",
                ));
            }
            let rows = sqlx::query(self.sql(
                "SELECT r.case_id, r.procedure_code, r.complication,
                        (SELECT f.relief_percent FROM follow_ups f WHERE f.case_id = r.case_id
                         ORDER BY f.id DESC LIMIT 1) AS relief,
                        (SELECT f.due_on FROM follow_ups f WHERE f.case_id = r.case_id
                         ORDER BY f.id DESC LIMIT 1) AS due_on,
                        (SELECT f.recorded_at FROM follow_ups f WHERE f.case_id = r.case_id
                         ORDER BY f.id DESC LIMIT 1) AS answered_at
                 FROM procedure_records r
                 WHERE r.signed_at IS NOT NULL
                   AND r.version = (SELECT MAX(r2.version) FROM procedure_records r2
                                    WHERE r2.case_id = r.case_id AND r2.signed_at IS NOT NULL)
                   AND (CAST(? AS BIGINT) IS NULL OR r.signed_at >= ?)
                 ORDER BY r.case_id",
            ))
            .bind(since.map(micros))
            .bind(since.map(micros))
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(|row| {
                    let complication: String = row.try_get("complication")?;
                    let relief: Option<i64> = row.try_get("relief")?;
                    let due_on: Option<String> = row.try_get("due_on")?;
                    let answered_at: Option<i64> = row.try_get("answered_at")?;
                    let early = match (due_on, answered_at) {
                        (Some(due), Some(at)) => follow_up_is_early(
                            parse_stored::<Date>("follow-up due date", &due)?,
                            from_micros(at)?.to_zoned_datetime(tz.clone()).date(),
                        ),
                        _ => false,
                    };
                    Ok(OutcomeRow {
                        early,
                        procedure_code: row.try_get("procedure_code")?,
                        complication: parse_stored::<Complication>("complication", &complication)?,
                        relief_percent: relief
                            .map(|r| {
                                u8::try_from(r)
                                    .map_err(|_| StoreError::Corrupt(format!("relief {r}")))
                            })
                            .transpose()?,
                    })
                })
                .collect::<Result<Vec<_>>>()
        }
        .await;
        let event = NewAuditEvent::new(
            actor,
            "read",
            "outcomes",
            result
                .as_ref()
                .map_or_else(outcome_of, |_| AuditOutcome::Success),
        )
        .detail(match &result {
            Ok(rows) => format!("procedures={}", rows.len()),
            Err(_) => "outcomes".to_owned(),
        });
        self.record_audit(event).await?;
        result
    }

    /// A user's email address, if one is on file (not patient data).
    pub async fn user_email(&self, user: UserId) -> Result<Option<String>> {
        let email: Option<String> =
            sqlx::query_scalar(self.sql("SELECT email FROM users WHERE id = ?"))
                .bind(user.get())
                .fetch_optional(&self.pool)
                .await?
                .ok_or(StoreError::NotFound)?;
        Ok(email)
    }

    /// Sets (or clears) a user's email address, where reports to them go. Admins, or
    /// irflow itself (CLI, demo).
    pub async fn set_user_email(
        &self,
        actor: &Actor,
        user: UserId,
        email: Option<&Email>,
    ) -> Result<()> {
        if !matches!(actor.role, None | Some(Role::Admin)) {
            self.record_audit(
                NewAuditEvent::new(actor, "update", "user", AuditOutcome::Denied).entity(user),
            )
            .await?;
            return Err(StoreError::Denied("users are managed by administrators"));
        }
        let now = Timestamp::now();
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(self.sql("UPDATE users SET email = ? WHERE id = ?"))
            .bind(email.map(|e| e.as_str().to_owned()))
            .bind(user.get())
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() != 1 {
            return Err(StoreError::NotFound);
        }
        self.insert_audit(
            &mut *tx,
            &NewAuditEvent::new(actor, "update", "user", AuditOutcome::Success)
                .entity(user)
                .detail("email"),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::TestDatabase;

    /// The database itself keeps a signed record as signed (and follow-ups as given),
    /// whatever the application does: on every configured backend.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[allow(clippy::unwrap_used, clippy::expect_used)]
    async fn signed_records_and_follow_ups_cannot_be_changed_in_the_database() {
        for backend in TestDatabase::backends() {
            let db = TestDatabase::new(backend).await;
            let s = &db.store;
            let run = |q: &'static str| async move {
                sqlx::query(s.sql(q)).execute(&s.pool).await.map(|_| ())
            };
            run(
                "INSERT INTO users (id, username, display_name, role, password_hash, created_at)
                 VALUES (1, 'rad', 'Dr Rad', 'radiologist', 'x', 0)",
            )
            .await
            .unwrap();
            run("INSERT INTO patients (id, family_name, given_name, date_of_birth, preferred_language, created_at)
                 VALUES (1, 'Doe', 'Jane', '1960-01-02', 'en', 0)")
                .await
                .unwrap();
            run("INSERT INTO cases (id, patient_id, referrer_id, procedure_code, procedure_name, state,
                                    version, created_at, updated_at)
                 VALUES (1, 1, 1, '27096', 'SI joint', 'discharged', 1, 0, 0)")
                .await
                .unwrap();
            run("INSERT INTO procedure_records (id, case_id, version, procedure_code, side, guidance,
                    contrast_agent, steroid_agent, anaesthetic_agent, pain_before, pain_after,
                    complication, created_by, created_at, updated_at, signed_by, signed_by_user_id,
                    signed_by_name, signed_at)
                 VALUES (1, 1, 1, '27096', 'right', 'fluoroscopy', 'none', 'none', 'none', '6', '1',
                         'none', 'rad', 0, 0, 'rad', 1, 'Dr Rad', 10)")
                .await
                .unwrap();
            let e = run("UPDATE procedure_records SET pain_after = '0' WHERE id = 1")
                .await
                .expect_err("a signed record is never changed");
            assert!(e.to_string().contains("cannot be changed"), "{e}");
            assert!(
                run("DELETE FROM procedure_records WHERE id = 1")
                    .await
                    .is_err()
            );
            // An amendment without its reason, or a signature without the values, is refused.
            assert!(
                run("INSERT INTO procedure_records (case_id, version, procedure_code, side, guidance,
                        contrast_agent, steroid_agent, anaesthetic_agent, pain_before, pain_after,
                        complication, created_by, created_at, updated_at, signed_by,
                        signed_by_user_id, signed_by_name, signed_at)
                     VALUES (1, 2, '27096', 'right', 'fluoroscopy', 'none', 'none', 'none', '6', '1',
                             'none', 'rad', 0, 0, 'rad', 1, 'Dr Rad', 10)")
                    .await
                    .is_err()
            );
            assert!(
                run(
                    "INSERT INTO procedure_records (case_id, version, procedure_code, created_by,
                        created_at, updated_at, signed_by, signed_by_user_id, signed_at)
                     VALUES (1, 2, '27096', 'rad', 0, 0, 'rad', 1, 10)"
                )
                .await
                .is_err()
            );
            // A draft may be saved again, and signed once.
            run(
                "INSERT INTO procedure_records (id, case_id, version, procedure_code, created_by,
                    created_at, updated_at)
                 VALUES (2, 1, 2, '27096', 'rad', 0, 0)",
            )
            .await
            .unwrap();
            run("UPDATE procedure_records SET notes = 'typed' WHERE id = 2")
                .await
                .unwrap();
            run(
                "INSERT INTO follow_ups (case_id, due_on, method, pain_now, relief_percent,
                    closed_case, recorded_by, recorded_at)
                 VALUES (1, '2026-01-16', 'phone', 2, 70, 1, 'nurse', 0)",
            )
            .await
            .unwrap();
            assert!(
                run("UPDATE follow_ups SET relief_percent = 90")
                    .await
                    .is_err()
            );
            assert!(run("DELETE FROM follow_ups").await.is_err());
            assert!(
                run(
                    "INSERT INTO follow_ups (case_id, due_on, method, pain_now, relief_percent,
                        closed_case, recorded_by, recorded_at)
                     VALUES (1, '2026-01-16', 'phone', 11, 70, 1, 'nurse', 0)"
                )
                .await
                .is_err(),
                "pain is 0-10"
            );
            db.finish().await;
        }
    }
}
