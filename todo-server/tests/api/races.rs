//! Tag renames and removals racing edits of the same tasks' tags, over HTTP, on every backend:
//! no acknowledged write is lost, and no version stands for two states of a task.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Value, json};

use poem::test::TestResponse;

use crate::helpers::{TestApp, apps, bearer, create, header, json, send, user};

const TASKS: usize = 300;
const WRITERS: usize = 4;
const ROUNDS: usize = 4;

/// One acknowledged write: the task, and the version and tags its answer carried.
struct Acked {
    id: i64,
    version: i64,
    tags: Value,
}

/// The version a task answer's `ETag` (`"<id>-<version>"`) names.
fn version(resp: &TestResponse) -> i64 {
    let etag = header(resp, "etag").unwrap();
    let (_, version) = etag.trim_matches('"').rsplit_once('-').unwrap();
    version.parse().unwrap()
}

/// Task `id`: its version and its JSON.
async fn read(app: &TestApp, token: &str, id: i64) -> (i64, Value) {
    let resp = app
        .client
        .get(format!("/api/tasks/{id}"))
        .header("authorization", bearer(token))
        .send()
        .await;
    assert_eq!(resp.0.status(), 200, "{}", app.name);
    (version(&resp), json(resp).await)
}

/// Writes `tags` to each of `ids` once (PUT for even ids, PATCH for odd ones): every answer must
/// be 200.
async fn write_each(app: &TestApp, token: &str, ids: &[i64], tags: &Value) -> Vec<Acked> {
    let mut acked = Vec::new();
    for &id in ids {
        let path = format!("/api/tasks/{id}");
        let req = if id % 2 == 0 {
            let body = json!({"title": format!("task {id}"), "tags": tags});
            app.client.put(path).body_json(&body)
        } else {
            app.client.patch(path).body_json(&json!({"tags": tags}))
        };
        let resp = req.header("authorization", bearer(token)).send().await;
        assert_eq!(resp.0.status(), 200, "{}: task {id}", app.name);
        let version = version(&resp);
        let task = json(resp).await;
        acked.push(Acked {
            id,
            version,
            tags: task["tags"].clone(),
        });
    }
    acked
}

/// Renames `foo` to `bar` and back (or, for a removal round, removes `foo`) until `done`: each
/// answer is 200, or 404 when no task carries the tag at that moment.
async fn retag_until(app: &TestApp, token: &str, removal: bool, done: &AtomicBool) -> usize {
    let mut ran = 0;
    let mut from = "foo";
    while !done.load(Ordering::Relaxed) {
        let (status, body) = if removal {
            send(app, "DELETE", "/api/tags/foo", token, Value::Null).await
        } else {
            let to = if from == "foo" { "bar" } else { "foo" };
            let answer = send(
                app,
                "PATCH",
                &format!("/api/tags/{from}"),
                token,
                json!({"name": to}),
            )
            .await;
            from = to;
            answer
        };
        assert!(
            status == 200 || status == 404,
            "{}: {status} {body}",
            app.name
        );
        ran += 1;
    }
    ran
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tag_renames_and_removals_racing_edits_of_the_same_tasks_lose_no_acknowledged_write() {
    for app in apps().await {
        let app = Arc::new(app);
        let (me, token) = user();
        let token = Arc::new(token);
        let start = json!(["foo", "keep"]);
        let mut ids = Vec::new();
        for i in 0..TASKS {
            let body = json!({"title": format!("task {i}"), "tags": start});
            ids.push(
                create(&app, &me, &token, body).await["id"]
                    .as_i64()
                    .unwrap(),
            );
        }
        for round in 0..ROUNDS {
            let removal = round % 2 == 1;
            if round > 0 {
                write_each(&app, &token, &ids, &start).await;
            }
            let marker = format!("round {round}");
            let tags = json!(["foo", "keep", marker]);
            let done = Arc::new(AtomicBool::new(false));
            let retagger = {
                let (app, token, done) = (app.clone(), token.clone(), done.clone());
                tokio::spawn(async move { retag_until(&app, &token, removal, &done).await })
            };
            let mut writers = Vec::new();
            for w in 0..WRITERS {
                let mine: Vec<i64> = ids.iter().skip(w).step_by(WRITERS).copied().collect();
                let (app, token, tags) = (app.clone(), token.clone(), tags.clone());
                writers.push(tokio::spawn(async move {
                    write_each(&app, &token, &mine, &tags).await
                }));
            }
            let mut acked = Vec::new();
            for w in writers {
                acked.extend(w.await.unwrap());
            }
            done.store(true, Ordering::Relaxed);
            let retags = retagger.await.unwrap();
            assert!(retags > 0, "{}: no rename or removal ran", app.name);

            // Each task's last acknowledged write, with the renames applied before or after it.
            let allowed: Vec<Value> = if removal {
                vec![tags.clone(), json!(["keep", marker])]
            } else {
                vec![tags.clone(), json!(["bar", "keep", marker])]
            };
            let mut lost = Vec::new();
            for a in &acked {
                let (version, now) = read(&app, &token, a.id).await;
                if !allowed.contains(&now["tags"]) {
                    lost.push((a.id, now["tags"].clone()));
                }
                assert!(version >= a.version, "{}: task {}", app.name, a.id);
                if version == a.version {
                    assert_eq!(
                        now["tags"], a.tags,
                        "{}: version {version} reused",
                        app.name
                    );
                }
            }
            assert!(
                lost.is_empty(),
                "{} round {round}: {} of {TASKS} acknowledged writes lost, e.g. {:?}",
                app.name,
                lost.len(),
                lost.first()
            );
        }
    }
}
