use todo_core::{Error, Limit, ListQuery, Priority, Replacement, TaskPatch, Title};

use crate::helpers::{backends, create, user};

#[tokio::test]
async fn another_user_gets_not_found_for_every_operation_and_changes_nothing() {
    for b in backends().await {
        let alice = user("alice");
        let mallory = user("mallory");
        let task = create(&b.store, &alice, "secret").await;
        let s = &b.store;
        let id = task.id;
        let title = || Title::parse("pwned").unwrap();

        let outcomes = [
            ("get", s.get(&mallory, id).await.map(|_| ())),
            (
                "replace",
                s.replace(
                    &mallory,
                    id,
                    Replacement {
                        description: None,
                        completed: true,
                        priority: Priority::High,
                        due_date: None,
                        tags: Default::default(),
                        ..Replacement::new(title())
                    },
                    None,
                )
                .await
                .map(|_| ()),
            ),
            (
                "patch",
                s.patch(
                    &mallory,
                    id,
                    TaskPatch {
                        title: Some(title()),
                        ..TaskPatch::default()
                    },
                    None,
                )
                .await
                .map(|_| ()),
            ),
            (
                "patch with the right version",
                s.patch(&mallory, id, TaskPatch::default(), Some(task.version))
                    .await
                    .map(|_| ()),
            ),
            (
                "set_completed",
                s.set_completed(&mallory, id, Some(true), None)
                    .await
                    .map(|_| ()),
            ),
            (
                "toggle",
                s.toggle_completed(&mallory, id, None).await.map(|_| ()),
            ),
            ("delete", s.delete(&mallory, id, None).await),
            (
                "delete with the right version",
                s.delete(&mallory, id, Some(task.version)).await,
            ),
        ];
        for (op, outcome) in outcomes {
            assert!(
                matches!(outcome, Err(Error::NotFound)),
                "{}: {op} by another user gave {outcome:?}",
                b.name
            );
        }
        assert!(
            s.list(&mallory, &ListQuery::default())
                .await
                .unwrap()
                .tasks
                .is_empty(),
            "{}",
            b.name
        );
        assert_eq!(
            s.get(&alice, id).await.unwrap(),
            task,
            "{}: unchanged",
            b.name
        );
    }
}

#[tokio::test]
async fn a_cursor_from_another_user_is_a_validation_error() {
    for b in backends().await {
        let alice = user("alice");
        let mallory = user("mallory");
        for i in 0..3 {
            create(&b.store, &alice, &format!("t{i}")).await;
        }
        let q = ListQuery {
            limit: Limit::new(1).unwrap(),
            ..ListQuery::default()
        };
        let page = b.store.list(&alice, &q).await.unwrap();
        let cursor = page.next_cursor.expect("more pages");
        let stolen = ListQuery {
            cursor: Some(cursor),
            ..q
        };
        match b.store.list(&mallory, &stolen).await {
            Err(Error::Validation(v)) => assert_eq!(v.errors[0].field, "cursor"),
            other => panic!("{}: {other:?}", b.name),
        }
    }
}

#[tokio::test]
async fn the_missing_and_the_foreign_answer_are_identical() {
    for b in backends().await {
        let alice = user("alice");
        let mallory = user("mallory");
        let task = create(&b.store, &alice, "secret").await;
        let foreign = b
            .store
            .get(&mallory, task.id)
            .await
            .unwrap_err()
            .to_string();
        let missing = b
            .store
            .get(&mallory, i64::MAX - 1)
            .await
            .unwrap_err()
            .to_string();
        assert_eq!(foreign, missing, "{}", b.name);
    }
}
