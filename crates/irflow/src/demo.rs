//! The demo department: users for every role, patients, and cases spread over the
//! pathway with realistic timelines, on a fresh embedded SQLite database, served
//! on loopback. Later features add their own demo content here.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use irflow_domain::pathway::TransitionRequest;
use irflow_domain::patient::parse_date_of_birth;
use irflow_domain::{
    Action, Actor, CaseId, Email, LanguageTag, Mrn, NewPatient, PersonName, Phone, Role, Username,
};
use irflow_server::auth;
use irflow_store::{NewCase, NewUser, Store, UserRecord};
use jiff::{SignedDuration, Timestamp};

use crate::cli::DemoArgs;
use crate::config::{Config, LogFormat, sqlite_url};

/// The password of every demo user.
pub const DEMO_PASSWORD: &str = "demo";

/// The demo users: username, display name, role, organization.
pub const DEMO_USERS: &[(&str, &str, Role, Option<&str>)] = &[
    ("admin", "Alex Admin", Role::Admin, None),
    ("scheduler", "Sam Rivera", Role::Scheduler, None),
    ("nurse", "Nora Patel, RN", Role::Nurse, None),
    ("radiologist", "Dr. Rachel Kim", Role::Radiologist, None),
    (
        "referrer",
        "Dr. Ravi Shah",
        Role::Referrer,
        Some("Back Bay Spine Clinic"),
    ),
    (
        "referrer2",
        "Dr. Olivia Brooks",
        Role::Referrer,
        Some("Riverside Orthopedics"),
    ),
];

const MARKER: &str = ".irflow-demo";

/// Runs `irflow demo`.
pub async fn run(args: DemoArgs, data_dir: Option<PathBuf>) -> Result<()> {
    let dir = data_dir.unwrap_or_else(|| PathBuf::from("irflow-demo"));
    let log_level = std::env::var("IRFLOW_LOG_LEVEL").unwrap_or_else(|_| "warn".to_owned());
    crate::init_logging(LogFormat::Json, &log_level);
    prepare_dir(&dir)?;
    let store = Store::open(&sqlite_url(&dir.join("irflow.db")))
        .await
        .context("could not create the demo database")?;
    let config = Config {
        data_dir: dir.clone(),
        // Plain HTTP on loopback: a browser would drop Secure cookies from a non-HTTPS origin.
        cookie_secure: false,
        ..Config::default()
    };
    let tz = jiff::tz::TimeZone::get(&config.time_zone)?;
    let summary = seed(&store, &tz).await?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port))
        .await
        .with_context(|| {
            format!(
                "could not listen on 127.0.0.1:{}; is another program using it? try --port 0",
                args.port
            )
        })?;
    let addr = listener.local_addr()?;
    println!("irflow demo: serving http://{addr}");
    println!("  data: {} (recreated on every start)", dir.display());
    println!("  {} patients, {} cases", summary.patients, summary.cases);
    println!("  sign in as any of these users, password \"{DEMO_PASSWORD}\":");
    for (username, name, role, org) in DEMO_USERS {
        println!(
            "    {username:<12} {:<20} {name}{}",
            role.label(),
            org.map(|o| format!(", {o}")).unwrap_or_default()
        );
    }
    println!(
        "  API: irflow token issue --user nurse --data-dir {}  then  curl -H 'Authorization: Bearer …' http://{addr}/api/v1/cases",
        dir.display()
    );
    println!("  stop with Ctrl-C");
    crate::serve_on(listener, store, config.server_config()).await
}

/// Makes sure `dir` is a demo directory and removes the previous demo database.
/// Refuses to touch a directory holding a database that a demo did not create.
fn prepare_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("could not create the demo directory {}", dir.display()))?;
    let db = dir.join("irflow.db");
    if db.exists() && !dir.join(MARKER).exists() {
        bail!(
            "{} holds an irflow database that the demo did not create; the demo recreates its data on every start, so choose another --data-dir",
            dir.display()
        );
    }
    for name in ["irflow.db", "irflow.db-wal", "irflow.db-shm"] {
        let p = dir.join(name);
        if p.exists() {
            std::fs::remove_file(&p)
                .with_context(|| format!("could not remove {}", p.display()))?;
        }
    }
    std::fs::write(
        dir.join(MARKER),
        "This directory belongs to `irflow demo`, which recreates it on every start.\n",
    )?;
    Ok(())
}

