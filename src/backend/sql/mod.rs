//! The SQL backends (`sqlite`, `postgres`, `mysql`) through sqlx: the
//! configured parameterised query, request fields bound in `params` order
//! (never formatted into SQL), the first row's columns as the record.
//!
//! This module owns what the three share: the pool built without opening a
//! connection (a database down at start shows in `/readyz`), the per-lookup
//! deadline over connection wait and query, the rule that a connection
//! whose query was cut off is closed rather than returned to the pool, and
//! rendering values as text. Each database's file owns its URL, its
//! server-side statement limit and its column decoding.

use std::{fmt, sync::Arc, time::Duration};

use futures_util::TryStreamExt as _;
use secrecy::ExposeSecret as _;
use sqlx::{
    Database, Encode, Executor, IntoArguments, Pool, Type,
    pool::PoolConnection,
    types::time::{Date, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset},
};
use tokio::time::Instant;

use super::{BackendError, Record};
use crate::{
    configuration::{
        ConfigError, SecretRef, SecretSource, SqlBackendSettings, SqliteBackendSettings,
    },
    metrics::BackendMetrics,
};

/// MySQL and MariaDB.
pub mod mysql;
/// PostgreSQL.
pub mod postgres;
/// SQLite files.
pub mod sqlite;

/// Longest accepted `timeout_ms`: a lookup is a request a person waits for.
const MAX_TIMEOUT_MS: u64 = 60_000;

/// Why a SQL lookup failed. The caller sees `backend_error`; this goes to
/// the log.
#[derive(thiserror::Error)]
pub enum SqlError {
    /// The deadline passed while waiting for a connection or the query.
    #[error("no answer within the timeout")]
    Timeout,
    /// The driver or the database failed.
    #[error("the database call failed")]
    Database(#[from] sqlx::Error),
    /// A column whose type verigate does not render as text.
    #[error(
        "column \"{column}\" has type {type_name}, which verigate cannot render as text; \
         cast it in the query (e.g. CAST({column} AS TEXT))"
    )]
    UnsupportedType {
        /// The column's name.
        column: String,
        /// The database's name for its type.
        type_name: String,
    },
    /// A value that did not decode as its column type says.
    #[error("column \"{column}\" could not be decoded")]
    Decode {
        /// The column's name.
        column: String,
        /// The decoder's complaint.
        #[source]
        source: sqlx::error::BoxDynError,
    },
}

impl fmt::Debug for SqlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::error::error_chain_fmt(self, f)
    }
}

impl From<SqlError> for BackendError {
    fn from(e: SqlError) -> Self {
        match e {
            SqlError::Timeout => BackendError::Timeout,
            // A database's own message can quote the bound values (PostgreSQL:
            // `invalid input syntax for type integer: "01012345678"`), and
            // those are callers' personal data: the log gets the SQLSTATE only.
            SqlError::Database(sqlx::Error::Database(db)) => BackendError::Failed(anyhow::anyhow!(
                "the database refused the query (SQLSTATE {}); the message is withheld \
                     because it may quote request fields",
                db.code().as_deref().unwrap_or("unknown")
            )),
            other => BackendError::Failed(anyhow::Error::new(other)),
        }
    }
}

/// One SQL backend: its pool and its query.
pub struct SqlBackend {
    name: String,
    location: String,
    warning: Option<String>,
    query: String,
    params: Vec<String>,
    timeout: Duration,
    metrics: BackendMetrics,
    pool: SqlPool,
}

impl fmt::Debug for SqlBackend {
    // The URL may carry a password: only what check-config prints.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlBackend")
            .field("name", &self.name)
            .field("kind", &self.pool.kind())
            .field("location", &self.location)
            .finish()
    }
}

/// The typed pool of each database.
enum SqlPool {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
    MySql(sqlx::MySqlPool),
}

impl SqlPool {
    fn kind(&self) -> &'static str {
        match self {
            SqlPool::Sqlite(_) => "sqlite",
            SqlPool::Postgres(_) => "postgres",
            SqlPool::MySql(_) => "mysql",
        }
    }
}

