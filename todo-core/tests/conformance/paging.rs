use std::collections::HashSet;

use chrono::{TimeZone, Utc};
use todo_core::{
    Error, Limit, ListQuery, NewTask, Priority, SortField, SortOrder, TITLE_MAX_CHARS, Task, Title,
    fold_case,
};

use crate::helpers::{Backend, backends, create, user};

/// Every sort field.
const EVERY_SORT: [SortField; 5] = [
    SortField::Created,
    SortField::Updated,
    SortField::Title,
    SortField::DueDate,
    SortField::Priority,
];

async fn walk(b: &Backend, who: &todo_core::Principal, mut q: ListQuery) -> Vec<Task> {
    let mut out = Vec::new();
    loop {
        let page = b.store.list(who, &q).await.unwrap();
        assert!(page.tasks.len() <= q.limit.get() as usize);
        out.extend(page.tasks);
        match page.next_cursor {
            Some(c) => q.cursor = Some(c),
            None => return out,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn walking_ten_thousand_tasks_in_pages_sees_each_exactly_once() {
    for b in backends().await {
        let alice = user("alice");
        let mut handles = Vec::new();
        for chunk in 0..8 {
            let store = b.store.clone();
            let alice = alice.clone();
            handles.push(tokio::spawn(async move {
                let mut ids = Vec::new();
                for i in 0..1250 {
                    let title = Title::parse(&format!("task {chunk}-{i}")).unwrap();
                    let t = store
                        .create(&alice, NewTask::new(title), None)
                        .await
                        .unwrap();
                    ids.push(t.task.id);
                }
                ids
            }));
        }
        let mut expected = HashSet::new();
        for h in handles {
            expected.extend(h.await.unwrap());
        }
        assert_eq!(expected.len(), 10_000);
        let q = ListQuery {
            limit: Limit::new(250).unwrap(),
            ..ListQuery::default()
        };
        let seen = walk(&b, &alice, q).await;
        assert_eq!(seen.len(), 10_000, "{}", b.name);
        let ids: HashSet<i64> = seen.iter().map(|t| t.id).collect();
        assert_eq!(ids, expected, "{}: each task exactly once", b.name);
        // Newest first: created_at descending, ties by id descending.
        for w in seen.windows(2) {
            assert!(
                (w[0].created_at, w[0].id) > (w[1].created_at, w[1].id),
                "{}: order broken",
                b.name
            );
        }
    }
}

fn expected_order(tasks: &[Task], sort: SortField, order: SortOrder) -> Vec<i64> {
    let mut v = tasks.to_vec();
    v.sort_by(|a, b| {
        use std::cmp::Ordering;
        let key = match sort {
            SortField::Created => a.created_at.cmp(&b.created_at),
            SortField::Updated => a.updated_at.cmp(&b.updated_at),
            SortField::Title => fold_case(&a.title).cmp(&fold_case(&b.title)),
            SortField::Priority => a.priority.cmp(&b.priority),
            SortField::DueDate => match (a.due_date, b.due_date) {
                (Some(x), Some(y)) => x.cmp(&y),
                (None, None) => Ordering::Equal,
                // Undated last in both directions: flip so the reversal below restores it.
                (None, Some(_)) => match order {
                    SortOrder::Asc => Ordering::Greater,
                    SortOrder::Desc => Ordering::Less,
                },
                (Some(_), None) => match order {
                    SortOrder::Asc => Ordering::Less,
                    SortOrder::Desc => Ordering::Greater,
                },
            },
        };
        let ord = key.then(a.id.cmp(&b.id));
        match order {
            SortOrder::Asc => ord,
            SortOrder::Desc => ord.reverse(),
        }
    });
    v.iter().map(|t| t.id).collect()
}

#[tokio::test]
async fn every_sort_and_order_pages_in_the_documented_order() {
    let titles = ["b", "B", "a", "Ä", "c", "a", "z", "Zeta", "é", "E"];
    for b in backends().await {
        let alice = user("alice");
        let mut tasks = Vec::new();
        for i in 0..40 {
            let new = NewTask {
                description: None,
                priority: [Priority::Low, Priority::Medium, Priority::High][i % 3],
                due_date: (i % 4 != 0).then(|| {
                    Utc.with_ymd_and_hms(2030, 1, 1 + (i % 5) as u32, 0, 0, 0)
                        .unwrap()
                }),
                tags: Default::default(),
                ..NewTask::new(Title::parse(titles[i % titles.len()]).unwrap())
            };
            tasks.push(b.store.create(&alice, new, None).await.unwrap().task);
        }
        // Give updated_at an order different from created_at.
        for t in tasks.iter_mut().step_by(3) {
            *t = b.store.toggle_completed(&alice, t.id, None).await.unwrap();
        }
        for sort in EVERY_SORT {
            for order in [SortOrder::Asc, SortOrder::Desc] {
                let q = ListQuery {
                    sort,
                    order,
                    limit: Limit::new(7).unwrap(),
                    ..ListQuery::default()
                };
                let got: Vec<i64> = walk(&b, &alice, q).await.iter().map(|t| t.id).collect();
                assert_eq!(
                    got,
                    expected_order(&tasks, sort, order),
                    "{}: {sort:?} {order:?}",
                    b.name
                );
            }
        }
    }
}

#[tokio::test]
async fn inserts_during_a_walk_never_make_it_skip_or_repeat() {
    for b in backends().await {
        let alice = user("alice");
        let mut original = HashSet::new();
        for i in 0..50 {
            original.insert(create(&b.store, &alice, &format!("t{i}")).await.id);
        }
        for (sort, order) in [
            (SortField::Created, SortOrder::Desc),
            (SortField::Created, SortOrder::Asc),
            (SortField::Title, SortOrder::Asc),
        ] {
            let mut q = ListQuery {
                sort,
                order,
                limit: Limit::new(6).unwrap(),
                ..ListQuery::default()
            };
            let mut seen = Vec::new();
            let mut n = 0;
            loop {
                let page = b.store.list(&alice, &q).await.unwrap();
                seen.extend(page.tasks.iter().map(|t| t.id));
                // Someone adds tasks between every page.
                n += 1;
                create(&b.store, &alice, &format!("t{}", n % 7)).await;
                match page.next_cursor {
                    Some(c) => q.cursor = Some(c),
                    None => break,
                }
            }
            let unique: HashSet<i64> = seen.iter().copied().collect();
            assert_eq!(unique.len(), seen.len(), "{}: a task repeated", b.name);
            assert!(
                original.is_subset(&unique),
                "{}: {sort:?} {order:?} skipped a task",
                b.name
            );
        }
    }
}

#[tokio::test]
async fn a_tampered_cursor_or_one_for_another_sort_is_a_validation_error() {
    for b in backends().await {
        let alice = user("alice");
        for i in 0..3 {
            create(&b.store, &alice, &format!("t{i}")).await;
        }
        let q = ListQuery {
            limit: Limit::new(1).unwrap(),
            ..ListQuery::default()
        };
        let cursor = b.store.list(&alice, &q).await.unwrap().next_cursor.unwrap();
        let mut tampered = cursor.clone().into_bytes();
        tampered[3] = if tampered[3] == b'x' { b'y' } else { b'x' };
        let bad = [
            (String::from_utf8(tampered).unwrap(), q.sort, q.order),
            ("not a cursor!".to_owned(), q.sort, q.order),
            (cursor.clone(), SortField::Title, q.order),
            (cursor.clone(), q.sort, SortOrder::Asc),
        ];
        for (c, sort, order) in bad {
            let query = ListQuery {
                cursor: Some(c),
                sort,
                order,
                ..q.clone()
            };
            match b.store.list(&alice, &query).await {
                Err(Error::Validation(v)) => assert_eq!(v.errors[0].field, "cursor"),
                other => panic!("{}: {other:?}", b.name),
            }
        }
    }
}

/// Cursors embed the case-folded title of the page's last task, so the longest titles of the
/// characters that take the most room (control characters, escaped as six bytes; four-byte
/// emoji; `İ`, whose lowercase is longer; a mix with quotes and backslashes) make the longest
/// cursors there are. Each one issued must be accepted and lead to the next page, in both
/// orders. A cursor longer than any the store issues is still refused on `cursor`.
#[tokio::test]
async fn cursors_of_the_longest_titles_are_accepted_and_lead_to_the_next_page() {
    let mixed: String = ['\u{1}', '😀', 'İ', '"', '\\', '\u{1f}', 'Σ', '\u{7f}']
        .iter()
        .cycle()
        .take(TITLE_MAX_CHARS)
        .collect();
    let titles = [
        "\u{1}".repeat(TITLE_MAX_CHARS),
        "😀".repeat(TITLE_MAX_CHARS),
        "İ".repeat(TITLE_MAX_CHARS),
        mixed,
    ];
    for b in backends().await {
        for title in &titles {
            let alice = user("alice");
            let mut ids = Vec::new();
            for _ in 0..3 {
                ids.push(create(&b.store, &alice, title).await.id);
            }
            for order in [SortOrder::Asc, SortOrder::Desc] {
                let q = ListQuery {
                    sort: SortField::Title,
                    order,
                    limit: Limit::new(1).unwrap(),
                    ..ListQuery::default()
                };
                let seen: Vec<i64> = walk(&b, &alice, q).await.iter().map(|t| t.id).collect();
                let mut expected = ids.clone();
                if order == SortOrder::Desc {
                    expected.reverse();
                }
                assert_eq!(seen, expected, "{}: {order:?} {title:?}", b.name);
            }
        }
        let alice = user("alice");
        let too_long = ListQuery {
            cursor: Some("A".repeat(4096)),
            ..ListQuery::default()
        };
        match b.store.list(&alice, &too_long).await {
            Err(Error::Validation(v)) => assert_eq!(v.errors[0].field, "cursor", "{}", b.name),
            other => panic!("{}: {other:?}", b.name),
        }
    }
}

/// Lists travel as one JSON document built by the database: every field of every task must
/// come back exactly as `get` reads it, whatever the text holds and however far the dates lie.
#[tokio::test]
async fn a_list_returns_every_task_exactly_as_get_reads_it() {
    use chrono::{TimeZone, Utc};
    use todo_core::Description;

    let titles = [
        "quote \" backslash \\ slash / done",
        "tab\tnewline\nreturn\r bell\u{7} escape\u{1b} del\u{7f}",
        "emoji 🦀 and combining e\u{301} and RTL \u{202e}abc",
        "<script>alert('x')</script> & ampersand",
        "\u{2028} line separator \u{2029} paragraph separator",
        "plain",
    ];
    let dues = [
        None,
        Some(Utc.with_ymd_and_hms(1, 1, 1, 0, 0, 0).unwrap()),
        Some(
            Utc.with_ymd_and_hms(1969, 12, 31, 23, 59, 59).unwrap()
                + chrono::Duration::microseconds(999_999),
        ),
        Some(
            Utc.with_ymd_and_hms(1970, 1, 1, 0, 0, 0).unwrap() - chrono::Duration::microseconds(1),
        ),
        Some(
            Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap()
                + chrono::Duration::microseconds(999_999),
        ),
        Some(
            Utc.with_ymd_and_hms(2031, 2, 3, 4, 5, 6).unwrap() + chrono::Duration::microseconds(7),
        ),
    ];
    let priorities = [Priority::Low, Priority::Medium, Priority::High];
    for b in backends().await {
        let owner = user("json-list");
        let mut expected = Vec::new();
        for (i, (title, due)) in titles.iter().zip(dues).enumerate() {
            let new = NewTask {
                description: (i % 2 == 0)
                    .then(|| Description::parse(&format!("{title} {i}")).unwrap()),
                priority: priorities[i % 3],
                due_date: due,
                tags: Default::default(),
                ..NewTask::new(Title::parse(title).unwrap())
            };
            let created = b.store.create(&owner, new, None).await.unwrap().task;
            let created = if i == 3 {
                b.store
                    .set_completed(&owner, created.id, Some(true), None)
                    .await
                    .unwrap()
            } else {
                created
            };
            expected.push(b.store.get(&owner, created.id).await.unwrap());
        }
        for sort in EVERY_SORT {
            for order in [SortOrder::Asc, SortOrder::Desc] {
                let query = ListQuery {
                    sort,
                    order,
                    ..ListQuery::default()
                };
                let page = b.store.list(&owner, &query).await.unwrap();
                let mut got = page.tasks.clone();
                got.sort_by_key(|t| t.id);
                assert_eq!(got, expected, "{} {sort:?} {order:?}", b.name);
            }
        }
        let empty = b
            .store
            .list(&user("json-list-nobody"), &ListQuery::default())
            .await
            .unwrap();
        assert!(
            empty.tasks.is_empty() && empty.next_cursor.is_none(),
            "{}",
            b.name
        );
    }
}
