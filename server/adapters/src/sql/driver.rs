//! The one place that knows both database drivers. Every statement is written once, with `$n`
//! placeholders (sqlx's SQLite driver binds `$n` by number, as PostgreSQL does); its arguments are
//! plain values ([`Arg`]) that each driver encodes in its own storage format, and its rows are read
//! through [`Columns`] whatever the backend.
//!
//! Why values instead of sqlx's generic `Database` bounds: a function generic over the driver needs
//! a dozen higher-ranked `Encode`/`Decode`/`Executor` bounds repeated at every call site, while
//! the two storage formats differ only in how an id, a time or a JSON document is encoded. So the
//! encoding is data, decided here, and the repositories are ordinary functions.
//!
//! Storage formats:
//! - SQLite: uuids as hyphenated lowercase text (text order is uuid byte order), times as
//!   fixed-width RFC 3339 text in UTC with microseconds (text order is time order, and they round-
//!   trip exactly at the precision PostgreSQL keeps), JSON as text, booleans as 0/1.
//! - PostgreSQL: the native UUID, TIMESTAMPTZ, JSONB, BOOLEAN and BIGINT.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;
use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::{PgPool, Postgres, Sqlite, SqlitePool, Transaction};
use uuid::Uuid;

use super::decode::Columns;
use oio_application::ports::RepositoryError;

/// One argument of a statement, before a driver encodes it. Nulls are typed: PostgreSQL checks a
/// parameter's type even when its value is NULL.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Arg {
    Text(Option<String>),
    Int(Option<i64>),
    Bool(bool),
    Uuid(Option<Uuid>),
    Time(Option<DateTime<Utc>>),
    Json(Option<serde_json::Value>),
    /// A list expanded by [`Backend::id_rows`] or [`Backend::any_of`].
    Uuids(Vec<Uuid>),
    /// A list expanded by [`Backend::any_of`].
    Texts(Vec<String>),
    /// A list expanded by [`Backend::any_of`].
    Ints(Vec<i64>),
}

impl Arg {
    /// A JSON document; a value that does not serialise is out of range for the column.
    pub(crate) fn json(value: &impl Serialize, what: &str) -> Result<Self, RepositoryError> {
        serde_json::to_value(value)
            .map(|v| Self::Json(Some(v)))
            .map_err(|e| RepositoryError::OutOfRange(format!("{what}: {e}")))
    }

    /// An optional JSON document (NULL for `None`).
    pub(crate) fn opt_json<T: Serialize>(
        value: Option<&T>,
        what: &str,
    ) -> Result<Self, RepositoryError> {
        match value {
            Some(v) => Self::json(v, what),
            None => Ok(Self::Json(None)),
        }
    }

    /// A counter: u64 in the domain, BIGINT (i64) in SQL; values past i64::MAX are refused rather
    /// than wrapped.
    pub(crate) fn count(value: u64) -> Result<Self, RepositoryError> {
        i64::try_from(value)
            .map(|v| Self::Int(Some(v)))
            .map_err(|_| RepositoryError::OutOfRange(format!("{value} exceeds BIGINT")))
    }
}

macro_rules! arg_from {
    ($($ty:ty => |$v:ident| $make:expr;)*) => {
        $(impl From<$ty> for Arg {
            fn from($v: $ty) -> Self {
                $make
            }
        })*
    };
}

arg_from! {
    &str => |v| Self::Text(Some(v.to_owned()));
    String => |v| Self::Text(Some(v));
    &String => |v| Self::Text(Some(v.clone()));
    Option<String> => |v| Self::Text(v);
    Option<&str> => |v| Self::Text(v.map(str::to_owned));
    &Option<String> => |v| Self::Text(v.clone());
    i64 => |v| Self::Int(Some(v));
    i32 => |v| Self::Int(Some(i64::from(v)));
    u32 => |v| Self::Int(Some(i64::from(v)));
    bool => |v| Self::Bool(v);
    Uuid => |v| Self::Uuid(Some(v));
    Option<Uuid> => |v| Self::Uuid(v);
    DateTime<Utc> => |v| Self::Time(Some(v));
    Option<DateTime<Utc>> => |v| Self::Time(v);
    domain::SessionId => |v| Self::Uuid(Some(v.as_uuid()));
    Option<domain::SessionId> => |v| Self::Uuid(v.map(|id| id.as_uuid()));
    domain::TaskId => |v| Self::Uuid(Some(v.as_uuid()));
    Option<domain::TaskId> => |v| Self::Uuid(v.map(|id| id.as_uuid()));
    domain::AgentId => |v| Self::Uuid(Some(v.as_uuid()));
    domain::InboxItemId => |v| Self::Uuid(Some(v.as_uuid()));
    Vec<Uuid> => |v| Self::Uuids(v);
    Vec<String> => |v| Self::Texts(v);
    Vec<i64> => |v| Self::Ints(v);
}

