//! Criterion benchmarks of the query layer (`todo_core::TaskStore`), one call at a time, on:
//!
//! - SQLite in memory (`sqlite::memory:`),
//! - SQLite on a file in a temporary directory (default options: WAL, `synchronous = FULL`),
//! - PostgreSQL, when `TODO_BENCH_DATABASE_URL` is set. **Point it at a dedicated database**
//!   (e.g. `postgres://postgres@127.0.0.1:5432/todo_bench_core`): the bench empties its
//!   `tasks`, `task_tags` and `idempotency_keys` tables with `truncate`. It needs the `psql`
//!   command.
//!
//! Each backend is measured at two table sizes: 10k rows (the measured user's 10,000 tasks only)
//! and, with `TODO_BENCH_LARGE=1`, 1M rows (the same 10,000 plus 990,000 tasks of 999 other
//! users). The measured user's tasks are created through the store API, concurrently; the
//! background rows are bulk-inserted with the `sqlite3` / `psql` command line (SQLite in memory
//! cannot be reached from another process, so there they go through the API too).
//!
//! `TODO_BENCH_BACKENDS=sqlite_memory,sqlite_file,postgres` picks backends (default: all
//! available). Method, machine and results: `docs/benchmarks.md`.

use std::future::Future;
use std::hint::black_box;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Bencher, Criterion, Throughput, criterion_group, criterion_main};
use todo_core::{
    Description, DynTaskStore, Limit, ListQuery, NewTask, Principal, Priority, Recurrence,
    Replacement, SearchText, StoreOptions, Tag, Tags, TaskId, Title, UserId,
};
use tokio::runtime::Runtime;

/// Tasks of the measured user.
const MEASURED_TASKS: usize = 10_000;
/// Total rows of the large table size.
const LARGE_TOTAL: usize = 1_000_000;
/// Users owning the background rows.
const OTHER_USERS: usize = 999;
/// Page size of the list benchmarks.
const PAGE: i64 = 50;
/// The deep page the cursor benchmark reads (1-based).
const DEEP_PAGE: usize = 100;
/// Concurrent writers while seeding through the API.
const SEED_CONCURRENCY: usize = 16;
/// Writes timed (or undone) per round in the create/delete benchmarks, so the measured user's
/// task count stays between 10,000 and 11,000 whatever iteration count criterion picks.
const WRITE_ROUND: u64 = 1_000;
/// Words in the seeded titles: each appears in one task out of ten.
const WORDS: [&str; 10] = [
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
];
/// A search that matches one task in ten (the list stops after 51 matches).
const SEARCH_HIT: &str = "Delta";
/// A search that matches nothing (every one of the user's rows is examined).
const SEARCH_MISS: &str = "no-such-word";
/// The tag one task in ten carries (the measured user's and the background rows alike).
const TAG_HIT: &str = "focus";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Backend {
    SqliteMemory,
    SqliteFile,
    Postgres,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Self::SqliteMemory => "sqlite_memory",
            Self::SqliteFile => "sqlite_file",
            Self::Postgres => "postgres",
        }
    }
}

/// A seeded store and what the benchmarks need to address it.
struct Fixture {
    store: DynTaskStore,
    who: Principal,
    ids: Vec<TaskId>,
    deep_cursor: String,
    /// Keeps the SQLite file alive until the fixture is dropped.
    _dir: Option<tempfile::TempDir>,
}

fn title(i: usize) -> Title {
    Title::parse(&format!(
        "Task {i}: {} the {} report",
        WORDS[i % WORDS.len()],
        WORDS[(i / WORDS.len()) % WORDS.len()]
    ))
    .expect("valid title")
}

fn new_task(i: usize) -> NewTask {
    NewTask {
        description: i.is_multiple_of(3).then(|| {
            Description::parse(&format!("Notes for task {i}, written while seeding"))
                .expect("valid description")
        }),
        priority: [Priority::Low, Priority::Medium, Priority::High][i % 3],
        due_date: i
            .is_multiple_of(4)
            .then(|| chrono::Utc::now() + chrono::Duration::days((i % 365) as i64)),
        tags: if i.is_multiple_of(10) {
            Tags::parse([TAG_HIT, "seeded"]).expect("valid tags")
        } else {
            Tags::parse(["seeded"]).expect("valid tags")
        },
        ..NewTask::new(title(i))
    }
}

