//! In-process HTTP tests of the whole application (poem's `TestClient`), on SQLite and, when
//! `TODO_TEST_DATABASE_URL` is set, PostgreSQL; when `TODO_TEST_POOLER_URL` is set, PostgreSQL
//! through a transaction pooler too (`backends.rs`).
#![allow(clippy::unwrap_used)] // test helpers panic on setup failures by design

#[path = "../support/backends.rs"]
mod backends;
mod cookies;
mod dialects;
mod errors;
mod fields;
mod hardening;
mod helpers;
mod organise;
mod races;
mod tasks;
