//! Keyword heuristics over a requirement's text: how complex it is, what capabilities it needs
//! and what it is about (its subject). Deliberately simple and deterministic.

use std::collections::BTreeSet;

use domain::{AgentCapability, TaskComplexity};

/// Named components: each distinct one found adds a point of complexity. Each entry is a
/// canonical component and the words that name it.
const COMPONENTS: &[(&str, &[&str])] = &[
    ("api", &["api", "rest", "graphql", "grpc", "http"]),
    ("endpoint", &["endpoint", "route", "handler", "webhook"]),
    ("service", &["service", "microservice", "server", "backend"]),
    (
        "database",
        &[
            "database",
            "db",
            "postgres",
            "postgresql",
            "sqlite",
            "mysql",
            "sql",
            "table",
        ],
    ),
    ("schema", &["schema", "model"]),
    (
        "ui",
        &[
            "ui",
            "frontend",
            "page",
            "screen",
            "form",
            "dashboard",
            "view",
        ],
    ),
    (
        "auth",
        &[
            "auth",
            "authentication",
            "authorization",
            "login",
            "oauth",
            "sso",
        ],
    ),
    ("queue", &["queue", "kafka", "rabbitmq", "worker", "job"]),
    ("cache", &["cache", "redis", "memcached"]),
    ("search", &["search", "index", "elasticsearch"]),
    ("notification", &["notification", "email", "sms"]),
    (
        "deploy",
        &[
            "deploy",
            "deployment",
            "docker",
            "kubernetes",
            "helm",
            "pipeline",
            "ci",
        ],
    ),
    ("test", &["test", "tests", "testing", "coverage"]),
    ("docs", &["docs", "documentation", "readme"]),
    (
        "integration",
        &["integration", "sdk", "client", "third-party"],
    ),
    ("storage", &["storage", "upload", "file", "s3", "bucket"]),
];

/// Risk words: each distinct one found adds two points of complexity.
const RISKS: &[(&str, &[&str])] = &[
    (
        "security",
        &["security", "secure", "vulnerability", "exploit"],
    ),
    (
        "migration",
        &["migration", "migrate", "upgrade", "backfill"],
    ),
    (
        "payment",
        &[
            "payment", "payments", "billing", "invoice", "checkout", "money",
        ],
    ),
    ("production", &["production", "prod", "live", "outage"]),
    (
        "concurrency",
        &[
            "concurrency",
            "concurrent",
            "parallel",
            "race",
            "lock",
            "distributed",
        ],
    ),
    (
        "encryption",
        &[
            "encryption",
            "encrypt",
            "crypto",
            "cryptography",
            "secret",
            "secrets",
        ],
    ),
    (
        "compliance",
        &["compliance", "gdpr", "hipaa", "pci", "sox", "audit"],
    ),
    (
        "data_loss",
        &["delete", "deletion", "purge", "irreversible"],
    ),
    (
        "realtime",
        &["realtime", "real-time", "latency", "websocket", "streaming"],
    ),
    (
        "scale",
        &["scale", "scalable", "scalability", "throughput", "sharding"],
    ),
];

/// Words that imply a capability.
const CAPABILITY_WORDS: &[(AgentCapability, &[&str])] = &[
    (
        AgentCapability::Backend,
        &[
            "api",
            "rest",
            "graphql",
            "grpc",
            "endpoint",
            "handler",
            "server",
            "service",
            "microservice",
            "backend",
            "webhook",
            "queue",
            "worker",
            "cache",
        ],
    ),
    (
        AgentCapability::Frontend,
        &[
            "ui",
            "frontend",
            "page",
            "screen",
            "form",
            "dashboard",
            "component",
            "css",
            "react",
            "button",
            "ux",
        ],
    ),
    (
        AgentCapability::Database,
        &[
            "database",
            "db",
            "schema",
            "sql",
            "postgres",
            "postgresql",
            "sqlite",
            "mysql",
            "migration",
            "table",
            "query",
        ],
    ),
    (
        AgentCapability::Security,
        &[
            "security",
            "auth",
            "authentication",
            "authorization",
            "login",
            "oauth",
            "encryption",
            "encrypt",
            "permission",
            "vulnerability",
            "audit",
            "secret",
            "secrets",
            "owasp",
            "pentest",
        ],
    ),
    (
        AgentCapability::Testing,
        &["test", "tests", "testing", "coverage", "qa", "regression"],
    ),
    (
        AgentCapability::Docs,
        &[
            "docs",
            "documentation",
            "document",
            "readme",
            "guide",
            "tutorial",
        ],
    ),
    (
        AgentCapability::Devops,
        &[
            "deploy",
            "deployment",
            "docker",
            "kubernetes",
            "helm",
            "ci",
            "pipeline",
            "infrastructure",
            "monitoring",
            "terraform",
        ],
    ),
    (
        AgentCapability::Refactor,
        &[
            "refactor",
            "refactoring",
            "cleanup",
            "restructure",
            "simplify",
            "rename",
        ],
    ),
];

