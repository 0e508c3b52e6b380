//! The route table. Every operation is written once, under `/api` (`/tasks...`, `/tags...`,
//! `/tasks/stats`); [`ALIASES`] lists the other paths that reach one: the `/api/{user_id}/...`
//! shape the FastAPI backends' frontends call, where the segment must name the token's user
//! (else 403, checked by `api::Ops::scoped`), and the paths some frontends use for the same
//! thing (`/tasks/tags` for `/tags`, `/{user_id}/stats`). The same list rewrites a request's path
//! to its operation ([`Aliases`]) and documents every alias in the contract ([`document`]), so
//! the two cannot disagree.

use std::sync::LazyLock;

use poem::http::Uri;
use poem::http::uri::PathAndQuery;
use poem::{Endpoint, Middleware, Request, Result};
use serde_json::{Map, Value};

/// A path that reaches another path's operations.
#[derive(Debug, Clone, Copy)]
pub struct Alias {
    /// The path under `/api`, as the contract spells it (`{user_id}` and the operation's own
    /// parameters in braces).
    pub path: &'static str,
    /// The operation's own path under `/api`, with the same parameters.
    pub target: &'static str,
    /// For each method the alias answers, its operation id in the contract.
    pub operations: &'static [(&'static str, &'static str)],
}

/// Every alias, most specific first (a literal segment before a parameter in the same place).
pub const ALIASES: &[Alias] = &[
    Alias {
        path: "/tasks/tags",
        target: "/tags",
        operations: &[("get", "list_task_tags")],
    },
    Alias {
        path: "/tasks/tags/{name}",
        target: "/tags/{name}",
        operations: &[("patch", "rename_task_tag"), ("delete", "delete_task_tag")],
    },
    Alias {
        path: "/{user_id}/tasks",
        target: "/tasks",
        operations: &[("get", "list_user_tasks"), ("post", "create_user_task")],
    },
    Alias {
        path: "/{user_id}/tasks/stats",
        target: "/tasks/stats",
        operations: &[("get", "user_task_stats")],
    },
    Alias {
        path: "/{user_id}/tasks/tags",
        target: "/tags",
        operations: &[("get", "list_user_task_tags")],
    },
    Alias {
        path: "/{user_id}/tasks/tags/{name}",
        target: "/tags/{name}",
        operations: &[
            ("patch", "rename_user_task_tag"),
            ("delete", "delete_user_task_tag"),
        ],
    },
    Alias {
        path: "/{user_id}/tasks/{id}",
        target: "/tasks/{id}",
        operations: &[
            ("get", "get_user_task"),
            ("put", "put_user_task"),
            ("patch", "patch_user_task"),
            ("delete", "delete_user_task"),
        ],
    },
    Alias {
        path: "/{user_id}/tasks/{id}/complete",
        target: "/tasks/{id}/complete",
        operations: &[("patch", "complete_user_task")],
    },
    Alias {
        path: "/{user_id}/tags",
        target: "/tags",
        operations: &[("get", "list_user_tags")],
    },
    Alias {
        path: "/{user_id}/tags/{name}",
        target: "/tags/{name}",
        operations: &[("patch", "rename_user_tag"), ("delete", "delete_user_tag")],
    },
    Alias {
        path: "/{user_id}/stats",
        target: "/tasks/stats",
        operations: &[("get", "user_stats")],
    },
];

/// First segments that name operations of their own, so never a user id: a user whose id is
/// one of these reaches their tasks through `/api/tasks`.
const RESERVED: [&str; 2] = ["tasks", "tags"];

/// The user a request's path names (`/api/{user_id}/...`), percent-decoded: the operation
/// checks it is the token's user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathUser(pub String);

/// Most segments an alias has.
const MAX_SEGMENTS: usize = 4;

/// A path's segments after its leading `/`, when it has at most [`MAX_SEGMENTS`] of them.
fn segments(path: &str) -> Option<([&str; MAX_SEGMENTS], usize)> {
    let mut out = [""; MAX_SEGMENTS];
    let mut n = 0;
    for segment in path.strip_prefix('/')?.split('/') {
        *out.get_mut(n)? = segment;
        n += 1;
    }
    Some((out, n))
}

/// One segment of an alias's path or target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Segment {
    /// Must be this text.
    Literal(&'static str),
    /// A parameter: any non-empty segment (a user id: not one of [`RESERVED`]).
    Param(&'static str),
}

/// `path`'s segments as [`Segment`]s.
fn compile(path: &'static str) -> Vec<Segment> {
    path.trim_start_matches('/')
        .split('/')
        .map(
            |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => Segment::Param(name),
                None => Segment::Literal(s),
            },
        )
        .collect()
}

/// Every alias's path and target, split once.
static COMPILED: LazyLock<Vec<(Vec<Segment>, Vec<Segment>)>> = LazyLock::new(|| {
    ALIASES
        .iter()
        .map(|a| (compile(a.path), compile(a.target)))
        .collect()
});

