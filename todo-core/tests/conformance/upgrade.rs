//! A database written by the previous release (migrations 0001 to 0003, tasks inserted the way
//! that release wrote them) opens under this code: every task is intact, with no tags and no
//! reminder, and the new fields and filters work on them. A database of the first release with
//! recurring tasks (migrations to 0005) keeps each completed task's next occurrence its only one.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use sqlx::migrate::Migrator;
use todo_core::{ListQuery, Priority, StatusFilter, Tag, Tags, TaskPatch};

use crate::helpers::{pg_url, user};

/// The last migration of the previous release.
const PREVIOUS_RELEASE: i64 = 3;

/// The last migration of the first release with recurring tasks.
const RECURRENCE_RELEASE: i64 = 5;

/// `migrator` cut back to the previous release's migrations.
fn previous(migrator: Migrator) -> Migrator {
    up_to(migrator, PREVIOUS_RELEASE)
}

/// `migrator` cut back to the migrations up to `last`.
fn up_to(mut migrator: Migrator, last: i64) -> Migrator {
    let kept: Vec<_> = migrator
        .migrations
        .iter()
        .filter(|m| m.version <= last)
        .cloned()
        .collect();
    migrator.migrations = Cow::Owned(kept);
    migrator
}

/// A task as the previous release stored it: title, description, completed, priority rank, due
/// date in microseconds.
type OldTask = (&'static str, Option<&'static str>, bool, i16, Option<i64>);

/// Three tasks as the previous release stored them for `user`: plain, completed with a
/// description and a due date, and high priority. The second is completed.
const OLD_TASKS: [OldTask; 3] = [
    ("plain", None, false, 1, None),
    (
        "done",
        Some("with notes"),
        true,
        0,
        Some(1_900_000_000_000_000),
    ),
    ("urgent", None, false, 2, Some(1_800_000_000_000_000)),
];

/// Opens the upgraded database at `url` and checks `user`'s three old tasks, then tags one and
/// filters by it.
async fn check_upgraded(url: &str, who: &todo_core::Principal) {
    let store = todo_core::open(url, todo_core::StoreOptions::default())
        .await
        .expect("the previous release's database opens");
    let query = ListQuery {
        sort: todo_core::SortField::Title,
        order: todo_core::SortOrder::Asc,
        ..ListQuery::default()
    };
    let tasks = store.list(who, &query).await.unwrap().tasks;
    let titles: Vec<_> = tasks.iter().map(|t| t.title.as_str()).collect();
    assert_eq!(titles, ["done", "plain", "urgent"]);
    for task in &tasks {
        let (_, description, completed, rank, due) = OLD_TASKS
            .iter()
            .find(|t| t.0 == task.title)
            .copied()
            .unwrap();
        assert_eq!(task.description.as_deref(), description);
        assert_eq!(task.completed, completed);
        assert_eq!(task.priority, Priority::from_rank(rank).unwrap());
        assert_eq!(
            task.due_date,
            due.map(|d| DateTime::from_timestamp_micros(d).unwrap())
        );
        assert_eq!(task.version, 4, "the versions are kept");
        assert!(task.tags.is_empty(), "{task:?}");
        assert_eq!(task.remind_at, None);
        // Migration 0003 gave the completed one its update time as completion time.
        assert_eq!(task.completed_at.is_some(), completed);
    }
    let urgent = tasks.iter().find(|t| t.title == "urgent").unwrap();
    let tagged = store
        .patch(
            who,
            urgent.id,
            TaskPatch {
                tags: Some(Tags::parse(["Work"]).unwrap()),
                ..TaskPatch::default()
            },
            Some(4),
        )
        .await
        .unwrap();
    assert_eq!(tagged.tags, ["Work"]);
    let by_tag = ListQuery {
        tags: vec![Tag::parse("work").unwrap()],
        status: StatusFilter::Pending,
        ..ListQuery::default()
    };
    let found = store.list(who, &by_tag).await.unwrap().tasks;
    assert_eq!(found, [tagged]);
    store.close().await;
}

#[tokio::test]
async fn a_sqlite_database_of_the_previous_release_opens_with_every_task_intact() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("old.db").display());
    let who = user("alice");
    {
        let options = url.parse::<sqlx::sqlite::SqliteConnectOptions>().unwrap();
        let pool = sqlx::SqlitePool::connect_with(options.create_if_missing(true))
            .await
            .unwrap();
        previous(sqlx::migrate!("./migrations/sqlite"))
            .run(&pool)
            .await
            .unwrap();
        for (title, description, completed, rank, due) in OLD_TASKS {
            sqlx::query(
                "insert into tasks (user_id, title, title_key, description, description_key, \
                 completed, priority, due_date, created_at, updated_at, version, completed_at) \
                 values ($1, $2, $2, $3, $3, $4, $5, $6, 1000, 2000, 4, \
                 case when $4 then 2000 end)",
            )
            .bind(who.user_id().as_str())
            .bind(title)
            .bind(description)
            .bind(completed)
            .bind(rank)
            .bind(due)
            .execute(&pool)
            .await
            .unwrap();
        }
        pool.close().await;
    }
    check_upgraded(&url, &who).await;
}

