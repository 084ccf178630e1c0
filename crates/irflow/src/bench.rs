//! Benchmarks (see docs/BENCHMARKS.md).
//!
//! `irflow bench slots`: how fast the slot finder answers with a year of bookings.
//! Synthetic and in-process (no database): 8 rooms, 10 radiologists, 4 chairs,
//! weekday hours, about 50,000 appointments over a year; then many slot searches
//! for cases with random earliest safe dates. Prints p50/p99/max.
//!
//! `irflow bench scheduling` (in [`scheduling`]): the same department in a real
//! database, searched in-process and over HTTP, and booked by concurrent clients.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use irflow_domain::pathway::TransitionRequest;
use irflow_domain::scheduling::{
    BusyIndex, ChairInfo, Interval, RadiologistInfo, ResourceId, RoomInfo, SlotOption, SlotRequest,
    SlotResources, WeeklyWindow, find_slots,
};
use irflow_domain::{Action, Actor, Channel, Modality, ReferralForm, Role, UserId, Username};
use irflow_server::auth;
use irflow_store::bench_support::{
    BenchAppointment, BenchCase, bench_create_postgres, bench_drop_postgres,
};
use irflow_store::{NewReferral, NewScreening, NewUser, ReferralSubject, SiteRecord, Store};
use jiff::civil::{Date, Weekday, time};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Span, Timestamp};

use crate::cli::BenchSchedulingArgs;

/// Runs the benchmark and prints a report.
pub fn slots(appointments: usize, searches: usize) -> Result<()> {
    let tz = jiff::tz::TimeZone::get("America/New_York")?;
    let weekdays = [
        Weekday::Monday,
        Weekday::Tuesday,
        Weekday::Wednesday,
        Weekday::Thursday,
        Weekday::Friday,
    ];
    let hours = |from: i8, to: i8| -> Vec<WeeklyWindow> {
        weekdays
            .iter()
            .map(|d| WeeklyWindow {
                weekday: *d,
                start: time(from, 0, 0, 0),
                end: time(to, 0, 0, 0),
            })
            .collect()
    };
    let codes = [
        "62321", "62323", "64479", "64483", "64490", "64493", "27096",
    ];
    let rooms: Vec<RoomInfo> = (1..=8)
        .map(|id| RoomInfo {
            id,
            modality: if id <= 6 {
                Modality::Fluoroscopy
            } else {
                Modality::Ct
            },
            turnaround_minutes: 10,
            windows: hours(8, 16),
        })
        .collect();
    let radiologists: Vec<RadiologistInfo> = (1..=10)
        .map(|id| RadiologistInfo {
            id: 100 + id,
            procedures: codes
                .iter()
                .enumerate()
                .filter(|(i, _)| !(i + id as usize).is_multiple_of(3))
                .map(|(_, c)| (*c).to_owned())
                .collect(),
            windows: hours(8, 16),
        })
        .collect();
    let chairs: Vec<ChairInfo> = (1..=4)
        .map(|id| ChairInfo {
            id: 1000 + id,
            windows: hours(8, 18),
        })
        .collect();
    let start_day = jiff::civil::date(2026, 1, 5);
    let mut busy = BusyIndex::new();
    // Fill a year of weekdays densely: each booking 20 minutes + 10 turnaround.
    let mut rng: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut placed = 0;
    let mut day = start_day;
    while placed < appointments {
        if weekdays.contains(&day.weekday()) {
            let open = day
                .to_datetime(time(8, 0, 0, 0))
                .to_zoned_datetime(tz.clone())?
                .timestamp();
            for slot in 0..24 {
                for room in &rooms {
                    if placed >= appointments || next() % 100 < 15 {
                        continue;
                    }
                    let start = open + SignedDuration::from_mins(slot * 20);
                    let rad = &radiologists[(next() % 10) as usize];
                    busy.add(
                        ResourceId::Room(room.id),
                        Interval {
                            start,
                            end: start + SignedDuration::from_mins(30),
                        },
                    );
                    busy.add(
                        ResourceId::Radiologist(rad.id),
                        Interval {
                            start,
                            end: start + SignedDuration::from_mins(20),
                        },
                    );
                    placed += 1;
                }
            }
        }
        day = day.checked_add(Span::new().days(1))?;
    }
    let res = SlotResources {
        tz: tz.clone(),
        rooms,
        radiologists,
        chairs,
        busy,
        closed: BusyIndex::new(),
    };
    let mut times = Vec::with_capacity(searches);
    let mut found = 0usize;
    for i in 0..searches {
        let offset = i64::try_from(next() % 330)?;
        let from = start_day.checked_add(Span::new().days(offset))?;
        let req = SlotRequest {
            procedure: codes[i % codes.len()].to_owned(),
            modalities: vec![Modality::Fluoroscopy, Modality::Ct],
            duration_minutes: 20,
            not_before: from.to_zoned_datetime(tz.clone())?.timestamp(),
            from,
            days_ahead: 60,
            limit: 10,
            step_minutes: 10,
            monitoring_minutes: (i % 3 == 0).then_some(60),
            preferred_days: Vec::new(),
            preferred_time: None,
        };
        let t = Instant::now();
        let slots = find_slots(&res, &req);
        times.push(t.elapsed());
        found += slots.len();
    }
    times.sort();
    let pct = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)];
    println!(
        "slot finder, in-process: {placed} appointments over 8 rooms and 10 radiologists, {searches} searches (10 options each)"
    );
    println!(
        "  p50 {:?}  p99 {:?}  max {:?}  ({found} options found)",
        pct(0.50),
        pct(0.99),
        times[times.len() - 1]
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// irflow bench scheduling
// ---------------------------------------------------------------------------

/// The procedures (CPT) of the catalogue, with an order for each that the referral
/// form accepts: levels, side, indication, ICD-10.
const ORDERS: [(&str, &str, &str, &str, &str); 7] = [
    (
        "62321",
        "C7-T1",
        "left",
        "Left C8 radicular pain, 2 months.",
        "M54.13",
    ),
    (
        "62323",
        "L5-S1",
        "bilateral",
        "Bilateral leg pain with neurogenic claudication.",
        "M48.062",
    ),
    (
        "64479",
        "C6-C7",
        "right",
        "Right C7 radiculopathy, 6 weeks.",
        "M54.12",
    ),
    (
        "64483",
        "L4-L5",
        "left",
        "Left L5 radiculopathy despite physical therapy.",
        "M54.16",
    ),
    (
        "64490",
        "C5-C6",
        "bilateral",
        "Chronic axial neck pain with facet arthropathy.",
        "M47.812",
    ),
    (
        "64493",
        "L4-L5",
        "bilateral",
        "Lumbar facet pain, worse with extension.",
        "M47.816",
    ),
    (
        "27096",
        "",
        "right",
        "Right sacroiliac joint pain, positive provocation tests.",
        "M53.3",
    ),
];

const FAMILY_NAMES: [&str; 24] = [
    "Adams", "Baker", "Clark", "Davis", "Evans", "Foster", "Garcia", "Hughes", "Ito", "Jensen",
    "Khan", "Lopez", "Murphy", "Nakamura", "Okafor", "Perez", "Quinn", "Reyes", "Silva", "Turner",
    "Ueda", "Vargas", "Walsh", "Young",
];
const GIVEN_NAMES: [&str; 16] = [
    "Alice", "Ben", "Carmen", "Daniel", "Elena", "Farah", "George", "Hana", "Ivan", "Julia",
    "Kofi", "Lena", "Mateo", "Nadia", "Omar", "Priya",
];

/// Most bookings a run makes: each needs a ready case, seeded through the real
/// referral, vetting and screening path.
const MAX_BOOKINGS: usize = 20_000;
/// Most concurrent booking clients.
const MAX_CLIENTS: usize = 1_024;
/// Most searches per run.
const MAX_SEARCHES: usize = 1_000_000;
/// Clients for the concurrent slot-search figure.
const SEARCH_CLIENTS: usize = 8;
/// Procedure length (every catalogue procedure takes 20 minutes).
const PROCEDURE_MINUTES: i64 = 20;
/// Room turnaround.
const TURNAROUND_MINUTES: u32 = 10;
/// Half-hour slots per room and day (08:00-16:00) in the seeded history.
const SLOTS_PER_DAY: usize = 16;
/// Days ahead the slot finder looks (as the API does).
const DAYS_AHEAD: u32 = 60;
/// Searches and bookings ask from a random date within this many days.
const SEARCH_SPREAD_DAYS: u64 = 300;
/// The bare inserts go this far after the bookings they copy (whole weeks, beyond any data).
const RAW_SHIFT_DAYS: i64 = 7 * 104;

/// A small deterministic generator (xorshift), so runs are comparable.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % (n.max(1) as u64)).unwrap_or(0)
    }
}

