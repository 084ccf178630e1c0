//! The demo's outside imaging: a synthetic lumbar MRI attached to one case and a study
//! waiting in the reconciliation queue, both sent through the real ingest path (image
//! store, index, matching) as an `irflow import` would.

use anyhow::Result;
use irflow_dicom::synth::SyntheticStudy;
use irflow_domain::{Actor, CaseState};
use irflow_store::{CaseFilter, ImagingSource, Reconciled, SourceKind, Store};

use crate::config::Config;

/// Lumbar procedures (transforaminal, facet, interlaminar) a lumbar MRI covers.
const LUMBAR: [&str; 3] = ["64483", "64493", "62323"];

/// Seeds the demo's imaging; returns a line for the banner.
pub async fn seed(store: &Store, config: &Config, today: jiff::civil::Date) -> Result<String> {
    let system = Actor::system("demo");
    let pack = config.rule_pack()?;
    let state = irflow_server::AppState::new(store.clone(), config.server_config(), pack)
        .map_err(anyhow::Error::msg)?;
    let cases = store
        .list_cases(
            &system,
            &CaseFilter {
                limit: Some(1000),
                ..CaseFilter::default()
            },
        )
        .await?;
    // A lumbar case waiting for its procedure, whose patient has no other case.
    let target = cases.iter().find(|c| {
        LUMBAR.contains(&c.procedure_code.as_str())
            && matches!(
                c.state,
                CaseState::Ready | CaseState::Scheduled | CaseState::Confirmed
            )
            && c.mrn.is_some()
            && cases
                .iter()
                .filter(|o| o.patient_id == c.patient_id)
                .count()
                == 1
    });
    let mut parts = Vec::new();
    if let Some(case) = target {
        let study_date = today.checked_sub(jiff::Span::new().days(25))?;
        let mut mri = SyntheticStudy::lumbar_mri(
            &format!(
                "{}^{}",
                case.family_name.to_uppercase(),
                case.given_name.to_uppercase()
            ),
            case.mrn.as_deref().unwrap_or_default(),
            &case.date_of_birth.strftime("%Y%m%d").to_string(),
            7_000 + case.id.get().unsigned_abs(),
        );
        mri.study_date = study_date.strftime("%Y%m%d").to_string();
        mri.size = 256;
        mri.series = vec![
            ("SAG T2 L-SPINE".to_owned(), 12),
            ("AX T2 L4-S1".to_owned(), 6),
        ];
        let report = ingest(&state, &system, &mri).await?;
        if report
            .iter()
            .any(|o| matches!(o, Reconciled::Attached { .. }))
        {
            parts.push(format!("a lumbar MRI attached to case #{}", case.id));
        }
    }
    // Outside images of a patient the demo has twice on file (same name and birth date):
    // never attached on a guess, so staff choose in the reconciliation queue.
    let mut twin = SyntheticStudy::lumbar_mri("KIM^GRACE", "BBI-55821", "19750303", 9_001);
    twin.study_date = today
        .checked_sub(jiff::Span::new().days(200))?
        .strftime("%Y%m%d")
        .to_string();
    twin.description = "MR LUMBAR SPINE".to_owned();
    twin.size = 128;
    twin.series = vec![("SAG T2".to_owned(), 4)];
    let queued = ingest(&state, &system, &twin).await?;
    let waiting = queued
        .iter()
        .filter(|o| matches!(o, Reconciled::Queued { .. }))
        .count();
    if waiting > 0 {
        parts.push(format!(
            "{waiting} study waiting in the reconciliation queue (/imaging/queue)"
        ));
    }
    Ok(if parts.is_empty() {
        "no outside imaging".to_owned()
    } else {
        parts.join("; ")
    })
}

async fn ingest(
    state: &irflow_server::AppState,
    actor: &Actor,
    study: &SyntheticStudy,
) -> Result<Vec<Reconciled>> {
    let files = study
        .files()
        .into_iter()
        .map(|(name, bytes)| irflow_dicom::Unpacked { name, bytes })
        .collect();
    let report = irflow_server::imaging::ingest_files(
        state,
        actor,
        files,
        ImagingSource::new(SourceKind::Import),
    )
    .await
    .map_err(|e| anyhow::anyhow!("demo imaging: {e}"))?;
    if let Some((name, reason)) = report.refused().next() {
        anyhow::bail!("demo imaging: {name} was refused: {reason}");
    }
    Ok(report.studies.into_iter().map(|s| s.outcome).collect())
}
