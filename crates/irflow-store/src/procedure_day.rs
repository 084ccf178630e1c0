//! The procedure day: the pre-procedure checklist (answers, consent, time-out), the
//! start and end of the procedure, vital signs in recovery, and the discharge.
//!
//! The day belongs to the case's booked appointment. What the checklist requires is
//! computed by the caller from the screening and the rule pack
//! ([`irflow_domain::procedure_day::Requirements`]); the domain decides what each
//! answer means, and every write here re-evaluates the whole checklist against the
//! requirements in the same transaction, so the procedure never starts on a stale
//! "complete". The generic transition path refuses `start_procedure`, `not_treated`,
//! `end_procedure` and `discharge`: they happen only through these calls.
//!
//! Every call takes the [`Actor`] and leaves an audit event (in the transaction for
//! writes); clinical text never goes into the audit detail.

use irflow_domain::pathway::{self, TransitionRequest};
use irflow_domain::procedure_day::{
    self as day, Answer, ChecklistItem, ChecklistStatus, Consent, ConsentMethod, DischargeCheck,
    DischargeRefusal, Outcome, Recorded, Requirements, TimeOut, Vitals,
};
use irflow_domain::{Action, Actor, CaseId, CaseState, PathwayEvent, Role};
use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::audit::{AuditOutcome, NewAuditEvent};
use crate::cases::{Timeline, hide_denial, outcome_of, scope_of};
use crate::{Result, Store, StoreError, from_micros, micros, parse_stored};

/// Where a case's procedure day stands (what the board and the FHIR Procedure read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayStatus {
    /// The case.
    pub case_id: CaseId,
    /// Checked in.
    pub arrived_at: Option<Timestamp>,
    /// The checklist (time-out included) found complete; `None` while it is not.
    pub checklist_done_at: Option<Timestamp>,
    /// The procedure started.
    pub procedure_started_at: Option<Timestamp>,
    /// The procedure ended (recovery began).
    pub procedure_ended_at: Option<Timestamp>,
    /// Minimum monitoring after the procedure, for a patient who drives home.
    pub monitoring_minutes: Option<u32>,
    /// Went home.
    pub discharged_at: Option<Timestamp>,
    /// A nurse's reason for discharging before the end of monitoring.
    pub discharge_override: Option<String>,
}

/// The day in full, for the board and the day's pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayRecord {
    /// The summary.
    pub status: DayStatus,
    /// The appointment the day belongs to.
    pub appointment_id: i64,
    /// Why the checklist is stopped, while it is.
    pub checklist_stopped: Option<String>,
    /// Checklist entries recorded so far (answers, consent, time-out).
    pub checklist_entries: i64,
    /// Who started the procedure.
    pub started_by: Option<String>,
    /// Who ended it.
    pub ended_by: Option<String>,
    /// Who discharged the patient.
    pub discharged_by: Option<String>,
    /// The discharge criteria confirmed (rule-pack ids).
    pub discharge_criteria: Vec<String>,
}

/// One recorded checklist answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerRecord {
    /// The answer.
    pub answer: Answer,
    /// What it meant when given.
    pub outcome: Outcome,
    /// A note (free text).
    pub note: Option<String>,
    /// Who.
    pub recorded_by: String,
    /// When.
    pub recorded_at: Timestamp,
}

/// Consent as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentRecord {
    /// The consent.
    pub consent: Consent,
    /// The rule pack whose risks were shown ("name version").
    pub rule_pack: String,
    /// Who recorded it.
    pub recorded_by: String,
    /// When.
    pub recorded_at: Timestamp,
}

/// The time-out as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeOutRecord {
    /// What was confirmed.
    pub time_out: TimeOut,
    /// The procedure read out (CPT).
    pub procedure_code: String,
    /// The levels read out.
    pub levels: Option<String>,
    /// The side read out.
    pub side: Option<String>,
    /// Who.
    pub recorded_by: String,
    /// When.
    pub recorded_at: Timestamp,
}

/// The checklist as it stands: the latest answer per item, consent, the time-out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChecklistRecord {
    /// The day.
    pub day: DayRecord,
    /// The latest answer per item, in checklist order.
    pub answers: Vec<AnswerRecord>,
    /// The latest consent.
    pub consent: Option<ConsentRecord>,
    /// The latest time-out.
    pub time_out: Option<TimeOutRecord>,
}

impl ChecklistRecord {
    /// What the domain evaluates.
    pub fn recorded(&self) -> Recorded {
        Recorded {
            answers: self.answers.iter().map(|a| a.answer.clone()).collect(),
            consent: self.consent.is_some(),
            time_out: self.time_out.as_ref().map(|t| t.time_out),
        }
    }

    /// The latest answer to an item.
    pub fn answer(&self, item: ChecklistItem) -> Option<&AnswerRecord> {
        self.answers.iter().find(|a| a.answer.item() == item)
    }
}

/// What recording an answer did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerSaved {
    /// What the answer means (a stop is recorded and stops the checklist).
    pub outcome: Outcome,
    /// The whole checklist now.
    pub status: ChecklistStatus,
}

/// One set of vital signs as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VitalsRecord {
    /// Id.
    pub id: i64,
    /// When they were taken.
    pub taken_at: Timestamp,
    /// The values.
    pub vitals: Vitals,
    /// Who.
    pub recorded_by: String,
}

/// A discharge to record.
#[derive(Debug, Clone, Default)]
pub struct DischargeRequest {
    /// The pack's criteria: (id, label).
    pub criteria: Vec<(String, String)>,
    /// The ids confirmed.
    pub confirmed: Vec<String>,
    /// A reason to discharge before the end of monitoring (nurse only).
    pub override_reason: Option<String>,
}