/// p50, p99, max and mean of a set of timings.
#[derive(Debug, Clone, Copy, Default)]
struct Stats {
    n: usize,
    p50: Duration,
    p99: Duration,
    max: Duration,
    mean: Duration,
}

impl Stats {
    fn of(times: &[Duration]) -> Self {
        if times.is_empty() {
            return Self::default();
        }
        let mut t = times.to_vec();
        t.sort();
        let pct = |p: f64| t[((t.len() as f64 * p) as usize).min(t.len() - 1)];
        let total: Duration = t.iter().sum();
        Self {
            n: t.len(),
            p50: pct(0.50),
            p99: pct(0.99),
            max: t[t.len() - 1],
            mean: total / u32::try_from(t.len()).unwrap_or(u32::MAX),
        }
    }

    fn line(&self) -> String {
        format!(
            "p50 {}  p99 {}  max {}  mean {}",
            ms(self.p50),
            ms(self.p99),
            ms(self.max),
            ms(self.mean)
        )
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn per_second(n: usize, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64().max(1e-9)
}

/// The department as seeded.
#[derive(Debug, Clone)]
struct Department {
    tz: TimeZone,
    site: SiteRecord,
    rooms: Vec<i64>,
    /// (user id, credentialed procedures, working weekdays)
    radiologists: Vec<(i64, Vec<&'static str>, Vec<jiff::civil::Weekday>)>,
    chairs: Vec<i64>,
    scheduler_id: UserId,
    nurse: Actor,
    vetting_radiologist: Actor,
    referrer: Actor,
    referrer_id: UserId,
}

/// A ready case: its id, procedure, and whether screening asks for monitoring.
#[derive(Debug, Clone, Copy)]
struct ReadyCase {
    id: i64,
    procedure: &'static str,
    monitoring: Option<u32>,
}

/// One search: a case and the date it asks from.
#[derive(Debug, Clone, Copy)]
struct Search {
    case: ReadyCase,
    from: Date,
}

/// What one backend's run measured, for the summary.
#[derive(Debug, Clone)]
struct Report {
    backend: &'static str,
    inproc: Stats,
    http: Stats,
    http_conc_rate: f64,
    booked: usize,
    booking_time: Duration,
    raw_ok: usize,
    raw_rows: u64,
    raw_time: Duration,
}

impl Report {
    fn booking_rate(&self) -> f64 {
        per_second(self.booked, self.booking_time)
    }

    fn raw_rate(&self) -> f64 {
        per_second(self.raw_ok, self.raw_time)
    }

    fn raw_rows_rate(&self) -> f64 {
        self.raw_rows as f64 / self.raw_time.as_secs_f64().max(1e-9)
    }
}

/// Runs `irflow bench scheduling`: SQLite always, PostgreSQL too when a URL is given.
pub async fn scheduling(args: BenchSchedulingArgs, database_url: Option<String>) -> Result<()> {
    if args.searches == 0 || args.searches > MAX_SEARCHES {
        bail!("--searches must be 1-{MAX_SEARCHES}");
    }
    if args.bookings == 0 || args.bookings > MAX_BOOKINGS {
        bail!(
            "--bookings must be 1-{MAX_BOOKINGS} (each booking needs a ready case, seeded through the real referral and screening path)"
        );
    }
    if args.clients == 0 || args.clients > MAX_CLIENTS {
        bail!("--clients must be 1-{MAX_CLIENTS}");
    }
    let postgres = match database_url {
        None => None,
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            Some(url)
        }
        Some(_) => bail!(
            "--database-url: give a postgres://... URL to run on PostgreSQL as well (a fresh database is created next to the one it names and dropped afterwards); SQLite always runs on a fresh temporary file"
        ),
    };
    let tz = TimeZone::get("America/New_York")?;
    // Before touching any database: does the history fit?
    let today = Timestamp::now().to_zoned_datetime(tz.clone()).date();
    let capacity = history_capacity(today)?;
    if args.appointments > capacity / 10 * 9 {
        bail!(
            "--appointments {} does not fit: two years of 8 rooms hold {capacity} half-hour bookings; at most {} (90%)",
            args.appointments,
            capacity / 10 * 9
        );
    }
    // The server's request and error logs would drown the report.
    crate::init_logging(crate::config::LogFormat::Pretty, "error");
    println!(
        "irflow bench scheduling: {} appointments, {} searches, {} bookings by {} clients",
        args.appointments, args.searches, args.bookings, args.clients
    );
    println!("  machine: {}", machine());
    let mut reports = Vec::new();
    reports.push(on_sqlite(&args).await.context("SQLite run")?);
    if let Some(url) = postgres {
        reports.push(on_postgres(&args, &url).await.context("PostgreSQL run")?);
    }
    println!();
    println!("summary");
    println!(
        "| backend | slots in-process p50 / p99 | slots HTTP p50 / p99 | HTTP {SEARCH_CLIENTS} clients | bookings/s ({} clients) | raw inserts/s (rows/s) | booking / raw |",
        args.clients
    );
    println!("|---|---|---|---|---|---|---|");
    for r in &reports {
        println!(
            "| {} | {} / {} | {} / {} | {:.0} req/s | {:.0} | {:.0} ({:.0}) | {:.2} |",
            r.backend,
            ms(r.inproc.p50),
            ms(r.inproc.p99),
            ms(r.http.p50),
            ms(r.http.p99),
            r.http_conc_rate,
            r.booking_rate(),
            r.raw_rate(),
            r.raw_rows_rate(),
            r.booking_rate() / r.raw_rate().max(1e-9),
        );
    }
    Ok(())
}

fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    format!(
        "{cores} cores, {model}, {} {}, release build: {}",
        std::env::consts::OS,
        std::env::consts::ARCH,
        if cfg!(debug_assertions) { "no" } else { "yes" }
    )
}

/// A temporary directory removed when dropped.
#[derive(Debug)]
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn on_sqlite(args: &BenchSchedulingArgs) -> Result<Report> {
    let now = Timestamp::now();
    let dir = TempDir(std::env::temp_dir().join(format!(
        "irflow-bench-{}-{}{:06}",
        std::process::id(),
        now.as_second(),
        now.subsec_microsecond()
    )));
    std::fs::create_dir_all(&dir.0)
        .with_context(|| format!("could not create {}", dir.0.display()))?;
    let url = format!("sqlite://{}?mode=rwc", dir.0.join("irflow.db").display());
    println!();
    println!("SQLite (temporary file in {})", dir.0.display());
    let store = Store::open(&url)
        .await
        .context("could not create the SQLite database")?;
    let result = run(&store, args, "SQLite").await;
    store.close().await;
    drop(dir);
    result
}

async fn on_postgres(args: &BenchSchedulingArgs, admin_url: &str) -> Result<Report> {
    let (url, name) = bench_create_postgres(admin_url)
        .await
        .context("could not create a PostgreSQL database for the benchmark")?;
    println!();
    println!("PostgreSQL (fresh database {name}, dropped afterwards)");
    let result = async {
        let store = Store::open(&url)
            .await
            .context("could not open the PostgreSQL database")?;
        let r = run(&store, args, "PostgreSQL").await;
        store.close().await;
        r
    }
    .await;
    if let Err(e) = bench_drop_postgres(admin_url, &name).await {
        eprintln!("irflow: could not drop the benchmark database {name}: {e}");
    }
    result
}

/// Seeds, measures and reports on one store.
async fn run(store: &Store, args: &BenchSchedulingArgs, backend: &'static str) -> Result<Report> {
    let tz = TimeZone::get("America/New_York")?;
    let started = Instant::now();
    let dept = seed_department(store, &tz).await?;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (seed_appointments, seed_reservations) =
        seed_history(store, &dept, args.appointments, &mut rng).await?;
    let ready = seed_ready_cases(store, &dept, args.bookings, backend).await?;
    let seed_time = started.elapsed();
    println!(
        "  seeded in {:.1} s: {seed_appointments} appointments ({seed_reservations} reservation rows) over the past and coming year, {} ready cases (screened through the real path)",
        seed_time.as_secs_f64(),
        ready.len()
    );

    let today = Timestamp::now().to_zoned_datetime(tz.clone()).date();
    let searches: Vec<Search> = (0..args.searches)
        .map(|_| {
            let case = ready[rng.below(ready.len())];
            let offset = 1 + (rng.next() % SEARCH_SPREAD_DAYS) as i64;
            Ok(Search {
                case,
                from: today.checked_add(Span::new().days(offset))?,
            })
        })
        .collect::<Result<_>>()?;

    // 1. In-process: the store's search, as the API runs it (`Store::search_slots`: the
    //    configuration, then bookings a few days at a time from the first day searched).
    let catalogue = store.procedures().await?;
    let mut load_times = Vec::with_capacity(searches.len());
    let mut find_times = Vec::with_capacity(searches.len());
    let mut total_times = Vec::with_capacity(searches.len());
    let mut inproc_options = 0;
    let mut inproc_offered = Vec::with_capacity(searches.len());
    for (i, s) in searches.iter().enumerate() {
        let req = search_request(&catalogue, s, 10)?;
        // The whole-horizon load, timed apart, shows what the search avoids.
        let t = Instant::now();
        let res = load_horizon(store, &dept, &req).await?;
        let loaded = t.elapsed();
        let whole = find_slots(&res, &req);
        let finding = t.elapsed() - loaded;
        let t = Instant::now();
        let found = store.search_slots(&dept.site, &req, None).await?;
        let total = t.elapsed();
        anyhow::ensure!(
            found == whole,
            "search_slots and a whole-horizon search disagree for {:?}",
            s.from
        );
        if i >= warmup(searches.len()) || searches.len() <= warmup(searches.len()) {
            load_times.push(loaded);
            find_times.push(finding);
            total_times.push(total);
        }
        inproc_options += found.len();
        inproc_offered.push(found.iter().map(offered).collect::<Vec<_>>());
    }
    let (inproc, inproc_load, inproc_find) = (
        Stats::of(&total_times),
        Stats::of(&load_times),
        Stats::of(&find_times),
    );
    println!(
        "  slots in-process (Store::search_slots, {DAYS_AHEAD}-day horizon), {} searches: {}",
        inproc.n,
        inproc.line()
    );
    println!(
        "    for comparison, loading the whole horizon at once: {}",
        inproc_load.line()
    );
    println!(
        "    and finding in it (domain only):                   {}",
        inproc_find.line()
    );
    println!(
        "    {inproc_options} options found ({:.1} per search)",
        inproc_options as f64 / searches.len() as f64
    );

    // 2. The real server on a real port.
    irflow_server::init_metrics();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let state = irflow_server::AppState::new(
        store.clone(),
        irflow_server::ServerConfig {
            cookie_secure: false,
            ..Default::default()
        },
        irflow_rules::default_pack()?,
    )
    .map_err(anyhow::Error::msg)?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        irflow_server::serve(listener, state, async {
            let _ = stopped.await;
        })
        .await
    });
    let token = auth::new_secret("irf_");
    store
        .issue_api_token(
            &Actor::system("bench"),
            dept.scheduler_id,
            &auth::secret_hash(&token),
            "bench",
        )
        .await?;
    let result = over_http(
        store,
        &dept,
        args,
        (&base, &token),
        (&searches, &inproc_offered),
        &ready,
        &mut rng,
    )
    .await;
    let _ = stop.send(());
    match server.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => eprintln!("irflow: the benchmark server stopped with an error: {e}"),
        Err(e) => eprintln!("irflow: the benchmark server failed: {e}"),
    }
    let h = result?;
    Ok(Report {
        backend,
        inproc,
        http: h.http,
        http_conc_rate: h.http_conc_rate,
        booked: h.booked,
        booking_time: h.booking_time,
        raw_ok: h.raw_ok,
        raw_rows: h.raw_rows,
        raw_time: h.raw_time,
    })
}

