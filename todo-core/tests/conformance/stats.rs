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
