//! Task decomposition: turns a requirement into a tree of tasks — a root task for the
//! requirement and subtasks with sibling dependencies and required capabilities — from a
//! matching [`Template`] or, failing that, a generic implement -> test -> document split.
//! Subtasks above the complexity threshold are decomposed again, down to a maximum depth. The
//! result is checked with [`TaskGraph::validate`] and carries its execution order.

pub mod heuristics;
pub mod templates;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::Arc;

use chrono::{DateTime, SubsecRound, Utc};
use domain::validation::MAX_TEXT_CHARS;
use domain::{
    AgentCapability, NewTask, Task, TaskComplexity, TaskError, TaskGraph, TaskId, TaskTitle,
    ValidationError,
};
use uuid::Uuid;

use crate::ports::{ChangeSet, EntityKey, RepositoryError, UnitOfWork};

pub use heuristics::{assess, estimate_complexity, Assessment};
pub use templates::{SubtaskTemplate, Template, TemplateError, TemplateLibrary};

/// Deepest decomposition a caller may ask for.
pub const MAX_DEPTH_LIMIT: u32 = 6;
/// Longest task title, in characters (the domain's limit).
const MAX_TITLE: usize = domain::validation::MAX_TITLE_CHARS;

/// How far to decompose.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecompositionOptions {
    /// Subtasks whose complexity is above this are decomposed further.
    pub threshold: TaskComplexity,
    /// Levels of subtasks below the root (the root is depth 0); tasks at this depth are never
    /// decomposed. `1..=MAX_DEPTH_LIMIT`.
    pub max_depth: u32,
    /// Keywords a template must match to be chosen.
    pub template_min_score: usize,
    /// Use this template for the root instead of choosing by keywords.
    pub template: Option<String>,
}

