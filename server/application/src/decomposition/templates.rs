//! Decomposition templates: data files (JSON) describing how a kind of requirement splits into
//! subtasks. Three are compiled in from `server/templates/decomposition/`; more can be added, or
//! the built-in ones overridden by name, with [`TemplateLibrary::load_dir`].
//!
//! A template file:
//!
//! ```json
//! {
//!   "name": "crud",
//!   "description": "What kind of requirement it fits.",
//!   "keywords": ["crud", "admin"],
//!   "subtasks": [
//!     { "key": "model", "title": "Define the model of {subject}", "description": "...",
//!       "complexity": "simple", "capabilities": ["database"], "depends_on": [] }
//!   ]
//! }
//! ```
//!
//! `{subject}` in a title or description is replaced by the subject of the requirement.
//! Loading checks everything a decomposition relies on, so a loaded template always instantiates.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use domain::{AgentCapability, TaskComplexity};
use serde::Deserialize;

use super::heuristics;

/// The placeholder replaced by the requirement's subject.
pub const SUBJECT_PLACEHOLDER: &str = "{subject}";

/// Most subtasks one template may declare.
pub const MAX_TEMPLATE_SUBTASKS: usize = 50;

const BUILTIN: [(&str, &str); 3] = [
    (
        "microservice.json",
        include_str!("../../../templates/decomposition/microservice.json"),
    ),
    (
        "crud.json",
        include_str!("../../../templates/decomposition/crud.json"),
    ),
    (
        "security_audit.json",
        include_str!("../../../templates/decomposition/security_audit.json"),
    ),
];

/// A template that could not be read or broke a rule. Every variant names the template file.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("template {file}: cannot read: {error}")]
    Io {
        file: String,
        #[source]
        error: std::io::Error,
    },
    #[error("template {file}: not a valid template document: {message}")]
    Parse { file: String, message: String },
    #[error("template {file}: invalid {field}: {message}")]
    Invalid {
        file: String,
        /// The offending field, e.g. `subtasks[2].capabilities[0]`.
        field: String,
        message: String,
    },
    #[error("template {file}: invalid subtasks: dependency cycle {}", cycle.join(" -> "))]
    Cycle {
        file: String,
        /// The subtask keys forming the cycle, each depending on the next; the first is repeated
        /// at the end.
        cycle: Vec<String>,
    },
}

impl TemplateError {
    /// The offending field, for [`TemplateError::Invalid`] (`subtasks` for a cycle).
    pub fn field(&self) -> Option<&str> {
        match self {
            TemplateError::Invalid { field, .. } => Some(field),
            TemplateError::Cycle { .. } => Some("subtasks"),
            _ => None,
        }
    }
}

/// One subtask of a [`Template`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubtaskTemplate {
    /// Unique within the template; what `depends_on` refers to.
    pub key: String,
    /// May contain `{subject}`.
    pub title: String,
    /// May contain `{subject}`.
    pub description: String,
    pub complexity: TaskComplexity,
    pub capabilities: BTreeSet<AgentCapability>,
    /// Keys of sibling subtasks that must complete first.
    pub depends_on: Vec<String>,
}

/// A validated template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    pub name: String,
    pub description: String,
    /// Lowercase words (or phrases) whose presence in a requirement selects this template.
    pub keywords: Vec<String>,
    /// In declaration order, which is the order of the generated subtasks.
    pub subtasks: Vec<SubtaskTemplate>,
}

impl Template {
    /// Parses and validates one template document; `file` names it in errors.
    pub fn parse(file: &str, json: &str) -> Result<Template, TemplateError> {
        let raw: RawTemplate = serde_json::from_str(json).map_err(|e| TemplateError::Parse {
            file: file.to_owned(),
            message: e.to_string(),
        })?;
        raw.validate(file)
    }

    /// How many of the keywords occur in `text` (each counted once).
    pub fn score(&self, text: &str) -> usize {
        let words = heuristics::words(text);
        self.keywords
            .iter()
            .filter(|k| heuristics::contains_keyword(&words, k))
            .count()
    }

