//! The JSON Schemas of the values the domain parses, for the OpenAPI
//! document: each says exactly what its `parse` accepts (or a little less,
//! never more), so that a client or a generator (Schemathesis) that follows
//! the document is never refused for the form of a value. Request fields
//! name them with `#[schema(schema_with = civic_core::schemas::…)]`.
//!
//! Kept beside the parsers they describe; `tests` below checks each
//! pattern's examples against its parser.

use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, SchemaType, Type};
use utoipa::openapi::Object;

/// One character of free text: anything but a control character
/// (`char::is_control`: C0, DEL and C1).
const TEXT_CHAR: &str = r"[^\x00-\x1f\x7f-\x9f]";

fn string(nullable: bool) -> ObjectBuilder {
    let kind = if nullable {
        SchemaType::from_iter([Type::String, Type::Null])
    } else {
        SchemaType::Type(Type::String)
    };
    ObjectBuilder::new().schema_type(kind)
}

/// Free text as `civic_core::error::parse_text(_, _, max)` takes it: not
/// blank, at most `max` characters, no control character.
fn text(max: usize, nullable: bool) -> Object {
    string(nullable)
        .pattern(Some(format!(
            r"^{TEXT_CHAR}*[^\s\x00-\x1f\x7f-\x9f]{TEXT_CHAR}*$"
        )))
        .max_length(Some(max))
        .build()
}

pub fn text_100() -> Object {
    text(100, false)
}
pub fn text_200() -> Object {
    text(200, false)
}
pub fn text_300() -> Object {
    text(300, false)
}
pub fn text_500() -> Object {
    text(500, false)
}
pub fn text_200_or_null() -> Object {
    text(200, true)
}
pub fn text_2000() -> Object {
    text(2000, false)
}
/// A reason or a message as `investigation::parse_reason` takes it: free
/// text of at most 2000 characters that may also break lines.
pub fn reason() -> Object {
    reason_text(false)
}
pub fn reason_or_null() -> Object {
    reason_text(true)
}

fn reason_text(nullable: bool) -> Object {
    const LINE_CHAR: &str = r"[^\x00-\x09\x0b-\x1f\x7f-\x9f]";
    string(nullable)
        .pattern(Some(format!(
            r"^{LINE_CHAR}*[^\s\x00-\x1f\x7f-\x9f]{LINE_CHAR}*$"
        )))
        .max_length(Some(2000))
        .build()
}

pub fn text_500_or_null() -> Object {
    text(500, true)
}
pub fn text_2000_or_null() -> Object {
    text(2000, true)
}

/// A [`crate::identity::Username`].
pub fn username() -> Object {
    string(false)
        .pattern(Some(r"^\s*[A-Za-z][A-Za-z0-9._-]{2,63}\s*$"))
        .build()
}

/// A new [`crate::identity::Password`]: 12–256 characters.
pub fn new_password_or_null() -> Object {
    string(true)
        .min_length(Some(crate::identity::Password::MIN_LEN))
        .max_length(Some(crate::identity::Password::MAX_LEN))
        .build()
}

/// A password offered at sign-in: not empty, bounded.
pub fn offered_password() -> Object {
    string(false)
        .min_length(Some(1))
        .max_length(Some(crate::identity::Password::MAX_LEN))
        .build()
}

/// A [`crate::identity::Region`].
pub fn region() -> Object {
    string(false).pattern(Some(REGION)).build()
}

pub fn region_or_null() -> Object {
    string(true).pattern(Some(REGION)).build()
}

/// What `Region::parse` takes: it trims and lowercases.
const REGION: &str = r"^\s*[A-Za-z0-9-]{1,64}\s*$";

/// A [`crate::identity::Duty`] as written: `investigator:REGION`,
/// `citizen:SUBJECT` or a duty without scope.
pub fn duty() -> Object {
    string(false)
        .pattern(Some(
            r"^(investigator:\s*[A-Za-z0-9-]{1,64}\s*|\s*citizen:\s*[A-Za-z0-9-]{1,64}\s*|approver|police_location_officer|security_auditor|mydata_operator|support_agent|analyst|administrator)$",
        ))
        .build()
}

/// Duties, each as [`duty`] writes it.
pub fn duties() -> utoipa::openapi::Array {
    utoipa::openapi::schema::ArrayBuilder::new()
        .items(duty())
        .build()
}

/// Names, at least one, each once.
pub fn names() -> utoipa::openapi::Array {
    utoipa::openapi::schema::ArrayBuilder::new()
        .items(
            string(false)
                .min_length(Some(1))
                .max_length(Some(64))
                .build(),
        )
        .min_items(Some(1))
        .unique_items(true)
        .build()
}

/// What a node holds: `pings`, `transactions`, `taps` or (a MyData
/// holder's) `records`.
pub fn node_kind() -> Object {
    one_of(&["pings", "transactions", "taps", "records"])
}

/// A holder's code in case registers (`skt`, `shinhan`).
pub fn holder_code() -> Object {
    string(false)
        .pattern(Some(r"^\s*[A-Za-z0-9_-]{1,32}\s*$"))
        .build()
}

/// A case number: 1–40 letters, digits, `-`, `_` or `.`.
pub fn case_number() -> Object {
    string(false)
        .pattern(Some(r"^[A-Za-z0-9._-]{1,40}$"))
        .build()
}

pub fn case_number_or_null() -> Object {
    string(true)
        .pattern(Some(r"^[A-Za-z0-9._-]{1,40}$"))
        .build()
}

