//! How lists are asked for and returned: filters, keyset pagination cursors and pages. Shared by the
//! UI (which builds filters from forms) and the server (whose stores answer them).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::agent::AgentName;
use crate::ids::TaskId;
use crate::session::SessionStatus;
use crate::task::TaskStatus;
use crate::validation::ValidationError;

/// The most items one page may hold.
pub const MAX_PAGE_SIZE: u32 = 500;
/// The page size when none is asked for.
pub const DEFAULT_PAGE_SIZE: u32 = 50;

/// Which sessions to list. Every set field narrows the list; soft-deleted sessions never appear.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionFilter {
    /// Only sessions in this status.
    pub status: Option<SessionStatus>,
    /// Only sessions run by this agent.
    pub agent: Option<AgentName>,
    /// Only sessions working on this task.
    pub parent_task: Option<TaskId>,
    /// Created at or after this instant.
    pub created_from: Option<DateTime<Utc>>,
    /// Created strictly before this instant.
    pub created_until: Option<DateTime<Utc>>,
}

/// Which tasks to list.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskFilter {
    /// Only tasks in this status.
    pub status: Option<TaskStatus>,
    /// Only the direct subtasks of this task.
    pub parent: Option<TaskId>,
    /// Only tasks without a parent (ignored when `parent` is set).
    pub roots_only: bool,
}

/// A position in a newest-first list: the last item seen. The next page starts strictly after it.
/// Stable under concurrent inserts, unlike an offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// Creation time of the last item seen.
    pub created_at: DateTime<Utc>,
    /// Id of the last item seen (breaks ties between equal creation times).
    pub id: Uuid,
}

impl Cursor {
    /// The cursor just past the item created at `created_at` with `id`.
    pub fn new(created_at: DateTime<Utc>, id: Uuid) -> Self {
        Self { created_at, id }
    }
}

/// Text form `<microseconds since the epoch>.<uuid>`: opaque to clients, safe in a URL.
impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}",
            self.created_at.timestamp_micros(),
            self.id.simple()
        )
    }
}

impl FromStr for Cursor {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ValidationError::new("cursor", format!("`{s}` is not a page cursor"));
        let (micros, id) = s.split_once('.').ok_or_else(bad)?;
        let micros: i64 = micros.parse().map_err(|_| bad())?;
        let created_at = Utc.timestamp_micros(micros).single().ok_or_else(bad)?;
        let id = Uuid::parse_str(id).map_err(|_| bad())?;
        Ok(Self { created_at, id })
    }
}

/// How much of a list to return, and from where.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageRequest {
    limit: u32,
    /// Start strictly after this item; `None` for the first page.
    pub after: Option<Cursor>,
}

impl PageRequest {
    /// A page of `limit` items (1..=[`MAX_PAGE_SIZE`]) after `after`, or from the start.
    pub fn new(limit: u32, after: Option<Cursor>) -> Result<Self, ValidationError> {
        if limit == 0 || limit > MAX_PAGE_SIZE {
            return Err(ValidationError::new(
                "limit",
                format!("must be between 1 and {MAX_PAGE_SIZE}, got {limit}"),
            ));
        }
        Ok(Self { limit, after })
    }

    /// The first page of `limit` items.
    pub fn first(limit: u32) -> Result<Self, ValidationError> {
        Self::new(limit, None)
    }

    /// How many items the page may hold.
    pub fn limit(&self) -> u32 {
        self.limit
    }
}

impl Default for PageRequest {
    fn default() -> Self {
        Self {
            limit: DEFAULT_PAGE_SIZE,
            after: None,
        }
    }
}

/// One page of a list, and where the next one starts (`None` on the last page).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page<T> {
    /// The items, in list order.
    pub items: Vec<T>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<Cursor>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` rows fetched in list order: the extra row, if any,
    /// only proves there is a next page. `key` gives an item's cursor.
    pub fn from_overfetch(mut rows: Vec<T>, limit: u32, key: impl Fn(&T) -> Cursor) -> Self {
        let limit = limit as usize;
        let next = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(key)
        } else {
            None
        };
        Self { items: rows, next }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_text_round_trips() {
        let c = Cursor::new(
            Utc.timestamp_micros(1_764_000_000_123_456).unwrap(),
            Uuid::from_u128(0x1234),
        );
        let text = c.to_string();
        assert_eq!(text.parse::<Cursor>().unwrap(), c);
        assert!(!text.contains('/') && !text.contains('&'));
    }

    #[test]
    fn malformed_cursor_names_the_field() {
        for bad in [
            "",
            "x",
            "12.notauuid",
            "abc.00000000000000000000000000001234",
        ] {
            let err = bad.parse::<Cursor>().unwrap_err();
            assert_eq!(err.field, "cursor", "{bad}");
        }
    }

    #[test]
    fn page_size_is_bounded() {
        assert_eq!(PageRequest::first(0).unwrap_err().field, "limit");
        assert_eq!(
            PageRequest::first(MAX_PAGE_SIZE + 1).unwrap_err().field,
            "limit"
        );
        assert_eq!(
            PageRequest::first(MAX_PAGE_SIZE).unwrap().limit(),
            MAX_PAGE_SIZE
        );
    }

    #[test]
    fn overfetched_rows_make_a_next_cursor_only_when_there_are_more() {
        let key = |n: &u128| Cursor::new(Utc.timestamp_micros(0).unwrap(), Uuid::from_u128(*n));
        let page = Page::from_overfetch(vec![5, 4, 3], 2, key);
        assert_eq!(page.items, vec![5, 4]);
        assert_eq!(page.next.unwrap().id, Uuid::from_u128(4));
        let last = Page::from_overfetch(vec![2, 1], 2, key);
        assert_eq!(last.items, vec![2, 1]);
        assert!(last.next.is_none());
    }
}
