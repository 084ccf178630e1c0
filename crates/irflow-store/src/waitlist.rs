//! What shapes a booking besides the rules: the patient's stated preferences, the
//! radiologist's guidance plan, and the waitlist of patients who want an earlier date.

use irflow_domain::scheduling::TimeOfDay;
use irflow_domain::{Actor, CaseId, CaseState, Modality, Role};
use jiff::Timestamp;
use jiff::civil::Weekday;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::audit::{AuditOutcome, NewAuditEvent};
use crate::cases::{case_columns, case_from_row, case_tables, hide_denial, outcome_of, scope_of};
use crate::scheduling::{
    ReadAhead, appointment_from_prefixed, booked_postgres, booked_sqlite, busy_where, parse_booked,
};
use crate::screening::{action_from_prefixed, screening_from_prefixed};
use crate::{AppointmentRecord, Result, Store, StoreError, from_micros, micros, parse_stored};

/// When the patient would rather come.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Preferences {
    /// Preferred weekdays (empty: any).
    pub days: Vec<Weekday>,
    /// Morning or afternoon, if they said.
    pub time_of_day: Option<TimeOfDay>,
    /// Anything else (e.g. "needs a ride from her daughter, Tuesdays only").
    pub note: String,
}

/// The radiologist's plan for the procedure.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CasePlan {
    /// Guidance chosen (narrows the rooms), if any.
    pub guidance: Option<Modality>,
    /// Whether iodinated contrast will be used, if decided.
    pub contrast: Option<bool>,
    /// Free text.
    pub note: String,
}

/// What booking a case reads (see [`Store::scheduling_context`]).
#[derive(Debug, Clone)]
pub struct SchedulingContext {
    /// The case.
    pub case: crate::CaseSummary,
    /// The radiologist's plan.
    pub plan: CasePlan,
    /// The patient's preferences.
    pub preferences: Preferences,
    /// The latest screening, if screened.
    pub screening: Option<crate::ScreeningRecord>,
    /// The booked appointment, if any.
    pub appointment: Option<AppointmentRecord>,
}

/// What a slot search starts from (see [`Store::search_start_then`]).
#[derive(Debug)]
pub struct SearchStart {
    /// The case's scheduling context.
    pub context: SchedulingContext,
    /// The department, current as of the read (`None` when no site is configured).
    pub department: Option<std::sync::Arc<crate::Department>>,
    /// The bookings of the search's first step, when they could be read with it.
    pub ahead: Option<ReadAhead>,
}

/// One case on the waitlist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitlistEntry {
    /// Entry id.
    pub id: i64,
    /// The case.
    pub case_id: CaseId,
    /// Patient's family name.
    pub family_name: String,
    /// Patient's given name.
    pub given_name: String,
    /// Procedure name.
    pub procedure_name: String,
    /// Case state.
    pub case_state: CaseState,
    /// Why / what the patient said.
    pub note: String,
    /// Who put them on.
    pub added_by: String,
    /// When.
    pub added_at: Timestamp,
    /// Their current appointment's start, if booked.
    pub booked_start: Option<Timestamp>,
    /// Their current appointment, if booked.
    pub booked_appointment: Option<i64>,
}

fn audited<T>(result: &Result<T>) -> AuditOutcome {
    result
        .as_ref()
        .map_or_else(outcome_of, |_| AuditOutcome::Success)
}

impl Store {
    async fn case_in_scope(&self, actor: &Actor, case: CaseId) -> Result<crate::CaseSummary> {
        let scope = scope_of(actor)?;
        let summary = self.case_summary(case).await?;
        if !scope.allows(summary.referrer_id) {
            return Err(StoreError::Denied("not a case this referrer referred"));
        }
        Ok(summary)
    }

    /// The patient's scheduling preferences for a case (audited read).
    pub async fn preferences(&self, actor: &Actor, case: CaseId) -> Result<Preferences> {
        let result = async {
            self.case_in_scope(actor, case).await?;
            self.select_preferences(case).await
        }
        .await;
        self.record_audit(
            NewAuditEvent::new(actor, "read", "preferences", audited(&result)).entity(case),
        )
        .await?;
        result.map_err(hide_denial)
    }

