use std::sync::Arc;

use todo_core::{Error, IdempotencyKey, ListQuery, Priority};

use crate::helpers::{backends, new_task, user};

#[tokio::test]
async fn a_repeated_key_returns_the_first_task_and_creates_nothing() {
    for b in backends().await {
        let alice = user("alice");
        let key = IdempotencyKey::parse("retry-123").unwrap();
        let first = b
            .store
            .create(&alice, new_task("pay rent"), Some(&key))
            .await
            .unwrap();
        assert!(!first.replayed);
        let again = b
            .store
            .create(&alice, new_task("pay rent"), Some(&key))
            .await
            .unwrap();
        assert!(again.replayed, "{}", b.name);
        assert_eq!(again.task, first.task, "{}", b.name);
        let all = b.store.list(&alice, &ListQuery::default()).await.unwrap();
        assert_eq!(all.tasks.len(), 1, "{}", b.name);
    }
}

#[tokio::test]
async fn the_same_key_with_a_different_body_is_a_conflict() {
    for b in backends().await {
        let alice = user("alice");
        let key = IdempotencyKey::parse("k").unwrap();
        b.store
            .create(&alice, new_task("a"), Some(&key))
            .await
            .unwrap();
        let mut other = new_task("a");
        other.priority = Priority::High;
        let err = b.store.create(&alice, other, Some(&key)).await.unwrap_err();
        assert!(
            matches!(err, Error::IdempotencyConflict),
            "{}: {err:?}",
            b.name
        );
        let all = b.store.list(&alice, &ListQuery::default()).await.unwrap();
        assert_eq!(all.tasks.len(), 1);
    }
}

#[tokio::test]
async fn keys_are_per_user() {
    for b in backends().await {
        let alice = user("alice");
        let bob = user("bob");
        let key = IdempotencyKey::parse("shared-key").unwrap();
        let a = b
            .store
            .create(&alice, new_task("x"), Some(&key))
            .await
            .unwrap();
        let c = b
            .store
            .create(&bob, new_task("y"), Some(&key))
            .await
            .unwrap();
        assert!(!a.replayed && !c.replayed, "{}", b.name);
        assert_ne!(a.task.id, c.task.id);
        assert_eq!(c.task.user_id, bob.user_id().as_str());
    }
}

#[tokio::test]
async fn a_replay_still_returns_the_task_after_it_was_deleted() {
    for b in backends().await {
        let alice = user("alice");
        let key = IdempotencyKey::parse("k2").unwrap();
        let first = b
            .store
            .create(&alice, new_task("x"), Some(&key))
            .await
            .unwrap();
        b.store.delete(&alice, first.task.id, None).await.unwrap();
        let again = b
            .store
            .create(&alice, new_task("x"), Some(&key))
            .await
            .unwrap();
        assert!(again.replayed, "{}", b.name);
        assert_eq!(again.task.id, first.task.id);
        assert!(
            b.store
                .list(&alice, &ListQuery::default())
                .await
                .unwrap()
                .tasks
                .is_empty()
        );
    }
}

#[tokio::test]
async fn concurrent_creates_with_one_key_create_exactly_one_task() {
    for b in backends().await {
        let alice = user("alice");
        let key = IdempotencyKey::parse("race").unwrap();
        let mut handles = Vec::new();
        for _ in 0..16 {
            let store = Arc::clone(&b.store);
            let alice = alice.clone();
            let key = key.clone();
            handles.push(tokio::spawn(async move {
                store.create(&alice, new_task("once"), Some(&key)).await
            }));
        }
        let mut ids = Vec::new();
        let mut fresh = 0;
        for h in handles {
            let created = h.await.unwrap().unwrap();
            fresh += usize::from(!created.replayed);
            ids.push(created.task.id);
        }
        ids.dedup();
        assert_eq!(ids.len(), 1, "{}: {ids:?}", b.name);
        assert_eq!(fresh, 1, "{}", b.name);
        let all = b.store.list(&alice, &ListQuery::default()).await.unwrap();
        assert_eq!(all.tasks.len(), 1, "{}", b.name);
    }
}
