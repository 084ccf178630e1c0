//! Screenings: each call's facts and decision, the actions it requires, and the
//! case moving to ready, deferred or waiting on actions, all in one transaction.

use irflow_domain::pathway::{self, TransitionRequest};
use irflow_domain::screening::{ActionKind, Decision, ScreeningDecision};
use irflow_domain::{Action, Actor, CaseId, CaseState, Role};
use jiff::Timestamp;
use jiff::civil::Date;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::audit::{AuditOutcome, NewAuditEvent};
use crate::cases::{Timeline, hide_denial, outcome_of, scope_of};
use crate::{Result, Store, StoreError, from_micros, micros, parse_stored};

/// A screening to record.
#[derive(Debug, Clone)]
pub struct NewScreening<'a> {
    /// The facts, as JSON (stored as given).
    pub facts_json: String,
    /// The decision, as JSON (stored as rendered).
    pub decision_json: String,
    /// The decision itself.
    pub decision: &'a ScreeningDecision,
}

/// Where a required action stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionStatus {
    /// Waiting.
    Open,
    /// Done.
    Done,
    /// Replaced by a later screening.
    Superseded,
}

impl ActionStatus {
    /// Stable name.
    pub const fn as_str(self) -> &'static str {
        match self {
            ActionStatus::Open => "open",
            ActionStatus::Done => "done",
            ActionStatus::Superseded => "superseded",
        }
    }
}

/// A required action as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionRecord {
    /// Id (for completing it).
    pub id: i64,
    /// The rule that asked for it.
    pub rule_id: String,
    /// Who acts.
    pub kind: ActionKind,
    /// What.
    pub description: String,
    /// Where it stands.
    pub status: ActionStatus,
    /// For done actions: was it cleared (e.g. the prescriber agreed)?
    pub cleared: Option<bool>,
    /// Who decided (e.g. "Dr. Lee, cardiology").
    pub decided_by: Option<String>,
    /// Notes.
    pub notes: Option<String>,
    /// Who recorded it.
    pub completed_by: Option<String>,
    /// When.
    pub completed_at: Option<Timestamp>,
}

/// A stored screening.
#[derive(Debug, Clone)]
pub struct ScreeningRecord {
    /// Id.
    pub id: i64,
    /// The case.
    pub case_id: CaseId,
    /// The facts (JSON).
    pub facts_json: String,
    /// The decision (JSON).
    pub decision_json: String,
    /// The decision's outcome.
    pub outcome: Decision,
    /// The earliest safe date.
    pub earliest_safe_date: Option<Date>,
    /// Rule pack.
    pub pack_name: String,
    /// Rule pack version.
    pub pack_version: String,
    /// Whether an unverified rule was used.
    pub uses_unverified: bool,
    /// Who screened.
    pub screened_by: String,
    /// When.
    pub at: Timestamp,
    /// Its actions.
    pub actions: Vec<ActionRecord>,
}

impl ScreeningRecord {
    /// Actions still open.
    pub fn open_actions(&self) -> impl Iterator<Item = &ActionRecord> {
        self.actions
            .iter()
            .filter(|a| a.status == ActionStatus::Open)
    }
}

fn action_from_row(row: &AnyRow) -> Result<ActionRecord> {
    action_from_prefixed(row, "")
}

/// An action row as a record; its columns are named `{prefix}id` and so on.
pub(crate) fn action_from_prefixed(row: &AnyRow, prefix: &str) -> Result<ActionRecord> {
    let col = |name: &str| format!("{prefix}{name}");
    let kind: String = row.try_get(&*col("kind"))?;
    let status: String = row.try_get(&*col("status"))?;
    let cleared: Option<i64> = row.try_get(&*col("cleared"))?;
    let completed_at: Option<i64> = row.try_get(&*col("completed_at"))?;
    Ok(ActionRecord {
        id: row.try_get(&*col("id"))?,
        rule_id: row.try_get(&*col("rule_id"))?,
        kind: parse_stored("action kind", &kind)?,
        description: row.try_get(&*col("description"))?,
        status: match status.as_str() {
            "open" => ActionStatus::Open,
            "done" => ActionStatus::Done,
            "superseded" => ActionStatus::Superseded,
            other => return Err(StoreError::Corrupt(format!("action status {other:?}"))),
        },
        cleared: cleared.map(|c| c != 0),
        decided_by: row.try_get(&*col("decided_by"))?,
        notes: row.try_get(&*col("notes"))?,
        completed_by: row.try_get(&*col("completed_by"))?,
        completed_at: completed_at.map(from_micros).transpose()?,
    })
}

