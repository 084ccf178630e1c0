//! Patient links: a personal link staff send to a patient, the date-of-birth check
//! that opens it, the patient's short sessions, and what the patient answers about
//! the appointment (they will come, or they ask to cancel).
//!
//! The link's secret never reaches the database: links and sessions are looked up by
//! the SHA-256 of the random value the patient holds (made by the server crate).
//! Wrong dates of birth are counted on the link in one atomic `UPDATE`, so the lock
//! after the last allowed attempt holds across processes; every attempt is also kept
//! per client address for rate limiting. Everything a patient sees or tries is
//! audited with an actor that names the link (`patient-link:<id>`), never its secret.

use std::fmt;
use std::str::FromStr;

use irflow_domain::{Actor, CaseId, CaseState, Role};
use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::audit::{AuditOutcome, NewAuditEvent};
use crate::cases::{Timeline, hide_denial, outcome_of, scope_of};
use crate::scheduling::AppointmentRecord;
use crate::{Result, Store, StoreError, from_micros, micros};

/// A patient session's "last seen" is refreshed at most this often (one minute).
const TOUCH_EVERY_MICROS: i64 = 60_000_000;

/// The longest reason a patient may give when asking to cancel.
pub const MAX_RESPONSE_REASON_CHARS: usize = 500;

/// How a link reached (or will reach) the patient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkChannel {
    /// By email, through the outbox.
    Email,
    /// By text message, through the outbox.
    Sms,
    /// Not sent: staff read it out or hand it over.
    None,
}

impl LinkChannel {
    /// Every channel.
    pub const ALL: [LinkChannel; 3] = [LinkChannel::Email, LinkChannel::Sms, LinkChannel::None];

    /// Stored and wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            LinkChannel::Email => "email",
            LinkChannel::Sms => "sms",
            LinkChannel::None => "none",
        }
    }
}

impl fmt::Display for LinkChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LinkChannel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LinkChannel::ALL
            .into_iter()
            .find(|c| c.as_str() == s.trim())
            .ok_or_else(|| format!("unknown channel {s:?}: expected email, sms or none"))
    }
}

/// Whether a link still opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkStatus {
    /// It opens (after the date-of-birth check).
    Active,
    /// Past its expiry.
    Expired,
    /// Too many wrong dates of birth.
    Locked,
    /// Withdrawn by staff.
    Revoked,
}

impl LinkStatus {
    /// Wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            LinkStatus::Active => "active",
            LinkStatus::Expired => "expired",
            LinkStatus::Locked => "locked",
            LinkStatus::Revoked => "revoked",
        }
    }
}

/// A patient link as stored (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatientLinkRecord {
    /// Id (named in the audit log as `patient-link:<id>`).
    pub id: i64,
    /// The case it opens.
    pub case_id: CaseId,
    /// How it was sent.
    pub channel: LinkChannel,
    /// The outbox message that carried it.
    pub message_id: Option<i64>,
    /// Who made it.
    pub created_by: String,
    /// When.
    pub created_at: Timestamp,
    /// When it stops working.
    pub expires_at: Timestamp,
    /// Wrong dates of birth so far.
    pub failed_attempts: i64,
    /// Locked after too many wrong dates of birth.
    pub locked_at: Option<Timestamp>,
    /// Withdrawn by staff.
    pub revoked_at: Option<Timestamp>,
    /// By whom.
    pub revoked_by: Option<String>,
    /// Last opened with the right date of birth.
    pub last_used_at: Option<Timestamp>,
}

impl PatientLinkRecord {
    /// Whether it still opens at `now`.
    pub fn status(&self, now: Timestamp) -> LinkStatus {
        if self.revoked_at.is_some() {
            LinkStatus::Revoked
        } else if self.locked_at.is_some() {
            LinkStatus::Locked
        } else if self.expires_at <= now {
            LinkStatus::Expired
        } else {
            LinkStatus::Active
        }
    }

    /// The actor everything the patient does through this link is recorded as.
    pub fn actor(&self, client: Option<String>) -> Actor {
        Actor {
            user_id: None,
            username: format!("patient-link:{}", self.id),
            role: None,
            client,
        }
    }
}

