//! Field validation shared by the entities: the error type that names the offending field, the
//! text rules, and the boilerplate of validated string newtypes.

use thiserror::Error;

/// A value rejected by a domain rule, naming the field so HTTP and UI layers can point at it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid {field}: {message}")]
pub struct ValidationError {
    /// The field the value was meant for, e.g. `"title"`.
    pub field: &'static str,
    /// What is wrong with it, phrased for a person.
    pub message: String,
}

impl ValidationError {
    /// An error for `field`.
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }

    /// The same error reported against another field: a value type knows its own rule but not
    /// where it is embedded (an `AgentName` is `name` on an agent and `agent` on a session).
    pub fn in_field(self, field: &'static str) -> Self {
        Self { field, ..self }
    }
}

/// Longest title, in characters.
pub const MAX_TITLE_CHARS: usize = 200;
/// Longest prompt or task description, in characters.
pub const MAX_TEXT_CHARS: usize = 100_000;

/// A one-line human title: trimmed, 1..=200 characters, no control characters (titles end up in
/// table cells and log lines, where a newline or escape sequence would break the layout).
pub(crate) fn title(field: &'static str, raw: String) -> Result<String, ValidationError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    let chars = trimmed.chars().count();
    if chars > MAX_TITLE_CHARS {
        return Err(ValidationError::new(
            field,
            format!("must be at most {MAX_TITLE_CHARS} characters (got {chars})"),
        ));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(ValidationError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(if trimmed.len() == raw.len() {
        raw
    } else {
        trimmed.to_owned()
    })
}

/// Free text of bounded size; `allow_blank` decides whether only-whitespace is acceptable.
/// Kept verbatim: indentation and blank lines in prompts are meaningful to the model.
pub(crate) fn long_text(
    field: &'static str,
    raw: &str,
    allow_blank: bool,
) -> Result<(), ValidationError> {
    if !allow_blank && raw.trim().is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    let chars = raw.chars().count();
    if chars > MAX_TEXT_CHARS {
        return Err(ValidationError::new(
            field,
            format!("must be at most {MAX_TEXT_CHARS} characters (got {chars})"),
        ));
    }
    Ok(())
}

/// Defines a string newtype whose only constructor runs `$validate`, so holding one proves the
/// rule was checked. Serde goes through the same constructor.
macro_rules! validated_string {
    ($(#[$meta:meta])* $name:ident, $validate:expr) => {
        $(#[$meta])*
        #[derive(
            Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord,
            serde::Serialize, serde::Deserialize,
        )]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates `value`; the error names the field.
            pub fn new(
                value: impl Into<String>,
            ) -> Result<Self, $crate::validation::ValidationError> {
                let validate: fn(String) -> Result<String, $crate::validation::ValidationError> =
                    $validate;
                validate(value.into()).map(Self)
            }

            /// The validated text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The validated text, by value.
            pub fn into_inner(self) -> String {
                self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::validation::ValidationError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::new(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = $crate::validation::ValidationError;

            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::new(value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> Self {
                value.0
            }
        }
    };
}
pub(crate) use validated_string;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn title_is_trimmed() {
        assert_eq!(title("title", "  hi  ".into()).unwrap(), "hi");
    }

    #[test]
    fn title_counts_characters_not_bytes() {
        assert!(title("title", "é".repeat(MAX_TITLE_CHARS)).is_ok());
        assert!(title("title", "é".repeat(MAX_TITLE_CHARS + 1)).is_err());
    }

    #[test]
    fn title_rejects_blank_and_control_characters() {
        assert_eq!(title("title", "   ".into()).unwrap_err().field, "title");
        assert!(title("title", "a\nb".into()).is_err());
        assert!(title("title", "a\u{1b}[31mb".into()).is_err());
    }

    #[test]
    fn in_field_keeps_the_message() {
        let e = ValidationError::new("name", "bad").in_field("agent");
        assert_eq!(e.to_string(), "invalid agent: bad");
    }
}