fn may_screen(actor: &Actor) -> Result<()> {
    match actor.role {
        Some(Role::Nurse | Role::Radiologist | Role::Admin) | None => Ok(()),
        _ => Err(StoreError::Denied(
            "screening is recorded by nurses, radiologists or admins",
        )),
    }
}

/// The columns of a screening's actions, read by `action_from_row`.
macro_rules! action_select {
    () => {
        "SELECT id, screening_id, rule_id, kind, description, status, cleared, decided_by, notes,
                completed_by, completed_at
         FROM screening_actions"
    };
}

/// A screening row and its actions, as a record; the screening's columns are named
/// `{prefix}id` and so on (prefixed when joined to other tables, `""` otherwise).
pub(crate) fn screening_from_prefixed(
    row: &AnyRow,
    prefix: &str,
    actions: Vec<ActionRecord>,
) -> Result<ScreeningRecord> {
    let col = |name: &str| format!("{prefix}{name}");
    let outcome: String = row.try_get(&*col("outcome"))?;
    let esd: Option<String> = row.try_get(&*col("earliest_safe_date"))?;
    let unverified: i64 = row.try_get(&*col("uses_unverified"))?;
    Ok(ScreeningRecord {
        id: row.try_get(&*col("id"))?,
        case_id: CaseId::new(row.try_get(&*col("case_id"))?),
        facts_json: row.try_get(&*col("facts"))?,
        decision_json: row.try_get(&*col("decision"))?,
        outcome: parse_stored("decision", &outcome)?,
        earliest_safe_date: esd.map(|d| parse_stored("date", &d)).transpose()?,
        pack_name: row.try_get(&*col("pack_name"))?,
        pack_version: row.try_get(&*col("pack_version"))?,
        uses_unverified: unverified != 0,
        screened_by: row.try_get(&*col("screened_by"))?,
        at: from_micros(row.try_get(&*col("at"))?)?,
        actions,
    })
}

impl Store {
    /// Records a screening and moves the case: defer → deferred (until the earliest
    /// safe date, if there is one), open actions → awaiting action, otherwise ready.
    pub async fn record_screening(
        &self,
        actor: &Actor,
        case: CaseId,
        new: &NewScreening<'_>,
        at: Timestamp,
        today: Date,
    ) -> Result<ScreeningRecord> {
        let result = self.insert_screening(actor, case, new, at, today).await;
        if let Err(e) = &result {
            self.record_audit(
                NewAuditEvent::new(actor, "screen", "case", outcome_of(e)).entity(case),
            )
            .await?;
        }
        result.map_err(hide_denial)
    }

