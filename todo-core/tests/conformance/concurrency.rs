use std::sync::Arc;

use todo_core::{TaskPatch, Title};

use crate::helpers::{backends, create, user};

/// 32 tasks, 50 concurrent writes to each: every acknowledged write is there afterwards, and no
/// "database is locked" (or any other error) reaches a caller.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_are_all_acknowledged_and_all_present() {
    for b in backends().await {
        let alice = user("alice");
        let mut ids = Vec::new();
        for i in 0..32 {
            ids.push(create(&b.store, &alice, &format!("task {i}")).await.id);
        }
        let mut handles = Vec::new();
        for &id in &ids {
            for w in 0..50 {
                let store = Arc::clone(&b.store);
                let alice = alice.clone();
                handles.push(tokio::spawn(async move {
                    let patch = TaskPatch {
                        title: Some(Title::parse(&format!("write {w}")).unwrap()),
                        ..TaskPatch::default()
                    };
                    store
                        .patch(&alice, id, patch, None)
                        .await
                        .map(|t| t.version)
                }));
            }
        }
        let mut acknowledged = 0;
        for h in handles {
            match h.await.unwrap() {
                Ok(_) => acknowledged += 1,
                Err(e) => panic!("{}: a concurrent write failed: {e:?}", b.name),
            }
        }
        assert_eq!(acknowledged, 32 * 50);
        for &id in &ids {
            let t = b.store.get(&alice, id).await.unwrap();
            // Every one of the 50 acknowledged writes bumped the version exactly once.
            assert_eq!(t.version, 51, "{}: task {id}", b.name);
        }
    }
}

/// On a SQLite file, writes are group-committed: every acknowledged create must be there after
/// the store is closed and reopened, including keyed creates that take the other write path.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_acknowledged_sqlite_write_survives_a_reopen() {
    use todo_core::{IdempotencyKey, Limit, ListQuery, StoreOptions};
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("durable.db").display());
    let store = todo_core::open(&url, StoreOptions::default())
        .await
        .unwrap();
    let alice = user("alice");
    let mut handles = Vec::new();
    for i in 0..400 {
        let store = Arc::clone(&store);
        let alice = alice.clone();
        handles.push(tokio::spawn(async move {
            let key = (i % 10 == 0).then(|| IdempotencyKey::parse(&format!("k{i}")).unwrap());
            store
                .create(
                    &alice,
                    crate::helpers::new_task(&format!("t{i}")),
                    key.as_ref(),
                )
                .await
                .map(|c| c.task.id)
        }));
    }
    let mut acknowledged = Vec::new();
    for h in handles {
        acknowledged.push(h.await.unwrap().expect("no write may fail"));
    }
    store.close().await;
    let reopened = todo_core::open(&url, StoreOptions::default())
        .await
        .unwrap();
    let all = reopened
        .list(
            &alice,
            &ListQuery {
                limit: Limit::new(1000).unwrap(),
                ..ListQuery::default()
            },
        )
        .await
        .unwrap();
    let mut stored: Vec<i64> = all.tasks.iter().map(|t| t.id).collect();
    stored.sort();
    acknowledged.sort();
    assert_eq!(stored, acknowledged);
}
