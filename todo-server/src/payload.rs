//! A JSON request body that tells malformed JSON (400) from well-formed JSON that breaks a rule
//! (422), enforces the 1 MiB limit (413), and documents the schema of `T` in the contract.

use std::marker::PhantomData;

use poem::{Request, RequestBody};
use poem_openapi::payload::Payload;
use poem_openapi::registry::{MetaMediaType, MetaRequest, MetaSchemaRef, Registry};
use poem_openapi::types::Type;
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions};
use serde_json::{Map, Value};

use crate::problem::ApiError;

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 1 << 20;

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

async fn read_object(
    request: &Request,
    body: &mut RequestBody,
    required: bool,
) -> poem::Result<Option<Map<String, Value>>> {
    let declared = request
        .headers()
        .get(poem::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(ApiError::payload_too_large().into_poem());
    }
    let bytes = body
        .take()?
        .into_bytes_limit(MAX_BODY_BYTES)
        .await
        .map_err(|e| {
            match e {
                poem::error::ReadBodyError::PayloadTooLarge => ApiError::payload_too_large(),
                _ => ApiError::bad_request("the request body could not be read"),
            }
            .into_poem()
        })?;
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
    }
}