/// `path` (under `/api`) resolved through [`ALIASES`]: the operation's path, with the
/// parameters' segments carried over as sent, and the user the path names, if any. `None`
/// when no alias matches (the path is an operation's own, or none at all). Reads the path
/// once and allocates only for a match.
pub fn resolve(path: &str) -> Option<(String, Option<PathUser>)> {
    let (segs, n) = segments(path)?;
    let segs = &segs[..n];
    COMPILED.iter().find_map(|(pattern, target)| {
        if pattern.len() != n {
            return None;
        }
        // Each parameter's value, in the pattern's order.
        let mut params = [("", ""); MAX_SEGMENTS];
        let mut found = 0;
        for (p, s) in pattern.iter().zip(segs) {
            match *p {
                Segment::Literal(text) if text == *s => {}
                Segment::Literal(_) => return None,
                Segment::Param(name) => {
                    if s.is_empty() || (name == "user_id" && RESERVED.contains(s)) {
                        return None;
                    }
                    params[found] = (name, s);
                    found += 1;
                }
            }
        }
        let params = &params[..found];
        let value = |name: &str| params.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
        let mut out = String::with_capacity(path.len());
        for t in target {
            out.push('/');
            match *t {
                Segment::Literal(text) => out.push_str(text),
                Segment::Param(name) => out.push_str(value(name)?),
            }
        }
        let user = match value("user_id") {
            Some(raw) => Some(PathUser(
                percent_encoding::percent_decode_str(raw)
                    .decode_utf8()
                    .ok()?
                    .into_owned(),
            )),
            None => None,
        };
        Some((out, user))
    })
}

/// Rewrites a request on an alias to its operation's path (keeping the query), with the
/// [`PathUser`] it names in the request's extensions. Mounted inside `/api`.
pub struct Aliases;

impl<E: Endpoint> Middleware<E> for Aliases {
    type Output = AliasesEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        AliasesEndpoint(ep)
    }
}

/// The endpoint [`Aliases`] makes.
pub struct AliasesEndpoint<E>(E);

impl<E: Endpoint> Endpoint for AliasesEndpoint<E> {
    type Output = E::Output;

    async fn call(&self, mut req: Request) -> Result<Self::Output> {
        if let Some((path, user)) = resolve(req.uri().path()) {
            let target = match req.uri().query() {
                Some(q) => format!("{path}?{q}"),
                None => path,
            };
            if let Ok(pq) = PathAndQuery::try_from(target) {
                let mut parts = std::mem::take(req.uri_mut()).into_parts();
                parts.path_and_query = Some(pq);
                if let Ok(uri) = Uri::from_parts(parts) {
                    *req.uri_mut() = uri;
                    if let Some(user) = user {
                        req.extensions_mut().insert(user);
                    }
                }
            }
        }
        self.0.call(req).await
    }
}

/// The contract `spec` (as poem-openapi generates it, operations at their own paths) with
/// every alias documented: its target's operations for the alias's methods, under the alias's
/// operation ids, with the `user_id` path parameter where it has one.
pub fn document(spec: &str) -> String {
    let Ok(Value::Object(mut doc)) = serde_json::from_str::<Value>(spec) else {
        return spec.to_owned();
    };
    let Some(Value::Object(paths)) = doc.get("paths").cloned() else {
        return spec.to_owned();
    };
    let mut out = Map::new();
    for alias in ALIASES {
        let Some(Value::Object(item)) = paths.get(alias.target) else {
            continue;
        };
        let mut copy = Map::new();
        for (method, id) in alias.operations {
            let Some(Value::Object(op)) = item.get(*method) else {
                continue;
            };
            let mut op = op.clone();
            op.insert("operationId".into(), Value::from(*id));
            if alias.path.contains("{user_id}") {
                let user = serde_json::json!({
                    "name": "user_id",
                    "schema": {"type": "string"},
                    "in": "path",
                    "required": true,
                    "deprecated": false,
                    "explode": true,
                });
                let mut params = match op.remove("parameters") {
                    Some(Value::Array(p)) => p,
                    _ => Vec::new(),
                };
                params.insert(0, user);
                op.insert("parameters".into(), Value::Array(params));
            }
            copy.insert((*method).to_owned(), Value::Object(op));
        }
        out.insert(alias.path.to_owned(), Value::Object(copy));
    }
    let mut all = paths;
    all.extend(out);
    doc.insert("paths".into(), Value::Object(all));
    serde_json::to_string_pretty(&Value::Object(doc)).unwrap_or_else(|_| spec.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_resolve_to_their_operations_with_the_user_they_name() {
        let cases = [
            ("/alice/tasks", Some(("/tasks", Some("alice")))),
            ("/al%20ice/tasks/7", Some(("/tasks/7", Some("al ice")))),
            (
                "/alice/tasks/7/complete",
                Some(("/tasks/7/complete", Some("alice"))),
            ),
            ("/alice/tasks/tags", Some(("/tags", Some("alice")))),
            (
                "/alice/tasks/tags/x%2Fy",
                Some(("/tags/x%2Fy", Some("alice"))),
            ),
            ("/alice/tasks/stats", Some(("/tasks/stats", Some("alice")))),
            ("/alice/stats", Some(("/tasks/stats", Some("alice")))),
            ("/alice/tags/work", Some(("/tags/work", Some("alice")))),
            ("/tasks/tags", Some(("/tags", None))),
            ("/tasks/tags/work", Some(("/tags/work", None))),
            ("/tasks", None),
            ("/tasks/7", None),
            ("/tasks/stats", None),
            ("/tags/tasks", None),
            ("/auth/me", None),
            ("/alice/other", None),
            ("//tasks", None),
            ("/alice/tasks/7/complete/more", None),
        ];
        for (path, want) in cases {
            let got = resolve(path);
            let got = got
                .as_ref()
                .map(|(p, u)| (p.as_str(), u.as_ref().map(|u| u.0.as_str())));
            assert_eq!(got, want, "{path}");
        }
    }
}