/// Creates `count` tasks for `who` through the store API, `SEED_CONCURRENCY` at a time; returns
/// their ids in creation order.
async fn seed_through_api(
    store: &DynTaskStore,
    who: &Principal,
    offset: usize,
    count: usize,
) -> Vec<TaskId> {
    let per_worker = count.div_ceil(SEED_CONCURRENCY);
    let mut workers = Vec::with_capacity(SEED_CONCURRENCY);
    for w in 0..SEED_CONCURRENCY {
        let store = Arc::clone(store);
        let who = who.clone();
        let range = (w * per_worker).min(count)..((w + 1) * per_worker).min(count);
        workers.push(tokio::spawn(async move {
            let mut ids = Vec::with_capacity(range.len());
            for i in range {
                let created = store
                    .create(&who, new_task(offset + i), None)
                    .await
                    .expect("seed create");
                ids.push(created.task.id);
            }
            ids
        }));
    }
    let mut ids = Vec::with_capacity(count);
    for worker in workers {
        ids.extend(worker.await.expect("seed worker"));
    }
    ids.sort_unstable();
    ids
}

/// Background rows for the 1M size on SQLite in memory, through the API: `SEED_CONCURRENCY`
/// workers, each creating the tasks of every `SEED_CONCURRENCY`-th other user.
async fn seed_background_through_api(store: &DynTaskStore, count: usize) {
    let mut workers = Vec::with_capacity(SEED_CONCURRENCY);
    for w in 0..SEED_CONCURRENCY {
        let store = Arc::clone(store);
        workers.push(tokio::spawn(async move {
            let users: Vec<(usize, Principal)> = (w..OTHER_USERS)
                .step_by(SEED_CONCURRENCY)
                .map(|u| {
                    let id = UserId::parse(&format!("other-{u}")).expect("user id");
                    (u, Principal::assume_authenticated(id))
                })
                .collect();
            for (u, who) in &users {
                for i in (*u..count).step_by(OTHER_USERS) {
                    store
                        .create(who, new_task(i), None)
                        .await
                        .expect("background create");
                }
            }
        }));
    }
    for worker in workers {
        worker.await.expect("background worker");
    }
}

/// The SQL that inserts `count` background rows on SQLite (timestamps in microseconds).
fn sqlite_background_sql(count: usize) -> String {
    format!(
        r#"pragma synchronous = off;
        begin;
        with recursive n(i) as (select 1 union all select i + 1 from n where i < {count})
        insert into tasks (user_id, title, title_key, description, description_key, completed,
                           priority, due_date, created_at, updated_at, version, tags, tag_keys)
        select 'other-' || (i % {OTHER_USERS}),
               'Background task ' || i || ' delta',
               'background task ' || i || ' delta',
               case when i % 3 = 0 then 'Notes ' || i end,
               case when i % 3 = 0 then 'notes ' || i end,
               i % 2, i % 3,
               case when i % 4 = 0 then 1700000000000000 + i * 1000000 end,
               1600000000000000 + i * 1000, 1600000000000000 + i * 1000, 1,
               case when i % 10 = 0 then '["{TAG_HIT}"]' else '[]' end,
               case when i % 10 = 0 then '["{TAG_HIT}"]' else '[]' end
        from n;
        commit;"#
    )
}

/// The SQL that inserts `count` background rows on PostgreSQL.
fn postgres_background_sql(count: usize) -> String {
    format!(
        r"insert into tasks (user_id, title, title_key, description, description_key, completed,
                             priority, due_date, created_at, updated_at, version, tags, tag_keys)
        select 'other-' || (i % {OTHER_USERS}),
               'Background task ' || i || ' delta',
               'background task ' || i || ' delta',
               case when i % 3 = 0 then 'Notes ' || i end,
               case when i % 3 = 0 then 'notes ' || i end,
               i % 2 = 0, (i % 3)::smallint,
               case when i % 4 = 0 then timestamptz '2024-01-01' + i * interval '1 minute' end,
               timestamptz '2020-09-13' + i * interval '1 millisecond',
               timestamptz '2020-09-13' + i * interval '1 millisecond', 1,
               case when i % 10 = 0 then array['{TAG_HIT}'] else '{{}}'::text[] end,
               case when i % 10 = 0 then array['{TAG_HIT}'] else '{{}}'::text[] end
        from generate_series(1, {count}) as i"
    )
}