/// A statement: SQL text with `$1…$n` placeholders and the values they stand for.
#[derive(Debug, Clone)]
pub(crate) struct Sql {
    text: Cow<'static, str>,
    args: Vec<Arg>,
}

impl Sql {
    pub(crate) fn new(text: impl Into<Cow<'static, str>>) -> Self {
        Self {
            text: text.into(),
            args: Vec::new(),
        }
    }

    /// Supplies the next placeholder's value (`$1` first).
    pub(crate) fn bind(mut self, arg: impl Into<Arg>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Appends SQL text to a statement being built.
    pub(crate) fn push(&mut self, text: &str) -> &mut Self {
        self.text.to_mut().push_str(text);
        self
    }

    /// Appends a placeholder for `arg`, numbered after those already bound.
    pub(crate) fn push_bind(&mut self, arg: impl Into<Arg>) -> &mut Self {
        self.args.push(arg.into());
        let n = self.args.len();
        self.text.to_mut().push_str(&format!("${n}"));
        self
    }

    fn for_sqlite(&self) -> Query<'_, Sqlite, SqliteArguments<'_>> {
        let mut query = sqlx::query(&self.text);
        for arg in &self.args {
            query = match arg {
                Arg::Text(v) => query.bind(v.as_deref()),
                Arg::Int(v) => query.bind(*v),
                Arg::Bool(v) => query.bind(*v),
                Arg::Uuid(v) => query.bind(v.map(|id| id.to_string())),
                Arg::Time(v) => query.bind(v.map(sqlite_time)),
                Arg::Json(v) => query.bind(v.as_ref().map(|j| j.to_string())),
                Arg::Uuids(v) => query.bind(json_array(v.iter().map(|id| id.to_string()))),
                Arg::Texts(v) => query.bind(json_array(v.iter().cloned())),
                Arg::Ints(v) => query.bind(serde_json::Value::from(v.clone()).to_string()),
            };
        }
        query
    }

    fn for_postgres(&self) -> Query<'_, Postgres, PgArguments> {
        let mut query = sqlx::query(&self.text);
        for arg in &self.args {
            query = match arg {
                Arg::Text(v) => query.bind(v.as_deref()),
                Arg::Int(v) => query.bind(*v),
                Arg::Bool(v) => query.bind(*v),
                Arg::Uuid(v) => query.bind(*v),
                Arg::Time(v) => query.bind(*v),
                Arg::Json(v) => query.bind(v.as_ref().map(sqlx::types::Json)),
                Arg::Uuids(v) => query.bind(v.as_slice()),
                Arg::Texts(v) => query.bind(v.as_slice()),
                Arg::Ints(v) => query.bind(v.as_slice()),
            };
        }
        query
    }
}

/// The one text form of a timestamp in SQLite.
pub(crate) fn sqlite_time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// A JSON array of strings, bound as one parameter and expanded with `json_each`.
fn json_array(items: impl Iterator<Item = String>) -> String {
    serde_json::Value::Array(items.map(serde_json::Value::String).collect()).to_string()
}

