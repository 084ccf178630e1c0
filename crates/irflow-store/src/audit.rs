//! The append-only audit log: who touched which patient data, when, and with what
//! outcome. Rows can be inserted, never changed or deleted (database triggers).

use std::fmt;

use irflow_domain::{Actor, Role};
use jiff::Timestamp;
use sqlx::any::AnyRow;
use sqlx::{Any, Executor, Row};

use crate::{Result, Store, StoreError, from_micros, micros, parse_stored};

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditOutcome {
    /// Done.
    Success,
    /// Refused: not signed in, wrong role, or not theirs.
    Denied,
    /// Nothing there (or not visible to this actor).
    NotFound,
    /// Refused because the input was invalid or the pathway forbade it.
    Invalid,
    /// Failed for an internal reason.
    Error,
}

impl AuditOutcome {
    /// Every outcome.
    pub const ALL: [AuditOutcome; 5] = [
        AuditOutcome::Success,
        AuditOutcome::Denied,
        AuditOutcome::NotFound,
        AuditOutcome::Invalid,
        AuditOutcome::Error,
    ];

    /// Stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            AuditOutcome::Success => "success",
            AuditOutcome::Denied => "denied",
            AuditOutcome::NotFound => "not_found",
            AuditOutcome::Invalid => "invalid",
            AuditOutcome::Error => "error",
        }
    }
}

impl fmt::Display for AuditOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for AuditOutcome {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AuditOutcome::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown outcome {s:?}: expected success, denied, not_found, invalid or error"
                )
            })
    }
}

/// An audit event to record.
#[derive(Debug, Clone)]
pub struct NewAuditEvent {
    /// Who.
    pub actor: Actor,
    /// What they did: `read`, `list`, `create`, `transition`, `sign_in`, ...
    pub action: &'static str,
    /// What kind of thing: `case`, `patient`, `audit_log`, `user`, `session`, ...
    pub entity_type: &'static str,
    /// Which one, when there is one.
    pub entity_id: Option<String>,
    /// How it ended.
    pub outcome: AuditOutcome,
    /// Extra context. Never patient identifiers or clinical text: filters, states, counts.
    pub detail: Option<String>,
    /// Where the request came from (client address), when known.
    pub client: Option<String>,
}

impl NewAuditEvent {
    /// An event with no entity id, detail or client.
    pub fn new(
        actor: &Actor,
        action: &'static str,
        entity_type: &'static str,
        outcome: AuditOutcome,
    ) -> Self {
        Self {
            actor: actor.clone(),
            action,
            entity_type,
            entity_id: None,
            outcome,
            detail: None,
            client: actor.client.clone(),
        }
    }

    /// Sets the entity id.
    pub fn entity(mut self, id: impl ToString) -> Self {
        self.entity_id = Some(id.to_string());
        self
    }

    /// Sets the detail.
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}

/// A recorded audit event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// Sequence number.
    pub id: i64,
    /// When.
    pub at: Timestamp,
    /// Who (user id).
    pub actor_user_id: Option<i64>,
    /// Who (username, or `system:...`).
    pub actor_username: String,
    /// In which role.
    pub actor_role: Option<Role>,
    /// What.
    pub action: String,
    /// On what kind of thing.
    pub entity_type: String,
    /// On which one.
    pub entity_id: Option<String>,
    /// How it ended.
    pub outcome: AuditOutcome,
    /// Context.
    pub detail: Option<String>,
    /// Client address.
    pub client: Option<String>,
}

/// Filters for reading the audit log; all optional, combined with AND.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Exact username.
    pub actor: Option<String>,
    /// Exact action.
    pub action: Option<String>,
    /// Exact entity type.
    pub entity_type: Option<String>,
    /// Exact entity id.
    pub entity_id: Option<String>,
    /// Outcome.
    pub outcome: Option<AuditOutcome>,
    /// At or after.
    pub since: Option<Timestamp>,
    /// Before.
    pub until: Option<Timestamp>,
    /// Only events with an id below this (for paging back).
    pub before_id: Option<i64>,
    /// At most this many (capped at 500; default 100).
    pub limit: Option<u32>,
}

const INSERT_AUDIT: &str = "INSERT INTO audit_events \
    (at, actor_user_id, actor_username, actor_role, action, entity_type, entity_id, outcome, detail, client) \
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

