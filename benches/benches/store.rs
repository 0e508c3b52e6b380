//! Criterion benchmarks of the query layer on SQLite in memory (more backends and sizes: see
//! docs/benchmarks.md).

use criterion::{Criterion, criterion_group, criterion_main};
use todo_core::{ListQuery, NewTask, Principal, StoreOptions, Title, UserId};

fn bench_store(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let store = rt
        .block_on(todo_core::open("sqlite::memory:", StoreOptions::default()))
        .expect("open");
    let alice = Principal::assume_authenticated(UserId::parse("alice").expect("user id"));
    let title = Title::parse("benchmark task").expect("title");
    let mut last = 0;
    rt.block_on(async {
        for _ in 0..1000 {
            last = store
                .create(&alice, NewTask::new(title.clone()), None)
                .await
                .expect("create")
                .task
                .id;
        }
    });
    c.bench_function("sqlite_memory/create", |b| {
        b.to_async(&rt).iter(|| async {
            store
                .create(&alice, NewTask::new(title.clone()), None)
                .await
                .expect("create")
        })
    });
    c.bench_function("sqlite_memory/get", |b| {
        b.to_async(&rt)
            .iter(|| async { store.get(&alice, last).await.expect("get") })
    });
    c.bench_function("sqlite_memory/list_first_page_50", |b| {
        let q = ListQuery {
            limit: todo_core::Limit::new(50).expect("limit"),
            ..ListQuery::default()
        };
        b.to_async(&rt)
            .iter(|| async { store.list(&alice, &q).await.expect("list") })
    });
}

criterion_group!(benches, bench_store);
criterion_main!(benches);
