//! The real binary behind PgBouncer in transaction mode (`scripts/pgbouncer.sh start` prints the
//! URL; `TODO_TEST_POOLER_URL` names it), started as a user would: the pooled URL and
//! `pgbouncer=true`, nothing else (plus the quotas, a second replica, or Better Auth's session
//! table where a test is about them). Skipped, loudly, without `TODO_TEST_POOLER_URL`.
#![cfg(unix)]
#![allow(clippy::unwrap_used)] // test helpers panic on setup failures by design

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

#[path = "support/mcp_client.rs"]
mod mcp_client;
mod support;
use support::{
    Guard, PG_ENV, POOLER_ENV, SECRET, Server, command, free_port, http, jwt, psql, start_with,
    unique,
};

/// One test's servers at a time: they share PgBouncer's server sessions (40), and what is
/// checked here is correctness, not how tests crowd each other on two CPUs.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// What each test here starts from: the pooled URL (`None`, after saying so, without
/// `TODO_TEST_POOLER_URL`), this test's turn (bind it, `_turn`, to hold it to the end), and a
/// directory with the schema migrated through the direct URL.
struct Behind {
    pooled: String,
    _turn: tokio::sync::MutexGuard<'static, ()>,
    dir: tempfile::TempDir,
}

async fn behind_the_pooler(what: &str) -> Option<Behind> {
    let pooled = pooler_url(what)?;
    let turn = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    migrate_directly(dir.path()).await;
    Some(Behind {
        pooled,
        _turn: turn,
        dir,
    })
}

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

/// Starts the binary on `pooled` with `pgbouncer=true` and `envs` (besides the secret), as a
/// user would behind a transaction pooler.
async fn start_pooled(
    dir: &std::path::Path,
    pooled: &str,
    name: &str,
    envs: &[(&str, &str)],
) -> Server {
    let url = flagged(pooled);
    let mut all = vec![("BETTER_AUTH_SECRET", SECRET)];
    all.extend_from_slice(envs);
    start_with(dir, name, &["--database-url", &url], &all).await
}

/// The requests of `statuses` that answered 5xx or failed in transport (status 0).
fn failures(statuses: &[(String, u16)]) -> Vec<&(String, u16)> {
    statuses
        .iter()
        .filter(|(_, s)| *s >= 500 || *s == 0)
        .collect()
}

