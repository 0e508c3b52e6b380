//! Recurring tasks on every backend: completing one creates exactly one next occurrence, in the
//! same transaction, whatever the way it is completed, retries, reopenings or concurrent
//! completions; the calendar's edge cases; and the rule's need of a due date.

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use todo_core::{
    DynTaskStore, Error, ListQuery, NewTask, Principal, Priority, Recurrence, Replacement,
    SortField, SortOrder, Tags, Task, TaskPatch, Title,
};

use crate::helpers::{backends, user};

fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
}

fn recurring(title: &str, rule: &str, due: DateTime<Utc>) -> NewTask {
    NewTask {
        due_date: Some(due),
        recurrence: Some(Recurrence::parse(rule).unwrap()),
        ..NewTask::new(Title::parse(title).unwrap())
    }
}

/// Every task of `who`, oldest first.
async fn all(store: &DynTaskStore, who: &Principal) -> Vec<Task> {
    let query = ListQuery {
        sort: SortField::Created,
        order: SortOrder::Asc,
        limit: todo_core::Limit::new(1000).unwrap(),
        ..ListQuery::default()
    };
    store.list(who, &query).await.unwrap().tasks
}

/// The one task of `who` other than those in `known`.
async fn the_new_one(store: &DynTaskStore, who: &Principal, known: &[i64]) -> Option<Task> {
    let fresh: Vec<Task> = all(store, who)
        .await
        .into_iter()
        .filter(|t| !known.contains(&t.id))
        .collect();
    assert!(fresh.len() <= 1, "more than one next occurrence: {fresh:?}");
    fresh.into_iter().next()
}

#[tokio::test]
async fn completing_a_recurring_task_creates_its_next_occurrence_with_its_fields() {
    for b in backends().await {
        let alice = user("alice");
        let due = at(2030, 1, 31, 9) + Duration::microseconds(250);
        let mut new = recurring("Pay rent", "FREQ=MONTHLY;BYMONTHDAY=31;COUNT=3", due);
        new.description = Some(todo_core::Description::parse("the flat").unwrap());
        new.priority = Priority::High;
        new.tags = Tags::parse(["home", "Money"]).unwrap();
        new.remind_at = Some(due - Duration::hours(1));
        let first = b.store.create(&alice, new, None).await.unwrap().task;
        assert_eq!(
            first.recurrence.as_deref(),
            Some("FREQ=MONTHLY;BYMONTHDAY=31;COUNT=3")
        );
        let done = b
            .store
            .set_completed(&alice, first.id, Some(true), None)
            .await
            .unwrap();
        assert!(done.completed, "{}", b.name);
        let next = the_new_one(&b.store, &alice, &[first.id])
            .await
            .expect("a next occurrence");
        // February has no 31st: March 31st, same time of day, to the microsecond.
        let next_due = at(2030, 3, 31, 9) + Duration::microseconds(250);
        assert_eq!(next.due_date, Some(next_due), "{}", b.name);
        assert_eq!(next.remind_at, Some(next_due - Duration::hours(1)));
        assert_eq!(next.title, "Pay rent");
        assert_eq!(next.description.as_deref(), Some("the flat"));
        assert_eq!(next.priority, Priority::High);
        assert_eq!(next.tags, ["home", "Money"]);
        assert_eq!(
            next.recurrence.as_deref(),
            Some("FREQ=MONTHLY;BYMONTHDAY=31;COUNT=2")
        );
        assert!(!next.completed);
        assert_eq!(next.completed_at, None);
        assert_eq!(next.version, 1);
        // The tag filter and counts see it.
        let tagged = ListQuery {
            tags: vec![todo_core::Tag::parse("money").unwrap()],
            ..ListQuery::default()
        };
        assert_eq!(b.store.list(&alice, &tagged).await.unwrap().tasks.len(), 2);

        // Completing the second (by PATCH) creates the third, with the last COUNT.
        b.store
            .patch(
                &alice,
                next.id,
                TaskPatch {
                    completed: Some(true),
                    ..TaskPatch::default()
                },
                None,
            )
            .await
            .unwrap();
        let third = the_new_one(&b.store, &alice, &[first.id, next.id])
            .await
            .unwrap();
        assert_eq!(
            third.due_date,
            Some(at(2030, 5, 31, 9) + Duration::microseconds(250))
        );
        assert_eq!(
            third.recurrence.as_deref(),
            Some("FREQ=MONTHLY;BYMONTHDAY=31;COUNT=1")
        );
        // The series ends with it: completing it (by toggling) creates nothing.
        b.store
            .toggle_completed(&alice, third.id, None)
            .await
            .unwrap();
        assert_eq!(
            the_new_one(&b.store, &alice, &[first.id, next.id, third.id]).await,
            None,
            "{}",
            b.name
        );
    }
}