/// A recorded discharge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discharged {
    /// The pathway step.
    pub event: PathwayEvent,
    /// The override reason, when the discharge was early.
    pub override_reason: Option<String>,
}

/// A day's columns, from its appointment (a day with nothing recorded yet has no
/// `procedure_days` row: its columns are NULL).
macro_rules! day_select {
    () => {
        "SELECT a.id AS appointment_id, a.case_id, a.attendance_at, d.checklist_done_at,
                d.checklist_stopped, d.monitoring_minutes, d.started_at, d.started_by, d.ended_at,
                d.ended_by, d.discharged_at, d.discharged_by, d.discharge_override,
                d.discharge_criteria,
                (SELECT COUNT(*) FROM checklist_answers x WHERE x.appointment_id = a.id)
                + (SELECT COUNT(*) FROM consents x WHERE x.appointment_id = a.id)
                + (SELECT COUNT(*) FROM time_outs x WHERE x.appointment_id = a.id) AS entries
         FROM appointments a
         JOIN cases c ON c.id = a.case_id
         LEFT JOIN procedure_days d ON d.appointment_id = a.id"
    };
}

fn opt_time(row: &AnyRow, column: &str) -> Result<Option<Timestamp>> {
    let raw: Option<i64> = row.try_get(column)?;
    raw.map(from_micros).transpose()
}

fn opt_u32(row: &AnyRow, column: &str) -> Result<Option<u32>> {
    let raw: Option<i64> = row.try_get(column)?;
    raw.map(|v| {
        u32::try_from(v).map_err(|_| StoreError::Corrupt(format!("{column} {v} out of range")))
    })
    .transpose()
}

fn day_from_row(row: &AnyRow) -> Result<DayRecord> {
    let criteria: Option<String> = row.try_get("discharge_criteria")?;
    Ok(DayRecord {
        status: DayStatus {
            case_id: CaseId::new(row.try_get("case_id")?),
            arrived_at: opt_time(row, "attendance_at")?,
            checklist_done_at: opt_time(row, "checklist_done_at")?,
            procedure_started_at: opt_time(row, "started_at")?,
            procedure_ended_at: opt_time(row, "ended_at")?,
            monitoring_minutes: opt_u32(row, "monitoring_minutes")?,
            discharged_at: opt_time(row, "discharged_at")?,
            discharge_override: row.try_get("discharge_override")?,
        },
        appointment_id: row.try_get("appointment_id")?,
        checklist_stopped: row.try_get("checklist_stopped")?,
        checklist_entries: row.try_get("entries")?,
        started_by: row.try_get("started_by")?,
        ended_by: row.try_get("ended_by")?,
        discharged_by: row.try_get("discharged_by")?,
        discharge_criteria: criteria
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_owned)
            .collect(),
    })
}

fn clinical(actor: &Actor, what: &'static str) -> Result<()> {
    match actor.role {
        Some(Role::Nurse | Role::Radiologist) => Ok(()),
        _ => Err(StoreError::Denied(what)),
    }
}

fn field(item: ChecklistItem, message: String) -> StoreError {
    StoreError::Field {
        field: item.as_str(),
        message,
    }
}

fn bool_i64(b: bool) -> i64 {
    i64::from(b)
}

fn check_note(note: Option<&str>) -> Result<Option<String>> {
    let note = note.map(str::trim).filter(|n| !n.is_empty());
    if let Some(n) = note {
        let chars = n.chars().count();
        if chars > day::MAX_TEXT_CHARS {
            return Err(StoreError::Field {
                field: "note",
                message: format!(
                    "the note is too long ({chars} characters; at most {})",
                    day::MAX_TEXT_CHARS
                ),
            });
        }
    }
    Ok(note.map(str::to_owned))
}

type Tx<'a> = sqlx::Transaction<'a, sqlx::Any>;

impl Store {
    /// Where a case's procedure day stands, if it has a booked appointment (an audited
    /// read; referrers only for their own cases, others' are "not found").
    pub async fn day_status(&self, actor: &Actor, case: CaseId) -> Result<Option<DayStatus>> {
        let result = async {
            let scope = scope_of(actor)?;
            let summary = self.case_summary(case).await?;
            if !scope.allows(summary.referrer_id) {
                return Err(StoreError::Denied("not a case this referrer referred"));
            }
            self.day_of_case(case).await
        }
        .await;
        let outcome = result
            .as_ref()
            .map_or_else(outcome_of, |_| AuditOutcome::Success);
        self.record_audit(NewAuditEvent::new(actor, "read", "procedure_day", outcome).entity(case))
            .await?;
        result.map(|d| d.map(|d| d.status)).map_err(hide_denial)
    }

    /// The days of several cases (the board), one audited read; cases without a
    /// booked appointment, or not visible to the actor, are left out.
    pub async fn day_records(&self, actor: &Actor, cases: &[CaseId]) -> Result<Vec<DayRecord>> {
        let result = async {
            let scope = scope_of(actor)?;
            let mut out = Vec::new();
            for &case in cases {
                let summary = match self.case_summary(case).await {
                    Ok(s) => s,
                    Err(StoreError::NotFound) => continue,
                    Err(e) => return Err(e),
                };
                if !scope.allows(summary.referrer_id) {
                    continue;
                }
                if let Some(d) = self.day_of_case(case).await? {
                    out.push(d);
                }
            }
            Ok(out)
        }
        .await;
        let outcome = result
            .as_ref()
            .map_or_else(outcome_of, |_| AuditOutcome::Success);
        let mut event = NewAuditEvent::new(actor, "list", "procedure_day", outcome);
        if let Ok(found) = &result {
            event = event.detail(format!("count={}", found.len()));
        }
        self.record_audit(event).await?;
        result.map_err(hide_denial)
    }

