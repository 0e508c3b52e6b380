//! A database with no room left: every write path answers `Error::OutOfSpace`, on both backends,
//! and nothing acknowledged is lost.

use std::sync::Arc;

use todo_core::{
    Description, Error, IdempotencyKey, Limit, ListQuery, StoreOptions, Tags, TaskPatch, Title,
};

use crate::helpers::{new_task, pg_url, user};

fn out_of_space<T: std::fmt::Debug>(what: &str, r: Result<T, Error>) {
    assert!(matches!(r, Err(Error::OutOfSpace(_))), "{what}: {r:?}");
}

/// A SQLite file capped at 256 KiB (`sqlite_max_size_bytes`) is filled by concurrent creates
/// until they fail: they fail as out of space, and so do plain and keyed creates, updates that
/// need room and registrations afterwards. Every create acknowledged is stored and no other,
/// deletes and small updates still work, the file passes `integrity_check`, and it stays within
/// its cap.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_sqlite_database_refuses_every_write_as_out_of_space_and_loses_nothing() {
    const CAP: u64 = 256 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("full.db");
    let options = StoreOptions {
        sqlite_max_size_bytes: Some(CAP),
        ..StoreOptions::default()
    };
    let opened = todo_core::open_store(&format!("sqlite://{}", path.display()), options)
        .await
        .unwrap();
    let store = opened.tasks;
    let alice = user("alice");

    // Fill it, 32 creates at a time (group-committed together), until a round fails.
    let mut acknowledged = Vec::new();
    let mut full = false;
    for round in 0..200 {
        let mut handles = Vec::new();
        for i in 0..32 {
            let store = Arc::clone(&store);
            let alice = alice.clone();
            handles.push(tokio::spawn(async move {
                let title = format!("task {round}-{i} {}", "x".repeat(100));
                store.create(&alice, new_task(&title), None).await
            }));
        }
        for h in handles {
            match h.await.unwrap() {
                Ok(created) => acknowledged.push(created.task),
                Err(Error::OutOfSpace(_)) => full = true,
                Err(other) => panic!("a create failed otherwise: {other:?}"),
            }
        }
        if full {
            break;
        }
    }
    assert!(full, "the database never filled up");
    assert!(!acknowledged.is_empty());

    // The last pages may still hold a small task or two; the largest one does not fit.
    let big = || {
        let mut t = new_task(&"z".repeat(200));
        t.description = Some(Description::parse(&"d".repeat(1000)).unwrap());
        t
    };
    let refused = loop {
        match store.create(&alice, big(), None).await {
            Ok(created) => acknowledged.push(created.task),
            refused => break refused,
        }
        assert!(acknowledged.len() < 10_000);
    };
    out_of_space("plain create", refused);
    let key = IdempotencyKey::parse("k").unwrap();
    out_of_space(
        "keyed create",
        store.create(&alice, big(), Some(&key)).await,
    );
    let grow = TaskPatch {
        title: Some(Title::parse(&"y".repeat(200)).unwrap()),
        description: Some(Some(Description::parse(&"e".repeat(1000)).unwrap())),
        // Twenty long tags: about 2 KB more in the row and twenty index entries.
        tags: Some(
            Tags::parse(
                (0..20)
                    .map(|i| format!("{i:02}{}", "t".repeat(48)))
                    .collect::<Vec<_>>()
                    .iter()
                    .map(String::as_str),
            )
            .unwrap(),
        ),
        ..TaskPatch::default()
    };
    out_of_space(
        "update",
        store.patch(&alice, acknowledged[0].id, grow, None).await,
    );
    // The accounts table has pages of its own: register until they are full too.
    let mut accounts = Vec::new();
    let refused = loop {
        let email = format!("user{}@example.com", accounts.len());
        match opened
            .accounts
            .register(&email, "correct horse", Some(&"n".repeat(100)))
            .await
        {
            Ok(account) => accounts.push(account),
            refused => break refused,
        }
        assert!(accounts.len() < 1000);
    };
    out_of_space("register", refused);
    for account in &accounts {
        let again = opened
            .accounts
            .login(&account.email, "correct horse")
            .await
            .unwrap();
        assert_eq!(&again, account);
    }

    // Every acknowledged create is there, unchanged, and nothing else.
    let all = store
        .list(
            &alice,
            &ListQuery {
                limit: Limit::new(1000).unwrap(),
                ..ListQuery::default()
            },
        )
        .await
        .unwrap();
    let mut stored = all.tasks.clone();
    stored.sort_by_key(|t| t.id);
    acknowledged.sort_by_key(|t| t.id);
    assert_eq!(stored, acknowledged);

    // Writes that need no room still work.
    store
        .set_completed(&alice, acknowledged[1].id, Some(true), None)
        .await
        .unwrap();
    store
        .delete(&alice, acknowledged[2].id, None)
        .await
        .unwrap();
    store.close().await;

    let conn = rusqlite::Connection::open(&path).unwrap();
    let check: String = conn
        .query_row("pragma integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    conn.execute_batch("pragma wal_checkpoint(truncate)")
        .unwrap();
    let size = std::fs::metadata(&path).unwrap().len();
    assert!(size <= CAP, "{size} bytes");
}

/// PostgreSQL out of disk (SQLSTATE 53100 `disk_full`, raised here by a trigger for one user
/// only): plain and keyed creates and updates are all out of space, and other users' writes
/// go on.
#[tokio::test]
async fn a_full_postgresql_disk_is_out_of_space_for_every_write() {
    let Some(url) = pg_url() else { return };
    let store = todo_core::open(&url, StoreOptions::default())
        .await
        .unwrap();
    let alice = user("alice");
    let task = crate::helpers::create(&store, &alice, "before").await;

    let admin = sqlx::PgPool::connect(&url).await.unwrap();
    let name = format!("todo_test_disk_full_{:x}", rand::random::<u32>());
    let function = format!(
        "create function {name}() returns trigger language plpgsql as $$ begin \
         if new.user_id = '{}' then raise exception 'no space left (test)' using errcode = 'disk_full'; \
         end if; return new; end $$",
        alice.user_id().as_str()
    );
    let trigger = format!(
        "create trigger {name} before insert or update on tasks \
         for each row execute function {name}()"
    );
    sqlx::query(&function).execute(&admin).await.unwrap();
    sqlx::query(&trigger).execute(&admin).await.unwrap();

    let key = IdempotencyKey::parse("k").unwrap();
    let plain = store.create(&alice, new_task("plain"), None).await;
    let keyed = store.create(&alice, new_task("keyed"), Some(&key)).await;
    let update = store.set_completed(&alice, task.id, Some(true), None).await;
    let bob = user("bob");
    let others = store.create(&bob, new_task("bob's"), None).await;

    sqlx::query(&format!("drop trigger {name} on tasks"))
        .execute(&admin)
        .await
        .unwrap();
    sqlx::query(&format!("drop function {name}()"))
        .execute(&admin)
        .await
        .unwrap();

    out_of_space("plain create", plain);
    out_of_space("keyed create", keyed);
    out_of_space("update", update);
    others.unwrap();
    // The keyed create kept nothing: with room again, the same key creates.
    let retried = store
        .create(&alice, new_task("keyed"), Some(&key))
        .await
        .unwrap();
    assert!(!retried.replayed);
    assert_eq!(store.get(&alice, task.id).await.unwrap(), task);
}
