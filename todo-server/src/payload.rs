//! A JSON request body that tells malformed JSON (400) from well-formed JSON that breaks a rule
//! (422), enforces the 1 MiB limit (413), and documents the schema of `T` in the contract.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use poem::{Request, RequestBody};
use poem_openapi::payload::Payload;
use poem_openapi::registry::{MetaMediaType, MetaRequest, MetaSchemaRef, Registry};
use poem_openapi::types::Type;
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions};
use serde_json::{Map, Value};
use tokio::sync::Semaphore;

use crate::AppState;
use crate::problem::{ApiError, RawProblem};

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// Bodies up to this size are read without drawing on the shared budget: the number of open
/// connections already bounds what they can hold.
pub const SMALL_BODY_BYTES: usize = 16 * 1024;

/// How long a large body waits for its share of the budget before it is refused with 503.
const BUDGET_WAIT: Duration = Duration::from_secs(1);

/// Limits on reading request bodies, shared by every request: a deadline for each body, and a
/// memory budget that bodies larger than [`SMALL_BODY_BYTES`] draw on (their declared length,
/// or [`MAX_BODY_BYTES`] when it is not declared) while they are read and parsed.
#[derive(Debug, Clone)]
pub struct BodyLimits {
    read_timeout: Duration,
    budget_kib: u32,
    budget: Arc<Semaphore>,
}

impl BodyLimits {
    /// A deadline per body and a budget in bytes (at least [`MAX_BODY_BYTES`], so every body
    /// the API accepts can be read).
    pub fn new(read_timeout: Duration, budget_bytes: u64) -> Self {
        let budget_kib = u32::try_from(budget_bytes.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .max((MAX_BODY_BYTES / 1024) as u32);
        Self {
            read_timeout,
            budget_kib,
            budget: Arc::new(Semaphore::new(budget_kib as usize)),
        }
    }
}

impl Default for BodyLimits {
    /// 30 s per body, 32 MiB for large bodies.
    fn default() -> Self {
        Self::new(Duration::from_secs(30), 32 << 20)
    }
}

/// Reads the whole body within the body limits: 413 past `max` bytes (at most
/// [`MAX_BODY_BYTES`]), 503 when a large body cannot get its share of the budget, 408 when it
/// does not arrive in time. The share comes back with the bytes, to be held until they have
/// been parsed. hyper serves HTTP/1.1 only ([`crate::net`]), where a body has a
/// `Content-Length`, is chunked, or is empty. The errors are problem documents; `/mcp` turns
/// them into JSON-RPC errors by their status.
pub(crate) async fn read_bytes(
    request: &Request,
    body: &mut RequestBody,
    max: usize,
) -> poem::Result<(bytes::Bytes, Option<tokio::sync::OwnedSemaphorePermit>)> {
    let max = max.min(MAX_BODY_BYTES);
    let headers = request.headers();
    let declared = headers
        .get(poem::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(ApiError::payload_too_large().into_poem());
    }
    let chunked = headers.contains_key(poem::http::header::TRANSFER_ENCODING);
    let size = match declared {
        Some(n) if !chunked => n as usize,
        _ if chunked => max,
        _ => 0,
    };
    let limits = request
        .data::<Arc<AppState>>()
        .map(|s| s.bodies.clone())
        .unwrap_or_default();
    let share = if size > SMALL_BODY_BYTES {
        let kib = u32::try_from(size.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .min(limits.budget_kib);
        match tokio::time::timeout(BUDGET_WAIT, limits.budget.acquire_many_owned(kib)).await {
            Ok(Ok(share)) => Some(share),
            _ => {
                let refusal = RawProblem::from(ApiError::busy(
                    "too many large request bodies are being received; retry shortly",
                ))
                .with_header(poem::http::header::CONNECTION, "close");
                return Err(refusal.into());
            }
        }
    } else {
        None
    };
    let read = body.take()?.into_bytes_limit(max);
    match tokio::time::timeout(limits.read_timeout, read).await {
        Ok(Ok(bytes)) => Ok((bytes, share)),
        Ok(Err(poem::error::ReadBodyError::PayloadTooLarge)) => {
            Err(ApiError::payload_too_large().into_poem())
        }
        Ok(Err(_)) => Err(ApiError::bad_request("the request body could not be read").into_poem()),
        Err(_) => Err(ApiError::request_timeout().into_poem()),
    }
}

/// Whether a `Content-Type` is JSON (`application/json`, `application/*+json`, any parameters).
pub fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// The fields of a JSON object body; `T` only describes it in the OpenAPI contract.
pub struct JsonBody<T> {
    /// The object's fields.
    pub fields: Map<String, Value>,
    _schema: PhantomData<fn() -> T>,
}

/// Like [`JsonBody`], but the body may be absent (no body at all, or an empty one).
pub struct OptionalJsonBody<T>(pub Option<JsonBody<T>>);

/// Whether a `Content-Type` is an HTML form's (`application/x-www-form-urlencoded`).
pub fn is_form(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .eq_ignore_ascii_case("application/x-www-form-urlencoded")
}

async fn read_object(
    request: &Request,
    body: &mut RequestBody,
    required: bool,
) -> poem::Result<Option<Map<String, Value>>> {
    read_fields(request, body, required, false).await
}

/// Reads a JSON object body, or (when `form` is true) an HTML form's fields as strings (a
/// name sent twice keeps its first value), under the same limits.
async fn read_fields(
    request: &Request,
    body: &mut RequestBody,
    required: bool,
    form: bool,
) -> poem::Result<Option<Map<String, Value>>> {
    // The budget share is held until the body has been parsed (a JSON tree takes a few times
    // the bytes).
    let (bytes, _share) = read_bytes(request, body, MAX_BODY_BYTES).await?;
    let content_type = request.content_type();
    if bytes.iter().all(u8::is_ascii_whitespace) && (!required || content_type.is_none()) {
        if required {
            return Err(ApiError::unsupported_media_type(
                "a JSON body is required (Content-Type: application/json)",
            )
            .into_poem());
        }
        return Ok(None);
    }
    match content_type {
        Some(ct) if is_json(ct) => {}
        Some(ct) if form && is_form(ct) => {
            let pairs: Vec<(String, String)> =
                serde_urlencoded::from_bytes(&bytes).map_err(|_| {
                    ApiError::bad_request("the form body could not be read").into_poem()
                })?;
            let mut map = Map::with_capacity(pairs.len());
            for (name, value) in pairs {
                map.entry(name).or_insert(Value::String(value));
            }
            return Ok(Some(map));
        }
        _ if form => {
            return Err(ApiError::unsupported_media_type(
                "the request body must be JSON (Content-Type: application/json) or a form \
                 (application/x-www-form-urlencoded)",
            )
            .into_poem());
        }
        _ => {
            return Err(ApiError::unsupported_media_type(
                "the request body must be JSON (Content-Type: application/json)",
            )
            .into_poem());
        }
    }
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::bad_request(format!("the request body is not valid JSON: {e}")).into_poem()
    })?;
    match value {
        Value::Object(map) => Ok(Some(map)),
        _ => Err(ApiError::invalid_field("body", "must be a JSON object").into_poem()),
    }
}