    /// The case's day (its booked appointment's), whether or not anything is recorded.
    async fn day_of_case(&self, case: CaseId) -> Result<Option<DayRecord>> {
        let row = sqlx::query(self.sql(concat!(
            day_select!(),
            " WHERE a.id = (SELECT MAX(id) FROM appointments WHERE case_id = ? AND status = 'booked')"
        )))
        .bind(case.get())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(day_from_row).transpose()
    }

    /// The days of the booked appointments starting in `[from, to)` (the board), one
    /// audited read; referrers only their own cases'.
    pub async fn day_records_between(
        &self,
        actor: &Actor,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<DayRecord>> {
        let result = async {
            let scope = scope_of(actor)?;
            let rows = sqlx::query(self.sql(concat!(
                day_select!(),
                " WHERE a.status = 'booked' AND a.starts_at >= ? AND a.starts_at < ?
                   AND (CAST(? AS BIGINT) IS NULL OR c.referrer_id = ?)
                 ORDER BY a.starts_at, a.id"
            )))
            .bind(micros(from))
            .bind(micros(to))
            .bind(scope.referrer_filter())
            .bind(scope.referrer_filter())
            .fetch_all(&self.pool)
            .await?;
            rows.iter().map(day_from_row).collect::<Result<Vec<_>>>()
        }
        .await;
        let outcome = result
            .as_ref()
            .map_or_else(outcome_of, |_| AuditOutcome::Success);
        let mut event = NewAuditEvent::new(actor, "list", "procedure_day", outcome);
        if let Ok(found) = &result {
            event = event.detail(format!("count={}", found.len()));
        }
        self.record_audit(event).await?;
        result.map_err(hide_denial)
    }

    /// The checklist as it stands (an audited read, staff and the case's referrer);
    /// `None` when the case has no booked appointment.
    pub async fn checklist_record(
        &self,
        actor: &Actor,
        case: CaseId,
    ) -> Result<Option<ChecklistRecord>> {
        let result = async {
            let scope = scope_of(actor)?;
            let summary = self.case_summary(case).await?;
            if !scope.allows(summary.referrer_id) {
                return Err(StoreError::Denied("not a case this referrer referred"));
            }
            let Some(day) = self.day_of_case(case).await? else {
                return Ok(None);
            };
            self.checklist_of(day).await.map(Some)
        }
        .await;
        let outcome = result
            .as_ref()
            .map_or_else(outcome_of, |_| AuditOutcome::Success);
        self.record_audit(NewAuditEvent::new(actor, "read", "checklist", outcome).entity(case))
            .await?;
        result.map_err(hide_denial)
    }

    async fn checklist_of(&self, day: DayRecord) -> Result<ChecklistRecord> {
        let rows = sqlx::query(self.sql(
            "SELECT item, value, outcome, message, note, recorded_by, recorded_at
             FROM checklist_answers WHERE appointment_id = ? ORDER BY id DESC",
        ))
        .bind(day.appointment_id)
        .fetch_all(&self.pool)
        .await?;
        let mut answers: Vec<AnswerRecord> = Vec::new();
        for row in &rows {
            let item: String = row.try_get("item")?;
            let item: ChecklistItem = parse_stored("checklist item", &item)?;
            if answers.iter().any(|a| a.answer.item() == item) {
                continue;
            }
            let value: String = row.try_get("value")?;
            let outcome: String = row.try_get("outcome")?;
            let message: Option<String> = row.try_get("message")?;
            answers.push(AnswerRecord {
                answer: Answer::decode(item, &value)
                    .map_err(|e| StoreError::Corrupt(format!("checklist answer: {e}")))?,
                outcome: match outcome.as_str() {
                    "stop" => Outcome::Stop(message.unwrap_or_default()),
                    _ => Outcome::Done,
                },
                note: row.try_get("note")?,
                recorded_by: row.try_get("recorded_by")?,
                recorded_at: from_micros(row.try_get("recorded_at")?)?,
            });
        }
        answers.sort_by_key(|a| a.answer.item());
        let consent = sqlx::query(self.sql(
            "SELECT method, signer, signature_png, witness, risks, rule_pack, recorded_by, recorded_at
             FROM consents WHERE appointment_id = ? ORDER BY id DESC LIMIT 1",
        ))
        .bind(day.appointment_id)
        .fetch_optional(&self.pool)
        .await?
        .map(|row| -> Result<ConsentRecord> {
            let method: String = row.try_get("method")?;
            let risks: String = row.try_get("risks")?;
            Ok(ConsentRecord {
                consent: Consent {
                    method: parse_stored::<ConsentMethod>("consent method", &method)?,
                    signer: row.try_get("signer")?,
                    signature_png: row.try_get("signature_png")?,
                    witness: row.try_get("witness")?,
                    risks: risks.lines().map(str::to_owned).collect(),
                },
                rule_pack: row.try_get("rule_pack")?,
                recorded_by: row.try_get("recorded_by")?,
                recorded_at: from_micros(row.try_get("recorded_at")?)?,
            })
        })
        .transpose()?;
        let time_out = sqlx::query(self.sql(
            "SELECT patient_ok, procedure_ok, level_ok, side_ok, procedure_code, levels, side,
                    recorded_by, recorded_at
             FROM time_outs WHERE appointment_id = ? ORDER BY id DESC LIMIT 1",
        ))
        .bind(day.appointment_id)
        .fetch_optional(&self.pool)
        .await?
        .map(|row| -> Result<TimeOutRecord> {
            let flag = |c: &str| -> Result<bool> { Ok(row.try_get::<i64, _>(c)? == 1) };
            Ok(TimeOutRecord {
                time_out: TimeOut {
                    patient: flag("patient_ok")?,
                    procedure: flag("procedure_ok")?,
                    level: flag("level_ok")?,
                    side: flag("side_ok")?,
                },
                procedure_code: row.try_get("procedure_code")?,
                levels: row.try_get("levels")?,
                side: row.try_get("side")?,
                recorded_by: row.try_get("recorded_by")?,
                recorded_at: from_micros(row.try_get("recorded_at")?)?,
            })
        })
        .transpose()?;
        Ok(ChecklistRecord {
            day,
            answers,
            consent,
            time_out,
        })
    }

    /// Records one checklist answer for an arrived patient (nurse or radiologist) and
    /// re-evaluates the checklist. An answer that cannot be accepted as given (a typing
    /// error, a drug not in the plan) is refused and nothing is stored; an answer that
    /// stops the checklist (a blood thinner not held long enough, ...) is stored and
    /// returned with [`Outcome::Stop`] and its reason.
    #[allow(clippy::too_many_arguments)]
    pub async fn record_answer(
        &self,
        actor: &Actor,
        case: CaseId,
        answer: &Answer,
        note: Option<&str>,
        req: &Requirements,
        at: Timestamp,
        today: Date,
    ) -> Result<AnswerSaved> {
        let item = answer.item();
        let result = async {
            clinical(actor, "the checklist is kept by nurses and radiologists")?;
            let note = check_note(note)?;
            let outcome = day::check_answer(req, answer, today).map_err(|m| field(item, m))?;
            let (mut tx, appointment) = self.open_day(actor, case, at).await?;
            self.require_state(&mut tx, case, &[CaseState::Arrived], "the checklist")
                .await?;
            let message = match &outcome {
                Outcome::Stop(m) => Some(m.clone()),
                Outcome::Done => None,
            };
            sqlx::query(self.sql(
                "INSERT INTO checklist_answers (appointment_id, case_id, item, value, outcome, message, note,
                                                recorded_by, recorded_role, recorded_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            ))
            .bind(appointment)
            .bind(case.get())
            .bind(item.as_str())
            .bind(answer.encode())
            .bind(if message.is_some() { "stop" } else { "done" })
            .bind(message)
            .bind(note)
            .bind(actor.username.clone())
            .bind(actor.role.map(|r| r.as_str()))
            .bind(micros(at))
            .execute(&mut *tx)
            .await?;
            if let Answer::Escort(plan) = answer {
                let minutes = match plan {
                    day::EscortPlan::Monitoring => Some(i64::from(req.monitoring_minutes)),
                    day::EscortPlan::Escort => None,
                };
                sqlx::query(
                    self.sql("UPDATE procedure_days SET monitoring_minutes = ? WHERE appointment_id = ?"),
                )
                .bind(minutes)
                .bind(appointment)
                .execute(&mut *tx)
                .await?;
            }
            let status = self
                .settle_checklist(&mut tx, appointment, req, at, today)
                .await?;
            self.insert_audit(
                &mut *tx,
                &NewAuditEvent::new(actor, "record", "checklist", AuditOutcome::Success)
                    .entity(case)
                    .detail(format!(
                        "item={item} outcome={}",
                        if matches!(outcome, Outcome::Stop(_)) { "stop" } else { "done" }
                    )),
                at,
            )
            .await?;
            tx.commit().await?;
            Ok(AnswerSaved { outcome, status })
        }
        .await;
        self.audit_failure(
            actor,
            "record",
            "checklist",
            case,
            &result,
            format!("item={item}"),
        )
        .await?;
        result.map_err(hide_denial)
    }

    /// Records consent (nurse or radiologist) with the risks shown and the rule pack
    /// they came from ("name version"), and re-evaluates the checklist.
    #[allow(clippy::too_many_arguments)]
    pub async fn record_consent(
        &self,
        actor: &Actor,
        case: CaseId,
        consent: &Consent,
        rule_pack: &str,
        req: &Requirements,
        at: Timestamp,
        today: Date,
    ) -> Result<ChecklistStatus> {
        let result = async {
            clinical(actor, "consent is taken by nurses and radiologists")?;
            day::check_consent(consent).map_err(|m| field(ChecklistItem::Consent, m))?;
            let (mut tx, appointment) = self.open_day(actor, case, at).await?;
            self.require_state(&mut tx, case, &[CaseState::Arrived], "consent")
                .await?;
            sqlx::query(self.sql(
                "INSERT INTO consents (appointment_id, case_id, method, signer, signature_png, witness, risks,
                                       rule_pack, recorded_by, recorded_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            ))
            .bind(appointment)
            .bind(case.get())
            .bind(consent.method.as_str())
            .bind(consent.signer.trim().to_owned())
            .bind(consent.signature_png.clone())
            .bind(consent.witness.trim().to_owned())
            .bind(consent.risks.join("\n"))
            .bind(rule_pack.to_owned())
            .bind(actor.username.clone())
            .bind(micros(at))
            .execute(&mut *tx)
            .await?;
            let status = self
                .settle_checklist(&mut tx, appointment, req, at, today)
                .await?;
            self.insert_audit(
                &mut *tx,
                &NewAuditEvent::new(actor, "record", "consent", AuditOutcome::Success)
                    .entity(case)
                    .detail(format!("method={}", consent.method.as_str())),
                at,
            )
            .await?;
            tx.commit().await?;
            Ok(status)
        }
        .await;
        self.audit_failure(actor, "record", "consent", case, &result, String::new())
            .await?;
        result.map_err(hide_denial)
    }

    /// Records the time-out (nurse or radiologist): only once everything else on the
    /// checklist is done. A time-out that finds a mismatch is recorded as a stop.
    pub async fn record_time_out(
        &self,
        actor: &Actor,
        case: CaseId,
        time_out: &TimeOut,
        req: &Requirements,
        at: Timestamp,
        today: Date,
    ) -> Result<AnswerSaved> {
        let result = async {
            clinical(actor, "the time-out is done by the team in the room")?;
            let summary = self.case_summary(case).await?;
            let (mut tx, appointment) = self.open_day(actor, case, at).await?;
            self.require_state(&mut tx, case, &[CaseState::Arrived], "the time-out")
                .await?;
            let before = self.evaluate(&mut tx, appointment, req, today).await?;
            before
                .ready_for_time_out()
                .map_err(StoreError::Conflict)?;
            sqlx::query(self.sql(
                "INSERT INTO time_outs (appointment_id, case_id, patient_ok, procedure_ok, level_ok, side_ok,
                                        procedure_code, levels, side, recorded_by, recorded_role, recorded_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            ))
            .bind(appointment)
            .bind(case.get())
            .bind(bool_i64(time_out.patient))
            .bind(bool_i64(time_out.procedure))
            .bind(bool_i64(time_out.level))
            .bind(bool_i64(time_out.side))
            .bind(summary.procedure_code.clone())
            .bind(summary.levels.clone())
            .bind(summary.side.map(|s| s.as_str().to_owned()))
            .bind(actor.username.clone())
            .bind(actor.role.map(|r| r.as_str()))
            .bind(micros(at))
            .execute(&mut *tx)
            .await?;
            let status = self
                .settle_checklist(&mut tx, appointment, req, at, today)
                .await?;
            let outcome = time_out.outcome();
            self.insert_audit(
                &mut *tx,
                &NewAuditEvent::new(actor, "record", "time_out", AuditOutcome::Success)
                    .entity(case)
                    .detail(format!(
                        "outcome={}",
                        if matches!(outcome, Outcome::Stop(_)) { "stop" } else { "done" }
                    )),
                at,
            )
            .await?;
            tx.commit().await?;
            Ok(AnswerSaved { outcome, status })
        }
        .await;
        self.audit_failure(actor, "record", "time_out", case, &result, String::new())
            .await?;
        result.map_err(hide_denial)
    }

    /// Starts the procedure (radiologist or nurse): refused, naming what is missing or
    /// what stops it, unless the whole checklist — time-out included — is complete
    /// against `req` at this moment. The move, the start time, the timeline and the
    /// audit event are one transaction.
    pub async fn start_procedure(
        &self,
        actor: &Actor,
        case: CaseId,
        req: &Requirements,
        at: Timestamp,
        today: Date,
    ) -> Result<PathwayEvent> {
        let result = async {
            let (mut tx, appointment) = self.open_day(actor, case, at).await?;
            let (state, version) = self.case_state(&mut tx, case).await?;
            let event = pathway::decide(
                state,
                &TransitionRequest::new(Action::StartProcedure),
                actor,
                at,
                today,
            )?;
            let status = self
                .settle_checklist(&mut tx, appointment, req, at, today)
                .await?;
            if let Some(why) = status.refusal() {
                // The checklist's state is kept as found; the start itself is refused.
                tx.commit().await?;
                return Err(StoreError::Conflict(why));
            }
            sqlx::query(self.sql(
                "UPDATE procedure_days SET started_at = ?, started_by = ? WHERE appointment_id = ?",
            ))
            .bind(micros(at))
            .bind(actor.username.clone())
            .bind(appointment)
            .execute(&mut *tx)
            .await?;
            self.move_case(&mut tx, actor, case, &event, version, None, "")
                .await?;
            tx.commit().await?;
            Ok(event)
        }
        .await;
        self.audit_failure(
            actor,
            "transition",
            "case",
            case,
            &result,
            "action=start_procedure".to_owned(),
        )
        .await?;
        result.map_err(hide_denial)
    }

    /// Ends the procedure (radiologist or nurse): recovery begins, and a patient who
    /// drives is monitored from now for the minutes fixed at the checklist.
    pub async fn end_procedure(
        &self,
        actor: &Actor,
        case: CaseId,
        at: Timestamp,
        today: Date,
    ) -> Result<PathwayEvent> {
        let result = async {
            let (mut tx, appointment) = self.open_day(actor, case, at).await?;
            let (state, version) = self.case_state(&mut tx, case).await?;
            let event = pathway::decide(
                state,
                &TransitionRequest::new(Action::EndProcedure),
                actor,
                at,
                today,
            )?;
            let started: Option<i64> = sqlx::query_scalar(
                self.sql("SELECT started_at FROM procedure_days WHERE appointment_id = ?"),
            )
            .bind(appointment)
            .fetch_one(&mut *tx)
            .await?;
            if started.is_some_and(|s| s > micros(at)) {
                return Err(StoreError::Invalid(
                    "the procedure cannot end before it started".to_owned(),
                ));
            }
            sqlx::query(self.sql(
                "UPDATE procedure_days SET ended_at = ?, ended_by = ? WHERE appointment_id = ?",
            ))
            .bind(micros(at))
            .bind(actor.username.clone())
            .bind(appointment)
            .execute(&mut *tx)
            .await?;
            self.move_case(&mut tx, actor, case, &event, version, None, "")
                .await?;
            tx.commit().await?;
            Ok(event)
        }
        .await;
        self.audit_failure(
            actor,
            "transition",
            "case",
            case,
            &result,
            "action=end_procedure".to_owned(),
        )
        .await?;
        result.map_err(hide_denial)
    }

    /// Sends an arrived patient home untreated today (nurse, radiologist or scheduler),
    /// with the reason — typically after a checklist stop, when the radiologist decides
    /// on another day. In one transaction: the appointment is cancelled with "not
    /// treated today: …" (its check-in kept), its room, radiologist and chair are
    /// released, and the case goes back to ready to book, on the timeline and audited.
    /// The day's checklist stays as recorded; a new booking starts a new day.
    pub async fn not_treated(
        &self,
        actor: &Actor,
        case: CaseId,
        reason: &str,
        at: Timestamp,
        today: Date,
    ) -> Result<PathwayEvent> {
        let result = async {
            let (mut tx, appointment) = self.open_day(actor, case, at).await?;
            let (state, version) = self.case_state(&mut tx, case).await?;
            let event = pathway::decide(
                state,
                &TransitionRequest::new(Action::NotTreated).because(reason),
                actor,
                at,
                today,
            )?;
            let why = event.reason.clone().unwrap_or_default();
            sqlx::query(self.sql("DELETE FROM reservations WHERE appointment_id = ?"))
                .bind(appointment)
                .execute(&mut *tx)
                .await?;
            sqlx::query(self.sql(
                "UPDATE appointments SET status = 'cancelled', cancelled_reason = ? WHERE id = ?",
            ))
            .bind(format!("not treated today: {why}"))
            .bind(appointment)
            .execute(&mut *tx)
            .await?;
            self.move_case(
                &mut tx,
                actor,
                case,
                &event,
                version,
                Some(why),
                &format!("appointment={appointment}"),
            )
            .await?;
            tx.commit().await?;
            Ok(event)
        }
        .await;
        self.audit_failure(
            actor,
            "transition",
            "case",
            case,
            &result,
            "action=not_treated".to_owned(),
        )
        .await?;
        result.map_err(hide_denial)
    }

    /// Records a set of vital signs taken at `taken_at` (nurse or radiologist), from
    /// arrival to discharge.
    pub async fn record_vitals(
        &self,
        actor: &Actor,
        case: CaseId,
        vitals: &Vitals,
        taken_at: Timestamp,
        at: Timestamp,
    ) -> Result<i64> {
        let result = async {
            clinical(actor, "vital signs are recorded by nurses and radiologists")?;
            vitals.check().map_err(|(field, message)| StoreError::Field { field, message })?;
            if taken_at > at + jiff::SignedDuration::from_mins(5) {
                return Err(StoreError::Field {
                    field: "taken_at",
                    message: "vital signs cannot be taken in the future".to_owned(),
                });
            }
            let (mut tx, appointment) = self.open_day(actor, case, at).await?;
            self.require_state(
                &mut tx,
                case,
                &[CaseState::Arrived, CaseState::InProcedure, CaseState::Recovery],
                "vital signs",
            )
            .await?;
            let id: i64 = sqlx::query_scalar(self.sql(
                "INSERT INTO vitals (appointment_id, case_id, taken_at, systolic, diastolic, pulse, spo2, pain,
                                     notes, recorded_by, recorded_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            ))
            .bind(appointment)
            .bind(case.get())
            .bind(micros(taken_at))
            .bind(vitals.systolic.map(i64::from))
            .bind(vitals.diastolic.map(i64::from))
            .bind(vitals.pulse.map(i64::from))
            .bind(vitals.spo2.map(i64::from))
            .bind(vitals.pain.map(i64::from))
            .bind(vitals.notes.trim().to_owned())
            .bind(actor.username.clone())
            .bind(micros(at))
            .fetch_one(&mut *tx)
            .await?;
            self.insert_audit(
                &mut *tx,
                &NewAuditEvent::new(actor, "record", "vitals", AuditOutcome::Success)
                    .entity(case)
                    .detail(format!("vitals={id}")),
                at,
            )
            .await?;
            tx.commit().await?;
            Ok(id)
        }
        .await;
        self.audit_failure(actor, "record", "vitals", case, &result, String::new())
            .await?;
        result.map_err(hide_denial)
    }

    /// The vital signs of the case's day, in the order taken (an audited read).
    pub async fn vitals(&self, actor: &Actor, case: CaseId) -> Result<Vec<VitalsRecord>> {
        let result = async {
            let scope = scope_of(actor)?;
            let summary = self.case_summary(case).await?;
            if !scope.allows(summary.referrer_id) {
                return Err(StoreError::Denied("not a case this referrer referred"));
            }
            let Some(day) = self.day_of_case(case).await? else {
                return Ok(Vec::new());
            };
            let rows = sqlx::query(self.sql(
                "SELECT id, taken_at, systolic, diastolic, pulse, spo2, pain, notes, recorded_by
                 FROM vitals WHERE appointment_id = ? ORDER BY taken_at, id",
            ))
            .bind(day.appointment_id)
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(|row| {
                    Ok(VitalsRecord {
                        id: row.try_get("id")?,
                        taken_at: from_micros(row.try_get("taken_at")?)?,
                        vitals: Vitals {
                            systolic: opt_u32(row, "systolic")?,
                            diastolic: opt_u32(row, "diastolic")?,
                            pulse: opt_u32(row, "pulse")?,
                            spo2: opt_u32(row, "spo2")?,
                            pain: opt_u32(row, "pain")?,
                            notes: row.try_get("notes")?,
                        },
                        recorded_by: row.try_get("recorded_by")?,
                    })
                })
                .collect()
        }
        .await;
        let outcome = result
            .as_ref()
            .map_or_else(outcome_of, |_| AuditOutcome::Success);
        self.record_audit(NewAuditEvent::new(actor, "read", "vitals", outcome).entity(case))
            .await?;
        result.map_err(hide_denial)
    }

    /// Discharges a patient from recovery (nurse): every criterion confirmed, and for
    /// a patient who drives, the minimum monitoring over — or a nurse's override
    /// reason, which is recorded with the discharge, on the timeline and in the audit
    /// log. `tz` is the site's zone (for the message that says until when).
    pub async fn discharge(
        &self,
        actor: &Actor,
        case: CaseId,
        request: &DischargeRequest,
        tz: &TimeZone,
        at: Timestamp,
        today: Date,
    ) -> Result<Discharged> {
        let result = async {
            let (mut tx, appointment) = self.open_day(actor, case, at).await?;
            let (state, version) = self.case_state(&mut tx, case).await?;
            let event = pathway::decide(
                state,
                &TransitionRequest::new(Action::Discharge),
                actor,
                at,
                today,
            )?;
            let (ended, minutes): (Option<i64>, Option<i64>) = sqlx::query_as(self.sql(
                "SELECT ended_at, monitoring_minutes FROM procedure_days WHERE appointment_id = ?",
            ))
            .bind(appointment)
            .fetch_one(&mut *tx)
            .await?;
            let ended = ended.map(from_micros).transpose()?.ok_or_else(|| {
                StoreError::Conflict("the end of the procedure is not recorded".to_owned())
            })?;
            let minutes = minutes.and_then(|m| u32::try_from(m).ok());
            let until = day::monitoring_until(ended, minutes);
            let override_reason = day::check_discharge(&DischargeCheck {
                monitoring_until: until,
                monitoring_until_local: until
                    .map(|u| u.to_zoned_datetime(tz.clone()).strftime("%H:%M %Z").to_string())
                    .unwrap_or_default(),
                criteria: &request.criteria,
                confirmed: &request.confirmed,
                override_reason: request.override_reason.as_deref(),
                now: at,
            })
            .map_err(|e| match e {
                DischargeRefusal::TooEarly { .. } => StoreError::Conflict(e.to_string()),
                DischargeRefusal::OverrideTooLong(_) => StoreError::Field {
                    field: "override_reason",
                    message: e.to_string(),
                },
                _ => StoreError::Field {
                    field: "criteria",
                    message: e.to_string(),
                },
            })?;
            sqlx::query(self.sql(
                "UPDATE procedure_days SET discharged_at = ?, discharged_by = ?, discharge_override = ?,
                        discharge_criteria = ?
                 WHERE appointment_id = ?",
            ))
            .bind(micros(at))
            .bind(actor.username.clone())
            .bind(override_reason.clone())
            .bind(request.confirmed.join(" "))
            .bind(appointment)
            .execute(&mut *tx)
            .await?;
            let reason = override_reason.as_ref().map(|r| {
                format!("Discharged before the end of monitoring (override): {r}")
            });
            let detail = if override_reason.is_some() {
                "override=yes"
            } else {
                "override=no"
            };
            self.move_case(&mut tx, actor, case, &event, version, reason, detail)
                .await?;
            tx.commit().await?;
            Ok(Discharged {
                event,
                override_reason,
            })
        }
        .await;
        self.audit_failure(
            actor,
            "transition",
            "case",
            case,
            &result,
            "action=discharge".to_owned(),
        )
        .await?;
        result.map_err(hide_denial)
    }

    /// Every site, by id (the board groups the day by site; not patient data).
    pub async fn sites(&self) -> Result<Vec<crate::SiteRecord>> {
        let rows: Vec<(i64, String, String)> =
            sqlx::query_as("SELECT id, name, time_zone FROM sites ORDER BY id")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .into_iter()
            .map(|(id, name, time_zone)| crate::SiteRecord {
                id,
                name,
                time_zone,
            })
            .collect())
    }

