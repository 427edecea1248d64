//! The `[inbox]` settings and the rules that answer inbox items without an operator.
//!
//! ```toml
//! [inbox]
//! escalate_after_secs = 900   # 0: never escalate
//!
//! # Allow edits whose every path lies inside the session's worktree.
//! [[inbox.policy]]
//! name = "edits-in-worktree"
//! kind = "permission"
//! permission = "edit"
//! inside_worktree = true
//! answer = "once"
//!
//! # Refuse network fetches.
//! [[inbox.policy]]
//! name = "no-webfetch"
//! kind = "permission"
//! permission = "webfetch"
//! answer = "reject"
//!
//! # Pick a named option of every question (or `answer = "first"`, or `"reject"`).
//! [[inbox.policy]]
//! name = "prefer-sqlite"
//! kind = "question"
//! answer = { label = "sqlite" }
//! ```
//!
//! Rules are tried in order; the first that matches answers. A rule matches a permission request
//! when its `permission` is the one asked (or `*`), every requested pattern matches its `pattern`
//! glob (when set) and, with `inside_worktree`, every pattern is a path inside the session's
//! directory: resolved against the directory as it is on disk, it may not climb out (`..`), pass
//! through a symbolic link (a committed link could point anywhere), or reach into `.git` (the
//! worktree's `.git` file, or any repository metadata). A question
//! rule matches when every question's text matches `pattern` (when set) and its answer fits every
//! question (the label is offered, or the question accepts free text).

use std::path::{Component, Path};

use domain::{InboxAnswer, InboxItem, InboxKind, InboxReply};
use globset::{Glob, GlobMatcher};
use serde::{Deserialize, Serialize};

use crate::settings::ConfigError;

/// `[inbox]`: escalation and automatic answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InboxSettings {
    /// Pending items older than this are escalated; 0 disables escalation.
    pub escalate_after_secs: u64,
    /// Automatic answers, tried in order.
    pub policy: Vec<PolicyRule>,
}

impl Default for InboxSettings {
    fn default() -> Self {
        Self {
            escalate_after_secs: 900,
            policy: Vec::new(),
        }
    }
}

/// What a rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    Permission,
    Question,
}

/// A rule's answer as written in the settings: a word (`once`, `always`, `reject`, `first`) or
/// `{ label = "…" }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RuleAnswer {
    Word(String),
    Label { label: String },
}

/// One `[[inbox.policy]]` rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyRule {
    /// Names the rule in answers (`by = "policy:<name>"`) and logs.
    pub name: String,
    pub kind: RuleKind,
    /// Permission rules: the permission (`edit`, `bash`, `webfetch`, …) or `*` (the default).
    #[serde(default)]
    pub permission: Option<String>,
    /// A glob every requested pattern (permissions) or question text (questions) must match.
    #[serde(default)]
    pub pattern: Option<String>,
    /// Permission rules: match only when every requested pattern is a path inside the session's
    /// directory.
    #[serde(default)]
    pub inside_worktree: bool,
    pub answer: RuleAnswer,
}

/// How a rule answers, checked.
#[derive(Debug, Clone)]
enum Decision {
    Reply(InboxReply),
    FirstOption,
    Label(String),
    RejectQuestion,
}

/// A rule ready to match.
#[derive(Debug, Clone)]
struct CompiledRule {
    name: String,
    kind: RuleKind,
    permission: Option<String>,
    pattern: Option<GlobMatcher>,
    inside_worktree: bool,
    decision: Decision,
}

/// The configured rules, compiled.
#[derive(Debug, Clone, Default)]
pub struct Policies {
    rules: Vec<CompiledRule>,
}

/// A rule's answer to an item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyAnswer {
    /// The rule's name.
    pub rule: String,
    pub answer: InboxAnswer,
}

impl PolicyAnswer {
    /// Who answered, as resolutions record it.
    pub fn by(&self) -> String {
        format!("policy:{}", self.rule)
    }
}

fn invalid(field: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field,
        message: message.into(),
    }
}

