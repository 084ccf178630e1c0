//! The outbox: messages to patients (email, SMS), drained by workers.
//!
//! A message is written `planned` with the time it may go (`send_after`). A worker
//! claims due messages by moving them to `sending` with a lease, in one statement
//! (PostgreSQL: `FOR UPDATE SKIP LOCKED`, so workers in several processes never take
//! the same row; SQLite: the single `UPDATE ... RETURNING` runs under the database's
//! write lock). Each send is an attempt row: started, finished, outcome, detail. A
//! failure that may pass is retried with exponential backoff ([`RETRY_DELAYS`]); after
//! [`MAX_ATTEMPTS`], or on a permanent refusal, the message is `failed`. A worker that
//! dies mid-send loses its lease and another takes the message again (its open attempt
//! is then recorded as `abandoned`).
//!
//! Reminders are messages planned for an appointment: they remember it and its start,
//! so a worker can check, right before sending, that the appointment still stands at
//! that time and the patient has not opted out ([`Store::stale_reason`]). Re-planning
//! a case's reminders ([`Store::replace_planned_reminders`]) cancels the planned ones
//! and writes the new plan in one transaction; a reminder already sent (same kind,
//! channel, recipient, appointment, start and drug) is never planned again.
//!
//! This is the one place with a query text per backend: `SKIP LOCKED` has no SQLite
//! spelling, and SQLite needs none.

use std::fmt;

use irflow_domain::{Actor, CaseId, PatientId, Role};
use jiff::{SignedDuration, Timestamp};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::audit::{AuditOutcome, NewAuditEvent};
use crate::cases::{Timeline, hide_denial, outcome_of, scope_of};
use crate::{Backend, Result, Store, StoreError, from_micros, micros, parse_stored};

pub use irflow_domain::reminders::MessageChannel as Channel;

/// Waits after a failed attempt before the next: after the first failure 1 minute,
/// then 5 minutes, 30 minutes, 2 hours and 6 hours. Long enough for a mail server's
/// restart or a greylisting delay, short enough that a reminder still arrives the
/// same day.
pub const RETRY_DELAYS: [SignedDuration; 5] = [
    SignedDuration::from_mins(1),
    SignedDuration::from_mins(5),
    SignedDuration::from_mins(30),
    SignedDuration::from_hours(2),
    SignedDuration::from_hours(6),
];

/// Attempts before a message is given up as failed (the first try and five retries).
pub const MAX_ATTEMPTS: i64 = RETRY_DELAYS.len() as i64 + 1;

/// The wait after attempt `attempt` (1-based) failed, or `None` when it was the last.
pub fn retry_delay(attempt: i64) -> Option<SignedDuration> {
    usize::try_from(attempt - 1)
        .ok()
        .and_then(|i| RETRY_DELAYS.get(i).copied())
}

/// Identifies a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageId(i64);

impl MessageId {
    /// Wraps a raw database id.
    pub const fn new(raw: i64) -> Self {
        Self(raw)
    }

    /// The raw database id.
    pub const fn get(self) -> i64 {
        self.0
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A message to put in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    /// The case it is about.
    pub case_id: CaseId,
    /// What it is: `patient_link`, `reminder_1_day`, ...
    pub kind: String,
    /// Email or SMS.
    pub channel: Channel,
    /// The address or phone number.
    pub recipient: String,
    /// Subject (email).
    pub subject: String,
    /// Plain text (the SMS, or the email's text part).
    pub body_text: String,
    /// The email's HTML part, if any.
    pub body_html: Option<String>,
    /// Not before.
    pub send_after: Timestamp,
}

/// A reminder planned for an appointment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewReminder {
    /// The message.
    pub message: NewMessage,
    /// The appointment it reminds of.
    pub appointment_id: i64,
    /// Its start when planned.
    pub appointment_start: Timestamp,
    /// For hold reminders: the drug (two held drugs are two reminders).
    pub drug: Option<String>,
    /// Not at or after this instant: past it the reminder would be wrong (a hold's
    /// last-dose deadline, the end of the day a 1-day reminder calls "tomorrow"); a
    /// worker claiming it later cancels it.
    pub send_before: Option<Timestamp>,
}

impl NewReminder {
    /// What makes two plans the same reminder.
    fn dedupe_key(&self) -> String {
        format!(
            "{}|{}|{}|{}|{}|{}|{}",
            self.message.case_id,
            self.message.kind,
            self.message.channel,
            self.message.recipient,
            self.appointment_id,
            micros(self.appointment_start),
            self.drug.as_deref().unwrap_or("")
        )
    }
}

