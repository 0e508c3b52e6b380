//! Embeds `todo-core` with no HTTP at all: open a SQLite store, authenticate, create, list, page.
//!
//! Run it with `cargo run -p examples --example embedded`.

use todo_core::{
    JwtAuthenticator, JwtRules, Limit, ListQuery, NewTask, Priority, SearchText, StoreOptions,
    Title, TokenIssuer, UserId,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // An in-memory database; use "sqlite://tasks.db" for a file or a postgres:// URL.
    let store = todo_core::open("sqlite::memory:", StoreOptions::default()).await?;

    // Authenticate a bearer token the way the server does (here we mint one ourselves).
    let secret = b"an example secret of at least thirty-two bytes";
    let issuer = TokenIssuer::hs256(secret, None, None, std::time::Duration::from_secs(900));
    let token = issuer.issue(&UserId::parse("alice")?, Some("alice@example.com"), None)?;
    let alice = JwtAuthenticator::shared_secret(secret, &JwtRules::default()).verify(&token)?;
    println!("authenticated as {}", alice.user_id());

    for i in 1..=5 {
        let mut task = NewTask::new(Title::parse(&format!("Task number {i}"))?);
        task.priority = if i % 2 == 0 {
            Priority::High
        } else {
            Priority::Low
        };
        store.create(&alice, task, None).await?;
    }

    // Page through everything, two at a time, newest first.
    let mut query = ListQuery {
        limit: Limit::new(2)?,
        ..ListQuery::default()
    };
    let mut page_no = 1;
    loop {
        let page = store.list(&alice, &query).await?;
        for t in &page.tasks {
            println!("page {page_no}: #{} {} ({})", t.id, t.title, t.priority);
        }
        match page.next_cursor {
            Some(cursor) => query.cursor = Some(cursor),
            None => break,
        }
        page_no += 1;
    }

    let found = store
        .list(
            &alice,
            &ListQuery {
                search: SearchText::parse("NUMBER 3")?,
                ..ListQuery::default()
            },
        )
        .await?;
    println!("search 'NUMBER 3' found {} task(s)", found.tasks.len());
    store.close().await;
    Ok(())
}
