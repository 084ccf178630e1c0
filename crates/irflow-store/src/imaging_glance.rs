//! Prior imaging at a glance for lists: the attached studies of every case in some
//! states, in two queries, so the worklist can show each case's imaging without a
//! read per case. Referrers get only their own cases' studies (in the query itself);
//! the listing is audited as one event.

use std::collections::HashMap;

use irflow_domain::{Actor, CaseId, CaseState};
use jiff::civil::Date;
use sqlx::Row;

use crate::cases::{outcome_of, scope_of};
use crate::{AuditOutcome, NewAuditEvent, Result, Store, StoreError};

/// One attached study, as a list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlanceStudy {
    /// The case it is attached to.
    pub case_id: CaseId,
    /// Distinct modalities (`MR`, `CT`).
    pub modalities: Vec<String>,
    /// Study date, if the file had one.
    pub study_date: Option<Date>,
    /// Distinct body parts (`LSPINE`).
    pub body_parts: Vec<String>,
    /// Study description as in the file.
    pub study_description: String,
    /// Series descriptions, in series-number order.
    pub series_descriptions: Vec<String>,
}

fn split_list(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

impl Store {
    /// The studies attached to cases in `states` (all states when empty), grouped by
    /// case. Audited as one `list imaging_study` event.
    pub async fn imaging_glance(
        &self,
        actor: &Actor,
        states: &[CaseState],
    ) -> Result<HashMap<CaseId, Vec<GlanceStudy>>> {
        let result = self.select_glance(actor, states).await;
        let event = NewAuditEvent::new(
            actor,
            "list",
            "imaging_study",
            result
                .as_ref()
                .map_or_else(outcome_of, |_| AuditOutcome::Success),
        );
        let detail = match &result {
            Ok(by_case) => format!(
                "glance cases={} studies={}",
                by_case.len(),
                by_case.values().map(Vec::len).sum::<usize>()
            ),
            Err(_) => "glance".to_owned(),
        };
        self.record_audit(event.detail(detail)).await?;
        result
    }

    async fn select_glance(
        &self,
        actor: &Actor,
        states: &[CaseState],
    ) -> Result<HashMap<CaseId, Vec<GlanceStudy>>> {
        let scope = scope_of(actor)?;
        let states: Option<String> = (!states.is_empty()).then(|| {
            states
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(",")
        });
        let rows = sqlx::query(self.sql(
            "SELECT s.id, s.case_id, s.modalities, s.body_parts, s.study_date, s.study_description
             FROM imaging_studies s JOIN cases c ON c.id = s.case_id
             WHERE s.state = 'matched'
               AND (CAST(? AS TEXT) IS NULL OR (',' || ? || ',') LIKE ('%,' || c.state || ',%'))
               AND (CAST(? AS BIGINT) IS NULL OR c.referrer_id = ?)
             ORDER BY s.id",
        ))
        .bind(states.clone())
        .bind(states.clone())
        .bind(scope.referrer_filter())
        .bind(scope.referrer_filter())
        .fetch_all(&self.pool)
        .await?;
        let series = sqlx::query(self.sql(
            "SELECT se.study_id, se.series_description
             FROM imaging_series se
             JOIN imaging_studies s ON s.id = se.study_id
             JOIN cases c ON c.id = s.case_id
             WHERE s.state = 'matched'
               AND (CAST(? AS TEXT) IS NULL OR (',' || ? || ',') LIKE ('%,' || c.state || ',%'))
               AND (CAST(? AS BIGINT) IS NULL OR c.referrer_id = ?)
             ORDER BY se.study_id, se.series_number, se.id",
        ))
        .bind(states.clone())
        .bind(states)
        .bind(scope.referrer_filter())
        .bind(scope.referrer_filter())
        .fetch_all(&self.pool)
        .await?;
        let mut descriptions: HashMap<i64, Vec<String>> = HashMap::new();
        for row in &series {
            let study: i64 = row.try_get("study_id")?;
            let d: String = row.try_get("series_description")?;
            if !d.trim().is_empty() {
                descriptions.entry(study).or_default().push(d);
            }
        }
        let mut by_case: HashMap<CaseId, Vec<GlanceStudy>> = HashMap::new();
        for row in &rows {
            let id: i64 = row.try_get("id")?;
            let case = CaseId::new(row.try_get("case_id")?);
            let date: Option<String> = row.try_get("study_date")?;
            let study_date = match date.filter(|d| !d.is_empty()) {
                Some(d) => Some(d.parse::<Date>().map_err(|e| {
                    StoreError::Corrupt(format!("imaging study {id}: study date: {e}"))
                })?),
                None => None,
            };
            let modalities: String = row.try_get("modalities")?;
            let body_parts: String = row.try_get("body_parts")?;
            by_case.entry(case).or_default().push(GlanceStudy {
                case_id: case,
                modalities: split_list(&modalities),
                study_date,
                body_parts: split_list(&body_parts),
                study_description: row.try_get("study_description")?,
                series_descriptions: descriptions.remove(&id).unwrap_or_default(),
            });
        }
        Ok(by_case)
    }
}
