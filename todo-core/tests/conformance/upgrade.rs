//! A database written by the previous release (migrations 0001 to 0003, tasks inserted the way
//! that release wrote them) opens under this code: every task is intact, with no tags and no
//! reminder, and the new fields and filters work on them.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use sqlx::migrate::Migrator;
use todo_core::{ListQuery, Priority, StatusFilter, Tag, Tags, TaskPatch};

use crate::helpers::{pg_url, user};

/// The last migration of the previous release.
const PREVIOUS_RELEASE: i64 = 3;

/// `migrator` cut back to the previous release's migrations.
fn previous(mut migrator: Migrator) -> Migrator {
    let kept: Vec<_> = migrator
        .migrations
        .iter()
        .filter(|m| m.version <= PREVIOUS_RELEASE)
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

#[tokio::test]
async fn a_postgres_database_of_the_previous_release_opens_with_every_task_intact() {
    let Some(admin_url) = pg_url() else { return };
    let admin = sqlx::PgPool::connect(&admin_url).await.unwrap();
    // One name, dropped first: a run that failed half-way leaves nothing behind for long.
    let name = "todo_upgrade_test";
    sqlx::query(&format!("drop database if exists {name} with (force)"))
        .execute(&admin)
        .await
        .unwrap();
    sqlx::query(&format!("create database {name}"))
        .execute(&admin)
        .await
        .unwrap();
    let (base, query) = admin_url.split_once('?').unwrap_or((&admin_url, ""));
    let server = &base[..base.rfind('/').unwrap()];
    let url = if query.is_empty() {
        format!("{server}/{name}")
    } else {
        format!("{server}/{name}?{query}")
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
    sqlx::query(&format!("drop database if exists {name} with (force)"))
        .execute(&admin)
        .await
        .unwrap();
}