impl Store {
    /// Records an audit event on its own.
    pub async fn record_audit(&self, event: NewAuditEvent) -> Result<()> {
        self.insert_audit(&self.pool, &event, Timestamp::now())
            .await
    }

    /// Records an audit event inside a caller's transaction or connection.
    pub(crate) async fn insert_audit<'e, E>(
        &self,
        executor: E,
        event: &NewAuditEvent,
        at: Timestamp,
    ) -> Result<()>
    where
        E: Executor<'e, Database = Any>,
    {
        sqlx::query(self.sql(INSERT_AUDIT))
            .bind(micros(at))
            .bind(event.actor.user_id.map(|u| u.get()))
            .bind(event.actor.username.clone())
            .bind(event.actor.role.map(|r| r.as_str()))
            .bind(event.action)
            .bind(event.entity_type)
            .bind(event.entity_id.clone())
            .bind(event.outcome.as_str())
            .bind(event.detail.clone())
            .bind(event.client.clone())
            .execute(executor)
            .await?;
        Ok(())
    }

    /// Reads the audit log, newest first. Only admins may; the read is itself audited.
    pub async fn list_audit(&self, actor: &Actor, filter: &AuditFilter) -> Result<Vec<AuditEvent>> {
        if actor.role != Some(Role::Admin) && actor.user_id.is_some() {
            self.record_audit(NewAuditEvent::new(
                actor,
                "list",
                "audit_log",
                AuditOutcome::Denied,
            ))
            .await?;
            return Err(StoreError::Denied(
                "only administrators may read the audit log",
            ));
        }
        let limit = i64::from(filter.limit.unwrap_or(100).clamp(1, 500));
        let rows = sqlx::query(self.sql(
            "SELECT id, at, actor_user_id, actor_username, actor_role, action, entity_type, \
                    entity_id, outcome, detail, client
             FROM audit_events
             WHERE (CAST(? AS TEXT) IS NULL OR actor_username = ?)
               AND (CAST(? AS TEXT) IS NULL OR action = ?)
               AND (CAST(? AS TEXT) IS NULL OR entity_type = ?)
               AND (CAST(? AS TEXT) IS NULL OR entity_id = ?)
               AND (CAST(? AS TEXT) IS NULL OR outcome = ?)
               AND (CAST(? AS BIGINT) IS NULL OR at >= ?)
               AND (CAST(? AS BIGINT) IS NULL OR at < ?)
               AND (CAST(? AS BIGINT) IS NULL OR id < ?)
             ORDER BY id DESC
             LIMIT ?",
        ))
        .bind(filter.actor.clone())
        .bind(filter.actor.clone())
        .bind(filter.action.clone())
        .bind(filter.action.clone())
        .bind(filter.entity_type.clone())
        .bind(filter.entity_type.clone())
        .bind(filter.entity_id.clone())
        .bind(filter.entity_id.clone())
        .bind(filter.outcome.map(|o| o.as_str()))
        .bind(filter.outcome.map(|o| o.as_str()))
        .bind(filter.since.map(micros))
        .bind(filter.since.map(micros))
        .bind(filter.until.map(micros))
        .bind(filter.until.map(micros))
        .bind(filter.before_id)
        .bind(filter.before_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let events = rows
            .iter()
            .map(audit_from_row)
            .collect::<Result<Vec<_>>>()?;
        self.record_audit(
            NewAuditEvent::new(actor, "list", "audit_log", AuditOutcome::Success)
                .detail(format!("{} events", events.len())),
        )
        .await?;
        Ok(events)
    }
}

fn audit_from_row(row: &AnyRow) -> Result<AuditEvent> {
    let role: Option<String> = row.try_get("actor_role")?;
    let outcome: String = row.try_get("outcome")?;
    Ok(AuditEvent {
        id: row.try_get("id")?,
        at: from_micros(row.try_get("at")?)?,
        actor_user_id: row.try_get("actor_user_id")?,
        actor_username: row.try_get("actor_username")?,
        actor_role: role.map(|r| parse_stored("role", &r)).transpose()?,
        action: row.try_get("action")?,
        entity_type: row.try_get("entity_type")?,
        entity_id: row.try_get("entity_id")?,
        outcome: outcome
            .parse()
            .map_err(|e: String| StoreError::Corrupt(e))?,
        detail: row.try_get("detail")?,
        client: row.try_get("client")?,
    })
}