    async fn insert_screening(
        &self,
        actor: &Actor,
        case_id: CaseId,
        new: &NewScreening<'_>,
        at: Timestamp,
        today: Date,
    ) -> Result<ScreeningRecord> {
        may_screen(actor)?;
        let scope = scope_of(actor)?;
        let case = self.case_summary(case_id).await?;
        if !scope.allows(case.referrer_id) {
            return Err(StoreError::Denied("not a case this referrer referred"));
        }
        if !matches!(
            case.state,
            CaseState::Screening
                | CaseState::Deferred
                | CaseState::AwaitingAction
                | CaseState::Ready
        ) {
            return Err(StoreError::Conflict(format!(
                "screening is done after the referral is accepted and before booking; this case is {}",
                case.state.label().to_lowercase()
            )));
        }
        let d = new.decision;
        let actions: Vec<(&str, ActionKind, &str)> = d
            .findings
            .iter()
            .filter_map(|f| {
                f.action
                    .as_ref()
                    .map(|a| (f.rule_id.as_str(), a.kind, a.description.as_str()))
            })
            .collect();
        let (target, action) = match d.decision {
            Decision::Defer => (CaseState::Deferred, Action::Defer),
            _ if !actions.is_empty() => (CaseState::AwaitingAction, Action::AwaitAction),
            _ => (CaseState::Ready, Action::MarkReady),
        };
        let deferred_until = match (target, d.earliest_safe_date) {
            (CaseState::Deferred, Some(e)) if e > today => Some(e),
            _ => None,
        };
        let summary = format!(
            "Screening: {}{}{}{}{} (rule pack {} {})",
            d.decision.label().to_lowercase(),
            d.findings
                .first()
                .map(|f| format!(" — {}", f.message))
                .unwrap_or_default(),
            if actions.is_empty() {
                String::new()
            } else {
                format!("; {} open action(s)", actions.len())
            },
            match d.earliest_safe_date {
                Some(e) => format!("; earliest safe date {e}"),
                None => "; until resolved".to_owned(),
            },
            if d.uses_unverified_rules() {
                "; uses UNVERIFIED rules"
            } else {
                ""
            },
            d.pack_name,
            d.pack_version
        );
        let event = if case.state == target {
            None
        } else {
            let mut request = TransitionRequest::new(action).because(summary.clone());
            request.deferred_until = deferred_until;
            Some(pathway::decide(case.state, &request, actor, at, today)?)
        };

        let mut tx = self.pool.begin().await?;
        let screening_id: i64 = sqlx::query_scalar(self.sql(
            "INSERT INTO screenings (case_id, facts, decision, outcome, earliest_safe_date, pack_name, pack_version,
                                     evaluated_for, uses_unverified, screened_by, screened_role, at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        ))
        .bind(case_id.get())
        .bind(new.facts_json.clone())
        .bind(new.decision_json.clone())
        .bind(d.decision.as_str())
        .bind(d.earliest_safe_date.map(|x| x.to_string()))
        .bind(d.pack_name.clone())
        .bind(d.pack_version.clone())
        .bind(d.evaluated_for.map(|x| x.to_string()))
        .bind(i64::from(d.uses_unverified_rules()))
        .bind(actor.username.clone())
        .bind(actor.role.map(|r| r.as_str()))
        .bind(micros(at))
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(self.sql("UPDATE screening_actions SET status = 'superseded' WHERE case_id = ? AND status = 'open'"))
            .bind(case_id.get())
            .execute(&mut *tx)
            .await?;
        for (rule_id, kind, description) in &actions {
            sqlx::query(self.sql(
                "INSERT INTO screening_actions (case_id, screening_id, rule_id, kind, description, status)
                 VALUES (?, ?, ?, ?, ?, 'open')",
            ))
            .bind(case_id.get())
            .bind(screening_id)
            .bind((*rule_id).to_owned())
            .bind(kind.as_str())
            .bind((*description).to_owned())
            .execute(&mut *tx)
            .await?;
        }
        let updated = sqlx::query(self.sql(
            "UPDATE cases SET state = ?, deferred_until = ?, screening_outcome = ?, earliest_safe_date = ?,
                    version = version + 1, updated_at = ?
             WHERE id = ? AND version = ?",
        ))
        .bind(target.as_str())
        .bind(deferred_until.map(|x| x.to_string()))
        .bind(d.decision.as_str())
        .bind(d.earliest_safe_date.map(|x| x.to_string()))
        .bind(micros(at))
        .bind(case_id.get())
        .bind(case.version)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() != 1 {
            return Err(StoreError::concurrent_change());
        }
        let entry = match &event {
            Some(e) => Timeline {
                action: e.action.as_str(),
                from: Some(e.from),
                to: e.to,
                reason: e.reason.clone(),
                deferred_until: e.deferred_until,
                reason_code: None,
            },
            None => Timeline {
                action: "screen",
                from: Some(case.state),
                to: case.state,
                reason: Some(summary),
                deferred_until,
                reason_code: None,
            },
        };
        self.insert_timeline(&mut tx, case_id, &entry, actor, at)
            .await?;
        self.insert_audit(
            &mut *tx,
            &NewAuditEvent::new(actor, "screen", "case", AuditOutcome::Success)
                .entity(case_id)
                .detail(format!(
                    "decision={} actions={} pack={} {}",
                    d.decision,
                    actions.len(),
                    d.pack_name,
                    d.pack_version
                )),
            at,
        )
        .await?;
        tx.commit().await?;
        self.screening_by_id(screening_id).await
    }

