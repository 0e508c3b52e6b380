//! Typed query and path parameters: each type is both what the contract documents and what the
//! handler parses, from one table or one parser, so the two cannot drift apart. poem-openapi
//! would answer a value that does not parse with its own 400; a [`Parsed`] parameter keeps the
//! failure instead, and the handler answers the API's 422 naming the parameter. A blank value is
//! no value, as the FastAPI backends read it.

use std::borrow::Cow;

use poem_openapi::registry::{MetaSchema, MetaSchemaRef};
use poem_openapi::types::{ParseFromParameter, ParseResult, Type};
use todo_core::{Limit, Offset, Priority, SortField, SortOrder, StatusFilter, ValidationError};

/// A parameter value type: its schema and its parser.
pub trait ParamValue: Sized + Send + Sync + 'static {
    /// The schema the contract documents.
    fn schema() -> MetaSchema;
    /// Parses a non-blank value; the error names the parameter by its main name.
    fn parse(raw: &str) -> Result<Self, ValidationError>;
}

/// A parameter as received (its text, for the links that repeat it) and as parsed: `Ok(None)`
/// when blank.
#[derive(Debug, Clone)]
pub struct Parsed<T> {
    /// The text as sent.
    pub raw: String,
    /// The value, `None` when blank, or why it does not parse.
    pub value: Result<Option<T>, ValidationError>,
}

impl<T: ParamValue> Type for Parsed<T> {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> Cow<'static, str> {
        std::any::type_name::<T>().into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(T::schema()))
    }

    fn as_raw_value(&self) -> Option<&Self> {
        Some(self)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Self> + 'a> {
        Box::new(std::iter::once(self))
    }
}

impl<T: ParamValue> ParseFromParameter for Parsed<T> {
    fn parse_from_parameter(value: &str) -> ParseResult<Self> {
        let parsed = if value.trim().is_empty() {
            Ok(None)
        } else {
            T::parse(value).map(Some)
        };
        Ok(Self {
            raw: value.to_owned(),
            value: parsed,
        })
    }
}

/// A string schema whose value is one of `words`.
fn one_of<'a>(words: impl IntoIterator<Item = &'a str>) -> MetaSchema {
    MetaSchema {
        enum_items: words.into_iter().map(Into::into).collect(),
        ..MetaSchema::new("string")
    }
}

/// The list's `status` words (any case): the filter each means, and whether it also means
/// overdue (pending and past due). `active`, `incomplete`, `open`, `done`, `complete` and
/// `overdue` are what the FastAPI backends' frontends send. A body's `status` reads the same
/// words but `all` and `overdue` ([`crate::dto::status_word`]).
pub const STATUS_WORDS: [(&str, StatusFilter, bool); 9] = [
    ("all", StatusFilter::All, false),
    ("pending", StatusFilter::Pending, false),
    ("completed", StatusFilter::Completed, false),
    ("active", StatusFilter::Pending, false),
    ("incomplete", StatusFilter::Pending, false),
    ("open", StatusFilter::Pending, false),
    ("done", StatusFilter::Completed, false),
    ("complete", StatusFilter::Completed, false),
    ("overdue", StatusFilter::Pending, true),
];

/// A `status` value: the filter, and whether it means overdue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status(pub StatusFilter, pub bool);

impl ParamValue for Status {
    fn schema() -> MetaSchema {
        one_of(STATUS_WORDS.iter().map(|(w, _, _)| *w))
    }

    fn parse(raw: &str) -> Result<Self, ValidationError> {
        let raw = raw.trim();
        STATUS_WORDS
            .iter()
            .find(|(w, _, _)| w.eq_ignore_ascii_case(raw))
            .map(|(_, filter, overdue)| Self(*filter, *overdue))
            .ok_or_else(|| {
                ValidationError::field(
                    "status",
                    "must be one of: all, pending, completed (or active, incomplete, open, \
                     done, complete, overdue)",
                )
            })
    }
}

impl ParamValue for SortField {
    fn schema() -> MetaSchema {
        one_of(Self::WORDS.iter().map(|(w, _)| *w))
    }

    fn parse(raw: &str) -> Result<Self, ValidationError> {
        SortField::parse(raw)
    }
}

impl ParamValue for SortOrder {
    fn schema() -> MetaSchema {
        one_of(Self::WORDS.iter().map(|(w, _)| *w))
    }

    fn parse(raw: &str) -> Result<Self, ValidationError> {
        SortOrder::parse(raw)
    }
}

/// One `priority` value: a priority, or several separated by commas (`high,low`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Priorities(pub Vec<Priority>);