fn warmup(n: usize) -> usize {
    (n / 20).min(20)
}

/// What the slots endpoint asks the finder for this case, as `request_for` builds
/// it: the catalogue's guidance and length, the screening's monitoring, the
/// earliest safe time (now, for these clear screenings), no preferences.
fn search_request(
    catalogue: &[irflow_domain::Procedure],
    s: &Search,
    limit: usize,
) -> Result<SlotRequest> {
    let procedure = catalogue
        .iter()
        .find(|p| p.code == s.case.procedure)
        .context("procedure in the catalogue")?;
    Ok(SlotRequest {
        procedure: procedure.code.clone(),
        modalities: procedure.modalities.clone(),
        duration_minutes: u32::from(procedure.duration_minutes),
        not_before: Timestamp::now(),
        from: s.from,
        days_ahead: DAYS_AHEAD,
        limit,
        step_minutes: 10,
        monitoring_minutes: s.case.monitoring,
        preferred_days: Vec::new(),
        preferred_time: None,
    })
}

/// The store's resources for the horizon a request searches, as the API's
/// `find_in` loads them (a day before to two after), but from the first day
/// searched rather than from `not_before` (see docs/BENCHMARKS.md).
async fn load_horizon(
    store: &Store,
    dept: &Department,
    req: &SlotRequest,
) -> Result<irflow_domain::scheduling::SlotResources> {
    let first = req
        .from
        .to_zoned_datetime(dept.tz.clone())?
        .timestamp()
        .max(req.not_before);
    Ok(store
        .slot_resources(
            &dept.site,
            first - SignedDuration::from_hours(24),
            first + SignedDuration::from_hours(24 * i64::from(req.days_ahead + 2)),
        )
        .await?)
}