/// Which database a pool talks to, and the few SQL fragments that differ between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// Rows `(pos, id)` of the uuid list bound at `$n` (positions from 0), as a FROM item.
    pub(crate) fn id_rows(self, n: usize) -> String {
        match self {
            Self::Sqlite => format!("(SELECT key AS pos, value AS id FROM json_each(${n}))"),
            Self::Postgres => format!(
                "(SELECT ord - 1 AS pos, id FROM unnest(${n}::uuid[]) WITH ORDINALITY AS u (id, ord))"
            ),
        }
    }

    /// `column` is one of the list bound at `$n` (a uuid, text or integer list).
    pub(crate) fn any_of(self, column: &str, n: usize) -> String {
        match self {
            Self::Sqlite => format!("{column} IN (SELECT value FROM json_each(${n}))"),
            Self::Postgres => format!("{column} = ANY(${n})"),
        }
    }

    /// The uuids `select` returns (one column, in its ORDER BY), as one value that
    /// [`Columns::uuids`] reads.
    pub(crate) fn id_array(self, column: &str, from: &str, order_by: &str) -> String {
        match self {
            Self::Sqlite => {
                format!("(SELECT json_group_array({column} ORDER BY {order_by}) FROM {from})")
            }
            Self::Postgres => format!("ARRAY(SELECT {column} FROM {from} ORDER BY {order_by})"),
        }
    }

    /// The current time in the store's format. PostgreSQL: the database's clock, so that every
    /// replica judges leases by one clock. SQLite (one process): the same OS clock as the
    /// process, which SQLite reads to the millisecond; rounded up to the millisecond's end so that
    /// a time the process just took is never in the future.
    pub(crate) fn now(self) -> &'static str {
        match self {
            Self::Sqlite => "strftime('%Y-%m-%dT%H:%M:%f999Z', 'now')",
            Self::Postgres => "now()",
        }
    }

    /// [`Self::now`] plus the milliseconds bound at `$n`.
    pub(crate) fn now_plus_ms(self, n: usize) -> String {
        match self {
            Self::Sqlite => format!(
                "strftime('%Y-%m-%dT%H:%M:%f999Z', 'now', '+' || (${n} / 1000.0) || ' seconds')"
            ),
            Self::Postgres => {
                format!("now() + make_interval(secs => ${n}::double precision / 1000)")
            }
        }
    }

    /// The clause that keeps a read row from changing until the transaction ends (SQLite needs
    /// none: its writers hold the database lock).
    pub(crate) fn share_row(self) -> &'static str {
        match self {
            Self::Sqlite => "",
            Self::Postgres => " FOR SHARE",
        }
    }

    /// The clause that makes a row read lock it like an UPDATE until the transaction ends (SQLite
    /// needs none: its writers hold the database lock from `BEGIN IMMEDIATE`).
    pub(crate) fn lock_row(self) -> &'static str {
        match self {
            Self::Sqlite => "",
            Self::Postgres => " FOR NO KEY UPDATE",
        }
    }
}

/// A result row of either backend.
pub(crate) enum Row {
    Sqlite(SqliteRow),
    Postgres(PgRow),
}

macro_rules! delegate_columns {
    ($($name:ident -> $out:ty;)*) => {
        $(fn $name(&self, column: &str) -> Result<$out, String> {
            match self {
                Self::Sqlite(row) => row.$name(column),
                Self::Postgres(row) => row.$name(column),
            }
        })*
    };
}

impl Columns for Row {
    delegate_columns! {
        text -> String;
        opt_text -> Option<String>;
        uuid -> Uuid;
        opt_uuid -> Option<Uuid>;
        time -> DateTime<Utc>;
        opt_time -> Option<DateTime<Utc>>;
        int -> i64;
        uuids -> Vec<Uuid>;
        flag -> bool;
        opt_json_text -> Option<String>;
    }
}

/// A connection pool of either backend.
#[derive(Clone)]
pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// An open transaction of either backend; dropped unfinished, it rolls back.
pub(crate) enum Tx {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

/// Runs statements: a pool (each on any connection) or a transaction (all on its one).
pub(crate) trait Exec {
    fn backend(&self) -> Backend;
    async fn fetch_all(&mut self, sql: Sql) -> Result<Vec<Row>, sqlx::Error>;
    async fn fetch_optional(&mut self, sql: Sql) -> Result<Option<Row>, sqlx::Error>;
    /// The number of rows the statement changed.
    async fn execute(&mut self, sql: Sql) -> Result<u64, sqlx::Error>;

