//! MySQL and MariaDB: the URL (charset `utf8mb4`, so Korean text
//! round-trips), a per-session statement limit set on every new connection,
//! and column decoding.
//!
//! The two servers name the limit differently: MariaDB has
//! `max_statement_time` (seconds, every statement), MySQL has
//! `max_execution_time` (milliseconds, SELECT only). Each connection tries
//! MariaDB's first and falls back to MySQL's when the server does not know
//! the variable.

use std::{str::FromStr, time::Duration};

use sqlx::{
    Decode, Executor as _, Row as _, TypeInfo as _, ValueRef as _,
    mysql::{
        MySql, MySqlConnectOptions, MySqlConnection, MySqlDatabaseError, MySqlPool,
        MySqlPoolOptions, MySqlRow,
    },
    types::time::{Date, PrimitiveDateTime},
};
use tokio::time::Instant;

use super::{
    ErrorKinds, FirstRows, Opened, SqlError, date_text, datetime_text, decode_error,
    first_rows_on_pool, network_location, render_row, unsupported, utf8_text,
};
use crate::backend::Record;

/// `ER_UNKNOWN_SYSTEM_VARIABLE`: the server is not MariaDB (or not MySQL).
const UNKNOWN_SYSTEM_VARIABLE: u16 = 1193;
/// MariaDB's `ER_STATEMENT_TIMEOUT` (`max_statement_time` exceeded).
const MARIADB_STATEMENT_TIMEOUT: u16 = 1969;
/// MySQL's `ER_QUERY_TIMEOUT` (`max_execution_time` exceeded).
const MYSQL_QUERY_TIMEOUT: u16 = 3024;
/// `ER_SERVER_SHUTDOWN`.
const SERVER_SHUTDOWN: u16 = 1053;
/// MariaDB's `ER_CONNECTION_KILLED`.
const CONNECTION_KILLED: u16 = 1927;
/// MySQL's `ER_CLIENT_INTERACTION_TIMEOUT` (idle past `wait_timeout`).
const CLIENT_INTERACTION_TIMEOUT: u16 = 4031;

/// Parses `url` and builds a pool that connects on first use.
pub(crate) fn open(
    url: &str,
    timeout: Duration,
    pool_size: u32,
) -> Result<Opened<MySqlPool>, String> {
    let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    if !matches!(scheme.as_deref(), Some("mysql" | "mariadb")) {
        return Err(
            "a mysql backend needs a mysql:// URL (mysql://user:password@host:3306/database)"
                .into(),
        );
    }
    let options = MySqlConnectOptions::from_str(url)
        .map_err(|e| format!("not a valid MySQL URL: {e}"))?
        .charset("utf8mb4");
    let location = match options.get_socket() {
        Some(socket) => format!("{} (socket)", socket.display()),
        None => network_location(
            options.get_host(),
            options.get_port(),
            3306,
            options.get_database(),
        ),
    };
    let pool = MySqlPoolOptions::new()
        // See `first_rows_on_pool`: dead connections are retried instead.
        .test_before_acquire(false)
        .max_connections(pool_size)
        .acquire_timeout(timeout)
        .after_connect(move |connection, _| {
            Box::pin(async move { limit_statements(connection, timeout).await })
        })
        .connect_lazy_with(options);
    Ok(Opened { pool, location })
}

/// Makes the server stop any statement of this session after `timeout`.
async fn limit_statements(
    connection: &mut MySqlConnection,
    timeout: Duration,
) -> Result<(), sqlx::Error> {
    let mariadb = format!(
        "SET SESSION max_statement_time = {:.3}",
        timeout.as_secs_f64()
    );
    match connection.execute(sqlx::raw_sql(&mariadb)).await {
        Ok(_) => Ok(()),
        Err(e) if error_number(&e) == Some(UNKNOWN_SYSTEM_VARIABLE) => {
            let mysql = format!("SET SESSION max_execution_time = {}", timeout.as_millis());
            connection.execute(sqlx::raw_sql(&mysql)).await.map(drop)
        }
        Err(e) => Err(e),
    }
}

fn error_number(error: &sqlx::Error) -> Option<u16> {
    error
        .as_database_error()
        .and_then(|e| e.try_downcast_ref::<MySqlDatabaseError>())
        .map(MySqlDatabaseError::number)
}

/// Runs the lookup query until `deadline`.
pub(crate) async fn first_rows(
    pool: &MySqlPool,
    deadline: Instant,
    query: &str,
    args: &[Option<&str>],
) -> Result<FirstRows, SqlError> {
    first_rows_on_pool(pool, deadline, query, args, record, &ERRORS).await
}

const ERRORS: ErrorKinds = ErrorKinds {
    is_timeout,
    is_stale,
};

/// A broken socket, or the server saying it shuts down or killed the
/// connection.
fn is_stale(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Io(_))
        || matches!(
            error_number(error),
            Some(SERVER_SHUTDOWN | CONNECTION_KILLED | CLIENT_INTERACTION_TIMEOUT)
        )
}

fn is_timeout(error: &sqlx::Error) -> bool {
    matches!(
        error_number(error),
        Some(MARIADB_STATEMENT_TIMEOUT | MYSQL_QUERY_TIMEOUT)
    )
}

fn record(row: &MySqlRow) -> Result<Record, SqlError> {
    render_row(row, text)
}

/// Column `index` as text.
fn text(row: &MySqlRow, index: usize) -> Result<Option<String>, SqlError> {
    let value = row.try_get_raw(index)?;
    if value.is_null() {
        return Ok(None);
    }
    let type_info = value.type_info().into_owned();
    let decode_err = |e| decode_error(row, index, e);
    macro_rules! decode {
        ($ty:ty) => {
            <$ty as Decode<'_, MySql>>::decode(value).map_err(decode_err)?
        };
    }
    let name = type_info.name();
    let text = match name {
        // TINYINT(1), which MySQL calls BOOLEAN, is a number: 0 or 1.
        "BOOLEAN" | "TINYINT" | "SMALLINT" | "INT" | "MEDIUMINT" | "BIGINT" => {
            decode!(i64).to_string()
        }
        "TINYINT UNSIGNED" | "SMALLINT UNSIGNED" | "INT UNSIGNED" | "MEDIUMINT UNSIGNED"
        | "BIGINT UNSIGNED" | "YEAR" => decode!(u64).to_string(),
        "FLOAT" => decode!(f32).to_string(),
        "DOUBLE" => decode!(f64).to_string(),
        // Sent as their text even in the binary protocol.
        "DECIMAL" | "JSON" | "ENUM" | "SET" => decode!(&str).to_owned(),
        "DATE" => date_text(decode!(Date)),
        "DATETIME" | "TIMESTAMP" => datetime_text(decode!(PrimitiveDateTime)),
        "TIME" => decode!(sqlx::mysql::types::MySqlTime).to_string(),
        _ if <str as sqlx::Type<MySql>>::compatible(&type_info) => decode!(&str).to_owned(),
        _ if <[u8] as sqlx::Type<MySql>>::compatible(&type_info) => {
            let bytes: &[u8] = decode!(&[u8]);
            utf8_text(row, index, bytes, name)?
        }
        _ => return Err(unsupported(row, index, name)),
    };
    Ok(Some(text))
}
