//! List filters as WHERE terms; every value is bound, never spliced into the SQL.

use domain::{Cursor, PageRequest, SessionFilter, TaskFilter};

use super::driver::{Arg, Sql};

/// One condition of a list query; the terms of a query are joined with AND.
pub(crate) enum Term {
    /// SQL ending in an operator, followed by one bound value, e.g. `status = ` and `'running'`.
    Compare(&'static str, Arg),
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
        terms.push(Term::Compare("status = ", Arg::from(status.as_str())));
    }
    if let Some(agent) = &filter.agent {
        terms.push(Term::Compare("agent = ", Arg::from(agent.as_str())));
    }
    if let Some(task) = filter.parent_task {
        terms.push(Term::Compare("parent_task = ", Arg::from(task)));
    }
    if let Some(from) = filter.created_from {
        terms.push(Term::Compare("created_at >= ", Arg::from(from)));
    }
    if let Some(until) = filter.created_until {
        terms.push(Term::Compare("created_at < ", Arg::from(until)));
    }
    terms.extend(page.after.map(Term::Before));
    terms
}

/// Live tasks matching `filter`, after the page's cursor.
pub(crate) fn task_terms(filter: &TaskFilter, page: &PageRequest) -> Vec<Term> {
    let mut terms = vec![Term::Fixed("deleted_at IS NULL")];
    if let Some(status) = filter.status {
        terms.push(Term::Compare("status = ", Arg::from(status.as_str())));
    }
    match filter.parent {
        Some(parent) => terms.push(Term::Compare("parent_id = ", Arg::from(parent))),
        None if filter.roots_only => terms.push(Term::Fixed("parent_id IS NULL")),
        None => {}
    }
    terms.extend(page.after.map(Term::Before));
    terms
}

/// Appends ` WHERE t1 AND t2 …` to a list query.
pub(crate) fn push_where(sql: &mut Sql, terms: Vec<Term>) {
    for (i, term) in terms.into_iter().enumerate() {
        sql.push(if i == 0 { " WHERE " } else { " AND " });
        match term {
            Term::Compare(condition, value) => {
                sql.push(condition).push_bind(value);
            }
            Term::Fixed(condition) => {
                sql.push(condition);
            }
            Term::Before(cursor) => {
                sql.push("(created_at, id) < (")
                    .push_bind(cursor.created_at)
                    .push(", ")
                    .push_bind(cursor.id)
                    .push(")");
            }
        }
    }
}

/// One row more than the page holds, to learn whether there is a next page
/// (see [`domain::Page::from_overfetch`]).
pub(crate) fn fetch_limit(page: &PageRequest) -> i64 {
    i64::from(page.limit()) + 1
}