impl Default for DecompositionOptions {
    fn default() -> Self {
        Self {
            threshold: TaskComplexity::Moderate,
            max_depth: 3,
            template_min_score: 2,
            template: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DecompositionError {
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The generated tasks do not form a valid plan (a template bug; templates are validated
    /// when loaded, so this should not happen).
    #[error("the decomposition is not a valid task graph: {0}")]
    Graph(TaskError),
    #[error(transparent)]
    Storage(#[from] RepositoryError),
}

impl From<TaskError> for DecompositionError {
    fn from(error: TaskError) -> Self {
        match error {
            TaskError::Invalid { field, message } => {
                DecompositionError::Invalid(ValidationError::new(field, message))
            }
            other => DecompositionError::Graph(other),
        }
    }
}

/// How a task came about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskOrigin {
    /// Path of subtask keys from the root, e.g. `service/implement`; empty for the root.
    pub key: String,
    /// The template (or `generic`) that produced this task's own subtasks, if it has any.
    pub split: Option<String>,
}

/// A requirement decomposed into a validated tree of tasks.
#[derive(Clone, Debug)]
pub struct Decomposition {
    pub root: TaskId,
    /// Every task, the root first, then each parent's subtasks in order, level by level.
    pub tasks: Vec<Task>,
    /// An execution order: every task after its dependencies (from [`TaskGraph::validate`]).
    pub order: Vec<TaskId>,
    /// What the heuristics made of the requirement.
    pub assessment: Assessment,
    origins: BTreeMap<TaskId, TaskOrigin>,
}

impl Decomposition {
    pub fn task(&self, id: TaskId) -> Option<&Task> {
        self.tasks.iter().find(|t| t.id() == id)
    }

    pub fn root_task(&self) -> &Task {
        self.task(self.root).expect("the root is among the tasks")
    }

    /// A task by its key path (`""` is the root, `service`, `service/implement`, ...).
    pub fn by_key(&self, key: &str) -> Option<&Task> {
        self.origins
            .iter()
            .find(|(_, o)| o.key == key)
            .and_then(|(id, _)| self.task(*id))
    }

    pub fn origin(&self, id: TaskId) -> Option<&TaskOrigin> {
        self.origins.get(&id)
    }

    /// The key path of a task (`""` for the root).
    pub fn key_of(&self, id: TaskId) -> &str {
        self.origins.get(&id).map_or("", |o| o.key.as_str())
    }

    /// The subtasks of `id`, in order.
    pub fn children(&self, id: TaskId) -> Vec<&Task> {
        self.task(id)
            .map(|t| t.subtasks().iter().filter_map(|s| self.task(*s)).collect())
            .unwrap_or_default()
    }

    /// Levels below the root of the deepest task.
    pub fn depth(&self) -> usize {
        self.origins
            .values()
            .map(|o| {
                if o.key.is_empty() {
                    0
                } else {
                    o.key.matches('/').count() + 1
                }
            })
            .max()
            .unwrap_or_default()
    }

    fn sibling_position(&self, parent: Option<TaskId>, name: &str) -> usize {
        let siblings = parent.and_then(|p| self.task(p)).map(|p| p.subtasks());
        siblings
            .and_then(|s| {
                s.iter()
                    .position(|id| self.key_of(*id).rsplit('/').next() == Some(name))
            })
            .unwrap_or(usize::MAX)
    }

    /// The tree as text: one line per task with its key, complexity, capabilities, the template
    /// that split it and the sibling keys it depends on.
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.render_task(self.root, "", "", &mut out);
        out
    }

    fn render_task(&self, id: TaskId, lead: &str, child_lead: &str, out: &mut String) {
        let Some(task) = self.task(id) else { return };
        let key = self.key_of(id);
        let name = key.rsplit('/').next().unwrap_or_default();
        let capabilities: Vec<&str> = task
            .required_capabilities()
            .iter()
            .map(|c| c.as_str())
            .collect();
        let _ = write!(out, "{lead}");
        if !name.is_empty() {
            let _ = write!(out, "{name}: ");
        }
        let _ = write!(
            out,
            "{} [{}] {{{}}}",
            task.title(),
            task.complexity(),
            capabilities.join(", ")
        );
        if !task.dependencies().is_empty() {
            let mut after: Vec<&str> = task
                .dependencies()
                .iter()
                .map(|d| self.key_of(*d).rsplit('/').next().unwrap_or_default())
                .collect();
            // In sibling order, not id order, so the output is stable.
            after.sort_by_key(|k| self.sibling_position(task.parent(), k));
            let _ = write!(out, " after: {}", after.join(", "));
        }
        if let Some(split) = self.origins.get(&id).and_then(|o| o.split.as_deref()) {
            let _ = write!(out, " (split: {split})");
        }
        out.push('\n');
        let children = task.subtasks();
        for (i, child) in children.iter().enumerate() {
            let last = i + 1 == children.len();
            let (branch, next) = if last {
                ("└── ", "    ")
            } else {
                ("├── ", "│   ")
            };
            self.render_task(
                *child,
                &format!("{child_lead}{branch}"),
                &format!("{child_lead}{next}"),
                out,
            );
        }
    }
}

/// Decomposes `requirement` with the templates of `library` (see the module docs).
pub fn decompose(
    library: &TemplateLibrary,
    requirement: &str,
    options: &DecompositionOptions,
) -> Result<Decomposition, DecompositionError> {
    // Microseconds: what the storage backends keep, so stored tasks read back equal.
    decompose_at(library, requirement, options, Utc::now().trunc_subsecs(6))
}

fn decompose_at(
    library: &TemplateLibrary,
    requirement: &str,
    options: &DecompositionOptions,
    now: DateTime<Utc>,
) -> Result<Decomposition, DecompositionError> {
    validate_requirement(requirement)?;
    if !(1..=MAX_DEPTH_LIMIT).contains(&options.max_depth) {
        return Err(ValidationError::new(
            "max_depth",
            format!("must be between 1 and {MAX_DEPTH_LIMIT}"),
        )
        .into());
    }
    let forced = match &options.template {
        Some(name) => Some(library.get(name).ok_or_else(|| {
            ValidationError::new("template", format!("no decomposition template `{name}`"))
        })?),
        None => None,
    };
    let assessment = assess(requirement);
    let root_capabilities = heuristics::capabilities(requirement);
    let mut builder = Builder {
        library,
        options,
        nodes: Vec::new(),
    };
    builder.nodes.push(Node {
        id: new_id(),
        key: String::new(),
        title: root_title(requirement),
        description: requirement.to_owned(),
        complexity: assessment.complexity,
        capabilities: root_capabilities.clone(),
        parent: None,
        subtasks: Vec::new(),
        dependencies: BTreeSet::new(),
        split: None,
    });
    let template = forced.or_else(|| library.choose(requirement, options.template_min_score, &[]));
    builder.split(
        0,
        requirement,
        &heuristics::subject(requirement),
        template,
        Some(&root_capabilities),
        0,
        &[],
    );
    // The root needs whatever any of its parts needs.
    let mut all: BTreeSet<AgentCapability> = root_capabilities;
    for node in &builder.nodes[1..] {
        all.extend(node.capabilities.iter().copied());
    }
    builder.nodes[0].capabilities = all;

    let mut origins = BTreeMap::new();
    let mut tasks = Vec::with_capacity(builder.nodes.len());
    for node in builder.nodes {
        origins.insert(
            node.id,
            TaskOrigin {
                key: node.key,
                split: node.split,
            },
        );
        tasks.push(Task::new(
            NewTask {
                id: node.id,
                title: TaskTitle::new(node.title)?,
                description: node.description,
                complexity: node.complexity,
                parent: node.parent,
                subtasks: node.subtasks,
                dependencies: node.dependencies,
                required_capabilities: node.capabilities,
            },
            now,
        )?);
    }
    let order = TaskGraph::validate(&tasks)?;
    Ok(Decomposition {
        root: tasks[0].id(),
        tasks,
        order,
        assessment,
        origins,
    })
}

fn validate_requirement(requirement: &str) -> Result<(), ValidationError> {
    if requirement.trim().is_empty() {
        return Err(ValidationError::new("requirement", "must not be empty"));
    }
    let chars = requirement.chars().count();
    if chars > MAX_TEXT_CHARS {
        return Err(ValidationError::new(
            "requirement",
            format!("must be at most {MAX_TEXT_CHARS} characters (got {chars})"),
        ));
    }
    Ok(())
}

fn new_id() -> TaskId {
    TaskId::from_uuid(Uuid::new_v4())
}

/// `text` cut to `max` characters at a word boundary where possible, with an ellipsis.
fn fit(text: &str, max: usize) -> String {
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let clean = clean.split_whitespace().collect::<Vec<_>>().join(" ");
    if clean.chars().count() <= max {
        return clean;
    }
    let cut: String = clean.chars().take(max - 1).collect();
    let cut = match cut.rfind(' ') {
        Some(space) if space > max / 2 => cut[..space].to_owned(),
        _ => cut,
    };
    format!("{}…", cut.trim_end())
}

/// The requirement's first non-blank line, fitted to a title.
fn root_title(requirement: &str) -> String {
    let line = requirement
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(requirement);
    fit(line, MAX_TITLE)
}

struct Node {
    id: TaskId,
    key: String,
    title: String,
    description: String,
    complexity: TaskComplexity,
    capabilities: BTreeSet<AgentCapability>,
    parent: Option<TaskId>,
    subtasks: Vec<TaskId>,
    dependencies: BTreeSet<TaskId>,
    split: Option<String>,
}

/// A subtask about to be created; `depends_on` indexes its siblings.
struct Part {
    key: String,
    title: String,
    description: String,
    complexity: TaskComplexity,
    capabilities: BTreeSet<AgentCapability>,
    depends_on: Vec<usize>,
}

struct Builder<'a> {
    library: &'a TemplateLibrary,
    options: &'a DecompositionOptions,
    nodes: Vec<Node>,
}

impl Builder<'_> {
    /// Gives `nodes[index]` (at `depth`) its subtasks and decomposes those above the threshold.
    /// `requested` are the capabilities the requirement names: at the root, ones the template
    /// does not cover get a subtask of their own. `used` are the templates of the ancestors,
    /// never chosen again below them.
    #[allow(clippy::too_many_arguments)]
    fn split(
        &mut self,
        index: usize,
        text: &str,
        subject: &str,
        template: Option<&Template>,
        requested: Option<&BTreeSet<AgentCapability>>,
        depth: u32,
        used: &[String],
    ) {
        if depth >= self.options.max_depth {
            return;
        }
        let parent = &self.nodes[index];
        let (parts, split) = match template {
            Some(template) => {
                let mut parts = template_parts(template, subject);
                if let Some(requested) = requested {
                    extra_parts(&mut parts, requested, subject);
                }
                (parts, template.name.clone())
            }
            None => (
                generic_parts(&parent.title, parent.complexity, &parent.capabilities, text),
                "generic".to_owned(),
            ),
        };
        let parent_id = parent.id;
        let parent_key = parent.key.clone();
        let ids: Vec<TaskId> = parts.iter().map(|_| new_id()).collect();
        self.nodes[index].subtasks = ids.clone();
        self.nodes[index].split = Some(split.clone());
        let first_child = self.nodes.len();
        for (part, &id) in parts.into_iter().zip(&ids) {
            self.nodes.push(Node {
                id,
                key: if parent_key.is_empty() {
                    part.key
                } else {
                    format!("{parent_key}/{}", part.key)
                },
                title: part.title,
                description: part.description,
                complexity: part.complexity,
                capabilities: part.capabilities,
                parent: Some(parent_id),
                subtasks: Vec::new(),
                dependencies: part.depends_on.iter().map(|&d| ids[d]).collect(),
                split: None,
            });
        }
        let mut used = used.to_vec();
        if template.is_some() {
            used.push(split);
        }
        for child in first_child..first_child + ids.len() {
            if self.nodes[child].complexity <= self.options.threshold {
                continue;
            }
            let text = format!(
                "{}\n{}",
                self.nodes[child].title, self.nodes[child].description
            );
            let template = self
                .library
                .choose(&text, self.options.template_min_score, &used);
            let subject = heuristics::subject(&self.nodes[child].title);
            self.split(child, &text, &subject, template, None, depth + 1, &used);
        }
    }
}

fn fill(text: &str, subject: &str) -> String {
    text.replace(templates::SUBJECT_PLACEHOLDER, subject)
}

fn template_parts(template: &Template, subject: &str) -> Vec<Part> {
    // Keep room in the title for the template's own words.
    let subject = fit(subject, 120);
    template
        .subtasks
        .iter()
        .map(|s| Part {
            key: s.key.clone(),
            title: fit(&fill(&s.title, &subject), MAX_TITLE),
            description: fill(&s.description, &subject),
            complexity: s.complexity,
            capabilities: s.capabilities.clone(),
            depends_on: s
                .depends_on
                .iter()
                .filter_map(|d| template.subtasks.iter().position(|t| &t.key == d))
                .collect(),
        })
        .collect()
}

/// A subtask for each requested capability no template subtask covers (an admin UI asked of a
/// microservice, say). It depends on the template's first subtasks (those without dependencies).
fn extra_parts(parts: &mut Vec<Part>, requested: &BTreeSet<AgentCapability>, subject: &str) {
    let covered: BTreeSet<AgentCapability> = parts
        .iter()
        .flat_map(|p| p.capabilities.iter().copied())
        .collect();
    let starts: Vec<usize> = (0..parts.len())
        .filter(|&i| parts[i].depends_on.is_empty())
        .collect();
    let subject = fit(subject, 120);
    for &capability in requested.difference(&covered) {
        let title = match capability {
            AgentCapability::Backend => "Implement the server side of",
            AgentCapability::Frontend => "Build the user interface of",
            AgentCapability::Database => "Design the storage of",
            AgentCapability::Security => "Secure",
            AgentCapability::Testing => "Test",
            AgentCapability::Docs => "Document",
            AgentCapability::Devops => "Set up the deployment of",
            AgentCapability::Refactor => "Refactor the code around",
        };
        let key = if parts.iter().any(|p| p.key == capability.as_str()) {
            format!("extra_{capability}")
        } else {
            capability.as_str().to_owned()
        };
        parts.push(Part {
            key,
            title: fit(&format!("{title} {subject}"), MAX_TITLE),
            description: format!(
                "The {capability} work the requirement asks for on {subject} that the template \
                 does not cover."
            ),
            complexity: TaskComplexity::Moderate,
            capabilities: BTreeSet::from([capability]),
            depends_on: starts.clone(),
        });
    }
}

/// Implement -> test -> document. The implementation needs the parent's capabilities (or the
/// ones the text names, or backend), is one step simpler than the parent; testing and docs are
/// simpler still.
fn generic_parts(
    title: &str,
    complexity: TaskComplexity,
    capabilities: &BTreeSet<AgentCapability>,
    text: &str,
) -> Vec<Part> {
    let mut implement: BTreeSet<AgentCapability> = capabilities
        .iter()
        .copied()
        .filter(|c| !matches!(c, AgentCapability::Testing | AgentCapability::Docs))
        .collect();
    if implement.is_empty() {
        implement = heuristics::capabilities(text)
            .into_iter()
            .filter(|c| !matches!(c, AgentCapability::Testing | AgentCapability::Docs))
            .collect();
    }
    if implement.is_empty() {
        implement.insert(AgentCapability::Backend);
    }
    let step = |c: TaskComplexity, n: usize| {
        let i = TaskComplexity::ALL
            .iter()
            .position(|x| *x == c)
            .unwrap_or_default();
        TaskComplexity::ALL[i.saturating_sub(n)]
    };
    let topic = fit(title, MAX_TITLE - 15);
    vec![
        Part {
            key: "implement".into(),
            title: fit(&format!("{topic}: implementation"), MAX_TITLE),
            description: format!("Implement the change described by the parent task: {topic}"),
            complexity: step(complexity, 1),
            capabilities: implement,
            depends_on: vec![],
        },
        Part {
            key: "test".into(),
            title: fit(&format!("{topic}: tests"), MAX_TITLE),
            description: format!("Write and run tests covering: {topic}"),
            complexity: step(complexity, 2),
            capabilities: BTreeSet::from([AgentCapability::Testing]),
            depends_on: vec![0],
        },
        Part {
            key: "document".into(),
            title: fit(&format!("{topic}: documentation"), MAX_TITLE),
            description: format!("Document the behaviour and usage of: {topic}"),
            complexity: step(complexity, 3),
            capabilities: BTreeSet::from([AgentCapability::Docs]),
            depends_on: vec![1],
        },
    ]
}

/// Decomposes requirements into task trees and stores them.
pub struct TaskDecompositionService {
    unit_of_work: Arc<dyn UnitOfWork>,
    templates: TemplateLibrary,
}

impl TaskDecompositionService {
    pub fn new(unit_of_work: Arc<dyn UnitOfWork>, templates: TemplateLibrary) -> Self {
        Self {
            unit_of_work,
            templates,
        }
    }