/// A node's address as an administrator registers it: `https://`, no
/// whitespace, at most 300 characters.
pub fn node_url() -> Object {
    string(false)
        .pattern(Some(r"^\s*https://\S*\s*$"))
        .max_length(Some(300))
        .build()
}

/// A webhook's address: `https://HOST…`, or plain `http://` to a loopback
/// address.
pub fn webhook_url() -> Object {
    string(false)
        .pattern(Some(
            r"^\s*(https://[A-Za-z0-9.-]+|http://(127\.0\.0\.1|localhost|\[::1\]))(:[0-9]{1,5})?(/[A-Za-z0-9._~%/-]*)?\s*$",
        ))
        .max_length(Some(500))
        .build()
}

/// A training material's address: `https://…` or a path on the hub.
pub fn material_url() -> Object {
    string(false)
        .pattern(Some(format!(r"^\s*(https://|/){TEXT_CHAR}*$")))
        .max_length(Some(500))
        .build()
}

/// A [`crate::identity::InstitutionKind`].
pub fn institution_kind() -> Object {
    one_of(&[
        "hub_operator",
        "health_authority",
        "police",
        "telco",
        "card_company",
        "transit_operator",
        "ministry",
        "local_government",
        "public_institution",
        "using_agency",
    ])
}

/// A [`crate::identity::Subject`].
pub fn subject() -> Object {
    string(false)
        .pattern(Some(r"^\s*[A-Za-z0-9-]{1,64}\s*$"))
        .build()
}

/// A calendar date, `YYYY-MM-DD` (RFC 3339 `full-date`), in the years
/// 2000–2099.
pub fn date() -> Object {
    string(false)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Date)))
        .pattern(Some(DATE))
        .build()
}

/// A date that may be left out: absent, null or empty.
pub fn optional_date() -> Object {
    string(true)
        .pattern(Some(r"^(20[0-9]{2}-[0-9]{2}-[0-9]{2})?$"))
        .build()
}

pub fn date_or_null() -> Object {
    string(true)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Date)))
        .pattern(Some(DATE))
        .build()
}

const DATE: &str = r"^20[0-9]{2}-[0-9]{2}-[0-9]{2}$";

/// An RFC 3339 instant.
pub fn instant_or_null() -> Object {
    string(true)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
        .build()
}

/// A local time of day, `HH:MM`.
pub fn time_of_day_or_null() -> Object {
    string(true)
        .pattern(Some(r"^([01][0-9]|2[0-3]):[0-5][0-9]$"))
        .build()
}

/// A six-digit TOTP code.
pub fn totp_code() -> Object {
    string(false).pattern(Some(r"^[0-9]{6}$")).build()
}

/// A TOTP code at sign-in: six digits, or empty or absent for an
/// account without a second factor.
pub fn totp_code_or_null() -> Object {
    string(true).pattern(Some(r"^([0-9]{6})?$")).build()
}

/// A node's name: `node-skt`.
pub fn node_name() -> Object {
    string(false)
        .pattern(Some(r"^\s*[A-Za-z][A-Za-z0-9.-]{2,63}\s*$"))
        .build()
}

/// One of `values`.
pub fn one_of(values: &[&str]) -> Object {
    string(false)
        .enum_values(Some(values.iter().copied()))
        .build()
}

/// One of `values`, or null.
pub fn one_of_or_null(values: &[&str]) -> Object {
    string(true)
        .enum_values(Some(values.iter().map(|v| Some(*v)).chain([None])))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{Duty, Region, Subject, Username};
    use proptest::prelude::*;

    /// Values a schema's pattern (and length bounds) allows, generated
    /// from the pattern itself.
    fn allowed(schema: Object) -> impl Strategy<Value = String> {
        let pattern = schema.pattern.clone().expect("a pattern");
        let bare = pattern
            .trim_start_matches('^')
            .trim_end_matches('$')
            .to_owned();
        let max = schema.max_length.unwrap_or(usize::MAX);
        proptest::string::string_regex(&bare)
            .expect("the pattern compiles")
            .prop_filter("within maxLength", move |v| v.chars().count() <= max)
    }

    proptest! {
        // What the document allows, the parser takes.
        #[test]
        fn free_text(v in allowed(text_200())) {
            prop_assert!(crate::error::parse_text("t", &v, 200).is_ok(), "{:?}", v);
        }

        #[test]
        fn reasons(v in allowed(reason())) {
            prop_assert!(crate::investigation::parse_reason(&v).is_ok(), "{:?}", v);
        }

        #[test]
        fn usernames(v in allowed(username())) {
            prop_assert!(Username::parse(&v).is_ok(), "{:?}", v);
        }

        #[test]
        fn regions(v in allowed(region())) {
            prop_assert!(Region::parse(&v).is_ok(), "{:?}", v);
        }

        #[test]
        fn duties(v in allowed(duty())) {
            prop_assert!(Duty::parse(&v).is_ok(), "{:?}", v);
        }

        #[test]
        fn subjects(v in allowed(subject())) {
            prop_assert!(Subject::parse(&v).is_ok(), "{:?}", v);
        }


    }

    #[test]
    fn blank_text_and_control_characters_are_outside_the_pattern() {
        let pattern = text_200().pattern.unwrap();
        assert!(pattern.contains(r"\x00-\x1f"));
        assert!(crate::error::parse_text("t", "  ", 200).is_err());
    }
}