    pub fn subtask(&self, key: &str) -> Option<&SubtaskTemplate> {
        self.subtasks.iter().find(|s| s.key == key)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTemplate {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    keywords: Vec<String>,
    subtasks: Vec<RawSubtask>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSubtask {
    key: String,
    title: String,
    #[serde(default)]
    description: String,
    complexity: String,
    #[serde(default)]
    capabilities: Vec<String>,
    #[serde(default)]
    depends_on: Vec<String>,
}

impl RawTemplate {
    fn validate(self, file: &str) -> Result<Template, TemplateError> {
        let invalid = |field: String, message: String| TemplateError::Invalid {
            file: file.to_owned(),
            field,
            message,
        };
        let name = self.name.trim().to_owned();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-".contains(c))
        {
            return Err(invalid(
                "name".into(),
                format!(
                    "`{}` must be non-empty letters, digits, `_` or `-`",
                    self.name
                ),
            ));
        }
        let mut keywords = Vec::new();
        for (i, keyword) in self.keywords.iter().enumerate() {
            let normalized = heuristics::words(keyword).join(" ");
            if normalized.is_empty() {
                return Err(invalid(
                    format!("keywords[{i}]"),
                    "must contain a letter or digit".into(),
                ));
            }
            if !keywords.contains(&normalized) {
                keywords.push(normalized);
            }
        }
        if self.subtasks.is_empty() {
            return Err(invalid(
                "subtasks".into(),
                "must declare at least one subtask".into(),
            ));
        }
        if self.subtasks.len() > MAX_TEMPLATE_SUBTASKS {
            return Err(invalid(
                "subtasks".into(),
                format!(
                    "must declare at most {MAX_TEMPLATE_SUBTASKS} subtasks (got {})",
                    self.subtasks.len()
                ),
            ));
        }
        let mut subtasks: Vec<SubtaskTemplate> = Vec::with_capacity(self.subtasks.len());
        for (i, raw) in self.subtasks.into_iter().enumerate() {
            let at = |f: &str| format!("subtasks[{i}].{f}");
            let key = raw.key.trim().to_owned();
            if key.is_empty() {
                return Err(invalid(at("key"), "must not be empty".into()));
            }
            if subtasks.iter().any(|s| s.key == key) {
                return Err(invalid(at("key"), format!("duplicate key `{key}`")));
            }
            // The title must stay a valid task title once the subject is filled in.
            if let Err(e) = domain::TaskTitle::new(raw.title.replace(SUBJECT_PLACEHOLDER, "x")) {
                return Err(invalid(at("title"), e.message));
            }
            let complexity = raw
                .complexity
                .parse::<TaskComplexity>()
                .map_err(|e| invalid(at("complexity"), e.to_string()))?;
            let mut capabilities = BTreeSet::new();
            for (j, name) in raw.capabilities.iter().enumerate() {
                let capability = name
                    .parse::<AgentCapability>()
                    .map_err(|e| invalid(at(&format!("capabilities[{j}]")), e.to_string()))?;
                capabilities.insert(capability);
            }
            let mut depends_on: Vec<String> = Vec::new();
            for dependency in &raw.depends_on {
                let dependency = dependency.trim().to_owned();
                if dependency == key {
                    return Err(invalid(
                        at("depends_on"),
                        format!("`{key}` cannot depend on itself"),
                    ));
                }
                if !depends_on.contains(&dependency) {
                    depends_on.push(dependency);
                }
            }
            subtasks.push(SubtaskTemplate {
                key,
                title: raw.title.trim().to_owned(),
                description: raw.description,
                complexity,
                capabilities,
                depends_on,
            });
        }
        for (i, subtask) in subtasks.iter().enumerate() {
            if let Some(unknown) = subtask
                .depends_on
                .iter()
                .find(|d| !subtasks.iter().any(|s| &s.key == *d))
            {
                return Err(invalid(
                    format!("subtasks[{i}].depends_on"),
                    format!("unknown subtask key `{unknown}`"),
                ));
            }
        }
        if let Some(cycle) = find_cycle(&subtasks) {
            return Err(TemplateError::Cycle {
                file: file.to_owned(),
                cycle,
            });
        }
        Ok(Template {
            name,
            description: self.description,
            keywords,
            subtasks,
        })
    }
}

/// A dependency cycle among the subtask keys, if there is one (depth-first search).
fn find_cycle(subtasks: &[SubtaskTemplate]) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnPath,
        Done,
    }
    let index: BTreeMap<&str, usize> = subtasks
        .iter()
        .enumerate()
        .map(|(i, s)| (s.key.as_str(), i))
        .collect();
    let mut marks = vec![Mark::New; subtasks.len()];
    fn visit(
        i: usize,
        subtasks: &[SubtaskTemplate],
        index: &BTreeMap<&str, usize>,
        marks: &mut [Mark],
        path: &mut Vec<usize>,
    ) -> Option<Vec<String>> {
        marks[i] = Mark::OnPath;
        path.push(i);
        for dependency in &subtasks[i].depends_on {
            let d = index[dependency.as_str()];
            match marks[d] {
                Mark::OnPath => {
                    let start = path.iter().position(|&p| p == d).unwrap_or_default();
                    let mut cycle: Vec<String> = path[start..]
                        .iter()
                        .map(|&p| subtasks[p].key.clone())
                        .collect();
                    cycle.push(subtasks[d].key.clone());
                    return Some(cycle);
                }
                Mark::New => {
                    if let Some(cycle) = visit(d, subtasks, index, marks, path) {
                        return Some(cycle);
                    }
                }
                Mark::Done => {}
            }
        }
        path.pop();
        marks[i] = Mark::Done;
        None
    }
    let mut path = Vec::new();
    (0..subtasks.len()).find_map(|i| {
        if marks[i] == Mark::New {
            visit(i, subtasks, &index, &mut marks, &mut path)
        } else {
            None
        }
    })
}

/// The templates a decomposition may choose from, by name.
#[derive(Clone, Debug, Default)]
pub struct TemplateLibrary {
    templates: BTreeMap<String, Template>,
}

impl TemplateLibrary {
    /// No templates: every requirement gets the generic split.
    pub fn empty() -> Self {
        Self::default()
    }