/// What the HTTP half (and the bare inserts) measured.
#[derive(Debug)]
struct HttpResults {
    http: Stats,
    http_conc_rate: f64,
    booked: usize,
    booking_time: Duration,
    raw_ok: usize,
    raw_rows: u64,
    raw_time: Duration,
}

async fn over_http(
    store: &Store,
    dept: &Department,
    args: &BenchSchedulingArgs,
    (base, token): (&str, &str),
    (searches, inproc_offered): (&[Search], &[Vec<Offered>]),
    ready: &[ReadyCase],
    rng: &mut Rng,
) -> Result<HttpResults> {
    // 2a. Sequential slot searches from one client.
    let client = reqwest::Client::new();
    let mut times = Vec::with_capacity(searches.len());
    let mut offers = Vec::with_capacity(searches.len());
    let mut http_options = 0;
    let mut http_errors = 0;
    let mut first_error: Option<String> = None;
    for (i, s) in searches.iter().enumerate() {
        let t = Instant::now();
        let outcome = get_slots(&client, base, token, s).await;
        let elapsed = t.elapsed();
        if i >= warmup(searches.len()) || searches.len() <= warmup(searches.len()) {
            times.push(elapsed);
        }
        match outcome {
            Ok(found) => {
                http_options += found.len();
                offers.push(found);
            }
            Err(e) => {
                http_errors += 1;
                offers.push(Vec::new());
                first_error.get_or_insert(e);
            }
        }
    }
    let http = Stats::of(&times);
    println!(
        "  slots through HTTP (GET /api/v1/cases/{{id}}/slots, one client, sequential), {} requests: {}",
        http.n,
        http.line()
    );
    println!(
        "    {http_options} options returned, {http_errors} errors{}",
        first_error
            .as_deref()
            .map(|e| format!(" (first: {e})"))
            .unwrap_or_default()
    );

    let agree = offers
        .iter()
        .zip(inproc_offered)
        .filter(|(a, b)| a == b)
        .count();
    println!(
        "    HTTP and in-process offer the same options (time, room, radiologist) in {agree} of {} searches",
        searches.len()
    );
    if agree < searches.len() {
        println!(
            "    (the API loaded bookings for a window other than the one it searched: see docs/BENCHMARKS.md)"
        );
    }

    // 2b. The same searches from several clients at once.
    let shared: Arc<Vec<Search>> = Arc::new(searches.to_vec());
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..SEARCH_CLIENTS {
        let (shared, next) = (shared.clone(), next.clone());
        let (base, token) = (base.to_owned(), token.to_owned());
        tasks.spawn(async move {
            let client = reqwest::Client::new();
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(s) = shared.get(i) else { break };
                let t = Instant::now();
                let ok = get_slots(&client, &base, &token, s).await.is_ok();
                out.push((t.elapsed(), ok));
            }
            out
        });
    }
    let mut conc_times = Vec::new();
    let mut http_conc_errors = 0;
    while let Some(joined) = tasks.join_next().await {
        for (t, ok) in joined? {
            conc_times.push(t);
            http_conc_errors += usize::from(!ok);
        }
    }
    let conc_elapsed = started.elapsed();
    let http_conc = Stats::of(&conc_times);
    let http_conc_rate = per_second(conc_times.len(), conc_elapsed);
    println!(
        "  slots through HTTP, {SEARCH_CLIENTS} clients at once, {} requests: {http_conc_rate:.0} requests/s, {} ({http_conc_errors} errors)",
        http_conc.n,
        http_conc.line()
    );

    // 3. Bookings: each client books distinct ready cases on options planned to be
    //    free (and not to collide with one another), through the real endpoint.
    let plan = plan_bookings(store, dept, ready, args.bookings, rng).await?;
    let planned = plan.len();
    let shared = Arc::new(plan);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..args.clients {
        let (shared, next) = (shared.clone(), next.clone());
        let (base, token) = (base.to_owned(), token.to_owned());
        tasks.spawn(async move {
            let client = reqwest::Client::new();
            let mut out: Vec<(Duration, u16, Option<String>)> = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((case, o)) = shared.get(i) else {
                    break;
                };
                let t = Instant::now();
                let sent = client
                    .post(format!("{base}/api/v1/cases/{}/appointment", case.id))
                    .bearer_auth(&token)
                    .json(&serde_json::json!({
                        "start": o.start.to_string(),
                        "room": o.room,
                        "radiologist": o.radiologist,
                    }))
                    .send()
                    .await;
                let elapsed = t.elapsed();
                let (status, why) = match sent {
                    Ok(r) if r.status().as_u16() == 201 => (201, None),
                    Ok(r) => (r.status().as_u16(), r.text().await.ok()),
                    Err(e) => (0, Some(e.to_string())),
                };
                out.push((elapsed, status, why));
            }
            out
        });
    }
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    let mut first_refusal: Option<(u16, String)> = None;
    let mut booking_times = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        for (t, status, why) in joined? {
            booking_times.push(t);
            *statuses.entry(status).or_default() += 1;
            if let (None, Some(why)) = (&first_refusal, why) {
                first_refusal = Some((status, why.chars().take(200).collect()));
            }
        }
    }
    let booking_time = started.elapsed();
    let booked = statuses.get(&201).copied().unwrap_or(0);
    let booking = Stats::of(&booking_times);
    println!(
        "  bookings through HTTP (POST /api/v1/cases/{{id}}/appointment), {} clients, {planned} attempts in {:.2} s: {:.0} bookings/s",
        args.clients,
        booking_time.as_secs_f64(),
        per_second(booked, booking_time)
    );
    println!(
        "    {booked} booked (201), {} taken meanwhile (409), {} other ({}); latency {}",
        statuses.get(&409).copied().unwrap_or(0),
        planned - booked - statuses.get(&409).copied().unwrap_or(0),
        statuses
            .iter()
            .map(|(s, n)| format!("{n}x{s}"))
            .collect::<Vec<_>>()
            .join(" "),
        booking.line()
    );
    if let Some((status, why)) = &first_refusal {
        println!("    first refusal: {status} {why}");
    }

    // 4. The bare insert it rests on: the same rows, one transaction per booking,
    //    the same concurrency, no HTTP and no checks (on free time far ahead).
    let shift = SignedDuration::from_hours(24 * RAW_SHIFT_DAYS);
    let raw: Vec<BenchAppointment> = shared
        .iter()
        .map(|(case, o)| BenchAppointment {
            case_id: case.id,
            room: o.room,
            radiologist: o.radiologist,
            start: o.start + shift,
            end: o.end + shift,
            turnaround_minutes: TURNAROUND_MINUTES,
            chair: o.chair.map(|c| (c.chair, c.start + shift, c.end + shift)),
            cancelled: false,
            attendance: None,
        })
        .collect();
    let raw = Arc::new(raw);
    let next = Arc::new(AtomicUsize::new(0));
    let site = dept.site.id;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..args.clients {
        let (raw, next, store) = (raw.clone(), next.clone(), store.clone());
        tasks.spawn(async move {
            let mut out: Vec<(Duration, Option<u64>)> = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(a) = raw.get(i) else { break };
                let t = Instant::now();
                let rows = store.bench_raw_booking(site, "scheduler", a).await.ok();
                out.push((t.elapsed(), rows));
            }
            out
        });
    }
    let (mut raw_ok, mut raw_failed, mut raw_rows) = (0, 0, 0u64);
    let mut raw_times = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        for (t, rows) in joined? {
            raw_times.push(t);
            match rows {
                Some(r) => {
                    raw_ok += 1;
                    raw_rows += r;
                }
                None => raw_failed += 1,
            }
        }
    }
    let raw_time = started.elapsed();
    let raw_stats = Stats::of(&raw_times);
    let booking_rate = per_second(booked, booking_time);
    let raw_rate = per_second(raw_ok, raw_time);
    println!(
        "  raw inserts (appointment + reservation rows, one transaction each), {} clients: {raw_ok} in {:.2} s: {raw_rate:.0} transactions/s, {:.0} rows/s ({raw_failed} failed); latency {}",
        args.clients,
        raw_time.as_secs_f64(),
        raw_rows as f64 / raw_time.as_secs_f64().max(1e-9),
        raw_stats.line()
    );
    println!(
        "  booking / raw insert: {:.2} ({booking_rate:.0} bookings/s against {raw_rate:.0} bare inserts/s)",
        booking_rate / raw_rate.max(1e-9)
    );
    Ok(HttpResults {
        http,
        http_conc_rate,
        booked,
        booking_time,
        raw_ok,
        raw_rows,
        raw_time,
    })
}

