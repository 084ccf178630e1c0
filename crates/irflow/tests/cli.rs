//! The `irflow` binary as a user runs it: exit codes, messages, and the effect
//! of each command on a real database (SQLite, or PostgreSQL when configured).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Stdio;

use irflow_store::testing::TestDatabase;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

fn irflow() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_irflow"));
    for var in [
        "IRFLOW_DATABASE_URL",
        "IRFLOW_CONFIG",
        "IRFLOW_DATA_DIR",
        "IRFLOW_LISTEN",
        "IRFLOW_TIME_ZONE",
    ] {
        c.env_remove(var);
    }
    c.env("IRFLOW_LOG_LEVEL", "warn").kill_on_drop(true);
    c
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

async fn run(args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = irflow();
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run irflow");
    let mut input = child.stdin.take().unwrap();
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).await.unwrap();
    }
    drop(input);
    let out = child.wait_with_output().await.unwrap();
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Starts a long-running command and returns it with the first URL it prints.
async fn start_serving(args: &[&str]) -> (Child, String) {
    let mut child = irflow()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start irflow");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(i) = line.find("http://") {
                return line[i..].split_whitespace().next().unwrap().to_owned();
            }
        }
        panic!("irflow exited without printing a URL");
    })
    .await
    .expect("a URL within a minute");
    // Keep draining stdout so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_tokens_and_serve_work_together() {
    let db = TestDatabase::new(common::backend()).await;
    let url = db.url.clone();
    let with = |extra: &[&str]| -> Vec<String> {
        ["--database-url", url.as_str()]
            .iter()
            .chain(extra.iter())
            .map(|s| (*s).to_owned())
            .collect()
    };

    let out = run(&refs(&with(&["migrate"])), None).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("up to date"), "{}", out.stdout);

    let add = with(&[
        "user",
        "add",
        "--username",
        "Jo.Nurse",
        "--role",
        "nurse",
        "--name",
        "Jo Nurse",
        "--password-stdin",
    ]);
    let out = run(&refs(&add), Some("a-long-password\n")).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("created user jo.nurse (nurse)"),
        "{}",
        out.stdout
    );
    let out = run(&refs(&add), Some("a-long-password\n")).await;
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("already taken"), "{}", out.stderr);
    let out = run(
        &refs(&with(&[
            "user",
            "add",
            "--username",
            "x1",
            "--role",
            "doctor",
            "--password-stdin",
        ])),
        Some("a-long-password\n"),
    )
    .await;
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("unknown role"), "{}", out.stderr);
    let out = run(
        &refs(&with(&[
            "user",
            "add",
            "--username",
            "x2",
            "--role",
            "nurse",
            "--password-stdin",
        ])),
        Some("short\n"),
    )
    .await;
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("at least 8"), "{}", out.stderr);
    let out = run(
        &refs(&with(&[
            "user",
            "add",
            "--username",
            "x3",
            "--role",
            "referrer",
            "--password-stdin",
        ])),
        Some("a-long-password\n"),
    )
    .await;
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("--organization"), "{}", out.stderr);
    let out = run(&refs(&with(&["user", "list"])), None).await;
    assert!(
        out.stdout.contains("jo.nurse") && !out.stdout.contains("x1") && !out.stdout.contains("x2"),
        "refused users were not created: {}",
        out.stdout
    );

    let out = run(
        &refs(&with(&[
            "token", "issue", "--user", "jo.nurse", "--label", "ris",
        ])),
        None,
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let token = out.stdout.trim().to_owned();
    assert!(token.starts_with("irf_"), "{token}");
    let out = run(&refs(&with(&["token", "issue", "--user", "nobody"])), None).await;
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("no user named"), "{}", out.stderr);

    let (mut server, server_url) =
        start_serving(&refs(&with(&["serve", "--listen", "127.0.0.1:0"]))).await;
    let client = reqwest::Client::new();
    let me: serde_json::Value = client
        .get(format!("{server_url}/api/v1/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["user"]["username"], "jo.nurse");
    let out = run(&refs(&with(&["token", "list"])), None).await;
    assert!(
        out.stdout.contains("ris") && out.stdout.contains("active"),
        "{}",
        out.stdout
    );
    let id = out.stdout.split_whitespace().next().unwrap().to_owned();
    let out = run(&refs(&with(&["token", "revoke", "--id", &id])), None).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let r = client
        .get(format!("{server_url}/api/v1/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        401,
        "a revoked token stops working in the running server"
    );
    let out = run(&refs(&with(&["token", "revoke", "--id", &id])), None).await;
    assert_ne!(out.code, 0);
    server.kill().await.ok();
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_configuration_fails_fast_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.to_str().unwrap();
    let mut cmd = irflow();
    let out = cmd
        .args(["--data-dir", data_arg, "migrate"])
        .env("IRFLOW_TIME_ZONE", "Mars/Olympus_Mons")
        .output()
        .await
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("IANA") && stderr.contains("IRFLOW_TIME_ZONE"),
        "{stderr}"
    );
    assert!(!data.exists(), "nothing was created");

    let toml = dir.path().join("irflow.toml");
    std::fs::write(&toml, "[security]\ncookie_secure = \"sometimes\"\n").unwrap();
    let out = irflow()
        .args([
            "--config",
            toml.to_str().unwrap(),
            "--data-dir",
            data_arg,
            "migrate",
        ])
        .output()
        .await
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("irflow.toml"),
        "names the file"
    );

    let out = irflow()
        .args([
            "--data-dir",
            data_arg,
            "--database-url",
            "mysql://x",
            "migrate",
        ])
        .output()
        .await
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not supported"));

    // A good run creates the SQLite database in the data dir.
    let out = irflow()
        .args(["--data-dir", data_arg, "migrate"])
        .output()
        .await
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("0001_platform"));
    assert!(data.join("irflow.db").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_serves_on_loopback_and_guards_real_data() {
    let dir = tempfile::tempdir().unwrap();
    let demo_dir = dir.path().join("demo");
    let (mut demo, url) = start_serving(&[
        "demo",
        "--port",
        "0",
        "--data-dir",
        demo_dir.to_str().unwrap(),
    ])
    .await;
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let r = reqwest::get(format!("{url}/login")).await.unwrap();
    assert_eq!(r.status(), 200);
    demo.kill().await.ok();
    let _ = demo.wait().await;

    // The next start recreates it all: the last demo's image files and sent messages go.
    for stale in ["images/stale.dcm", "outbox/stale.eml"] {
        assert!(
            demo_dir.join(stale).parent().unwrap().is_dir(),
            "the demo made {stale}'s folder"
        );
        std::fs::write(demo_dir.join(stale), b"from the last demo").unwrap();
    }
    let (mut demo, _) = start_serving(&[
        "demo",
        "--port",
        "0",
        "--data-dir",
        demo_dir.to_str().unwrap(),
    ])
    .await;
    demo.kill().await.ok();
    let _ = demo.wait().await;
    for stale in ["images/stale.dcm", "outbox/stale.eml"] {
        assert!(!demo_dir.join(stale).exists(), "{stale} outlived its demo");
    }
    // A folder the demo did not make is never emptied.
    let other = dir.path().join("other");
    std::fs::create_dir_all(other.join("images")).unwrap();
    std::fs::write(other.join("images/keep.dcm"), b"someone's").unwrap();
    let (mut demo, _) =
        start_serving(&["demo", "--port", "0", "--data-dir", other.to_str().unwrap()]).await;
    demo.kill().await.ok();
    let _ = demo.wait().await;
    assert!(other.join("images/keep.dcm").exists());

    // A data dir with a real (non-demo) database is never wiped by the demo.
    let real = dir.path().join("real");
    let out = irflow()
        .args(["--data-dir", real.to_str().unwrap(), "migrate"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let out = irflow()
        .args(["demo", "--port", "0", "--data-dir", real.to_str().unwrap()])
        .output()
        .await
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("did not create"));
    assert!(real.join("irflow.db").exists());

    // Flags the demo would otherwise ignore are refused, saying why; nothing is made.
    let unused = dir.path().join("unused");
    let out = irflow()
        .args([
            "demo",
            "--port",
            "0",
            "--data-dir",
            unused.to_str().unwrap(),
            "--database-url",
            "postgres://127.0.0.1:1/nowhere",
        ])
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("does not take --database-url") && stderr.contains("irflow serve"),
        "{stderr}"
    );
    assert!(!unused.exists(), "nothing made");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_slot_benchmark_runs_and_reports_percentiles() {
    let out = irflow()
        .args([
            "bench",
            "slots",
            "--appointments",
            "500",
            "--searches",
            "20",
        ])
        .output()
        .await
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("500 appointments") && stdout.contains("p50") && stdout.contains("p99"),
        "{stdout}"
    );
    assert!(
        stdout.contains("(200 options found)"),
        "every search found its 10 options: {stdout}"
    );
}
