//! The demo department's last four weeks: patients referred, screened, booked and
//! treated, each with a signed procedure record, recovery and discharge, and — once
//! their follow-up came due — the follow-up (by phone or through the patient's own
//! link). So the follow-up list, the outcomes page and the FHIR `Procedure`,
//! `MedicationAdministration` and `DocumentReference` reads have content from the
//! first start. Everything goes through the same store calls the pages use
//! (the day itself through `demo_day`), at the times it happened.
//!
//! What is left open on purpose: two follow-ups due but not yet done, one patient
//! who answered the form with a problem (the nurse calls), a few not due yet, and
//! yesterday's record still a draft for the radiologist to sign.

use anyhow::{Context, Result, anyhow};
use irflow_domain::pathway::TransitionRequest;
use irflow_domain::procedure_record::{FollowUpForm, ProcedureRecordForm, follow_up_due};
use irflow_domain::scheduling::{ChairOption, SlotOption};
use irflow_domain::screening::RulePack;
use irflow_domain::{Action, Actor, Channel, Email, ReferralForm};
use irflow_store::{LinkChannel, NewReferral, ReferralSubject, Store};
use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Span, Timestamp};

use crate::demo_day::{DayTeam, record_day, typical_day};

/// Days after the discharge when the follow-up is due (the default
/// `[letters] follow_up_days`; the demo runs with the defaults).
pub const FOLLOW_UP_DAYS: u32 = 14;

/// How many cases the history adds (each discharged or followed up).
pub const HISTORY_CASES: usize = 18;

/// The referring providers' email addresses (reports go there, through the outbox).
pub const REFERRER_EMAILS: [(&str, &str); 2] = [
    ("referrer", "ravi.shah@backbayspine.example.org"),
    ("referrer2", "olivia.brooks@riversideortho.example.org"),
];