fn request_meta<T: Type>(required: bool) -> Option<MetaRequest> {
    Some(MetaRequest {
        description: None,
        content: vec![MetaMediaType {
            content_type: "application/json",
            schema: T::schema_ref(),
        }],
        required,
    })
}

impl<'a, T: Type> ApiExtractor<'a> for JsonBody<T> {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        T::register(registry);
    }

    fn request_meta() -> Option<MetaRequest> {
        request_meta::<T>(true)
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        let fields = read_object(request, body, true).await?.unwrap_or_default();
        Ok(Self {
            fields,
            _schema: PhantomData,
        })
    }
}

impl<'a, T: Type> ApiExtractor<'a> for OptionalJsonBody<T> {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        T::register(registry);
    }

    fn request_meta() -> Option<MetaRequest> {
        request_meta::<T>(false)
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        Ok(Self(read_object(request, body, false).await?.map(
            |fields| JsonBody {
                fields,
                _schema: PhantomData,
            },
        )))
    }
}

/// The fields of a JSON object body or of an HTML form (`application/x-www-form-urlencoded`,
/// every value a string); `T` describes the JSON body and `F` the form in the contract.
pub struct JsonOrFormBody<T, F> {
    /// The object's fields.
    pub fields: Map<String, Value>,
    /// Whether they came as a form.
    pub form: bool,
    _schema: PhantomData<fn() -> (T, F)>,
}

impl<'a, T: Type, F: Type> ApiExtractor<'a> for JsonOrFormBody<T, F> {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        T::register(registry);
        F::register(registry);
    }

    fn request_meta() -> Option<MetaRequest> {
        Some(MetaRequest {
            description: None,
            content: vec![
                MetaMediaType {
                    content_type: "application/json",
                    schema: T::schema_ref(),
                },
                MetaMediaType {
                    content_type: "application/x-www-form-urlencoded",
                    schema: F::schema_ref(),
                },
            ],
            required: true,
        })
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        let form = request.content_type().is_some_and(is_form);
        let fields = read_fields(request, body, true, true)
            .await?
            .unwrap_or_default();
        Ok(Self {
            fields,
            form,
            _schema: PhantomData,
        })
    }
}

/// A JSON response body serialised straight from `T` with serde (poem-openapi's `Json` builds a
/// `serde_json::Value` tree first, which costs an allocation per field on every response); the
/// contract still documents `T`'s schema.
pub struct JsonOut<T>(pub T);

impl<T: Type + serde::Serialize + Send> Payload for JsonOut<T> {
    const CONTENT_TYPE: &'static str = "application/json; charset=utf-8";

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: serde::Serialize + Send> poem::IntoResponse for JsonOut<T> {
    fn into_response(self) -> poem::Response {
        json_response(serde_json::to_vec(&self.0))
    }
}

/// A written JSON body as a response; a body that could not be written is a 500.
pub fn json_response(body: serde_json::Result<Vec<u8>>) -> poem::Response {
    match body {
        Ok(body) => poem::Response::builder()
            .content_type("application/json; charset=utf-8")
            .body(body),
        Err(e) => {
            tracing::error!(error = %e, "response serialisation failed");
            ApiError::internal().into_poem().into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_json;

    #[test]
    fn json_content_types_are_recognised() {
        assert!(is_json("application/json"));
        assert!(is_json("application/json; charset=utf-8"));
        assert!(is_json("Application/JSON"));
        assert!(is_json("application/merge-patch+json"));
        assert!(!is_json("text/plain"));
        assert!(!is_json("application/x-www-form-urlencoded"));
        assert!(!is_json("multipart/form-data; boundary=x"));
        assert!(super::is_form(
            "application/x-www-form-urlencoded; charset=utf-8"
        ));
        assert!(!super::is_form("application/json"));
    }
}