/// An option as offered: start, room, radiologist.
type Offered = (Timestamp, i64, i64);

fn offered(o: &SlotOption) -> Offered {
    (o.start, o.room, o.radiologist)
}

/// `GET /api/v1/cases/{id}/slots?from=...`: the options offered, or what went wrong.
async fn get_slots(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    s: &Search,
) -> std::result::Result<Vec<Offered>, String> {
    let r = client
        .get(format!(
            "{base}/api/v1/cases/{}/slots?from={}",
            s.case.id, s.from
        ))
        .bearer_auth(token)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = r.status();
    let body = r.text().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!("{status}: {body}"));
    }
    let v: serde_json::Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
    Ok(v["slots"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|o| {
                    Some((
                        o["start"].as_str()?.parse::<Timestamp>().ok()?,
                        o["room"]["id"].as_i64()?,
                        o["radiologist"]["id"].as_i64()?,
                    ))
                })
                .collect()
        })
        .unwrap_or_default())
}

/// One option per ready case, from a random date, each checked free against the
/// store and the options planned before it, so that concurrent clients rarely collide.
async fn plan_bookings(
    store: &Store,
    dept: &Department,
    ready: &[ReadyCase],
    bookings: usize,
    rng: &mut Rng,
) -> Result<Vec<(ReadyCase, SlotOption)>> {
    let now = Timestamp::now();
    let end = now
        + SignedDuration::from_hours(
            24 * (i64::try_from(SEARCH_SPREAD_DAYS)? + i64::from(DAYS_AHEAD) + 3),
        );
    let mut res = store
        .slot_resources(&dept.site, now - SignedDuration::from_hours(24), end)
        .await?;
    let catalogue = store.procedures().await?;
    let today = now.to_zoned_datetime(dept.tz.clone()).date();
    let mut plan = Vec::with_capacity(bookings);
    for case in ready.iter().take(bookings) {
        let offset = 1 + (rng.next() % SEARCH_SPREAD_DAYS) as i64;
        let search = Search {
            case: *case,
            from: today.checked_add(Span::new().days(offset))?,
        };
        let req = search_request(&catalogue, &search, 1)?;
        let Some(o) = find_slots(&res, &req).first().copied() else {
            continue;
        };
        res.busy.add(
            ResourceId::Room(o.room),
            Interval {
                start: o.start,
                end: o.end + SignedDuration::from_mins(i64::from(TURNAROUND_MINUTES)),
            },
        );
        res.busy.add(
            ResourceId::Radiologist(o.radiologist),
            Interval {
                start: o.start,
                end: o.end,
            },
        );
        if let Some(c) = o.chair {
            res.busy.add(
                ResourceId::Chair(c.chair),
                Interval {
                    start: c.start,
                    end: c.end,
                },
            );
        }
        plan.push((*case, o));
    }
    Ok(plan)
}

