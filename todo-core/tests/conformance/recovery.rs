use todo_core::{DynTaskStore, Error, StoreOptions};

use crate::helpers::{create, new_task, pg_url, user};

/// A PostgreSQL store whose connections carry a fresh application name (returned with it).
async fn store(
    url: &str,
    prefix: &str,
    max_connections: u32,
    read_connections: Option<u32>,
) -> (DynTaskStore, String) {
    use rand::Rng;
    let app = format!("{prefix}-{:x}", rand::thread_rng().r#gen::<u32>());
    let store = todo_core::open(
        url,
        StoreOptions {
            application_name: Some(app.clone()),
            max_connections: Some(max_connections),
            read_connections,
            ..StoreOptions::default()
        },
    )
    .await
    .unwrap();
    (store, app)
}

/// Terminates every server process of the connections named `app`; one `true` per connection.
async fn kill_connections(url: &str, app: &str) -> Vec<bool> {
    let admin = sqlx::PgPool::connect(url).await.unwrap();
    sqlx::query_scalar(
        "select pg_terminate_backend(pid) from pg_stat_activity where application_name = $1",
    )
    .bind(app)
    .fetch_all(&admin)
    .await
    .unwrap()
}

/// PostgreSQL drops every connection (a restart, a failover): calls fail promptly as
/// "unavailable" at worst, and the store recovers by itself without being reopened.
#[tokio::test]
async fn the_store_recovers_by_itself_after_its_connections_are_killed() {
    let Some(url) = pg_url() else { return };
    // One read connection, opened by the check at open: the read after the kill meets it.
    let (store, app) = store(&url, "todo-recovery", 4, Some(1)).await;
    let alice = user("alice");
    let task = create(&store, &alice, "before").await;

    let killed = kill_connections(&url, &app).await;
    assert!(!killed.is_empty(), "the store's connections were found");

    // A read whose connection is gone runs on a new one: the first read succeeds.
    assert_eq!(store.get(&alice, task.id).await.unwrap(), task);
    // A write is never repeated blindly (it may have taken effect), so the first writes may
    // hit a dead pooled connection: that is "unavailable", never anything else, and each dead
    // connection is discarded.
    let mut recovered = false;
    for _ in 0..10 {
        match store.create(&alice, new_task("after"), None).await {
            Ok(_) => {
                recovered = true;
                break;
            }
            Err(Error::Unavailable(_)) => continue,
            Err(other) => panic!("unexpected error after a disconnect: {other:?}"),
        }
    }
    assert!(recovered, "writes did not recover");
    assert_eq!(store.get(&alice, task.id).await.unwrap(), task);
}

/// Reads go to the pipelined connections when the settings allow it: the store holds one
/// pooled connection (from the migrations) and one pipelined (from the check at open); with
/// `read_connections: Some(0)`, only the pooled one.
#[tokio::test]
async fn reads_are_pipelined_unless_turned_off() {
    let Some(url) = pg_url() else { return };
    for (reads, expected) in [(None, 2), (Some(0), 1)] {
        let (store, app) = store(&url, "todo-pipelined", 4, reads).await;
        assert_eq!(
            backends(&url, &app).await,
            expected,
            "read_connections {reads:?}"
        );
        drop(store);
    }
}

async fn backends(url: &str, app: &str) -> i64 {
    let admin = sqlx::PgPool::connect(url).await.unwrap();
    sqlx::query_scalar("select count(*) from pg_stat_activity where application_name = $1")
        .bind(app)
        .fetch_one(&admin)
        .await
        .unwrap()
}

/// A connection closed by the server while it sat idle in the pool (an idle timeout, as Neon
/// and proxies apply, or a restart at night) is noticed before use: the next call just works.
#[tokio::test]
async fn a_connection_closed_while_idle_is_replaced_before_use() {
    let Some(url) = pg_url() else { return };
    // Reads on the pool too, so its one connection serves them all.
    let (store, app) = store(&url, "todo-idle", 1, Some(0)).await;
    let alice = user("alice");
    let task = create(&store, &alice, "before").await;

    let killed = kill_connections(&url, &app).await;
    assert_eq!(killed, [true], "the store's one connection was found");

    // Longer than the pool's idle check (5 s): the dead connection is pinged, dropped and
    // replaced inside the call.
    tokio::time::sleep(std::time::Duration::from_millis(5_500)).await;
    assert_eq!(store.get(&alice, task.id).await.unwrap(), task);
}