/// Leading verbs and articles dropped when extracting a subject.
const LEADING: &[&str] = &[
    "build",
    "create",
    "implement",
    "add",
    "make",
    "write",
    "develop",
    "design",
    "set",
    "up",
    "audit",
    "review",
    "introduce",
    "support",
    "provide",
    "a",
    "an",
    "the",
    "new",
    "please",
];

/// Words at which a subject ends.
const SUBJECT_END: &[&str] = &[
    "with",
    "that",
    "which",
    "using",
    "for",
    "and",
    "to",
    "so",
    "where",
    "including",
    "via",
];

/// Longest subject, in words.
const MAX_SUBJECT_WORDS: usize = 8;

/// The lowercase words of `text`: runs of letters, digits, `-` and `_`.
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '-' || c == '_'))
        .map(|w| w.trim_matches(|c| c == '-' || c == '_').to_lowercase())
        .filter(|w| !w.is_empty())
        .collect()
}

/// Whether `word` is `keyword`, a plural of it (`-s`, `-es`, `-y` -> `-ies`), or (for keywords of five letters or more) an
/// inflection starting with it (`vulnerab-ilities`, `deploy-ment`).
fn word_matches(word: &str, keyword: &str) -> bool {
    word == keyword
        || keyword
            .strip_suffix('y')
            .is_some_and(|stem| word.strip_prefix(stem) == Some("ies"))
        || word.strip_prefix(keyword).is_some_and(|rest| {
            rest == "s" || rest == "es" || (keyword.len() >= 5 && rest.len() <= 5)
        })
}

/// Whether `keyword` (a word or a phrase of words) occurs in `words`.
pub fn contains_keyword(words: &[String], keyword: &str) -> bool {
    let parts: Vec<&str> = keyword.split_whitespace().collect();
    match parts.as_slice() {
        [] => false,
        [one] => words.iter().any(|w| word_matches(w, one)),
        many => words
            .windows(many.len())
            .any(|window| window.iter().zip(many).all(|(w, k)| word_matches(w, k))),
    }
}

fn found<'a>(words: &[String], table: &[(&'a str, &[&str])]) -> Vec<&'a str> {
    table
        .iter()
        .filter(|(_, names)| names.iter().any(|n| contains_keyword(words, n)))
        .map(|(canonical, _)| *canonical)
        .collect()
}

/// What the heuristics saw in a text, and the complexity they derive from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assessment {
    pub words: usize,
    /// Distinct named components, canonical names (`api`, `database`, `ui`, ...).
    pub components: Vec<&'static str>,
    /// Distinct risk areas (`payment`, `security`, `migration`, ...).
    pub risks: Vec<&'static str>,
    /// Size points + one per component (at most 6) + two per risk (at most 8).
    pub score: usize,
    pub complexity: TaskComplexity,
}

/// Scores `text`: its size in words, its named components and its risk words.
pub fn assess(text: &str) -> Assessment {
    let words = words(text);
    let size_points = match words.len() {
        0..=8 => 0,
        9..=25 => 1,
        26..=60 => 2,
        61..=150 => 3,
        _ => 4,
    };
    let components = found(&words, COMPONENTS);
    let risks = found(&words, RISKS);
    let score = size_points + components.len().min(6) + 2 * risks.len().min(4);
    let complexity = match score {
        0..=1 => TaskComplexity::Trivial,
        2..=3 => TaskComplexity::Simple,
        4..=5 => TaskComplexity::Moderate,
        6..=8 => TaskComplexity::Complex,
        _ => TaskComplexity::VeryComplex,
    };
    Assessment {
        words: words.len(),
        components,
        risks,
        score,
        complexity,
    }
}

/// The estimated complexity of `text` (see [`assess`]).
pub fn estimate_complexity(text: &str) -> TaskComplexity {
    assess(text).complexity
}