    pub fn templates(&self) -> &TemplateLibrary {
        &self.templates
    }

    /// The task tree for `requirement`; stores nothing.
    pub fn decompose(
        &self,
        requirement: &str,
        options: &DecompositionOptions,
    ) -> Result<Decomposition, DecompositionError> {
        decompose(&self.templates, requirement, options)
    }

    /// Decomposes `requirement` and inserts every task in one Unit of Work commit. The returned
    /// tasks carry the versions storage assigned.
    #[tracing::instrument(skip_all, fields(root))]
    pub async fn decompose_and_store(
        &self,
        requirement: &str,
        options: &DecompositionOptions,
    ) -> Result<Decomposition, DecompositionError> {
        let mut decomposition = self.decompose(requirement, options)?;
        tracing::Span::current().record("root", tracing::field::display(decomposition.root));
        let mut changes = ChangeSet::new();
        for task in &decomposition.tasks {
            changes.insert_task(task);
        }
        let committed = self.unit_of_work.commit(changes).await?;
        for task in &mut decomposition.tasks {
            if let Some(version) = committed.version_of(EntityKey::Task(task.id())) {
                task.set_version(version);
            }
        }
        tracing::info!(
            tasks = decomposition.tasks.len(),
            "stored the decomposition of a requirement"
        );
        Ok(decomposition)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAYMENTS: &str =
        "Build a payments microservice with a REST API, a Postgres schema and an admin UI";

    fn library() -> TemplateLibrary {
        TemplateLibrary::builtin()
    }

    fn caps(list: &[AgentCapability]) -> BTreeSet<AgentCapability> {
        list.iter().copied().collect()
    }

    /// The keys of a task's dependencies, sorted.
    fn deps(d: &Decomposition, key: &str) -> Vec<String> {
        let task = d.by_key(key).unwrap_or_else(|| panic!("no task {key}"));
        let mut keys: Vec<String> = task
            .dependencies()
            .iter()
            .map(|id| d.key_of(*id).to_owned())
            .collect();
        keys.sort();
        keys
    }

    fn child_keys(d: &Decomposition, key: &str) -> Vec<String> {
        let task = d.by_key(key).unwrap();
        d.children(task.id())
            .iter()
            .map(|t| d.key_of(t.id()).to_owned())
            .collect()
    }

    /// Only the template's own level: no recursion.
    fn flat() -> DecompositionOptions {
        DecompositionOptions {
            max_depth: 1,
            ..DecompositionOptions::default()
        }
    }

    fn assert_well_formed(d: &Decomposition) {
        assert_eq!(TaskGraph::validate(&d.tasks).unwrap(), d.order);
        assert_eq!(d.order.len(), d.tasks.len());
        let position = |id: TaskId| d.order.iter().position(|o| *o == id).unwrap();
        for task in &d.tasks {
            for dependency in task.dependencies() {
                assert!(position(*dependency) < position(task.id()));
                // Dependencies are between siblings.
                assert_eq!(d.task(*dependency).unwrap().parent(), task.parent());
            }
        }
        assert_eq!(d.root_task().parent(), None);
    }

    #[test]
    fn microservice_template_decomposition() {
        let d = decompose(&library(), PAYMENTS, &flat()).unwrap();
        assert_well_formed(&d);
        assert_eq!(
            d.origin(d.root).unwrap().split.as_deref(),
            Some("microservice")
        );
        assert_eq!(
            child_keys(&d, ""),
            ["design", "schema", "service", "security", "tests", "deploy", "docs", "frontend"]
        );
        assert_eq!(d.tasks.len(), 9);
        assert_eq!(deps(&d, "design"), Vec::<String>::new());
        assert_eq!(deps(&d, "schema"), ["design"]);
        assert_eq!(deps(&d, "service"), ["design", "schema"]);
        assert_eq!(deps(&d, "security"), ["service"]);
        assert_eq!(deps(&d, "tests"), ["security", "service"]);
        assert_eq!(deps(&d, "deploy"), ["tests"]);
        assert_eq!(deps(&d, "docs"), ["service"]);
        // The admin UI is not in the template: it gets its own subtask.
        assert_eq!(deps(&d, "frontend"), ["design"]);
        assert_eq!(
            d.by_key("frontend").unwrap().required_capabilities(),
            &caps(&[AgentCapability::Frontend])
        );
        assert_eq!(
            d.by_key("security").unwrap().required_capabilities(),
            &caps(&[AgentCapability::Backend, AgentCapability::Security])
        );
        assert_eq!(
            d.by_key("deploy").unwrap().required_capabilities(),
            &caps(&[AgentCapability::Devops])
        );
        assert_eq!(
            d.by_key("schema").unwrap().title().as_str(),
            "Design the data model and schema of the payments microservice"
        );
        let root = d.root_task();
        assert_eq!(root.title().as_str(), PAYMENTS);
        assert_eq!(root.description(), PAYMENTS);
        assert_eq!(root.required_capabilities().len(), 7, "{root:?}");
        assert!(!root
            .required_capabilities()
            .contains(&AgentCapability::Refactor));
    }

    #[test]
    fn crud_template_decomposition() {
        let d = decompose(
            &library(),
            "Add customer records with create, list, edit and delete screens",
            &flat(),
        )
        .unwrap();
        assert_well_formed(&d);
        assert_eq!(d.origin(d.root).unwrap().split.as_deref(), Some("crud"));
        assert_eq!(
            child_keys(&d, ""),
            ["model", "repository", "api", "validation", "ui", "tests"]
        );
        assert_eq!(deps(&d, "model"), Vec::<String>::new());
        assert_eq!(deps(&d, "repository"), ["model"]);
        assert_eq!(deps(&d, "api"), ["repository"]);
        assert_eq!(deps(&d, "validation"), ["api"]);
        assert_eq!(deps(&d, "ui"), ["api"]);
        assert_eq!(deps(&d, "tests"), ["ui", "validation"]);
        assert_eq!(
            d.by_key("repository").unwrap().required_capabilities(),
            &caps(&[AgentCapability::Backend, AgentCapability::Database])
        );
        assert_eq!(
            d.by_key("ui").unwrap().required_capabilities(),
            &caps(&[AgentCapability::Frontend])
        );
        assert_eq!(
            d.by_key("model").unwrap().title().as_str(),
            "Define the data model and migration for the customer records"
        );
    }

    #[test]
    fn security_audit_template_decomposition() {
        let d = decompose(
            &library(),
            "Audit the login flow for security vulnerabilities",
            &flat(),
        )
        .unwrap();
        assert_well_formed(&d);
        assert_eq!(
            d.origin(d.root).unwrap().split.as_deref(),
            Some("security_audit")
        );
        assert_eq!(
            child_keys(&d, ""),
            [
                "scope",
                "threat_model",
                "dependencies",
                "code_review",
                "fixes",
                "regression_tests",
                "report"
            ]
        );
        assert_eq!(deps(&d, "threat_model"), ["scope"]);
        assert_eq!(deps(&d, "dependencies"), ["scope"]);
        assert_eq!(deps(&d, "code_review"), ["threat_model"]);
        assert_eq!(deps(&d, "fixes"), ["code_review", "dependencies"]);
        assert_eq!(deps(&d, "regression_tests"), ["fixes"]);
        assert_eq!(deps(&d, "report"), ["regression_tests"]);
        assert_eq!(
            d.by_key("fixes").unwrap().required_capabilities(),
            &caps(&[AgentCapability::Security, AgentCapability::Refactor])
        );
        assert_eq!(
            d.by_key("scope").unwrap().title().as_str(),
            "Inventory the attack surface of the login flow"
        );
        // The order starts at the root and the scope, and ends with the report.
        assert_eq!(d.order[0], d.root);
        assert_eq!(d.order[1], d.by_key("scope").unwrap().id());
        assert_eq!(*d.order.last().unwrap(), d.by_key("report").unwrap().id());
    }

    #[test]
    fn template_is_chosen_from_the_requirement_text() {
        let lib = library();
        let chosen = |text: &str| {
            lib.choose(
                text,
                DecompositionOptions::default().template_min_score,
                &[],
            )
            .map(|t| t.name.clone())
        };
        assert_eq!(chosen(PAYMENTS).as_deref(), Some("microservice"));
        assert_eq!(
            chosen("An admin screen to create, edit and delete products").as_deref(),
            Some("crud")
        );
        assert_eq!(
            chosen("Pentest the checkout and fix OWASP vulnerabilities").as_deref(),
            Some("security_audit")
        );
        assert_eq!(chosen("Fix a typo in the README"), None);
        // One keyword is below the threshold.
        assert_eq!(chosen("Speed up the service"), None);
    }

    #[test]
    fn without_a_matching_template_the_split_is_generic() {
        let d = decompose(
            &library(),
            "Speed up the report generation with a cache",
            &flat(),
        )
        .unwrap();
        assert_well_formed(&d);
        assert_eq!(d.origin(d.root).unwrap().split.as_deref(), Some("generic"));
        assert_eq!(child_keys(&d, ""), ["implement", "test", "document"]);
        assert_eq!(deps(&d, "test"), ["implement"]);
        assert_eq!(deps(&d, "document"), ["test"]);
        assert_eq!(
            d.by_key("implement").unwrap().required_capabilities(),
            &caps(&[AgentCapability::Backend])
        );
        assert_eq!(
            d.by_key("test").unwrap().required_capabilities(),
            &caps(&[AgentCapability::Testing])
        );
        assert_eq!(
            d.by_key("document").unwrap().required_capabilities(),
            &caps(&[AgentCapability::Docs])
        );
    }

    #[test]
    fn recursion_decomposes_only_subtasks_above_the_threshold() {
        let d = decompose(&library(), PAYMENTS, &DecompositionOptions::default()).unwrap();
        assert_well_formed(&d);
        // Only `service` is complex (above moderate); it gets a generic split whose parts are
        // moderate or simpler, so the recursion stops there.
        for task in d.children(d.root) {
            let key = d.key_of(task.id());
            if key == "service" {
                assert_eq!(
                    child_keys(&d, key),
                    ["service/implement", "service/test", "service/document"]
                );
                assert!(d
                    .children(task.id())
                    .iter()
                    .all(|c| c.complexity() <= TaskComplexity::Moderate));
            } else {
                assert!(task.subtasks().is_empty(), "{key} was split");
            }
        }
        assert_eq!(d.tasks.len(), 9 + 3);
        assert_eq!(d.depth(), 2);
        assert_eq!(
            d.by_key("service/implement")
                .unwrap()
                .required_capabilities(),
            &caps(&[AgentCapability::Backend, AgentCapability::Database])
        );

        // With a higher threshold nothing below the root is split.
        let high = DecompositionOptions {
            threshold: TaskComplexity::Complex,
            ..DecompositionOptions::default()
        };
        let d = decompose(&library(), PAYMENTS, &high).unwrap();
        assert_eq!(d.depth(), 1);
        assert_eq!(d.tasks.len(), 9);
    }

    #[test]
    fn recursion_stops_at_max_depth() {
        let everything = |max_depth| DecompositionOptions {
            threshold: TaskComplexity::Trivial,
            max_depth,
            ..DecompositionOptions::default()
        };
        let depths: Vec<usize> = (1..=4)
            .map(|max_depth| {
                let d = decompose(&library(), PAYMENTS, &everything(max_depth)).unwrap();
                assert_well_formed(&d);
                d.depth()
            })
            .collect();
        // Every split lowers complexity a step, so below `trivial` nothing is left to split.
        assert_eq!(depths[0], 1);
        assert_eq!(depths[1], 2);
        assert_eq!(depths[2], 3);
        assert!(depths[3] <= 4);
        let d = decompose(&library(), PAYMENTS, &everything(2)).unwrap();
        for task in &d.tasks {
            if d.key_of(task.id()).matches('/').count() == 1 {
                assert!(task.subtasks().is_empty(), "split below max depth");
            }
        }
    }

    #[test]
    fn a_blank_or_oversized_requirement_is_rejected_naming_requirement() {
        for bad in [
            String::new(),
            "  \n\t ".to_owned(),
            "x".repeat(MAX_TEXT_CHARS + 1),
        ] {
            let err = decompose(&library(), &bad, &DecompositionOptions::default()).unwrap_err();
            let DecompositionError::Invalid(e) = err else {
                panic!("expected a validation error, got {err:?}");
            };
            assert_eq!(e.field, "requirement");
        }
    }

    #[test]
    fn bad_options_are_rejected_naming_the_field() {
        let err = decompose(
            &library(),
            PAYMENTS,
            &DecompositionOptions {
                max_depth: 0,
                ..DecompositionOptions::default()
            },
        )
        .unwrap_err();
        assert!(matches!(err, DecompositionError::Invalid(ref e) if e.field == "max_depth"));
        let err = decompose(
            &library(),
            PAYMENTS,
            &DecompositionOptions {
                template: Some("nope".into()),
                ..DecompositionOptions::default()
            },
        )
        .unwrap_err();
        assert!(matches!(err, DecompositionError::Invalid(ref e) if e.field == "template"));
    }

    #[test]
    fn a_forced_template_is_used_and_a_long_requirement_fits_the_title() {
        let long = format!("Harden {}", "the very long name ".repeat(30));
        let d = decompose(
            &library(),
            &long,
            &DecompositionOptions {
                template: Some("security_audit".into()),
                ..flat()
            },
        )
        .unwrap();
        assert_eq!(
            d.origin(d.root).unwrap().split.as_deref(),
            Some("security_audit")
        );
        assert!(d.root_task().title().as_str().chars().count() <= MAX_TITLE);
        assert!(d.root_task().title().as_str().ends_with('…'));
        assert_eq!(d.root_task().description(), long);
    }

    #[test]
    fn example_payments_decomposition() {
        let d = decompose(&library(), PAYMENTS, &DecompositionOptions::default()).unwrap();
        let rendered = d.render();
        println!("{rendered}");
        assert!(rendered.starts_with(PAYMENTS));
        assert!(rendered.contains("└── frontend: Build the user interface of the payments"));
    }
}
