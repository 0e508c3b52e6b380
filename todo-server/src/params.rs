//! Parameters documented in the contract with their real types (an integer task id, the list's
//! enums) but read as their raw text. poem-openapi answers a value of a typed parameter that does
//! not parse with its own 400; reading the text and parsing it in the handler keeps the API's
//! 422 naming the parameter, and still lets a typed client (openapi-typescript...) see the type.

use std::borrow::Cow;

use poem_openapi::registry::{MetaSchema, MetaSchemaRef};
use poem_openapi::types::{ParseFromParameter, ParseResult, Type};

/// Declares a raw-text parameter type documented by the schema `$schema`.
macro_rules! documented_text {
    ($(#[$doc:meta])* $name:ident, $schema:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name(pub String);

        impl Type for $name {
            const IS_REQUIRED: bool = true;
            type RawValueType = Self;
            type RawElementValueType = Self;

            fn name() -> Cow<'static, str> {
                stringify!($name).into()
            }

            fn schema_ref() -> MetaSchemaRef {
                MetaSchemaRef::Inline(Box::new($schema))
            }

            fn as_raw_value(&self) -> Option<&Self> {
                Some(self)
            }

            fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Self> + 'a> {
                Box::new(std::iter::once(self))
            }
        }

        impl ParseFromParameter for $name {
            fn parse_from_parameter(value: &str) -> ParseResult<Self> {
                Ok(Self(value.to_owned()))
            }
        }
    };
}

/// A string schema whose value is one of `values`.
fn one_of(values: &[&str]) -> MetaSchema {
    MetaSchema {
        enum_items: values.iter().map(|v| (*v).into()).collect(),
        ..MetaSchema::new("string")
    }
}

documented_text!(
    /// A task id: a positive 64-bit integer.
    TaskIdParam,
    MetaSchema {
        minimum: Some(1.0),
        ..MetaSchema::new_with_format("integer", "int64")
    }
);

documented_text!(
    /// The list's `status`: `all`, `pending`, `completed`, or an alias the FastAPI backends'
    /// frontends send (`active`, `incomplete` and `open` are pending; `done` and `complete` are
    /// completed; `overdue` is pending and past due). Any case.
    StatusParam,
    one_of(&[
        "all",
        "pending",
        "completed",
        "active",
        "incomplete",
        "open",
        "done",
        "complete",
        "overdue",
    ])
);

documented_text!(
    /// The list's `sort_by` (an alias of `sort`, with the field names as values).
    SortByParam,
    one_of(&[
        "created_at",
        "updated_at",
        "due_date",
        "priority",
        "title",
        "created",
        "updated",
    ])
);

documented_text!(
    /// The list's `sort`.
    SortParam,
    one_of(&["created", "updated", "title", "due_date", "priority"])
);

documented_text!(
    /// One of the list's `priority` values (any case).
    PriorityParam,
    one_of(&["low", "medium", "high"])
);

documented_text!(
    /// The list's `order`.
    OrderParam,
    one_of(&["asc", "desc"])
);

documented_text!(
    /// A page size, 1 to 1000.
    LimitParam,
    MetaSchema {
        minimum: Some(1.0),
        maximum: Some(f64::from(todo_core::Limit::MAX)),
        ..MetaSchema::new_with_format("integer", "int32")
    }
);

documented_text!(
    /// Tasks to skip before the page, 0 to 10000.
    OffsetParam,
    MetaSchema {
        minimum: Some(0.0),
        maximum: Some(f64::from(todo_core::Offset::MAX)),
        ..MetaSchema::new_with_format("integer", "int32")
    }
);

documented_text!(
    /// A yes-or-no flag.
    FlagParam,
    MetaSchema::new("boolean")
);
