//! The one error type of parsing and validation.

/// Input that cannot become a domain value. `field` names what was wrong so
/// the edge (HTTP or CLI) can say it precisely.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    pub field: &'static str,
    pub message: String,
}

impl ValidationError {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

/// Checks a free-text field: trimmed, non-empty, at most `max` characters and
/// no control characters (which would let a value forge log or CSV lines).
pub fn parse_text(field: &'static str, raw: &str, max: usize) -> Result<String, ValidationError> {
    let value = raw.trim();
    if value.is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    // The text as sent counts, spaces around it included: what the
    // OpenAPI document's maxLength says.
    if raw.chars().count() > max {
        return Err(ValidationError::new(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(ValidationError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_trimmed_and_bounded() {
        assert_eq!(parse_text("name", "  Seoul  ", 10).unwrap(), "Seoul");
        assert!(parse_text("name", "   ", 10).is_err());
        assert!(parse_text("name", "abcdefghijk", 10).is_err());
        assert!(parse_text("name", "a\nb", 10).is_err());
        // Characters, not bytes: Korean names are three bytes a character.
        assert!(parse_text("name", "질병관리청", 5).is_ok());
    }
}