/// Users, one site in New York, 8 rooms (6 fluoroscopy, 2 CT) and 4 recovery chairs
/// open on weekdays, and 10 radiologists with different credentials and days, all
/// through the store's real calls.
async fn seed_department(store: &Store, tz: &TimeZone) -> Result<Department> {
    use irflow_store::ResourceKind;
    use jiff::civil::Weekday as W;
    let system = Actor::system("bench");
    let hash = auth::hash_any_password("bench").map_err(|e| anyhow::anyhow!("{e}"))?;
    let user = async |username: &str, name: &str, role: Role, org: Option<&str>| {
        store
            .create_user(
                &system,
                &NewUser {
                    username: Username::parse(username).map_err(|e| anyhow::anyhow!("{e}"))?,
                    display_name: name.to_owned(),
                    role,
                    organization: org.map(str::to_owned),
                    password_hash: hash.clone(),
                },
            )
            .await
            .map_err(anyhow::Error::from)
    };
    let admin = user("admin", "Alex Admin", Role::Admin, None).await?;
    let scheduler = user("scheduler", "Sam Rivera", Role::Scheduler, None).await?;
    let nurse = user("nurse", "Nora Patel, RN", Role::Nurse, None).await?;
    let referrer = user(
        "referrer",
        "Dr. Ravi Shah",
        Role::Referrer,
        Some("Back Bay Spine Clinic"),
    )
    .await?;
    let mut rad_users = Vec::new();
    for k in 1..=10 {
        rad_users.push(
            user(
                &format!("radiologist{k}"),
                &format!("Dr. Radiologist {k}"),
                Role::Radiologist,
                None,
            )
            .await?,
        );
    }
    let admin_actor = admin.actor();
    let site_id = store
        .create_site(&admin_actor, "Bench Campus IR", "America/New_York")
        .await?;
    let site = store.default_site().await?.context("the site")?;
    if site.id != site_id {
        bail!("the benchmark database already had a site");
    }
    let weekdays = [W::Monday, W::Tuesday, W::Wednesday, W::Thursday, W::Friday];
    let window = |weekday, from: (i8, i8), to: (i8, i8)| WeeklyWindow {
        weekday,
        start: time(from.0, from.1, 0, 0),
        end: time(to.0, to.1, 0, 0),
    };
    let mut rooms = Vec::new();
    for k in 1..=8 {
        let (name, modality) = if k <= 6 {
            (format!("Fluoro {k}"), Modality::Fluoroscopy)
        } else {
            (format!("CT {}", k - 6), Modality::Ct)
        };
        let room = store
            .create_room(&admin_actor, site.id, &name, modality, TURNAROUND_MINUTES)
            .await?;
        for d in weekdays {
            store
                .add_availability(
                    &admin_actor,
                    ResourceKind::Room,
                    room,
                    window(d, (8, 0), (16, 0)),
                )
                .await?;
        }
        rooms.push(room);
    }
    let mut chairs = Vec::new();
    for k in 1..=4 {
        let chair = store
            .create_chair(&admin_actor, site.id, &format!("Recovery chair {k}"))
            .await?;
        for d in weekdays {
            store
                .add_availability(
                    &admin_actor,
                    ResourceKind::Chair,
                    chair,
                    window(d, (8, 0), (17, 30)),
                )
                .await?;
        }
        chairs.push(chair);
    }
    // Two radiologists do everything; the others two thirds of the procedures. Six
    // work every weekday, two Mon/Wed/Fri, two Tue/Thu: eight on any day.
    let mut radiologists = Vec::new();
    for (k, u) in rad_users.iter().enumerate() {
        let codes: Vec<&'static str> = ORDERS
            .iter()
            .enumerate()
            .filter(|(i, _)| k < 2 || !(i + k).is_multiple_of(3))
            .map(|(_, o)| o.0)
            .collect();
        let days: Vec<W> = match k {
            0..=5 => weekdays.to_vec(),
            6 | 7 => vec![W::Monday, W::Wednesday, W::Friday],
            _ => vec![W::Tuesday, W::Thursday],
        };
        store.set_credentials(&admin_actor, u.id, &codes).await?;
        for d in &days {
            store
                .add_availability(
                    &admin_actor,
                    ResourceKind::Radiologist,
                    u.id.get(),
                    window(*d, (8, 0), (16, 0)),
                )
                .await?;
        }
        radiologists.push((u.id.get(), codes, days));
    }
    Ok(Department {
        tz: tz.clone(),
        site,
        rooms,
        radiologists,
        chairs,
        scheduler_id: scheduler.id,
        nurse: nurse.actor(),
        vetting_radiologist: rad_users[0].actor(),
        referrer: referrer.actor(),
        referrer_id: referrer.id,
    })
}