/// Where a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageState {
    /// Waiting for its time (or for a retry).
    Planned,
    /// A worker is sending it.
    Sending,
    /// Delivered to the mail server or SMS gateway.
    Sent,
    /// Given up.
    Failed,
    /// Not to be sent (re-planned, appointment moved or cancelled, opted out).
    Cancelled,
}

impl MessageState {
    /// Every state.
    pub const ALL: [MessageState; 5] = [
        MessageState::Planned,
        MessageState::Sending,
        MessageState::Sent,
        MessageState::Failed,
        MessageState::Cancelled,
    ];

    /// Stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            MessageState::Planned => "planned",
            MessageState::Sending => "sending",
            MessageState::Sent => "sent",
            MessageState::Failed => "failed",
            MessageState::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for MessageState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for MessageState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MessageState::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| format!("unknown message state {s:?}"))
    }
}

/// One attempt to send a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    /// 1, 2, ...
    pub attempt: i64,
    /// Which worker.
    pub worker: String,
    /// Started.
    pub started_at: Timestamp,
    /// Finished, unless under way or abandoned.
    pub finished_at: Option<Timestamp>,
    /// `sending`, `sent`, `retry`, `failed` or `abandoned`.
    pub outcome: String,
    /// The server's reply or the error.
    pub detail: Option<String>,
}

/// A message as stored, with its attempts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRecord {
    /// Id.
    pub id: MessageId,
    /// The case.
    pub case_id: CaseId,
    /// Kind.
    pub kind: String,
    /// Channel.
    pub channel: Channel,
    /// Address or number.
    pub recipient: String,
    /// Subject.
    pub subject: String,
    /// Text.
    pub body_text: String,
    /// HTML.
    pub body_html: Option<String>,
    /// For reminders: the appointment.
    pub appointment_id: Option<i64>,
    /// For reminders: its start when planned.
    pub appointment_start: Option<Timestamp>,
    /// Planned for.
    pub send_after: Timestamp,
    /// State.
    pub state: MessageState,
    /// Attempts so far.
    pub attempts: i64,
    /// When a planned message is next due.
    pub next_attempt_at: Option<Timestamp>,
    /// The last failure.
    pub last_error: Option<String>,
    /// Who put it in the outbox.
    pub created_by: String,
    /// When.
    pub created_at: Timestamp,
    /// When it went.
    pub sent_at: Option<Timestamp>,
    /// When it was cancelled.
    pub cancelled_at: Option<Timestamp>,
    /// Why.
    pub cancelled_reason: Option<String>,
    /// Every attempt, oldest first.
    pub attempt_log: Vec<AttemptRecord>,
}

/// A message a worker has claimed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedMessage {
    /// Id.
    pub id: MessageId,
    /// The case.
    pub case_id: CaseId,
    /// Kind.
    pub kind: String,
    /// Channel.
    pub channel: Channel,
    /// Address or number.
    pub recipient: String,
    /// Subject.
    pub subject: String,
    /// Text.
    pub body_text: String,
    /// HTML.
    pub body_html: Option<String>,
    /// For reminders: the appointment.
    pub appointment_id: Option<i64>,
    /// When it was planned for.
    pub send_after: Timestamp,
    /// Not at or after this instant (reminders that would then be wrong).
    pub send_before: Option<Timestamp>,
    /// Attempts before this claim.
    pub attempts: i64,
}

/// How an attempt ended, as the worker reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptResult {
    /// Accepted by the server; the detail is its reply.
    Sent(String),
    /// Refused or failed; `permanent` when retrying cannot help (e.g. SMTP 5xx).
    Failed {
        /// The reply or error.
        detail: String,
        /// Do not retry.
        permanent: bool,
    },
}

/// What re-planning a case's reminders did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReplanSummary {
    /// Planned reminders cancelled.
    pub cancelled: usize,
    /// New reminders planned.
    pub planned: usize,
    /// Reminders of the new plan left out because the same one was already sent (or is being sent).
    pub already_sent: usize,
}

/// The patient's choice not to receive reminders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptOutRecord {
    /// When recorded.
    pub at: Timestamp,
    /// By whom.
    pub by: String,
}

/// The columns of a message; a macro so that queries stay static strings.
macro_rules! message_select {
    () => {
        "SELECT id, case_id, kind, channel, recipient, subject, body_text, body_html, \
         appointment_id, appointment_start, send_after, state, attempts, next_attempt_at, \
         last_error, created_by, created_at, sent_at, cancelled_at, cancelled_reason FROM messages"
    };
}