    // ------------------------------------------------------------ helpers

    /// Checks the actor may see the case, finds its booked appointment, begins the
    /// transaction and takes the day's row (created on first use): every write to a
    /// day goes through this row, so two writes to one day never interleave.
    async fn open_day(
        &self,
        actor: &Actor,
        case: CaseId,
        at: Timestamp,
    ) -> Result<(Tx<'static>, i64)> {
        let scope = scope_of(actor)?;
        let summary = self.case_summary(case).await?;
        if !scope.allows(summary.referrer_id) {
            return Err(StoreError::Denied("not a case this referrer referred"));
        }
        let appointment: Option<i64> = sqlx::query_scalar(
            self.sql("SELECT MAX(id) FROM appointments WHERE case_id = ? AND status = 'booked'"),
        )
        .bind(case.get())
        .fetch_one(&self.pool)
        .await?;
        let appointment = appointment.ok_or_else(|| {
            StoreError::Conflict("this case has no booked appointment for today".to_owned())
        })?;
        let mut tx = self.pool.begin().await?;
        sqlx::query(self.sql(
            "INSERT INTO procedure_days (appointment_id, case_id, updated_at) VALUES (?, ?, ?)
             ON CONFLICT (appointment_id) DO UPDATE SET updated_at = excluded.updated_at",
        ))
        .bind(appointment)
        .bind(case.get())
        .bind(micros(at))
        .execute(&mut *tx)
        .await?;
        Ok((tx, appointment))
    }