/// Each rule, from a due date, and what the next occurrence is (`None`: the series ends).
#[tokio::test]
async fn the_calendar_edge_cases_follow_rfc_5545() {
    let cases = [
        ("FREQ=YEARLY", at(2028, 2, 29, 8), Some(at(2032, 2, 29, 8))),
        ("FREQ=MONTHLY", at(2031, 1, 31, 8), Some(at(2031, 3, 31, 8))),
        (
            "FREQ=MONTHLY;BYMONTHDAY=-1",
            at(2031, 1, 31, 8),
            Some(at(2031, 2, 28, 8)),
        ),
        (
            "FREQ=WEEKLY;BYDAY=MO,FR",
            at(2030, 1, 4, 8),
            Some(at(2030, 1, 7, 8)),
        ),
        (
            "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,WE",
            at(2030, 1, 2, 8),
            Some(at(2030, 1, 14, 8)),
        ),
        (
            "FREQ=DAILY;INTERVAL=2",
            at(2030, 2, 28, 8),
            Some(at(2030, 3, 2, 8)),
        ),
        (
            "FREQ=DAILY;UNTIL=20300105T080000Z",
            at(2030, 1, 4, 8),
            Some(at(2030, 1, 5, 8)),
        ),
        ("FREQ=DAILY;UNTIL=20300105T080000Z", at(2030, 1, 5, 8), None),
        ("FREQ=DAILY;COUNT=1", at(2030, 1, 5, 8), None),
    ];
    for b in backends().await {
        let alice = user("alice");
        for (rule, due, want) in cases {
            let task = b
                .store
                .create(&alice, recurring(rule, rule, due), None)
                .await
                .unwrap()
                .task;
            let before: Vec<i64> = all(&b.store, &alice).await.iter().map(|t| t.id).collect();
            b.store
                .set_completed(&alice, task.id, Some(true), None)
                .await
                .unwrap();
            let next = the_new_one(&b.store, &alice, &before).await;
            assert_eq!(next.and_then(|t| t.due_date), want, "{rule} on {}", b.name);
        }
    }
}

#[tokio::test]
async fn retries_reopenings_and_concurrent_completions_create_one_occurrence() {
    for b in backends().await {
        let alice = user("alice");
        let task = b
            .store
            .create(
                &alice,
                recurring("Standup", "FREQ=DAILY", at(2030, 1, 1, 9)),
                None,
            )
            .await
            .unwrap()
            .task;
        // A retried complete, a reopening and completing again, a replace that completes it.
        for _ in 0..2 {
            b.store
                .set_completed(&alice, task.id, Some(true), None)
                .await
                .unwrap();
        }
        b.store
            .toggle_completed(&alice, task.id, None)
            .await
            .unwrap();
        b.store
            .toggle_completed(&alice, task.id, None)
            .await
            .unwrap();
        b.store
            .replace(
                &alice,
                task.id,
                Replacement {
                    description: None,
                    completed: true,
                    priority: Priority::Medium,
                    due_date: Some(at(2030, 1, 1, 9)),
                    tags: Tags::default(),
                    recurrence: Some(Recurrence::parse("FREQ=DAILY").unwrap()),
                    ..Replacement::new(Title::parse("Standup").unwrap())
                },
                None,
            )
            .await
            .unwrap();
        let next = the_new_one(&b.store, &alice, &[task.id]).await.unwrap();
        assert_eq!(next.due_date, Some(at(2030, 1, 2, 9)), "{}", b.name);

        // Sixteen concurrent completions of the next one: one more occurrence, no more.
        let mut handles = Vec::new();
        for i in 0..16 {
            let store = Arc::clone(&b.store);
            let alice = alice.clone();
            handles.push(tokio::spawn(async move {
                let completed = if i % 2 == 0 { Some(true) } else { None };
                store.set_completed(&alice, next.id, completed, None).await
            }));
        }
        for h in handles {
            h.await.unwrap().unwrap();
        }
        let third = the_new_one(&b.store, &alice, &[task.id, next.id]).await;
        assert_eq!(
            third.and_then(|t| t.due_date),
            Some(at(2030, 1, 3, 9)),
            "{}",
            b.name
        );
    }
}

