//! A task's plain fields ([`todo_core::FIELDS`]) over HTTP and MCP, from their one declaration:
//! their JSON values, their schemas in the contract and in the MCP tools, and the reading of
//! a body's values for them. Nothing here names a field.

use std::borrow::Cow;
use std::sync::LazyLock;

use poem_openapi::registry::{MetaSchema, MetaSchemaRef};
use poem_openapi::types::{ParseError, ParseFromJSON, ParseResult, ToJSON, Type};
use serde_json::{Map, Value};
use todo_core::fields::{Field, Kind, Raw, ValueRef};
use todo_core::{FIELDS, NewTask, Task, TaskPatch, ValidationError};

use crate::dto::{parse_instant_text, rfc3339};

/// Where a plain field is documented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// A task as the API returns it.
    Read,
    /// A create's body.
    Create,
    /// An update's body.
    Update,
}

/// A field's description on `surface`, built once.
fn description(surface: Surface, i: usize) -> &'static str {
    static TEXTS: LazyLock<[Vec<String>; 3]> = LazyLock::new(|| {
        let each = |f: fn(&Field) -> String| FIELDS.iter().map(f).collect::<Vec<_>>();
        [
            each(|f| format!("{}, or null.", f.doc)),
            each(|f| format!("{}; `\"\"` is none.", f.doc)),
            each(|f| format!("{}, or null (or `\"\"`) to clear it.", f.doc)),
        ]
    });
    let set = match surface {
        Surface::Read => 0,
        Surface::Create => 1,
        Surface::Update => 2,
    };
    &TEXTS[set][i]
}

/// The schema of field `f` (the `i`th) on `surface`.
fn field_schema(f: &Field, i: usize, surface: Surface) -> MetaSchema {
    let mut schema = match f.kind {
        Kind::Int => MetaSchema {
            format: Some("int64"),
            minimum: f.rules.minimum.map(|n| n as f64),
            maximum: f.rules.maximum.map(|n| n as f64),
            ..MetaSchema::new("integer")
        },
        Kind::Text => MetaSchema {
            max_length: f.rules.max_chars,
            ..MetaSchema::new("string")
        },
        Kind::Instant => MetaSchema {
            format: Some("date-time"),
            ..MetaSchema::new("string")
        },
    };
    schema.description = Some(description(surface, i));
    schema.nullable = surface != Surface::Create;
    schema
}

/// An object schema of the plain fields on `surface`, none of them required: flattened into
/// the contract's task, create and update schemas.
fn object_schema(surface: Surface) -> MetaSchema {
    MetaSchema {
        properties: FIELDS
            .iter()
            .enumerate()
            .map(|(i, f)| {
                (
                    f.name,
                    MetaSchemaRef::Inline(Box::new(field_schema(f, i, surface))),
                )
            })
            .collect(),
        ..MetaSchema::new("object")
    }
}

/// A value as JSON: numbers, strings, times as the API writes them, `null`.
pub fn json(value: ValueRef<'_>) -> Value {
    match value {
        ValueRef::Int(Some(n)) => Value::from(n),
        ValueRef::Text(Some(s)) => Value::from(s),
        ValueRef::Instant(Some(t)) => rfc3339::with_text(&t, |s| Value::from(s)),
        ValueRef::Int(None) | ValueRef::Text(None) | ValueRef::Instant(None) => Value::Null,
    }
}

/// Appends a value's JSON to `out` (what [`json`] gives, without building it).
pub fn write(out: &mut Vec<u8>, value: ValueRef<'_>) -> serde_json::Result<()> {
    match value {
        ValueRef::Int(Some(n)) => serde_json::to_writer(&mut *out, &n),
        ValueRef::Text(Some(s)) => serde_json::to_writer(&mut *out, s),
        ValueRef::Instant(Some(t)) => {
            rfc3339::with_text(&t, |text| {
                out.push(b'"');
                out.extend_from_slice(text.as_bytes());
                out.push(b'"');
            });
            Ok(())
        }
        ValueRef::Int(None) | ValueRef::Text(None) | ValueRef::Instant(None) => {
            out.extend_from_slice(b"null");
            Ok(())
        }
    }
}

/// The most bytes a value of `kind` writes besides a text's characters.
pub fn fixed_bytes(kind: Kind) -> usize {
    match kind {
        // A 20-character integer.
        Kind::Int => 20,
        // Quotes, or `null`.
        Kind::Text => 4,
        // A quoted 27-character time.
        Kind::Instant => 29,
    }
}

