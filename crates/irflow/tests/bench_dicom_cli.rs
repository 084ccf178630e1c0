//! `irflow bench dicom` as a user runs it, with tiny numbers: a 5-image series sent by
//! dcmtk's storescu to irflow and (when installed) to Orthanc, then imported from a
//! DICOMDIR folder. Timings are never checked, only that everything arrived and the
//! report's shape. dcmtk and Orthanc are installed by `.ci/run`; locally, without
//! them, the parts that need them say why and are skipped.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Output;

async fn irflow(args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_irflow"))
        .args(args)
        // No irflow.toml or IRFLOW_* settings of the developer's may leak in.
        .current_dir(std::env::temp_dir())
        .env_remove("IRFLOW_DATABASE_URL")
        .env_remove("IRFLOW_DATA_DIR")
        .env_remove("IRFLOW_CONFIG")
        .output()
        .await
        .unwrap()
}

fn installed(program: &str, package: &str) -> bool {
    let found = std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()));
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{program} is missing; .ci/run installs it (apt-get install {package})"
        );
        eprintln!("SKIPPED part: {program} is not installed (apt-get install {package})");
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dicom_benchmark_sends_imports_and_reports() {
    if !installed("storescu", "dcmtk") {
        return;
    }
    let with_orthanc = installed("Orthanc", "orthanc");
    let mut args = vec![
        "bench",
        "dicom",
        "--instances",
        "5",
        "--size",
        "64",
        "--rounds",
        "2",
    ];
    if !with_orthanc {
        args.push("--skip-orthanc");
    }
    let out = irflow(&args).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "5 instances 64x64 16-bit MR",
        "storescu -> irflow, imaging.fsync true (default): 5 of 5 stored",
        "storescu -> irflow, imaging.fsync false: 5 of 5 stored",
        "every file and its directory fsynced before success",
        "study matched to its case by MRN",
        "irflow import of the DICOMDIR folder: 5 files",
        "round 2: storescu -> irflow, imaging.fsync true (default): 5 of 5 stored",
        "median of 2 round(s)",
        "| target | instances | seconds | instances/s | MB/s | notes |",
    ] {
        assert!(stdout.contains(expected), "{expected:?} in:\n{stdout}");
    }
    if with_orthanc {
        assert!(
            stdout.contains("SyncStorageArea true (default): 5 of 5 stored"),
            "{stdout}"
        );
        assert!(
            stdout.contains("SyncStorageArea false: 5 of 5 stored"),
            "{stdout}"
        );
        assert!(
            stdout.contains(
                "irflow / Orthanc, both with their defaults (every file synced to disk):"
            ),
            "{stdout}"
        );
        assert!(
            stdout.contains("irflow / Orthanc, neither syncing files:"),
            "{stdout}"
        );
    } else {
        assert!(stdout.contains("Orthanc: skipped"), "{stdout}");
    }
    // Nothing is left behind.
    let dir = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("temporary files in "))
        .expect("the temporary directory in the report");
    assert!(!std::path::Path::new(dir).exists(), "{dir} was removed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_orthanc_or_bad_flags_are_reported_plainly() {
    if !installed("storescu", "dcmtk") {
        return;
    }
    for (args, message) in [
        (
            vec!["bench", "dicom", "--instances", "0"],
            "--instances must be",
        ),
        (vec!["bench", "dicom", "--size", "3"], "--size must be"),
        (vec!["bench", "dicom", "--rounds", "0"], "--rounds must be"),
        (
            vec![
                "bench",
                "dicom",
                "--instances",
                "2",
                "--orthanc",
                "/nonexistent/Orthanc",
            ],
            "apt-get install orthanc",
        ),
    ] {
        let out = irflow(&args).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}
