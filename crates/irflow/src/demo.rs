//! The demo department: users for every role, patients, and cases spread over the
//! pathway with realistic timelines, on a fresh embedded SQLite database, served
//! on loopback. Later features add their own demo content here.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use irflow_domain::pathway::TransitionRequest;
use irflow_domain::{Action, Actor, CaseId, Channel, ReferralForm, ReturnReason, Role, Username};
use irflow_server::auth;
use irflow_store::{NewReferral, NewUser, ReferralSubject, Store, UserRecord};
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
    ("radiologist2", "Dr. Marcus Webb", Role::Radiologist, None),
    ("radiologist3", "Dr. Sofia Alvarez", Role::Radiologist, None),
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
    // One "today" for all of the seeding, even when it runs across midnight.
    let today = jiff::Timestamp::now().to_zoned_datetime(tz.clone()).date();
    let summary = seed(&store, &tz, today).await?;
    seed_todays_list(&store, &tz, today).await?;
    let imaging = crate::demo_imaging::seed(&store, &config, today).await?;
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
    println!("  outside imaging: {imaging}");
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
    let pack = config.rule_pack()?;
    let planned = crate::outbox::plan_booked_reminders(&store, &config, &pack).await?;
    let (worker, outbox) = crate::outbox::start(&config, store.clone())?;
    println!("  {outbox}");
    println!(
        "  reminders planned for {planned} booked cases; sent messages appear as files in {}",
        config.outbox.file_dir(&config.data_dir).display()
    );
    // The DICOM receiver on a free loopback port, so storescu can send to the demo.
    let dicom = crate::dicom::DicomListener::bind(&crate::dicom::DicomConfig {
        enabled: true,
        port: 0,
        ..config.dicom.clone()
    })
    .await?;
    if let Some(d) = &dicom {
        println!("  DICOM: {}", d.describe());
    }
    println!("  stop with Ctrl-C");
    let served = crate::serve_on(listener, dicom, store, config.server_config(), pack).await;
    if let Some(worker) = worker {
        worker.stop().await;
    }
    served
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
    // The previous demo's image files and sent messages go with its database (only
    // in a directory the demo made: a folder of someone else's is never emptied).
    if dir.join(MARKER).exists() {
        for name in ["images", "outbox"] {
            let p = dir.join(name);
            if p.is_dir() {
                std::fs::remove_dir_all(&p)
                    .with_context(|| format!("could not remove {}", p.display()))?;
            }
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
    rules: &'a irflow_domain::screening::RulePack,
    tz: &'a jiff::tz::TimeZone,
    /// Sends what the pages send when a record is signed or a patient goes home.
    server: irflow_server::AppState,
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

struct DemoCase {
    /// The order as the referrer typed it.
    form: ReferralForm,
    referrer: &'static str,
    /// Who entered it and how.
    entered_by: &'static str,
    channel: Channel,
    /// Days before now that the referral arrived.
    days_ago: i64,
    /// The steps after referral: (who, action, reason).
    steps: &'static [(&'static str, Action, Option<&'static str>)],
    /// For a deferral step: days from today.
    defer_days: Option<i64>,
    /// Screening facts (JSON; `{d+N}`/`{d-N}` are dates relative to today). When
    /// given, the nurse's screening step records a real screening instead.
    screening: Option<&'static str>,
}

fn demo_facts(template: &str, today: jiff::civil::Date) -> String {
    let mut out = template.to_owned();
    for n in 0..=30i64 {
        for (sign, days) in [("+", n), ("-", -n)] {
            let key = format!("{{d{sign}{n}}}");
            if out.contains(&key) {
                out = out.replace(&key, &(today + jiff::Span::new().days(days)).to_string());
            }
        }
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn form(
    family: &str,
    given: &str,
    dob: &str,
    mrn: &str,
    phone: &str,
    email: &str,
    lang: &str,
    order: (&str, &str, &str, &str, &str),
) -> ReferralForm {
    let (procedure, levels, side, indication, icd10) = order;
    ReferralForm {
        family_name: family.into(),
        given_name: given.into(),
        date_of_birth: dob.into(),
        mrn: mrn.into(),
        phone: phone.into(),
        email: email.into(),
        preferred_language: lang.into(),
        procedure: procedure.into(),
        levels: levels.into(),
        side: side.into(),
        indication: indication.into(),
        icd10: icd10.into(),
        urgency: "routine".into(),
        ..ReferralForm::default()
    }
}

/// Fills an empty store with the demo department.
pub async fn seed(
    store: &Store,
    tz: &jiff::tz::TimeZone,
    today: jiff::civil::Date,
) -> Result<DemoSummary> {
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
    let rules = irflow_rules::default_pack()?;
    let server = crate::demo_day::server(store, tz, &rules)?;
    let demo = Demo {
        store,
        users,
        today,
        rules: &rules,
        tz,
        server,
    };
    // Two patients already on file with the same name and date of birth, so that one
    // demo referral shows the patient-match review.
    for mrn in ["MRN-088120", "MRN-091377"] {
        let twin = ReferralForm {
            mrn: mrn.into(),
            ..twin_form()
        };
        store
            .create_patient(
                &system,
                &twin
                    .patient(demo.today)
                    .map_err(|e| anyhow::anyhow!("{e}"))?,
            )
            .await?;
    }
    seed_resources(&demo, tz).await?;
    crate::demo_history::set_referrer_emails(store).await?;
    let catalogue = store.procedures().await?;
    let cases = demo_cases();
    for case in &cases {
        add_case(&demo, case, &catalogue).await?;
    }
    seed_waitlist_and_plans(&demo).await?;
    // Four weeks of procedures done, with records, discharges and follow-ups.
    let history = crate::demo_history::seed_history(store, tz, &rules, &demo.server).await?;
    Ok(DemoSummary {
        patients: cases.len() + 2 + history,
        cases: cases.len() + history,
    })
}

/// One site in New York: two fluoroscopy rooms and a CT room (Mon-Fri 08:00-16:00,
/// 10 minutes' turnaround), four recovery chairs (08:00-17:30), and three radiologists
/// with different skills and days.
async fn seed_resources(demo: &Demo<'_>, tz: &jiff::tz::TimeZone) -> Result<()> {
    use irflow_domain::Modality;
    use irflow_domain::scheduling::WeeklyWindow;
    use irflow_store::ResourceKind;
    use jiff::civil::{Weekday, time};
    let admin = demo.actor("admin")?;
    let store = demo.store;
    let site = store
        .create_site(
            &admin,
            "Main Campus IR",
            tz.iana_name().unwrap_or("America/New_York"),
        )
        .await?;
    let weekdays = [
        Weekday::Monday,
        Weekday::Tuesday,
        Weekday::Wednesday,
        Weekday::Thursday,
        Weekday::Friday,
    ];
    let window = |weekday, from: (i8, i8), to: (i8, i8)| WeeklyWindow {
        weekday,
        start: time(from.0, from.1, 0, 0),
        end: time(to.0, to.1, 0, 0),
    };
    for (name, modality) in [
        ("Fluoro 1", Modality::Fluoroscopy),
        ("Fluoro 2", Modality::Fluoroscopy),
        ("CT 1", Modality::Ct),
    ] {
        let room = store.create_room(&admin, site, name, modality, 10).await?;
        for d in weekdays {
            store
                .add_availability(&admin, ResourceKind::Room, room, window(d, (8, 0), (16, 0)))
                .await?;
        }
    }
    for i in 1..=4 {
        let chair = store
            .create_chair(&admin, site, &format!("Recovery chair {i}"))
            .await?;
        for d in weekdays {
            store
                .add_availability(
                    &admin,
                    ResourceKind::Chair,
                    chair,
                    window(d, (8, 0), (17, 30)),
                )
                .await?;
        }
    }
    let all = [
        "62321", "62323", "64479", "64483", "64490", "64493", "27096",
    ];
    let lumbar = ["62323", "64483", "64493", "27096"];
    let cervical = ["62321", "64479", "64490", "27096"];
    let plan: [(&str, &[&str], &[Weekday]); 3] = [
        ("radiologist", &all, &weekdays),
        (
            "radiologist2",
            &lumbar,
            &[Weekday::Monday, Weekday::Wednesday, Weekday::Friday],
        ),
        (
            "radiologist3",
            &cervical,
            &[Weekday::Tuesday, Weekday::Thursday],
        ),
    ];
    for (username, codes, days) in plan {
        let user = demo.user(username)?;
        store.set_credentials(&admin, user.id, codes).await?;
        for d in days {
            store
                .add_availability(
                    &admin,
                    ResourceKind::Radiologist,
                    user.id.get(),
                    window(*d, (8, 0), (16, 0)),
                )
                .await?;
        }
    }
    Ok(())
}

fn twin_form() -> ReferralForm {
    form(
        "Kim",
        "Grace",
        "1975-03-03",
        "",
        "617-555-0161",
        "",
        "ko",
        (
            "64493",
            "L4-L5, L5-S1",
            "bilateral",
            "Axial low back pain worse with extension; facet arthropathy on MRI.",
            "M47.816",
        ),
    )
}

async fn add_case(
    demo: &Demo<'_>,
    c: &DemoCase,
    catalogue: &[irflow_domain::Procedure],
) -> Result<CaseId> {
    let what = &c.form.family_name;
    let patient = c
        .form
        .patient(demo.today)
        .map_err(|e| anyhow::anyhow!("demo patient {what}: {e}"))?;
    let details = c
        .form
        .details(catalogue, demo.today)
        .map_err(|e| anyhow::anyhow!("demo referral {what}: {e}"))?;
    let referrer = demo.user(c.referrer)?;
    let mut at = Timestamp::now()
        - SignedDuration::from_hours(24 * c.days_ago)
        - SignedDuration::from_mins(37);
    let receipt = demo
        .store
        .submit_referral(
            &demo.actor(c.entered_by)?,
            &NewReferral {
                subject: ReferralSubject::New(patient),
                referrer: referrer.id,
                details,
                channel: c.channel,
            },
            at,
        )
        .await
        .with_context(|| format!("demo referral {what}"))?;
    let id = receipt.case;
    let span = SignedDuration::from_hours(24 * c.days_ago);
    let gap = span / i32::try_from(c.steps.len() + 1).unwrap_or(1);
    // When the procedure itself happened (for cases already done), its start time.
    let procedure_at = c
        .steps
        .iter()
        .position(|(_, a, _)| *a == Action::StartProcedure)
        .map(|k| at + gap * i32::try_from(k + 1).unwrap_or(1));
    for (who, action, reason) in c.steps {
        at += gap;
        if *action == Action::Schedule {
            book_demo_appointment(demo, id, who, procedure_at, at)
                .await
                .with_context(|| format!("demo booking {what}"))?;
            continue;
        }
        if let (Some(template), Action::MarkReady | Action::Defer | Action::AwaitAction) =
            (c.screening, action)
        {
            let body = demo_facts(template, demo.today);
            let detail = demo.store.case_detail(&demo.actor(who)?, id).await?;
            let facts = irflow_server::screening_json::parse_facts(
                body.as_bytes(),
                Some(&detail.case.procedure_code),
                demo.today,
            )
            .map_err(|e| anyhow::anyhow!("demo screening {what}: {e}"))?;
            let decision = irflow_domain::screening::evaluate(demo.rules, &facts, demo.tz)?;
            demo.store
                .record_screening(
                    &demo.actor(who)?,
                    id,
                    &irflow_store::NewScreening {
                        facts_json: irflow_server::screening_json::facts_json(&facts).to_string(),
                        decision_json: irflow_server::screening_json::decision_json(
                            &decision, demo.tz,
                        )
                        .to_string(),
                        decision: &decision,
                    },
                    at,
                    demo.today,
                )
                .await
                .with_context(|| format!("demo screening {what}"))?;
            continue;
        }
        if *action == Action::RecordFollowUp {
            // The follow-up call, with the patient's answers (demo_history.rs has more),
            // on the morning it fell due (the discharge is 45 minutes after the start).
            if let Some(p) = procedure_at {
                let discharged = (p + SignedDuration::from_mins(45))
                    .to_zoned_datetime(demo.tz.clone())
                    .date();
                let due = irflow_domain::procedure_record::follow_up_due(
                    discharged,
                    crate::demo_history::FOLLOW_UP_DAYS,
                );
                let morning = due
                    .to_datetime(jiff::civil::time(10, 15, 0, 0))
                    .to_zoned_datetime(demo.tz.clone())?
                    .timestamp();
                at = at.max(morning);
                anyhow::ensure!(
                    at <= Timestamp::now(),
                    "demo case {what}: the follow-up is not due until {due}"
                );
            }
            let answers = irflow_domain::procedure_record::FollowUpForm {
                pain_now: "2".into(),
                relief_percent: "75".into(),
                problems: String::new(),
            }
            .check()
            .map_err(|e| anyhow::anyhow!("demo follow-up {what}: {e}"))?;
            demo.store
                .record_follow_up(
                    &demo.actor(who)?,
                    id,
                    &answers,
                    demo.tz,
                    crate::demo_history::FOLLOW_UP_DAYS,
                    at,
                    demo.today,
                )
                .await
                .with_context(|| format!("demo case {what}: follow-up"))?;
            continue;
        }
        if let Some(p) = procedure_at
            && matches!(
                action,
                Action::CheckIn | Action::StartProcedure | Action::EndProcedure | Action::Discharge
            )
        {
            // A procedure already done: its day around the booked start (demo_day.rs).
            let start = Timestamp::from_second(p.as_second() - p.as_second().rem_euclid(300))?;
            let team =
                crate::demo_day::DayTeam::of(demo.store, "nurse", "radiologist", &demo.server)
                    .await?;
            let day = crate::demo_day::typical_day(
                start,
                false,
                demo.rules.policy.monitoring_minutes,
                Timestamp::MAX,
            );
            crate::demo_day::record_day(
                demo.store,
                demo.rules,
                &team,
                id,
                &day.only(*action),
                demo.tz,
            )
            .await
            .with_context(|| format!("demo case {what}: {action}"))?;
            continue;
        }
        let mut request = TransitionRequest::new(*action);
        request.reason = reason.map(str::to_owned);
        if *action == Action::Defer {
            request.deferred_until = c.defer_days.map(|d| demo.today + jiff::Span::new().days(d));
        }
        if *action == Action::Return {
            request.return_reason = Some(ReturnReason::ImagingNeededFirst);
        }
        demo.store
            .transition_case(&demo.actor(who)?, id, &request, None, at, demo.today)
            .await
            .with_context(|| format!("demo case {what}: {action}"))?;
    }
    Ok(id)
}

/// What the waitlist, preferences and plans look like in use: Chidi Okafor is booked
/// three weeks out and wants earlier; Elena Petrov's booking was cancelled, so her time
/// is on offer to him on the waitlist page. Rahman told the nurse which days suit him,
/// and the radiologist planned CT guidance without contrast for Layla Haddad (a prior
/// contrast reaction).
async fn seed_waitlist_and_plans(demo: &Demo<'_>) -> Result<()> {
    let store = demo.store;
    let case_of = |family: &'static str| async move {
        let found = store
            .list_cases(
                &Actor::system("demo"),
                &irflow_store::CaseFilter {
                    limit: Some(1000),
                    ..Default::default()
                },
            )
            .await?;
        found
            .into_iter()
            .find(|c| c.family_name == family)
            .map(|c| c.id)
            .with_context(|| format!("demo case {family}"))
    };
    let now = Timestamp::now();
    let scheduler = demo.actor("scheduler")?;
    let okafor = case_of("Okafor").await?;
    book_from(
        demo,
        okafor,
        "scheduler",
        demo.today + jiff::Span::new().days(21),
        now,
    )
    .await?;
    store
        .add_to_waitlist(
            &scheduler,
            okafor,
            "Pain is worse; can come at a day's notice.",
            now,
        )
        .await?;
    let petrov = case_of("Petrov").await?;
    store
        .cancel_appointment(
            &scheduler,
            petrov,
            "Patient has a family emergency and will call back.",
            now,
            demo.today,
        )
        .await?;
    let rahman = case_of("Rahman").await?;
    store
        .set_preferences(
            &demo.actor("nurse")?,
            rahman,
            &irflow_store::Preferences {
                days: vec![
                    jiff::civil::Weekday::Tuesday,
                    jiff::civil::Weekday::Thursday,
                ],
                time_of_day: Some(irflow_domain::scheduling::TimeOfDay::Morning),
                note: "Works afternoons; his brother drives him.".to_owned(),
            },
            now,
        )
        .await?;
    // Exceptions to the weekly hours: a room down for service next Wednesday
    // afternoon, a radiologist away next Thursday.
    let admin = demo.actor("admin")?;
    let site = store.default_site().await?.context("demo site")?;
    let next = |weekday: jiff::civil::Weekday| {
        let mut d = demo.today + jiff::Span::new().days(1);
        while d.weekday() != weekday {
            d += jiff::Span::new().days(1);
        }
        d
    };
    let at = |d: jiff::civil::Date, h: i8| -> Result<Timestamp> {
        Ok(d.to_datetime(jiff::civil::time(h, 0, 0, 0))
            .to_zoned_datetime(demo.tz.clone())?
            .timestamp())
    };
    let fluoro2 = store
        .rooms(site.id)
        .await?
        .into_iter()
        .find(|r| r.name == "Fluoro 2")
        .context("demo room Fluoro 2")?;
    let wednesday = next(jiff::civil::Weekday::Wednesday);
    store
        .add_closure(
            &admin,
            &irflow_store::NewClosure {
                kind: irflow_store::ResourceKind::Room,
                resource_id: fluoro2.id,
                start: at(wednesday, 12)?,
                end: at(wednesday, 16)?,
                reason: "Down for service: C-arm tube replacement".to_owned(),
            },
            true,
            now,
        )
        .await?;
    let thursday = next(jiff::civil::Weekday::Thursday);
    store
        .add_closure(
            &admin,
            &irflow_store::NewClosure {
                kind: irflow_store::ResourceKind::Radiologist,
                resource_id: demo.user("radiologist3")?.id.get(),
                start: at(thursday, 0)?,
                end: at(thursday + jiff::Span::new().days(1), 0)?,
                reason: "Away: teaching at the regional spine course".to_owned(),
            },
            true,
            now,
        )
        .await?;
    let haddad = case_of("Haddad").await?;
    store
        .set_case_plan(
            &demo.actor("radiologist")?,
            haddad,
            &irflow_store::CasePlan {
                guidance: Some(irflow_domain::Modality::Ct),
                contrast: Some(false),
                note: "Mild prior contrast reaction: CT guidance without contrast.".to_owned(),
            },
            now,
        )
        .await?;
    // George Sullivan takes apixaban; his cardiologist agreed to the hold, and he is
    // booked a week out, so his letters show his own last dose and restart times.
    let sullivan = case_of("Sullivan").await?;
    let nurse = demo.actor("nurse")?;
    let screening = store
        .latest_screening(&nurse, sullivan)
        .await?
        .context("demo screening Sullivan")?;
    let open: Vec<i64> = screening.open_actions().map(|a| a.id).collect();
    for action in open {
        store
            .complete_action(
                &nurse,
                sullivan,
                action,
                true,
                Some("Dr. Ellen Park, cardiology".to_owned()),
                Some("Agreed by phone to hold apixaban before the injection.".to_owned()),
                now,
                demo.today,
            )
            .await?;
    }
    book_from(
        demo,
        sullivan,
        "scheduler",
        demo.today + jiff::Span::new().days(7),
        now,
    )
    .await?;
    Ok(())
}

/// Today's list, so that the calendar and today's board show a working day from the
/// first start: on a weekday, five of the demo's ready patients across the rooms, each
/// as far through the day as the clock says (checked in, checklist, procedure,
/// recovery, discharge), except one who did not come. Run by `irflow demo` after
/// [`seed`] (tests seed without it, so that what they book today is theirs alone).
pub async fn seed_todays_list(
    store: &Store,
    tz: &jiff::tz::TimeZone,
    today: jiff::civil::Date,
) -> Result<()> {
    let rules = irflow_rules::default_pack()?;
    let mut users = Vec::new();
    for (username, ..) in DEMO_USERS {
        users.push(
            store
                .user_by_username(username)
                .await
                .with_context(|| format!("demo user {username}"))?,
        );
    }
    let server = crate::demo_day::server(store, tz, &rules)?;
    let demo = Demo {
        store,
        users,
        today,
        rules: &rules,
        tz,
        server,
    };
    seed_today(&demo).await
}

async fn seed_today(demo: &Demo<'_>) -> Result<()> {
    use irflow_domain::scheduling::{ChairOption, SlotOption};
    if matches!(
        demo.today.weekday(),
        jiff::civil::Weekday::Saturday | jiff::civil::Weekday::Sunday
    ) {
        return Ok(());
    }
    let store = demo.store;
    let site = store.default_site().await?.context("demo site")?;
    let rooms = store.rooms(site.id).await?;
    let chairs = store.chairs(site.id).await?;
    let scheduler = demo.actor("scheduler")?;
    let found = store
        .list_cases(
            &Actor::system("demo"),
            &irflow_store::CaseFilter {
                limit: Some(1000),
                ..Default::default()
            },
        )
        .await?;
    let now = Timestamp::now();
    // (patient, local start, or minutes from now, room, no-show?)
    let plan = [
        ("Fischer", (8, 0), -150, "Fluoro 1", false),
        ("Adeyemi", (9, 0), -90, "Fluoro 2", true),
        ("Rossi", (10, 30), -45, "Fluoro 1", false),
        ("Tanaka", (13, 0), 15, "CT 1", false),
        ("Walsh", (14, 30), 90, "Fluoro 2", false),
    ];
    // Times relative to now whenever the whole list fits in today, so that the day's
    // board is under way at any hour — one patient discharged, one in recovery with
    // monitoring time left, one arrived with the checklist begun; otherwise the
    // clinic's usual times, each patient as far along as the clock says.
    let anchor = Timestamp::from_second(now.as_second() - now.as_second().rem_euclid(300))?;
    let relative = [-170, 120].into_iter().all(|m| {
        (anchor + SignedDuration::from_mins(m))
            .to_zoned_datetime(demo.tz.clone())
            .date()
            == demo.today
    });
    let team = crate::demo_day::DayTeam::of(store, "nurse", "radiologist", &demo.server).await?;
    for (family, (h, m), offset, room_name, no_show) in plan {
        let case = found
            .iter()
            .find(|c| c.family_name == family)
            .with_context(|| format!("demo case {family}"))?;
        let room = rooms
            .iter()
            .find(|r| r.name == room_name)
            .with_context(|| format!("demo room {room_name}"))?;
        let start = if relative {
            anchor + SignedDuration::from_mins(offset)
        } else {
            demo.today
                .to_datetime(jiff::civil::time(h, m, 0, 0))
                .to_zoned_datetime(demo.tz.clone())?
                .timestamp()
        };
        let end = start + SignedDuration::from_mins(20);
        let chair = (family == "Rossi")
            .then(|| chairs.first().map(|(id, _)| *id))
            .flatten()
            .map(|chair| ChairOption {
                chair,
                start: end,
                end: end + SignedDuration::from_mins(60),
            });
        let option = SlotOption {
            start,
            end,
            room: room.id,
            radiologist: demo.user("radiologist")?.id.get(),
            chair,
        };
        let booked_at = now - SignedDuration::from_hours(24 * 3);
        store
            .book_appointment(
                &scheduler,
                case.id,
                &site,
                &option,
                room.turnaround_minutes,
                None,
                booked_at,
                demo.today,
            )
            .await
            .with_context(|| format!("demo booking today {family}"))?;
        if no_show {
            if start + SignedDuration::from_mins(30) < now {
                store
                    .transition_case(
                        &scheduler,
                        case.id,
                        &TransitionRequest::new(Action::RecordNoShow)
                            .because("Did not arrive; no answer on the phone.".to_owned()),
                        None,
                        start + SignedDuration::from_mins(30),
                        demo.today,
                    )
                    .await?;
            }
            continue;
        }
        // Rossi drives himself home: monitored in the recovery chair booked for him.
        let day = crate::demo_day::typical_day(
            start,
            family == "Rossi",
            demo.rules.policy.monitoring_minutes,
            now,
        );
        crate::demo_day::record_day(store, demo.rules, &team, case.id, &day, demo.tz)
            .await
            .with_context(|| format!("demo day today {family}"))?;
    }
    Ok(())
}

/// Books a real appointment: at the time the procedure happened for cases already
/// done, otherwise the earliest option from tomorrow that the slot finder offers.
async fn book_demo_appointment(
    demo: &Demo<'_>,
    id: CaseId,
    who: &str,
    procedure_at: Option<Timestamp>,
    at: Timestamp,
) -> Result<()> {
    let from = demo.today + jiff::Span::new().days(1);
    book_at(demo, id, who, procedure_at, from, at).await
}

/// Books the earliest option from a date.
async fn book_from(
    demo: &Demo<'_>,
    id: CaseId,
    who: &str,
    from: jiff::civil::Date,
    at: Timestamp,
) -> Result<()> {
    book_at(demo, id, who, None, from, at).await
}

async fn book_at(
    demo: &Demo<'_>,
    id: CaseId,
    who: &str,
    procedure_at: Option<Timestamp>,
    from: jiff::civil::Date,
    at: Timestamp,
) -> Result<()> {
    use irflow_domain::scheduling::{SlotOption, SlotRequest, find_slots};
    let store = demo.store;
    let site = store.default_site().await?.context("demo site")?;
    let scheduler = demo.actor(who)?;
    let detail = store.case_detail(&scheduler, id).await?;
    let procedure = store
        .procedures()
        .await?
        .into_iter()
        .find(|p| p.code == detail.case.procedure_code)
        .context("demo procedure")?;
    let rooms = store.rooms(site.id).await?;
    let option = match procedure_at {
        Some(t) => {
            let start = Timestamp::from_second(t.as_second() - t.as_second().rem_euclid(300))?;
            SlotOption {
                start,
                end: start + SignedDuration::from_mins(i64::from(procedure.duration_minutes)),
                room: rooms.first().context("demo room")?.id,
                radiologist: demo.user("radiologist")?.id.get(),
                chair: None,
            }
        }
        None => {
            // A patient without an escort gets a recovery chair, as the screening says.
            let monitoring_minutes = match store.latest_screening(&scheduler, id).await? {
                Some(r) => serde_json::from_str::<serde_json::Value>(&r.decision_json)?
                    ["monitoring_minutes"]
                    .as_u64()
                    .and_then(|m| u32::try_from(m).ok()),
                None => None,
            };
            let not_before = from.to_zoned_datetime(demo.tz.clone())?.timestamp();
            let res = store
                .slot_resources(
                    &site,
                    not_before - SignedDuration::from_hours(24),
                    not_before + SignedDuration::from_hours(24 * 40),
                )
                .await?;
            let req = SlotRequest {
                procedure: procedure.code.clone(),
                modalities: procedure.modalities.clone(),
                duration_minutes: u32::from(procedure.duration_minutes),
                not_before,
                from,
                days_ahead: 30,
                limit: 1,
                step_minutes: 10,
                monitoring_minutes,
                preferred_days: Vec::new(),
                preferred_time: None,
            };
            *find_slots(&res, &req).first().context("a demo slot")?
        }
    };
    let turnaround = rooms
        .iter()
        .find(|r| r.id == option.room)
        .map_or(0, |r| r.turnaround_minutes);
    store
        .book_appointment(
            &scheduler, id, &site, &option, turnaround, None, at, demo.today,
        )
        .await?;
    Ok(())
}

fn demo_cases() -> Vec<DemoCase> {
    use Action as A;
    let online =
        |form: ReferralForm,
         referrer: &'static str,
         days_ago: i64,
         steps: &'static [(&'static str, Action, Option<&'static str>)]| DemoCase {
            form,
            referrer,
            entered_by: referrer,
            channel: Channel::Online,
            days_ago,
            steps,
            defer_days: None,
            screening: None,
        };
    let haddad = form(
        "Haddad",
        "Layla",
        "1991-05-30",
        "MRN-104116",
        "617-555-0168",
        "layla.haddad@example.org",
        "ar",
        (
            "27096",
            "",
            "right",
            "Right sacroiliac joint pain after pregnancy, positive provocation tests.",
            "M53.3",
        ),
    );
    let mut garcia = form(
        "García López",
        "María",
        "1958-03-14",
        "MRN-100234",
        "617-555-0142",
        "maria.garcia@example.org",
        "es",
        (
            "64483",
            "L4-L5",
            "left",
            "Left L5 radiculopathy for 10 weeks despite physical therapy and NSAIDs; MRI shows L4-L5 foraminal stenosis.",
            "M54.16",
        ),
    );
    garcia.imaging_modality = "mri".into();
    garcia.imaging_date = "2026-10-02".into();
    garcia.imaging_place = "Back Bay Imaging".into();
    garcia.blood_thinners = "None known".into();
    let mut oconnor = form(
        "O'Connor",
        "James",
        "1971-11-02",
        "",
        "(617) 555-0199",
        "",
        "en",
        (
            "64493",
            "L5-S1",
            "bilateral",
            "Axial low back pain, worse with extension, for 6 months.",
            "M47.816",
        ),
    );
    oconnor.urgency = "urgent".into();
    let mut nguyen = form(
        "Nguyen",
        "Linh",
        "1964-06-21",
        "MRN-100871",
        "617-555-0107",
        "linh.nguyen@example.org",
        "vi",
        (
            "62323",
            "L5-S1",
            "bilateral",
            "Bilateral leg pain with neurogenic claudication; central stenosis at L5-S1.",
            "M48.062",
        ),
    );
    nguyen.imaging_modality = "mri".into();
    nguyen.imaging_date = "2026-09-15".into();
    let mut johnson = form(
        "Johnson",
        "Robert",
        "1949-01-30",
        "MRN-101502",
        "781-555-0164",
        "",
        "en",
        (
            "64479",
            "C6-C7",
            "right",
            "Right C7 radiculopathy with arm pain and triceps weakness, 6 weeks.",
            "M54.12",
        ),
    );
    johnson.blood_thinners = "Apixaban 5 mg twice daily (atrial fibrillation)".into();
    johnson.clinical_notes = "Cardiology follows him; please coordinate holding apixaban.".into();
    let mut sullivan = form(
        "Sullivan",
        "George",
        "1947-08-21",
        "MRN-104810",
        "617-555-0182",
        "george.sullivan@example.org",
        "en",
        (
            "64483",
            "L4-L5",
            "right",
            "Right L4 radiculopathy for 3 months despite physical therapy.",
            "M54.16",
        ),
    );
    sullivan.blood_thinners = "Apixaban 5 mg twice daily (atrial fibrillation)".into();
    let rahman = form(
        "Rahman",
        "Aisha",
        "1983-09-09",
        "MRN-102090",
        "617-555-0131",
        "aisha.rahman@example.org",
        "en",
        (
            "27096",
            "",
            "left",
            "Left sacroiliac joint pain, positive provocation tests.",
            "M53.3",
        ),
    );
    let mut cohen = form(
        "Cohen",
        "David",
        "1955-12-12",
        "MRN-102311",
        "617-555-0188",
        "d.cohen@example.org",
        "en",
        (
            "64483",
            "L5-S1",
            "right",
            "Right S1 radiculopathy after disc herniation, 8 weeks.",
            "M51.17",
        ),
    );
    cohen.imaging_modality = "ct".into();
    cohen.imaging_date = "2026-10-20".into();
    cohen.imaging_place = "Mass General Imaging Chelsea".into();
    let williams = form(
        "Williams",
        "Patricia",
        "1967-04-18",
        "MRN-102777",
        "508-555-0112",
        "",
        "en",
        (
            "64490",
            "C5-C6",
            "bilateral",
            "Chronic axial neck pain with facet arthropathy on MRI.",
            "M47.812",
        ),
    );
    let santos = form(
        "Santos",
        "Ana Paula",
        "1976-07-07",
        "MRN-103004",
        "617-555-0150",
        "ana.santos@example.org",
        "pt-BR",
        (
            "62321",
            "C7-T1",
            "left",
            "Left C8 radicular pain, 2 months.",
            "M54.13",
        ),
    );
    let chen = form(
        "Chen",
        "Wei",
        "1990-02-25",
        "",
        "617-555-0176",
        "",
        "zh",
        (
            "64483",
            "L3-L4",
            "left",
            "Left anterior thigh pain, suspected L3 radiculopathy.",
            "",
        ),
    );
    let brown = form(
        "Brown",
        "Thomas",
        "1952-08-03",
        "MRN-099812",
        "617-555-0125",
        "",
        "en",
        (
            "64493",
            "L4-L5",
            "bilateral",
            "Lumbar facet pain, good response to diagnostic block last year.",
            "M47.816",
        ),
    );
    let miller = form(
        "Miller",
        "Susan",
        "1960-10-27",
        "MRN-098455",
        "978-555-0139",
        "susan.miller@example.org",
        "en",
        (
            "64483",
            "L4-L5",
            "right",
            "Right L4 radiculopathy, 3 months.",
            "M54.16",
        ),
    );
    let mendez = form(
        "Mendez",
        "Carlos",
        "1969-05-15",
        "MRN-103390",
        "617-555-0117",
        "",
        "es",
        ("64483", "L5-S1", "left", "Left S1 radiculopathy.", "M54.17"),
    );
    let kim = twin_form();
    let okafor = form(
        "Okafor",
        "Chidi",
        "1971-01-19",
        "MRN-104522",
        "617-555-0193",
        "chidi.okafor@example.org",
        "en",
        (
            "64483",
            "L4-L5",
            "left",
            "Left L5 radiculopathy, 10 weeks, failed physical therapy.",
            "M54.16",
        ),
    );
    let petrov = form(
        "Petrov",
        "Elena",
        "1964-06-02",
        "MRN-104601",
        "617-555-0144",
        "",
        "ru",
        (
            "64493",
            "L4-L5",
            "bilateral",
            "Lumbar facet pain, worse with extension.",
            "M47.816",
        ),
    );
    let today_forms = [
        (
            "Fischer",
            "Hannah",
            "1968-02-11",
            "MRN-104701",
            "64483",
            "L5-S1",
            "right",
        ),
        (
            "Adeyemi",
            "Tunde",
            "1959-09-30",
            "MRN-104702",
            "64493",
            "L4-L5",
            "bilateral",
        ),
        (
            "Rossi",
            "Marco",
            "1972-12-05",
            "MRN-104703",
            "62323",
            "L4-L5",
            "left",
        ),
        (
            "Tanaka",
            "Yuki",
            "1980-04-22",
            "MRN-104704",
            "64483",
            "L4-L5",
            "left",
        ),
        (
            "Walsh",
            "Brigid",
            "1957-07-14",
            "MRN-104705",
            "27096",
            "",
            "right",
        ),
    ];
    let mut todays: Vec<DemoCase> = today_forms
        .iter()
        .map(|(family, given, dob, mrn, code, levels, side)| DemoCase {
            screening: Some(if *family == "Rossi" {
                r#"{"escort_available":false}"#
            } else {
                r#"{"escort_available":true}"#
            }),
            ..online(
                form(
                    family,
                    given,
                    dob,
                    mrn,
                    "617-555-0100",
                    "",
                    "en",
                    (
                        code,
                        levels,
                        side,
                        "Radicular or joint pain, failed conservative care.",
                        "",
                    ),
                ),
                "referrer",
                9,
                &[
                    ("radiologist", A::Accept, None),
                    ("nurse", A::MarkReady, None),
                ],
            )
        })
        .collect();
    let mut cases = vec![
        online(garcia, "referrer", 0, &[]),
        DemoCase {
            channel: Channel::Phone,
            entered_by: "scheduler",
            ..online(oconnor, "referrer2", 1, &[])
        },
        DemoCase {
            defer_days: Some(13),
            screening: Some(
                r#"{"antibiotics":[{"reason":"active_infection","last_dose":"{d+3}"}],"escort_available":true,"symptoms":"moderate"}"#,
            ),
            ..online(
                nguyen,
                "referrer2",
                4,
                &[
                    ("radiologist", A::Accept, None),
                    (
                        "nurse",
                        A::Defer,
                        Some(
                            "Taking antibiotics for a urinary tract infection; last dose expected in 3 days. The 10-day window applies.",
                        ),
                    ),
                ],
            )
        },
        online(
            johnson,
            "referrer2",
            5,
            &[
                ("radiologist", A::Accept, None),
                (
                    "nurse",
                    A::AwaitAction,
                    Some(
                        "Takes apixaban for atrial fibrillation; waiting for the cardiologist to confirm it is safe to hold.",
                    ),
                ),
            ],
        ),
        online(rahman, "referrer", 3, &[("radiologist", A::Accept, None)]),
        DemoCase {
            screening: Some(
                r#"{"medications":[{"drug":"apixaban","indication":"atrial fibrillation"}],"escort_available":true,"symptoms":"mild"}"#,
            ),
            ..online(
                sullivan,
                "referrer",
                6,
                &[
                    ("radiologist", A::Accept, None),
                    (
                        "nurse",
                        A::AwaitAction,
                        Some("Takes apixaban; asked his cardiologist about holding it."),
                    ),
                ],
            )
        },
        DemoCase {
            screening: Some(
                r#"{"medications":[{"drug":"ibuprofen","indication":"back pain"}],"diabetes":{"insulin":false},"escort_available":true,"symptoms":"mild"}"#,
            ),
            ..online(
                cohen,
                "referrer",
                6,
                &[
                    ("radiologist", A::Accept, None),
                    ("nurse", A::MarkReady, None),
                ],
            )
        },
        DemoCase {
            screening: Some(
                r#"{"pregnancy_possible":true,"escort_available":false,"contrast_allergy":{"severity":"mild"}}"#,
            ),
            ..online(
                haddad,
                "referrer",
                2,
                &[
                    ("radiologist", A::Accept, None),
                    ("nurse", A::AwaitAction, None),
                ],
            )
        },
        DemoCase {
            channel: Channel::Fhir,
            ..online(
                williams,
                "referrer2",
                8,
                &[
                    ("radiologist", A::Accept, None),
                    ("nurse", A::MarkReady, None),
                    ("scheduler", A::Schedule, None),
                ],
            )
        },
        online(
            santos,
            "referrer",
            9,
            &[
                ("radiologist", A::Accept, None),
                ("nurse", A::MarkReady, None),
                ("scheduler", A::Schedule, None),
                ("scheduler", A::Confirm, None),
            ],
        ),
        online(
            chen,
            "referrer2",
            2,
            &[(
                "radiologist",
                A::Return,
                Some("Please send the most recent MRI or CT of the lumbar spine; none is on file."),
            )],
        ),
        online(
            brown,
            "referrer",
            12,
            &[
                ("radiologist", A::Accept, None),
                ("nurse", A::MarkReady, None),
                ("scheduler", A::Schedule, None),
                ("scheduler", A::Confirm, None),
                ("nurse", A::CheckIn, None),
                ("radiologist", A::StartProcedure, None),
                ("radiologist", A::EndProcedure, None),
                ("nurse", A::Discharge, None),
            ],
        ),
        // Long enough ago for the follow-up to have fallen due (two weeks after).
        online(
            miller,
            "referrer2",
            40,
            &[
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
        ),
        online(
            mendez,
            "referrer",
            7,
            &[
                ("radiologist", A::Accept, None),
                (
                    "referrer",
                    A::Cancel,
                    Some("Symptoms resolved with physical therapy; injection no longer needed."),
                ),
            ],
        ),
        online(kim, "referrer", 0, &[]),
        DemoCase {
            screening: Some(r#"{"escort_available":true,"symptoms":"moderate"}"#),
            ..online(
                okafor,
                "referrer",
                5,
                &[
                    ("radiologist", A::Accept, None),
                    ("nurse", A::MarkReady, None),
                ],
            )
        },
        DemoCase {
            screening: Some(r#"{"escort_available":false}"#),
            ..online(
                petrov,
                "referrer2",
                4,
                &[
                    ("radiologist", A::Accept, None),
                    ("nurse", A::MarkReady, None),
                    ("scheduler", A::Schedule, None),
                ],
            )
        },
    ];
    cases.append(&mut todays);
    cases
}