    async fn screening_by_id(&self, id: i64) -> Result<ScreeningRecord> {
        let row = sqlx::query(self.sql(
            "SELECT id, case_id, facts, decision, outcome, earliest_safe_date, pack_name, pack_version,
                    uses_unverified, screened_by, at
             FROM screenings WHERE id = ?",
        ))
        .bind(id)
        .fetch_one(&self.pool)
        .await?;
        self.screening_from(row).await
    }

    /// A screening row completed with its actions.
    async fn screening_from(&self, row: AnyRow) -> Result<ScreeningRecord> {
        let actions = self.actions_of(row.try_get("id")?).await?;
        let actions = actions.iter().map(action_from_row).collect::<Result<_>>()?;
        screening_from_prefixed(&row, "", actions)
    }

    async fn actions_of(&self, screening: i64) -> Result<Vec<AnyRow>> {
        Ok(sqlx::query(self.sql(concat!(
            action_select!(),
            " WHERE screening_id = ? ORDER BY id"
        )))
        .bind(screening)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The case's latest screening, if any (audited as a read of the case's screening).
    pub async fn latest_screening(
        &self,
        actor: &Actor,
        case_id: CaseId,
    ) -> Result<Option<ScreeningRecord>> {
        let result = self.select_latest_screening(actor, case_id).await;
        let outcome = result
            .as_ref()
            .map_or_else(outcome_of, |_| AuditOutcome::Success);
        self.record_audit(NewAuditEvent::new(actor, "read", "screening", outcome).entity(case_id))
            .await?;
        result.map_err(hide_denial)
    }

    pub(crate) async fn select_latest_screening(
        &self,
        actor: &Actor,
        case_id: CaseId,
    ) -> Result<Option<ScreeningRecord>> {
        let scope = scope_of(actor)?;
        let case = self.case_summary(case_id).await?;
        if !scope.allows(case.referrer_id) {
            return Err(StoreError::Denied("not a case this referrer referred"));
        }
        let id: Option<i64> =
            sqlx::query_scalar(self.sql("SELECT MAX(id) FROM screenings WHERE case_id = ?"))
                .bind(case_id.get())
                .fetch_one(&self.pool)
                .await?;
        match id {
            Some(id) => Ok(Some(self.screening_by_id(id).await?)),
            None => Ok(None),
        }
    }

    /// Completes a required action: cleared (e.g. the prescriber agreed to the hold)
    /// or not. When the last open action is cleared, the case is ready to book.
    #[allow(clippy::too_many_arguments)]
    pub async fn complete_action(
        &self,
        actor: &Actor,
        case_id: CaseId,
        action_id: i64,
        cleared: bool,
        decided_by: Option<String>,
        notes: Option<String>,
        at: Timestamp,
        today: Date,
    ) -> Result<ScreeningRecord> {
        let result = self
            .apply_complete_action(
                actor, case_id, action_id, cleared, decided_by, notes, at, today,
            )
            .await;
        if let Err(e) = &result {
            self.record_audit(
                NewAuditEvent::new(actor, "complete_action", "case", outcome_of(e))
                    .entity(case_id)
                    .detail(format!("action={action_id}")),
            )
            .await?;
        }
        result.map_err(hide_denial)
    }

    #[allow(clippy::too_many_arguments)]
    async fn apply_complete_action(
        &self,
        actor: &Actor,
        case_id: CaseId,
        action_id: i64,
        cleared: bool,
        decided_by: Option<String>,
        notes: Option<String>,
        at: Timestamp,
        today: Date,
    ) -> Result<ScreeningRecord> {
        may_screen(actor)?;
        let scope = scope_of(actor)?;
        let case = self.case_summary(case_id).await?;
        if !scope.allows(case.referrer_id) {
            return Err(StoreError::Denied("not a case this referrer referred"));
        }
        let row = sqlx::query(self.sql(
            "SELECT id, rule_id, kind, description, status, cleared, decided_by, notes, completed_by, completed_at, screening_id
             FROM screening_actions WHERE id = ? AND case_id = ?",
        ))
        .bind(action_id)
        .bind(case_id.get())
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::Field { field: "action", message: format!("case {case_id} has no action {action_id}") })?;
        let action = action_from_row(&row)?;
        let screening_id: i64 = row.try_get("screening_id")?;
        if action.status != ActionStatus::Open {
            return Err(StoreError::Conflict(format!(
                "action {action_id} is already {}",
                action.status.as_str()
            )));
        }
        if action.kind == ActionKind::RadiologistReview
            && !matches!(actor.role, Some(Role::Radiologist | Role::Admin))
        {
            return Err(StoreError::Denied("a radiologist signs off this review"));
        }
        let decided_by = decided_by
            .map(|d| d.trim().to_owned())
            .filter(|d| !d.is_empty());
        if action.kind == ActionKind::PrescriberClearance && decided_by.is_none() {
            return Err(StoreError::Field {
                field: "decided_by",
                message: "name the prescriber who decided".to_owned(),
            });
        }
        let notes = notes.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty());
        if !cleared && notes.is_none() {
            return Err(StoreError::Field {
                field: "notes",
                message: "say why it is not cleared".to_owned(),
            });
        }
        let mut tx = self.pool.begin().await?;
        sqlx::query(self.sql(
            "UPDATE screening_actions SET status = 'done', cleared = ?, decided_by = ?, notes = ?, completed_by = ?,
                    completed_role = ?, completed_at = ?
             WHERE id = ? AND status = 'open'",
        ))
        .bind(i64::from(cleared))
        .bind(decided_by.clone())
        .bind(notes.clone())
        .bind(actor.username.clone())
        .bind(actor.role.map(|r| r.as_str()))
        .bind(micros(at))
        .bind(action_id)
        .execute(&mut *tx)
        .await?;
        let still_open: i64 =
            sqlx::query_scalar(self.sql(
                "SELECT COUNT(*) FROM screening_actions WHERE case_id = ? AND status = 'open'",
            ))
            .bind(case_id.get())
            .fetch_one(&mut *tx)
            .await?;
        let not_cleared: i64 = sqlx::query_scalar(self.sql(
            "SELECT COUNT(*) FROM screening_actions WHERE screening_id = ? AND status = 'done' AND cleared = 0",
        ))
        .bind(screening_id)
        .fetch_one(&mut *tx)
        .await?;
        let text = format!(
            "{}: {}{}{}",
            action.kind.label(),
            if cleared { "cleared" } else { "not cleared" },
            decided_by.map(|d| format!(" by {d}")).unwrap_or_default(),
            notes.map(|n| format!(" — {n}")).unwrap_or_default()
        );
        let ready = still_open == 0 && not_cleared == 0 && case.state == CaseState::AwaitingAction;
        let entry = if ready {
            let request = TransitionRequest::new(Action::MarkReady)
                .because(format!("{text}; all screening actions done"));
            let event = pathway::decide(case.state, &request, actor, at, today)?;
            self.set_case_state(&mut tx, case_id, event.to, case.version, at)
                .await?;
            Timeline {
                action: event.action.as_str(),
                from: Some(event.from),
                to: event.to,
                reason: event.reason,
                deferred_until: None,
                reason_code: None,
            }
        } else {
            sqlx::query(
                self.sql("UPDATE cases SET version = version + 1, updated_at = ? WHERE id = ?"),
            )
            .bind(micros(at))
            .bind(case_id.get())
            .execute(&mut *tx)
            .await?;
            Timeline {
                action: "complete_action",
                from: Some(case.state),
                to: case.state,
                reason: Some(text),
                deferred_until: None,
                reason_code: None,
            }
        };
        self.insert_timeline(&mut tx, case_id, &entry, actor, at)
            .await?;
        self.insert_audit(
            &mut *tx,
            &NewAuditEvent::new(actor, "complete_action", "case", AuditOutcome::Success)
                .entity(case_id)
                .detail(format!(
                    "action={action_id} kind={} cleared={cleared}",
                    action.kind.as_str()
                )),
            at,
        )
        .await?;
        tx.commit().await?;
        self.screening_by_id(screening_id).await
    }
}