/// The weekdays of the history: a year back and a year ahead of today.
fn history_days(today: Date) -> Result<Vec<Date>> {
    let mut days = Vec::new();
    for offset in -365..365 {
        let d = today.checked_add(Span::new().days(offset))?;
        if !matches!(
            d.weekday(),
            jiff::civil::Weekday::Saturday | jiff::civil::Weekday::Sunday
        ) {
            days.push(d);
        }
    }
    Ok(days)
}

fn history_capacity(today: Date) -> Result<usize> {
    Ok(history_days(today)?.len() * SLOTS_PER_DAY * 8)
}

/// About `n` appointments on half-hour slots (20 minutes + 10 turnaround) over the
/// past and coming year, in random rooms, each with a free radiologist credentialed
/// for its procedure, a quarter with a recovery chair for an hour; a few cancelled
/// or not attended. Inserted in bulk with their reservation rows.
async fn seed_history(
    store: &Store,
    dept: &Department,
    n: usize,
    rng: &mut Rng,
) -> Result<(usize, u64)> {
    if n == 0 {
        return Ok((0, 0));
    }
    let now = Timestamp::now();
    let today = now.to_zoned_datetime(dept.tz.clone()).date();
    let days = history_days(today)?;
    let rooms = dept.rooms.len();
    let total = days.len() * SLOTS_PER_DAY * rooms;
    let mut order: Vec<usize> = (0..total).collect();
    for i in (1..order.len()).rev() {
        let j = rng.below(i + 1);
        order.swap(i, j);
    }
    // Radiologists busy per (day, slot), as a bit set; chairs' 5-minute units per (day, chair).
    let mut rad_busy = vec![0u16; days.len() * SLOTS_PER_DAY];
    let mut chair_busy = vec![0u128; days.len() * dept.chairs.len()];
    let catalogue = store.procedures().await?;
    let mut cases = Vec::with_capacity(n);
    let mut appointments = Vec::with_capacity(n);
    for cell in order {
        if appointments.len() >= n {
            break;
        }
        let day_no = cell / (SLOTS_PER_DAY * rooms);
        let slot = (cell / rooms) % SLOTS_PER_DAY;
        let room = dept.rooms[cell % rooms];
        let date = days[day_no];
        let code = ORDERS[rng.below(ORDERS.len())].0;
        let busy = &mut rad_busy[day_no * SLOTS_PER_DAY + slot];
        let candidates: Vec<usize> = dept
            .radiologists
            .iter()
            .enumerate()
            .filter(|(k, (_, codes, working))| {
                *busy & (1 << k) == 0 && codes.contains(&code) && working.contains(&date.weekday())
            })
            .map(|(k, _)| k)
            .collect();
        if candidates.is_empty() {
            continue;
        }
        let k = candidates[rng.below(candidates.len())];
        *busy |= 1 << k;
        let minute = 8 * 60 + 30 * i64::try_from(slot)?;
        let start = date
            .to_datetime(time(0, 0, 0, 0))
            .to_zoned_datetime(dept.tz.clone())?
            .timestamp();
        // 08:00 local is never in a DST gap; add civil minutes through the zone.
        let start = date
            .to_datetime(time(
                i8::try_from(minute / 60)?,
                i8::try_from(minute % 60)?,
                0,
                0,
            ))
            .to_zoned_datetime(dept.tz.clone())
            .map_or(start, |z| z.timestamp());
        let end = start + SignedDuration::from_mins(PROCEDURE_MINUTES);
        // A quarter need an hour in a recovery chair after the procedure.
        let mut chair = None;
        if rng.below(4) == 0 {
            let first = usize::try_from((minute + PROCEDURE_MINUTES - 8 * 60) / 5)?;
            let mask: u128 = ((1u128 << 12) - 1) << first;
            for (c, id) in dept.chairs.iter().enumerate() {
                let used = &mut chair_busy[day_no * dept.chairs.len() + c];
                if *used & mask == 0 {
                    *used |= mask;
                    chair = Some((*id, end, end + SignedDuration::from_mins(60)));
                    break;
                }
            }
        }
        let past = start < now;
        let roll = rng.below(100);
        let (cancelled, attendance, state) = match (past, roll) {
            (_, 0..=3) => (true, None, "cancelled"),
            (true, 4..=6) => (true, Some("no_show"), "no_show"),
            (true, _) => (false, Some("arrived"), "followed_up"),
            (false, 4..=49) => (false, None, "scheduled"),
            (false, _) => (false, None, "confirmed"),
        };
        let procedure_name = catalogue
            .iter()
            .find(|p| p.code == code)
            .map_or_else(|| code.to_owned(), |p| p.name.clone());
        // Born 1905-1958: never the birth date of a ready case (1960 on, see
        // `ready_case`), so a ready case's referral never matches a history patient
        // (whose open case for the same procedure would refuse it).
        let birth = Date::new(1905, 1, 1)?
            .checked_add(Span::new().days(i64::try_from(rng.below(365 * 54))?))?;
        cases.push(BenchCase {
            family_name: FAMILY_NAMES[rng.below(FAMILY_NAMES.len())],
            given_name: GIVEN_NAMES[rng.below(GIVEN_NAMES.len())],
            date_of_birth: birth.to_string(),
            referrer_id: dept.referrer_id.get(),
            procedure_code: code,
            procedure_name,
            state,
            created_at: start - SignedDuration::from_hours(24 * 21),
        });
        appointments.push(BenchAppointment {
            case_id: 0,
            room,
            radiologist: dept.radiologists[k].0,
            start,
            end,
            turnaround_minutes: TURNAROUND_MINUTES,
            chair,
            cancelled,
            attendance,
        });
    }
    let ids = store.bench_insert_cases(&cases).await?;
    for (a, id) in appointments.iter_mut().zip(ids) {
        a.case_id = id;
    }
    let reservations = store
        .bench_insert_appointments(dept.site.id, "scheduler", now, &appointments)
        .await?;
    Ok((appointments.len(), reservations))
}