/// The keys every SQL kind shares, borrowed from its settings.
struct Common<'a> {
    name: &'a str,
    url: &'a SecretRef,
    query: &'a str,
    params: &'a [String],
    timeout_ms: u64,
    pool_size: u32,
}

/// A pool that has not connected yet, and where its database is (for
/// `check-config`: never the password or the whole URL).
pub(crate) struct Opened<P> {
    pool: P,
    location: String,
}

impl SqlBackend {
    /// Builds backend `index` of kind `sqlite`. Opens no connection.
    pub fn sqlite(
        index: usize,
        settings: &SqliteBackendSettings,
        metrics: BackendMetrics,
    ) -> Result<SqlBackend, ConfigError> {
        let common = Common {
            name: &settings.name,
            url: &settings.url,
            query: &settings.query,
            params: &settings.params,
            timeout_ms: settings.timeout_ms,
            pool_size: settings.pool_size,
        };
        Self::build(index, &common, metrics, |url, timeout, size| {
            sqlite::open(url, timeout, size).map(|o| (SqlPool::Sqlite(o.pool), o.location))
        })
    }

    /// Builds backend `index` of kind `postgres`. Opens no connection.
    pub fn postgres(
        index: usize,
        settings: &SqlBackendSettings,
        metrics: BackendMetrics,
    ) -> Result<SqlBackend, ConfigError> {
        Self::build(index, &common(settings), metrics, |url, timeout, size| {
            postgres::open(url, timeout, size).map(|o| (SqlPool::Postgres(o.pool), o.location))
        })
    }

    /// Builds backend `index` of kind `mysql`. Opens no connection.
    pub fn mysql(
        index: usize,
        settings: &SqlBackendSettings,
        metrics: BackendMetrics,
    ) -> Result<SqlBackend, ConfigError> {
        Self::build(index, &common(settings), metrics, |url, timeout, size| {
            mysql::open(url, timeout, size).map(|o| (SqlPool::MySql(o.pool), o.location))
        })
    }

    fn build(
        index: usize,
        settings: &Common<'_>,
        metrics: BackendMetrics,
        open: impl FnOnce(&str, Duration, u32) -> Result<(SqlPool, String), String>,
    ) -> Result<SqlBackend, ConfigError> {
        let at = |key: &str| format!("backends[{index}].{key}");
        if settings.query.trim().is_empty() {
            return Err(ConfigError::new(at("query"), "the query must not be empty"));
        }
        if settings.params.is_empty() {
            return Err(ConfigError::new(
                at("params"),
                "name at least one request field to bind (a query without one \
                 answers every caller with the same row)",
            ));
        }
        if !(1..=MAX_TIMEOUT_MS).contains(&settings.timeout_ms) {
            return Err(ConfigError::new(
                at("timeout_ms"),
                format!("must be between 1 and {MAX_TIMEOUT_MS}"),
            ));
        }
        if settings.pool_size == 0 {
            return Err(ConfigError::new(at("pool_size"), "must be at least 1"));
        }
        let (url, source) = settings.url.resolve(&at("url"))?;
        let timeout = Duration::from_millis(settings.timeout_ms);
        // The reason never quotes the URL: it may carry a password.
        let (pool, location) = open(url.expose_secret(), timeout, settings.pool_size)
            .map_err(|reason| ConfigError::new(at("url"), reason))?;
        let warning = (source == SecretSource::Literal && url_has_password(url.expose_secret()))
            .then(|| {
                format!(
                    "{}: the URL and its password are written in the file; \
                     use env:NAME or file:PATH in production",
                    at("url")
                )
            });
        Ok(SqlBackend {
            name: settings.name.to_owned(),
            location,
            warning,
            query: settings.query.to_owned(),
            params: settings.params.to_vec(),
            timeout,
            metrics,
            pool,
        })
    }

    /// The configured name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `host[:port]/database`, or the SQLite file: safe to print.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// A warning to print at start (a password written in the file).
    pub fn warning(&self) -> Option<&str> {
        self.warning.as_deref()
    }

    /// The request fields bound to the query, in order.
    pub fn params(&self) -> &[String] {
        &self.params
    }