/// Claims due rows: planned and due, or sending with a lapsed lease. The outer
/// condition repeats the inner one so that a row changed meanwhile is not taken.
const CLAIM_SQLITE: &str = "UPDATE messages SET state = 'sending', claimed_by = ?, lease_until = ?
     WHERE id IN (SELECT id FROM messages
                  WHERE (state = 'planned' AND next_attempt_at <= ?)
                     OR (state = 'sending' AND lease_until < ?)
                  ORDER BY next_attempt_at, id
                  LIMIT ?)
       AND ((state = 'planned' AND next_attempt_at <= ?) OR (state = 'sending' AND lease_until < ?))
     RETURNING id, case_id, kind, channel, recipient, subject, body_text, body_html, appointment_id, send_after, send_before, attempts";

const CLAIM_POSTGRES: &str = "UPDATE messages SET state = 'sending', claimed_by = ?, lease_until = ?
     WHERE id IN (SELECT id FROM messages
                  WHERE (state = 'planned' AND next_attempt_at <= ?)
                     OR (state = 'sending' AND lease_until < ?)
                  ORDER BY next_attempt_at, id
                  LIMIT ?
                  FOR UPDATE SKIP LOCKED)
       AND ((state = 'planned' AND next_attempt_at <= ?) OR (state = 'sending' AND lease_until < ?))
     RETURNING id, case_id, kind, channel, recipient, subject, body_text, body_html, appointment_id, send_after, send_before, attempts";

/// The actor recorded for the workers' own changes.
fn worker_actor(worker: &str) -> Actor {
    Actor::system(&format!("outbox:{worker}"))
}

/// Staff other than referrers, or irflow itself, may put messages in the outbox and
/// plan reminders.
fn may_send(actor: &Actor) -> Result<()> {
    match actor.role {
        Some(Role::Referrer) => Err(StoreError::Denied(
            "messages to patients are sent by the department",
        )),
        _ => Ok(()),
    }
}

fn check_message(msg: &NewMessage) -> Result<()> {
    let kind = msg.kind.trim();
    if kind.is_empty()
        || kind.len() > 64
        || !kind
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(StoreError::Invalid(
            "a message kind is 1-64 lowercase letters, digits or '_'".to_owned(),
        ));
    }
    if msg.recipient.trim().is_empty() {
        return Err(StoreError::Invalid(
            "a message needs a recipient (the patient's email address or phone number)".to_owned(),
        ));
    }
    if msg.body_text.trim().is_empty() {
        return Err(StoreError::Invalid("a message needs a text".to_owned()));
    }
    Ok(())
}

fn opt_time(row: &AnyRow, column: &str) -> Result<Option<Timestamp>> {
    let raw: Option<i64> = row.try_get(column)?;
    raw.map(from_micros).transpose()
}

fn message_from_row(row: &AnyRow) -> Result<MessageRecord> {
    let channel: String = row.try_get("channel")?;
    let state: String = row.try_get("state")?;
    Ok(MessageRecord {
        id: MessageId::new(row.try_get("id")?),
        case_id: CaseId::new(row.try_get("case_id")?),
        kind: row.try_get("kind")?,
        channel: parse_stored("channel", &channel)?,
        recipient: row.try_get("recipient")?,
        subject: row.try_get("subject")?,
        body_text: row.try_get("body_text")?,
        body_html: row.try_get("body_html")?,
        appointment_id: row.try_get("appointment_id")?,
        appointment_start: opt_time(row, "appointment_start")?,
        send_after: from_micros(row.try_get("send_after")?)?,
        state: parse_stored("message state", &state)?,
        attempts: row.try_get("attempts")?,
        next_attempt_at: opt_time(row, "next_attempt_at")?,
        last_error: row.try_get("last_error")?,
        created_by: row.try_get("created_by")?,
        created_at: from_micros(row.try_get("created_at")?)?,
        sent_at: opt_time(row, "sent_at")?,
        cancelled_at: opt_time(row, "cancelled_at")?,
        cancelled_reason: row.try_get("cancelled_reason")?,
        attempt_log: Vec::new(),
    })
}

fn attempt_from_row(row: &AnyRow) -> Result<(i64, AttemptRecord)> {
    Ok((
        row.try_get("message_id")?,
        AttemptRecord {
            attempt: row.try_get("attempt")?,
            worker: row.try_get("worker")?,
            started_at: from_micros(row.try_get("started_at")?)?,
            finished_at: opt_time(row, "finished_at")?,
            outcome: row.try_get("outcome")?,
            detail: row.try_get("detail")?,
        },
    ))
}

