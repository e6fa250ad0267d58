//! SQLite files: the URL, a deadline that interrupts a running statement
//! (SQLite has no server to enforce one, and sqlx runs each connection's
//! statements on its own thread, which would otherwise keep going), and
//! column decoding by each value's own storage class.

use std::{str::FromStr, time::Duration};

use sqlx::{
    Decode, Row as _, TypeInfo as _, ValueRef as _,
    sqlite::{
        Sqlite, SqliteConnectOptions, SqliteConnection, SqlitePool, SqlitePoolOptions, SqliteRow,
    },
};
use tokio::time::Instant;

use super::{
    FirstRows, Opened, SqlError, acquire, decode_error, fetch_first_rows, render_row, settle,
    unsupported, utf8_text,
};
use crate::backend::Record;

/// Virtual-machine steps between two looks at the deadline: frequent
/// enough to stop within a millisecond or so, rare enough to cost nothing.
const PROGRESS_STEPS: i32 = 1_000;

/// Parses `url` (`sqlite://PATH`) and builds a pool that opens the file on
/// first use. A missing file is not created: serving never invents an
/// empty database (`verigate import` creates it).
pub(crate) fn open(
    url: &str,
    timeout: Duration,
    pool_size: u32,
) -> Result<Opened<SqlitePool>, String> {
    if !url.to_ascii_lowercase().starts_with("sqlite:") {
        return Err("a sqlite backend needs a sqlite:// URL (sqlite://data/customers.db)".into());
    }
    let options = connect_options(url)?.busy_timeout(timeout);
    let location = options.get_filename().display().to_string();
    let pool = SqlitePoolOptions::new()
        // A connection to a local file does not die while idle.
        .test_before_acquire(false)
        .max_connections(pool_size)
        .acquire_timeout(timeout)
        .connect_lazy_with(options);
    Ok(Opened { pool, location })
}

/// The connection options of `url`, shared with `verigate import`.
pub(crate) fn connect_options(url: &str) -> Result<SqliteConnectOptions, String> {
    SqliteConnectOptions::from_str(url).map_err(|e| format!("not a valid SQLite URL: {e}"))
}

/// Makes SQLite abandon any statement on `connection` once `deadline`
/// passes (a progress handler; setting one replaces the previous one).
async fn interrupt_at(
    connection: &mut SqliteConnection,
    deadline: Instant,
) -> Result<(), SqlError> {
    let deadline = deadline.into_std();
    let mut handle = connection.lock_handle().await?;
    handle.set_progress_handler(PROGRESS_STEPS, move || std::time::Instant::now() < deadline);
    Ok(())
}

/// Runs the lookup query until `deadline`.
pub(crate) async fn first_rows(
    pool: &SqlitePool,
    deadline: Instant,
    query: &str,
    args: &[Option<&str>],
) -> Result<FirstRows, SqlError> {
    let mut connection = acquire(pool, deadline).await?;
    let work = async {
        interrupt_at(&mut connection, deadline).await?;
        fetch_first_rows::<Sqlite>(&mut connection, query, args, record).await
    };
    let outcome = tokio::time::timeout_at(deadline, work).await;
    settle(&mut connection, outcome, is_timeout)
}

/// `SELECT 1` within `deadline` (with the interrupt re-armed, since the
/// last lookup's deadline has passed).
pub(crate) async fn select_one(pool: &SqlitePool, deadline: Instant) -> Result<(), SqlError> {
    let mut connection = acquire(pool, deadline).await?;
    let work = async {
        interrupt_at(&mut connection, deadline).await?;
        sqlx::query::<Sqlite>("SELECT 1")
            .execute(&mut *connection)
            .await?;
        Ok(())
    };
    let outcome = tokio::time::timeout_at(deadline, work).await;
    settle(&mut connection, outcome, is_timeout)
}

/// `SQLITE_INTERRUPT`: the progress handler stopped the statement.
fn is_timeout(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "9")
}

fn record(row: &SqliteRow) -> Result<Record, SqlError> {
    render_row(row, text)
}

/// Column `index` as text, by the value's storage class (SQLite's column
/// types are only declarations).
fn text(row: &SqliteRow, index: usize) -> Result<Option<String>, SqlError> {
    let value = row.try_get_raw(index)?;
    if value.is_null() {
        return Ok(None);
    }
    let type_info = value.type_info().into_owned();
    let decode_err = |e| decode_error(row, index, e);
    macro_rules! decode {
        ($ty:ty) => {
            <$ty as Decode<'_, Sqlite>>::decode(value).map_err(decode_err)?
        };
    }
    let text = match type_info.name() {
        "INTEGER" => decode!(i64).to_string(),
        "REAL" => decode!(f64).to_string(),
        "TEXT" => decode!(String),
        "BLOB" => {
            let bytes: Vec<u8> = decode!(Vec<u8>);
            utf8_text(row, index, &bytes, "BLOB")?
        }
        name => return Err(unsupported(row, index, name)),
    };
    Ok(Some(text))
}