    /// Runs the query with `args` (`None` binds SQL NULL) and renders the
    /// first row. More than one row is counted and the first one used.
    pub async fn lookup(&self, args: &[Option<&str>]) -> Result<Option<Record>, BackendError> {
        let deadline = Instant::now() + self.timeout;
        let rows = match &self.pool {
            SqlPool::Sqlite(pool) => sqlite::first_rows(pool, deadline, &self.query, args).await,
            SqlPool::Postgres(pool) => {
                postgres::first_rows(pool, deadline, &self.query, args).await
            }
            SqlPool::MySql(pool) => mysql::first_rows(pool, deadline, &self.query, args).await,
        }?;
        if rows.more {
            self.metrics.multiple_rows.inc();
            tracing::warn!(
                backend = %self.name,
                "the query matched more than one row; answering with the first"
            );
        }
        Ok(rows.first)
    }

    /// `SELECT 1` within the timeout; the error is a short reason.
    pub async fn check_ready(&self) -> Result<(), String> {
        let deadline = Instant::now() + self.timeout;
        let result = match &self.pool {
            SqlPool::Sqlite(pool) => sqlite::select_one(pool, deadline).await,
            SqlPool::Postgres(pool) => select_one(pool, deadline).await,
            SqlPool::MySql(pool) => select_one(pool, deadline).await,
        };
        result.map_err(|e| {
            tracing::debug!(backend = %self.name, error = ?e, "readiness check failed");
            readiness_reason(&e).to_owned()
        })
    }
}

fn common(settings: &SqlBackendSettings) -> Common<'_> {
    Common {
        name: &settings.name,
        url: &settings.url,
        query: &settings.query,
        params: &settings.params,
        timeout_ms: settings.timeout_ms,
        pool_size: settings.pool_size,
    }
}

/// What `/readyz` says of a failed check: short, no internals.
fn readiness_reason(error: &SqlError) -> &'static str {
    match error {
        SqlError::Timeout | SqlError::Database(sqlx::Error::PoolTimedOut) => "timeout",
        SqlError::Database(sqlx::Error::Io(_) | sqlx::Error::Tls(_)) => "unreachable",
        SqlError::Database(_) | SqlError::UnsupportedType { .. } | SqlError::Decode { .. } => {
            "error"
        }
    }
}

/// True when `url` has a password in its userinfo (`user:pass@`).
fn url_has_password(url: &str) -> bool {
    let Some((_, rest)) = url.split_once("://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    authority
        .rsplit_once('@')
        .is_some_and(|(userinfo, _)| userinfo.contains(':'))
}

/// `host[:port]/database` from the parts of a parsed URL.
fn network_location(host: &str, port: u16, default_port: u16, database: Option<&str>) -> String {
    let mut out = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    if port != default_port {
        out.push_str(&format!(":{port}"));
    }
    if let Some(database) = database {
        out.push('/');
        out.push_str(database);
    }
    out
}

/// The first row of a result and whether a second one followed.
pub(crate) struct FirstRows {
    first: Option<Record>,
    more: bool,
}

/// Waits for a connection until `deadline`.
async fn acquire<DB: Database>(
    pool: &Pool<DB>,
    deadline: Instant,
) -> Result<PoolConnection<DB>, SqlError> {
    match tokio::time::timeout_at(deadline, pool.acquire()).await {
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(sqlx::Error::PoolTimedOut)) | Err(_) => Err(SqlError::Timeout),
        Ok(Err(e)) => Err(SqlError::Database(e)),
    }
}

/// The outcome of work cut off at a deadline (`Err` = it was cut off).
type Bounded<T> = Result<Result<T, SqlError>, tokio::time::error::Elapsed>;

