//! Referrals: the procedure catalogue, taking an order in (with patient matching
//! and the one-open-case-per-procedure rule), amending and resubmitting a returned
//! order, changing the ordered procedure, and staff resolving doubtful matches.

use irflow_domain::pathway::{self, TransitionRequest};
use irflow_domain::{
    Action, Actor, BleedingRisk, CaseId, CaseState, Channel, Modality, NewPatient, PatientId,
    Procedure, ReferralDetails, Role, SpineRegion, UserId,
};
use jiff::Timestamp;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::audit::{AuditOutcome, NewAuditEvent};
use crate::cases::{Timeline, hide_denial, outcome_of, patient_from_row, scope_of};
use crate::{PatientRecord, Result, Store, StoreError, micros, parse_stored};

/// The key patients are matched on: name and date of birth, lowercased, single spaces.
pub(crate) fn match_key(p: &NewPatient) -> String {
    format!(
        "{}|{}|{}",
        p.name.family().to_lowercase(),
        p.name.given().to_lowercase(),
        p.date_of_birth
    )
}

/// Whom an order is for.
#[derive(Debug, Clone)]
pub enum ReferralSubject {
    /// Someone described in the order (matched against patients on file).
    New(NewPatient),
    /// A patient already on file.
    Existing(PatientId),
}

/// An order to take in.
#[derive(Debug, Clone)]
pub struct NewReferral {
    /// The patient.
    pub subject: ReferralSubject,
    /// The referring provider.
    pub referrer: UserId,
    /// What is ordered (already checked against the catalogue).
    pub details: ReferralDetails,
    /// How it arrived.
    pub channel: Channel,
}

/// How the order's patient was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatientMatch {
    /// Nobody on file matched: a new patient record.
    New,
    /// Found by MRN (name and date of birth agree).
    ByMrn,
    /// Found by exact name and date of birth.
    ByNameAndBirthDate,
    /// The order named an existing patient.
    Named,
    /// Several patients on file could be this one: a new record was made and staff
    /// must decide; nothing was merged.
    Ambiguous(Vec<PatientId>),
}

/// What taking an order in produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferralReceipt {
    /// The new case.
    pub case: CaseId,
    /// Its patient.
    pub patient: PatientId,
    /// How the patient was found.
    pub patient_match: PatientMatch,
}

/// Staff's decision on a doubtful patient match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatientChoice {
    /// The case's patient is this one on file (one of the candidates).
    SameAs(PatientId),
    /// The case's patient is a different person from all candidates.
    Separate,
}

fn procedure_from_row(row: &AnyRow) -> Result<Procedure> {
    let list = |column: &str| -> Result<String> { Ok(row.try_get::<String, _>(column)?) };
    let modalities = list("modalities")?
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| parse_stored::<Modality>("modality", s))
        .collect::<Result<Vec<_>>>()?;
    let regions = list("regions")?
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| parse_stored::<SpineRegion>("region", s))
        .collect::<Result<Vec<_>>>()?;
    let duration: i64 = row.try_get("duration_minutes")?;
    let active: i64 = row.try_get("active")?;
    Ok(Procedure {
        code: row.try_get("code")?,
        name: row.try_get("name")?,
        patient_name: row.try_get("patient_name")?,
        modalities,
        duration_minutes: u16::try_from(duration)
            .map_err(|_| StoreError::Corrupt(format!("duration {duration}")))?,
        risk_asra: parse_stored::<BleedingRisk>("risk", &list("risk_asra")?)?,
        risk_sir: parse_stored::<BleedingRisk>("risk", &list("risk_sir")?)?,
        regions,
        risk_source: row.try_get("risk_source")?,
        active: active != 0,
    })
}

fn join<T>(items: &[T], name: fn(&T) -> &'static str) -> String {
    items.iter().map(name).collect::<Vec<_>>().join(",")
}