    async fn select_preferences(&self, case: CaseId) -> Result<Preferences> {
        let row = sqlx::query(
            self.sql("SELECT days, time_of_day, note FROM case_preferences WHERE case_id = ?"),
        )
        .bind(case.get())
        .fetch_optional(&self.pool)
        .await?;
        match row {
            None => Ok(Preferences::default()),
            Some(row) => preferences_from(
                row.try_get("days")?,
                row.try_get("time_of_day")?,
                row.try_get("note")?,
            ),
        }
    }

    /// Everything booking a case needs, read once with one audit event: the case, the
    /// radiologist's plan, the patient's preferences, the latest screening and the
    /// booked appointment. (Read piece by piece it cost six audited reads a search.)
    pub async fn scheduling_context(
        &self,
        actor: &Actor,
        case: CaseId,
    ) -> Result<SchedulingContext> {
        let result = self
            .read_search_start(actor, case, None)
            .await
            .map(|(context, _, _)| context);
        self.record_audit(
            NewAuditEvent::new(actor, "read", "scheduling_context", audited(&result)).entity(case),
        )
        .await?;
        result.map_err(hide_denial)
    }

    /// What a slot search for a case starts from, read in one statement (each
    /// statement is a round trip, and on PostgreSQL a server process to wake): the
    /// case's scheduling context as [`Store::scheduling_context`] reads it, the
    /// department (its version checked in the same statement; read afresh only if
    /// it changed), and the bookings of the search's first step from `day` (when a
    /// department was already in memory to say which window that is). Then `then`
    /// runs on it while the audit event is written: the answer waits for both, so
    /// nothing is returned unless its read was recorded, but the commit overlaps the
    /// work. The outer error is the read's or the audit's; the inner one is `then`'s.
    pub async fn search_start_then<T, E, F, Fut>(
        &self,
        actor: &Actor,
        case: CaseId,
        (day, horizon): (jiff::civil::Date, u32),
        then: F,
    ) -> Result<std::result::Result<T, E>>
    where
        F: FnOnce(SearchStart) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, E>>,
    {
        let window = self.ahead_window(day, horizon);
        let result = self.read_search_start(actor, case, window).await;
        let event =
            NewAuditEvent::new(actor, "read", "scheduling_context", audited(&result)).entity(case);
        match result {
            Err(e) => {
                self.record_audit(event).await?;
                Err(hide_denial(e))
            }
            Ok((context, version, ahead)) => {
                let work = async {
                    let department = self.department_at(version).await?;
                    Ok::<_, StoreError>(
                        then(SearchStart {
                            context,
                            department,
                            ahead,
                        })
                        .await,
                    )
                };
                let (audit, out) = tokio::join!(self.record_audit(event), work);
                audit?;
                out
            }
        }
    }