/// Ready cases through the real path: a referral, the radiologist's acceptance and
/// the nurse's screening (clear; a third without an escort, so they need a recovery
/// chair), several at a time.
async fn seed_ready_cases(
    store: &Store,
    dept: &Department,
    n: usize,
    backend: &str,
) -> Result<Vec<ReadyCase>> {
    let rules = Arc::new(irflow_rules::default_pack()?);
    let catalogue = Arc::new(store.procedures().await?);
    let next = Arc::new(AtomicUsize::new(0));
    // One writer at a time on SQLite: a referral reads (patient matching) before it
    // writes, and SQLite refuses such a transaction rather than wait when another
    // writer got in first ("busy"), which is the store's to report, not to retry.
    let workers = if backend == "SQLite" { 1 } else { 8 };
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let (store, dept) = (store.clone(), dept.clone());
        let (rules, catalogue, next) = (rules.clone(), catalogue.clone(), next.clone());
        tasks.spawn(async move {
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                out.push(ready_case(&store, &dept, &rules, &catalogue, i).await?);
            }
            anyhow::Ok(out)
        });
    }
    let mut ready = Vec::with_capacity(n);
    while let Some(joined) = tasks.join_next().await {
        ready.extend(joined??);
    }
    ready.sort_by_key(|c| c.id);
    Ok(ready)
}

async fn ready_case(
    store: &Store,
    dept: &Department,
    rules: &irflow_domain::screening::RulePack,
    catalogue: &[irflow_domain::Procedure],
    i: usize,
) -> Result<ReadyCase> {
    let now = Timestamp::now();
    let today = now.to_zoned_datetime(dept.tz.clone()).date();
    let (code, levels, side, indication, icd10) = ORDERS[i % ORDERS.len()];
    // Unique name and birth date, so that every referral is a new patient: born 1960
    // on, after everyone in the history.
    let birth = Date::new(1960, 1, 1)?.checked_add(Span::new().days(i64::try_from(i)?))?;
    let form = ReferralForm {
        family_name: FAMILY_NAMES[i % FAMILY_NAMES.len()].into(),
        given_name: GIVEN_NAMES[(i / FAMILY_NAMES.len()) % GIVEN_NAMES.len()].into(),
        date_of_birth: birth.to_string(),
        phone: "617-555-0100".into(),
        preferred_language: "en".into(),
        procedure: code.into(),
        levels: levels.into(),
        side: side.into(),
        indication: indication.into(),
        icd10: icd10.into(),
        urgency: "routine".into(),
        ..ReferralForm::default()
    };
    let patient = form
        .patient(today)
        .map_err(|e| anyhow::anyhow!("bench patient {i}: {e}"))?;
    let details = form
        .details(catalogue, today)
        .map_err(|e| anyhow::anyhow!("bench referral {i}: {e}"))?;
    let receipt = store
        .submit_referral(
            &dept.referrer,
            &NewReferral {
                subject: ReferralSubject::New(patient),
                referrer: dept.referrer_id,
                details,
                channel: Channel::Online,
            },
            now - SignedDuration::from_hours(48),
        )
        .await
        .with_context(|| format!("bench referral {i}"))?;
    let id = receipt.case;
    store
        .transition_case(
            &dept.vetting_radiologist,
            id,
            &TransitionRequest::new(Action::Accept),
            None,
            now - SignedDuration::from_hours(24),
            today,
        )
        .await
        .with_context(|| format!("bench acceptance {i}"))?;
    let no_escort = i.is_multiple_of(3);
    let body = if no_escort {
        r#"{"escort_available":false}"#
    } else {
        r#"{"escort_available":true,"symptoms":"mild"}"#
    };
    let facts = irflow_server::screening_json::parse_facts(body.as_bytes(), Some(code), today)
        .map_err(|e| anyhow::anyhow!("bench screening {i}: {e}"))?;
    let decision = irflow_domain::screening::evaluate(rules, &facts, &dept.tz)?;
    store
        .record_screening(
            &dept.nurse,
            id,
            &NewScreening {
                facts_json: irflow_server::screening_json::facts_json(&facts).to_string(),
                decision_json: irflow_server::screening_json::decision_json(&decision, &dept.tz)
                    .to_string(),
                decision: &decision,
            },
            now - SignedDuration::from_hours(1),
            today,
        )
        .await
        .with_context(|| format!("bench screening {i}"))?;
    Ok(ReadyCase {
        id: id.get(),
        procedure: code,
        monitoring: decision.monitoring_minutes,
    })
}
