//! `irflow bench scheduling` as a user runs it, with tiny numbers: it seeds a fresh
//! SQLite database, searches in-process and over HTTP, books through the API and
//! reports. Timings are never checked, only the report's shape and that the
//! bookings went through.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Output;

async fn irflow(args: &[&str]) -> Output {
    let dir = std::env::temp_dir();
    tokio::process::Command::new(env!("CARGO_BIN_EXE_irflow"))
        .args(args)
        // No irflow.toml or IRFLOW_* settings of the developer's may leak in.
        .current_dir(&dir)
        .env_remove("IRFLOW_DATABASE_URL")
        .env_remove("IRFLOW_DATA_DIR")
        .output()
        .await
        .unwrap()
}

/// The number just before `marker` in `text`, e.g. `40` in "40 booked (201)".
fn count_before(text: &str, marker: &str) -> usize {
    let at = text
        .find(marker)
        .unwrap_or_else(|| panic!("{marker:?} in the report:\n{text}"));
    text[..at]
        .split_whitespace()
        .last()
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("a number before {marker:?}:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduling_benchmark_seeds_searches_books_and_reports() {
    let out = irflow(&[
        "bench",
        "scheduling",
        "--appointments",
        "500",
        "--searches",
        "20",
        "--bookings",
        "40",
        "--clients",
        "8",
    ])
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "SQLite",
        "500 appointments",
        "40 ready cases",
        "slots in-process",
        "slots through HTTP",
        "8 clients at once",
        "bookings through HTTP",
        "raw inserts",
        "booking / raw insert",
        "p50",
        "p99",
        "| backend |",
    ] {
        assert!(stdout.contains(expected), "{expected:?} in:\n{stdout}");
    }
    // Every search found its 10 options, in-process and over HTTP, without errors.
    assert!(stdout.contains("200 options found"), "{stdout}");
    assert!(
        stdout.contains("200 options returned, 0 errors"),
        "{stdout}"
    );
    assert!(stdout.contains("(0 errors)"), "{stdout}");
    // The bookings went through (a rare 409 is a real race, not a failure).
    let booked = count_before(&stdout, "booked (201)");
    assert!(booked >= 36, "at least 36 of 40 booked:\n{stdout}");
    assert_eq!(count_before(&stdout, "other ("), 0, "{stdout}");
    // The bare inserts all succeeded.
    assert!(stdout.contains("(0 failed)"), "{stdout}");
    // Nothing is left behind in the temporary directory.
    let dir = stdout
        .lines()
        .find_map(|l| l.split_once("temporary file in ").map(|(_, d)| d))
        .and_then(|d| d.strip_suffix(')'))
        .expect("the temporary directory in the report");
    assert!(!std::path::Path::new(dir).exists(), "{dir} was removed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_benchmark_flags_are_refused_with_a_message() {
    for (args, message) in [
        (
            vec!["bench", "scheduling", "--bookings", "0"],
            "--bookings must be",
        ),
        (
            vec!["bench", "scheduling", "--clients", "0"],
            "--clients must be",
        ),
        (
            vec!["bench", "scheduling", "--appointments", "1000000"],
            "does not fit",
        ),
        (
            vec!["bench", "scheduling", "--database-url", "sqlite:x.db"],
            "postgres://",
        ),
        (
            vec!["bench", "scheduling", "--data-dir", "somewhere"],
            "does not take --data-dir",
        ),
        (
            vec![
                "bench",
                "dicom",
                "--rules",
                "somewhere",
                "--config",
                "x.toml",
            ],
            "does not take --config or --rules",
        ),
    ] {
        let out = irflow(&args).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}