impl ParamValue for Priorities {
    fn schema() -> MetaSchema {
        one_of([Priority::Low, Priority::Medium, Priority::High].map(Priority::as_str))
    }

    fn parse(raw: &str) -> Result<Self, ValidationError> {
        raw.split(',')
            .filter(|part| !part.trim().is_empty())
            .map(Priority::parse)
            .collect::<Result<_, _>>()
            .map(Self)
    }
}

/// An integer parameter's text, trimmed, as an `i64`.
fn integer(name: &str, raw: &str) -> Result<i64, ValidationError> {
    raw.trim()
        .parse::<i64>()
        .map_err(|_| ValidationError::field(name, "must be an integer"))
}

impl ParamValue for Limit {
    fn schema() -> MetaSchema {
        MetaSchema {
            minimum: Some(1.0),
            maximum: Some(f64::from(Limit::MAX)),
            ..MetaSchema::new_with_format("integer", "int32")
        }
    }

    fn parse(raw: &str) -> Result<Self, ValidationError> {
        integer("limit", raw).and_then(Limit::new)
    }
}

impl ParamValue for Offset {
    fn schema() -> MetaSchema {
        MetaSchema {
            minimum: Some(0.0),
            maximum: Some(f64::from(Offset::MAX)),
            ..MetaSchema::new_with_format("integer", "int32")
        }
    }

    fn parse(raw: &str) -> Result<Self, ValidationError> {
        integer("offset", raw).and_then(Offset::new)
    }
}

/// A yes-or-no flag: `true` or `1`, `false` or `0` (any case).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flag(pub bool);

impl ParamValue for Flag {
    fn schema() -> MetaSchema {
        MetaSchema::new("boolean")
    }

    fn parse(raw: &str) -> Result<Self, ValidationError> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "true" | "1" => Ok(Self(true)),
            "false" | "0" => Ok(Self(false)),
            _ => Err(ValidationError::field("flag", "must be true or false")),
        }
    }
}

/// A task id: a positive 64-bit integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Id(pub todo_core::TaskId);

impl ParamValue for Id {
    fn schema() -> MetaSchema {
        MetaSchema {
            minimum: Some(1.0),
            ..MetaSchema::new_with_format("integer", "int64")
        }
    }

    fn parse(raw: &str) -> Result<Self, ValidationError> {
        raw.parse::<todo_core::TaskId>()
            .ok()
            .filter(|id| *id > 0)
            .map(Self)
            .ok_or_else(|| ValidationError::field("id", "must be a positive integer"))
    }
}

/// A task id in a path.
pub type TaskIdParam = Parsed<Id>;

impl Parsed<Id> {
    /// The id, or the 422 naming `id` (a blank path segment never routes here).
    pub fn id(&self) -> Result<todo_core::TaskId, ValidationError> {
        match &self.value {
            Ok(Some(Id(id))) => Ok(*id),
            Ok(None) => Id::parse("").map(|Id(id)| id),
            Err(e) => Err(e.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_word_parses_and_nothing_else_does() {
        for schema_words in [
            Status::schema().enum_items,
            SortField::schema().enum_items,
            SortOrder::schema().enum_items,
            Priorities::schema().enum_items,
        ] {
            assert!(!schema_words.is_empty());
            for w in &schema_words {
                let w = w.as_str().unwrap();
                let upper = w.to_ascii_uppercase();
                assert!(
                    Status::parse(w).is_ok()
                        || SortField::parse(w).is_ok()
                        || SortOrder::parse(w).is_ok()
                        || Priorities::parse(w).is_ok(),
                    "{w}"
                );
                assert!(
                    Status::parse(&upper).is_ok()
                        || SortField::parse(&upper).is_ok()
                        || SortOrder::parse(&upper).is_ok()
                        || Priorities::parse(&upper).is_ok(),
                    "{upper}"
                );
            }
        }
        assert!(Status::parse("later").is_err());
        assert_eq!(
            Priorities::parse("high, low").unwrap(),
            Priorities(vec![Priority::High, Priority::Low])
        );
    }

    #[test]
    fn a_blank_value_is_no_value_and_a_bad_one_is_kept_as_its_error() {
        let blank = Parsed::<Limit>::parse_from_parameter(" ").unwrap();
        assert!(matches!(blank.value, Ok(None)));
        let bad = Parsed::<Limit>::parse_from_parameter("ten").unwrap();
        assert_eq!(bad.value.unwrap_err().errors[0].field, "limit");
        assert_eq!(bad.raw, "ten");
    }
}