impl Store {
    /// Cases with open actions of one kind (e.g. radiologist reviews to sign off),
    /// oldest first, each with the open actions' descriptions. Audited as a list.
    pub async fn cases_with_open_actions(
        &self,
        actor: &Actor,
        kind: ActionKind,
    ) -> Result<Vec<(crate::CaseSummary, Vec<String>)>> {
        let scope = scope_of(actor);
        let result = match scope {
            Err(e) => Err(e),
            Ok(scope) => {
                let rows = sqlx::query(self.sql(
                    "SELECT a.case_id, a.description FROM screening_actions a
                     WHERE a.status = 'open' AND a.kind = ? ORDER BY a.id",
                ))
                .bind(kind.as_str())
                .fetch_all(&self.pool)
                .await?;
                let mut out: Vec<(crate::CaseSummary, Vec<String>)> = Vec::new();
                for row in &rows {
                    let id = CaseId::new(row.try_get("case_id")?);
                    let description: String = row.try_get("description")?;
                    if let Some(entry) = out.iter_mut().find(|(c, _)| c.id == id) {
                        entry.1.push(description);
                        continue;
                    }
                    let case = self.case_summary(id).await?;
                    if scope.allows(case.referrer_id) {
                        out.push((case, vec![description]));
                    }
                }
                Ok(out)
            }
        };
        let outcome = result
            .as_ref()
            .map_or_else(outcome_of, |_| AuditOutcome::Success);
        let detail = match &result {
            Ok(r) => format!("open_actions={} results={}", kind.as_str(), r.len()),
            Err(_) => format!("open_actions={}", kind.as_str()),
        };
        self.record_audit(NewAuditEvent::new(actor, "list", "case", outcome).detail(detail))
            .await?;
        result
    }
}