/// How a date-of-birth check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DobCheck {
    /// Right: the patient may open a session.
    Verified,
    /// Wrong; this many attempts are left (0: the link is now locked).
    Wrong {
        /// Attempts left before the link locks.
        attempts_left: i64,
    },
    /// The link no longer opens (locked, expired or revoked).
    Unusable,
}

/// A live patient session.
#[derive(Debug, Clone)]
pub struct PatientSession {
    /// The link it is bound to.
    pub link: PatientLinkRecord,
    /// Anti-forgery token for the patient's forms.
    pub csrf_token: String,
}

/// What the patient said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseKind {
    /// "I will come."
    Confirm,
    /// "Please cancel."
    CancelRequest,
}

impl ResponseKind {
    /// Stored and wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            ResponseKind::Confirm => "confirm",
            ResponseKind::CancelRequest => "cancel_request",
        }
    }

    /// The case timeline's action name for it.
    pub const fn timeline_action(self) -> &'static str {
        match self {
            ResponseKind::Confirm => "patient_confirmed",
            ResponseKind::CancelRequest => "patient_asked_to_cancel",
        }
    }
}

impl FromStr for ResponseKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "confirm" => Ok(ResponseKind::Confirm),
            "cancel_request" => Ok(ResponseKind::CancelRequest),
            other => Err(format!(
                "unknown response {other:?}: expected confirm or cancel_request"
            )),
        }
    }
}

/// A recorded patient response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatientResponseRecord {
    /// Id.
    pub id: i64,
    /// The case.
    pub case_id: CaseId,
    /// The link it came through.
    pub link_id: i64,
    /// The appointment it was about.
    pub appointment_id: Option<i64>,
    /// What they said.
    pub kind: ResponseKind,
    /// Why (asking to cancel), as typed.
    pub reason: Option<String>,
    /// When.
    pub at: Timestamp,
}

/// A patient's request to cancel that staff have not acted on: it is the case's latest
/// answer and its appointment is still booked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenCancelRequest {
    /// The case.
    pub case_id: CaseId,
    /// The patient, as staff see the case.
    pub patient_name: String,
    /// The appointment the patient asked to cancel.
    pub appointment_start: Timestamp,
    /// Why, as typed.
    pub reason: Option<String>,
    /// When they asked.
    pub at: Timestamp,
}

/// The case's latest appointment and how many times it has changed, for calendars:
/// one calendar event per case whose `SEQUENCE` grows with every move or cancellation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppointmentRevision {
    /// The latest appointment (booked, or cancelled when nothing replaced it).
    pub appointment: AppointmentRecord,
    /// Revision number: 2 per booking or move, +1 when the latest was cancelled.
    pub sequence: i64,
}

fn link_from_row(row: &AnyRow) -> Result<PatientLinkRecord> {
    let channel: String = row.try_get("channel")?;
    let opt_time = |col: &str| -> Result<Option<Timestamp>> {
        let v: Option<i64> = row.try_get(col)?;
        v.map(from_micros).transpose()
    };
    Ok(PatientLinkRecord {
        id: row.try_get("id")?,
        case_id: CaseId::new(row.try_get("case_id")?),
        channel: channel.parse().map_err(StoreError::Corrupt)?,
        message_id: row.try_get("message_id")?,
        created_by: row.try_get("created_by")?,
        created_at: from_micros(row.try_get("created_at")?)?,
        expires_at: from_micros(row.try_get("expires_at")?)?,
        failed_attempts: row.try_get("failed_attempts")?,
        locked_at: opt_time("locked_at")?,
        revoked_at: opt_time("revoked_at")?,
        revoked_by: row.try_get("revoked_by")?,
        last_used_at: opt_time("last_used_at")?,
    })
}

fn response_from_row(row: &AnyRow) -> Result<PatientResponseRecord> {
    let kind: String = row.try_get("kind")?;
    Ok(PatientResponseRecord {
        id: row.try_get("id")?,
        case_id: CaseId::new(row.try_get("case_id")?),
        link_id: row.try_get("link_id")?,
        appointment_id: row.try_get("appointment_id")?,
        kind: kind.parse().map_err(StoreError::Corrupt)?,
        reason: row.try_get("reason")?,
        at: from_micros(row.try_get("at")?)?,
    })
}

