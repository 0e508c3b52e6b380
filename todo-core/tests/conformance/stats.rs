//! Task counts on every backend: by state, overdue and priority, only the caller's own tasks.

use chrono::{Duration, Utc};
use todo_core::{NewTask, Priority, PriorityCounts, TaskPatch, TaskStats, Title};

use crate::helpers::{backends, user};

fn task(title: &str, priority: Priority, due_in_days: Option<i64>) -> NewTask {
    NewTask {
        priority,
        due_date: due_in_days.map(|d| Utc::now() + Duration::days(d)),
        ..NewTask::new(Title::parse(title).unwrap())
    }
}

#[tokio::test]
async fn stats_count_the_callers_tasks_by_state_overdue_and_priority() {
    for b in backends().await {
        let alice = user("alice");
        let bob = user("bob");
        assert_eq!(
            b.store.stats(&alice).await.unwrap(),
            TaskStats::default(),
            "{}",
            b.name
        );
        let late = b
            .store
            .create(&alice, task("late", Priority::High, Some(-2)), None)
            .await
            .unwrap()
            .task;
        let late_done = b
            .store
            .create(
                &alice,
                task("late but done", Priority::High, Some(-1)),
                None,
            )
            .await
            .unwrap()
            .task;
        b.store
            .create(&alice, task("later", Priority::Low, Some(3)), None)
            .await
            .unwrap();
        b.store
            .create(&alice, task("someday", Priority::Medium, None), None)
            .await
            .unwrap();
        b.store
            .patch(
                &alice,
                late_done.id,
                TaskPatch {
                    completed: Some(true),
                    ..TaskPatch::default()
                },
                None,
            )
            .await
            .unwrap();
        // Bob's tasks never count for Alice.
        for i in 0..3 {
            b.store
                .create(
                    &bob,
                    task(&format!("bob {i}"), Priority::High, Some(-5)),
                    None,
                )
                .await
                .unwrap();
        }
        let want = TaskStats {
            total: 4,
            completed: 1,
            pending: 3,
            overdue: 1,
            by_priority: PriorityCounts {
                low: 1,
                medium: 1,
                high: 2,
            },
        };
        assert_eq!(b.store.stats(&alice).await.unwrap(), want, "{}", b.name);
        let bobs = b.store.stats(&bob).await.unwrap();
        assert_eq!((bobs.total, bobs.overdue), (3, 3), "{}", b.name);

        b.store.delete(&alice, late.id, None).await.unwrap();
        let after = b.store.stats(&alice).await.unwrap();
        assert_eq!((after.total, after.overdue), (3, 0), "{}", b.name);
    }
}

#[tokio::test]
async fn offset_pages_walk_the_order_and_counts_follow_the_filters_not_the_page() {
    use todo_core::{
        Error, Limit, ListCounts, ListQuery, Offset, SortField, SortOrder, StatusFilter,
    };
    for b in backends().await {
        let alice = user("alice");
        let bob = user("bob");
        let mut ids = Vec::new();
        for i in 0..7 {
            let t = b
                .store
                .create(&alice, task(&format!("t{i}"), Priority::Low, None), None)
                .await
                .unwrap()
                .task;
            if i % 3 == 0 {
                b.store
                    .set_completed(&alice, t.id, Some(true), None)
                    .await
                    .unwrap();
            }
            ids.push(t.id);
        }
        b.store
            .create(&bob, task("bob's", Priority::Low, None), None)
            .await
            .unwrap();
        let page = |offset: i64| ListQuery {
            sort: SortField::Title,
            order: SortOrder::Asc,
            limit: Limit::new(3).unwrap(),
            offset: Offset::new(offset).unwrap(),
            ..ListQuery::default()
        };
        let mut walked = Vec::new();
        for offset in [0, 3, 6] {
            let p = b.store.list(&alice, &page(offset)).await.unwrap();
            assert_eq!(p.next_cursor.is_some(), offset < 6, "{} {offset}", b.name);
            walked.extend(p.tasks.into_iter().map(|t| t.id));
        }
        assert_eq!(walked, ids, "{}", b.name);
        let past = b.store.list(&alice, &page(7)).await.unwrap();
        assert!(
            past.tasks.is_empty() && past.next_cursor.is_none(),
            "{}",
            b.name
        );

        // An offset and a cursor together are refused, naming the offset.
        let first = b.store.list(&alice, &page(0)).await.unwrap();
        let both = ListQuery {
            cursor: first.next_cursor,
            ..page(3)
        };
        match b.store.list(&alice, &both).await {
            Err(Error::Validation(v)) => assert_eq!(v.errors[0].field, "offset", "{}", b.name),
            other => panic!("{}: {other:?}", b.name),
        }
        assert!(Offset::new(i64::from(Offset::MAX) + 1).is_err());
        assert!(Offset::new(-1).is_err());

        // Counts cover every page of the filter, only the caller's tasks.
        assert_eq!(
            b.store.count(&alice, &page(3)).await.unwrap(),
            ListCounts {
                total: 7,
                completed: 3,
                pending: 4
            },
            "{}",
            b.name
        );
        let pending = ListQuery {
            status: StatusFilter::Pending,
            ..page(0)
        };
        assert_eq!(
            b.store.count(&alice, &pending).await.unwrap(),
            ListCounts {
                total: 4,
                completed: 0,
                pending: 4
            },
            "{}",
            b.name
        );
        assert_eq!(
            b.store.count(&user("nobody"), &pending).await.unwrap(),
            ListCounts::default(),
            "{}",
            b.name
        );
    }
}