/// Runs a command line tool, failing the bench with its output when it fails.
fn run_tool(program: &str, args: &[&str]) {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} (is it installed?): {e}"));
    assert!(
        output.status.success(),
        "{program} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Walks the measured user's tasks to just before page `DEEP_PAGE` and returns that cursor.
async fn deep_cursor(store: &DynTaskStore, who: &Principal) -> String {
    let mut query = ListQuery {
        limit: Limit::new(PAGE).expect("limit"),
        ..ListQuery::default()
    };
    for _ in 1..DEEP_PAGE {
        let page = store.list(who, &query).await.expect("walk list");
        query.cursor = Some(page.next_cursor.expect("enough tasks for the deep page"));
    }
    query.cursor.expect("a cursor")
}

/// Opens, empties and seeds `backend` with `total` rows, of which `MEASURED_TASKS` belong to the
/// measured user.
fn setup(rt: &Runtime, backend: Backend, total: usize, pg_url: Option<&str>) -> Fixture {
    let started = Instant::now();
    let who = Principal::assume_authenticated(UserId::parse("bench-user").expect("user id"));
    let background = total - MEASURED_TASKS;
    let (store, ids, dir) = rt.block_on(async {
        match backend {
            Backend::SqliteMemory => {
                let store = todo_core::open("sqlite::memory:", StoreOptions::default())
                    .await
                    .expect("open SQLite in memory");
                let ids = seed_through_api(&store, &who, 0, MEASURED_TASKS).await;
                seed_background_through_api(&store, background).await;
                (store, ids, None)
            }
            Backend::SqliteFile => {
                let dir = tempfile::tempdir().expect("temporary directory");
                let path = dir.path().join("bench.db");
                let url = format!("sqlite://{}", path.display());
                // Seed with synchronous = NORMAL (fast), then reopen with the defaults to measure.
                let seeding = StoreOptions {
                    sqlite_synchronous_full: false,
                    ..StoreOptions::default()
                };
                let store = todo_core::open(&url, seeding)
                    .await
                    .expect("open SQLite file");
                let ids = seed_through_api(&store, &who, 0, MEASURED_TASKS).await;
                store.close().await;
                if background > 0 {
                    let path = path.to_str().expect("UTF-8 temporary path");
                    run_tool("sqlite3", &[path, &sqlite_background_sql(background)]);
                }
                let store = todo_core::open(&url, StoreOptions::default())
                    .await
                    .expect("reopen SQLite file");
                (store, ids, Some(dir))
            }
            Backend::Postgres => {
                let url = pg_url.expect("TODO_BENCH_DATABASE_URL");
                let store = todo_core::open(url, StoreOptions::default())
                    .await
                    .expect("open PostgreSQL (TODO_BENCH_DATABASE_URL)");
                run_tool(
                    "psql",
                    &[
                        url,
                        "-qAtc",
                        "truncate tasks, task_tags, idempotency_keys restart identity",
                    ],
                );
                let ids = seed_through_api(&store, &who, 0, MEASURED_TASKS).await;
                if background > 0 {
                    run_tool(
                        "psql",
                        &[url, "-qAtc", &postgres_background_sql(background)],
                    );
                }
                // Both tables the triggers filled: a bulk load leaves `task_tags` without
                // statistics or a visibility map (every tag probe then reads the heap) until
                // autovacuum reaches it, possibly in the middle of a measurement.
                run_tool("psql", &[url, "-qAtc", "vacuum analyze tasks, task_tags"]);
                (store, ids, None)
            }
        }
    });
    let deep_cursor = rt.block_on(deep_cursor(&store, &who));
    eprintln!(
        "seeded {} with {total} rows ({MEASURED_TASKS} for the measured user) in {:.1?}",
        backend.name(),
        started.elapsed()
    );
    Fixture {
        store,
        who,
        ids,
        deep_cursor,
        _dir: dir,
    }
}

fn list_query(search: Option<&str>, cursor: Option<&str>) -> ListQuery {
    ListQuery {
        limit: Limit::new(PAGE).expect("limit"),
        search: search.and_then(|q| SearchText::parse(q).expect("valid search")),
        cursor: cursor.map(str::to_owned),
        ..ListQuery::default()
    }
}

impl Fixture {
    /// The `i`-th task id of a walk that visits the measured user's tasks in a scattered order.
    fn id(&self, i: u64) -> TaskId {
        self.ids[(i as usize).wrapping_mul(7919) % self.ids.len()]
    }
}

/// Times `run(fixture, iters)` (which measures itself and returns the time) inside a task on a
/// runtime worker thread, where the server's handlers run too, rather than on criterion's thread
/// (which would add a cross-thread wake-up to every database round trip).
fn on_worker<F, Fut>(b: &mut Bencher<'_>, rt: &Runtime, fixture: &Arc<Fixture>, run: F)
where
    F: Fn(Arc<Fixture>, u64) -> Fut,
    Fut: Future<Output = Duration> + Send + 'static,
{
    b.to_async(rt).iter_custom(|iters| {
        let task = rt.spawn(run(Arc::clone(fixture), iters));
        async move { task.await.expect("benchmark task") }
    });
}

/// Times `list(query)`, `iters` times.
async fn time_list(f: Arc<Fixture>, query: Arc<ListQuery>, iters: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        black_box(f.store.list(&f.who, &query).await.expect("list"));
    }
    start.elapsed()
}

/// Every benchmark of one backend at one size.
fn bench_fixture(c: &mut Criterion, rt: &Runtime, group_name: &str, f: &Arc<Fixture>) {
    let mut group = c.benchmark_group(group_name);
    group.throughput(Throughput::Elements(1));

    group.bench_function("create", |b| {
        on_worker(b, rt, f, |f, iters| async move {
            let mut timed = Duration::ZERO;
            let mut done = 0;
            while done < iters {
                let round = WRITE_ROUND.min(iters - done);
                let mut created = Vec::with_capacity(round as usize);
                let start = Instant::now();
                for i in 0..round {
                    let task = new_task(MEASURED_TASKS + (done + i) as usize);
                    let c = f.store.create(&f.who, task, None).await.expect("create");
                    created.push(c.task.id);
                }
                timed += start.elapsed();
                for id in created {
                    f.store.delete(&f.who, id, None).await.expect("undo create");
                }
                done += round;
            }
            timed
        });
    });

    group.bench_function("get", |b| {
        on_worker(b, rt, f, |f, iters| async move {
            let start = Instant::now();
            for i in 0..iters {
                black_box(f.store.get(&f.who, f.id(i)).await.expect("get"));
            }
            start.elapsed()
        });
    });

    let lists = [
        ("list_first_page_50", list_query(None, None)),
        (
            "list_page_100_by_cursor",
            list_query(None, Some(&f.deep_cursor)),
        ),
        ("search_1_in_10", list_query(Some(SEARCH_HIT), None)),
        ("search_no_match", list_query(Some(SEARCH_MISS), None)),
        (
            "tag_1_in_10",
            ListQuery {
                tags: vec![Tag::parse(TAG_HIT).expect("valid tag")],
                ..list_query(None, None)
            },
        ),
    ];
    for (name, query) in lists {
        let query = Arc::new(query);
        group.bench_function(name, |b| {
            on_worker(b, rt, f, |f, iters| time_list(f, Arc::clone(&query), iters));
        });
    }

    group.bench_function("replace", |b| {
        on_worker(b, rt, f, |f, iters| async move {
            let description = Description::parse("Replaced by the benchmark").expect("desc");
            let start = Instant::now();
            for i in 0..iters {
                let id = f.id(i);
                let replacement = Replacement {
                    description: Some(description.clone()),
                    completed: id % 2 == 0,
                    priority: Priority::High,
                    due_date: None,
                    tags: Default::default(),
                    ..Replacement::new(title(id as usize))
                };
                let task = f.store.replace(&f.who, id, replacement, None).await;
                black_box(task.expect("replace"));
            }
            start.elapsed()
        });
    });

    group.bench_function("toggle", |b| {
        on_worker(b, rt, f, |f, iters| async move {
            let start = Instant::now();
            for i in 0..iters {
                let task = f.store.toggle_completed(&f.who, f.id(i), None).await;
                black_box(task.expect("toggle"));
            }
            start.elapsed()
        });
    });

    // Completing a daily task creates its next occurrence in the same transaction; each round
    // creates fresh daily tasks (not timed), so every completion timed creates one.
    group.bench_function("complete_recurring", |b| {
        on_worker(b, rt, f, |f, iters| async move {
            let mut timed = Duration::ZERO;
            let mut done = 0;
            let rule = Recurrence::parse("FREQ=DAILY").expect("valid rule");
            while done < iters {
                let round = WRITE_ROUND.min(iters - done);
                let mut series = Vec::with_capacity(round as usize);
                for i in 0..round {
                    let mut task = new_task(MEASURED_TASKS + (done + i) as usize);
                    task.due_date = Some(chrono::Utc::now());
                    task.recurrence = Some(rule.clone());
                    let c = f.store.create(&f.who, task, None).await.expect("create");
                    series.push(c.task.id);
                }
                let start = Instant::now();
                for id in &series {
                    let task = f.store.set_completed(&f.who, *id, Some(true), None).await;
                    black_box(task.expect("complete"));
                }
                timed += start.elapsed();
                // Both the completed tasks and their next occurrences go, so the user's task
                // count stays where it was.
                let recent = ListQuery {
                    limit: Limit::new(i64::from(Limit::MAX)).expect("limit"),
                    ..ListQuery::default()
                };
                let mut left = 2 * series.len();
                while left > 0 {
                    let page = f.store.list(&f.who, &recent).await.expect("list");
                    for t in page
                        .tasks
                        .iter()
                        .filter(|t| t.recurrence.is_some())
                        .take(left)
                    {
                        f.store.delete(&f.who, t.id, None).await.expect("undo");
                        left -= 1;
                    }
                    if page.tasks.iter().all(|t| t.recurrence.is_none()) {
                        break;
                    }
                }
                done += round;
            }
            timed
        });
    });

    group.bench_function("delete", |b| {
        on_worker(b, rt, f, |f, iters| async move {
            let mut timed = Duration::ZERO;
            let mut done = 0;
            while done < iters {
                let round = WRITE_ROUND.min(iters - done);
                let mut victims = Vec::with_capacity(round as usize);
                for i in 0..round {
                    let task = new_task(MEASURED_TASKS + (done + i) as usize);
                    let c = f.store.create(&f.who, task, None).await.expect("create");
                    victims.push(c.task.id);
                }
                let start = Instant::now();
                for id in victims {
                    f.store.delete(&f.who, id, None).await.expect("delete");
                }
                timed += start.elapsed();
                done += round;
            }
            timed
        });
    });

    group.finish();
}

fn bench_store(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let pg_url = std::env::var("TODO_BENCH_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty());
    let wanted = std::env::var("TODO_BENCH_BACKENDS").unwrap_or_default();
    let wanted = |b: Backend| wanted.is_empty() || wanted.split(',').any(|w| w.trim() == b.name());
    let mut backends = vec![Backend::SqliteMemory, Backend::SqliteFile];
    if pg_url.is_some() {
        backends.push(Backend::Postgres);
    } else {
        eprintln!("TODO_BENCH_DATABASE_URL is not set: skipping PostgreSQL");
    }
    let mut sizes = vec![("10k", MEASURED_TASKS)];
    if std::env::var("TODO_BENCH_LARGE").is_ok_and(|v| v == "1") {
        sizes.push(("1m", LARGE_TOTAL));
    } else {
        eprintln!("TODO_BENCH_LARGE is not 1: skipping the 1M-row table size");
    }
    for (label, total) in sizes {
        for &backend in backends.iter().filter(|b| wanted(**b)) {
            let fixture = Arc::new(setup(&rt, backend, total, pg_url.as_deref()));
            bench_fixture(c, &rt, &format!("{}-{label}", backend.name()), &fixture);
            rt.block_on(fixture.store.close());
        }
    }
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_store
}
criterion_main!(benches);