/// The columns of a link; a macro so that queries stay static strings.
macro_rules! link_select {
    () => {
        "SELECT l.id, l.case_id, l.channel, l.message_id, l.created_by, l.created_at,
                l.expires_at, l.failed_attempts, l.locked_at, l.revoked_at, l.revoked_by,
                l.last_used_at
         FROM patient_links l"
    };
}

/// Staff who send links to patients.
fn may_send_links(actor: &Actor) -> Result<()> {
    match actor.role {
        Some(Role::Scheduler | Role::Nurse | Role::Admin) | None => Ok(()),
        _ => Err(StoreError::Denied(
            "patient links are sent by schedulers, nurses and administrators",
        )),
    }
}

/// Compares two strings in time independent of where they differ.
fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Store {
    /// Stores a new link (by the hash of its secret) for a case, audited. Only
    /// schedulers, nurses and administrators send links; not for cancelled cases.
    pub async fn create_patient_link(
        &self,
        actor: &Actor,
        case_id: CaseId,
        token_hash: &str,
        channel: LinkChannel,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<PatientLinkRecord> {
        let result = async {
            may_send_links(actor)?;
            let case = self.case_summary(case_id).await?;
            if case.state == CaseState::Cancelled {
                return Err(StoreError::Conflict(
                    "this case is cancelled: there is nothing to send the patient".to_owned(),
                ));
            }
            if expires_at <= now {
                return Err(StoreError::Invalid(
                    "a link must expire in the future".to_owned(),
                ));
            }
            let mut tx = self.pool.begin().await?;
            let id: i64 = sqlx::query_scalar(self.sql(
                "INSERT INTO patient_links (case_id, token_hash, channel, created_by, created_by_user_id,
                                            created_at, expires_at, failed_attempts)
                 VALUES (?, ?, ?, ?, ?, ?, ?, 0) RETURNING id",
            ))
            .bind(case_id.get())
            .bind(token_hash.to_owned())
            .bind(channel.as_str())
            .bind(actor.username.clone())
            .bind(actor.user_id.map(|u| u.get()))
            .bind(micros(now))
            .bind(micros(expires_at))
            .fetch_one(&mut *tx)
            .await?;
            self.insert_audit(
                &mut *tx,
                &NewAuditEvent::new(actor, "create_patient_link", "case", AuditOutcome::Success)
                    .entity(case_id)
                    .detail(format!("link={id} channel={channel}")),
                now,
            )
            .await?;
            tx.commit().await?;
            self.patient_link(id).await
        }
        .await;
        if let Err(e) = &result {
            self.record_audit(
                NewAuditEvent::new(actor, "create_patient_link", "case", outcome_of(e))
                    .entity(case_id),
            )
            .await?;
        }
        result.map_err(hide_denial)
    }

    /// One link by id (no patient data: the caller audits what it shows).
    pub async fn patient_link(&self, id: i64) -> Result<PatientLinkRecord> {
        let row = sqlx::query(self.sql(concat!(link_select!(), " WHERE l.id = ?")))
            .bind(id)
            .fetch_one(&self.pool)
            .await?;
        link_from_row(&row)
    }

    /// The link whose secret hashes to this, if any (the caller audits the attempt).
    pub async fn patient_link_by_token_hash(
        &self,
        token_hash: &str,
    ) -> Result<Option<PatientLinkRecord>> {
        let row = sqlx::query(self.sql(concat!(link_select!(), " WHERE l.token_hash = ?")))
            .bind(token_hash.to_owned())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(link_from_row).transpose()
    }

    /// The preferred language of the patient a link is for, to word the date-of-birth
    /// form before the patient is known. The caller audits the opening of the link
    /// (this reads nothing else).
    pub async fn patient_link_language(&self, link: &PatientLinkRecord) -> Result<String> {
        let lang: String = sqlx::query_scalar(self.sql(
            "SELECT p.preferred_language FROM cases c JOIN patients p ON p.id = c.patient_id
             WHERE c.id = ?",
        ))
        .bind(link.case_id.get())
        .fetch_one(&self.pool)
        .await?;
        Ok(lang)
    }

    /// Remembers which outbox message carried a link.
    pub async fn set_patient_link_message(&self, link_id: i64, message_id: i64) -> Result<()> {
        sqlx::query(self.sql("UPDATE patient_links SET message_id = ? WHERE id = ?"))
            .bind(message_id)
            .bind(link_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A case's links, newest first (department staff; audited).
    pub async fn patient_links(
        &self,
        actor: &Actor,
        case_id: CaseId,
    ) -> Result<Vec<PatientLinkRecord>> {
        let result = async {
            if actor.role == Some(Role::Referrer) {
                return Err(StoreError::Denied("patient links are for department staff"));
            }
            self.case_summary(case_id).await?;
            let rows = sqlx::query(self.sql(concat!(
                link_select!(),
                " WHERE l.case_id = ? ORDER BY l.id DESC"
            )))
            .bind(case_id.get())
            .fetch_all(&self.pool)
            .await?;
            rows.iter().map(link_from_row).collect::<Result<Vec<_>>>()
        }
        .await;
        let outcome = result
            .as_ref()
            .map_or_else(outcome_of, |_| AuditOutcome::Success);
        self.record_audit(
            NewAuditEvent::new(actor, "list", "patient_link", outcome)
                .detail(format!("case={case_id}")),
        )
        .await?;
        result
    }

    /// Keeps a case's live links working until at least `until` (the configured days
    /// after its current appointment), after a booking or a move to a later day: a
    /// link made before booking must not die before the visit and the discharge
    /// instructions. Never shortens a link, and never revives one that has expired,
    /// locked or been revoked. Returns how many were extended (audited).
    pub async fn extend_patient_links(
        &self,
        actor: &Actor,
        case_id: CaseId,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<u64> {
        let result = async {
            if actor.role == Some(Role::Referrer) {
                return Err(StoreError::Denied("patient links are for department staff"));
            }
            self.case_summary(case_id).await?;
            let mut tx = self.pool.begin().await?;
            let done = sqlx::query(self.sql(
                "UPDATE patient_links SET expires_at = ?
                 WHERE case_id = ? AND revoked_at IS NULL AND locked_at IS NULL
                   AND expires_at > ? AND expires_at < ?",
            ))
            .bind(micros(until))
            .bind(case_id.get())
            .bind(micros(now))
            .bind(micros(until))
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if done > 0 {
                self.insert_audit(
                    &mut *tx,
                    &NewAuditEvent::new(
                        actor,
                        "extend_patient_links",
                        "case",
                        AuditOutcome::Success,
                    )
                    .entity(case_id)
                    .detail(format!("extended={done} until the appointment's days")),
                    now,
                )
                .await?;
            }
            tx.commit().await?;
            Ok(done)
        }
        .await;
        if let Err(e) = &result {
            self.record_audit(
                NewAuditEvent::new(actor, "extend_patient_links", "case", outcome_of(e))
                    .entity(case_id),
            )
            .await?;
        }
        result.map_err(hide_denial)
    }

    /// Withdraws every live link of a case and ends their sessions; returns how many
    /// were revoked (audited).
    pub async fn revoke_patient_links(
        &self,
        actor: &Actor,
        case_id: CaseId,
        now: Timestamp,
    ) -> Result<u64> {
        let result = async {
            may_send_links(actor)?;
            self.case_summary(case_id).await?;
            let mut tx = self.pool.begin().await?;
            let done = sqlx::query(self.sql(
                "UPDATE patient_links SET revoked_at = ?, revoked_by = ?
                 WHERE case_id = ? AND revoked_at IS NULL",
            ))
            .bind(micros(now))
            .bind(actor.username.clone())
            .bind(case_id.get())
            .execute(&mut *tx)
            .await?;
            sqlx::query(self.sql(
                "DELETE FROM patient_sessions
                 WHERE link_id IN (SELECT id FROM patient_links WHERE case_id = ?)",
            ))
            .bind(case_id.get())
            .execute(&mut *tx)
            .await?;
            self.insert_audit(
                &mut *tx,
                &NewAuditEvent::new(actor, "revoke_patient_link", "case", AuditOutcome::Success)
                    .entity(case_id)
                    .detail(format!("revoked={}", done.rows_affected())),
                now,
            )
            .await?;
            tx.commit().await?;
            Ok(done.rows_affected())
        }
        .await;
        if let Err(e) = &result {
            self.record_audit(
                NewAuditEvent::new(actor, "revoke_patient_link", "case", outcome_of(e))
                    .entity(case_id),
            )
            .await?;
        }
        result.map_err(hide_denial)
    }

    /// Checks a date of birth typed on a link: right opens a session, wrong counts
    /// towards the lock (atomically, so concurrent attempts cannot exceed it). The
    /// comparison takes the same time wherever the dates differ. Every attempt is
    /// kept for the client's rate limit and audited as the link's actor.
    pub async fn verify_patient_link_dob(
        &self,
        link: &PatientLinkRecord,
        date_of_birth: Date,
        client: &str,
        now: Timestamp,
        max_attempts: i64,
    ) -> Result<DobCheck> {
        let actor = link.actor(Some(client.to_owned()));
        let stored: Option<String> = sqlx::query_scalar(self.sql(
            "SELECT p.date_of_birth FROM patient_links l
             JOIN cases c ON c.id = l.case_id JOIN patients p ON p.id = c.patient_id
             WHERE l.id = ?",
        ))
        .bind(link.id)
        .fetch_optional(&self.pool)
        .await?;
        let stored = stored.ok_or(StoreError::NotFound)?;
        let right = constant_time_eq(&stored, &date_of_birth.to_string());
        let mut tx = self.pool.begin().await?;
        let (check, outcome, detail) = if right {
            let done = sqlx::query(self.sql(
                "UPDATE patient_links SET last_used_at = ?
                 WHERE id = ? AND locked_at IS NULL AND revoked_at IS NULL AND expires_at > ?",
            ))
            .bind(micros(now))
            .bind(link.id)
            .bind(micros(now))
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 1 {
                (
                    DobCheck::Verified,
                    AuditOutcome::Success,
                    "verified".to_owned(),
                )
            } else {
                (
                    DobCheck::Unusable,
                    AuditOutcome::Denied,
                    "link locked, revoked or expired".to_owned(),
                )
            }
        } else {
            let after: Option<i64> = sqlx::query_scalar(self.sql(
                "UPDATE patient_links
                 SET failed_attempts = failed_attempts + 1,
                     locked_at = CASE WHEN failed_attempts + 1 >= ? THEN ? ELSE NULL END
                 WHERE id = ? AND locked_at IS NULL AND revoked_at IS NULL AND expires_at > ?
                 RETURNING failed_attempts",
            ))
            .bind(max_attempts)
            .bind(micros(now))
            .bind(link.id)
            .bind(micros(now))
            .fetch_optional(&mut *tx)
            .await?;
            match after {
                Some(n) => {
                    let left = (max_attempts - n).max(0);
                    (
                        DobCheck::Wrong {
                            attempts_left: left,
                        },
                        AuditOutcome::Invalid,
                        if left == 0 {
                            "wrong date of birth; link locked".to_owned()
                        } else {
                            format!("wrong date of birth; {left} attempts left")
                        },
                    )
                }
                None => (
                    DobCheck::Unusable,
                    AuditOutcome::Denied,
                    "link locked, revoked or expired".to_owned(),
                ),
            }
        };
        sqlx::query(self.sql(
            "INSERT INTO patient_link_attempts (link_id, client, at, succeeded) VALUES (?, ?, ?, ?)",
        ))
        .bind(link.id)
        .bind(client.to_owned())
        .bind(micros(now))
        .bind(i64::from(check == DobCheck::Verified))
        .execute(&mut *tx)
        .await?;
        self.insert_audit(
            &mut *tx,
            &NewAuditEvent::new(&actor, "verify_date_of_birth", "case", outcome)
                .entity(link.case_id)
                .detail(format!("link={} {detail}", link.id)),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(check)
    }

    /// Records a date of birth typed on a link that does not exist (for the client's
    /// rate limit), audited as `patient-link:unknown`.
    pub async fn record_unknown_patient_link_attempt(
        &self,
        client: &str,
        now: Timestamp,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(self.sql(
            "INSERT INTO patient_link_attempts (link_id, client, at, succeeded) VALUES (NULL, ?, ?, 0)",
        ))
        .bind(client.to_owned())
        .bind(micros(now))
        .execute(&mut *tx)
        .await?;
        let actor = Actor {
            user_id: None,
            username: "patient-link:unknown".to_owned(),
            role: None,
            client: Some(client.to_owned()),
        };
        self.insert_audit(
            &mut *tx,
            &NewAuditEvent::new(
                &actor,
                "verify_date_of_birth",
                "patient_link",
                AuditOutcome::NotFound,
            ),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Failed date-of-birth attempts from a client since an instant, on any link
    /// (counted across every process sharing the database).
    pub async fn recent_patient_link_failures(
        &self,
        client: &str,
        since: Timestamp,
    ) -> Result<i64> {
        let n: i64 = sqlx::query_scalar(self.sql(
            "SELECT COUNT(*) FROM patient_link_attempts WHERE client = ? AND at >= ? AND succeeded = 0",
        ))
        .bind(client.to_owned())
        .bind(micros(since))
        .fetch_one(&self.pool)
        .await?;
        Ok(n)
    }

    /// Starts a patient session bound to a link (after the date-of-birth check).
    pub async fn create_patient_session(
        &self,
        link_id: i64,
        token_hash: &str,
        csrf_token: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<()> {
        sqlx::query(self.sql(
            "INSERT INTO patient_sessions (token_hash, link_id, csrf_token, created_at, last_seen_at, expires_at)
             VALUES (?, ?, ?, ?, ?, ?)",
        ))
        .bind(token_hash.to_owned())
        .bind(link_id)
        .bind(csrf_token.to_owned())
        .bind(micros(now))
        .bind(micros(now))
        .bind(micros(expires_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The live session with this hash for this link: not expired, not idle longer
    /// than `idle_limit`, and its link still open (not locked, revoked or expired).
    /// Touches it (sliding idle timeout).
    pub async fn live_patient_session(
        &self,
        token_hash: &str,
        link_id: i64,
        now: Timestamp,
        idle_limit: SignedDuration,
    ) -> Result<Option<PatientSession>> {
        let idle_cutoff = micros(now) - i64::try_from(idle_limit.as_micros()).unwrap_or(i64::MAX);
        let row = sqlx::query(self.sql(concat!(
            link_select!(),
            " JOIN patient_sessions s ON s.link_id = l.id
             WHERE s.token_hash = ? AND l.id = ? AND s.expires_at > ? AND s.last_seen_at > ?
               AND l.locked_at IS NULL AND l.revoked_at IS NULL AND l.expires_at > ?"
        )))
        .bind(token_hash.to_owned())
        .bind(link_id)
        .bind(micros(now))
        .bind(idle_cutoff)
        .bind(micros(now))
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let session = sqlx::query(
            self.sql("SELECT csrf_token, last_seen_at FROM patient_sessions WHERE token_hash = ?"),
        )
        .bind(token_hash.to_owned())
        .fetch_one(&self.pool)
        .await?;
        let last_seen: i64 = session.try_get("last_seen_at")?;
        if micros(now) - last_seen > TOUCH_EVERY_MICROS {
            sqlx::query(
                self.sql("UPDATE patient_sessions SET last_seen_at = ? WHERE token_hash = ?"),
            )
            .bind(micros(now))
            .bind(token_hash.to_owned())
            .execute(&self.pool)
            .await?;
        }
        Ok(Some(PatientSession {
            link: link_from_row(&row)?,
            csrf_token: session.try_get("csrf_token")?,
        }))
    }

    /// Ends a patient session; also sweeps expired ones.
    pub async fn delete_patient_session(&self, token_hash: &str) -> Result<()> {
        sqlx::query(
            self.sql("DELETE FROM patient_sessions WHERE token_hash = ? OR expires_at < ?"),
        )
        .bind(token_hash.to_owned())
        .bind(micros(Timestamp::now()))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records what the patient said about their booked appointment, on the case
    /// timeline too (the case does not move: staff act on it). Saying the same thing
    /// twice about the same appointment records it once.
    pub async fn record_patient_response(
        &self,
        link: &PatientLinkRecord,
        client: &str,
        kind: ResponseKind,
        reason: Option<&str>,
        now: Timestamp,
    ) -> Result<PatientResponseRecord> {
        let actor = link.actor(Some(client.to_owned()));
        let result = async {
            if link.status(now) != LinkStatus::Active {
                return Err(StoreError::Denied("this link no longer works"));
            }
            let reason = reason.map(str::trim).filter(|r| !r.is_empty());
            if let Some(r) = reason
                && r.chars().count() > MAX_RESPONSE_REASON_CHARS
            {
                return Err(StoreError::Field {
                    field: "reason",
                    message: format!("at most {MAX_RESPONSE_REASON_CHARS} characters"),
                });
            }
            let case = self.case_summary(link.case_id).await?;
            // Only an appointment still to come can be confirmed or cancelled: not one
            // the patient has arrived for, or one that is over.
            let appointment: Option<i64> = sqlx::query_scalar(self.sql(
                "SELECT MAX(id) FROM appointments WHERE case_id = ? AND status = 'booked'
                   AND attendance IS NULL AND ends_at > ?",
            ))
            .bind(link.case_id.get())
            .bind(micros(now))
            .fetch_one(&self.pool)
            .await?;
            let Some(appointment) = appointment else {
                return Err(StoreError::Conflict(
                    "there is no booked appointment to answer about".to_owned(),
                ));
            };
            let last = sqlx::query(self.sql(
                "SELECT id, case_id, link_id, appointment_id, kind, reason, at FROM patient_responses
                 WHERE case_id = ? ORDER BY id DESC LIMIT 1",
            ))
            .bind(link.case_id.get())
            .fetch_optional(&self.pool)
            .await?;
            if let Some(last) = last.as_ref().map(response_from_row).transpose()?
                && last.appointment_id == Some(appointment)
                && last.kind == kind
                && last.reason.as_deref() == reason
            {
                return Ok(last);
            }
            let mut tx = self.pool.begin().await?;
            let id: i64 = sqlx::query_scalar(self.sql(
                "INSERT INTO patient_responses (case_id, link_id, appointment_id, kind, reason, at)
                 VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
            ))
            .bind(link.case_id.get())
            .bind(link.id)
            .bind(appointment)
            .bind(kind.as_str())
            .bind(reason.map(str::to_owned))
            .bind(micros(now))
            .fetch_one(&mut *tx)
            .await?;
            self.insert_timeline(
                &mut tx,
                link.case_id,
                &Timeline {
                    action: kind.timeline_action(),
                    from: Some(case.state),
                    to: case.state,
                    reason: reason.map(str::to_owned),
                    deferred_until: None,
                    reason_code: None,
                },
                &actor,
                now,
            )
            .await?;
            self.insert_audit(
                &mut *tx,
                &NewAuditEvent::new(&actor, "patient_response", "case", AuditOutcome::Success)
                    .entity(link.case_id)
                    .detail(format!("kind={} appointment={appointment}", kind.as_str())),
                now,
            )
            .await?;
            tx.commit().await?;
            Ok(PatientResponseRecord {
                id,
                case_id: link.case_id,
                link_id: link.id,
                appointment_id: Some(appointment),
                kind,
                reason: reason.map(str::to_owned),
                at: now,
            })
        }
        .await;
        if let Err(e) = &result {
            self.record_audit(
                NewAuditEvent::new(&actor, "patient_response", "case", outcome_of(e))
                    .entity(link.case_id)
                    .detail(format!("kind={}", kind.as_str())),
            )
            .await?;
        }
        result
    }

    /// What the patient has said about the case's appointments, oldest first
    /// (audited; referrers only for their own cases).
    pub async fn patient_responses(
        &self,
        actor: &Actor,
        case_id: CaseId,
    ) -> Result<Vec<PatientResponseRecord>> {
        let result = async {
            let scope = scope_of(actor)?;
            let case = self.case_summary(case_id).await?;
            if !scope.allows(case.referrer_id) {
                return Err(StoreError::Denied("not a case this referrer referred"));
            }
            let rows = sqlx::query(self.sql(
                "SELECT id, case_id, link_id, appointment_id, kind, reason, at FROM patient_responses
                 WHERE case_id = ? ORDER BY id",
            ))
            .bind(case_id.get())
            .fetch_all(&self.pool)
            .await?;
            rows.iter().map(response_from_row).collect::<Result<Vec<_>>>()
        }
        .await;
        let outcome = result
            .as_ref()
            .map_or_else(outcome_of, |_| AuditOutcome::Success);
        self.record_audit(
            NewAuditEvent::new(actor, "list", "patient_response", outcome)
                .detail(format!("case={case_id}")),
        )
        .await?;
        result.map_err(hide_denial)
    }

    /// Patients' requests to cancel still waiting for staff, oldest first (department
    /// staff; audited). Open until staff move or cancel the appointment, or the patient
    /// answers again (e.g. confirms after all).
    pub async fn open_cancel_requests(&self, actor: &Actor) -> Result<Vec<OpenCancelRequest>> {
        let result = async {
            if actor.role == Some(Role::Referrer) {
                return Err(StoreError::Denied("patient requests are for department staff"));
            }
            let rows = sqlx::query(self.sql(
                "SELECT r.case_id, r.reason, r.at, a.starts_at, p.given_name, p.family_name
                 FROM patient_responses r
                 JOIN appointments a ON a.id = r.appointment_id
                 JOIN cases c ON c.id = r.case_id
                 JOIN patients p ON p.id = c.patient_id
                 WHERE r.kind = 'cancel_request' AND a.status = 'booked'
                   AND r.id = (SELECT MAX(r2.id) FROM patient_responses r2 WHERE r2.case_id = r.case_id)
                 ORDER BY r.at, r.id",
            ))
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(|row| {
                    let given: String = row.try_get("given_name")?;
                    let family: String = row.try_get("family_name")?;
                    Ok(OpenCancelRequest {
                        case_id: CaseId::new(row.try_get("case_id")?),
                        patient_name: format!("{family}, {given}"),
                        appointment_start: from_micros(row.try_get("starts_at")?)?,
                        reason: row.try_get("reason")?,
                        at: from_micros(row.try_get("at")?)?,
                    })
                })
                .collect::<Result<Vec<_>>>()
        }
        .await;
        let outcome = result
            .as_ref()
            .map_or_else(outcome_of, |_| AuditOutcome::Success);
        let mut event = NewAuditEvent::new(actor, "list", "patient_response", outcome);
        if let Ok(open) = &result {
            event = event.detail(format!("open cancel requests: {}", open.len()));
        }
        self.record_audit(event).await?;
        result.map_err(hide_denial)
    }

    /// The case's latest appointment with its revision number, for its calendar file
    /// (audited read; referrers only for their own cases). `None`: never booked.
    pub async fn appointment_revision(
        &self,
        actor: &Actor,
        case_id: CaseId,
    ) -> Result<Option<AppointmentRevision>> {
        let result = async {
            let scope = scope_of(actor)?;
            let case = self.case_summary(case_id).await?;
            if !scope.allows(case.referrer_id) {
                return Err(StoreError::Denied("not a case this referrer referred"));
            }
            let rows =
                sqlx::query(self.sql("SELECT id FROM appointments WHERE case_id = ? ORDER BY id"))
                    .bind(case_id.get())
                    .fetch_all(&self.pool)
                    .await?;
            let Some(last) = rows.last() else {
                return Ok(None);
            };
            let latest = self.appointment_by_id(last.try_get("id")?).await?;
            let count = i64::try_from(rows.len()).unwrap_or(i64::MAX);
            let cancelled = i64::from(latest.status == "cancelled");
            Ok(Some(AppointmentRevision {
                sequence: 2 * (count - 1) + cancelled,
                appointment: latest,
            }))
        }
        .await;
        let outcome = result
            .as_ref()
            .map_or_else(outcome_of, |_| AuditOutcome::Success);
        self.record_audit(
            NewAuditEvent::new(actor, "read", "appointment", outcome)
                .entity(case_id)
                .detail("calendar file"),
        )
        .await?;
        result.map_err(hide_denial)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for c in LinkChannel::ALL {
            assert_eq!(c.as_str().parse::<LinkChannel>(), Ok(c));
        }
        assert!("fax".parse::<LinkChannel>().is_err());
        for k in [ResponseKind::Confirm, ResponseKind::CancelRequest] {
            assert_eq!(k.as_str().parse::<ResponseKind>(), Ok(k));
        }
        assert!("maybe".parse::<ResponseKind>().is_err());
        assert!(constant_time_eq("1960-01-02", "1960-01-02"));
        assert!(!constant_time_eq("1960-01-02", "1960-01-03"));
        assert!(!constant_time_eq("1960-01-02", "1960-1-2"));
    }
}
