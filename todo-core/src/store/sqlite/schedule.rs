//! Where a list runs on a SQLite file: on the calling task (an async worker, like a lookup by
//! key) or on tokio's blocking threads. Deny by default: a list runs inline only when its
//! statement is proven to be a range scan of the owner's index, in sort order, that stops after
//! the page; the test below checks every such shape against SQLite's own plan and against the
//! rows it reads. Every other shape, including any this file has not classified, runs on the
//! blocking threads: a new shape of query is slow until proven fast.

use crate::model::{Limit, ListQuery, SortField, StatusFilter};

/// Where a list's statement runs on a database file (in memory, everything runs on the one
/// connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placement {
    /// On the calling task: the statement seeks into the owner's index and reads the page (plus
    /// one row) from there, microseconds.
    Inline,
    /// On tokio's blocking threads, on connections of their own: the statement may read every
    /// task the user has before the page fills.
    Blocking,
}

/// Where `query`'s list runs. Inline only for a plain page: every task, no search, sorted by a
/// column the owner's index orders, no larger than the default page. A status filter or a
/// search may read every task before the page fills; so may the due-date sort, whose cursor
/// (`due_date is null or (due_date, id) > ...`, as undated tasks come last) is no range to seek
/// to, and whose `nulls last` first steps over every undated task. Both orders and both kinds
/// of page (first, or after a cursor) of every inline shape are plan-tested, so neither is read
/// here. Tag, priority and due-date filters always run on the blocking threads. A field added to
/// [`ListQuery`] fails to compile here until it is classified; a status
/// or sort added to the model runs on the blocking threads until it is listed. A cursor page
/// sorted by priority runs there too: it seeks to the cursor's priority, not to (priority, id),
/// since `id` is the rowid, over which SQLite's row-value range does not extend; so it also
/// reads every task of that priority that comes before the cursor (with three priorities, up
/// to a third of the user's tasks). On timestamps and titles the same walk covers ties only.
pub(crate) fn placement(query: &ListQuery) -> Placement {
    let ListQuery {
        status,
        search,
        sort,
        order: _,
        limit,
        cursor,
        offset,
        tags,
        priorities,
        due_after,
        due_before,
        overdue,
    } = query;
    // Tag, priority and due-date filters may skip any number of tasks before the page fills;
    // an offset reads every task it skips.
    if offset.get() > 0
        || !tags.is_empty()
        || !priorities.is_empty()
        || due_after.is_some()
        || due_before.is_some()
        || *overdue
    {
        return Placement::Blocking;
    }
    match (status, search, sort, cursor) {
        (
            StatusFilter::All,
            None,
            SortField::Created | SortField::Updated | SortField::Title,
            _,
        )
        | (StatusFilter::All, None, SortField::Priority, None)
            if limit.get() <= Limit::DEFAULT =>
        {
            Placement::Inline
        }
        _ => Placement::Blocking,
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::{Connection, StatementStatus};

    use super::super::file_reads::{all, bind, list_args};
    use super::super::{POSITION_FN, SqliteStore, row};
    use super::{Placement, placement};
    use crate::cursor::Position;
    use crate::model::{Limit, ListQuery, SearchText, SortField, SortOrder, StatusFilter};
    use crate::options::StoreOptions;
    use crate::store::TaskStore as _;
    use crate::store::common::{is_scan, position_after};
    use crate::store::statements::{ListSql, list};

    /// Tasks each test user has: many more than a page of one reads, and no more than the
    /// largest page, so one list reads them all.
    const TASKS: u32 = 900;

    /// Every status. Fails to compile when a status is added, until it is listed here.
    fn statuses() -> [StatusFilter; 3] {
        use StatusFilter::*;
        let _listed = |s: StatusFilter| match s {
            All | Pending | Completed => (),
        };
        [All, Pending, Completed]
    }

    /// Every sort. Fails to compile when a sort is added, until it is listed here (and in
    /// [`index`]).
    fn sorts() -> [SortField; 5] {
        use SortField::*;
        let _listed = |s: SortField| match s {
            Created | Updated | Title | DueDate | Priority => (),
        };
        [Created, Updated, Title, DueDate, Priority]
    }

    /// Both orders.
    fn orders() -> [SortOrder; 2] {
        use SortOrder::*;
        let _listed = |o: SortOrder| match o {
            Asc | Desc => (),
        };
        [Asc, Desc]
    }

    /// The owner's index a list sorted by `sort` must read (`migrations/sqlite/0001_tasks.sql`).
    fn index(sort: SortField) -> &'static str {
        match sort {
            SortField::Created => "tasks_user_created",
            SortField::Updated => "tasks_user_updated",
            SortField::Title => "tasks_user_title",
            SortField::DueDate => "tasks_user_due",
            SortField::Priority => "tasks_user_priority",
        }
    }

    /// SQLite's plan for `sql`, one detail per step (parameters left unbound are null; the plan
    /// does not depend on their values).
    fn plan(conn: &Connection, sql: &str) -> Vec<String> {
        let mut stmt = conn.prepare(&format!("explain query plan {sql}")).unwrap();
        let mut rows = stmt.raw_query();
        let mut details = Vec::new();
        while let Some(row) = rows.next().unwrap() {
            details.push(row.get::<_, String>(3).unwrap());
        }
        details
    }

    /// How many virtual-machine steps SQLite takes to run `sql` to its end: at least one per row
    /// it reads, returned or filtered out.
    fn steps(conn: &Connection, sql: &ListSql) -> i32 {
        let mut stmt = conn.prepare(&sql.text).unwrap();
        bind(&mut stmt, &list_args(&sql.args)).unwrap();
        let mut rows = stmt.raw_query();
        while rows.next().unwrap().is_some() {}
        drop(rows);
        stmt.get_status(StatementStatus::VmStep)
    }

    /// Every shape of list: status x search x sort x order x first page or cursor page, at page
    /// sizes either side of the default.
    fn shapes() -> Vec<ListQuery> {
        let searches = [None, SearchText::parse("matches nothing").unwrap()];
        let limits = [1, Limit::DEFAULT, Limit::DEFAULT + 1, Limit::MAX]
            .map(|n| Limit::new(i64::from(n)).unwrap());
        let mut shapes = Vec::new();
        for status in statuses() {
            for search in &searches {
                for sort in sorts() {
                    for order in orders() {
                        for cursor in [None, Some("a cursor".to_owned())] {
                            for limit in limits {
                                // No `..`: a field added to `ListQuery` fails to compile here.
                                shapes.push(ListQuery {
                                    status,
                                    search: search.clone(),
                                    sort,
                                    order,
                                    limit,
                                    cursor: cursor.clone(),
                                    // Any of these filters, and an offset, runs on the
                                    // blocking threads
                                    // (`every_tag_priority_or_due_filter_runs_blocking`).
                                    offset: Default::default(),
                                    tags: Vec::new(),
                                    priorities: Vec::new(),
                                    due_after: None,
                                    due_before: None,
                                    overdue: false,
                                });
                            }
                        }
                    }
                }
            }
        }
        shapes
    }

    /// The test database: users `done` (every task completed, none dated) and `open` (every
    /// task pending and dated), [`TASKS`] each, so any status filter rejects every task of one
    /// of them, and a search for "matches nothing" every task of both.
    async fn seeded() -> (tempfile::TempDir, SqliteStore, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let db = SqliteStore::open(
            &format!("sqlite://{}", path.display()),
            vec![0; 32],
            &StoreOptions::default(),
        )
        .await
        .unwrap();
        let conn = Connection::open(&path).unwrap();
        conn.execute(
            "with recursive n(i) as (select 1 union all select i + 1 from n where i < ?1) \
             insert into tasks (user_id, title, title_key, description, description_key, \
             completed, priority, due_date, created_at, updated_at, version) \
             select u.id, 'task ' || i, 'task ' || i, 'about ' || i, 'about ' || i, \
             u.id = 'done', i % 3, case when u.id = 'open' then i * 1000 end, i, ?1 - i, 1 \
             from n, (select 'done' as id union all select 'open') u",
            [TASKS],
        )
        .unwrap();
        (dir, db, conn)
    }

    /// Why `query`'s list for `user` may not run inline: each check it fails, none if it may.
    /// Its plan must read the owner's index of its sort from a seek (`user_id=?`; on a cursor
    /// page, one that seeks to the cursor rather than walking up to it), with no temporary
    /// B-tree to sort and no scan. A plan shows where SQLite reads, not what it then filters
    /// out (a filter outside the index keeps the plan), so the list also runs, one task per
    /// page, its cursor three tasks from the end of `user`'s tasks: it must take fewer steps
    /// than `user` has tasks.
    fn why_not_inline(conn: &Connection, query: &ListQuery, user: &str) -> Vec<String> {
        let (sort, order) = (query.sort, query.order);
        let after = query
            .cursor
            .as_ref()
            .map(|_| late_position(conn, user, sort, order));
        let sql = list(POSITION_FN, user, query, after.as_ref(), chrono::Utc::now()).unwrap();
        let plan = plan(conn, &sql.text).join("; ");
        let index = index(sort);
        let seek = match after {
            Some(_) => format!("USING INDEX {index} (user_id=? AND "),
            None => format!("USING INDEX {index} (user_id=?"),
        };
        let mut failures = Vec::new();
        if !plan.contains(&seek) {
            failures.push(format!("no `{seek}` in the plan: {plan}"));
        }
        if plan.contains("TEMP B-TREE") {
            failures.push(format!("a sort in the plan: {plan}"));
        }
        if plan.split("; ").any(|step| step.starts_with("SCAN")) {
            failures.push(format!("a scan in the plan: {plan}"));
        }
        let one = ListQuery {
            limit: Limit::new(1).unwrap(),
            ..query.clone()
        };
        let steps = steps(
            conn,
            &list(POSITION_FN, user, &one, after.as_ref(), chrono::Utc::now()).unwrap(),
        );
        if steps >= TASKS as i32 {
            failures.push(format!(
                "{steps} steps for a page of one of {TASKS} tasks: it reads past the page"
            ));
        }
        failures
    }

    /// What [`placement`] promises, over every shape of list ([`shapes`]): each `Inline` shape
    /// passes every check of [`why_not_inline`], for both test users, and takes none of the
    /// user's turns; every list that takes no turn runs inline. And the checks have teeth: the
    /// due-date sort's cursor page (no range to seek to), a status filter (the same plan as a
    /// plain page, reading every task it rejects) and a priority cursor page (which walks the
    /// cursor's priority) each fail them.
    #[tokio::test]
    async fn every_inline_list_shape_is_an_index_range_scan_that_seeks() {
        let (_dir, db, conn) = seeded().await;
        let mut inline = 0;
        for query in shapes() {
            let shape = format!("{query:?}");
            match placement(&query) {
                Placement::Inline => inline += 1,
                Placement::Blocking => {
                    assert!(
                        is_scan(&query),
                        "{shape}: takes no turn, yet runs on the blocking threads"
                    );
                    continue;
                }
            }
            for user in ["done", "open"] {
                let failures = why_not_inline(&conn, &query, user);
                assert!(failures.is_empty(), "{shape}, user {user}: {failures:#?}");
            }
            assert!(!is_scan(&query), "{shape}: runs inline, yet is a scan");
        }
        // Three sorts with both kinds of page and priority with first pages only, two orders,
        // two page sizes.
        assert_eq!(inline, 28);
        let priority_cursor_page = ListQuery {
            sort: SortField::Priority,
            cursor: Some("a cursor".to_owned()),
            ..ListQuery::default()
        };
        let failures = why_not_inline(&conn, &priority_cursor_page, "open");
        assert!(
            failures.iter().any(|f| f.contains("reads past the page")),
            "{failures:#?}"
        );

        let due_cursor_page = ListQuery {
            sort: SortField::DueDate,
            cursor: Some("a cursor".to_owned()),
            ..ListQuery::default()
        };
        let failures = why_not_inline(&conn, &due_cursor_page, "open");
        assert!(
            failures.iter().any(|f| f.contains("(user_id=? AND ")),
            "{failures:#?}"
        );
        let pending = ListQuery {
            status: StatusFilter::Pending,
            ..ListQuery::default()
        };
        let failures = why_not_inline(&conn, &pending, "done");
        assert!(
            failures.len() == 1 && failures[0].contains("reads past the page"),
            "{failures:#?}"
        );
        db.close().await;
    }

    /// The position three tasks before the end of all of `user`'s tasks sorted by `sort` in
    /// `order`.
    fn late_position(conn: &Connection, user: &str, sort: SortField, order: SortOrder) -> Position {
        let every = ListQuery {
            sort,
            order,
            limit: Limit::new(i64::from(Limit::MAX)).unwrap(),
            ..ListQuery::default()
        };
        let sql = list(POSITION_FN, user, &every, None, chrono::Utc::now()).unwrap();
        let tasks = all_tasks(conn, &sql);
        assert_eq!(tasks.len(), TASKS as usize);
        position_after(&tasks[tasks.len() - 3], sort, order)
    }

    /// Every task `sql` reads.
    fn all_tasks(conn: &Connection, sql: &ListSql) -> Vec<crate::model::Task> {
        all(conn, &sql.text, &list_args(&sql.args), |r| row::task(r)).unwrap()
    }

    /// A tag, priority or due-date filter may skip any number of the user's tasks before the
    /// page fills, and an offset reads every task it skips: whatever else the list is, it runs
    /// on the blocking threads.
    #[test]
    fn every_tag_priority_or_due_filter_runs_blocking() {
        let plain = ListQuery::default();
        assert_eq!(placement(&plain), Placement::Inline);
        let filters = [
            ListQuery {
                tags: vec![crate::model::Tag::parse("work").unwrap()],
                ..plain.clone()
            },
            ListQuery {
                priorities: vec![crate::model::Priority::High],
                ..plain.clone()
            },
            ListQuery {
                due_after: Some(chrono::Utc::now()),
                ..plain.clone()
            },
            ListQuery {
                due_before: Some(chrono::Utc::now()),
                ..plain.clone()
            },
            ListQuery {
                overdue: true,
                ..plain.clone()
            },
            ListQuery {
                offset: crate::model::Offset::new(1).unwrap(),
                ..plain.clone()
            },
        ];
        for query in filters {
            assert_eq!(placement(&query), Placement::Blocking, "{query:?}");
            assert!(is_scan(&query), "{query:?}");
        }
    }
}
