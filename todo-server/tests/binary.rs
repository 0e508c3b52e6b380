//! Runs the real `todo-server` binary as an operator would: on a free port, from an empty working
//! directory, over real TCP; stops it with SIGTERM and starts it again on the same database.
#![cfg(unix)] // SIGTERM is sent with `kill -TERM`
#![allow(clippy::unwrap_used)] // test helpers panic on setup failures by design

use std::process::ExitStatus;
use std::time::Duration;

use serde_json::{Value, json};

mod support;
use support::{FAIL_DEADLINE, Guard, STOP_DEADLINE, command, free_port, start, token};

#[tokio::test]
async fn the_binary_serves_stops_on_sigterm_and_keeps_tasks_and_tokens_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("todo.db");
    let url = format!("sqlite://{}", db.display());
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();

    let mut server = start(dir.path(), &url, "first").await;
    let base = server.base.clone();
    let secret_file = dir.path().join("todo.db.secret");
    assert!(
        secret_file.is_file(),
        "the generated secret is kept next to the database"
    );
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = secret_file.metadata().unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the secret file is private: {mode:o}");
    }
    let token = token(dir.path(), &url, "alice");

    let resp = http
        .post(format!("{base}/api/alice/tasks"))
        .bearer_auth(&token)
        .json(&json!({"title": "Survive a restart", "priority": "high"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "{}", server.process.output());
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let created: Value = resp.json().await.unwrap();
    let id = created["id"].as_i64().unwrap();
    assert_eq!(location, format!("/api/alice/tasks/{id}"));
    assert_eq!(created["user_id"], "alice");

    let resp = http.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"status": "ready", "database": "sqlite"})
    );

    let resp = http
        .get(format!("{base}/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let spec: Value = resp.json().await.unwrap();
    assert!(
        spec["openapi"].as_str().unwrap().starts_with("3."),
        "{spec}"
    );
    assert!(spec["paths"]["/{user_id}/tasks"]["post"].is_object());
    assert!(spec["paths"]["/tasks/{id}"]["get"].is_object());

    let resp = http.get(format!("{base}/docs")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    let html = resp.text().await.unwrap().to_lowercase();
    assert!(html.contains("swagger"), "{html}");

    server.process.terminate();
    let status = server.process.wait(STOP_DEADLINE);
    assert!(
        status.success(),
        "SIGTERM is a clean shutdown, got {status}\n{}",
        server.process.output()
    );
    assert!(
        !server.process.stderr().contains("panicked"),
        "{}",
        server.process.output()
    );
    drop(server);

    let server = start(dir.path(), &url, "second").await;
    let base = &server.base;
    let resp = http
        .get(format!("{base}/api/alice/tasks/{id}"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        200,
        "the first run's token still works after a restart\n{}",
        server.process.output()
    );
    assert_eq!(resp.json::<Value>().await.unwrap(), created);
    let resp = http
        .get(format!("{base}/api/tasks"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap(), json!([created]));
}

/// Runs the binary with `args` and `envs` until it exits, and returns its status and stderr.
fn run_failing_start(args: &[&str], envs: &[(&str, &str)]) -> (ExitStatus, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = command(dir.path());
    // A free port, so a configuration that is wrongly accepted fails the deadline, not the bind.
    cmd.args(["--port", &free_port().to_string()]).args(args);
    // A panic would print a backtrace with this set: make sure there is none to print.
    cmd.env("RUST_BACKTRACE", "1");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut process = Guard::spawn(cmd, dir.path(), "bad-config");
    let status = process.wait(FAIL_DEADLINE);
    (status, process.stdout(), process.stderr())
}

fn assert_one_clear_line(case: &str, status: ExitStatus, stdout: &str, stderr: &str, says: &str) {
    let report = format!("{case}: {status}\n--- stdout ---\n{stdout}--- stderr ---\n{stderr}");
    assert!(!status.success(), "{report}");
    assert!(status.code().is_some(), "exited by a signal: {report}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "exactly one line on stderr: {report}");
    assert!(lines[0].starts_with("todo-server: "), "{report}");
    assert!(lines[0].contains(says), "the line says {says:?}: {report}");
    for bad in ["panicked", "backtrace", "RUST_BACKTRACE"] {
        assert!(!stderr.contains(bad), "{report}");
    }
    assert!(
        !stdout.contains("listening"),
        "the server must not start: {report}"
    );
}

#[test]
fn a_bad_configuration_stops_the_start_with_one_clear_line_and_a_failure_exit() {
    let (status, out, err) = run_failing_start(&["--database-url", "mysql://x"], &[]);
    assert_one_clear_line("mysql URL", status, &out, &err, "database URL");

    let (status, out, err) = run_failing_start(&["--database-url", "sqlite://"], &[]);
    assert_one_clear_line(
        "empty SQLite path",
        status,
        &out,
        &err,
        "names no SQLite file",
    );

    let (status, out, err) = run_failing_start(&[], &[("BETTER_AUTH_SECRET", "short")]);
    assert_one_clear_line("short secret", status, &out, &err, "BETTER_AUTH_SECRET");

    let (status, out, err) = run_failing_start(
        &["--database-url", "sqlite:///nonexistent/dir/todo.db"],
        &[],
    );
    assert_one_clear_line("missing directory", status, &out, &err, "/nonexistent/dir");

    // A dialect's template that is not JSON, uses a placeholder it cannot fill, or lacks the
    // one it needs, stops the start naming the setting.
    for (env, value, says) in [
        (
            "LIST_ENVELOPE",
            r#"{"items": "$tasks""#,
            "LIST_ENVELOPE is not valid JSON",
        ),
        (
            "LIST_ENVELOPE",
            r#"{"items": []}"#,
            "LIST_ENVELOPE must contain",
        ),
        (
            "TASK_ENVELOPE",
            r#"{"task": "$tasks"}"#,
            "TASK_ENVELOPE uses the placeholder",
        ),
        (
            "ERROR_ENVELOPE",
            r#"{"error": "$mesage"}"#,
            "ERROR_ENVELOPE uses the unknown placeholder",
        ),
    ] {
        let (status, out, err) =
            run_failing_start(&["--database-url", "sqlite::memory:"], &[(env, value)]);
        assert_one_clear_line(env, status, &out, &err, says);
    }

    let unreachable = format!("postgres://todo@127.0.0.1:{}/todo", free_port());
    let (status, out, err) = run_failing_start(&["--database-url", &unreachable], &[]);
    assert_one_clear_line("unreachable PostgreSQL", status, &out, &err, "database");
}

#[test]
fn a_template_that_repeats_the_tasks_or_a_key_or_an_error_envelope_that_says_nothing_stops_the_start()
 {
    for (env, value, says) in [
        (
            "LIST_ENVELOPE",
            r#"{"a": "$tasks", "b": "$tasks"}"#,
            "LIST_ENVELOPE uses the placeholder \"$tasks\" 2 times",
        ),
        (
            "TASK_ENVELOPE",
            r#"["$task", "$task"]"#,
            "TASK_ENVELOPE uses the placeholder \"$task\" 2 times",
        ),
        (
            "LIST_ENVELOPE",
            r#"{"items": "$tasks", "items": []}"#,
            "LIST_ENVELOPE has the key \"items\" twice",
        ),
        (
            "ERROR_ENVELOPE",
            "{}",
            "ERROR_ENVELOPE must contain the placeholder",
        ),
        (
            "ERROR_ENVELOPE",
            "null",
            "ERROR_ENVELOPE must be a JSON object",
        ),
    ] {
        let (status, out, err) =
            run_failing_start(&["--database-url", "sqlite::memory:"], &[(env, value)]);
        assert_one_clear_line(value, status, &out, &err, says);
    }
}
