//! Lookup backends. A route hands its backend the request fields the
//! backend asked for, in the backend's own order, and gets back at most one
//! record. Each kind is one module and one arm of [`Backend`].

use std::sync::Arc;

use crate::{
    configuration::{BackendSettings, ConfigError},
    error::{ApiError, ErrorCode},
    metrics::Metrics,
};

/// JSON or CSV files indexed in memory.
pub mod file;
/// Reading JSON and CSV data files row by row (file backend, import).
pub mod source;
/// SQLite, PostgreSQL and MySQL through sqlx.
pub mod sql;

/// Why a lookup could not be answered. The caller sees only
/// `backend_error` and a fixed hint; the cause goes to the log.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The backend did not answer within its timeout.
    #[error("the backend did not answer in time")]
    Timeout,
    /// The backend answered with an error.
    #[error("the backend failed")]
    Failed(#[source] anyhow::Error),
}

/// The fixed hint of every backend error: the request's replay entry is
/// already spent, so a retry needs a fresh signature.
pub const RETRY_HINT: &str = "re-sign and retry";

impl From<BackendError> for ApiError {
    fn from(e: BackendError) -> Self {
        ApiError::internal(ErrorCode::BackendError, RETRY_HINT, anyhow::Error::new(e))
    }
}

/// The values of one row, shared: a file backend hands out its stored row
/// without copying it.
pub type RowValues = Arc<[Option<Box<str>>]>;

/// One found record: column names and their values (`None` is null).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    columns: Arc<[Box<str>]>,
    values: RowValues,
}

impl Record {
    /// A record whose `values[i]` belongs to `columns[i]`.
    pub fn new(columns: Arc<[Box<str>]>, values: Vec<Option<String>>) -> Self {
        Self {
            columns,
            values: values
                .into_iter()
                .map(|v| v.map(String::into_boxed_str))
                .collect(),
        }
    }

    /// A record over shared row values.
    pub fn shared(columns: Arc<[Box<str>]>, values: RowValues) -> Self {
        Self { columns, values }
    }

    /// The value of `column`; `None` when it is null or not in the record.
    pub fn get(&self, column: &str) -> Option<&str> {
        self.columns
            .iter()
            .position(|c| &**c == column)
            .and_then(|i| self.values.get(i))
            .and_then(|v| v.as_deref())
    }
}

/// A configured backend; one arm per kind.
#[derive(Debug)]
pub enum Backend {
    /// `kind = "file"`.
    File(file::FileBackend),
    /// `kind = "sqlite"`, `"postgres"` or `"mysql"`.
    Sql(sql::SqlBackend),
}

impl Backend {
    /// Builds backend `index` of the file. `columns` are the response
    /// fields of every route that uses it: the only columns it keeps.
    /// Building opens no connection: a database that is down at start
    /// shows in `/readyz`, not as a refusal to start.
    pub fn build(
        index: usize,
        settings: &BackendSettings,
        columns: &[String],
        metrics: &Metrics,
    ) -> Result<Backend, ConfigError> {
        match settings {
            BackendSettings::File(s) => {
                file::FileBackend::load(index, s, columns).map(Backend::File)
            }
            // A query's columns are whatever it selects: every one is kept.
            BackendSettings::Sqlite(s) => {
                sql::SqlBackend::sqlite(index, s, metrics.backend(&s.name)).map(Backend::Sql)
            }
            BackendSettings::Postgres(s) => {
                sql::SqlBackend::postgres(index, s, metrics.backend(&s.name)).map(Backend::Sql)
            }
            BackendSettings::Mysql(s) => {
                sql::SqlBackend::mysql(index, s, metrics.backend(&s.name)).map(Backend::Sql)
            }
        }
    }

    /// The configured name (the `backend` metric label).
    pub fn name(&self) -> &str {
        match self {
            Backend::File(b) => b.name(),
            Backend::Sql(b) => b.name(),
        }
    }

    /// Where the data lives, for `check-config`: the file's path, or a
    /// database's `host[:port]/database` (never a password or whole URL).
    pub fn location(&self) -> String {
        match self {
            Backend::File(b) => b.path().display().to_string(),
            Backend::Sql(b) => b.location().to_owned(),
        }
    }

    /// A warning to print at start, if the backend's settings deserve one.
    pub fn warning(&self) -> Option<&str> {
        match self {
            Backend::File(_) => None,
            Backend::Sql(b) => b.warning(),
        }
    }

    /// The request fields this backend needs, in the order `lookup` takes them.
    pub fn arguments(&self) -> &[String] {
        match self {
            Backend::File(b) => b.key_columns(),
            Backend::Sql(b) => b.params(),
        }
    }

    /// True when records of this backend can carry `column`. A query's
    /// columns are known only to the database, so a SQL backend says yes;
    /// a column it does not return renders as null.
    pub fn provides(&self, column: &str) -> bool {
        match self {
            Backend::File(b) => b.provides(column),
            Backend::Sql(_) => true,
        }
    }

    /// Finds the record for `args` (in [`Backend::arguments`] order; `None`
    /// is an absent optional field).
    pub async fn lookup(&self, args: &[Option<&str>]) -> Result<Option<Record>, BackendError> {
        match self {
            Backend::File(b) => Ok(b.lookup(args)),
            Backend::Sql(b) => b.lookup(args).await,
        }
    }

    /// Readiness: `Ok` when the backend answers.
    pub async fn check_ready(&self) -> Result<(), String> {
        match self {
            Backend::File(_) => Ok(()),
            Backend::Sql(b) => b.check_ready().await,
        }
    }

    /// Re-reads what can be re-read (SIGHUP). A bad new source keeps the
    /// old data serving.
    pub fn reload(&self) {
        match self {
            Backend::File(b) => b.reload(),
            // A database is always current: nothing to re-read.
            Backend::Sql(_) => {}
        }
    }
}
