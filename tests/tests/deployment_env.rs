//! The environment the Terraform modules hand to the container starts a real gateway against
//! the S3 server: exactly those variables (names taken from the modules by
//! `scripts/check-terraform.sh --list-env`), nothing else.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // test code: a panic is the failure report; tests drive tokio time directly

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ferrymq_tests::common::gateway::{binary, free_port};
use ferrymq_tests::common::stores::s3_bucket;

#[tokio::test]
async fn the_terraform_environment_starts_a_ready_gateway_on_s3() {
    let Some(bucket) = s3_bucket() else {
        eprintln!("skipping: no S3 server");
        return;
    };
    let root = ferrymq_tests::common::package_dir();
    let root = root.parent().unwrap();
    let out = Command::new(root.join("scripts/check-terraform.sh"))
        .arg("--list-env")
        .output()
        .unwrap();
    assert!(out.status.success());
    let names: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert!(names.contains(&"FERRYMQ_STORE".to_string()), "{names:?}");
    let port = free_port();
    let mut cmd = Command::new(binary());
    cmd.arg("serve")
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for name in &names {
        let value = match name.as_str() {
            "FERRYMQ_STORE" => format!("s3://{bucket}/tf-{}", ulid::Ulid::new()),
            "FERRYMQ_LISTEN" => format!("127.0.0.1:{port}"),
            "FERRYMQ_ADVERTISE_ADDR" => format!("127.0.0.1:{port}"),
            "FERRYMQ_JWT_SECRET" | "FERRYMQ_CLUSTER_SECRET" => "terraform-test-secret".to_string(),
            "FERRYMQ_LOG" => "info".to_string(),
            "AWS_VIRTUAL_HOSTED_STYLE_REQUEST" => "false".to_string(),
            aws if aws.starts_with("AWS_") => {
                std::env::var(aws).unwrap_or_else(|_| panic!("the test command sets {aws}"))
            }
            other => panic!(
                "no test value for {other}: add one here when the modules pass a new variable"
            ),
        };
        cmd.env(name, value);
    }
    let mut child = cmd.spawn().unwrap();
    let client = reqwest::Client::new();
    let start = Instant::now();
    let ready = loop {
        if let Ok(r) = client
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await
        {
            if r.status() == 200 {
                break true;
            }
        }
        if start.elapsed() > Duration::from_secs(30) || child.try_wait().unwrap().is_some() {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    assert!(
        ready,
        "gateway with the Terraform environment never became ready:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
