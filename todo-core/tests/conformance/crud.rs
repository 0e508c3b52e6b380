use chrono::{TimeZone, Utc};
use todo_core::{
    Description, Error, ListQuery, NewTask, Priority, Replacement, SearchText, StatusFilter,
    TaskPatch, Title, to_stored_precision,
};

use crate::helpers::{backends, create, new_task, user};

#[tokio::test]
async fn create_returns_the_task_with_defaults_and_get_reads_it_back() {
    for b in backends().await {
        let alice = user("alice");
        let before = Utc::now();
        let task = create(&b.store, &alice, "  Buy milk  ").await;
        assert_eq!(task.title, "Buy milk", "{}", b.name);
        assert_eq!(task.user_id, alice.user_id().as_str());
        assert_eq!(task.description, None);
        assert!(!task.completed);
        assert_eq!(task.priority, Priority::Medium);
        assert_eq!(task.due_date, None);
        assert_eq!(task.version, 1);
        assert_eq!(task.created_at, task.updated_at);
        assert!(task.created_at >= to_stored_precision(before), "{}", b.name);
        assert_eq!(
            b.store.get(&alice, task.id).await.unwrap(),
            task,
            "{}",
            b.name
        );
    }
}

#[tokio::test]
async fn every_field_round_trips_including_long_unicode_text() {
    for b in backends().await {
        let alice = user("alice");
        let due = Utc.with_ymd_and_hms(2031, 2, 3, 4, 5, 6).unwrap()
            + chrono::Duration::nanoseconds(123_456_789);
        let new = NewTask {
            description: Some(Description::parse(&"字".repeat(1000)).unwrap()),
            priority: Priority::High,
            due_date: Some(due),
            tags: Default::default(),
            ..NewTask::new(Title::parse(&"é".repeat(200)).unwrap())
        };
        let task = b.store.create(&alice, new, None).await.unwrap().task;
        assert_eq!(task.title, "é".repeat(200), "{}", b.name);
        assert_eq!(
            task.description.as_deref(),
            Some("字".repeat(1000).as_str())
        );
        assert_eq!(task.priority, Priority::High);
        // Stored at microsecond precision on every backend.
        assert_eq!(task.due_date, Some(to_stored_precision(due)), "{}", b.name);
        assert_eq!(b.store.get(&alice, task.id).await.unwrap(), task);
    }
}

#[tokio::test]
async fn get_of_a_missing_task_is_not_found() {
    for b in backends().await {
        let alice = user("alice");
        let err = b.store.get(&alice, i64::MAX).await.unwrap_err();
        assert!(matches!(err, Error::NotFound), "{}: {err:?}", b.name);
    }
}

#[tokio::test]
async fn replace_sets_every_field_and_bumps_the_version() {
    for b in backends().await {
        let alice = user("alice");
        let task = create(&b.store, &alice, "old").await;
        let due = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
        let replaced = b
            .store
            .replace(
                &alice,
                task.id,
                Replacement {
                    description: Some(Description::parse("details").unwrap()),
                    completed: true,
                    priority: Priority::Low,
                    due_date: Some(due),
                    tags: Default::default(),
                    ..Replacement::new(Title::parse("new").unwrap())
                },
                None,
            )
            .await
            .unwrap();
        assert_eq!(replaced.title, "new", "{}", b.name);
        assert_eq!(replaced.description.as_deref(), Some("details"));
        assert!(replaced.completed);
        assert_eq!(replaced.priority, Priority::Low);
        assert_eq!(replaced.due_date, Some(due));
        assert_eq!(replaced.version, 2);
        assert_eq!(replaced.created_at, task.created_at);
        assert!(replaced.updated_at >= task.updated_at);
        assert_eq!(b.store.get(&alice, task.id).await.unwrap(), replaced);
    }
}

#[tokio::test]
async fn patch_changes_only_what_it_sets_and_null_clears() {
    for b in backends().await {
        let alice = user("alice");
        let due = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
        let new = NewTask {
            description: Some(Description::parse("desc").unwrap()),
            priority: Priority::High,
            due_date: Some(due),
            tags: Default::default(),
            ..NewTask::new(Title::parse("title").unwrap())
        };
        let task = b.store.create(&alice, new, None).await.unwrap().task;

        let patched = b
            .store
            .patch(
                &alice,
                task.id,
                TaskPatch {
                    completed: Some(true),
                    ..TaskPatch::default()
                },
                None,
            )
            .await
            .unwrap();
        assert!(patched.completed, "{}", b.name);
        assert_eq!(patched.title, "title");
        assert_eq!(patched.description.as_deref(), Some("desc"));
        assert_eq!(patched.priority, Priority::High);
        assert_eq!(patched.due_date, Some(due));
        assert_eq!(patched.version, 2);

        let cleared = b
            .store
            .patch(
                &alice,
                task.id,
                TaskPatch {
                    description: Some(None),
                    due_date: Some(None),
                    title: Some(Title::parse("renamed").unwrap()),
                    ..TaskPatch::default()
                },
                None,
            )
            .await
            .unwrap();
        assert_eq!(cleared.description, None, "{}", b.name);
        assert_eq!(cleared.due_date, None);
        assert_eq!(cleared.title, "renamed");
        assert!(cleared.completed);
        assert_eq!(cleared.version, 3);

        let empty = b
            .store
            .patch(&alice, task.id, TaskPatch::default(), None)
            .await
            .unwrap();
        assert_eq!(empty.version, 4, "an empty patch is still a write");
        assert_eq!(empty.title, "renamed");
    }
}

