//! Outside imaging kept in an S3-compatible bucket (`[imaging] store = "s3"`, irflow
//! built with `--features s3`): `irflow import` stores each original, unchanged, under
//! its SHA-256 key, in a real S3 API served by `moto_server` (Python `moto[server]`).
//! Without the feature this file is empty; with it, the test needs `moto_server` on
//! PATH and says so when it is missing (CI installs it).

#![cfg(feature = "s3")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::dicom::Study;
use jiff::civil::date;
use sha2::{Digest, Sha256};

/// `moto_server` on a free port, stopped when dropped.
struct Moto {
    child: std::process::Child,
    url: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn moto() -> Moto {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = std::process::Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect(
            "moto_server on PATH (pip install 'moto[server]'): the S3 API the test stores into",
        );
    let url = format!("http://127.0.0.1:{port}");
    let moto = Moto { child, url };
    for _ in 0..100 {
        if reqwest::get(&moto.url).await.is_ok() {
            return moto;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("moto_server did not answer at {}", moto.url);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imports_keep_originals_unchanged_in_an_s3_bucket() {
    let s3 = moto().await;
    let http = reqwest::Client::new();
    let r = http
        .put(format!("{}/irflow-images", s3.url))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "bucket not made: {}", r.status());

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("irflow.toml");
    std::fs::write(
        &config,
        format!(
            "[imaging]\nstore = \"s3\"\nbucket = \"irflow-images\"\nendpoint = \"{}\"\nallow_http = true\n",
            s3.url
        ),
    )
    .unwrap();
    let study = Study::new(
        "KIM^GRACE",
        "OUTSIDE-1",
        date(1975, 3, 3),
        date(2026, 5, 10),
    );
    let files = study.series(1, 3, 16, 16);
    let folder = dir.path().join("cd");
    for (name, bytes) in &files {
        let path = folder.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    let run = |args: Vec<String>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_irflow"));
        for var in [
            "IRFLOW_DATABASE_URL",
            "IRFLOW_DATA_DIR",
            "IRFLOW_IMAGE_STORE",
        ] {
            cmd.env_remove(var);
        }
        cmd.env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .args(args)
            .output()
            .unwrap()
    };
    let base = vec![
        "--config".to_owned(),
        config.display().to_string(),
        "--data-dir".to_owned(),
        dir.path().join("data").display().to_string(),
    ];
    let out = run([base.clone(), vec!["migrate".to_owned()]].concat());
    assert!(out.status.success(), "{out:?}");
    let out = run([
        base.clone(),
        vec!["import".to_owned(), folder.display().to_string()],
    ]
    .concat());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout.contains("imported: 3 stored"), "{stdout}");

    // Each original is in the bucket under its SHA-256, byte for byte.
    let bucket = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(&s3.url)
        .with_allow_http(true)
        .with_bucket_name("irflow-images")
        .with_region("us-east-1")
        .with_access_key_id("test")
        .with_secret_access_key("test")
        .build()
        .unwrap();
    for (name, bytes) in &files {
        let hex: String = Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let key = object_store::path::Path::from(format!("dicom/{}/{hex}", &hex[..2]));
        let stored = object_store::ObjectStoreExt::get(&bucket, &key)
            .await
            .unwrap_or_else(|e| panic!("{name} not in the bucket: {e}"))
            .bytes()
            .await
            .unwrap();
        assert_eq!(&stored[..], &bytes[..], "{name} changed");
    }

    // A bucket that does not exist is a clear error, not a panic, and nothing is indexed.
    std::fs::write(
        &config,
        format!(
            "[imaging]\nstore = \"s3\"\nbucket = \"no-such-bucket\"\nendpoint = \"{}\"\nallow_http = true\n",
            s3.url
        ),
    )
    .unwrap();
    let other = Study::new("ROE^JANE", "OUTSIDE-2", date(1980, 1, 2), date(2026, 6, 1));
    let folder2 = dir.path().join("cd2");
    for (name, bytes) in other.series(1, 1, 16, 16) {
        let path = folder2.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    let out = run([
        base,
        vec!["import".to_owned(), folder2.display().to_string()],
    ]
    .concat());
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!all.contains("panicked"), "{all}");
    assert_ne!(out.status.code(), Some(0), "{all}");
    assert!(
        all.contains("import stopped at")
            && all.contains("image store")
            && all.contains("no-such-bucket")
            || all.contains("NoSuchBucket"),
        "the operator is told what failed: {all}"
    );
}