    async fn case_state(&self, tx: &mut Tx<'_>, case: CaseId) -> Result<(CaseState, i64)> {
        let (state, version): (String, i64) =
            sqlx::query_as(self.sql("SELECT state, version FROM cases WHERE id = ?"))
                .bind(case.get())
                .fetch_one(&mut **tx)
                .await?;
        Ok((parse_stored("case state", &state)?, version))
    }

    async fn require_state(
        &self,
        tx: &mut Tx<'_>,
        case: CaseId,
        allowed: &[CaseState],
        what: &str,
    ) -> Result<()> {
        let (state, _) = self.case_state(tx, case).await?;
        if allowed.contains(&state) {
            return Ok(());
        }
        let when = match state {
            CaseState::Scheduled | CaseState::Confirmed => "check the patient in first",
            CaseState::InProcedure | CaseState::Recovery | CaseState::Discharged => {
                "the procedure has already started"
            }
            _ => "the case is not on today's list",
        };
        Err(StoreError::Conflict(format!(
            "{what} cannot be recorded for a case that is {}: {when}",
            state.label().to_lowercase()
        )))
    }

    /// The checklist evaluated against `req` with what the transaction sees.
    async fn evaluate(
        &self,
        tx: &mut Tx<'_>,
        appointment: i64,
        req: &Requirements,
        today: Date,
    ) -> Result<ChecklistStatus> {
        let rows: Vec<(String, String)> =
            sqlx::query_as(self.sql(
                "SELECT item, value FROM checklist_answers WHERE appointment_id = ? ORDER BY id",
            ))
            .bind(appointment)
            .fetch_all(&mut **tx)
            .await?;
        let mut answers = Vec::new();
        for (item, value) in rows {
            let item: ChecklistItem = parse_stored("checklist item", &item)?;
            answers.push(
                Answer::decode(item, &value)
                    .map_err(|e| StoreError::Corrupt(format!("checklist answer: {e}")))?,
            );
        }
        let consents: i64 =
            sqlx::query_scalar(self.sql("SELECT COUNT(*) FROM consents WHERE appointment_id = ?"))
                .bind(appointment)
                .fetch_one(&mut **tx)
                .await?;
        let time_out: Option<(i64, i64, i64, i64)> = sqlx::query_as(self.sql(
            "SELECT patient_ok, procedure_ok, level_ok, side_ok FROM time_outs
             WHERE appointment_id = ? ORDER BY id DESC LIMIT 1",
        ))
        .bind(appointment)
        .fetch_optional(&mut **tx)
        .await?;
        let recorded = Recorded {
            answers,
            consent: consents > 0,
            time_out: time_out.map(|(p, pr, l, s)| TimeOut {
                patient: p == 1,
                procedure: pr == 1,
                level: l == 1,
                side: s == 1,
            }),
        };
        Ok(day::status(req, &recorded, today))
    }