    /// The case's scheduling context, the department's version and, for `window`
    /// (site, start, end), its bookings: one statement, one row per action of the
    /// latest screening (or one row). Nothing read is returned unless the case is in
    /// the actor's scope.
    async fn read_search_start(
        &self,
        actor: &Actor,
        case: CaseId,
        window: Option<(i64, Timestamp, Timestamp)>,
    ) -> Result<(SchedulingContext, i64, Option<ReadAhead>)> {
        macro_rules! search_start_sql {
            ($booked:expr) => {
                concat!(
                    "SELECT ",
                    case_columns!(),
                    ", c.planned_guidance, c.planned_contrast, c.plan_note,
                       pp.days, pp.time_of_day, pp.note AS preference_note,
                       s.id AS s_id, s.case_id AS s_case_id, s.facts AS s_facts, s.decision AS s_decision,
                       s.outcome AS s_outcome, s.earliest_safe_date AS s_earliest_safe_date,
                       s.pack_name AS s_pack_name, s.pack_version AS s_pack_version,
                       s.uses_unverified AS s_uses_unverified, s.screened_by AS s_screened_by, s.at AS s_at,
                       x.id AS x_id, x.rule_id AS x_rule_id, x.kind AS x_kind,
                       x.description AS x_description, x.status AS x_status, x.cleared AS x_cleared,
                       x.decided_by AS x_decided_by, x.notes AS x_notes,
                       x.completed_by AS x_completed_by, x.completed_at AS x_completed_at,
                       a.id AS a_id, a.case_id AS a_case_id, a.site_id AS a_site_id, a.room_id AS a_room_id,
                       ar.name AS a_room_name, a.radiologist_id AS a_radiologist_id,
                       au.display_name AS a_radiologist_name, a.chair_id AS a_chair_id,
                       a.starts_at AS a_starts_at, a.ends_at AS a_ends_at,
                       a.chair_starts_at AS a_chair_starts_at, a.chair_ends_at AS a_chair_ends_at,
                       a.status AS a_status, a.attendance AS a_attendance,
                       (SELECT version FROM resource_version WHERE id = 1) AS resource_version,
                       (",
                    $booked,
                    ") AS booked_ahead",
                    case_tables!(),
                    " LEFT JOIN case_preferences pp ON pp.case_id = c.id
                      LEFT JOIN screenings s
                             ON s.id = (SELECT MAX(id) FROM screenings WHERE case_id = c.id)
                      LEFT JOIN screening_actions x ON x.screening_id = s.id
                      LEFT JOIN appointments a
                             ON a.id = (SELECT MAX(id) FROM appointments WHERE case_id = c.id AND status = 'booked')
                      LEFT JOIN rooms ar ON ar.id = a.room_id
                      LEFT JOIN users au ON au.id = a.radiologist_id
                      WHERE c.id = ?
                      ORDER BY x.id"
                )
            };
        }
        let scope = scope_of(actor)?;
        let sql = match self.backend {
            crate::Backend::Sqlite => search_start_sql!(booked_sqlite!()),
            crate::Backend::Postgres => search_start_sql!(booked_postgres!()),
        };
        // Without a window, the bookings' part reads nothing (no site 0).
        let (site, from, until) =
            window.unwrap_or((0, Timestamp::UNIX_EPOCH, Timestamp::UNIX_EPOCH));
        let rows = sqlx::query(self.sql(sql))
            .bind(site)
            .bind(micros(from - jiff::SignedDuration::from_hours(24)))
            .bind(micros(until))
            .bind(micros(from))
            .bind(micros(from))
            .bind(case.get())
            .fetch_all(&self.pool)
            .await?;
        let row = rows.first().ok_or(StoreError::NotFound)?;
        let summary = case_from_row(row)?;
        if !scope.allows(summary.referrer_id) {
            return Err(StoreError::Denied("not a case this referrer referred"));
        }
        let (plan, preferences) = plan_and_preferences_from(row)?;
        let screening = match row.try_get::<Option<i64>, _>("s_id")? {
            None => None,
            Some(_) => {
                let mut actions = Vec::new();
                for r in &rows {
                    if r.try_get::<Option<i64>, _>("x_id")?.is_some() {
                        actions.push(action_from_prefixed(r, "x_")?);
                    }
                }
                Some(screening_from_prefixed(row, "s_", actions)?)
            }
        };
        let appointment = match row.try_get::<Option<i64>, _>("a_id")? {
            None => None,
            Some(_) => Some(appointment_from_prefixed(row, "a_")?),
        };
        let version: i64 = row.try_get("resource_version")?;
        let ahead = match window {
            None => None,
            Some((site, from, until)) => Some(ReadAhead {
                site,
                from,
                until,
                booked: parse_booked(row.try_get::<Option<String>, _>("booked_ahead")?.as_deref())?,
            }),
        };
        Ok((
            SchedulingContext {
                case: summary,
                plan,
                preferences,
                screening,
                appointment,
            },
            version,
            ahead,
        ))
    }

    /// Records what suits the patient (scheduler, nurse, admin).
    pub async fn set_preferences(
        &self,
        actor: &Actor,
        case: CaseId,
        prefs: &Preferences,
        at: Timestamp,
    ) -> Result<()> {
        let result = async {
            if !matches!(
                actor.role,
                Some(Role::Scheduler | Role::Nurse | Role::Admin) | None
            ) {
                return Err(StoreError::Denied(
                    "preferences are recorded by schedulers and nurses",
                ));
            }
            if prefs.note.chars().count() > 500 {
                return Err(StoreError::Field {
                    field: "note",
                    message: "keep the note under 500 characters".to_owned(),
                });
            }
            self.case_in_scope(actor, case).await?;
            let mut days: Vec<i8> = prefs
                .days
                .iter()
                .map(|d| d.to_monday_one_offset())
                .collect();
            days.sort_unstable();
            days.dedup();
            let days = days
                .iter()
                .map(i8::to_string)
                .collect::<Vec<_>>()
                .join(",");
            let mut tx = self.pool.begin().await?;
            sqlx::query(self.sql("DELETE FROM case_preferences WHERE case_id = ?"))
                .bind(case.get())
                .execute(&mut *tx)
                .await?;
            sqlx::query(self.sql(
                "INSERT INTO case_preferences (case_id, days, time_of_day, note, updated_by, updated_at)
                 VALUES (?, ?, ?, ?, ?, ?)",
            ))
            .bind(case.get())
            .bind(days)
            .bind(prefs.time_of_day.map(TimeOfDay::as_str))
            .bind(prefs.note.trim().to_owned())
            .bind(actor.username.clone())
            .bind(micros(at))
            .execute(&mut *tx)
            .await?;
            self.insert_audit(
                &mut *tx,
                &NewAuditEvent::new(actor, "update", "preferences", AuditOutcome::Success)
                    .entity(case),
                at,
            )
            .await?;
            tx.commit().await?;
            Ok(())
        }
        .await;
        if let Err(e) = &result {
            self.record_audit(
                NewAuditEvent::new(actor, "update", "preferences", outcome_of(e)).entity(case),
            )
            .await?;
        }
        result.map_err(hide_denial)
    }

    /// The radiologist's plan for a case (audited read).
    pub async fn case_plan(&self, actor: &Actor, case: CaseId) -> Result<CasePlan> {
        let result = async {
            self.case_in_scope(actor, case).await?;
            self.select_plan(case).await
        }
        .await;
        self.record_audit(NewAuditEvent::new(actor, "read", "plan", audited(&result)).entity(case))
            .await?;
        result.map_err(hide_denial)
    }

    async fn select_plan(&self, case: CaseId) -> Result<CasePlan> {
        let row =
            sqlx::query(self.sql(
                "SELECT planned_guidance, planned_contrast, plan_note FROM cases WHERE id = ?",
            ))
            .bind(case.get())
            .fetch_one(&self.pool)
            .await?;
        plan_from(&row)
    }

    /// Records the radiologist's guidance plan (radiologist, admin). The guidance must
    /// be one the case's procedure allows.
    pub async fn set_case_plan(
        &self,
        actor: &Actor,
        case: CaseId,
        plan: &CasePlan,
        at: Timestamp,
    ) -> Result<()> {
        let result = async {
            if !matches!(actor.role, Some(Role::Radiologist | Role::Admin) | None) {
                return Err(StoreError::Denied("the procedure plan is the radiologist's"));
            }
            let summary = self.case_in_scope(actor, case).await?;
            if summary.state.is_closed() {
                return Err(StoreError::Conflict(
                    "this case is closed; its plan cannot change".to_owned(),
                ));
            }
            if let Some(g) = plan.guidance {
                let allowed = self
                    .procedures()
                    .await?
                    .into_iter()
                    .find(|p| p.code == summary.procedure_code)
                    .map(|p| p.modalities.contains(&g))
                    .unwrap_or(false);
                if !allowed {
                    return Err(StoreError::Field {
                        field: "guidance",
                        message: format!(
                            "{} guidance is not offered for {}",
                            g.label(),
                            summary.procedure_name
                        ),
                    });
                }
            }
            if plan.note.chars().count() > 1000 {
                return Err(StoreError::Field {
                    field: "plan_note",
                    message: "keep the note under 1000 characters".to_owned(),
                });
            }
            let mut tx = self.pool.begin().await?;
            sqlx::query(self.sql(
                "UPDATE cases SET planned_guidance = ?, planned_contrast = ?, plan_note = ?, updated_at = ? WHERE id = ?",
            ))
            .bind(plan.guidance.map(Modality::as_str))
            .bind(plan.contrast.map(i64::from))
            .bind(Some(plan.note.trim().to_owned()).filter(|n| !n.is_empty()))
            .bind(micros(at))
            .bind(case.get())
            .execute(&mut *tx)
            .await?;
            self.insert_audit(
                &mut *tx,
                &NewAuditEvent::new(actor, "update", "plan", AuditOutcome::Success)
                    .entity(case)
                    .detail(format!(
                        "guidance={} contrast={}",
                        plan.guidance.map_or("any", Modality::as_str),
                        plan.contrast.map_or("undecided", |c| if c { "yes" } else { "no" })
                    )),
                at,
            )
            .await?;
            tx.commit().await?;
            Ok(())
        }
        .await;
        if let Err(e) = &result {
            self.record_audit(
                NewAuditEvent::new(actor, "update", "plan", outcome_of(e)).entity(case),
            )
            .await?;
        }
        result.map_err(hide_denial)
    }

    /// Puts a case on the waitlist for an earlier date (scheduler, admin). The case
    /// must be ready to book or booked; a case is on it at most once.
    pub async fn add_to_waitlist(
        &self,
        actor: &Actor,
        case: CaseId,
        note: &str,
        at: Timestamp,
    ) -> Result<i64> {
        let result = async {
            schedulers_only(actor)?;
            let summary = self.case_in_scope(actor, case).await?;
            if !matches!(
                summary.state,
                CaseState::Ready | CaseState::Scheduled | CaseState::Confirmed
            ) {
                return Err(StoreError::Conflict(format!(
                    "only cases that are ready to book or booked go on the waitlist; this one is {}",
                    summary.state.label().to_lowercase()
                )));
            }
            let mut tx = self.pool.begin().await?;
            let inserted = sqlx::query_scalar::<_, i64>(self.sql(
                "INSERT INTO waitlist (case_id, note, added_by, added_at) VALUES (?, ?, ?, ?) RETURNING id",
            ))
            .bind(case.get())
            .bind(note.trim().to_owned())
            .bind(actor.username.clone())
            .bind(micros(at))
            .fetch_one(&mut *tx)
            .await;
            let id = match inserted {
                Ok(id) => id,
                Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                    return Err(StoreError::Conflict(
                        "this case is already on the waitlist".to_owned(),
                    ));
                }
                Err(e) => return Err(e.into()),
            };
            self.insert_audit(
                &mut *tx,
                &NewAuditEvent::new(actor, "add", "waitlist", AuditOutcome::Success).entity(case),
                at,
            )
            .await?;
            tx.commit().await?;
            Ok(id)
        }
        .await;
        if let Err(e) = &result {
            self.record_audit(
                NewAuditEvent::new(actor, "add", "waitlist", outcome_of(e)).entity(case),
            )
            .await?;
        }
        result.map_err(hide_denial)
    }

