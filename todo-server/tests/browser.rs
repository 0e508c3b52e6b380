//! Swagger UI at `/docs` still works in a real browser under the page's Content-Security-Policy,
//! and the descriptor limit is met calmly: the real binary, headless Chromium, raw sockets.
#![cfg(unix)] // /proc, `kill`, `sh -c ulimit`
#![allow(clippy::unwrap_used)] // test helpers panic on setup failures by design

use std::process::{Command, Stdio};
use std::time::Duration;

mod support;
use support::{cpu_time, start_with};

/// The Chromium binary to drive; the test is skipped (visibly) without it.
const CHROMIUM_ENV: &str = "TODO_TEST_CHROMIUM";

#[tokio::test]
async fn swagger_ui_renders_every_operation_under_its_content_security_policy() {
    let Some(chromium) = std::env::var(CHROMIUM_ENV).ok().filter(|c| !c.is_empty()) else {
        eprintln!("\n*** SKIPPING the browser test: {CHROMIUM_ENV} is not set ***\n");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let server = start_with(
        dir.path(),
        "docs",
        &["--database-url", "sqlite::memory:"],
        &[],
    )
    .await;
    let profile = dir.path().join("chromium-profile");
    let dom_file = dir.path().join("dom.html");
    let log_file = dir.path().join("chromium.log");
    let mut child = Command::new(&chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=10000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(server.url("/docs"))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&dom_file).unwrap())
        .stderr(std::fs::File::create(&log_file).unwrap())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium took more than 90 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let dom = std::fs::read_to_string(&dom_file).unwrap();
    let log = std::fs::read_to_string(&log_file).unwrap_or_default();
    // Each operation is rendered as an `opblock` once Swagger UI's scripts have run; with the
    // scripts blocked the page stays empty.
    let operations = dom.matches("class=\"opblock-summary-path\"").count();
    assert!(
        operations >= 12,
        "Swagger UI rendered {operations} operations; browser log:\n{log}"
    );
    for path in ["/auth/login", "/{user_id}/tasks", "/tasks/{id}/complete"] {
        assert!(
            dom.contains(&format!("data-path=\"{path}\"")),
            "{path} missing"
        );
    }
    assert!(
        !log.contains("Content Security Policy") && !log.contains("Refused to"),
        "the page broke its own policy:\n{log}"
    );
}

#[tokio::test]
async fn running_out_of_descriptors_is_logged_once_and_never_a_busy_loop() {
    let dir = tempfile::tempdir().unwrap();
    // A cap above what the descriptor limit allows, so accept() itself fails with EMFILE.
    let bin = support::bin();
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("ulimit -n 128 && exec \"$0\" \"$@\"")
        .arg(&bin)
        .args([
            "--database-url",
            "sqlite::memory:",
            "--max-open-connections",
            "1000",
        ]);
    let port = support::free_port();
    cmd.args(["--port", &port.to_string()]);
    let mut process = support::Guard::spawn(cmd, dir.path(), "emfile");
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let base = format!("http://{addr}");
    support::wait_healthy(&mut process, &base).await;
    let server = support::Server {
        process,
        base,
        addr,
    };
    let mut held = Vec::new();
    for _ in 0..200 {
        match tokio::time::timeout(
            Duration::from_secs(2),
            tokio::net::TcpStream::connect(server.addr),
        )
        .await
        {
            Ok(Ok(s)) => held.push(s),
            _ => break,
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = cpu_time(server.pid());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let used = cpu_time(server.pid()) - before;
    assert!(
        used < Duration::from_millis(300),
        "the server used {used:?} of CPU in 3 s while out of descriptors"
    );
    drop(held);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = server.process.stderr();
    let reports = log.matches("cannot accept a connection").count();
    assert!(
        (1..=2).contains(&reports),
        "expected one rate-limited report, got {reports}:\n{log}"
    );
    // Once connections close the server accepts again.
    let resp = support::http()
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}
