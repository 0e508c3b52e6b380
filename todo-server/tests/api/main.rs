//! In-process HTTP tests of the whole application (poem's `TestClient`), on SQLite and, when
//! `TODO_TEST_DATABASE_URL` is set, PostgreSQL.
#![allow(clippy::unwrap_used)] // test helpers panic on setup failures by design

mod cookies;
mod dialects;
mod errors;
mod fields;
mod hardening;
mod helpers;
mod organise;
mod races;
mod tasks;