    /// Takes a case off the waitlist, saying why (e.g. "booked an earlier time").
    /// Returns whether it was on it.
    pub async fn remove_from_waitlist(
        &self,
        actor: &Actor,
        case: CaseId,
        reason: &str,
        at: Timestamp,
    ) -> Result<bool> {
        let result = async {
            schedulers_only(actor)?;
            self.case_in_scope(actor, case).await?;
            let mut tx = self.pool.begin().await?;
            let done = sqlx::query(self.sql(
                "UPDATE waitlist SET removed_at = ?, removed_reason = ? WHERE case_id = ? AND removed_at IS NULL",
            ))
            .bind(micros(at))
            .bind(reason.trim().to_owned())
            .bind(case.get())
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() > 0 {
                self.insert_audit(
                    &mut *tx,
                    &NewAuditEvent::new(actor, "remove", "waitlist", AuditOutcome::Success)
                        .entity(case),
                    at,
                )
                .await?;
            }
            tx.commit().await?;
            Ok(done.rows_affected() > 0)
        }
        .await;
        if let Err(e) = &result {
            self.record_audit(
                NewAuditEvent::new(actor, "remove", "waitlist", outcome_of(e)).entity(case),
            )
            .await?;
        }
        result.map_err(hide_denial)
    }

    /// The waitlist, longest waiting first, with each case's current booking (an
    /// audited read). Cases that have moved on (arrived, cancelled...) are left out.
    pub async fn waitlist(&self, actor: &Actor) -> Result<Vec<WaitlistEntry>> {
        let result = async {
            let scope = scope_of(actor)?;
            let rows = sqlx::query(self.sql(
                "SELECT w.id, w.case_id, w.note, w.added_by, w.added_at, p.family_name, p.given_name,
                        c.procedure_name, c.state,
                        (SELECT MIN(a.starts_at) FROM appointments a WHERE a.case_id = c.id AND a.status = 'booked') AS booked_start,
                        (SELECT MAX(a.id) FROM appointments a WHERE a.case_id = c.id AND a.status = 'booked') AS booked_id
                 FROM waitlist w JOIN cases c ON c.id = w.case_id JOIN patients p ON p.id = c.patient_id
                 WHERE w.removed_at IS NULL AND c.state IN ('ready', 'scheduled', 'confirmed')
                   AND (CAST(? AS BIGINT) IS NULL OR c.referrer_id = ?)
                 ORDER BY w.added_at, w.id",
            ))
            .bind(scope.referrer_filter())
            .bind(scope.referrer_filter())
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(|row| {
                    let state: String = row.try_get("state")?;
                    let booked: Option<i64> = row.try_get("booked_start")?;
                    Ok(WaitlistEntry {
                        id: row.try_get("id")?,
                        case_id: CaseId::new(row.try_get("case_id")?),
                        family_name: row.try_get("family_name")?,
                        given_name: row.try_get("given_name")?,
                        procedure_name: row.try_get("procedure_name")?,
                        case_state: parse_stored("case state", &state)?,
                        note: row.try_get("note")?,
                        added_by: row.try_get("added_by")?,
                        added_at: from_micros(row.try_get("added_at")?)?,
                        booked_start: booked.map(from_micros).transpose()?,
                        booked_appointment: row.try_get("booked_id")?,
                    })
                })
                .collect::<Result<Vec<_>>>()
        }
        .await;
        let mut event = NewAuditEvent::new(actor, "list", "waitlist", audited(&result));
        if let Ok(found) = &result {
            event = event.detail(format!("count={}", found.len()));
        }
        self.record_audit(event).await?;
        result.map_err(hide_denial)
    }