impl Store {
    /// The whole catalogue (active and inactive), by code.
    pub async fn procedures(&self) -> Result<Vec<Procedure>> {
        let rows = sqlx::query(
            "SELECT code, name, patient_name, modalities, duration_minutes, risk_asra, risk_sir,
                    regions, risk_source, active
             FROM procedures ORDER BY code",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(procedure_from_row).collect()
    }

    /// Changes a catalogue entry (administrators only). The code cannot change.
    pub async fn update_procedure(&self, actor: &Actor, procedure: &Procedure) -> Result<()> {
        if actor.role != Some(Role::Admin) {
            self.record_audit(
                NewAuditEvent::new(actor, "update", "procedure", AuditOutcome::Denied)
                    .entity(&procedure.code),
            )
            .await?;
            return Err(StoreError::Denied(
                "only administrators edit the procedure catalogue",
            ));
        }
        procedure.validate().map_err(StoreError::Invalid)?;
        let now = Timestamp::now();
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(self.sql(
            "UPDATE procedures SET name = ?, patient_name = ?, modalities = ?, duration_minutes = ?,
                    risk_asra = ?, risk_sir = ?, risk_source = ?, active = ?, updated_at = ?
             WHERE code = ?",
        ))
        .bind(procedure.name.trim().to_owned())
        .bind(procedure.patient_name.trim().to_owned())
        .bind(join(&procedure.modalities, |m| m.as_str()))
        .bind(i64::from(procedure.duration_minutes))
        .bind(procedure.risk_asra.as_str())
        .bind(procedure.risk_sir.as_str())
        .bind(procedure.risk_source.trim().to_owned())
        .bind(i64::from(procedure.active))
        .bind(micros(now))
        .bind(procedure.code.clone())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        self.insert_audit(
            &mut *tx,
            &NewAuditEvent::new(actor, "update", "procedure", AuditOutcome::Success)
                .entity(&procedure.code)
                .detail(format!(
                    "modalities={} duration={} risk={}/{} active={}",
                    join(&procedure.modalities, |m| m.as_str()),
                    procedure.duration_minutes,
                    procedure.risk_asra.as_str(),
                    procedure.risk_sir.as_str(),
                    procedure.active
                )),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The name of an offered (active) procedure, or the field error a form shows.
    async fn active_procedure_name<'e, E>(&self, executor: E, code: &str) -> Result<String>
    where
        E: sqlx::Executor<'e, Database = sqlx::Any>,
    {
        let name: Option<String> = sqlx::query_scalar(
            self.sql("SELECT name FROM procedures WHERE code = ? AND active = 1"),
        )
        .bind(code.to_owned())
        .fetch_optional(executor)
        .await?;
        name.ok_or_else(|| StoreError::Field {
            field: "procedure",
            message: format!("{code} is not a procedure this department offers"),
        })
    }

    /// A patient, if the actor may see them (staff: anyone; referrers: patients of
    /// cases they referred). Audited; a patient the actor may not see is not found.
    pub async fn patient(&self, actor: &Actor, id: PatientId) -> Result<PatientRecord> {
        let result = self.select_patient(actor, id).await;
        let outcome = result
            .as_ref()
            .map_or_else(outcome_of, |_| AuditOutcome::Success);
        self.record_audit(NewAuditEvent::new(actor, "read", "patient", outcome).entity(id))
            .await?;
        result.map_err(|e| match e {
            StoreError::Denied(_) => StoreError::NotFound,
            other => other,
        })
    }

    async fn select_patient(&self, actor: &Actor, id: PatientId) -> Result<PatientRecord> {
        let scope = scope_of(actor)?;
        let row = sqlx::query(self.sql(
            "SELECT id, mrn, family_name, given_name, date_of_birth, phone, email, preferred_language
             FROM patients WHERE id = ?",
        ))
        .bind(id.get())
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        if let Some(referrer) = scope.referrer_filter() {
            let n: i64 = sqlx::query_scalar(
                self.sql("SELECT COUNT(*) FROM cases WHERE patient_id = ? AND referrer_id = ?"),
            )
            .bind(id.get())
            .bind(referrer)
            .fetch_one(&self.pool)
            .await?;
            if n == 0 {
                return Err(StoreError::Denied("not a patient this referrer referred"));
            }
        }
        patient_from_row(&row)
    }

    /// Takes an order in: finds or records the patient, refuses a second open case
    /// for the same procedure, and opens the case in state `referred`, all in one
    /// transaction (nothing is stored when anything is refused).
    pub async fn submit_referral(
        &self,
        actor: &Actor,
        referral: &NewReferral,
        at: Timestamp,
    ) -> Result<ReferralReceipt> {
        let result = self.insert_referral(actor, referral, at).await;
        if let Err(e) = &result {
            self.record_audit(
                NewAuditEvent::new(actor, "create", "case", outcome_of(e))
                    .detail(format!("channel={}", referral.channel)),
            )
            .await?;
        }
        result
    }

    async fn insert_referral(
        &self,
        actor: &Actor,
        referral: &NewReferral,
        at: Timestamp,
    ) -> Result<ReferralReceipt> {
        match actor.role {
            None | Some(Role::Referrer | Role::Scheduler) => {}
            Some(_) => {
                return Err(StoreError::Denied(
                    "referrals are entered by referrers, or by schedulers for them",
                ));
            }
        }
        let scope = scope_of(actor)?;
        if !scope.allows(referral.referrer) {
            return Err(StoreError::Denied(
                "a referrer may only refer in their own name",
            ));
        }
        let details = &referral.details;
        let mut tx = self.pool.begin().await?;
        let referrer_role: Option<String> = sqlx::query_scalar(
            self.sql("SELECT role FROM users WHERE id = ? AND disabled_at IS NULL"),
        )
        .bind(referral.referrer.get())
        .fetch_optional(&mut *tx)
        .await?;
        if referrer_role.as_deref() != Some(Role::Referrer.as_str()) {
            return Err(StoreError::Field {
                field: "referrer",
                message: "the referring provider must be an active user with the referrer role"
                    .to_owned(),
            });
        }
        let procedure_name = self
            .active_procedure_name(&mut *tx, &details.procedure_code)
            .await?;

        let (patient, patient_match) = match &referral.subject {
            ReferralSubject::Existing(id) => {
                let found: Option<i64> =
                    sqlx::query_scalar(self.sql("SELECT id FROM patients WHERE id = ?"))
                        .bind(id.get())
                        .fetch_optional(&mut *tx)
                        .await?;
                let visible = match scope.referrer_filter() {
                    None => found.is_some(),
                    Some(me) => {
                        let n: i64 = sqlx::query_scalar(self.sql(
                            "SELECT COUNT(*) FROM cases WHERE patient_id = ? AND referrer_id = ?",
                        ))
                        .bind(id.get())
                        .bind(me)
                        .fetch_one(&mut *tx)
                        .await?;
                        n > 0
                    }
                };
                if !visible {
                    return Err(StoreError::Field {
                        field: "patient",
                        message: format!("there is no patient {id} that you can refer"),
                    });
                }
                (*id, PatientMatch::Named)
            }
            ReferralSubject::New(p) => self.find_or_record_patient(&mut tx, p, at).await?,
        };

        if !matches!(
            patient_match,
            PatientMatch::New | PatientMatch::Ambiguous(_)
        ) {
            let open: Option<i64> = sqlx::query_scalar(self.sql(
                "SELECT id FROM cases WHERE patient_id = ? AND procedure_code = ?
                   AND state NOT IN ('discharged', 'followed_up', 'cancelled')
                 ORDER BY id LIMIT 1",
            ))
            .bind(patient.get())
            .bind(details.procedure_code.clone())
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(existing) = open {
                return Err(StoreError::DuplicateCase {
                    existing: CaseId::new(existing),
                });
            }
        }

        let review = match &patient_match {
            PatientMatch::Ambiguous(ids) => Some(
                ids.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            _ => None,
        };
        let prior = details.prior_imaging.as_ref();
        let id: i64 = sqlx::query_scalar(self.sql(
            "INSERT INTO cases (patient_id, referrer_id, procedure_code, procedure_name, state, version,
                                created_at, updated_at, levels, side, indication, icd10, urgency,
                                prior_imaging_modality, prior_imaging_date, prior_imaging_place,
                                blood_thinners, clinical_notes, channel, entered_by, patient_review)
             VALUES (?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        ))
        .bind(patient.get())
        .bind(referral.referrer.get())
        .bind(details.procedure_code.clone())
        .bind(procedure_name)
        .bind(CaseState::Referred.as_str())
        .bind(micros(at))
        .bind(micros(at))
        .bind(details.levels.as_ref().map(ToString::to_string))
        .bind(details.side.as_str())
        .bind(details.indication.clone())
        .bind(details.icd10.as_ref().map(|c| c.as_str().to_owned()))
        .bind(details.urgency.as_str())
        .bind(prior.map(|p| p.modality.as_str()))
        .bind(prior.and_then(|p| p.date).map(|d| d.to_string()))
        .bind(prior.and_then(|p| p.place.clone()))
        .bind(details.blood_thinners.clone())
        .bind(details.clinical_notes.clone())
        .bind(referral.channel.as_str())
        .bind(actor.username.clone())
        .bind(review)
        .fetch_one(&mut *tx)
        .await?;
        let case = CaseId::new(id);
        let note = match (referral.channel, actor.role) {
            (Channel::Phone, _) => format!("Phone referral entered by {}", actor.username),
            (channel, _) => channel.label().to_owned(),
        };
        self.insert_timeline(
            &mut tx,
            case,
            &Timeline {
                action: "refer",
                from: None,
                to: CaseState::Referred,
                reason: Some(note),
                deferred_until: None,
                reason_code: None,
            },
            actor,
            at,
        )
        .await?;
        let match_detail = match &patient_match {
            PatientMatch::New => "patient=new",
            PatientMatch::ByMrn => "patient=matched_by_mrn",
            PatientMatch::ByNameAndBirthDate => "patient=matched_by_name_and_birth_date",
            PatientMatch::Named => "patient=named",
            PatientMatch::Ambiguous(_) => "patient=ambiguous_needs_review",
        };
        self.insert_audit(
            &mut *tx,
            &NewAuditEvent::new(actor, "create", "case", AuditOutcome::Success)
                .entity(case)
                .detail(format!(
                    "channel={} {match_detail} patient_id={patient}",
                    referral.channel
                )),
            at,
        )
        .await?;
        tx.commit().await?;
        Ok(ReferralReceipt {
            case,
            patient,
            patient_match,
        })
    }

    /// The matching rules: an MRN match is used only when name and date of birth agree
    /// (otherwise the MRN is refused as a likely typo); an exact name and date-of-birth
    /// match is used when it is the only one and no MRN contradicts it; several
    /// candidates give a new record flagged for staff. Contact details fill blanks only.
    async fn find_or_record_patient(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        p: &NewPatient,
        at: Timestamp,
    ) -> Result<(PatientId, PatientMatch)> {
        let key = match_key(p);
        if let Some(mrn) = &p.mrn {
            let row = sqlx::query(self.sql("SELECT id, match_key FROM patients WHERE mrn = ?"))
                .bind(mrn.as_str().to_owned())
                .fetch_optional(&mut **tx)
                .await?;
            if let Some(row) = row {
                let id = PatientId::new(row.try_get("id")?);
                let existing_key: Option<String> = row.try_get("match_key")?;
                if existing_key.as_deref() != Some(key.as_str()) {
                    return Err(StoreError::Field {
                        field: "mrn",
                        message: "this MRN belongs to a patient with a different name or date of birth; check it, or leave it empty".to_owned(),
                    });
                }
                self.fill_blank_contacts(tx, id, p).await?;
                return Ok((id, PatientMatch::ByMrn));
            }
        }
        let rows =
            sqlx::query(self.sql("SELECT id, mrn FROM patients WHERE match_key = ? ORDER BY id"))
                .bind(key)
                .fetch_all(&mut **tx)
                .await?;
        let candidates = rows
            .iter()
            .map(|r| {
                Ok((
                    PatientId::new(r.try_get("id")?),
                    r.try_get::<Option<String>, _>("mrn")?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        match candidates.as_slice() {
            [] => Ok((self.insert_patient_row(tx, p, at).await?, PatientMatch::New)),
            [(id, existing_mrn)] if p.mrn.is_none() || existing_mrn.is_none() => {
                if let (Some(mrn), None) = (&p.mrn, existing_mrn) {
                    sqlx::query(self.sql("UPDATE patients SET mrn = ? WHERE id = ?"))
                        .bind(mrn.as_str().to_owned())
                        .bind(id.get())
                        .execute(&mut **tx)
                        .await?;
                }
                self.fill_blank_contacts(tx, *id, p).await?;
                Ok((*id, PatientMatch::ByNameAndBirthDate))
            }
            many => {
                let ids = many.iter().map(|(id, _)| *id).collect();
                Ok((
                    self.insert_patient_row(tx, p, at).await?,
                    PatientMatch::Ambiguous(ids),
                ))
            }
        }
    }

    async fn fill_blank_contacts(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        id: PatientId,
        p: &NewPatient,
    ) -> Result<()> {
        sqlx::query(self.sql(
            "UPDATE patients SET phone = COALESCE(phone, ?), email = COALESCE(email, ?) WHERE id = ?",
        ))
        .bind(p.phone.as_ref().map(|x| x.as_str().to_owned()))
        .bind(p.email.as_ref().map(|x| x.as_str().to_owned()))
        .bind(id.get())
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Amends a returned referral and sends it back to the radiologists.
    pub async fn resubmit_referral(
        &self,
        actor: &Actor,
        id: CaseId,
        details: &ReferralDetails,
        note: Option<String>,
        at: Timestamp,
        today: jiff::civil::Date,
    ) -> Result<()> {
        let result = self
            .apply_resubmit(actor, id, details, note, at, today)
            .await;
        if let Err(e) = &result {
            self.record_audit(
                NewAuditEvent::new(actor, "transition", "case", outcome_of(e))
                    .entity(id)
                    .detail("action=resubmit"),
            )
            .await?;
        }
        result.map_err(hide_denial)
    }

    async fn apply_resubmit(
        &self,
        actor: &Actor,
        id: CaseId,
        details: &ReferralDetails,
        note: Option<String>,
        at: Timestamp,
        today: jiff::civil::Date,
    ) -> Result<()> {
        let scope = scope_of(actor)?;
        let case = self.case_summary(id).await?;
        if !scope.allows(case.referrer_id) {
            return Err(StoreError::Denied("not a case this referrer referred"));
        }
        let mut request = TransitionRequest::new(Action::Resubmit);
        request.reason =
            Some(note.unwrap_or_else(|| "Referral amended and resubmitted".to_owned()));
        let event = pathway::decide(case.state, &request, actor, at, today)?;
        let procedure_name = self
            .active_procedure_name(&self.pool, &details.procedure_code)
            .await?;
        let prior = details.prior_imaging.as_ref();
        let mut tx = self.pool.begin().await?;
        let updated = sqlx::query(self.sql(
            "UPDATE cases SET state = ?, procedure_code = ?, procedure_name = ?, levels = ?, side = ?,
                    indication = ?, icd10 = ?, urgency = ?, prior_imaging_modality = ?,
                    prior_imaging_date = ?, prior_imaging_place = ?, blood_thinners = ?,
                    clinical_notes = ?, version = version + 1, updated_at = ?
             WHERE id = ? AND version = ?",
        ))
        .bind(event.to.as_str())
        .bind(details.procedure_code.clone())
        .bind(procedure_name)
        .bind(details.levels.as_ref().map(ToString::to_string))
        .bind(details.side.as_str())
        .bind(details.indication.clone())
        .bind(details.icd10.as_ref().map(|c| c.as_str().to_owned()))
        .bind(details.urgency.as_str())
        .bind(prior.map(|p| p.modality.as_str()))
        .bind(prior.and_then(|p| p.date).map(|d| d.to_string()))
        .bind(prior.and_then(|p| p.place.clone()))
        .bind(details.blood_thinners.clone())
        .bind(details.clinical_notes.clone())
        .bind(micros(at))
        .bind(id.get())
        .bind(case.version)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() != 1 {
            return Err(StoreError::concurrent_change());
        }
        self.insert_timeline(
            &mut tx,
            id,
            &Timeline {
                action: Action::Resubmit.as_str(),
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
            &NewAuditEvent::new(actor, "transition", "case", AuditOutcome::Success)
                .entity(id)
                .detail(format!(
                    "action=resubmit {}->{} amended",
                    event.from, event.to
                )),
            at,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// A radiologist (or admin) changes the ordered procedure while vetting; the
    /// case keeps its state and the change is on the timeline. `levels`/`side` are
    /// the new order's (already checked against the new procedure).
    pub async fn change_procedure(
        &self,
        actor: &Actor,
        id: CaseId,
        details: &ReferralDetails,
        reason: &str,
        at: Timestamp,
    ) -> Result<()> {
        let result = self
            .apply_change_procedure(actor, id, details, reason, at)
            .await;
        if let Err(e) = &result {
            self.record_audit(
                NewAuditEvent::new(actor, "change_procedure", "case", outcome_of(e)).entity(id),
            )
            .await?;
        }
        result.map_err(hide_denial)
    }

    async fn apply_change_procedure(
        &self,
        actor: &Actor,
        id: CaseId,
        details: &ReferralDetails,
        reason: &str,
        at: Timestamp,
    ) -> Result<()> {
        if !matches!(actor.role, Some(Role::Radiologist | Role::Admin)) {
            return Err(StoreError::Denied(
                "only radiologists change the ordered procedure",
            ));
        }
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(StoreError::Field {
                field: "reason",
                message: "say why the procedure changes".to_owned(),
            });
        }
        let case = self.case_summary(id).await?;
        if !matches!(case.state, CaseState::Referred | CaseState::Screening) {
            return Err(StoreError::Conflict(format!(
                "the procedure can be changed while the referral is vetted or screened, not when it is {}",
                case.state.label().to_lowercase()
            )));
        }
        let procedure_name = self
            .active_procedure_name(&self.pool, &details.procedure_code)
            .await?;
        let levels = details.levels.as_ref().map(ToString::to_string);
        if case.procedure_code == details.procedure_code
            && case.levels == levels
            && case.side == Some(details.side)
        {
            return Err(StoreError::Field {
                field: "procedure",
                message: "this is the procedure already ordered".to_owned(),
            });
        }
        let mut tx = self.pool.begin().await?;
        let updated = sqlx::query(self.sql(
            "UPDATE cases SET procedure_code = ?, procedure_name = ?, levels = ?, side = ?,
                    version = version + 1, updated_at = ?
             WHERE id = ? AND version = ?",
        ))
        .bind(details.procedure_code.clone())
        .bind(procedure_name)
        .bind(levels.clone())
        .bind(details.side.as_str())
        .bind(micros(at))
        .bind(id.get())
        .bind(case.version)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() != 1 {
            return Err(StoreError::concurrent_change());
        }
        let describe = |code: &str, levels: &Option<String>, side: Option<&str>| {
            let mut s = code.to_owned();
            if let Some(l) = levels {
                s.push_str(&format!(" {l}"));
            }
            if let Some(side) = side {
                s.push_str(&format!(" {side}"));
            }
            s
        };
        self.insert_timeline(
            &mut tx,
            id,
            &Timeline {
                action: "change_procedure",
                from: Some(case.state),
                to: case.state,
                reason: Some(format!(
                    "{} → {}: {reason}",
                    describe(
                        &case.procedure_code,
                        &case.levels,
                        case.side.map(|s| s.as_str())
                    ),
                    describe(
                        &details.procedure_code,
                        &levels,
                        Some(details.side.as_str())
                    )
                )),
                deferred_until: None,
                reason_code: None,
            },
            actor,
            at,
        )
        .await?;
        self.insert_audit(
            &mut *tx,
            &NewAuditEvent::new(actor, "change_procedure", "case", AuditOutcome::Success)
                .entity(id)
                .detail(format!(
                    "{} -> {}",
                    case.procedure_code, details.procedure_code
                )),
            at,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Staff decide a doubtful patient match: the same person as a candidate (the
    /// case moves to that record; the provisional record is removed if nothing else
    /// uses it), or a different person (the flag is cleared).
    pub async fn resolve_patient_review(
        &self,
        actor: &Actor,
        id: CaseId,
        choice: PatientChoice,
        at: Timestamp,
    ) -> Result<()> {
        let result = self.apply_patient_review(actor, id, choice, at).await;
        if let Err(e) = &result {
            self.record_audit(
                NewAuditEvent::new(actor, "patient_match", "case", outcome_of(e)).entity(id),
            )
            .await?;
        }
        result
    }

    async fn apply_patient_review(
        &self,
        actor: &Actor,
        id: CaseId,
        choice: PatientChoice,
        at: Timestamp,
    ) -> Result<()> {
        if !matches!(
            actor.role,
            Some(Role::Scheduler | Role::Nurse | Role::Radiologist | Role::Admin)
        ) {
            return Err(StoreError::Denied(
                "department staff decide patient matches",
            ));
        }
        let detail = self.select_case_detail_for_review(id).await?;
        let (case, candidates) = detail;
        if candidates.is_empty() {
            return Err(StoreError::Conflict(
                "this case's patient match has already been decided".to_owned(),
            ));
        }
        let mut tx = self.pool.begin().await?;
        let text = match choice {
            PatientChoice::SameAs(chosen) => {
                if !candidates.contains(&chosen) {
                    return Err(StoreError::Field {
                        field: "patient",
                        message: "choose one of the listed patients".to_owned(),
                    });
                }
                let open: Option<i64> = sqlx::query_scalar(self.sql(
                    "SELECT id FROM cases WHERE patient_id = ? AND procedure_code = ? AND id <> ?
                       AND state NOT IN ('discharged', 'followed_up', 'cancelled') LIMIT 1",
                ))
                .bind(chosen.get())
                .bind(case.procedure_code.clone())
                .bind(id.get())
                .fetch_optional(&mut *tx)
                .await?;
                if let Some(existing) = open {
                    return Err(StoreError::DuplicateCase {
                        existing: CaseId::new(existing),
                    });
                }
                sqlx::query(self.sql("UPDATE cases SET patient_id = ?, patient_review = NULL, version = version + 1, updated_at = ? WHERE id = ?"))
                    .bind(chosen.get())
                    .bind(micros(at))
                    .bind(id.get())
                    .execute(&mut *tx)
                    .await?;
                let others: i64 =
                    sqlx::query_scalar(self.sql("SELECT COUNT(*) FROM cases WHERE patient_id = ?"))
                        .bind(case.patient_id.get())
                        .fetch_one(&mut *tx)
                        .await?;
                if others == 0 {
                    sqlx::query(self.sql("DELETE FROM patients WHERE id = ?"))
                        .bind(case.patient_id.get())
                        .execute(&mut *tx)
                        .await?;
                }
                format!("Patient confirmed as existing patient {chosen}")
            }
            PatientChoice::Separate => {
                sqlx::query(self.sql("UPDATE cases SET patient_review = NULL, version = version + 1, updated_at = ? WHERE id = ?"))
                    .bind(micros(at))
                    .bind(id.get())
                    .execute(&mut *tx)
                    .await?;
                "Patient confirmed as a new patient, distinct from the possible matches".to_owned()
            }
        };
        self.insert_timeline(
            &mut tx,
            id,
            &Timeline {
                action: "patient_match",
                from: Some(case.state),
                to: case.state,
                reason: Some(text),
                deferred_until: None,
                reason_code: None,
            },
            actor,
            at,
        )
        .await?;
        self.insert_audit(
            &mut *tx,
            &NewAuditEvent::new(actor, "patient_match", "case", AuditOutcome::Success)
                .entity(id)
                .detail(match choice {
                    PatientChoice::SameAs(p) => format!("same_as={p}"),
                    PatientChoice::Separate => "separate".to_owned(),
                }),
            at,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn select_case_detail_for_review(
        &self,
        id: CaseId,
    ) -> Result<(crate::CaseSummary, Vec<PatientId>)> {
        let case = self.case_summary(id).await?;
        let review: Option<String> =
            sqlx::query_scalar(self.sql("SELECT patient_review FROM cases WHERE id = ?"))
                .bind(id.get())
                .fetch_one(&self.pool)
                .await?;
        let ids = review
            .unwrap_or_default()
            .split_whitespace()
            .map(|s| parse_stored::<i64>("patient_review", s).map(PatientId::new))
            .collect::<Result<Vec<_>>>()?;
        Ok((case, ids))
    }

    /// Patients by id, for staff showing possible matches (audited as reads).
    pub async fn patients_for_review(
        &self,
        actor: &Actor,
        ids: &[PatientId],
    ) -> Result<Vec<PatientRecord>> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push(self.patient(actor, *id).await?);
        }
        Ok(out)
    }
}