impl Store {
    /// One stored screening with its case, if the actor may see the case (audited).
    pub async fn screening(
        &self,
        actor: &Actor,
        id: i64,
    ) -> Result<(ScreeningRecord, crate::CaseSummary)> {
        let result = async {
            let scope = scope_of(actor)?;
            let record = self.screening_by_id(id).await?;
            let case = self.case_summary(record.case_id).await?;
            if !scope.allows(case.referrer_id) {
                return Err(StoreError::Denied("not a case this referrer referred"));
            }
            Ok((record, case))
        }
        .await;
        let outcome = result
            .as_ref()
            .map_or_else(outcome_of, |_| AuditOutcome::Success);
        self.record_audit(NewAuditEvent::new(actor, "read", "screening", outcome).entity(id))
            .await?;
        result.map_err(|e| match e {
            StoreError::Denied(_) => StoreError::NotFound,
            other => other,
        })
    }

    /// Every screening of a case, oldest first (audited as one read).
    pub async fn screenings_for_case(
        &self,
        actor: &Actor,
        case_id: CaseId,
    ) -> Result<Vec<ScreeningRecord>> {
        let result = async {
            let scope = scope_of(actor)?;
            let case = self.case_summary(case_id).await?;
            if !scope.allows(case.referrer_id) {
                return Err(StoreError::Denied("not a case this referrer referred"));
            }
            let ids: Vec<i64> = sqlx::query_scalar(
                self.sql("SELECT id FROM screenings WHERE case_id = ? ORDER BY id"),
            )
            .bind(case_id.get())
            .fetch_all(&self.pool)
            .await?;
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                out.push(self.screening_by_id(id).await?);
            }
            Ok(out)
        }
        .await;
        let outcome = result
            .as_ref()
            .map_or_else(outcome_of, |_| AuditOutcome::Success);
        self.record_audit(NewAuditEvent::new(actor, "list", "screening", outcome).entity(case_id))
            .await?;
        result.map_err(hide_denial)
    }
}