/// How the follow-up went.
#[derive(Debug, Clone, Copy)]
enum FollowUp {
    /// A nurse phoned: pain now, relief %, problems.
    Phone(u8, u8, Option<&'static str>),
    /// The patient answered the form behind their link.
    Form(u8, u8, Option<&'static str>),
    /// Not done yet.
    Open,
}

/// One past patient.
#[derive(Debug, Clone)]
struct Past {
    family: &'static str,
    given: &'static str,
    dob: &'static str,
    mrn: &'static str,
    phone: &'static str,
    lang: &'static str,
    /// Procedure, levels, side, indication, ICD-10.
    order: (
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
    ),
    referrer: &'static str,
    /// Days before today of the procedure (moved back to a weekday) and the local hour.
    days_ago: i64,
    hour: i8,
    /// Drives home: monitored, with a recovery chair.
    drives: bool,
    /// Guidance, contrast (agent, mL), steroid (agent, mg), anaesthetic (agent, mg),
    /// radiation (fluoroscopy s, DAP; or CT DLP), pain before/after, complication, text.
    record: Record,
    follow_up: FollowUp,
    /// Leave the record as a draft (not signed yet).
    draft_only: bool,
}

#[derive(Debug, Clone, Copy)]
struct Record {
    guidance: &'static str,
    contrast: (&'static str, &'static str),
    steroid: (&'static str, &'static str),
    anaesthetic: (&'static str, &'static str),
    radiation: (&'static str, &'static str, &'static str),
    pain: (&'static str, &'static str),
    complication: (&'static str, &'static str),
}

const fn fluoro(
    contrast: (&'static str, &'static str),
    steroid: (&'static str, &'static str),
    anaesthetic: (&'static str, &'static str),
    seconds: &'static str,
    dap: &'static str,
    pain: (&'static str, &'static str),
    complication: (&'static str, &'static str),
) -> Record {
    Record {
        guidance: "fluoroscopy",
        contrast,
        steroid,
        anaesthetic,
        radiation: (seconds, dap, ""),
        pain,
        complication,
    }
}

const NONE: (&str, &str) = ("none", "");
const NO_COMPLICATION: (&str, &str) = ("none", "");

#[allow(clippy::too_many_lines)]
fn history() -> Vec<Past> {
    let p = |family,
             given,
             dob,
             mrn,
             phone,
             lang,
             order,
             referrer,
             days_ago,
             hour,
             record,
             follow_up| Past {
        family,
        given,
        dob,
        mrn,
        phone,
        lang,
        order,
        referrer,
        days_ago,
        hour,
        drives: false,
        record,
        follow_up,
        draft_only: false,
    };
    vec![
        p(
            "Lindqvist",
            "Erik",
            "1957-02-11",
            "MRN-102201",
            "617-555-0201",
            "en",
            (
                "64483",
                "L4-L5",
                "left",
                "Left L5 radiculopathy, 3 months, foraminal stenosis on MRI.",
                "M54.16",
            ),
            "referrer",
            27,
            9,
            fluoro(
                ("iohexol", "1.5"),
                ("dexamethasone", "10"),
                ("lidocaine", "20"),
                "38",
                "214",
                ("8", "2"),
                NO_COMPLICATION,
            ),
            FollowUp::Phone(2, 80, None),
        ),
        p(
            "Okonkwo",
            "Adaeze",
            "1968-09-30",
            "MRN-102214",
            "617-555-0202",
            "en",
            (
                "62323",
                "L5-S1",
                "bilateral",
                "Bilateral buttock and leg pain, central stenosis L5-S1.",
                "M48.062",
            ),
            "referrer2",
            26,
            10,
            fluoro(
                ("iohexol", "2"),
                ("methylprednisolone acetate", "80"),
                ("lidocaine", "20"),
                "25",
                "160",
                ("7", "3"),
                NO_COMPLICATION,
            ),
            FollowUp::Phone(3, 60, None),
        ),
        p(
            "Moreau",
            "Claire",
            "1961-04-17",
            "MRN-102233",
            "617-555-0203",
            "fr",
            (
                "64493",
                "L4-L5, L5-S1",
                "bilateral",
                "Axial low back pain worse with extension; facet arthropathy.",
                "M47.816",
            ),
            "referrer",
            25,
            11,
            fluoro(
                ("iopamidol", "1"),
                ("triamcinolone", "40"),
                ("bupivacaine", "10"),
                "52",
                "305",
                ("6", "1"),
                (
                    "vasovagal",
                    "Light-headed and pale after the second level; recovered lying flat within 5 minutes.",
                ),
            ),
            FollowUp::Form(4, 50, None),
        ),
        p(
            "Farouk",
            "Omar",
            "1979-12-05",
            "MRN-102240",
            "617-555-0204",
            "ar",
            (
                "27096",
                "",
                "right",
                "Right sacroiliac joint pain, positive provocation tests.",
                "M53.3",
            ),
            "referrer2",
            24,
            13,
            fluoro(
                ("iohexol", "1"),
                ("triamcinolone", "40"),
                ("lidocaine", "10"),
                "20",
                "98",
                ("7", "2"),
                NO_COMPLICATION,
            ),
            FollowUp::Phone(5, 30, None),
        ),
        p(
            "Yilmaz",
            "Deniz",
            "1973-07-22",
            "MRN-102257",
            "617-555-0205",
            "tr",
            (
                "64479",
                "C6-C7",
                "right",
                "Right C7 radiculopathy, 8 weeks, foraminal stenosis C6-C7.",
                "M54.12",
            ),
            "referrer",
            22,
            9,
            Record {
                guidance: "ct",
                contrast: NONE,
                steroid: ("dexamethasone", "10"),
                anaesthetic: ("lidocaine", "10"),
                radiation: ("", "", "182"),
                pain: ("6", "2"),
                complication: NO_COMPLICATION,
            },
            FollowUp::Phone(2, 70, None),
        ),
        p(
            "Brennan",
            "Siobhan",
            "1959-03-08",
            "MRN-102262",
            "617-555-0206",
            "en",
            (
                "62321",
                "C7-T1",
                "bilateral",
                "Neck and bilateral arm pain, multilevel cervical spondylosis.",
                "M47.812",
            ),
            "referrer2",
            21,
            10,
            fluoro(
                ("iohexol", "2"),
                ("methylprednisolone acetate", "80"),
                ("lidocaine", "20"),
                "44",
                "260",
                ("7", "4"),
                (
                    "dural_puncture",
                    "Dural puncture at C7-T1; no intrathecal contrast spread; headache advice given.",
                ),
            ),
            FollowUp::Phone(
                4,
                40,
                Some("Headache worse upright for 3 days, settled with fluids and rest."),
            ),
        ),
        p(
            "Castillo",
            "Ramón",
            "1966-10-14",
            "MRN-102278",
            "617-555-0207",
            "es",
            (
                "64483",
                "L5-S1",
                "right",
                "Right S1 radiculopathy, disc protrusion L5-S1.",
                "M54.17",
            ),
            "referrer",
            20,
            11,
            fluoro(
                ("iohexol", "1.5"),
                ("dexamethasone", "10"),
                ("lidocaine", "20"),
                "31",
                "190",
                ("9", "3"),
                NO_COMPLICATION,
            ),
            FollowUp::Form(2, 90, None),
        ),
        p(
            "Petersen",
            "Ingrid",
            "1954-05-27",
            "MRN-102281",
            "617-555-0208",
            "en",
            (
                "64490",
                "C5-C6",
                "left",
                "Left-sided axial neck pain; facet arthropathy C5-C6.",
                "M47.812",
            ),
            "referrer2",
            19,
            9,
            fluoro(
                ("iohexol", "0.5"),
                ("dexamethasone", "4"),
                ("bupivacaine", "5"),
                "29",
                "142",
                ("5", "2"),
                NO_COMPLICATION,
            ),
            FollowUp::Phone(3, 50, None),
        ),
        p(
            "Nakamura",
            "Kenji",
            "1970-01-19",
            "MRN-102299",
            "617-555-0209",
            "ja",
            (
                "64493",
                "L3-L4, L4-L5",
                "bilateral",
                "Chronic axial low back pain, facet-mediated.",
                "M47.816",
            ),
            "referrer",
            18,
            10,
            fluoro(
                ("iopamidol", "1"),
                ("triamcinolone", "40"),
                ("bupivacaine", "10"),
                "48",
                "280",
                ("6", "3"),
                NO_COMPLICATION,
            ),
            FollowUp::Phone(6, 10, None),
        ),
        p(
            "Abara",
            "Chinwe",
            "1963-08-03",
            "MRN-102305",
            "617-555-0210",
            "en",
            (
                "64483",
                "L4-L5",
                "bilateral",
                "Bilateral L5 radicular pain, lateral recess stenosis.",
                "M54.16",
            ),
            "referrer2",
            17,
            13,
            fluoro(
                ("iohexol", "2"),
                ("dexamethasone", "10"),
                ("lidocaine", "20"),
                "56",
                "330",
                ("8", "4"),
                (
                    "vasovagal",
                    "Vasovagal reaction at needle placement; procedure completed after recovery.",
                ),
            ),
            FollowUp::Phone(4, 60, None),
        ),
        p(
            "Whitfield",
            "Margaret",
            "1950-11-23",
            "MRN-102318",
            "617-555-0211",
            "en",
            (
                "62323",
                "L4-L5",
                "bilateral",
                "Neurogenic claudication, stenosis L4-L5.",
                "M48.062",
            ),
            "referrer",
            15,
            9,
            fluoro(
                ("iohexol", "2"),
                ("methylprednisolone acetate", "80"),
                ("lidocaine", "20"),
                "27",
                "170",
                ("7", "2"),
                NO_COMPLICATION,
            ),
            FollowUp::Open,
        ),
        p(
            "Fontaine",
            "Luc",
            "1976-06-09",
            "MRN-102324",
            "617-555-0212",
            "fr",
            (
                "27096",
                "",
                "left",
                "Left sacroiliac joint pain after a fall.",
                "M53.3",
            ),
            "referrer2",
            14,
            10,
            fluoro(
                ("iohexol", "1"),
                ("triamcinolone", "40"),
                ("lidocaine", "10"),
                "18",
                "90",
                ("6", "1"),
                NO_COMPLICATION,
            ),
            FollowUp::Open,
        ),
        p(
            "Sandoval",
            "Lucía",
            "1969-02-28",
            "MRN-102337",
            "617-555-0213",
            "es",
            (
                "64479",
                "C5-C6",
                "left",
                "Left C6 radiculopathy, 10 weeks.",
                "M54.12",
            ),
            "referrer",
            14,
            13,
            Record {
                guidance: "ct",
                contrast: NONE,
                steroid: ("dexamethasone", "10"),
                anaesthetic: ("lidocaine", "10"),
                radiation: ("", "", "205"),
                pain: ("7", "3"),
                complication: (
                    "bleeding",
                    "Minor bleeding at the skin entry site; pressure for 5 minutes.",
                ),
            },
            FollowUp::Form(
                5,
                20,
                Some("My neck is still sore where the needle went in."),
            ),
        ),
        p(
            "Kowalczyk",
            "Piotr",
            "1958-09-12",
            "MRN-102341",
            "617-555-0214",
            "pl",
            (
                "64483",
                "L3-L4",
                "left",
                "Left L4 radiculopathy, far-lateral disc herniation.",
                "M54.16",
            ),
            "referrer2",
            10,
            9,
            fluoro(
                ("iohexol", "1.5"),
                ("dexamethasone", "10"),
                ("lidocaine", "20"),
                "34",
                "205",
                ("8", "3"),
                NO_COMPLICATION,
            ),
            FollowUp::Open,
        ),
        p(
            "Eriksen",
            "Hanne",
            "1965-12-30",
            "MRN-102356",
            "617-555-0215",
            "da",
            (
                "64493",
                "L5-S1",
                "bilateral",
                "Axial back pain, facet arthropathy L5-S1.",
                "M47.816",
            ),
            "referrer",
            8,
            11,
            fluoro(
                ("iopamidol", "1"),
                ("triamcinolone", "40"),
                ("bupivacaine", "10"),
                "40",
                "240",
                ("6", "2"),
                NO_COMPLICATION,
            ),
            FollowUp::Open,
        ),
        p(
            "Osei",
            "Kwame",
            "1972-04-04",
            "MRN-102362",
            "617-555-0216",
            "en",
            (
                "62323",
                "L5-S1",
                "bilateral",
                "Bilateral S1 radicular pain.",
                "M54.17",
            ),
            "referrer2",
            5,
            10,
            fluoro(
                ("iohexol", "2"),
                ("dexamethasone", "10"),
                ("lidocaine", "20"),
                "30",
                "185",
                ("7", "3"),
                NO_COMPLICATION,
            ),
            FollowUp::Open,
        ),
        Past {
            drives: true,
            ..p(
                "Marchetti",
                "Giulia",
                "1980-03-15",
                "MRN-102379",
                "617-555-0217",
                "it",
                (
                    "64483",
                    "L4-L5",
                    "left",
                    "Left L5 radiculopathy, 6 weeks.",
                    "M54.16",
                ),
                "referrer",
                3,
                9,
                fluoro(
                    ("iohexol", "1.5"),
                    ("dexamethasone", "10"),
                    ("lidocaine", "20"),
                    "36",
                    "220",
                    ("7", "2"),
                    NO_COMPLICATION,
                ),
                FollowUp::Open,
            )
        },
        Past {
            draft_only: true,
            ..p(
                "Dubois",
                "Thérèse",
                "1955-07-07",
                "MRN-102383",
                "617-555-0218",
                "fr",
                (
                    "27096",
                    "",
                    "right",
                    "Right sacroiliac joint pain.",
                    "M53.3",
                ),
                "referrer2",
                1,
                13,
                fluoro(
                    ("iohexol", "1"),
                    ("triamcinolone", "40"),
                    ("lidocaine", "10"),
                    "22",
                    "",
                    ("6", ""),
                    NO_COMPLICATION,
                ),
                FollowUp::Open,
            )
        },
    ]
}

/// The weekday on or before `date`.
fn weekday_on_or_before(mut date: Date) -> Date {
    while matches!(date.weekday(), Weekday::Saturday | Weekday::Sunday) {
        date = date.yesterday().unwrap_or(date);
    }
    date
}

fn local(date: Date, hour: i8, minute: i8, tz: &TimeZone) -> Result<Timestamp> {
    Ok(date
        .to_datetime(jiff::civil::time(hour, minute, 0, 0))
        .to_zoned_datetime(tz.clone())?
        .timestamp())
}

fn user(users: &[irflow_store::UserRecord], name: &str) -> Result<Actor> {
    users
        .iter()
        .find(|u| u.username == name)
        .map(irflow_store::UserRecord::actor)
        .with_context(|| format!("demo user {name} missing"))
}

/// Gives the referring providers their email addresses, so that reports reach them
/// (before any demo record is signed).
pub async fn set_referrer_emails(store: &Store) -> Result<()> {
    let system = Actor::system("demo");
    for (name, email) in REFERRER_EMAILS {
        let u = store.user_by_username(name).await?;
        let email = Email::parse(email).map_err(|e| anyhow!("demo email {email}: {e}"))?;
        store.set_user_email(&system, u.id, Some(&email)).await?;
    }
    Ok(())
}

/// Seeds the four weeks of history (after the demo's users, resources and cases, and
/// [`set_referrer_emails`]).
pub async fn seed_history(
    store: &Store,
    tz: &TimeZone,
    pack: &RulePack,
    server: &irflow_server::AppState,
) -> Result<usize> {
    let mut users = Vec::new();
    for name in [
        "scheduler",
        "nurse",
        "radiologist2",
        "radiologist3",
        "referrer",
        "referrer2",
    ] {
        users.push(store.user_by_username(name).await?);
    }
    let today = Timestamp::now().to_zoned_datetime(tz.clone()).date();
    let catalogue = store.procedures().await?;
    let site = store.default_site().await?.context("demo site")?;
    let rooms = store.rooms(site.id).await?;
    let chairs = store.chairs(site.id).await?;
    let room = |name: &str| {
        rooms
            .iter()
            .find(|r| r.name == name)
            .with_context(|| format!("demo room {name}"))
    };
    let scheduler = user(&users, "scheduler")?;
    let nurse = user(&users, "nurse")?;
    let nurse_name = users
        .iter()
        .find(|u| u.username == "nurse")
        .map(|u| u.display_name.clone())
        .unwrap_or_default();
    let all = history();
    debug_assert_eq!(all.len(), HISTORY_CASES);
    for (i, past) in all.iter().enumerate() {
        let what = past.family;
        let (code, levels, side, indication, icd10) = past.order;
        let day = weekday_on_or_before(
            today
                .checked_sub(Span::new().days(past.days_ago))
                .context("demo date")?,
        );
        let start = local(day, past.hour, if i % 2 == 0 { 0 } else { 30 }, tz)?;
        let form = ReferralForm {
            family_name: past.family.into(),
            given_name: past.given.into(),
            date_of_birth: past.dob.into(),
            mrn: past.mrn.into(),
            phone: past.phone.into(),
            preferred_language: past.lang.into(),
            procedure: code.into(),
            levels: levels.into(),
            side: side.into(),
            indication: indication.into(),
            icd10: icd10.into(),
            urgency: "routine".into(),
            blood_thinners: "None known".into(),
            ..ReferralForm::default()
        };
        let patient = form
            .patient(today)
            .map_err(|e| anyhow!("demo patient {what}: {e}"))?;
        let details = form
            .details(&catalogue, today)
            .map_err(|e| anyhow!("demo referral {what}: {e}"))?;
        let referrer = user(&users, past.referrer)?;
        let referred_at = start - SignedDuration::from_hours(24 * 12);
        let receipt = store
            .submit_referral(
                &referrer,
                &NewReferral {
                    subject: ReferralSubject::New(patient),
                    referrer: referrer.user_id.context("referrer id")?,
                    details,
                    channel: Channel::Online,
                },
                referred_at,
            )
            .await
            .with_context(|| format!("demo history referral {what}"))?;
        let case = receipt.case;
        let cervical = matches!(code, "62321" | "64479" | "64490");
        let radiologist = user(
            &users,
            if cervical {
                "radiologist3"
            } else {
                "radiologist2"
            },
        )?;
        for (who, action, days) in [
            (&radiologist, Action::Accept, 11),
            (&nurse, Action::MarkReady, 9),
        ] {
            let at = start - SignedDuration::from_hours(24 * days);
            store
                .transition_case(
                    who,
                    case,
                    &TransitionRequest::new(action),
                    None,
                    at,
                    at.to_zoned_datetime(tz.clone()).date(),
                )
                .await
                .with_context(|| format!("demo history {what}: {action}"))?;
        }
        let modality = if past.record.guidance == "ct" {
            "CT 1"
        } else {
            "Fluoro 2"
        };
        let room = room(modality)?;
        let end = start + SignedDuration::from_mins(20);
        let chair = if past.drives {
            chairs.get(1).map(|(id, _)| ChairOption {
                chair: *id,
                start: end,
                end: end + SignedDuration::from_mins(i64::from(pack.policy.monitoring_minutes)),
            })
        } else {
            None
        };
        let booked_at = start - SignedDuration::from_hours(24 * 8);
        store
            .book_appointment(
                &scheduler,
                case,
                &site,
                &SlotOption {
                    start,
                    end,
                    room: room.id,
                    radiologist: radiologist.user_id.context("radiologist id")?.get(),
                    chair,
                },
                room.turnaround_minutes,
                None,
                booked_at,
                booked_at.to_zoned_datetime(tz.clone()).date(),
            )
            .await
            .with_context(|| format!("demo history booking {what}"))?;
        // The day: check-in to recovery, the record, then the discharge.
        let radiologist_name = users
            .iter()
            .find(|u| Some(u.id) == radiologist.user_id)
            .map(|u| u.display_name.clone())
            .unwrap_or_default();
        let team = DayTeam {
            nurse: nurse.clone(),
            nurse_name: nurse_name.clone(),
            radiologist: radiologist.clone(),
            radiologist_name: radiologist_name.clone(),
            server: server.clone(),
        };
        let plan = typical_day(
            start,
            past.drives,
            pack.policy.monitoring_minutes,
            Timestamp::MAX,
        );
        let discharged_at = plan.discharge.map(|d| d.0).context("a discharge")?;
        // The record is this patient's own (below), not the day's plain one.
        let before_discharge = crate::demo_day::DayPlan {
            discharge: None,
            sign: None,
            ..plan.clone()
        };
        record_day(store, pack, &team, case, &before_discharge, tz)
            .await
            .with_context(|| format!("demo history day {what}"))?;
        let r = &past.record;
        let record = ProcedureRecordForm {
            procedure: code.into(),
            levels: levels.into(),
            side: side.into(),
            guidance: r.guidance.into(),
            contrast_agent: r.contrast.0.into(),
            contrast_ml: r.contrast.1.into(),
            steroid_agent: r.steroid.0.into(),
            steroid_mg: r.steroid.1.into(),
            anaesthetic_agent: r.anaesthetic.0.into(),
            anaesthetic_mg: r.anaesthetic.1.into(),
            fluoroscopy_seconds: r.radiation.0.into(),
            dap: r.radiation.1.into(),
            dlp: r.radiation.2.into(),
            pain_before: r.pain.0.into(),
            pain_after: r.pain.1.into(),
            complication: r.complication.0.into(),
            complication_text: r.complication.1.into(),
            ..ProcedureRecordForm::default()
        };
        let signed_at = end + SignedDuration::from_mins(8);
        if past.draft_only {
            store
                .save_procedure_record_draft(&radiologist, case, &record, signed_at)
                .await
                .with_context(|| format!("demo history draft {what}"))?;
        } else {
            let checked = record
                .check(&catalogue, &pack.procedure_record, false)
                .map_err(|e| anyhow!("demo history record {what}: {e}"))?;
            let signed = store
                .sign_procedure_record(&radiologist, &radiologist_name, case, &checked, signed_at)
                .await
                .with_context(|| format!("demo history signature {what}"))?;
            crate::demo_day::send_report(&team, &signed, signed_at).await?;
        }
        record_day(store, pack, &team, case, &plan.only(Action::Discharge), tz)
            .await
            .with_context(|| format!("demo history discharge {what}"))?;
        let due = follow_up_due(
            discharged_at.to_zoned_datetime(tz.clone()).date(),
            FOLLOW_UP_DAYS,
        );
        if due > today {
            continue;
        }
        let answered_at = local(due, 10, 15, tz)?.min(Timestamp::now());
        let form = |pain: u8, relief: u8, problems: Option<&str>| FollowUpForm {
            pain_now: pain.to_string(),
            relief_percent: relief.to_string(),
            problems: problems.unwrap_or_default().to_owned(),
        };
        match past.follow_up {
            FollowUp::Open => {}
            FollowUp::Phone(pain, relief, problems) => {
                let answers = form(pain, relief, problems)
                    .check()
                    .map_err(|e| anyhow!("demo follow-up {what}: {e}"))?;
                store
                    .record_follow_up(&nurse, case, &answers, tz, FOLLOW_UP_DAYS, answered_at, due)
                    .await
                    .with_context(|| format!("demo history follow-up {what}"))?;
            }
            FollowUp::Form(pain, relief, problems) => {
                let answers = form(pain, relief, problems)
                    .check()
                    .map_err(|e| anyhow!("demo follow-up {what}: {e}"))?;
                let secret = irflow_server::auth::new_secret("");
                let link = store
                    .create_patient_link(
                        &nurse,
                        case,
                        &irflow_server::auth::secret_hash(&secret),
                        LinkChannel::None,
                        answered_at + SignedDuration::from_hours(24 * 30),
                        discharged_at,
                    )
                    .await
                    .with_context(|| format!("demo history link {what}"))?;
                store
                    .record_patient_follow_up(
                        &link,
                        "demo",
                        &answers,
                        tz,
                        FOLLOW_UP_DAYS,
                        answered_at,
                    )
                    .await
                    .with_context(|| format!("demo history patient follow-up {what}"))?;
            }
        }
    }
    Ok(all.len())
}