/// Turns the outcome of work on `connection` into the lookup's result.
/// Work cut off by the deadline may have left the connection busy (a query
/// running, unread rows), so it is closed instead of going back to the pool.
fn settle<DB: Database, T>(
    connection: &mut PoolConnection<DB>,
    outcome: Bounded<T>,
    is_timeout: fn(&sqlx::Error) -> bool,
) -> Result<T, SqlError> {
    match outcome {
        Ok(Ok(value)) => Ok(value),
        // The server's own statement limit (or SQLite's interrupt) fired.
        Ok(Err(SqlError::Database(e))) if is_timeout(&e) => Err(SqlError::Timeout),
        Ok(Err(e)) => Err(e),
        Err(_) => {
            connection.close_on_drop();
            Err(SqlError::Timeout)
        }
    }
}

/// How a database's errors are read.
pub(crate) struct ErrorKinds {
    /// The server's statement limit (or SQLite's interrupt) stopped it.
    is_timeout: fn(&sqlx::Error) -> bool,
    /// The connection was dead before the query started: closed by a
    /// database restart or failover while it sat idle in the pool.
    is_stale: fn(&sqlx::Error) -> bool,
}

/// Runs the lookup on a pooled connection until `deadline`. A pooled
/// connection is not tested before use (that would cost a round trip per
/// lookup); instead a query that fails because its idle connection had
/// died is run again on another, at most once per connection the pool can
/// hold, so the first lookups after a database restart succeed. Re-running
/// is safe: the query only reads, and a dead connection ran nothing.
async fn first_rows_on_pool<DB>(
    pool: &Pool<DB>,
    deadline: Instant,
    query: &str,
    args: &[Option<&str>],
    render: fn(&DB::Row) -> Result<Record, SqlError>,
    errors: &ErrorKinds,
) -> Result<FirstRows, SqlError>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> Option<&'q str>: Encode<'q, DB> + Type<DB>,
    for<'q> <DB as Database>::Arguments<'q>: IntoArguments<'q, DB>,
{
    let mut attempts = pool.options().get_max_connections() + 1;
    loop {
        let mut connection = acquire(pool, deadline).await?;
        let work = fetch_first_rows::<DB>(&mut connection, query, args, render);
        let outcome = tokio::time::timeout_at(deadline, work).await;
        match settle(&mut connection, outcome, errors.is_timeout) {
            Err(SqlError::Database(e)) if attempts > 1 && (errors.is_stale)(&e) => {
                tracing::debug!(error = %e, "a pooled connection was dead; trying another");
                connection.close_on_drop();
                attempts -= 1;
            }
            result => return result,
        }
    }
}

/// Binds `args` to `query`, reads at most two rows and renders the first
/// with `render`. Stopping after two keeps a broad query from being read
/// into memory; sqlx drains whatever the server still sends when the
/// connection goes back to the pool.
async fn fetch_first_rows<DB>(
    connection: &mut DB::Connection,
    query: &str,
    args: &[Option<&str>],
    render: fn(&DB::Row) -> Result<Record, SqlError>,
) -> Result<FirstRows, SqlError>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> Option<&'q str>: Encode<'q, DB> + Type<DB>,
    for<'q> <DB as Database>::Arguments<'q>: IntoArguments<'q, DB>,
{
    let mut bound = sqlx::query::<DB>(query);
    for arg in args {
        bound = bound.bind(*arg);
    }
    let mut rows = bound.fetch(connection);
    let Some(first) = rows.try_next().await? else {
        return Ok(FirstRows {
            first: None,
            more: false,
        });
    };
    let more = rows.try_next().await?.is_some();
    Ok(FirstRows {
        first: Some(render(&first)?),
        more,
    })
}

/// `SELECT 1` on a pooled connection within `deadline`.
async fn select_one<DB>(pool: &Pool<DB>, deadline: Instant) -> Result<(), SqlError>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    let mut connection = acquire(pool, deadline).await?;
    let work = async {
        let connection: &mut DB::Connection = &mut connection;
        connection.execute("SELECT 1").await?;
        Ok(())
    };
    let outcome = tokio::time::timeout_at(deadline, work).await;
    settle(&mut connection, outcome, |_| false)
}

/// A record from `row`'s column names and `text(row, i)` for each column.
fn render_row<R: sqlx::Row>(
    row: &R,
    text: impl Fn(&R, usize) -> Result<Option<String>, SqlError>,
) -> Result<Record, SqlError> {
    use sqlx::Column as _;
    let columns: Arc<[Box<str>]> = row.columns().iter().map(|c| c.name().into()).collect();
    let values = (0..columns.len())
        .map(|i| text(row, i))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Record::new(columns, values))
}

