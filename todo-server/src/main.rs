//! `todo-server`: reads the configuration, then serves (or prints a token). Everything else is in
//! the library.
#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use todo_server::config::{Command, Config};

/// mimalloc: fewer cycles per allocation than glibc's malloc under a multi-threaded server load.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn,rmcp=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let outcome = match &config.command {
        Some(Command::Token { user, minutes }) => todo_server::demo_token(
            &config,
            user,
            Duration::from_secs(minutes.saturating_mul(60)),
        )
        .map(|t| {
            println!("{t}");
        }),
        Some(Command::Mcp { user }) => todo_server::serve_mcp_stdio(&config, user).await,
        None => todo_server::serve(config).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("todo-server: {e}");
            ExitCode::FAILURE
        }
    }
}
