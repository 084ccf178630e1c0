//! Test harness: the real app on a real port (port 0), on SQLite or — when
//! `IRFLOW_TEST_DATABASE_URL` is set — PostgreSQL, seeded with the demo department.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod dicom;

use irflow_store::testing::TestDatabase;
use irflow_store::{Backend, Store};
use reqwest::redirect::Policy;

/// A running app.
#[derive(Debug)]
pub struct App {
    pub url: String,
    pub store: Store,
    /// The date the demo was seeded for (the site's today when the app started).
    pub today: jiff::civil::Date,
    db: Option<TestDatabase>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// Today's date in `tz`.
pub fn today(tz: &jiff::tz::TimeZone) -> jiff::civil::Date {
    jiff::Timestamp::now().to_zoned_datetime(tz.clone()).date()
}

/// A year whose daylight-saving changes lie well ahead of today and of anything the
/// demo books, so that tests across them never go stale.
pub fn dst_year() -> i16 {
    today(&jiff::tz::TimeZone::get("America/New_York").unwrap()).year() + 2
}

/// New York's spring change in `year`: the second Sunday of March.
pub fn spring_forward(year: i16) -> jiff::civil::Date {
    jiff::civil::date(year, 3, 1)
        .nth_weekday_of_month(2, jiff::civil::Weekday::Sunday)
        .unwrap()
}

/// New York's autumn change in `year`: the first Sunday of November.
pub fn fall_back(year: i16) -> jiff::civil::Date {
    jiff::civil::date(year, 11, 1)
        .nth_weekday_of_month(1, jiff::civil::Weekday::Sunday)
        .unwrap()
}

/// `date` moved by `days`, as `YYYY-MM-DD`.
pub fn days_from(date: jiff::civil::Date, days: i64) -> String {
    (date + jiff::Span::new().days(days)).to_string()
}

/// The backend this run exercises end to end: PostgreSQL when configured.
pub fn backend() -> Backend {
    if irflow_store::testing::postgres_url().is_some() {
        Backend::Postgres
    } else {
        Backend::Sqlite
    }
}

impl App {
    /// Starts the app with the demo department.
    pub async fn start() -> Self {
        Self::start_with(irflow_server::ServerConfig {
            cookie_secure: false,
            ..Default::default()
        })
        .await
    }

    /// Starts the app with custom settings.
    pub async fn start_with(config: irflow_server::ServerConfig) -> Self {
        let db = TestDatabase::new(backend()).await;
        let tz = jiff::tz::TimeZone::get(&config.time_zone_name).unwrap();
        let today = today(&tz);
        irflow::demo::seed(&db.store, &tz, today)
            .await
            .expect("seed demo");
        irflow_server::init_metrics();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = irflow_server::AppState::new(
            db.store.clone(),
            config,
            irflow_rules::default_pack().unwrap(),
        )
        .unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            irflow_server::serve(listener, state, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        App {
            url,
            store: db.store.clone(),
            today,
            db: Some(db),
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// Stops the server and removes the database.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
        if let Some(db) = self.db.take() {
            db.finish().await;
        }
    }

    /// A bearer token for a demo user.
    pub async fn token_for(&self, username: &str) -> String {
        let user = self.store.user_by_username(username).await.unwrap();
        let token = irflow_server::auth::new_secret("irf_");
        self.store
            .issue_api_token(
                &irflow_domain::Actor::system("test"),
                user.id,
                &irflow_server::auth::secret_hash(&token),
                "test",
            )
            .await
            .unwrap();
        token
    }

    /// A browser-like client (cookies, no automatic redirects), signed in.
    pub async fn signed_in(&self, username: &str) -> reqwest::Client {
        let client = browser();
        let (status, _) = sign_in(&client, self, username, "demo").await;
        assert_eq!(status, 303, "sign-in as {username}");
        client
    }

    /// The id of the demo case of the patient with this family name.
    pub async fn case_of(&self, family: &str) -> i64 {
        let token = self.token_for("nurse").await;
        let v: serde_json::Value = reqwest::Client::new()
            .get(self.at("/api/v1/cases"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["patient"]["family_name"] == family)
            .unwrap_or_else(|| panic!("a case for {family}"))["id"]
            .as_i64()
            .unwrap()
    }

    /// The id of the first case in a state, as staff see it.
    pub async fn case_in_state(&self, state: &str) -> i64 {
        let token = self.token_for("nurse").await;
        let v: serde_json::Value = reqwest::Client::new()
            .get(self.at(&format!("/api/v1/cases?state={state}")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["cases"][0]["id"]
            .as_i64()
            .unwrap_or_else(|| panic!("a case in state {state}"))
    }
}

/// A client that keeps cookies and does not follow redirects.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(Policy::none())
        .build()
        .unwrap()
}

/// Extracts `name="csrf" value="..."` from a page.
pub fn csrf_of(html: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = html.find(marker).expect("a csrf field") + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

/// Signs in through the real form; returns the status and the Set-Cookie values.
pub async fn sign_in(
    client: &reqwest::Client,
    app: &App,
    username: &str,
    password: &str,
) -> (u16, Vec<String>) {
    let page = client
        .get(app.at("/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = csrf_of(&page);
    let r = client
        .post(app.at("/login"))
        .form(&[
            ("username", username),
            ("password", password),
            ("csrf", csrf.as_str()),
            ("next", "/"),
        ])
        .send()
        .await
        .unwrap();
    let cookies = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    (r.status().as_u16(), cookies)
}