    /// Re-evaluates the checklist and keeps the day's summary in step: when it became
    /// complete (kept while it stays so), and why it is stopped.
    async fn settle_checklist(
        &self,
        tx: &mut Tx<'_>,
        appointment: i64,
        req: &Requirements,
        at: Timestamp,
        today: Date,
    ) -> Result<ChecklistStatus> {
        let status = self.evaluate(tx, appointment, req, today).await?;
        let stopped = (!status.stops.is_empty()).then(|| {
            status
                .stops
                .iter()
                .map(|(item, why)| format!("{}: {why}", item.label()))
                .collect::<Vec<_>>()
                .join("; ")
        });
        sqlx::query(self.sql(
            "UPDATE procedure_days
             SET checklist_done_at = CASE WHEN ? = 1 THEN COALESCE(checklist_done_at, ?) ELSE NULL END,
                 checklist_stopped = ?
             WHERE appointment_id = ?",
        ))
        .bind(bool_i64(status.is_complete()))
        .bind(micros(at))
        .bind(stopped)
        .bind(appointment)
        .execute(&mut **tx)
        .await?;
        Ok(status)
    }

    /// Moves the case inside the day's transaction: state, timeline, audit.
    #[allow(clippy::too_many_arguments)]
    async fn move_case(
        &self,
        tx: &mut Tx<'_>,
        actor: &Actor,
        case: CaseId,
        event: &PathwayEvent,
        version: i64,
        reason: Option<String>,
        detail: &str,
    ) -> Result<()> {
        self.set_case_state(tx, case, event.to, version, event.at)
            .await?;
        self.insert_timeline(
            tx,
            case,
            &Timeline {
                action: event.action.as_str(),
                from: Some(event.from),
                to: event.to,
                reason,
                deferred_until: None,
                reason_code: None,
            },
            actor,
            event.at,
        )
        .await?;
        let mut audit_detail = format!("action={} {}->{}", event.action, event.from, event.to);
        if !detail.is_empty() {
            audit_detail.push(' ');
            audit_detail.push_str(detail);
        }
        self.insert_audit(
            &mut **tx,
            &NewAuditEvent::new(actor, "transition", "case", AuditOutcome::Success)
                .entity(case)
                .detail(audit_detail),
            event.at,
        )
        .await
    }

    /// Audits a refused or failed write (a successful one is audited in its transaction).
    async fn audit_failure<T>(
        &self,
        actor: &Actor,
        action: &'static str,
        entity: &'static str,
        case: CaseId,
        result: &Result<T>,
        detail: String,
    ) -> Result<()> {
        if let Err(e) = result {
            let mut event = NewAuditEvent::new(actor, action, entity, outcome_of(e)).entity(case);
            if !detail.is_empty() {
                event = event.detail(detail);
            }
            self.record_audit(event).await?;
        }
        Ok(())
    }
}

/// Every checklist entry is clinical: who may write one.
pub fn may_keep_checklist(role: Role) -> bool {
    matches!(role, Role::Nurse | Role::Radiologist)
}
