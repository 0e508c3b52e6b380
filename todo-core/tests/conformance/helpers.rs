use std::io::Write;
use std::sync::{Arc, Once};

use todo_core::{
    DynTaskStore, NewTask, Pooler, Principal, StoreOptions, Task, TaskStore, Title, UserId,
};

/// The environment variable naming the PostgreSQL database the suite runs against.
pub const PG_ENV: &str = "TODO_TEST_DATABASE_URL";

/// The environment variable naming the same database through a pooler in transaction mode
/// (`scripts/pgbouncer.sh start` prints one): when set, the suite also runs there.
pub const POOLER_ENV: &str = "TODO_TEST_POOLER_URL";

/// The pooler setting the pooled backends are opened with: `transaction` unless this variable
/// says `none` (to watch what a store not told about the pooler does).
pub const POOLER_SETTING_ENV: &str = "TODO_TEST_POOLER_SETTING";

/// A store under test, with its backend's name for assertion messages.
pub struct Backend {
    pub name: &'static str,
    pub store: DynTaskStore,
    _dir: Option<tempfile::TempDir>,
}

fn warn_skip_once() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Written to the real stderr, not through the test harness's capture, so it is seen.
        let _ = writeln!(
            std::io::stderr(),
            "\n*** SKIPPING the PostgreSQL conformance runs: {PG_ENV} is not set ***\n"
        );
    });
}

pub fn pg_url() -> Option<String> {
    match std::env::var(PG_ENV) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            warn_skip_once();
            None
        }
    }
}

/// Every backend this run can reach.
pub async fn backends() -> Vec<Backend> {
    backends_with(StoreOptions::default()).await
}

/// Every backend this run can reach, opened with `options` (PostgreSQL's read connections
/// aside).
pub async fn backends_with(options: StoreOptions) -> Vec<Backend> {
    let mut out = Vec::new();
    let memory = todo_core::open("sqlite::memory:", options.clone())
        .await
        .expect("open sqlite memory");
    out.push(Backend {
        name: "sqlite-memory",
        store: memory,
        _dir: None,
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("todo.db").display());
    let file = todo_core::open(&url, options.clone())
        .await
        .expect("open sqlite file");
    out.push(Backend {
        name: "sqlite-file",
        store: file,
        _dir: Some(dir),
    });
    if let Some(url) = pg_url() {
        // Two read connections whatever the machine, so parallel tests stay far below the
        // server's connection limit.
        let pipelined = StoreOptions {
            read_connections: Some(2),
            ..options.clone()
        };
        let pg = todo_core::open(&url, pipelined)
            .await
            .expect("open postgres");
        out.push(Backend {
            name: "postgres",
            store: pg,
            _dir: None,
        });
        // Reads on the pool, as with `sslmode=verify-ca` or `read_connections: Some(0)`.
        let on_pool = StoreOptions {
            read_connections: Some(0),
            ..options.clone()
        };
        let pool_reads = todo_core::open(&url, on_pool)
            .await
            .expect("open postgres, reads on the pool");
        out.push(Backend {
            name: "postgres-pool-reads",
            store: pool_reads,
            _dir: None,
        });
    }
    if let Some(url) = pooler_url() {
        let setting = match std::env::var(POOLER_SETTING_ENV).as_deref() {
            Ok("none") => Pooler::None,
            _ => Pooler::Transaction,
        };
        // Migrations on the direct URL when there is one (a fresh database); the second store
        // has none, so it opens only because the schema is up to date.
        let pipelined = StoreOptions {
            read_connections: Some(2),
            pooler: Some(setting),
            direct_url: pg_url(),
            ..options.clone()
        };
        let pg = todo_core::open(&url, pipelined)
            .await
            .expect("open postgres through the pooler");
        out.push(Backend {
            name: "postgres-pooler",
            store: pg,
            _dir: None,
        });
        let on_pool = StoreOptions {
            read_connections: Some(0),
            pooler: Some(setting),
            ..options
        };
        let pool_reads = todo_core::open(&url, on_pool)
            .await
            .expect("open postgres through the pooler, reads on the pool");
        out.push(Backend {
            name: "postgres-pooler-pool-reads",
            store: pool_reads,
            _dir: None,
        });
    }
    out
}

/// The URL of the database through a pooler in transaction mode, if this run has one.
pub fn pooler_url() -> Option<String> {
    std::env::var(POOLER_ENV).ok().filter(|url| !url.is_empty())
}

/// A principal with a unique user id, so tests sharing a database never see each other's tasks.
pub fn user(label: &str) -> Principal {
    use rand::Rng;
    let suffix: u64 = rand::thread_rng().r#gen();
    Principal::assume_authenticated(UserId::parse(&format!("{label}-{suffix:016x}")).unwrap())
}

pub fn new_task(title: &str) -> NewTask {
    NewTask::new(Title::parse(title).unwrap())
}

pub async fn create(store: &Arc<dyn TaskStore>, who: &Principal, title: &str) -> Task {
    store.create(who, new_task(title), None).await.unwrap().task
}
