//! Tag renames and removals across many tasks: every task is rewritten, however many chunks a
//! backend takes, and a user renaming across thousands of tasks does not hold other users'
//! writes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use todo_core::{DynTaskStore, Principal, Tag, Tags, Task};

use crate::helpers::{backends, create, new_task, user};

/// Creates `n` tasks of `who` tagged `tags`, `concurrency` at a time.
async fn create_tagged(
    store: &DynTaskStore,
    who: &Principal,
    n: usize,
    tags: &[&str],
) -> Vec<Task> {
    let tags = Tags::parse(tags.iter().copied()).unwrap();
    let mut out = Vec::with_capacity(n);
    for batch in (0..n).collect::<Vec<_>>().chunks(64) {
        let mut handles = Vec::new();
        for &i in batch {
            let (store, who) = (Arc::clone(store), who.clone());
            let mut task = new_task(&format!("task {i}"));
            task.tags = tags.clone();
            handles.push(tokio::spawn(async move {
                store.create(&who, task, None).await.unwrap().task
            }));
        }
        for h in handles {
            out.push(h.await.unwrap());
        }
    }
    out
}

fn tag(name: &str) -> Tag {
    Tag::parse(name).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rename_or_removal_over_more_tasks_than_a_chunk_rewrites_every_one_once() {
    for b in backends().await {
        let me = user("retag");
        let tasks = create_tagged(&b.store, &me, 450, &["Work", "home"]).await;
        let untagged = create(&b.store, &me, "no tags").await;

        // A new spelling of the same tag: its key does not change, and each task is rewritten
        // once.
        let changed = b.store.rename_tag(&me, &tag("Work"), &tag("WORK")).await;
        assert_eq!(changed.unwrap(), 450, "{}", b.name);
        for t in &tasks {
            let now = b.store.get(&me, t.id).await.unwrap();
            assert_eq!(now.tags, ["WORK", "home"], "{}: task {}", b.name, t.id);
            assert_eq!(now.version, t.version + 1, "{}: task {}", b.name, t.id);
        }
        // Onto a tag each task already carries: one is kept, in the first one's place.
        let changed = b.store.rename_tag(&me, &tag("home"), &tag("work")).await;
        assert_eq!(changed.unwrap(), 450, "{}", b.name);
        let changed = b.store.delete_tag(&me, &tag("work")).await;
        assert_eq!(changed.unwrap(), 450, "{}", b.name);
        for t in &tasks {
            let now = b.store.get(&me, t.id).await.unwrap();
            assert!(now.tags.is_empty(), "{}: task {}", b.name, t.id);
            assert_eq!(now.version, t.version + 3, "{}: task {}", b.name, t.id);
        }
        assert_eq!(b.store.get(&me, untagged.id).await.unwrap(), untagged);
        let gone = b.store.delete_tag(&me, &tag("work")).await;
        assert!(
            matches!(gone, Err(todo_core::Error::NotFound)),
            "{}",
            b.name
        );
        assert!(b.store.tags(&me).await.unwrap().is_empty(), "{}", b.name);
    }
}

/// While one user renames a tag across 5,000 tasks in a loop, another user's creates still go
/// through in about the time of one write: the bound here is loose (one second, against several
/// seconds when a rename held the write lock for all its tasks); `scripts/fairness.sh` measures
/// it on the release binary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_tag_renames_across_thousands_of_tasks_do_not_hold_other_users_creates() {
    for b in backends().await {
        let renamer = user("renamer");
        create_tagged(&b.store, &renamer, 5_000, &["foo"]).await;
        let done = Arc::new(AtomicBool::new(false));
        let renames = {
            let (store, who, done) = (Arc::clone(&b.store), renamer.clone(), done.clone());
            tokio::spawn(async move {
                let (mut from, mut to) = (tag("foo"), tag("bar"));
                let mut renames = 0;
                while !done.load(Ordering::Relaxed) {
                    assert_eq!(store.rename_tag(&who, &from, &to).await.unwrap(), 5_000);
                    std::mem::swap(&mut from, &mut to);
                    renames += 1;
                }
                renames
            })
        };
        // Let the renames start.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let other = user("other");
        let mut waits = Vec::new();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(3) {
            let t0 = Instant::now();
            create(&b.store, &other, "mine").await;
            waits.push(t0.elapsed());
        }
        done.store(true, Ordering::Relaxed);
        let renames = renames.await.unwrap();
        waits.sort();
        let p99 = waits[waits.len() * 99 / 100];
        let longest = waits[waits.len() - 1];
        assert!(
            renames >= 1,
            "{}: no rename finished while creates ran",
            b.name
        );
        assert!(
            p99 < Duration::from_secs(1),
            "{}: {} creates during {renames} renames, p99 {p99:?}, longest {longest:?}",
            b.name,
            waits.len()
        );
    }
}