impl InboxSettings {
    /// Checks and compiles the rules; the error names the field.
    pub fn policies(&self) -> Result<Policies, ConfigError> {
        let mut rules: Vec<CompiledRule> = Vec::with_capacity(self.policy.len());
        for rule in &self.policy {
            let name = rule.name.trim();
            if name.is_empty() {
                return Err(invalid("inbox.policy.name", "must not be blank"));
            }
            if rules.iter().any(|r| r.name == name) {
                return Err(invalid(
                    "inbox.policy.name",
                    format!("`{name}` names two rules"),
                ));
            }
            let pattern = rule
                .pattern
                .as_deref()
                .map(|p| {
                    Glob::new(p)
                        .map(|g| g.compile_matcher())
                        .map_err(|e| invalid("inbox.policy.pattern", format!("rule `{name}`: {e}")))
                })
                .transpose()?;
            let decision = match (rule.kind, &rule.answer) {
                (RuleKind::Permission, RuleAnswer::Word(word)) => {
                    Decision::Reply(word.parse::<InboxReply>().map_err(|_| {
                        invalid(
                            "inbox.policy.answer",
                            format!(
                                "rule `{name}`: a permission rule answers once, always or reject"
                            ),
                        )
                    })?)
                }
                (RuleKind::Question, RuleAnswer::Word(word)) if word == "first" => {
                    Decision::FirstOption
                }
                (RuleKind::Question, RuleAnswer::Word(word)) if word == "reject" => {
                    Decision::RejectQuestion
                }
                (RuleKind::Question, RuleAnswer::Label { label }) if !label.is_empty() => {
                    Decision::Label(label.clone())
                }
                (RuleKind::Question, _) => {
                    return Err(invalid(
                        "inbox.policy.answer",
                        format!(
                            "rule `{name}`: a question rule answers \"first\", \"reject\" or \
                             {{ label = \"…\" }}"
                        ),
                    ))
                }
                (RuleKind::Permission, RuleAnswer::Label { .. }) => {
                    return Err(invalid(
                        "inbox.policy.answer",
                        format!("rule `{name}`: a permission rule answers once, always or reject"),
                    ))
                }
            };
            if rule.kind == RuleKind::Question
                && (rule.permission.is_some() || rule.inside_worktree)
            {
                return Err(invalid(
                    "inbox.policy.permission",
                    format!(
                        "rule `{name}`: `permission` and `inside_worktree` apply to permission \
                         rules only"
                    ),
                ));
            }
            rules.push(CompiledRule {
                name: name.to_owned(),
                kind: rule.kind,
                permission: rule
                    .permission
                    .as_deref()
                    .map(str::trim)
                    .filter(|p| !p.is_empty() && *p != "*")
                    .map(str::to_owned),
                pattern,
                inside_worktree: rule.inside_worktree,
                decision,
            });
        }
        Ok(Policies { rules })
    }
}

impl Policies {
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The answer of the first rule that matches `item`, if any.
    pub fn decide(&self, item: &InboxItem) -> Option<PolicyAnswer> {
        self.rules.iter().find_map(|rule| {
            rule.answer(item).map(|answer| PolicyAnswer {
                rule: rule.name.clone(),
                answer,
            })
        })
    }
}

impl CompiledRule {
    fn answer(&self, item: &InboxItem) -> Option<InboxAnswer> {
        match (&item.kind, self.kind) {
            (
                InboxKind::Permission {
                    permission,
                    patterns,
                    ..
                },
                RuleKind::Permission,
            ) => {
                if self.permission.as_ref().is_some_and(|p| p != permission) {
                    return None;
                }
                if let Some(glob) = &self.pattern {
                    if !patterns.iter().all(|p| glob.is_match(p)) {
                        return None;
                    }
                }
                if self.inside_worktree {
                    let directory = item.directory.as_deref()?;
                    if patterns.is_empty()
                        || !patterns.iter().all(|p| inside(Path::new(directory), p))
                    {
                        return None;
                    }
                }
                match self.decision {
                    Decision::Reply(reply) => Some(InboxAnswer::Permission {
                        reply,
                        message: None,
                    }),
                    _ => None,
                }
            }
            (InboxKind::Question { questions }, RuleKind::Question) => {
                if let Some(glob) = &self.pattern {
                    if !questions.iter().all(|q| glob.is_match(&q.question)) {
                        return None;
                    }
                }
                let answer = match &self.decision {
                    Decision::RejectQuestion => InboxAnswer::QuestionRejected,
                    Decision::FirstOption => InboxAnswer::Question {
                        answers: questions
                            .iter()
                            .map(|q| q.options.first().map(|o| vec![o.label.clone()]))
                            .collect::<Option<_>>()?,
                    },
                    Decision::Label(label) => InboxAnswer::Question {
                        answers: questions.iter().map(|_| vec![label.clone()]).collect(),
                    },
                    Decision::Reply(_) => return None,
                };
                // A label not offered (and no free text accepted) does not match.
                item.check_answer(&answer).ok().map(|()| answer)
            }
            _ => None,
        }
    }
}