/// A fresh PostgreSQL database named `name` on the test server, dropped first: a run that
/// failed half-way leaves nothing behind for long. Its URL, or `None` with no test server.
async fn fresh_pg_database(name: &str) -> Option<String> {
    let admin_url = pg_url()?;
    let admin = sqlx::PgPool::connect(&admin_url).await.unwrap();
    sqlx::query(&format!("drop database if exists {name} with (force)"))
        .execute(&admin)
        .await
        .unwrap();
    sqlx::query(&format!("create database {name}"))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    let (base, query) = admin_url.split_once('?').unwrap_or((&admin_url, ""));
    let server = &base[..base.rfind('/').unwrap()];
    Some(if query.is_empty() {
        format!("{server}/{name}")
    } else {
        format!("{server}/{name}?{query}")
    })
}

/// Drops the database `name` made by [`fresh_pg_database`].
async fn drop_pg_database(name: &str) {
    let admin = sqlx::PgPool::connect(&pg_url().unwrap()).await.unwrap();
    sqlx::query(&format!("drop database if exists {name} with (force)"))
        .execute(&admin)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_postgres_database_of_the_previous_release_opens_with_every_task_intact() {
    let name = "todo_upgrade_test";
    let Some(url) = fresh_pg_database(name).await else {
        return;
    };
    let who = user("alice");
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    previous(sqlx::migrate!("./migrations/postgres"))
        .run(&pool)
        .await
        .unwrap();
    for (title, description, completed, rank, due) in OLD_TASKS {
        sqlx::query(
            "insert into tasks (user_id, title, title_key, description, description_key, \
             completed, priority, due_date, created_at, updated_at, version, completed_at) \
             values ($1, $2, $2, $3, $3, $4, $5, $6, now(), now(), 4, \
             case when $4 then now() end)",
        )
        .bind(who.user_id().as_str())
        .bind(title)
        .bind(description)
        .bind(completed)
        .bind(rank)
        .bind(due.map(|d| DateTime::<Utc>::from_timestamp_micros(d).unwrap()))
        .execute(&pool)
        .await
        .unwrap();
    }
    pool.close().await;
    check_upgraded(&url, &who).await;
    drop_pg_database(name).await;
}

/// A completed daily task and its next occurrence, inserted the way the first release with
/// recurring tasks wrote them: `$1` the user, `$2` the task's due date, `$3` the next one's.
const OLD_SERIES: [&str; 2] = [
    "insert into tasks (user_id, title, title_key, completed, due_date, created_at, updated_at, \
     recurrence, completed_at) values ($1, 'water', 'water', true, $2, $2, $2, 'FREQ=DAILY', $2)",
    "insert into tasks (user_id, title, title_key, completed, due_date, created_at, updated_at, \
     recurrence, spawned_from) select user_id, title, title_key, false, $3, $2, $2, recurrence, id \
     from tasks where user_id = $1",
];

/// Opens the upgraded database at `url` with `user`'s old series: deleting the next occurrence
/// and completing the task again creates no other.
async fn check_series_upgraded(url: &str, who: &todo_core::Principal) {
    let store = todo_core::open(url, todo_core::StoreOptions::default())
        .await
        .expect("the database opens");
    let tasks = store.list(who, &ListQuery::default()).await.unwrap().tasks;
    assert_eq!(tasks.len(), 2, "{tasks:?}");
    let done = tasks.iter().find(|t| t.completed).unwrap();
    let next = tasks.iter().find(|t| !t.completed).unwrap();
    store.delete(who, next.id, None).await.unwrap();
    store.toggle_completed(who, done.id, None).await.unwrap();
    store.toggle_completed(who, done.id, None).await.unwrap();
    let left = store.list(who, &ListQuery::default()).await.unwrap().tasks;
    assert_eq!(left.len(), 1, "the occurrence was created again: {left:?}");
    store.close().await;
}

#[tokio::test]
async fn a_sqlite_database_with_a_completed_series_does_not_repeat_it_after_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("series.db").display());
    let who = user("alice");
    {
        let options = url.parse::<sqlx::sqlite::SqliteConnectOptions>().unwrap();
        let pool = sqlx::SqlitePool::connect_with(options.create_if_missing(true))
            .await
            .unwrap();
        up_to(sqlx::migrate!("./migrations/sqlite"), RECURRENCE_RELEASE)
            .run(&pool)
            .await
            .unwrap();
        for sql in OLD_SERIES {
            sqlx::query(sql)
                .bind(who.user_id().as_str())
                .bind(1_900_000_000_000_000_i64)
                .bind(1_900_086_400_000_000_i64)
                .execute(&pool)
                .await
                .unwrap();
        }
        pool.close().await;
    }
    check_series_upgraded(&url, &who).await;
}

#[tokio::test]
async fn a_postgres_database_with_a_completed_series_does_not_repeat_it_after_upgrade() {
    let name = "todo_upgrade_series_test";
    let Some(url) = fresh_pg_database(name).await else {
        return;
    };
    let who = user("alice");
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    up_to(sqlx::migrate!("./migrations/postgres"), RECURRENCE_RELEASE)
        .run(&pool)
        .await
        .unwrap();
    let due = DateTime::<Utc>::from_timestamp_micros(1_900_000_000_000_000).unwrap();
    for sql in OLD_SERIES {
        sqlx::query(sql)
            .bind(who.user_id().as_str())
            .bind(due)
            .bind(due + chrono::Duration::days(1))
            .execute(&pool)
            .await
            .unwrap();
    }
    pool.close().await;
    check_series_upgraded(&url, &who).await;
    drop_pg_database(name).await;
}