/// The error for a value that failed to decode.
fn decode_error<R: sqlx::Row>(row: &R, index: usize, source: sqlx::error::BoxDynError) -> SqlError {
    SqlError::Decode {
        column: column_name(row, index),
        source,
    }
}

/// The error for a column of a type verigate does not render.
fn unsupported<R: sqlx::Row>(row: &R, index: usize, type_name: &str) -> SqlError {
    SqlError::UnsupportedType {
        column: column_name(row, index),
        type_name: type_name.to_owned(),
    }
}

fn column_name<R: sqlx::Row>(row: &R, index: usize) -> String {
    use sqlx::Column as _;
    row.columns()
        .get(index)
        .map(|c| c.name().to_owned())
        .unwrap_or_default()
}

/// Bytes that must be UTF-8 text (a BLOB or BINARY column).
fn utf8_text<R: sqlx::Row>(
    row: &R,
    index: usize,
    bytes: &[u8],
    type_name: &str,
) -> Result<String, SqlError> {
    std::str::from_utf8(bytes)
        .map(str::to_owned)
        .map_err(|_| unsupported(row, index, type_name))
}

/// `2024-01-31`.
fn date_text(date: Date) -> String {
    format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

/// `10:05:00`, with microseconds when there are any (`10:05:00.25`).
fn time_text(time: Time) -> String {
    let mut out = format!(
        "{:02}:{:02}:{:02}",
        time.hour(),
        time.minute(),
        time.second()
    );
    let micros = time.microsecond();
    if micros != 0 {
        let fraction = format!("{micros:06}");
        out.push('.');
        out.push_str(fraction.trim_end_matches('0'));
    }
    out
}

/// `2024-01-31 10:05:00`.
fn datetime_text(value: PrimitiveDateTime) -> String {
    format!("{} {}", date_text(value.date()), time_text(value.time()))
}

/// `2024-01-31 10:05:00+00:00`, in UTC.
fn offset_datetime_text(value: OffsetDateTime) -> String {
    let utc = value.to_offset(UtcOffset::UTC);
    format!("{} {}+00:00", date_text(utc.date()), time_text(utc.time()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_is_detected_only_in_the_userinfo() {
        let cases = [
            ("postgres://app:secret@db:5432/customers", true),
            ("postgres://app@db/customers", false),
            ("postgres://db/customers?password=x", false),
            ("mysql://a:b@[::1]:3306/x", true),
            ("sqlite://data/customers.db", false),
            ("postgres://db/a:b@c", false),
        ];
        for (url, expected) in cases {
            assert_eq!(url_has_password(url), expected, "{url}");
        }
    }

    #[test]
    fn network_locations_omit_default_ports() {
        assert_eq!(
            network_location("db.internal", 5432, 5432, Some("customers")),
            "db.internal/customers"
        );
        assert_eq!(
            network_location("127.0.0.1", 6543, 5432, None),
            "127.0.0.1:6543"
        );
        assert_eq!(
            network_location("::1", 3307, 3306, Some("x")),
            "[::1]:3307/x"
        );
    }

    #[test]
    fn dates_and_times_render_like_the_databases_do() {
        let date = Date::from_ordinal_date(2024, 31).unwrap();
        let time = Time::from_hms_micro(9, 5, 7, 250_000).unwrap();
        assert_eq!(date_text(date), "2024-01-31");
        assert_eq!(time_text(time), "09:05:07.25");
        assert_eq!(
            datetime_text(PrimitiveDateTime::new(date, Time::MIDNIGHT)),
            "2024-01-31 00:00:00"
        );
        let seoul = PrimitiveDateTime::new(date, Time::from_hms(9, 0, 0).unwrap())
            .assume_offset(UtcOffset::from_hms(9, 0, 0).unwrap());
        assert_eq!(offset_datetime_text(seoul), "2024-01-31 00:00:00+00:00");
    }
}
