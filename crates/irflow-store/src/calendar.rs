//! What the scheduling calendar reads beyond the appointments themselves: resource
//! closures with their reasons (a room down, a radiologist away), and when patients
//! checked in. Closures hold no patient data; check-in times do, so that read is
//! audited and confined to a referrer's own cases like every other. (Closures are
//! added and listed for administrators in `resources.rs`; the calendar also needs
//! past days, so it reads them by range here.)

use irflow_domain::Actor;
use jiff::Timestamp;
use sqlx::Row;

use crate::audit::{AuditOutcome, NewAuditEvent};
use crate::cases::{outcome_of, scope_of};
use crate::scheduling::ResourceKind;
use crate::{Result, Store, StoreError, from_micros, micros};

/// A resource taken out of service for a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosureRecord {
    /// Id.
    pub id: i64,
    /// Which kind of resource.
    pub kind: ResourceKind,
    /// The room, radiologist (user id) or chair.
    pub resource_id: i64,
    /// From.
    pub start: Timestamp,
    /// Until (exclusive).
    pub end: Timestamp,
    /// Why, as the administrator wrote it.
    pub reason: String,
}

/// When an appointment's patient arrived or was recorded as not coming.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttendanceTime {
    /// The appointment.
    pub appointment_id: i64,
    /// `arrived` or `no_show`.
    pub attendance: String,
    /// When it was recorded.
    pub at: Timestamp,
}

fn kind_of(stored: &str) -> Result<ResourceKind> {
    match stored {
        "room" => Ok(ResourceKind::Room),
        "radiologist" => Ok(ResourceKind::Radiologist),
        "chair" => Ok(ResourceKind::Chair),
        other => Err(StoreError::Corrupt(format!("resource kind {other:?}"))),
    }
}

impl Store {
    /// Closures overlapping `[from, to)`, earliest first. Not patient data (no audit).
    pub async fn closures_between(
        &self,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<ClosureRecord>> {
        let rows = sqlx::query(self.sql(
            "SELECT id, resource_kind, resource_id, starts_at, ends_at, reason FROM closures
             WHERE ends_at > ? AND starts_at < ? ORDER BY starts_at, id",
        ))
        .bind(micros(from))
        .bind(micros(to))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let kind: String = r.try_get("resource_kind")?;
                Ok(ClosureRecord {
                    id: r.try_get("id")?,
                    kind: kind_of(&kind)?,
                    resource_id: r.try_get("resource_id")?,
                    start: from_micros(r.try_get("starts_at")?)?,
                    end: from_micros(r.try_get("ends_at")?)?,
                    reason: r.try_get("reason")?,
                })
            })
            .collect()
    }

    /// When the patients of appointments starting in `[from, to)` arrived or were
    /// recorded as not coming: an audited read; referrers see only their own cases'.
    pub async fn attendance_between(
        &self,
        actor: &Actor,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<AttendanceTime>> {
        let result = async {
            let scope = scope_of(actor)?;
            let rows = sqlx::query(self.sql(
                "SELECT a.id, a.attendance, a.attendance_at FROM appointments a
                 JOIN cases c ON c.id = a.case_id
                 WHERE a.starts_at >= ? AND a.starts_at < ?
                   AND a.attendance IS NOT NULL AND a.attendance_at IS NOT NULL
                   AND (CAST(? AS BIGINT) IS NULL OR c.referrer_id = ?)
                 ORDER BY a.id",
            ))
            .bind(micros(from))
            .bind(micros(to))
            .bind(scope.referrer_filter())
            .bind(scope.referrer_filter())
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(AttendanceTime {
                        appointment_id: r.try_get("id")?,
                        attendance: r.try_get("attendance")?,
                        at: from_micros(r.try_get("attendance_at")?)?,
                    })
                })
                .collect::<Result<Vec<_>>>()
        }
        .await;
        let outcome = result
            .as_ref()
            .map_or_else(outcome_of, |_| AuditOutcome::Success);
        let mut event = NewAuditEvent::new(actor, "list", "attendance", outcome);
        if let Ok(found) = &result {
            event = event.detail(format!("count={}", found.len()));
        }
        self.record_audit(event).await?;
        result
    }
}