#[tokio::test]
async fn a_task_whose_occurrence_was_deleted_does_not_create_it_again() {
    for b in backends().await {
        let alice = user("alice");
        let task = b
            .store
            .create(
                &alice,
                NewTask::new(Title::parse("Water the plants").unwrap()),
                None,
            )
            .await
            .unwrap()
            .task;
        // A replace that completes it and makes it repeat creates its next occurrence...
        let replacement = Replacement {
            description: None,
            completed: true,
            priority: Priority::Medium,
            due_date: Some(at(2030, 1, 1, 9)),
            tags: Tags::default(),
            recurrence: Some(Recurrence::parse("FREQ=DAILY").unwrap()),
            ..Replacement::new(Title::parse("Water the plants").unwrap())
        };
        b.store
            .replace(&alice, task.id, replacement.clone(), None)
            .await
            .unwrap();
        let next = the_new_one(&b.store, &alice, &[task.id]).await.unwrap();
        // ...which the user deletes. Completing the task again, by every way there is, and
        // reopening it between, creates nothing.
        b.store.delete(&alice, next.id, None).await.unwrap();
        b.store
            .set_completed(&alice, task.id, Some(true), None)
            .await
            .unwrap();
        let complete = TaskPatch {
            completed: Some(true),
            ..TaskPatch::default()
        };
        b.store
            .patch(&alice, task.id, complete.clone(), None)
            .await
            .unwrap();
        b.store
            .replace(&alice, task.id, replacement, None)
            .await
            .unwrap();
        b.store
            .set_completed(&alice, task.id, Some(false), None)
            .await
            .unwrap();
        b.store
            .toggle_completed(&alice, task.id, None)
            .await
            .unwrap();
        b.store
            .patch(&alice, task.id, complete, None)
            .await
            .unwrap();
        assert_eq!(
            the_new_one(&b.store, &alice, &[task.id]).await,
            None,
            "{}",
            b.name
        );
        // A task created by the same rule is no different: it creates its own next occurrence.
        let other = b
            .store
            .create(
                &alice,
                recurring("Feed the cat", "FREQ=DAILY", at(2030, 1, 1, 9)),
                None,
            )
            .await
            .unwrap()
            .task;
        b.store
            .set_completed(&alice, other.id, Some(true), None)
            .await
            .unwrap();
        let its_next = the_new_one(&b.store, &alice, &[task.id, other.id]).await;
        assert_eq!(
            its_next.and_then(|t| t.due_date),
            Some(at(2030, 1, 2, 9)),
            "{}",
            b.name
        );
    }
}

#[tokio::test]
async fn a_rule_needs_a_due_date_and_a_refused_write_changes_nothing() {
    for b in backends().await {
        let alice = user("alice");
        let mut undated = recurring("x", "FREQ=DAILY", at(2030, 1, 1, 9));
        undated.due_date = None;
        let refused = b.store.create(&alice, undated, None).await;
        assert!(
            matches!(&refused, Err(Error::Validation(v)) if v.errors[0].field == "recurrence"),
            "{}: {refused:?}",
            b.name
        );
        let plain = b
            .store
            .create(&alice, NewTask::new(Title::parse("plain").unwrap()), None)
            .await
            .unwrap()
            .task;
        let refused = b
            .store
            .patch(
                &alice,
                plain.id,
                TaskPatch {
                    recurrence: Some(Some(Recurrence::parse("FREQ=WEEKLY").unwrap())),
                    ..TaskPatch::default()
                },
                None,
            )
            .await;
        assert!(
            matches!(refused, Err(Error::Validation(_))),
            "{}: {refused:?}",
            b.name
        );
        let task = b
            .store
            .create(
                &alice,
                recurring("r", "FREQ=DAILY", at(2030, 1, 1, 9)),
                None,
            )
            .await
            .unwrap()
            .task;
        let refused = b
            .store
            .patch(
                &alice,
                task.id,
                TaskPatch {
                    due_date: Some(None),
                    ..TaskPatch::default()
                },
                None,
            )
            .await;
        assert!(
            matches!(refused, Err(Error::Validation(_))),
            "{}: {refused:?}",
            b.name
        );
        assert_eq!(b.store.get(&alice, plain.id).await.unwrap(), plain);
        assert_eq!(b.store.get(&alice, task.id).await.unwrap(), task);
        // Clearing the rule and the date together is fine.
        let cleared = b
            .store
            .patch(
                &alice,
                task.id,
                TaskPatch {
                    due_date: Some(None),
                    recurrence: Some(None),
                    ..TaskPatch::default()
                },
                None,
            )
            .await
            .unwrap();
        assert_eq!((cleared.due_date, cleared.recurrence), (None, None));
    }
}
