//! rmcp's own MCP client over streamable HTTP, for the tests that call the tools of a served app
//! (`tests/mcp.rs` in process, `tests/pooler.rs` on the real binary). Included by `#[path]`
//! where needed, so the other binary tests do not build it.
#![allow(dead_code)] // each test crate uses its own subset

use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, CallToolResult, ClientConfig};
use rmcp::service::{ClientInitializeError, RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::Value;

/// A connected client.
pub type Client = RunningService<RoleClient, ClientConfig>;

/// Connects to `<base>/mcp` with `token` as the bearer token and initializes the session.
pub async fn connect(base: &str, token: &str) -> Result<Client, ClientInitializeError> {
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(format!("{base}/mcp")).auth_header(token),
    );
    ClientConfig::default().serve(transport).await
}

/// Calls `tool` with `args` (a JSON object).
pub async fn call_raw(
    client: &Client,
    tool: &str,
    args: Value,
) -> Result<CallToolResult, rmcp::ServiceError> {
    let Value::Object(map) = args else {
        panic!("arguments must be an object")
    };
    client
        .call_tool(CallToolRequestParams::new(tool.to_owned()).with_arguments(map))
        .await
}