#[tokio::test]
async fn toggle_flips_completed_and_set_completed_sets_it() {
    for b in backends().await {
        let alice = user("alice");
        let task = create(&b.store, &alice, "t").await;
        let t1 = b
            .store
            .toggle_completed(&alice, task.id, None)
            .await
            .unwrap();
        assert!(t1.completed, "{}", b.name);
        let t2 = b
            .store
            .toggle_completed(&alice, task.id, None)
            .await
            .unwrap();
        assert!(!t2.completed);
        let t3 = b
            .store
            .set_completed(&alice, task.id, Some(true), None)
            .await
            .unwrap();
        let t4 = b
            .store
            .set_completed(&alice, task.id, Some(true), None)
            .await
            .unwrap();
        assert!(t3.completed && t4.completed);
        assert_eq!(t4.version, 5);
    }
}

#[tokio::test]
async fn delete_removes_the_task_and_a_second_delete_is_not_found() {
    for b in backends().await {
        let alice = user("alice");
        let task = create(&b.store, &alice, "t").await;
        b.store.delete(&alice, task.id, None).await.unwrap();
        assert!(matches!(
            b.store.get(&alice, task.id).await,
            Err(Error::NotFound)
        ));
        assert!(
            matches!(
                b.store.delete(&alice, task.id, None).await,
                Err(Error::NotFound)
            ),
            "{}",
            b.name
        );
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
async fn a_stale_expected_version_fails_every_write_and_changes_nothing() {
    for b in backends().await {
        let alice = user("alice");
        let task = create(&b.store, &alice, "t").await;
        let stale = Some(task.version + 7);
        let title = || Title::parse("changed").unwrap();
        let results = [
            b.store
                .patch(
                    &alice,
                    task.id,
                    TaskPatch {
                        title: Some(title()),
                        ..TaskPatch::default()
                    },
                    stale,
                )
                .await
                .map(|_| ()),
            b.store
                .replace(
                    &alice,
                    task.id,
                    Replacement {
                        description: None,
                        completed: true,
                        priority: Priority::High,
                        due_date: None,
                        tags: Default::default(),
                        ..Replacement::new(title())
                    },
                    stale,
                )
                .await
                .map(|_| ()),
            b.store
                .toggle_completed(&alice, task.id, stale)
                .await
                .map(|_| ()),
            b.store
                .set_completed(&alice, task.id, Some(true), stale)
                .await
                .map(|_| ()),
            b.store.delete(&alice, task.id, stale).await,
        ];
        for r in results {
            match r {
                Err(Error::VersionMismatch { expected, current }) => {
                    assert_eq!((expected, current), (8, 1), "{}", b.name);
                }
                other => panic!("{}: expected a version mismatch, got {other:?}", b.name),
            }
        }
        assert_eq!(b.store.get(&alice, task.id).await.unwrap(), task);

        // The current version works, and then it is stale.
        let done = b
            .store
            .toggle_completed(&alice, task.id, Some(1))
            .await
            .unwrap();
        assert_eq!(done.version, 2);
        assert!(matches!(
            b.store.delete(&alice, task.id, Some(1)).await,
            Err(Error::VersionMismatch { .. })
        ));
        b.store.delete(&alice, task.id, Some(2)).await.unwrap();
    }
}

#[tokio::test]
async fn search_is_a_case_insensitive_substring_of_title_or_description() {
    for b in backends().await {
        let alice = user("alice");
        let with_desc = |t: &str, d: &str| NewTask {
            description: Some(Description::parse(d).unwrap()),
            ..new_task(t)
        };
        let s = &b.store;
        let milk = s
            .create(&alice, new_task("Buy MILK"), None)
            .await
            .unwrap()
            .task;
        let school = s
            .create(&alice, with_desc("Errands", "pick up at the ÉCOLE"), None)
            .await
            .unwrap()
            .task;
        let percent = s
            .create(&alice, new_task("100% done_ish"), None)
            .await
            .unwrap()
            .task;
        create(s, &alice, "unrelated").await;

        let search = |q: &str| {
            let query = ListQuery {
                search: SearchText::parse(q).unwrap(),
                ..ListQuery::default()
            };
            let store = s.clone();
            let alice = alice.clone();
            async move {
                let mut ids: Vec<i64> = store
                    .list(&alice, &query)
                    .await
                    .unwrap()
                    .tasks
                    .iter()
                    .map(|t| t.id)
                    .collect();
                ids.sort();
                ids
            }
        };
        assert_eq!(search("milk").await, vec![milk.id], "{}", b.name);
        assert_eq!(search("Mil").await, vec![milk.id]);
        assert_eq!(search("école").await, vec![school.id], "{}", b.name);
        assert_eq!(search("%").await, vec![percent.id], "% is literal");
        assert_eq!(search("_").await, vec![percent.id], "_ is literal");
        assert_eq!(search("nothing like it").await, Vec::<i64>::new());
        assert_eq!(
            search("").await.len(),
            4,
            "an empty search matches everything"
        );
    }
}

#[tokio::test]
async fn status_filter_selects_pending_or_completed_tasks() {
    for b in backends().await {
        let alice = user("alice");
        let a = create(&b.store, &alice, "a").await;
        let done = create(&b.store, &alice, "b").await;
        b.store
            .toggle_completed(&alice, done.id, None)
            .await
            .unwrap();
        let ids = |status| {
            let store = b.store.clone();
            let alice = alice.clone();
            async move {
                let q = ListQuery {
                    status,
                    ..ListQuery::default()
                };
                let page = store.list(&alice, &q).await.unwrap();
                page.tasks.iter().map(|t| t.id).collect::<Vec<_>>()
            }
        };
        assert_eq!(ids(StatusFilter::Pending).await, vec![a.id], "{}", b.name);
        assert_eq!(ids(StatusFilter::Completed).await, vec![done.id]);
        assert_eq!(
            ids(StatusFilter::All).await,
            vec![done.id, a.id],
            "newest first"
        );
    }
}

#[tokio::test]
async fn an_unknown_scheme_or_an_unreachable_database_is_a_typed_error() {
    let err = todo_core::open("mysql://x", todo_core::StoreOptions::default())
        .await
        .err()
        .expect("must fail");
    assert!(matches!(err, Error::Config(_)), "{err:?}");
    let options = todo_core::StoreOptions {
        acquire_timeout: std::time::Duration::from_secs(2),
        ..Default::default()
    };
    let started = std::time::Instant::now();
    let err = todo_core::open("postgres://nobody@127.0.0.1:1/none", options)
        .await
        .err()
        .expect("must fail");
    assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
}

/// `completed_at` is set by the write that completes a task (through `set_completed`, `patch`
/// or `replace`), kept while it stays completed, and cleared when it is reopened; `get` and a
/// list read it back as the write returned it.
#[tokio::test]
async fn completed_at_is_set_on_completion_kept_while_completed_and_cleared_on_reopening() {
    for b in backends().await {
        let alice = user("alice");
        let task = create(&b.store, &alice, "Water the plants").await;
        assert_eq!(task.completed_at, None, "{}", b.name);

        let done = b
            .store
            .set_completed(&alice, task.id, Some(true), None)
            .await
            .unwrap();
        assert_eq!(done.completed_at, Some(done.updated_at), "{}", b.name);
        let again = b
            .store
            .set_completed(&alice, task.id, Some(true), None)
            .await
            .unwrap();
        assert_eq!(again.completed_at, done.completed_at, "{}", b.name);
        let edited = b
            .store
            .patch(
                &alice,
                task.id,
                TaskPatch {
                    priority: Some(Priority::High),
                    ..TaskPatch::default()
                },
                None,
            )
            .await
            .unwrap();
        assert_eq!(edited.completed_at, done.completed_at, "{}", b.name);
        assert_eq!(b.store.get(&alice, task.id).await.unwrap(), edited);

        let reopened = b
            .store
            .toggle_completed(&alice, task.id, None)
            .await
            .unwrap();
        assert_eq!(reopened.completed_at, None, "{}", b.name);

        let patched = b
            .store
            .patch(
                &alice,
                task.id,
                TaskPatch {
                    completed: Some(true),
                    ..TaskPatch::default()
                },
                None,
            )
            .await
            .unwrap();
        assert_eq!(patched.completed_at, Some(patched.updated_at), "{}", b.name);
        let replaced = b
            .store
            .replace(
                &alice,
                task.id,
                Replacement {
                    description: None,
                    completed: false,
                    priority: Priority::Low,
                    due_date: None,
                    tags: Default::default(),
                    ..Replacement::new(Title::parse("Water the plants").unwrap())
                },
                None,
            )
            .await
            .unwrap();
        assert_eq!(replaced.completed_at, None, "{}", b.name);
        let listed = b.store.list(&alice, &ListQuery::default()).await.unwrap();
        assert_eq!(listed.tasks, [replaced], "{}", b.name);
    }
}