    async fn fetch_one(&mut self, sql: Sql) -> Result<Row, sqlx::Error> {
        self.fetch_optional(sql)
            .await?
            .ok_or(sqlx::Error::RowNotFound)
    }
}

macro_rules! exec_on {
    ($ty:ty, |$e:ident| $exec:expr) => {
        impl Exec for $ty {
            fn backend(&self) -> Backend {
                match self {
                    Self::Sqlite(_) => Backend::Sqlite,
                    Self::Postgres(_) => Backend::Postgres,
                }
            }

            async fn fetch_all(&mut self, sql: Sql) -> Result<Vec<Row>, sqlx::Error> {
                Ok(match self {
                    Self::Sqlite($e) => sql
                        .for_sqlite()
                        .fetch_all($exec)
                        .await?
                        .into_iter()
                        .map(Row::Sqlite)
                        .collect(),
                    Self::Postgres($e) => sql
                        .for_postgres()
                        .fetch_all($exec)
                        .await?
                        .into_iter()
                        .map(Row::Postgres)
                        .collect(),
                })
            }

            async fn fetch_optional(&mut self, sql: Sql) -> Result<Option<Row>, sqlx::Error> {
                Ok(match self {
                    Self::Sqlite($e) => sql
                        .for_sqlite()
                        .fetch_optional($exec)
                        .await?
                        .map(Row::Sqlite),
                    Self::Postgres($e) => sql
                        .for_postgres()
                        .fetch_optional($exec)
                        .await?
                        .map(Row::Postgres),
                })
            }

            async fn execute(&mut self, sql: Sql) -> Result<u64, sqlx::Error> {
                Ok(match self {
                    Self::Sqlite($e) => sql.for_sqlite().execute($exec).await?.rows_affected(),
                    Self::Postgres($e) => sql.for_postgres().execute($exec).await?.rows_affected(),
                })
            }
        }
    };
}

// `$e` names the variant's pool or transaction, `$exec` is the sqlx executor made of it.
exec_on!(Pool, |pool| &*pool);
exec_on!(Tx, |tx| &mut **tx);

impl Pool {
    /// A transaction for a write: SQLite takes the database's write lock up front (see
    /// `commit`), PostgreSQL starts a READ COMMITTED one.
    pub(crate) async fn begin_write(&self) -> Result<Tx, sqlx::Error> {
        Ok(match self {
            Self::Sqlite(pool) => Tx::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await?),
            Self::Postgres(pool) => Tx::Postgres(pool.begin().await?),
        })
    }
}

impl Tx {
    pub(crate) async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Self::Sqlite(tx) => tx.commit().await,
            Self::Postgres(tx) => tx.commit().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pushed_placeholders_are_numbered_after_the_bound_ones() {
        let mut sql = Sql::new("SELECT * FROM t WHERE a = $1").bind(1_i64);
        sql.push(" AND b = ")
            .push_bind("x")
            .push(" AND c = ")
            .push_bind(true);
        assert_eq!(
            sql.text,
            "SELECT * FROM t WHERE a = $1 AND b = $2 AND c = $3"
        );
        assert_eq!(
            sql.args,
            vec![
                Arg::Int(Some(1)),
                Arg::Text(Some("x".into())),
                Arg::Bool(true)
            ]
        );
    }

    #[test]
    fn counters_past_bigint_are_out_of_range() {
        assert_eq!(Arg::count(7).unwrap(), Arg::Int(Some(7)));
        assert!(matches!(
            Arg::count(u64::MAX),
            Err(RepositoryError::OutOfRange(_))
        ));
    }

    #[test]
    fn sqlite_times_are_fixed_width_so_text_order_is_time_order() {
        let early = DateTime::parse_from_rfc3339("2026-01-02T03:04:05.000001Z")
            .unwrap()
            .with_timezone(&Utc);
        let late = DateTime::parse_from_rfc3339("2026-01-02T03:04:05.1Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(sqlite_time(early), "2026-01-02T03:04:05.000001Z");
        assert_eq!(sqlite_time(late), "2026-01-02T03:04:05.100000Z");
        assert!(sqlite_time(early) < sqlite_time(late));
    }
}