    /// The compiled-in templates: `microservice`, `crud` and `security_audit`.
    pub fn builtin() -> Self {
        let mut library = Self::empty();
        for (file, json) in BUILTIN {
            let template = Template::parse(file, json)
                .unwrap_or_else(|e| panic!("built-in decomposition template is invalid: {e}"));
            library.insert(template);
        }
        library
    }

    /// Adds a template, replacing one of the same name; returns the replaced one.
    pub fn insert(&mut self, template: Template) -> Option<Template> {
        self.templates.insert(template.name.clone(), template)
    }

    /// Parses and adds one template document (`file` names it in errors).
    pub fn load_str(&mut self, file: &str, json: &str) -> Result<&Template, TemplateError> {
        let template = Template::parse(file, json)?;
        let name = template.name.clone();
        self.insert(template);
        Ok(&self.templates[&name])
    }

    /// Adds (or overrides by name) every `*.json` template in `dir`, in file-name order. All
    /// files are validated before any is added: on error the library is unchanged. Returns the
    /// names of the templates loaded.
    pub fn load_dir(&mut self, dir: impl AsRef<Path>) -> Result<Vec<String>, TemplateError> {
        let dir = dir.as_ref();
        let io = |path: &Path, error| TemplateError::Io {
            file: path.display().to_string(),
            error,
        };
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| io(dir, e))? {
            let path = entry.map_err(|e| io(dir, e))?.path();
            if path.is_file() && path.extension().is_some_and(|e| e == "json") {
                files.push(path);
            }
        }
        files.sort();
        let mut loaded = Vec::with_capacity(files.len());
        for path in &files {
            let json = std::fs::read_to_string(path).map_err(|e| io(path, e))?;
            loaded.push(Template::parse(&path.display().to_string(), &json)?);
        }
        let names = loaded.iter().map(|t| t.name.clone()).collect();
        for template in loaded {
            self.insert(template);
        }
        Ok(names)
    }

    pub fn get(&self, name: &str) -> Option<&Template> {
        self.templates.get(name)
    }

    /// Every template, by name.
    pub fn templates(&self) -> impl Iterator<Item = &Template> {
        self.templates.values()
    }

    pub fn len(&self) -> usize {
        self.templates.len()
    }

    pub fn is_empty(&self) -> bool {
        self.templates.is_empty()
    }

    /// The template whose keywords best match `text`, if it matches at least `threshold` of them
    /// (ties go to the first name in order). Templates named in `exclude` are skipped.
    pub fn choose(&self, text: &str, threshold: usize, exclude: &[String]) -> Option<&Template> {
        let mut best: Option<(&Template, usize)> = None;
        for template in self.templates.values() {
            if exclude.contains(&template.name) {
                continue;
            }
            let score = template.score(text);
            if score >= threshold.max(1) && best.is_none_or(|(_, b)| score > b) {
                best = Some((template, score));
            }
        }
        best.map(|(t, _)| t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template_json(subtasks: &str) -> String {
        format!(
            r#"{{"name": "t", "description": "d", "keywords": ["x"], "subtasks": [{subtasks}]}}"#
        )
    }

    fn subtask(key: &str, deps: &[&str], capability: &str) -> String {
        let deps: Vec<String> = deps.iter().map(|d| format!("\"{d}\"")).collect();
        format!(
            r#"{{"key": "{key}", "title": "Do {key} for {{subject}}", "complexity": "simple",
                "capabilities": ["{capability}"], "depends_on": [{}]}}"#,
            deps.join(", ")
        )
    }