/// How many of `token`'s user's tasks carry each title, read through `base`.
async fn stored_titles(
    client: &reqwest::Client,
    base: &str,
    user: &str,
    token: &str,
) -> HashMap<String, usize> {
    let (status, all) = send(
        client
            .get(format!("{base}/api/{user}/tasks?limit=1000"))
            .bearer_auth(token),
    )
    .await;
    assert_eq!(status, 200, "{all}");
    let mut stored: HashMap<String, usize> = HashMap::new();
    for task in all.as_array().unwrap() {
        *stored
            .entry(task["title"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    stored
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
    let Some(Behind { pooled, dir, _turn }) =
        behind_the_pooler("the binary behind the pooler").await
    else {
        return;
    };
    let server = start_pooled(dir.path(), &pooled, "pooled", &[]).await;
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
    let stored = stored_titles(&client, &base, &user, &token).await;
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
    let Some(Behind { pooled, dir, _turn }) =
        behind_the_pooler("the binary behind the pooler, not told").await
    else {
        return;
    };
    not_told(dir.path(), &pooled, "unaware", &[]).await;
    // Quotas (reached here: some creates answer 403) send every create through the pool, in a
    // transaction behind the user's advisory lock, instead of the group commit.
    let quota = [
        ("MAX_TASKS_PER_USER", "40"),
        ("MAX_IDEMPOTENCY_KEYS_PER_USER", "10"),
    ];
    not_told(dir.path(), &pooled, "unaware-quota", &quota).await;
}

/// Asks PgBouncer (its admin console, `pgbouncer` on the same address; `scripts/pgbouncer.sh`
/// makes `postgres` an admin) to close its server sessions once released (`RECONNECT`), so a
/// server not told of the pooler starts on sessions with none of an earlier one's named
/// statements. Where the console cannot be reached, says so and goes on.
fn fresh_server_sessions(pooled: &str) {
    let mut admin = reqwest::Url::parse(pooled).unwrap();
    admin.set_path("/pgbouncer");
    admin.set_query(None);
    let done = std::process::Command::new("psql")
        .args([admin.as_str(), "-Atqc", "RECONNECT"])
        .output();
    match done {
        Ok(out) if out.status.success() => {}
        other => eprintln!("could not RECONNECT PgBouncer's server sessions: {other:?}"),
    }
}

/// Starts the binary on `pooled` with `envs`, not told of the pooler, sends it creates, keyed
/// creates and lists at once, and checks what `behind_a_transaction_pooler_without_the_setting_...`
/// says. A start that fails (named statements already left on the pooler's sessions) must say
/// why, and ends the check.
async fn not_told(dir: &std::path::Path, pooled: &str, name: &str, envs: &[(&str, &str)]) {
    fresh_server_sessions(pooled);
    let port = free_port();
    let mut cmd = command(dir);
    cmd.args(["--database-url", pooled, "--port", &port.to_string()])
        .env("BETTER_AUTH_SECRET", SECRET)
        .envs(envs.iter().copied());
    let mut process = Guard::spawn(cmd, dir, name);
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
    let user = unique(name);
    let token = jwt(&user);
    let tasks = format!("{base}/api/{user}/tasks");
    let creates = (0..100).map(|i| {
        let req = client
            .post(&tasks)
            .bearer_auth(&token)
            .json(&json!({"title": format!("u{i}")}));
        async move { send(req).await.0 }
    });
    // Keyed creates run on the pool (a transaction of several statements), not the group commit.
    let keyed = (0..100).map(|i| {
        let req = client
            .post(&tasks)
            .bearer_auth(&token)
            .header("Idempotency-Key", format!("key-{i}"))
            .json(&json!({"title": format!("k{i}")}));
        async move { send(req).await.0 }
    });
    let lists = (0..100).map(|_| {
        let req = client.get(&tasks).bearer_auth(&token);
        async move { send(req).await.0 }
    });
    let (a, b, c) = tokio::join!(all(creates), all(keyed), all(lists));
    let all: Vec<u16> = a.into_iter().chain(b).chain(c).collect();
    let other_5xx: Vec<&u16> = all.iter().filter(|s| **s >= 500 && **s != 503).collect();
    let log = server.process.stderr();
    let errors: Vec<&str> = log.lines().filter(|l| l.contains("ERROR")).collect();
    assert!(other_5xx.is_empty(), "{other_5xx:?}\n{}", errors.join("\n"));
    let unavailable = all.iter().filter(|s| **s == 503).count();
    eprintln!(
        "{name}: {unavailable} of {} requests answered 503, {} succeeded",
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
    assert_eq!(
        log.matches("set DATABASE_POOLER=transaction").count(),
        1,
        "one line names the setting:\n{log}"
    );
    server.process.terminate();
}

#[tokio::test]
async fn behind_a_transaction_pooler_with_quotas_on_concurrent_creates_stop_exactly_at_the_quota_and_nothing_answers_5xx()
 {
    let Some(Behind { pooled, dir, _turn }) = behind_the_pooler("quotas behind the pooler").await
    else {
        return;
    };
    let quotas = [
        ("MAX_TASKS_PER_USER", "40"),
        ("MAX_IDEMPOTENCY_KEYS_PER_USER", "10"),
    ];
    let server = start_pooled(dir.path(), &pooled, "quotas", &quotas).await;
    let base = server.base.clone();
    let client = http();

    // One user: 100 creates at once against a quota of 40 tasks.
    let user = unique("quota");
    let token = jwt(&user);
    let tasks = format!("{base}/api/{user}/tasks");
    let creates = (0..100).map(|i| {
        let req = client
            .post(&tasks)
            .bearer_auth(&token)
            .json(&json!({"title": format!("q{i}")}));
        async move { (format!("q{i}"), send(req).await.0) }
    });
    // Another: 30 idempotency keys, each sent twice at once, against a quota of 10 keys.
    let keyed_user = unique("keyquota");
    let keyed_token = jwt(&keyed_user);
    let keyed_tasks = format!("{base}/api/{keyed_user}/tasks");
    let keyed = (0..60).map(|i| {
        let key = i % 30;
        let req = client
            .post(&keyed_tasks)
            .bearer_auth(&keyed_token)
            .header("Idempotency-Key", format!("key-{key}"))
            .json(&json!({"title": format!("k{key}")}));
        async move { (format!("k{key}"), send(req).await.0) }
    });
    let (created, keyed) = tokio::join!(all(creates), all(keyed));
    let every: Vec<(String, u16)> = created.iter().chain(&keyed).cloned().collect();
    let failed = failures(&every);
    assert!(
        failed.is_empty(),
        "5xx or transport errors: {failed:?}\n{}",
        server.process.output()
    );
    let count =
        |list: &[(String, u16)], status: u16| list.iter().filter(|(_, s)| *s == status).count();
    eprintln!(
        "quotas behind the pooler: creates {} x 201, {} x 403; keyed {} x 201, {} x 200, {} x 403",
        count(&created, 201),
        count(&created, 403),
        count(&keyed, 201),
        count(&keyed, 200),
        count(&keyed, 403)
    );

    // Exactly the quota was created, each acknowledged create stored once; the rest were 403.
    assert_eq!(count(&created, 201), 40, "{created:?}");
    assert_eq!(count(&created, 403), 60, "{created:?}");
    let stored = stored_titles(&client, &base, &user, &token).await;
    assert_eq!(stored.values().sum::<usize>(), 40, "{stored:?}");
    for (title, _) in created.iter().filter(|(_, s)| *s == 201) {
        assert_eq!(stored.get(title), Some(&1), "{title} stored {stored:?}");
    }

    // Exactly ten keys were taken, each created one task; a replay of a held key succeeded.
    let unexpected: Vec<_> = keyed
        .iter()
        .filter(|(_, s)| ![200, 201, 403].contains(s))
        .collect();
    assert!(unexpected.is_empty(), "{unexpected:?}");
    let acknowledged: HashSet<&String> = keyed
        .iter()
        .filter(|(_, s)| *s < 300)
        .map(|(title, _)| title)
        .collect();
    assert_eq!(acknowledged.len(), 10, "{keyed:?}");
    let stored = stored_titles(&client, &base, &keyed_user, &keyed_token).await;
    assert_eq!(stored.values().sum::<usize>(), 10, "{stored:?}");
    for title in &acknowledged {
        assert_eq!(stored.get(*title), Some(&1), "{title} stored {stored:?}");
    }
    server.process.terminate();
}

/// Calls `tool` through `client`: its structured answer, or why it failed (a transport or
/// protocol error, or a tool error).
async fn tool(client: &mcp_client::Client, tool: &str, args: Value) -> Result<Value, String> {
    let result = mcp_client::call_raw(client, tool, args)
        .await
        .map_err(|e| format!("{tool}: {e}"))?;
    if result.is_error == Some(true) {
        return Err(format!("{tool}: {:?}", result.content));
    }
    result
        .structured_content
        .ok_or_else(|| format!("{tool}: no structured content"))
}

#[tokio::test]
async fn behind_a_transaction_pooler_mcp_tool_calls_succeed_and_each_added_task_is_stored_once() {
    let Some(Behind { pooled, dir, _turn }) = behind_the_pooler("MCP behind the pooler").await
    else {
        return;
    };
    let server = start_pooled(dir.path(), &pooled, "mcp", &[]).await;
    let user = unique("mcp");
    let token = jwt(&user);

    // Eight MCP clients at once, each adding ten tasks (the first repeating), listing with
    // filters, renaming one, completing two (one repeating) and deleting one.
    let sessions = (0..8).map(|c| {
        let base = server.base.clone();
        let token = token.clone();
        async move {
            let client = mcp_client::connect(&base, &token)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            let mut ids = Vec::new();
            for i in 0..10 {
                let mut args = json!({"title": format!("m{c}-{i}"), "tags": ["mcp"]});
                if i == 0 {
                    args["due_date"] = json!("2030-01-01T09:00:00Z");
                    args["recurrence"] = json!("FREQ=DAILY");
                }
                let added = tool(&client, "add_task", args).await?;
                ids.push(added["task_id"].as_i64().ok_or("add_task: no task_id")?);
            }
            tool(&client, "list_tasks", json!({"tag": "mcp", "limit": 5})).await?;
            let mine = tool(
                &client,
                "list_tasks",
                json!({"q": format!("m{c}-"), "status": "pending"}),
            )
            .await?;
            if mine["tasks"].as_array().map(Vec::len) != Some(10) {
                return Err(format!("client {c} listed {mine}"));
            }
            let renamed = json!({"task_id": ids[1], "title": format!("m{c}-1 renamed")});
            tool(&client, "update_task", renamed).await?;
            tool(&client, "complete_task", json!({"task_id": ids[0]})).await?;
            tool(&client, "complete_task", json!({"task_id": ids[2]})).await?;
            tool(&client, "delete_task", json!({"task_id": ids[3]})).await?;
            client.cancel().await.map_err(|e| format!("cancel: {e}"))?;
            Ok::<(), String>(())
        }
    });
    let outcomes = all(sessions).await;
    let failed: Vec<&String> = outcomes.iter().filter_map(|o| o.as_ref().err()).collect();
    assert!(failed.is_empty(), "{failed:?}\n{}", server.process.output());

    // Each client's tasks, each stored once: the repeating one and its next occurrence, the
    // renamed one, the completed one and the six untouched; the deleted one is gone.
    let stored = stored_titles(&http(), &server.base, &user, &token).await;
    for c in 0..8 {
        let mut expected = vec![
            (format!("m{c}-0"), 2),
            (format!("m{c}-1 renamed"), 1),
            (format!("m{c}-2"), 1),
        ];
        expected.extend((4..10).map(|i| (format!("m{c}-{i}"), 1)));
        for (title, times) in expected {
            assert_eq!(stored.get(&title), Some(&times), "{title}: {stored:?}");
        }
        assert_eq!(stored.get(&format!("m{c}-3")), None, "deleted: {stored:?}");
    }
    assert_eq!(stored.values().sum::<usize>(), 8 * 10, "{stored:?}");
    server.process.terminate();
}

#[tokio::test]
async fn two_replicas_on_one_pooled_url_take_concurrent_writes_with_no_5xx_and_store_each_acknowledged_create_once()
 {
    let Some(Behind { pooled, dir, _turn }) =
        behind_the_pooler("two replicas behind the pooler").await
    else {
        return;
    };
    let a = start_pooled(dir.path(), &pooled, "replica-a", &[]).await;
    let b = start_pooled(dir.path(), &pooled, "replica-b", &[]).await;
    let replicas = [a.base.clone(), b.base.clone()];
    let output = || {
        format!(
            "replica a:\n{}\nreplica b:\n{}",
            a.process.output(),
            b.process.output()
        )
    };
    let user = unique("replicas");
    let token = jwt(&user);
    let client = http();
    let tasks = |i: usize| format!("{}/api/{user}/tasks", replicas[i % 2]);

    // Creates through both at once (group-committed on each), each key sent to both replicas at
    // once, and lists on both.
    let creates = (0..300).map(|i| {
        let req = client
            .post(tasks(i))
            .bearer_auth(&token)
            .json(&json!({"title": format!("c{i}"), "tags": ["work"]}));
        async move { (format!("c{i}"), send(req).await.0) }
    });
    let keyed = (0..80).map(|i| {
        let key = i / 2;
        let req = client
            .post(tasks(i))
            .bearer_auth(&token)
            .header("Idempotency-Key", format!("key-{key}"))
            .json(&json!({"title": format!("k{key}")}));
        async move { (format!("k{key}"), send(req).await.0) }
    });
    let lists = (0..60).map(|i| {
        let query = ["?limit=50", "?tag=work&sort=due_date", "?q=c1"][i % 3];
        let req = client
            .get(format!("{}{query}", tasks(i)))
            .bearer_auth(&token);
        async move { ("list".to_owned(), send(req).await.0) }
    });
    let (created, keyed, listed) = tokio::join!(all(creates), all(keyed), all(lists));

    // Repeating tasks, each completed on both replicas at once.
    let mut repeating = Vec::new();
    for i in 0..10 {
        let (status, task) = send(client.post(tasks(i)).bearer_auth(&token).json(&json!({
            "title": format!("r{i}"),
            "due_date": "2030-01-01T09:00:00Z",
            "recurrence": "FREQ=DAILY",
        })))
        .await;
        assert_eq!(status, 201, "{task}\n{}", output());
        repeating.push(task["id"].as_i64().unwrap());
    }
    let completions = repeating.iter().flat_map(|id| {
        [0, 1].map(|replica| {
            let req = client
                .patch(format!("{}/{id}/complete", tasks(replica)))
                .bearer_auth(&token);
            async move { ("complete".to_owned(), send(req).await.0) }
        })
    });
    let completed = all(completions).await;

    let every: Vec<(String, u16)> = created
        .iter()
        .chain(&keyed)
        .chain(&listed)
        .chain(&completed)
        .cloned()
        .collect();
    let failed = failures(&every);
    eprintln!(
        "two replicas behind the pooler: {} requests, {} failed",
        every.len(),
        failed.len()
    );
    assert!(
        failed.is_empty(),
        "5xx or transport errors: {failed:?}\n{}",
        output()
    );

    // Every acknowledged create is stored exactly once, each key created one task, and each
    // repeating task has exactly one next occurrence.
    let stored = stored_titles(&client, &replicas[1], &user, &token).await;
    for (title, status) in created.iter().chain(&keyed) {
        if *status == 200 || *status == 201 {
            assert_eq!(stored.get(title), Some(&1), "{title} stored {stored:?}");
        }
    }
    for i in 0..10 {
        assert_eq!(stored.get(&format!("r{i}")), Some(&2), "r{i}: {stored:?}");
    }
    for base in &replicas {
        let (status, ready) = send(client.get(format!("{base}/readyz"))).await;
        assert_eq!(status, 200, "{base}: {ready}");
    }
    a.process.terminate();
    b.process.terminate();
}

/// A schema of its own for a test's tables, dropped (with them) when the test ends.
struct Schema {
    url: String,
    name: String,
}

impl Drop for Schema {
    fn drop(&mut self) {
        let _ = std::panic::catch_unwind(|| {
            psql(
                &self.url,
                &format!("drop schema if exists {} cascade", self.name),
            )
        });
    }
}

/// An opaque session token shaped like Better Auth's (32 letters and digits).
fn opaque_token() -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    (0..32)
        .map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char)
        .collect()
}

#[tokio::test]
async fn behind_a_transaction_pooler_better_auth_session_tokens_are_checked_on_every_request() {
    let Some(Behind { pooled, dir, _turn }) =
        behind_the_pooler("Better Auth sessions behind the pooler").await
    else {
        return;
    };
    // The table is made the way Better Auth's migration makes it, on the direct URL when the run
    // has one.
    let admin = std::env::var(PG_ENV)
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| pooled.clone());
    let schema = Schema {
        url: admin.clone(),
        name: unique("pooler_sessions_"),
    };
    let table = format!("{}.session", schema.name);
    let (live, expired) = (opaque_token(), opaque_token());
    let session_user = unique("ba-user-");
    psql(
        &admin,
        &format!(
            r#"create schema {schema};
               create table {table} ("id" text primary key, "expiresAt" timestamptz not null,
                 "token" text not null unique, "userId" text not null);
               insert into {table} ("id", "token", "userId", "expiresAt") values
                 ('s1', '{live}', '{session_user}', now() + interval '1 hour'),
                 ('s2', '{expired}', '{session_user}', now() - interval '1 hour')"#,
            schema = schema.name
        ),
    );
    // The session URL as a user copies it: the pooled address, without the flag the task
    // database's URL carries.
    let envs = [
        ("SESSION_DATABASE_URL", pooled.as_str()),
        ("SESSION_TABLE", table.as_str()),
    ];
    let server = start_pooled(dir.path(), &pooled, "sessions", &envs).await;
    let client = http();
    let tasks = server.url("/api/tasks");

    // 200 requests at once with the live session token, each looked up in the session table.
    let creates = (0..100).map(|i| {
        let req = client
            .post(&tasks)
            .bearer_auth(&live)
            .json(&json!({"title": format!("s{i}")}));
        async move { (format!("s{i}"), send(req).await.0) }
    });
    let lists = (0..100).map(|_| {
        let req = client.get(&tasks).bearer_auth(&live);
        async move { ("list".to_owned(), send(req).await.0) }
    });
    let (created, listed) = tokio::join!(all(creates), all(lists));
    let refused: Vec<&(String, u16)> = created
        .iter()
        .chain(&listed)
        .filter(|(_, s)| *s >= 300 || *s == 0)
        .collect();
    eprintln!(
        "sessions behind the pooler: {} of 200 requests refused",
        refused.len()
    );
    assert!(
        refused.is_empty(),
        "a live session was refused: {refused:?}\n{}",
        server.process.output()
    );
    let stored = stored_titles(&client, &server.base, &session_user, &live).await;
    for (title, _) in &created {
        assert_eq!(stored.get(title), Some(&1), "{title} stored {stored:?}");
    }

    // An expired session and an unknown token are still 401.
    for (what, token) in [("expired", expired), ("unknown", opaque_token())] {
        let (status, body) = send(client.get(&tasks).bearer_auth(&token)).await;
        assert_eq!(status, 401, "{what}: {body}");
    }
    server.process.terminate();
}
