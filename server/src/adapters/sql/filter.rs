//! List filters as backend-neutral WHERE terms. Each backend renders them with its own placeholders
//! and value encodings; every value is bound, never spliced into the SQL.

use chrono::{DateTime, Utc};
use domain::{Cursor, PageRequest, SessionFilter, TaskFilter};
use sqlx::{Database, QueryBuilder};
use uuid::Uuid;

/// A value to bind, before the backend encodes it.
pub(crate) enum Value {
    Text(String),
    Uuid(Uuid),
    Time(DateTime<Utc>),
}

/// One condition of a list query; the terms of a query are joined with AND.
pub(crate) enum Term {
    /// SQL ending in an operator, followed by one bound value, e.g. `status = ` and `'running'`.
    Compare(&'static str, Value),
    /// A condition without values, e.g. `parent_id IS NULL`.
    Fixed(&'static str),
    /// Strictly after `cursor` in newest-first order: `(created_at, id) < (cursor)`, which matches
    /// `ORDER BY created_at DESC, id DESC` and its index.
    Before(Cursor),
}

/// Live sessions matching `filter`, after the page's cursor.
pub(crate) fn session_terms(filter: &SessionFilter, page: &PageRequest) -> Vec<Term> {
    let mut terms = vec![Term::Fixed("deleted_at IS NULL")];
    if let Some(status) = filter.status {
        terms.push(Term::Compare(
            "status = ",
            Value::Text(status.as_str().to_owned()),
        ));
    }
    if let Some(agent) = &filter.agent {
        terms.push(Term::Compare(
            "agent = ",
            Value::Text(agent.as_str().to_owned()),
        ));
    }
    if let Some(task) = filter.parent_task {
        terms.push(Term::Compare("parent_task = ", Value::Uuid(task.as_uuid())));
    }
    if let Some(from) = filter.created_from {
        terms.push(Term::Compare("created_at >= ", Value::Time(from)));
    }
    if let Some(until) = filter.created_until {
        terms.push(Term::Compare("created_at < ", Value::Time(until)));
    }
    terms.extend(page.after.map(Term::Before));
    terms
}

/// Live tasks matching `filter`, after the page's cursor.
pub(crate) fn task_terms(filter: &TaskFilter, page: &PageRequest) -> Vec<Term> {
    let mut terms = vec![Term::Fixed("deleted_at IS NULL")];
    if let Some(status) = filter.status {
        terms.push(Term::Compare(
            "status = ",
            Value::Text(status.as_str().to_owned()),
        ));
    }
    match filter.parent {
        Some(parent) => terms.push(Term::Compare("parent_id = ", Value::Uuid(parent.as_uuid()))),
        None if filter.roots_only => terms.push(Term::Fixed("parent_id IS NULL")),
        None => {}
    }
    terms.extend(page.after.map(Term::Before));
    terms
}

/// Appends ` WHERE t1 AND t2 …` to a list query; `bind` pushes one value as the backend stores it.
pub(crate) fn push_where<'a, DB: Database>(
    query: &mut QueryBuilder<'a, DB>,
    terms: Vec<Term>,
    bind: fn(&mut QueryBuilder<'a, DB>, Value),
) {
    for (i, term) in terms.into_iter().enumerate() {
        query.push(if i == 0 { " WHERE " } else { " AND " });
        match term {
            Term::Compare(sql, value) => {
                query.push(sql);
                bind(query, value);
            }
            Term::Fixed(sql) => {
                query.push(sql);
            }
            Term::Before(cursor) => {
                query.push("(created_at, id) < (");
                bind(query, Value::Time(cursor.created_at));
                query.push(", ");
                bind(query, Value::Uuid(cursor.id));
                query.push(")");
            }
        }
    }
}

/// One row more than the page holds, to learn whether there is a next page
/// (see [`domain::Page::from_overfetch`]).
pub(crate) fn fetch_limit(page: &PageRequest) -> i64 {
    i64::from(page.limit()) + 1
}
