//! The dashboard's forms read into the application's requests: text fields parsed and checked
//! before anything is stored, every error naming the field it is about.

use std::path::Path;

use app::api::{AgentForm, NewTaskForm};
use app::ports::CommandError;
use domain::FailurePolicy;
use oio_application::{RegisterAgent, StartTaskRequest, UpdateAgent};

use super::errors::invalid_field;

/// A new task as the form asks for it: the requirement to decompose and, when it is to be started
/// at once, how.
#[derive(Debug)]
pub(super) struct NewTask {
    pub requirement: String,
    pub start: Option<StartTaskRequest>,
}

/// Checks the whole form first, so that a refused start leaves no orphan tree behind.
pub(super) fn new_task(form: &NewTaskForm) -> Result<NewTask, CommandError> {
    let requirement = form.requirement.trim();
    if requirement.is_empty() {
        return Err(invalid_field("requirement", "must not be empty"));
    }
    let max_parallel = parse_count("max_parallel", &form.max_parallel)?;
    if let Some(n) = max_parallel {
        let limit = domain::task::execution::MAX_PARALLEL;
        if !(1..=limit).contains(&n) {
            return Err(invalid_field(
                "max_parallel",
                format!("must be between 1 and {limit}"),
            ));
        }
    }
    let policy = parse_policy(&form.policy)?;
    let start = if form.start {
        let workspace = form.workspace.trim().to_owned();
        if workspace.is_empty() {
            return Err(invalid_field("workspace", "required to start the task"));
        }
        if !Path::new(&workspace).join(".git").exists() {
            return Err(invalid_field(
                "workspace",
                format!("{workspace} is not the root of a git repository"),
            ));
        }
        Some(StartTaskRequest {
            workspace,
            max_parallel,
            policy,
            ..StartTaskRequest::default()
        })
    } else {
        None
    };
    Ok(NewTask {
        requirement: requirement.to_owned(),
        start,
    })
}

/// A new agent: every field required.
pub(super) fn register_agent(form: &AgentForm) -> Result<RegisterAgent, CommandError> {
    let max_concurrency = parse_count("max_concurrency", &form.max_concurrency)?
        .ok_or_else(|| invalid_field("max_concurrency", "required"))?;
    Ok(RegisterAgent {
        name: form.name.clone(),
        capabilities: form.capability_list(),
        model: form.model.trim().to_owned(),
        max_concurrency,
    })
}

/// An agent's changes: an empty model or concurrency leaves it as it is.
pub(super) fn update_agent(form: &AgentForm) -> Result<UpdateAgent, CommandError> {
    Ok(UpdateAgent {
        capabilities: Some(form.capability_list()),
        model: Some(form.model.trim().to_owned()).filter(|m| !m.is_empty()),
        max_concurrency: parse_count("max_concurrency", &form.max_concurrency)?,
        expected_version: None,
    })
}

/// `fail_fast`, `continue` or `retry:N`; empty means the default (fail fast).
fn parse_policy(raw: &str) -> Result<Option<FailurePolicy>, CommandError> {
    match raw.trim() {
        "" => Ok(None),
        "fail_fast" => Ok(Some(FailurePolicy::FailFast)),
        "continue" => Ok(Some(FailurePolicy::Continue)),
        other => {
            let retries = other
                .strip_prefix("retry:")
                .and_then(|n| n.parse::<u32>().ok())
                .ok_or_else(|| {
                    invalid_field(
                        "policy",
                        format!("unknown policy {other:?}; use fail_fast, continue or retry:N"),
                    )
                })?;
            FailurePolicy::Retry { retries }
                .validate()
                .map(Some)
                .map_err(|e| invalid_field("policy", e.to_string()))
        }
    }
}

fn parse_count(field: &str, raw: &str) -> Result<Option<u32>, CommandError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    raw.parse::<u32>()
        .map(Some)
        .map_err(|_| invalid_field(field, format!("{raw:?} is not a whole number")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_parse_and_name_the_field_when_wrong() {
        assert_eq!(parse_policy("").unwrap(), None);
        assert_eq!(
            parse_policy("continue").unwrap(),
            Some(FailurePolicy::Continue)
        );
        assert_eq!(
            parse_policy("retry:2").unwrap(),
            Some(FailurePolicy::Retry { retries: 2 })
        );
        for bad in ["sometimes", "retry:0", "retry:x"] {
            match parse_policy(bad) {
                Err(CommandError::Invalid { field, .. }) => assert_eq!(field, "policy"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn counts_must_be_numbers() {
        assert_eq!(parse_count("max_parallel", " ").unwrap(), None);
        assert_eq!(parse_count("max_parallel", "4").unwrap(), Some(4));
        assert!(matches!(
            parse_count("max_parallel", "four"),
            Err(CommandError::Invalid { field, .. }) if field == "max_parallel"
        ));
    }

    fn task_form(workspace: &str, start: bool) -> NewTaskForm {
        NewTaskForm {
            requirement: " add a flag ".into(),
            workspace: workspace.into(),
            max_parallel: "2".into(),
            policy: "continue".into(),
            start,
        }
    }

    #[test]
    fn a_task_to_start_needs_a_git_repository_and_one_to_keep_does_not() {
        let kept = new_task(&task_form("", false)).unwrap();
        assert_eq!(kept.requirement, "add a flag");
        assert!(kept.start.is_none());

        let not_a_repo = tempfile::tempdir().unwrap();
        let path = not_a_repo.path().display().to_string();
        match new_task(&task_form(&path, true)) {
            Err(CommandError::Invalid { field, .. }) => assert_eq!(field, "workspace"),
            other => panic!("{other:?}"),
        }
        std::fs::create_dir(not_a_repo.path().join(".git")).unwrap();
        let start = new_task(&task_form(&path, true)).unwrap().start.unwrap();
        assert_eq!(start.workspace, path);
        assert_eq!(start.max_parallel, Some(2));
        assert_eq!(start.policy, Some(FailurePolicy::Continue));
    }
}
