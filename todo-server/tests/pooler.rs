//! The real binary behind PgBouncer in transaction mode (`scripts/pgbouncer.sh start` prints the
//! URL; `TODO_TEST_POOLER_URL` names it), started as a user would: the pooled URL and
//! `pgbouncer=true`, nothing else. Skipped, loudly, without `TODO_TEST_POOLER_URL`.
#![cfg(unix)]
#![allow(clippy::unwrap_used)] // test helpers panic on setup failures by design

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod support;
use support::{Guard, PG_ENV, SECRET, Server, command, free_port, http, jwt, start_with, unique};

/// The pooled URL of the test database.
const POOLER_ENV: &str = "TODO_TEST_POOLER_URL";

fn pooler_url(what: &str) -> Option<String> {
    match std::env::var(POOLER_ENV) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!("\n*** SKIPPING {what}: {POOLER_ENV} is not set ***\n");
            None
        }
    }
}

/// `url` with `pgbouncer=true` added.
fn flagged(url: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}pgbouncer=true")
}

/// Applies the migrations through the direct URL, when the run has one (a fresh database):
/// behind the pooler without a direct URL the server only opens an up-to-date schema.
async fn migrate_directly(dir: &std::path::Path) {
    if let Ok(direct) = std::env::var(PG_ENV)
        && !direct.is_empty()
    {
        let server = start_with(
            dir,
            "migrate",
            &["--database-url", &direct],
            &[("BETTER_AUTH_SECRET", SECRET)],
        )
        .await;
        server.process.terminate();
    }
}

/// Runs every future of `calls` at once (each on a task of its own): their outputs in order.
async fn all<F, T>(calls: impl IntoIterator<Item = F>) -> Vec<T>
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let handles: Vec<_> = calls.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for handle in handles {
        out.push(handle.await.unwrap());
    }
    out
}

/// Sends `req` and gives its status and body (JSON or null); a transport error is status 0.
async fn send(req: reqwest::RequestBuilder) -> (u16, Value) {
    match req.send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            (status, resp.json().await.unwrap_or(Value::Null))
        }
        Err(_) => (0, Value::Null),
    }
}