fn claimed_from_row(row: &AnyRow) -> Result<ClaimedMessage> {
    let channel: String = row.try_get("channel")?;
    Ok(ClaimedMessage {
        id: MessageId::new(row.try_get("id")?),
        case_id: CaseId::new(row.try_get("case_id")?),
        kind: row.try_get("kind")?,
        channel: parse_stored("channel", &channel)?,
        recipient: row.try_get("recipient")?,
        subject: row.try_get("subject")?,
        body_text: row.try_get("body_text")?,
        body_html: row.try_get("body_html")?,
        appointment_id: row.try_get("appointment_id")?,
        send_after: from_micros(row.try_get("send_after")?)?,
        send_before: row
            .try_get::<Option<i64>, _>("send_before")?
            .map(from_micros)
            .transpose()?,
        attempts: row.try_get("attempts")?,
    })
}

/// Keeps stored error text to a sensible size.
fn clip(text: &str) -> String {
    const MAX: usize = 2000;
    if text.len() <= MAX {
        return text.to_owned();
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

impl Store {
    async fn messages_case_in_scope(&self, actor: &Actor, case: CaseId) -> Result<PatientId> {
        let scope = scope_of(actor)?;
        let summary = self.case_summary(case).await?;
        if !scope.allows(summary.referrer_id) {
            return Err(StoreError::Denied("not a case this referrer referred"));
        }
        Ok(summary.patient_id)
    }

    /// Puts a message in the outbox, `planned` for `send_after` (audited).
    pub async fn enqueue_message(&self, actor: &Actor, msg: NewMessage) -> Result<MessageId> {
        let case = msg.case_id;
        let detail = format!("kind={} channel={}", msg.kind.trim(), msg.channel);
        let result = async {
            may_send(actor)?;
            self.messages_case_in_scope(actor, case).await?;
            check_message(&msg)?;
            let now = Timestamp::now();
            let mut tx = self.pool.begin().await?;
            let id: i64 = sqlx::query_scalar(self.sql(
                "INSERT INTO messages (case_id, kind, channel, recipient, subject, body_text, body_html,
                                       send_after, state, attempts, next_attempt_at, created_by, created_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'planned', 0, ?, ?, ?) RETURNING id",
            ))
            .bind(case.get())
            .bind(msg.kind.trim().to_owned())
            .bind(msg.channel.as_str())
            .bind(msg.recipient.trim().to_owned())
            .bind(msg.subject.clone())
            .bind(msg.body_text.clone())
            .bind(msg.body_html.clone())
            .bind(micros(msg.send_after))
            .bind(micros(msg.send_after))
            .bind(actor.username.clone())
            .bind(micros(now))
            .fetch_one(&mut *tx)
            .await?;
            self.insert_audit(
                &mut *tx,
                &NewAuditEvent::new(actor, "create", "message", AuditOutcome::Success)
                    .entity(id)
                    .detail(format!("case={case} {detail}")),
                now,
            )
            .await?;
            tx.commit().await?;
            Ok(MessageId::new(id))
        }
        .await;
        if let Err(e) = &result {
            self.record_audit(
                NewAuditEvent::new(actor, "create", "message", outcome_of(e))
                    .detail(format!("case={case} {detail}")),
            )
            .await?;
        }
        result.map_err(hide_denial)
    }

    /// Re-plans a case's reminders in one transaction: every still-planned reminder of
    /// the case is cancelled and `reminders` are planned instead, except those already
    /// sent or being sent. An empty list leaves none planned (appointment cancelled,
    /// patient opted out).
    pub async fn replace_planned_reminders(
        &self,
        actor: &Actor,
        case: CaseId,
        reminders: Vec<NewReminder>,
        at: Timestamp,
    ) -> Result<ReplanSummary> {
        let result = async {
            may_send(actor)?;
            self.messages_case_in_scope(actor, case).await?;
            for r in &reminders {
                if r.message.case_id != case {
                    return Err(StoreError::Invalid(
                        "a reminder of another case cannot be planned here".to_owned(),
                    ));
                }
                check_message(&r.message)?;
            }
            let mut tx = self.pool.begin().await?;
            let cancelled = sqlx::query(self.sql(
                "UPDATE messages SET state = 'cancelled', cancelled_at = ?, cancelled_reason = ?,
                                     next_attempt_at = NULL
                 WHERE case_id = ? AND state = 'planned' AND appointment_id IS NOT NULL",
            ))
            .bind(micros(at))
            .bind("re-planned: the appointment was booked, moved or cancelled, or the patient's choice changed")
            .bind(case.get())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            let mut summary = ReplanSummary {
                cancelled: usize::try_from(cancelled).unwrap_or(usize::MAX),
                ..ReplanSummary::default()
            };
            for r in &reminders {
                let m = &r.message;
                let inserted: Option<i64> = sqlx::query_scalar(self.sql(
                    "INSERT INTO messages (case_id, kind, channel, recipient, subject, body_text, body_html,
                                           appointment_id, appointment_start, dedupe_key, send_after, send_before,
                                           state, attempts, next_attempt_at, created_by, created_at)
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'planned', 0, ?, ?, ?)
                     ON CONFLICT DO NOTHING RETURNING id",
                ))
                .bind(case.get())
                .bind(m.kind.trim().to_owned())
                .bind(m.channel.as_str())
                .bind(m.recipient.trim().to_owned())
                .bind(m.subject.clone())
                .bind(m.body_text.clone())
                .bind(m.body_html.clone())
                .bind(r.appointment_id)
                .bind(micros(r.appointment_start))
                .bind(r.dedupe_key())
                .bind(micros(m.send_after))
                .bind(r.send_before.map(micros))
                .bind(micros(m.send_after))
                .bind(actor.username.clone())
                .bind(micros(at))
                .fetch_optional(&mut *tx)
                .await?;
                if inserted.is_some() {
                    summary.planned += 1;
                } else {
                    summary.already_sent += 1;
                }
            }
            self.insert_audit(
                &mut *tx,
                &NewAuditEvent::new(actor, "plan_reminders", "case", AuditOutcome::Success)
                    .entity(case)
                    .detail(format!(
                        "cancelled={} planned={} already_sent={}",
                        summary.cancelled, summary.planned, summary.already_sent
                    )),
                at,
            )
            .await?;
            tx.commit().await?;
            Ok(summary)
        }
        .await;
        if let Err(e) = &result {
            self.record_audit(
                NewAuditEvent::new(actor, "plan_reminders", "case", outcome_of(e)).entity(case),
            )
            .await?;
        }
        result.map_err(hide_denial)
    }

    /// A case's messages, newest first, each with its attempts (audited read; as for
    /// reading the case: referrers only their own cases').
    pub async fn case_messages(&self, actor: &Actor, case: CaseId) -> Result<Vec<MessageRecord>> {
        let result = async {
            self.messages_case_in_scope(actor, case).await?;
            let rows = sqlx::query(self.sql(concat!(
                message_select!(),
                " WHERE case_id = ? ORDER BY send_after DESC, id DESC"
            )))
            .bind(case.get())
            .fetch_all(&self.pool)
            .await?;
            let mut messages = rows
                .iter()
                .map(message_from_row)
                .collect::<Result<Vec<_>>>()?;
            let attempts = sqlx::query(self.sql(
                "SELECT t.message_id, t.attempt, t.worker, t.started_at, t.finished_at, t.outcome, t.detail
                 FROM message_attempts t JOIN messages m ON m.id = t.message_id
                 WHERE m.case_id = ? ORDER BY t.message_id, t.attempt",
            ))
            .bind(case.get())
            .fetch_all(&self.pool)
            .await?;
            for row in &attempts {
                let (message, attempt) = attempt_from_row(row)?;
                if let Some(m) = messages.iter_mut().find(|m| m.id.get() == message) {
                    m.attempt_log.push(attempt);
                }
            }
            Ok(messages)
        }
        .await;
        let outcome = result
            .as_ref()
            .map_or_else(outcome_of, |_| AuditOutcome::Success);
        let mut event = NewAuditEvent::new(actor, "read", "messages", outcome).entity(case);
        if let Ok(m) = &result {
            event = event.detail(format!("{} messages", m.len()));
        }
        self.record_audit(event).await?;
        result.map_err(hide_denial)
    }

    /// Whether the case's patient asked for no reminders (audited read).
    pub async fn reminders_opt_out(
        &self,
        actor: &Actor,
        case: CaseId,
    ) -> Result<Option<OptOutRecord>> {
        let result = async {
            let patient = self.messages_case_in_scope(actor, case).await?;
            self.select_opt_out(patient).await
        }
        .await;
        let outcome = result
            .as_ref()
            .map_or_else(outcome_of, |_| AuditOutcome::Success);
        self.record_audit(
            NewAuditEvent::new(actor, "read", "reminder_opt_out", outcome).entity(case),
        )
        .await?;
        result.map_err(hide_denial)
    }

    async fn select_opt_out(&self, patient: PatientId) -> Result<Option<OptOutRecord>> {
        let row = sqlx::query(self.sql(
            "SELECT reminders_opted_out_at, reminders_opted_out_by FROM patients WHERE id = ?",
        ))
        .bind(patient.get())
        .fetch_one(&self.pool)
        .await?;
        let at: Option<i64> = row.try_get("reminders_opted_out_at")?;
        let by: Option<String> = row.try_get("reminders_opted_out_by")?;
        Ok(match at {
            Some(at) => Some(OptOutRecord {
                at: from_micros(at)?,
                by: by.unwrap_or_default(),
            }),
            None => None,
        })
    }

    /// Records that the case's patient wants no reminders (or wants them again). Opting
    /// out cancels the planned reminders of all the patient's cases at once; opting back
    /// in plans nothing by itself (the caller re-plans). Staff other than referrers, the
    /// patient through their link, or irflow itself on the patient's behalf; audited and
    /// on the case's timeline.
    pub async fn set_reminders_opt_out(
        &self,
        actor: &Actor,
        case: CaseId,
        opted_out: bool,
        at: Timestamp,
    ) -> Result<()> {
        let result = async {
            may_send(actor)?;
            let patient = self.messages_case_in_scope(actor, case).await?;
            let state = self.case_summary(case).await?.state;
            let mut tx = self.pool.begin().await?;
            // On the case's timeline, so staff see who stopped (or restarted) them.
            self.insert_timeline(
                &mut tx,
                case,
                &Timeline {
                    action: if opted_out {
                        "reminders_opted_out"
                    } else {
                        "reminders_opted_in"
                    },
                    from: Some(state),
                    to: state,
                    reason: None,
                    deferred_until: None,
                    reason_code: None,
                },
                actor,
                at,
            )
            .await?;
            sqlx::query(self.sql(
                "UPDATE patients SET reminders_opted_out_at = ?, reminders_opted_out_by = ? WHERE id = ?",
            ))
            .bind(opted_out.then(|| micros(at)))
            .bind(opted_out.then(|| actor.username.clone()))
            .bind(patient.get())
            .execute(&mut *tx)
            .await?;
            let cancelled = if opted_out {
                sqlx::query(self.sql(
                    "UPDATE messages SET state = 'cancelled', cancelled_at = ?, cancelled_reason = ?,
                                         next_attempt_at = NULL
                     WHERE state = 'planned' AND appointment_id IS NOT NULL
                       AND case_id IN (SELECT id FROM cases WHERE patient_id = ?)",
                ))
                .bind(micros(at))
                .bind("the patient opted out of reminders")
                .bind(patient.get())
                .execute(&mut *tx)
                .await?
                .rows_affected()
            } else {
                0
            };
            self.insert_audit(
                &mut *tx,
                &NewAuditEvent::new(actor, "update", "reminder_opt_out", AuditOutcome::Success)
                    .entity(case)
                    .detail(format!("opted_out={opted_out} cancelled={cancelled}")),
                at,
            )
            .await?;
            tx.commit().await?;
            Ok(())
        }
        .await;
        if let Err(e) = &result {
            self.record_audit(
                NewAuditEvent::new(actor, "update", "reminder_opt_out", outcome_of(e)).entity(case),
            )
            .await?;
        }
        result.map_err(hide_denial)
    }

    /// Claims up to `limit` due messages for `worker`, holding them for `lease`. Safe
    /// with many workers in many processes: a message is claimed by one at a time.
    pub async fn claim_due_messages(
        &self,
        worker: &str,
        now: Timestamp,
        limit: u32,
        lease: SignedDuration,
    ) -> Result<Vec<ClaimedMessage>> {
        let query = match self.backend {
            Backend::Sqlite => CLAIM_SQLITE,
            Backend::Postgres => CLAIM_POSTGRES,
        };
        let lease_until = now
            .checked_add(lease)
            .map_err(|e| StoreError::Invalid(format!("lease: {e}")))?;
        let rows = sqlx::query(self.sql(query))
            .bind(worker.to_owned())
            .bind(micros(lease_until))
            .bind(micros(now))
            .bind(micros(now))
            .bind(i64::from(limit.clamp(1, 1000)))
            .bind(micros(now))
            .bind(micros(now))
            .fetch_all(&self.pool)
            .await?;
        let mut claimed = rows
            .iter()
            .map(claimed_from_row)
            .collect::<Result<Vec<_>>>()?;
        claimed.sort_by_key(|m| m.id);
        Ok(claimed)
    }

    /// Why a claimed reminder must not be sent now, if it must not: its appointment was
    /// cancelled, moved or has started, or the patient opted out. Messages that are not
    /// reminders are always wanted.
    pub async fn stale_reason(&self, id: MessageId, now: Timestamp) -> Result<Option<String>> {
        let row = sqlx::query(self.sql(
            "SELECT m.appointment_id, m.appointment_start, a.status, a.starts_at, a.attendance,
                    p.reminders_opted_out_at,
                    (SELECT MAX(b.id) FROM appointments b
                     WHERE b.case_id = m.case_id AND b.status = 'booked') AS current_appointment
             FROM messages m
             JOIN cases c ON c.id = m.case_id
             JOIN patients p ON p.id = c.patient_id
             LEFT JOIN appointments a ON a.id = m.appointment_id
             WHERE m.id = ?",
        ))
        .bind(id.get())
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        let appointment: Option<i64> = row.try_get("appointment_id")?;
        if appointment.is_none() {
            return Ok(None);
        }
        let planned_for: Option<i64> = row.try_get("appointment_start")?;
        let status: Option<String> = row.try_get("status")?;
        let starts_at: Option<i64> = row.try_get("starts_at")?;
        let attendance: Option<String> = row.try_get("attendance")?;
        let opted_out: Option<i64> = row.try_get("reminders_opted_out_at")?;
        let current: Option<i64> = row.try_get("current_appointment")?;
        let reason = if opted_out.is_some() {
            Some("the patient opted out of reminders")
        } else if status.as_deref() != Some("booked") {
            // A move books a new appointment and cancels the old one.
            Some(match (current, attendance.as_deref()) {
                (Some(_), _) => "the appointment moved",
                (None, Some("no_show")) => "the patient did not come (no-show)",
                (None, _) => "the appointment was cancelled",
            })
        } else if starts_at != planned_for {
            Some("the appointment moved")
        } else if starts_at.is_some_and(|s| s <= micros(now)) {
            Some("the appointment has started")
        } else {
            None
        };
        Ok(reason.map(str::to_owned))
    }

    /// Cancels a message the worker holds (a stale reminder), audited.
    pub async fn cancel_claimed(
        &self,
        worker: &str,
        id: MessageId,
        reason: &str,
        now: Timestamp,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(self.sql(
            "UPDATE messages SET state = 'cancelled', cancelled_at = ?, cancelled_reason = ?,
                                 claimed_by = NULL, lease_until = NULL, next_attempt_at = NULL
             WHERE id = ? AND state = 'sending' AND claimed_by = ?",
        ))
        .bind(micros(now))
        .bind(reason.to_owned())
        .bind(id.get())
        .bind(worker.to_owned())
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if done {
            self.insert_audit(
                &mut *tx,
                &NewAuditEvent::new(
                    &worker_actor(worker),
                    "cancel",
                    "message",
                    AuditOutcome::Success,
                )
                .entity(id)
                .detail(reason.to_owned()),
                now,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(done)
    }

    /// Hands a claimed message back, due at `until`, without counting an attempt
    /// (e.g. it is a reminder and the quiet hours have begun).
    pub async fn defer_claimed(
        &self,
        worker: &str,
        id: MessageId,
        until: Timestamp,
    ) -> Result<bool> {
        let done = sqlx::query(self.sql(
            "UPDATE messages SET state = 'planned', next_attempt_at = ?, claimed_by = NULL, lease_until = NULL
             WHERE id = ? AND state = 'sending' AND claimed_by = ?",
        ))
        .bind(micros(until))
        .bind(id.get())
        .bind(worker.to_owned())
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(done == 1)
    }

    /// Starts an attempt on a message the worker holds: counts it and records it as
    /// under way (an earlier attempt left open by a worker that lost its lease is
    /// recorded as abandoned). `None` when the worker no longer holds the message.
    pub async fn begin_attempt(
        &self,
        worker: &str,
        id: MessageId,
        now: Timestamp,
    ) -> Result<Option<i64>> {
        let mut tx = self.pool.begin().await?;
        let attempt: Option<i64> = sqlx::query_scalar(self.sql(
            "UPDATE messages SET attempts = attempts + 1
             WHERE id = ? AND state = 'sending' AND claimed_by = ? RETURNING attempts",
        ))
        .bind(id.get())
        .bind(worker.to_owned())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(attempt) = attempt else {
            return Ok(None);
        };
        sqlx::query(self.sql(
            "UPDATE message_attempts SET outcome = 'abandoned', finished_at = ?,
                    detail = 'the worker did not report back before its lease ran out'
             WHERE message_id = ? AND outcome = 'sending'",
        ))
        .bind(micros(now))
        .bind(id.get())
        .execute(&mut *tx)
        .await?;
        sqlx::query(self.sql(
            "INSERT INTO message_attempts (message_id, attempt, worker, started_at, outcome)
             VALUES (?, ?, ?, ?, 'sending')",
        ))
        .bind(id.get())
        .bind(attempt)
        .bind(worker.to_owned())
        .bind(micros(now))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(attempt))
    }

    /// Records how an attempt ended and moves the message on: sent; planned again after
    /// the backoff's wait; or failed (permanent refusal, or the last attempt). Audited
    /// as the worker's disclosure of the message. Returns the message's new state.
    pub async fn finish_attempt(
        &self,
        worker: &str,
        id: MessageId,
        attempt: i64,
        result: &AttemptResult,
        now: Timestamp,
    ) -> Result<MessageState> {
        let (state, outcome, detail, next) = match result {
            AttemptResult::Sent(detail) => (MessageState::Sent, "sent", clip(detail), None),
            AttemptResult::Failed { detail, permanent } => {
                match (permanent, retry_delay(attempt)) {
                    (false, Some(wait)) => (
                        MessageState::Planned,
                        "retry",
                        clip(detail),
                        Some(
                            now.checked_add(wait)
                                .map_err(|e| StoreError::Invalid(format!("retry time: {e}")))?,
                        ),
                    ),
                    _ => (MessageState::Failed, "failed", clip(detail), None),
                }
            }
        };
        let mut tx = self.pool.begin().await?;
        sqlx::query(self.sql(
            "UPDATE message_attempts SET outcome = ?, finished_at = ?, detail = ?
             WHERE message_id = ? AND attempt = ?",
        ))
        .bind(outcome)
        .bind(micros(now))
        .bind(detail.clone())
        .bind(id.get())
        .bind(attempt)
        .execute(&mut *tx)
        .await?;
        let moved = sqlx::query(self.sql(
            "UPDATE messages SET state = ?, next_attempt_at = ?, claimed_by = NULL, lease_until = NULL,
                    sent_at = CASE WHEN ? = 'sent' THEN ? ELSE sent_at END,
                    last_error = CASE WHEN ? = 'sent' THEN last_error ELSE ? END
             WHERE id = ? AND state = 'sending' AND claimed_by = ? AND attempts = ?",
        ))
        .bind(state.as_str())
        .bind(next.map(micros))
        .bind(state.as_str())
        .bind(micros(now))
        .bind(state.as_str())
        .bind(detail)
        .bind(id.get())
        .bind(worker.to_owned())
        .bind(attempt)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        self.insert_audit(
            &mut *tx,
            &NewAuditEvent::new(
                &worker_actor(worker),
                "send",
                "message",
                if outcome == "sent" {
                    AuditOutcome::Success
                } else {
                    AuditOutcome::Error
                },
            )
            .entity(id)
            .detail(format!("attempt={attempt} outcome={outcome}")),
            now,
        )
        .await?;
        tx.commit().await?;
        if moved == 1 {
            Ok(state)
        } else {
            // Another worker took the message after this one's lease ran out; the
            // attempt is recorded, the message's state is theirs to decide.
            Ok(MessageState::Sending)
        }
    }

    /// One message as stored, with its attempts (for the workers and tests; not audited:
    /// callers are irflow's own processes).
    pub async fn message(&self, id: MessageId) -> Result<MessageRecord> {
        let row = sqlx::query(self.sql(concat!(message_select!(), " WHERE id = ?")))
            .bind(id.get())
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        let mut m = message_from_row(&row)?;
        let attempts = sqlx::query(self.sql(
            "SELECT message_id, attempt, worker, started_at, finished_at, outcome, detail
             FROM message_attempts WHERE message_id = ? ORDER BY attempt",
        ))
        .bind(id.get())
        .fetch_all(&self.pool)
        .await?;
        for row in &attempts {
            m.attempt_log.push(attempt_from_row(row)?.1);
        }
        Ok(m)
    }

    /// When the next planned message is due, if any (lets a worker sleep until then).
    pub async fn next_message_due(&self) -> Result<Option<Timestamp>> {
        let next: Option<i64> = sqlx::query_scalar(
            self.sql("SELECT MIN(next_attempt_at) FROM messages WHERE state = 'planned'"),
        )
        .fetch_one(&self.pool)
        .await?;
        next.map(from_micros).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_then_gives_up() {
        let waits: Vec<Option<i64>> = (1..=7)
            .map(|a| retry_delay(a).map(|d| d.as_mins()))
            .collect();
        assert_eq!(
            waits,
            vec![Some(1), Some(5), Some(30), Some(120), Some(360), None, None]
        );
        assert_eq!(MAX_ATTEMPTS, 6);
        assert_eq!(retry_delay(0), None);
    }

    #[test]
    fn long_errors_are_clipped_on_a_character_boundary() {
        let long = "é".repeat(3000);
        let clipped = clip(&long);
        assert!(clipped.len() <= 2004);
        assert!(clipped.ends_with('…'));
        assert_eq!(clip("short"), "short");
    }
}