/// The capabilities `text`'s keywords call for; empty when none is named.
pub fn capabilities(text: &str) -> BTreeSet<AgentCapability> {
    let words = words(text);
    CAPABILITY_WORDS
        .iter()
        .filter(|(_, names)| names.iter().any(|n| contains_keyword(&words, n)))
        .map(|(capability, _)| *capability)
        .collect()
}

/// What the requirement is about, for `{subject}` in template titles: the first phrase after a
/// leading verb and article, up to a connecting word or punctuation ("Build a payments
/// microservice with ..." -> "payments microservice"). Falls back to the first few words.
pub fn subject(text: &str) -> String {
    let first_clause = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default()
        .split(['.', ',', ';', ':', '(', '!', '?'])
        .next()
        .unwrap_or_default();
    let tokens: Vec<&str> = first_clause.split_whitespace().collect();
    let start = tokens
        .iter()
        .position(|t| !LEADING.contains(&t.to_lowercase().as_str()))
        .unwrap_or(tokens.len());
    let subject: Vec<&str> = tokens[start..]
        .iter()
        .take_while(|t| !SUBJECT_END.contains(&t.to_lowercase().as_str()))
        .take(MAX_SUBJECT_WORDS)
        .copied()
        .collect();
    if subject.is_empty() {
        let fallback: Vec<&str> = text.split_whitespace().take(MAX_SUBJECT_WORDS).collect();
        return fallback.join(" ");
    }
    let mut subject = subject.join(" ");
    // "Build a payments microservice" -> "the payments microservice" reads well in titles.
    subject.insert_str(0, "the ");
    subject
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE_LINER: &str = "Fix a typo in the README";
    const BIG: &str = "Migrate the production payments service to a new Postgres schema with \
        encryption at rest, add an API endpoint for refunds, a queue for retries, a cache, \
        an admin UI page, tests and deployment, keeping PCI compliance and handling \
        concurrency between workers.";

    #[test]
    fn a_one_liner_is_simpler_than_a_multi_component_risky_requirement() {
        let small = assess(ONE_LINER);
        let big = assess(BIG);
        assert!(small.complexity <= TaskComplexity::Simple, "{small:?}");
        assert_eq!(big.complexity, TaskComplexity::VeryComplex, "{big:?}");
        assert!(small.complexity < big.complexity);
        assert!(big.risks.contains(&"payment") && big.risks.contains(&"migration"));
        assert!(big.components.contains(&"api") && big.components.contains(&"ui"));
    }

    #[test]
    fn complexity_grows_with_components_and_risk() {
        let one = estimate_complexity("Add an endpoint");
        let several =
            estimate_complexity("Add an API endpoint with a database table and a UI page");
        let risky = estimate_complexity(
            "Add an API endpoint with a database table and a UI page for payments in production",
        );
        assert!(one < several, "{one} < {several}");
        assert!(several < risky, "{several} < {risky}");
    }

    #[test]
    fn capabilities_follow_keywords() {
        assert_eq!(
            capabilities("Add a REST API over the Postgres schema and an admin UI"),
            BTreeSet::from([
                AgentCapability::Backend,
                AgentCapability::Frontend,
                AgentCapability::Database
            ])
        );
        assert_eq!(
            capabilities("Refactor the login code and add tests and docs"),
            BTreeSet::from([
                AgentCapability::Security,
                AgentCapability::Testing,
                AgentCapability::Docs,
                AgentCapability::Refactor
            ])
        );
        assert!(capabilities("Think about it").is_empty());
    }

    #[test]
    fn keywords_match_plurals_inflections_and_phrases() {
        let w = words("Fix vulnerabilities in the deployment of the REST APIs");
        assert!(contains_keyword(&w, "vulnerability"));
        assert!(contains_keyword(&w, "deploy"));
        assert!(contains_keyword(&w, "api"));
        assert!(contains_keyword(&w, "rest api"));
        assert!(!contains_keyword(&w, "ui"));
    }

    #[test]
    fn subject_is_the_first_noun_phrase() {
        assert_eq!(
            subject("Build a payments microservice with a REST API"),
            "the payments microservice"
        );
        assert_eq!(
            subject("Audit the login flow for vulnerabilities"),
            "the login flow"
        );
        assert_eq!(subject("Build with care"), "Build with care");
    }
}