#[tokio::test]
async fn behind_a_transaction_pooler_with_only_the_url_flag_nothing_answers_5xx_and_each_acknowledged_create_is_stored_once()
 {
    let Some(pooled) = pooler_url("the binary behind the pooler") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    migrate_directly(dir.path()).await;
    let url = flagged(&pooled);
    let server = start_with(
        dir.path(),
        "pooled",
        &["--database-url", &url],
        &[("BETTER_AUTH_SECRET", SECRET)],
    )
    .await;
    let base = server.base.clone();
    let user = unique("pooler");
    let token = jwt(&user);
    let client = http();
    let tasks = format!("{base}/api/{user}/tasks");
    let mut statuses: HashMap<String, Vec<u16>> = HashMap::new();

    // Concurrent creates (group-committed), keyed creates (each key sent twice) and lists.
    let creates = (0..200).map(|i| {
        let req = client
            .post(&tasks)
            .bearer_auth(&token)
            .json(&json!({"title": format!("c{i}"), "tags": ["work"]}));
        async move { (format!("c{i}"), send(req).await) }
    });
    let keyed = (0..60).map(|i| {
        let key = i % 30;
        let req = client
            .post(&tasks)
            .bearer_auth(&token)
            .header("Idempotency-Key", format!("key-{key}"))
            .json(&json!({"title": format!("k{key}"), "tags": ["work"]}));
        async move { (format!("k{key}"), send(req).await) }
    });
    let lists = [
        "?limit=50",
        "?status=pending&sort=due_date",
        "?q=c1",
        "?tag=work&order=asc",
        "?priority=high",
    ]
    .iter()
    .cycle()
    .take(100)
    .map(|q| {
        let req = client.get(format!("{tasks}{q}")).bearer_auth(&token);
        async move { ("list".to_owned(), send(req).await) }
    });
    let (created, replayed, listed) = tokio::join!(all(creates), all(keyed), all(lists),);
    let mut acknowledged: Vec<String> = Vec::new();
    for (title, (status, _)) in created.iter().chain(&replayed).chain(&listed) {
        statuses.entry(title.clone()).or_default().push(*status);
        if *status == 201 || (*status == 200 && title.starts_with('k')) {
            acknowledged.push(title.clone());
        }
    }

    // Completions of recurring tasks, each completed twice at once.
    let mut recurring = Vec::new();
    for i in 0..10 {
        let (status, task) = send(client.post(&tasks).bearer_auth(&token).json(&json!({
            "title": format!("r{i}"),
            "due_date": "2030-01-01T09:00:00Z",
            "recurrence": "FREQ=DAILY",
        })))
        .await;
        assert_eq!(status, 201, "{task}\n{}", server.process.output());
        recurring.push(task["id"].as_i64().unwrap());
    }
    let completions = recurring.iter().flat_map(|id| {
        let url = format!("{tasks}/{id}/complete");
        [0, 1].map(|_| {
            let req = client.patch(&url).bearer_auth(&token);
            async move { ("complete".to_owned(), send(req).await) }
        })
    });
    for (what, (status, _)) in all(completions).await {
        statuses.entry(what).or_default().push(status);
    }

    // A tag rename over every task, with single reads beside it.
    let rename = send(
        client
            .patch(format!("{base}/api/{user}/tags/work"))
            .bearer_auth(&token)
            .json(&json!({"name": "office"})),
    );
    let gets = recurring.iter().map(|id| {
        let req = client.get(format!("{tasks}/{id}")).bearer_auth(&token);
        async move { ("get".to_owned(), send(req).await) }
    });
    let (renamed, got) = tokio::join!(rename, all(gets));
    statuses
        .entry("rename".to_owned())
        .or_default()
        .push(renamed.0);
    for (what, (status, _)) in got {
        statuses.entry(what).or_default().push(status);
    }

    eprintln!(
        "behind the pooler: {} requests, {} acknowledged creates",
        statuses.values().map(Vec::len).sum::<usize>(),
        acknowledged.len()
    );
    let failed: Vec<(&String, &u16)> = statuses
        .iter()
        .flat_map(|(what, all)| all.iter().map(move |s| (what, s)))
        .filter(|(_, s)| **s >= 500 || **s == 0)
        .collect();
    assert!(
        failed.is_empty(),
        "5xx or transport errors: {failed:?}\n{}",
        server.process.output()
    );
    assert_eq!(renamed.0, 200, "{}", renamed.1);

    // Every acknowledged create is stored exactly once; each key created one task.
    let (status, all) = send(
        client
            .get(format!("{tasks}?limit=1000"))
            .bearer_auth(&token),
    )
    .await;
    assert_eq!(status, 200);
    let mut stored: HashMap<String, usize> = HashMap::new();
    for task in all.as_array().unwrap() {
        *stored
            .entry(task["title"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    for title in &acknowledged {
        assert_eq!(stored.get(title), Some(&1), "{title} stored {stored:?}");
    }
    for i in 0..10 {
        // The task and its one next occurrence.
        assert_eq!(stored.get(&format!("r{i}")), Some(&2), "r{i}: {stored:?}");
    }
    let (status, ready) = send(client.get(format!("{base}/readyz"))).await;
    assert_eq!(status, 200, "{ready}");
    server.process.terminate();
}

#[tokio::test]
async fn behind_a_transaction_pooler_without_the_setting_errors_are_503_and_readyz_fails_naming_the_setting()
 {
    let Some(pooled) = pooler_url("the binary behind the pooler, not told") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    migrate_directly(dir.path()).await;
    let port = free_port();
    let mut cmd = command(dir.path());
    cmd.args(["--database-url", &pooled, "--port", &port.to_string()])
        .env("BETTER_AUTH_SECRET", SECRET);
    let mut process = Guard::spawn(cmd, dir.path(), "unaware");
    let base = format!("http://127.0.0.1:{port}");
    let client = http();
    // Named statements may already be left on the pooler's sessions: the start itself may
    // fail, and must then say why.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = process.exited() {
            eprintln!("the start failed, as it may: {}", process.stderr());
            assert!(!status.success());
            assert!(
                process.stderr().contains("DATABASE_POOLER"),
                "{}",
                process.output()
            );
            return;
        }
        if let Ok(resp) = client.get(format!("{base}/healthz")).send().await
            && resp.status() == 200
        {
            break;
        }
        assert!(Instant::now() < deadline, "{}", process.output());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let server = Server {
        process,
        base: base.clone(),
        addr: format!("127.0.0.1:{port}").parse().unwrap(),
    };
    let user = unique("unaware");
    let token = jwt(&user);
    let tasks = format!("{base}/api/{user}/tasks");
    let creates = (0..100).map(|i| {
        let req = client
            .post(&tasks)
            .bearer_auth(&token)
            .json(&json!({"title": format!("u{i}")}));
        async move { send(req).await.0 }
    });
    let lists = (0..100).map(|_| {
        let req = client.get(&tasks).bearer_auth(&token);
        async move { send(req).await.0 }
    });
    let (a, b) = tokio::join!(all(creates), all(lists));
    let all: Vec<u16> = a.into_iter().chain(b).collect();
    let other_5xx: Vec<&u16> = all.iter().filter(|s| **s >= 500 && **s != 503).collect();
    assert!(
        other_5xx.is_empty(),
        "{other_5xx:?}\n{}",
        server.process.output()
    );
    let unavailable = all.iter().filter(|s| **s == 503).count();
    eprintln!(
        "not told: {unavailable} of {} requests answered 503, {} succeeded",
        all.len(),
        all.iter().filter(|s| **s < 300).count()
    );
    assert!(
        unavailable > 0,
        "no request met the pooler: {all:?}\n{}",
        server.process.output()
    );
    let (status, _) = send(client.get(format!("{base}/readyz"))).await;
    assert_eq!(status, 503, "{}", server.process.output());
    let log = server.process.stderr();
    assert_eq!(
        log.matches("set DATABASE_POOLER=transaction").count(),
        1,
        "one line names the setting:\n{log}"
    );
    server.process.terminate();
}
