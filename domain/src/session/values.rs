//! The validated text a session is created from: its title, prompt and workspace path.

use crate::validation::{self, validated_string, ValidationError};

/// Longest workspace path, in bytes (Linux `PATH_MAX`).
pub const MAX_WORKSPACE_BYTES: usize = 4096;

validated_string!(
    /// A session's one-line title: trimmed, 1..=200 characters, no control characters.
    SessionTitle,
    |raw| validation::title("title", raw)
);

validated_string!(
    /// The instructions sent to the agent: not blank, at most 100 000 characters, kept verbatim.
    Prompt,
    |raw| validation::long_text("prompt", &raw, false).map(|()| raw)
);

validated_string!(
    /// The absolute directory the agent works in: starts with `/`, contains no NUL.
    WorkspacePath,
    workspace_path
);

fn workspace_path(raw: String) -> Result<String, ValidationError> {
    let err = |message: &str| Err(ValidationError::new("workspace", message));
    if raw.is_empty() {
        return err("must not be empty");
    }
    if !raw.starts_with('/') {
        return err("must be an absolute path starting with `/`");
    }
    if raw.contains('\0') {
        return err("must not contain NUL bytes");
    }
    if raw.len() > MAX_WORKSPACE_BYTES {
        return err("must be at most 4096 bytes");
    }
    Ok(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_title_is_trimmed_and_bounded() {
        assert_eq!(
            SessionTitle::new("  Fix login  ").unwrap().as_str(),
            "Fix login"
        );
        assert!(SessionTitle::new("x".repeat(200)).is_ok());
        let err = SessionTitle::new("x".repeat(201)).unwrap_err();
        assert_eq!(err.field, "title");
        assert_eq!(SessionTitle::new("").unwrap_err().field, "title");
    }

    #[test]
    fn prompt_is_kept_verbatim_but_must_not_be_blank() {
        let text = "  do this\n\n  then that\n";
        assert_eq!(Prompt::new(text).unwrap().as_str(), text);
        assert_eq!(Prompt::new(" \n\t").unwrap_err().field, "prompt");
        assert!(Prompt::new("x".repeat(100_000)).is_ok());
        assert_eq!(
            Prompt::new("x".repeat(100_001)).unwrap_err().field,
            "prompt"
        );
    }

    #[test]
    fn workspace_must_be_absolute_without_nul() {
        assert!(WorkspacePath::new("/srv/repo").is_ok());
        for bad in ["", "relative/path", "./x", "/a\0b"] {
            let err = WorkspacePath::new(bad).unwrap_err();
            assert_eq!(err.field, "workspace", "{bad:?}");
        }
    }

    #[test]
    fn validated_text_deserializes_through_the_rule() {
        let title: SessionTitle = serde_json::from_str("\" ok \"").unwrap();
        assert_eq!(title.as_str(), "ok");
        assert!(serde_json::from_str::<WorkspacePath>("\"tmp\"").is_err());
        assert_eq!(serde_json::to_string(&title).unwrap(), "\"ok\"");
    }
}
