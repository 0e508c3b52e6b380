//! Lists that may read all of a user's tasks run at most
//! `StoreOptions::max_concurrent_scans_per_user` at a time per user.

use std::time::{Duration, Instant};

use todo_core::{DynTaskStore, ListQuery, Principal, SearchText, StoreOptions};

use crate::helpers::{create, user};

/// Gives `who` `n` tasks at once, written straight into the SQLite file at `path`.
fn seed(path: &std::path::Path, who: &Principal, n: u32) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.busy_timeout(Duration::from_secs(30)).unwrap();
    conn.execute(
        "with recursive n(i) as (select 1 union all select i + 1 from n where i < ?2) \
         insert into tasks (user_id, title, title_key, description, description_key, completed, \
         priority, due_date, created_at, updated_at, version) \
         select ?1, 'task ' || i, 'task ' || i, 'about task ' || i, 'about task ' || i, 0, 1, \
         null, i, i, 1 from n",
        rusqlite::params![who.user_id().as_str(), n],
    )
    .unwrap();
}

/// A search that matches nothing, so it reads every task of the user.
fn search() -> ListQuery {
    ListQuery {
        search: SearchText::parse("matches nothing").unwrap(),
        ..ListQuery::default()
    }
}

/// Runs `who`'s search; when it ended.
async fn timed_search(store: DynTaskStore, who: Principal) -> Instant {
    let page = store.list(&who, &search()).await.unwrap();
    assert!(page.tasks.is_empty());
    Instant::now()
}

/// With one scan per user: two searches of a user with many tasks, started together, run one
/// after the other (the later one takes about twice as long as the earlier, waiting and then
/// running; side by side they would take about as long as each other, even sharing one CPU),
/// while another user's search, started just after them, is not held up (it ends before the
/// first of them).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_users_scans_take_turns_while_another_users_run_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scans.db");
    let options = StoreOptions {
        max_concurrent_scans_per_user: Some(1),
        ..StoreOptions::default()
    };
    let store = todo_core::open(&format!("sqlite://{}", path.display()), options)
        .await
        .unwrap();
    let (alice, bob) = (user("alice"), user("bob"));
    seed(&path, &alice, 300_000);
    create(&store, &bob, "bob's only task").await;

    // How long one of Alice's searches takes alone (the fastest of three).
    let mut alone = Duration::MAX;
    for _ in 0..3 {
        let started = Instant::now();
        timed_search(store.clone(), alice.clone()).await;
        alone = alone.min(started.elapsed());
    }
    assert!(
        alone >= Duration::from_millis(20),
        "a search of Alice's tasks takes only {alone:?}: too fast to tell turns apart"
    );

    let started = Instant::now();
    let first = tokio::spawn(timed_search(store.clone(), alice.clone()));
    let second = tokio::spawn(timed_search(store.clone(), alice.clone()));
    tokio::time::sleep(Duration::from_millis(2)).await;
    let others = tokio::spawn(timed_search(store.clone(), bob.clone()));
    let (a, b, others) = (
        first.await.unwrap(),
        second.await.unwrap(),
        others.await.unwrap(),
    );
    let (earlier, later) = (a.min(b), a.max(b));
    let (shorter, longer) = (earlier - started, later - started);
    assert!(
        longer >= shorter * 7 / 5,
        "Alice's searches took {shorter:?} and {longer:?}: they ran side by side"
    );
    assert!(
        others < earlier,
        "Bob's search waited for Alice's ({:?} after the first of hers)",
        others - earlier
    );
}