/// Whether `path` (absolute, or relative to `directory`) names a place inside `directory` that an
/// automatic "yes" may cover: after `..` and `.` are resolved it lies under the directory's
/// canonical path, no existing component on the way is a symbolic link, and no component is
/// `.git`. Anything that cannot be checked (the directory is gone, a component cannot be read)
/// is not inside: the item goes to a person.
fn inside(directory: &Path, path: &str) -> bool {
    let Ok(root) = std::fs::canonicalize(directory) else {
        return false;
    };
    let path = Path::new(path);
    let relative = if path.is_absolute() {
        match path
            .strip_prefix(directory)
            .or_else(|_| path.strip_prefix(&root))
        {
            Ok(rest) => rest,
            Err(_) => return false,
        }
    } else {
        path
    };
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for component in relative.components() {
        match component {
            Component::Normal(name) => {
                if name.eq_ignore_ascii_case(".git") {
                    return false;
                }
                parts.push(name);
            }
            Component::CurDir => {}
            Component::ParentDir => {
                if parts.pop().is_none() {
                    return false;
                }
            }
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    // Walk down from the root: every component that exists must be a plain directory or file.
    let mut at = root;
    for name in parts {
        at.push(name);
        match std::fs::symlink_metadata(&at) {
            Ok(meta) if meta.file_type().is_symlink() => return false,
            Ok(_) => {}
            // Not there yet (a file the agent is about to create): nothing below can be a link.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return true,
            Err(_) => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use domain::{InboxItemId, InboxOption, InboxQuestion, InboxRequest};
    use uuid::Uuid;

    fn settings(toml: &str) -> InboxSettings {
        config::Config::builder()
            .add_source(config::File::from_str(toml, config::FileFormat::Toml))
            .build()
            .unwrap()
            .get("inbox")
            .unwrap()
    }

    fn permission(name: &str, patterns: &[&str]) -> InboxItem {
        permission_in("/work/tree", name, patterns)
    }

    fn permission_in(directory: &str, name: &str, patterns: &[&str]) -> InboxItem {
        InboxItem::new(
            InboxItemId::from_uuid(Uuid::nil()),
            InboxRequest {
                server: "s".into(),
                remote_session: "ses".into(),
                directory: Some(directory.into()),
                session: None,
                request_id: "per".into(),
                kind: InboxKind::Permission {
                    permission: name.into(),
                    patterns: patterns.iter().map(|p| p.to_string()).collect(),
                    always: vec!["*".into()],
                },
            },
            Utc::now(),
        )
    }

    fn question(labels: &[&str], custom: bool) -> InboxItem {
        InboxItem::new(
            InboxItemId::from_uuid(Uuid::nil()),
            InboxRequest {
                server: "s".into(),
                remote_session: "ses".into(),
                directory: None,
                session: None,
                request_id: "que".into(),
                kind: InboxKind::Question {
                    questions: vec![InboxQuestion {
                        question: "Which database?".into(),
                        header: "DB".into(),
                        options: labels
                            .iter()
                            .map(|l| InboxOption {
                                label: l.to_string(),
                                description: String::new(),
                            })
                            .collect(),
                        multiple: false,
                        custom,
                    }],
                },
            },
            Utc::now(),
        )
    }

    const EXAMPLE: &str = r#"
        [inbox]
        escalate_after_secs = 60
        [[inbox.policy]]
        name = "edits-in-worktree"
        kind = "permission"
        permission = "edit"
        inside_worktree = true
        answer = "once"
        [[inbox.policy]]
        name = "no-webfetch"
        kind = "permission"
        permission = "webfetch"
        answer = "reject"
        [[inbox.policy]]
        name = "prefer-sqlite"
        kind = "question"
        answer = { label = "sqlite" }
        [[inbox.policy]]
        name = "else-first"
        kind = "question"
        answer = "first"
    "#;

    /// A worktree on disk: `src/` with a file, a committed symlink to `/etc`, a `.git` file.
    fn worktree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("src")).unwrap();
        std::fs::write(dir.path().join("src/lib.rs"), "").unwrap();
        std::fs::write(dir.path().join(".git"), "gitdir: /elsewhere\n").unwrap();
        std::os::unix::fs::symlink("/etc", dir.path().join("config")).unwrap();
        dir
    }

    #[test]
    fn edits_inside_the_worktree_are_allowed_and_outside_are_left_to_people() {
        let tree = worktree();
        let root = tree.path().to_str().unwrap();
        let policies = settings(EXAMPLE).policies().unwrap();
        let in_tree = |patterns: &[&str]| policies.decide(&permission_in(root, "edit", patterns));
        let allowed = in_tree(&[
            "src/lib.rs",
            "src/new/file.rs",
            &format!("{root}/a/../b.rs"),
        ])
        .expect("edits inside are allowed");
        assert_eq!(allowed.by(), "policy:edits-in-worktree");
        assert_eq!(
            allowed.answer,
            InboxAnswer::Permission {
                reply: InboxReply::Once,
                message: None
            }
        );
        let outside = [
            "../other/x.rs".to_owned(),
            "/etc/passwd".to_owned(),
            format!("{root}/../x"),
            format!("{root}house/x"),
            // Through a committed symlink, into the worktree's .git file, into repository data.
            "config/passwd".to_owned(),
            "config".to_owned(),
            ".git".to_owned(),
            "./.git/hooks/post-commit".to_owned(),
            "src/.GIT/config".to_owned(),
        ];
        for outside in &outside {
            assert_eq!(in_tree(&["src/ok.rs", outside]), None, "{outside}");
        }
        assert_eq!(policies.decide(&permission("bash", &["ls"])), None);
        // A directory that does not exist (any more) answers nothing automatically.
        assert_eq!(policies.decide(&permission("edit", &["src/lib.rs"])), None);
    }

    #[test]
    fn network_fetches_are_rejected() {
        let policies = settings(EXAMPLE).policies().unwrap();
        let answer = policies
            .decide(&permission("webfetch", &["https://example.com"]))
            .unwrap();
        assert_eq!(answer.rule, "no-webfetch");
        assert!(matches!(
            answer.answer,
            InboxAnswer::Permission {
                reply: InboxReply::Reject,
                ..
            }
        ));
    }

    #[test]
    fn question_rules_pick_an_offered_label_or_fall_through() {
        let policies = settings(EXAMPLE).policies().unwrap();
        let sqlite = policies
            .decide(&question(&["postgres", "sqlite"], false))
            .unwrap();
        assert_eq!(sqlite.rule, "prefer-sqlite");
        assert_eq!(
            sqlite.answer,
            InboxAnswer::Question {
                answers: vec![vec!["sqlite".into()]]
            }
        );
        // Not offered: the next rule (first option) answers.
        let first = policies
            .decide(&question(&["postgres", "mysql"], false))
            .unwrap();
        assert_eq!(first.rule, "else-first");
        assert_eq!(
            first.answer,
            InboxAnswer::Question {
                answers: vec![vec!["postgres".into()]]
            }
        );
        // Free text accepted: the label is an answer even when not offered.
        assert_eq!(
            policies.decide(&question(&["x"], true)).unwrap().rule,
            "prefer-sqlite"
        );
    }

    #[test]
    fn pattern_globs_must_match_every_requested_pattern() {
        let policies = settings(
            r#"
            [inbox]
            [[inbox.policy]]
            name = "git-status"
            kind = "permission"
            permission = "bash"
            pattern = "git status*"
            answer = "always"
            "#,
        )
        .policies()
        .unwrap();
        assert!(policies
            .decide(&permission("bash", &["git status --short"]))
            .is_some());
        assert!(policies
            .decide(&permission("bash", &["git status", "rm -rf /"]))
            .is_none());
    }

    #[test]
    fn bad_rules_are_refused_naming_the_field() {
        let refused = |toml: &str| match settings(toml).policies() {
            Err(ConfigError::Invalid { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            refused(
                "[inbox]\n[[inbox.policy]]\nname = \"a\"\nkind = \"permission\"\nanswer = \"first\""
            ),
            "inbox.policy.answer"
        );
        assert_eq!(
            refused(
                "[inbox]\n[[inbox.policy]]\nname = \"a\"\nkind = \"question\"\nanswer = \"once\""
            ),
            "inbox.policy.answer"
        );
        assert_eq!(
            refused(
                "[inbox]\n[[inbox.policy]]\nname = \"a\"\nkind = \"permission\"\npattern = \"a[\"\nanswer = \"once\""
            ),
            "inbox.policy.pattern"
        );
        assert_eq!(
            refused(
                "[inbox]\n[[inbox.policy]]\nname = \"a\"\nkind = \"permission\"\nanswer = \"once\"\n[[inbox.policy]]\nname = \"a\"\nkind = \"permission\"\nanswer = \"once\""
            ),
            "inbox.policy.name"
        );
    }

    #[test]
    fn defaults_escalate_after_a_quarter_hour_with_no_rules() {
        let defaults = InboxSettings::default();
        assert_eq!(defaults.escalate_after_secs, 900);
        assert!(defaults.policies().unwrap().is_empty());
    }
}