/// What the seeder made.
#[derive(Debug, Clone, Copy)]
pub struct DemoSummary {
    /// Patients created.
    pub patients: usize,
    /// Cases created.
    pub cases: usize,
}

struct Demo<'a> {
    store: &'a Store,
    users: Vec<UserRecord>,
    today: jiff::civil::Date,
}

impl Demo<'_> {
    fn actor(&self, username: &str) -> Result<Actor> {
        self.users
            .iter()
            .find(|u| u.username == username)
            .map(UserRecord::actor)
            .with_context(|| format!("demo user {username} missing"))
    }

    fn user(&self, username: &str) -> Result<&UserRecord> {
        self.users
            .iter()
            .find(|u| u.username == username)
            .with_context(|| format!("demo user {username} missing"))
    }
}

struct DemoPatient {
    mrn: Option<&'static str>,
    family: &'static str,
    given: &'static str,
    dob: &'static str,
    phone: &'static str,
    email: Option<&'static str>,
    lang: &'static str,
}

struct DemoCase {
    patient: DemoPatient,
    referrer: &'static str,
    code: &'static str,
    name: &'static str,
    /// Days before now that the referral arrived.
    days_ago: i64,
    /// The steps after referral: (who, action, reason).
    steps: &'static [(&'static str, Action, Option<&'static str>)],
    /// For a deferral step: days from today.
    defer_days: Option<i64>,
}

/// Fills an empty store with the demo department.
pub async fn seed(store: &Store, tz: &jiff::tz::TimeZone) -> Result<DemoSummary> {
    let system = Actor::system("demo");
    let hash = auth::hash_any_password(DEMO_PASSWORD).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut users = Vec::new();
    for (username, name, role, org) in DEMO_USERS {
        users.push(
            store
                .create_user(
                    &system,
                    &NewUser {
                        username: Username::parse(username).map_err(|e| anyhow::anyhow!("{e}"))?,
                        display_name: (*name).to_owned(),
                        role: *role,
                        organization: org.map(str::to_owned),
                        password_hash: hash.clone(),
                    },
                )
                .await?,
        );
    }
    let demo = Demo {
        store,
        users,
        today: Timestamp::now().to_zoned_datetime(tz.clone()).date(),
    };
    let cases = demo_cases();
    for case in &cases {
        add_case(&demo, &system, case).await?;
    }
    Ok(DemoSummary {
        patients: cases.len(),
        cases: cases.len(),
    })
}

async fn add_case(demo: &Demo<'_>, system: &Actor, c: &DemoCase) -> Result<CaseId> {
    let p = &c.patient;
    let patient = NewPatient {
        mrn: p.mrn.map(Mrn::parse).transpose()?,
        name: PersonName::parse(p.family, p.given)?,
        date_of_birth: parse_date_of_birth(p.dob, demo.today)?,
        phone: Some(Phone::parse(p.phone)?),
        email: p.email.map(Email::parse).transpose()?,
        preferred_language: LanguageTag::parse(p.lang)?,
    };
    let patient_id = demo.store.create_patient(system, &patient).await?;
    let referrer = demo.user(c.referrer)?;
    let mut at = Timestamp::now()
        - SignedDuration::from_hours(24 * c.days_ago)
        - SignedDuration::from_mins(37);
    let id = demo
        .store
        .create_case(
            &referrer.actor(),
            &NewCase {
                patient: patient_id,
                referrer: referrer.id,
                procedure_code: c.code.to_owned(),
                procedure_name: c.name.to_owned(),
            },
            at,
        )
        .await?;
    let span = SignedDuration::from_hours(24 * c.days_ago);
    let gap = span / i32::try_from(c.steps.len() + 1).unwrap_or(1);
    for (who, action, reason) in c.steps {
        at += gap;
        let mut request = TransitionRequest::new(*action);
        request.reason = reason.map(str::to_owned);
        if *action == Action::Defer {
            request.deferred_until = c.defer_days.map(|d| demo.today + jiff::Span::new().days(d));
        }
        demo.store
            .transition_case(&demo.actor(who)?, id, &request, None, at, demo.today)
            .await
            .with_context(|| format!("demo case {}: {action}", p.family))?;
    }
    Ok(id)
}

