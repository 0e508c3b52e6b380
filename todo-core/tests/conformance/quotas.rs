//! Per-user quotas (`StoreOptions::max_tasks_per_user`, `max_idempotency_keys_per_user`).

use std::sync::Arc;

use todo_core::{Error, IdempotencyKey, Limit, ListQuery, Quota, StoreOptions};

use crate::helpers::{Backend, backends_with, create, new_task, user};

fn key(k: &str) -> IdempotencyKey {
    IdempotencyKey::parse(k).unwrap()
}

async fn count(b: &Backend, who: &todo_core::Principal) -> usize {
    let all = ListQuery {
        limit: Limit::new(1000).unwrap(),
        ..ListQuery::default()
    };
    b.store.list(who, &all).await.unwrap().tasks.len()
}

/// At the task quota, plain and keyed creates are refused and store nothing; replaying a key
/// creates nothing and still succeeds; a delete makes room again; other users are not counted.
#[tokio::test]
async fn creates_beyond_the_task_quota_are_refused_but_a_replay_still_succeeds() {
    let options = StoreOptions {
        max_tasks_per_user: Some(3),
        ..StoreOptions::default()
    };
    for b in backends_with(options).await {
        let alice = user("alice");
        let first = create(&b.store, &alice, "one").await;
        create(&b.store, &alice, "two").await;
        let keyed = b
            .store
            .create(&alice, new_task("three"), Some(&key("k1")))
            .await
            .unwrap();
        let over = [
            b.store.create(&alice, new_task("four"), None).await,
            b.store
                .create(&alice, new_task("four"), Some(&key("k2")))
                .await,
        ];
        for refused in over {
            assert!(
                matches!(
                    refused,
                    Err(Error::QuotaExceeded {
                        what: Quota::Tasks,
                        limit: 3
                    })
                ),
                "{}: {refused:?}",
                b.name
            );
        }
        let replay = b
            .store
            .create(&alice, new_task("three"), Some(&key("k1")))
            .await
            .unwrap();
        assert!(replay.replayed, "{}", b.name);
        assert_eq!(replay.task, keyed.task, "{}", b.name);
        assert_eq!(count(&b, &alice).await, 3, "{}", b.name);
        // The refused keyed create did not keep its key: once there is room, it creates.
        b.store.delete(&alice, first.id, None).await.unwrap();
        let retried = b
            .store
            .create(&alice, new_task("four"), Some(&key("k2")))
            .await
            .unwrap();
        assert!(!retried.replayed, "{}", b.name);
        let bob = user("bob");
        create(&b.store, &bob, "bob's").await;
    }
}

/// Many creates of one user at once (plain and keyed) never take the user past the quota:
/// exactly `limit` succeed, the rest are refused as over quota, and `limit` tasks are stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_never_overshoot_the_task_quota() {
    const LIMIT: u64 = 10;
    let options = StoreOptions {
        max_tasks_per_user: Some(LIMIT),
        ..StoreOptions::default()
    };
    for b in backends_with(options).await {
        let alice = user("alice");
        let mut handles = Vec::new();
        for i in 0..60 {
            let store = Arc::clone(&b.store);
            let alice = alice.clone();
            handles.push(tokio::spawn(async move {
                let key = (i % 3 == 0).then(|| key(&format!("k{i}")));
                store
                    .create(&alice, new_task(&format!("t{i}")), key.as_ref())
                    .await
            }));
        }
        let mut created = 0;
        for h in handles {
            match h.await.unwrap() {
                Ok(_) => created += 1,
                Err(Error::QuotaExceeded {
                    what: Quota::Tasks,
                    limit: LIMIT,
                }) => {}
                Err(other) => panic!("{}: {other:?}", b.name),
            }
        }
        assert_eq!(created, LIMIT, "{}", b.name);
        assert_eq!(count(&b, &alice).await as u64, LIMIT, "{}", b.name);
    }
}

/// At the key quota, a new key is refused (and creates nothing), a held key still replays, a
/// create without a key is not counted, and other users have keys of their own. Concurrent new
/// keys of one user never overshoot it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn new_idempotency_keys_beyond_the_key_quota_are_refused() {
    const LIMIT: u64 = 2;
    let options = StoreOptions {
        max_idempotency_keys_per_user: Some(LIMIT),
        ..StoreOptions::default()
    };
    for b in backends_with(options).await {
        let alice = user("alice");
        let first = b
            .store
            .create(&alice, new_task("a"), Some(&key("k1")))
            .await
            .unwrap();
        b.store
            .create(&alice, new_task("b"), Some(&key("k2")))
            .await
            .unwrap();
        let refused = b
            .store
            .create(&alice, new_task("c"), Some(&key("k3")))
            .await;
        assert!(
            matches!(
                refused,
                Err(Error::QuotaExceeded {
                    what: Quota::IdempotencyKeys,
                    limit: LIMIT
                })
            ),
            "{}: {refused:?}",
            b.name
        );
        let replay = b
            .store
            .create(&alice, new_task("a"), Some(&key("k1")))
            .await
            .unwrap();
        assert!(replay.replayed && replay.task == first.task, "{}", b.name);
        create(&b.store, &alice, "no key").await;
        assert_eq!(count(&b, &alice).await, 3, "{}", b.name);
        let bob = user("bob");
        b.store
            .create(&bob, new_task("a"), Some(&key("k3")))
            .await
            .unwrap();

        let carol = user("carol");
        let mut handles = Vec::new();
        for i in 0..20 {
            let store = Arc::clone(&b.store);
            let carol = carol.clone();
            handles.push(tokio::spawn(async move {
                store
                    .create(&carol, new_task("t"), Some(&key(&format!("k{i}"))))
                    .await
            }));
        }
        let mut created = 0;
        for h in handles {
            match h.await.unwrap() {
                Ok(_) => created += 1,
                Err(Error::QuotaExceeded {
                    what: Quota::IdempotencyKeys,
                    ..
                }) => {}
                Err(other) => panic!("{}: {other:?}", b.name),
            }
        }
        assert_eq!(created, LIMIT, "{}", b.name);
        assert_eq!(count(&b, &carol).await as u64, LIMIT, "{}", b.name);
    }
}