    /// Whether a case is on the waitlist now, and its note.
    pub async fn waitlist_note(&self, case: CaseId) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(
            self.sql("SELECT note FROM waitlist WHERE case_id = ? AND removed_at IS NULL"),
        )
        .bind(case.get())
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Time freed by cancellations, moves and no-shows that starts between `from` and
    /// `to`: the cancelled appointments, earliest start first, one per room and start
    /// — the latest cancellation of it, as the cancellation's own offer names (a time
    /// first freed by a case's own move and later booked and freed by another is
    /// offered to that case too). Ids, rooms and times only (no patient data), so
    /// that the time can be offered to the waitlist.
    pub async fn freed_times(
        &self,
        site: i64,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<AppointmentRecord>> {
        let ids: Vec<i64> = sqlx::query_scalar(self.sql(
            "SELECT id FROM appointments WHERE site_id = ? AND status = 'cancelled'
               AND starts_at >= ? AND starts_at < ? ORDER BY starts_at, id DESC LIMIT 50",
        ))
        .bind(site)
        .bind(micros(from))
        .bind(micros(to))
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let a = self.appointment_by_id(id).await?;
            // One freed time per room and start: the latest cancellation of it.
            if !out
                .iter()
                .any(|o: &AppointmentRecord| o.room_id == a.room_id && o.start == a.start)
            {
                out.push(a);
            }
        }
        Ok(out)
    }
}