fn demo_cases() -> Vec<DemoCase> {
    use Action as A;
    vec![
        DemoCase {
            patient: DemoPatient {
                mrn: Some("MRN-100234"),
                family: "García López",
                given: "María",
                dob: "1958-03-14",
                phone: "617-555-0142",
                email: Some("maria.garcia@example.org"),
                lang: "es",
            },
            referrer: "referrer",
            code: "64483",
            name: "Lumbar transforaminal epidural steroid injection, L4-L5 left",
            days_ago: 0,
            steps: &[],
            defer_days: None,
        },
        DemoCase {
            patient: DemoPatient {
                mrn: None,
                family: "O'Connor",
                given: "James",
                dob: "1971-11-02",
                phone: "(617) 555-0199",
                email: None,
                lang: "en",
            },
            referrer: "referrer2",
            code: "64493",
            name: "Lumbar facet joint injection, L5-S1 bilateral",
            days_ago: 1,
            steps: &[],
            defer_days: None,
        },
        DemoCase {
            patient: DemoPatient {
                mrn: Some("MRN-100871"),
                family: "Nguyen",
                given: "Linh",
                dob: "1964-06-21",
                phone: "617-555-0107",
                email: Some("linh.nguyen@example.org"),
                lang: "vi",
            },
            referrer: "referrer2",
            code: "62323",
            name: "Lumbar interlaminar epidural steroid injection, L5-S1",
            days_ago: 4,
            steps: &[
                ("radiologist", A::Accept, None),
                (
                    "nurse",
                    A::Defer,
                    Some(
                        "Taking antibiotics for a urinary tract infection; last dose expected in 3 days. The 10-day window applies.",
                    ),
                ),
            ],
            defer_days: Some(13),
        },
        DemoCase {
            patient: DemoPatient {
                mrn: Some("MRN-101502"),
                family: "Johnson",
                given: "Robert",
                dob: "1949-01-30",
                phone: "781-555-0164",
                email: None,
                lang: "en",
            },
            referrer: "referrer2",
            code: "64479",
            name: "Cervical transforaminal epidural steroid injection, C6-C7 right",
            days_ago: 5,
            steps: &[
                ("radiologist", A::Accept, None),
                (
                    "nurse",
                    A::AwaitAction,
                    Some(
                        "Takes apixaban for atrial fibrillation; waiting for the cardiologist to confirm it is safe to hold.",
                    ),
                ),
            ],
            defer_days: None,
        },
        DemoCase {
            patient: DemoPatient {
                mrn: Some("MRN-102090"),
                family: "Rahman",
                given: "Aisha",
                dob: "1983-09-09",
                phone: "617-555-0131",
                email: Some("aisha.rahman@example.org"),
                lang: "en",
            },
            referrer: "referrer",
            code: "27096",
            name: "Sacroiliac joint injection, left",
            days_ago: 3,
            steps: &[("radiologist", A::Accept, None)],
            defer_days: None,
        },
        DemoCase {
            patient: DemoPatient {
                mrn: Some("MRN-102311"),
                family: "Cohen",
                given: "David",
                dob: "1955-12-12",
                phone: "617-555-0188",
                email: Some("d.cohen@example.org"),
                lang: "en",
            },
            referrer: "referrer",
            code: "64483",
            name: "Lumbar transforaminal epidural steroid injection, L5-S1 right",
            days_ago: 6,
            steps: &[
                ("radiologist", A::Accept, None),
                ("nurse", A::MarkReady, None),
            ],
            defer_days: None,
        },
        DemoCase {
            patient: DemoPatient {
                mrn: Some("MRN-102777"),
                family: "Williams",
                given: "Patricia",
                dob: "1967-04-18",
                phone: "508-555-0112",
                email: None,
                lang: "en",
            },
            referrer: "referrer2",
            code: "64490",
            name: "Cervical facet joint injection, C5-C6 bilateral",
            days_ago: 8,
            steps: &[
                ("radiologist", A::Accept, None),
                ("nurse", A::MarkReady, None),
                ("scheduler", A::Schedule, None),
            ],
            defer_days: None,
        },
        DemoCase {
            patient: DemoPatient {
                mrn: Some("MRN-103004"),
                family: "Santos",
                given: "Ana Paula",
                dob: "1976-07-07",
                phone: "617-555-0150",
                email: Some("ana.santos@example.org"),
                lang: "pt-BR",
            },
            referrer: "referrer",
            code: "62321",
            name: "Cervical interlaminar epidural steroid injection, C7-T1",
            days_ago: 9,
            steps: &[
                ("radiologist", A::Accept, None),
                ("nurse", A::MarkReady, None),
                ("scheduler", A::Schedule, None),
                ("scheduler", A::Confirm, None),
            ],
            defer_days: None,
        },
        DemoCase {
            patient: DemoPatient {
                mrn: None,
                family: "Chen",
                given: "Wei",
                dob: "1990-02-25",
                phone: "617-555-0176",
                email: None,
                lang: "zh",
            },
            referrer: "referrer2",
            code: "64483",
            name: "Lumbar transforaminal epidural steroid injection, L3-L4 left",
            days_ago: 2,
            steps: &[(
                "radiologist",
                A::Return,
                Some(
                    "Imaging needed first: no MRI or CT of the lumbar spine on file. Please send the most recent study.",
                ),
            )],
            defer_days: None,
        },
        DemoCase {
            patient: DemoPatient {
                mrn: Some("MRN-099812"),
                family: "Brown",
                given: "Thomas",
                dob: "1952-08-03",
                phone: "617-555-0125",
                email: None,
                lang: "en",
            },
            referrer: "referrer",
            code: "64493",
            name: "Lumbar facet joint injection, L4-L5 bilateral",
            days_ago: 12,
            steps: &[
                ("radiologist", A::Accept, None),
                ("nurse", A::MarkReady, None),
                ("scheduler", A::Schedule, None),
                ("scheduler", A::Confirm, None),
                ("nurse", A::CheckIn, None),
                ("radiologist", A::StartProcedure, None),
                ("radiologist", A::EndProcedure, None),
                ("nurse", A::Discharge, None),
            ],
            defer_days: None,
        },
        DemoCase {
            patient: DemoPatient {
                mrn: Some("MRN-098455"),
                family: "Miller",
                given: "Susan",
                dob: "1960-10-27",
                phone: "978-555-0139",
                email: Some("susan.miller@example.org"),
                lang: "en",
            },
            referrer: "referrer2",
            code: "64483",
            name: "Lumbar transforaminal epidural steroid injection, L4-L5 right",
            days_ago: 30,
            steps: &[
                ("radiologist", A::Accept, None),
                ("nurse", A::MarkReady, None),
                ("scheduler", A::Schedule, None),
                ("scheduler", A::Confirm, None),
                ("scheduler", A::CheckIn, None),
                ("radiologist", A::StartProcedure, None),
                ("radiologist", A::EndProcedure, None),
                ("nurse", A::Discharge, None),
                ("nurse", A::RecordFollowUp, None),
            ],
            defer_days: None,
        },
        DemoCase {
            patient: DemoPatient {
                mrn: Some("MRN-103390"),
                family: "Mendez",
                given: "Carlos",
                dob: "1969-05-15",
                phone: "617-555-0117",
                email: None,
                lang: "es",
            },
            referrer: "referrer",
            code: "64483",
            name: "Lumbar transforaminal epidural steroid injection, L5-S1 left",
            days_ago: 7,
            steps: &[
                ("radiologist", A::Accept, None),
                (
                    "referrer",
                    A::Cancel,
                    Some("Symptoms resolved with physical therapy; injection no longer needed."),
                ),
            ],
            defer_days: None,
        },
    ]
}