    #[test]
    fn builtin_templates_load() {
        let library = TemplateLibrary::builtin();
        let names: Vec<_> = library.templates().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["crud", "microservice", "security_audit"]);
    }

    #[test]
    fn a_cycle_is_rejected_naming_its_keys() {
        let json = template_json(
            &[
                subtask("a", &[], "backend"),
                subtask("b", &["a", "d"], "backend"),
                subtask("c", &["b"], "backend"),
                subtask("d", &["c"], "backend"),
            ]
            .join(","),
        );
        let err = Template::parse("loop.json", &json).unwrap_err();
        let TemplateError::Cycle {
            ref file,
            ref cycle,
        } = err
        else {
            panic!("expected a cycle, got {err:?}");
        };
        assert_eq!(file, "loop.json");
        assert_eq!(cycle, &["b", "d", "c", "b"]);
        let message = err.to_string();
        assert!(message.contains("loop.json"), "{message}");
        assert!(message.contains("b -> d -> c -> b"), "{message}");
    }

    #[test]
    fn a_bad_capability_is_rejected_naming_the_field() {
        let json = template_json(
            &[
                subtask("a", &[], "backend"),
                subtask("b", &["a"], "wizardry"),
            ]
            .join(","),
        );
        let err = Template::parse("bad.json", &json).unwrap_err();
        assert_eq!(err.field(), Some("subtasks[1].capabilities[0]"));
        let message = err.to_string();
        assert!(message.contains("bad.json"), "{message}");
        assert!(message.contains("`wizardry`"), "{message}");
    }

    #[test]
    fn bad_complexity_keys_and_references_are_rejected_naming_the_field() {
        let bad_complexity = template_json(r#"{"key": "a", "title": "A", "complexity": "huge"}"#);
        let err = Template::parse("c.json", &bad_complexity).unwrap_err();
        assert_eq!(err.field(), Some("subtasks[0].complexity"));

        let duplicate =
            template_json(&[subtask("a", &[], "docs"), subtask("a", &[], "docs")].join(","));
        let err = Template::parse("d.json", &duplicate).unwrap_err();
        assert_eq!(err.field(), Some("subtasks[1].key"));
        assert!(err.to_string().contains("duplicate key `a`"), "{err}");

        let unknown = template_json(&subtask("a", &["ghost"], "docs"));
        let err = Template::parse("u.json", &unknown).unwrap_err();
        assert_eq!(err.field(), Some("subtasks[0].depends_on"));
        assert!(err.to_string().contains("`ghost`"), "{err}");

        let err = Template::parse("e.json", &template_json("")).unwrap_err();
        assert_eq!(err.field(), Some("subtasks"));

        let err = Template::parse("j.json", "{\"name\": \"t\"}").unwrap_err();
        assert!(matches!(err, TemplateError::Parse { .. }), "{err:?}");
        assert!(err.to_string().contains("j.json"), "{err}");
    }

    #[test]
    fn load_dir_adds_and_overrides_and_is_all_or_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let extra = r#"{"name": "migration", "keywords": ["migrate", "upgrade"],
            "subtasks": [{"key": "plan", "title": "Plan the migration of {subject}",
                          "complexity": "moderate", "capabilities": ["database"]}]}"#;
        std::fs::write(dir.path().join("migration.json"), extra).unwrap();
        let crud = r#"{"name": "crud", "keywords": ["crud"],
            "subtasks": [{"key": "all", "title": "Do it", "complexity": "simple"}]}"#;
        std::fs::write(dir.path().join("crud.json"), crud).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();

        let mut library = TemplateLibrary::builtin();
        let names = library.load_dir(dir.path()).unwrap();
        assert_eq!(names, ["crud", "migration"]);
        assert_eq!(library.len(), 4);
        assert_eq!(library.get("crud").unwrap().subtasks.len(), 1);

        std::fs::write(dir.path().join("zzz.json"), "{").unwrap();
        let mut fresh = TemplateLibrary::builtin();
        let err = fresh.load_dir(dir.path()).unwrap_err();
        assert!(err.to_string().contains("zzz.json"), "{err}");
        assert_eq!(fresh.len(), 3);
        assert_eq!(fresh.get("crud").unwrap().subtasks.len(), 6);
    }
}