fn schedulers_only(actor: &Actor) -> Result<()> {
    match actor.role {
        Some(Role::Scheduler | Role::Admin) | None => Ok(()),
        _ => Err(StoreError::Denied("the waitlist is kept by schedulers")),
    }
}

/// The plan and preferences columns as `select_plan_and_preferences` names them.
fn plan_and_preferences_from(row: &AnyRow) -> Result<(CasePlan, Preferences)> {
    let plan = plan_from(row)?;
    let days: Option<String> = row.try_get("days")?;
    let preferences = match days {
        None => Preferences::default(),
        Some(days) => preferences_from(
            days,
            row.try_get("time_of_day")?,
            row.try_get("preference_note")?,
        )?,
    };
    Ok((plan, preferences))
}

fn plan_from(row: &AnyRow) -> Result<CasePlan> {
    let guidance: Option<String> = row.try_get("planned_guidance")?;
    let contrast: Option<i64> = row.try_get("planned_contrast")?;
    let note: Option<String> = row.try_get("plan_note")?;
    Ok(CasePlan {
        guidance: guidance
            .map(|g| parse_stored::<Modality>("guidance", &g))
            .transpose()?,
        contrast: contrast.map(|c| c == 1),
        note: note.unwrap_or_default(),
    })
}

fn preferences_from(days: String, time: Option<String>, note: String) -> Result<Preferences> {
    let days = days
        .split(',')
        .filter(|d| !d.is_empty())
        .map(|d| {
            d.parse::<i8>()
                .ok()
                .and_then(|n| Weekday::from_monday_one_offset(n).ok())
                .ok_or_else(|| StoreError::Corrupt(format!("weekday {d:?}")))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Preferences {
        days,
        time_of_day: match time.as_deref() {
            Some("morning") => Some(TimeOfDay::Morning),
            Some("afternoon") => Some(TimeOfDay::Afternoon),
            _ => None,
        },
        note,
    })
}