/// A task's plain fields as the API returns them: flattened into [`TaskDto`](crate::dto::TaskDto),
/// for its schema and its serde serialisation (which the task writer is tested against).
#[derive(Debug, Clone)]
pub struct PlainValues(pub Vec<(&'static str, Value)>);

impl From<&Task> for PlainValues {
    fn from(task: &Task) -> Self {
        Self(FIELDS.iter().map(|f| (f.name, json(f.get(task)))).collect())
    }
}

impl serde::Serialize for PlainValues {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// The plain fields of a create ([`Surface::Create`]) or an update, for the contract only: the
/// body parsers read them ([`read_new`], [`read_change`]).
#[derive(Debug, Clone, Default)]
pub struct PlainInputDoc<const UPDATE: bool>;

/// The schema types of the plain fields, each an inline object flattened into its parent.
macro_rules! schema_type {
    ($ty:ty, $name:literal, $surface:expr) => {
        impl Type for $ty {
            const IS_REQUIRED: bool = true;
            type RawValueType = Self;
            type RawElementValueType = Self;

            fn name() -> Cow<'static, str> {
                Cow::Borrowed($name)
            }

            fn schema_ref() -> MetaSchemaRef {
                MetaSchemaRef::Inline(Box::new(object_schema($surface)))
            }

            fn as_raw_value(&self) -> Option<&Self::RawValueType> {
                Some(self)
            }

            fn raw_element_iter<'a>(
                &'a self,
            ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
                Box::new(self.as_raw_value().into_iter())
            }
        }
    };
}

schema_type!(PlainValues, "PlainFields", Surface::Read);
schema_type!(PlainInputDoc<false>, "PlainFieldsCreate", Surface::Create);
schema_type!(PlainInputDoc<true>, "PlainFieldsUpdate", Surface::Update);

impl ToJSON for PlainValues {
    fn to_json(&self) -> Option<Value> {
        Some(Value::Object(
            self.0
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
        ))
    }
}

impl ParseFromJSON for PlainValues {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        let map = match value {
            Some(Value::Object(map)) => map,
            _ => return Err(ParseError::expected_type(Value::Null)),
        };
        Ok(Self(
            FIELDS
                .iter()
                .map(|f| (f.name, map.get(f.name).cloned().unwrap_or(Value::Null)))
                .collect(),
        ))
    }
}

impl<const UPDATE: bool> ToJSON for PlainInputDoc<UPDATE>
where
    Self: Type,
{
    fn to_json(&self) -> Option<Value> {
        Some(Value::Object(Map::new()))
    }
}

impl<const UPDATE: bool> ParseFromJSON for PlainInputDoc<UPDATE>
where
    Self: Type,
{
    fn parse_from_json(_: Option<Value>) -> ParseResult<Self> {
        Ok(Self)
    }
}

/// A body's JSON value for `f` as its kind reads it: an integer, a string, or an instant in
/// the formats [`parse_instant_text`] reads.
fn raw<'v>(f: &Field, v: &'v Value) -> Result<Raw<'v>, ValidationError> {
    match f.kind {
        Kind::Int => v
            .as_i64()
            .map(Raw::Int)
            .ok_or_else(|| ValidationError::field(f.name, "must be an integer")),
        Kind::Text => v
            .as_str()
            .map(Raw::Text)
            .ok_or_else(|| ValidationError::field(f.name, "must be a string")),
        Kind::Instant => {
            let text = v
                .as_str()
                .ok_or_else(|| ValidationError::field(f.name, "must be a string"))?;
            parse_instant_text(f.name, text).map(Raw::Instant)
        }
    }
}

/// What a body says of a field: absent, `null` (or `""`, which means the same for every plain
/// field), or a value.
fn sent<'v>(map: &'v Map<String, Value>, name: &str) -> Option<Option<&'v Value>> {
    match map.get(name)? {
        Value::Null => Some(None),
        Value::String(s) if s.is_empty() => Some(None),
        v => Some(Some(v)),
    }
}

/// Sets `task`'s plain fields from a create body's canonical fields, every invalid one into
/// `errors`; without a task (another field was invalid), only checks them.
pub fn read_new(
    map: &Map<String, Value>,
    mut task: Option<&mut NewTask>,
    errors: &mut ValidationError,
) {
    for f in FIELDS {
        if let Some(Some(v)) = sent(map, f.name) {
            errors.collect(raw(f, v).and_then(|r| match task.as_deref_mut() {
                Some(task) => f.set_new(task, Some(r)),
                None => f.check(r),
            }));
        }
    }
}

/// Sets what `patch` does to the plain fields from an update body's canonical fields: absent
/// leaves, `null` or `""` clears; every invalid one into `errors`.
pub fn read_change(map: &Map<String, Value>, patch: &mut TaskPatch, errors: &mut ValidationError) {
    for f in FIELDS {
        match sent(map, f.name) {
            None => {}
            Some(None) => {
                errors.collect(f.set_change(patch, None));
            }
            Some(Some(v)) => {
                errors.collect(raw(f, v).and_then(|r| f.set_change(patch, Some(r))));
            }
        }
    }
}

/// The plain fields' names, for the MCP tools' lists of accepted arguments.
pub fn names() -> impl Iterator<Item = &'static str> {
    FIELDS.iter().map(|f| f.name)
}

/// Adds the plain fields to an MCP tool's JSON schema (its `properties`): on `surface`, with
/// the contract's descriptions and types, `null` allowed where the contract allows it.
pub fn add_to_tool_schema(schema: &mut Map<String, Value>, surface: Surface) {
    let Some(Value::Object(properties)) = schema.get_mut("properties") else {
        return;
    };
    for (i, f) in FIELDS.iter().enumerate() {
        let ty = match f.kind {
            Kind::Int => "integer",
            Kind::Text | Kind::Instant => "string",
        };
        let mut property = Map::new();
        property.insert(
            "type".into(),
            if surface == Surface::Create {
                Value::from(ty)
            } else {
                Value::from(vec![ty, "null"])
            },
        );
        if f.kind == Kind::Instant {
            property.insert("format".into(), Value::from("date-time"));
        }
        if let Some(n) = f.rules.minimum {
            property.insert("minimum".into(), Value::from(n));
        }
        if let Some(n) = f.rules.maximum {
            property.insert("maximum".into(), Value::from(n));
        }
        if let Some(n) = f.rules.max_chars {
            property.insert("maxLength".into(), Value::from(n));
        }
        property.insert("description".into(), Value::from(description(surface, i)));
        properties.insert(f.name.to_owned(), Value::Object(property));
    }
}
