//! Security headers on every answer.
//!
//! API answers are JSON that no browser should sniff, frame or run anything from:
//! `X-Content-Type-Options: nosniff`, `X-Frame-Options: DENY` and
//! `Content-Security-Policy: default-src 'none'; frame-ancestors 'none'`. Swagger UI at `/docs`
//! is a page with inline scripts and styles (poem-openapi embeds them); its policy allows exactly
//! those scripts by their SHA-256, inline styles, images from itself and `data:`, and requests to
//! this origin only.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use poem::http::{HeaderValue, header};
use poem::{Body, Response};
use sha2::{Digest, Sha256};

/// The policy of every answer but the Swagger UI page.
pub const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

/// Adds the security headers to an answer; `path` is the request's path.
pub async fn apply(path: &str, resp: &mut Response) {
    let headers = resp.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    let page = path == "/docs" || path.starts_with("/docs/");
    let is_html = crate::problem::content_type(resp).starts_with("text/html");
    let policy = if page && is_html {
        docs_policy(resp).await
    } else {
        HeaderValue::from_static(API_CSP)
    };
    resp.headers_mut()
        .insert(header::CONTENT_SECURITY_POLICY, policy);
}

/// The policy of a page under `/docs`, computed from the page itself (Swagger UI's page and its
/// OAuth receiver have different inline scripts; the hash of a megabyte and a half costs a few
/// milliseconds, and the page is not on any hot path).
async fn docs_policy(resp: &mut Response) -> HeaderValue {
    let body = resp.take_body();
    let Ok(bytes) = body.into_bytes().await else {
        // An unreadable page gets the strict policy (and shows nothing).
        return HeaderValue::from_static(API_CSP);
    };
    let policy = page_policy(&String::from_utf8_lossy(&bytes));
    resp.set_body(Body::from(bytes));
    HeaderValue::from_str(&policy).unwrap_or(HeaderValue::from_static(API_CSP))
}

/// A policy for an HTML page that allows its own inline scripts by hash.
fn page_policy(html: &str) -> String {
    let mut sources = String::new();
    let mut rest = html;
    while let Some(open) = rest.find("<script") {
        let after = &rest[open..];
        let Some(start) = after.find('>') else { break };
        let content = &after[start + 1..];
        let Some(end) = content.find("</script>") else {
            break;
        };
        let hash = STANDARD.encode(Sha256::digest(&content.as_bytes()[..end]));
        sources.push_str(&format!(" 'sha256-{hash}'"));
        rest = &content[end..];
    }
    format!(
        "default-src 'none'; script-src{sources}; style-src 'unsafe-inline'; \
         img-src 'self' data:; connect-src 'self'; font-src 'self' data:; \
         frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    )
}

#[cfg(test)]
mod tests {
    use super::page_policy;

    #[test]
    fn inline_scripts_are_allowed_by_hash() {
        let policy = page_policy("<html><script charset=\"x\">a()</script><script>b()</script>");
        // printf 'a()' | openssl dgst -sha256 -binary | base64
        assert!(
            policy.contains("'sha256-qVpDBgj7bpq5hMAcGp3AOc79J3Y1Z4HvySTwKrWDoy4='"),
            "{policy}"
        );
        assert_eq!(policy.matches("'sha256-").count(), 2);
        assert!(!policy.contains("unsafe-eval"));
        assert!(policy.contains("frame-ancestors 'none'"));
    }
}
