//! PostgreSQL: the URL, `statement_timeout` set for every connection at
//! start-up (so the server stops a query verigate gave up on), and column
//! decoding. sqlx reads results in PostgreSQL's binary format, so each type
//! is decoded by what it is: there is no text form to fall back on.

use std::{fmt::Write as _, str::FromStr, time::Duration};

use sqlx::{
    Decode, Row as _, TypeInfo as _, ValueRef as _,
    postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow, PgTypeKind},
    types::time::{Date, OffsetDateTime, PrimitiveDateTime, Time},
};
use tokio::time::Instant;

use super::{
    ErrorKinds, FirstRows, Opened, SqlError, date_text, datetime_text, decode_error,
    first_rows_on_pool, network_location, offset_datetime_text, render_row, time_text, unsupported,
};
use crate::backend::Record;

/// PostgreSQL's error code for a statement cancelled by `statement_timeout`.
const QUERY_CANCELED: &str = "57014";

/// Parses `url` and builds a pool that connects on first use.
pub(crate) fn open(url: &str, timeout: Duration, pool_size: u32) -> Result<Opened<PgPool>, String> {
    let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    if !matches!(scheme.as_deref(), Some("postgres" | "postgresql")) {
        return Err(
            "a postgres backend needs a postgres:// URL (postgres://user:password@host:5432/database)"
                .into(),
        );
    }
    let options = PgConnectOptions::from_str(url)
        .map_err(|e| format!("not a valid PostgreSQL URL: {e}"))?
        .application_name("verigate")
        // Sent in the start-up packet: no extra round trip per connection.
        .options([("statement_timeout", format!("{}ms", timeout.as_millis()))]);
    let location = match options.get_socket() {
        Some(socket) => format!("{} (socket)", socket.display()),
        None => network_location(
            options.get_host(),
            options.get_port(),
            5432,
            options.get_database(),
        ),
    };
    let pool = PgPoolOptions::new()
        // See `first_rows_on_pool`: dead connections are retried instead.
        .test_before_acquire(false)
        .max_connections(pool_size)
        .acquire_timeout(timeout)
        .connect_lazy_with(options);
    Ok(Opened { pool, location })
}

/// Runs the lookup query until `deadline`.
pub(crate) async fn first_rows(
    pool: &PgPool,
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

fn is_timeout(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == QUERY_CANCELED)
}

/// A broken socket, or the server's farewell on an idle connection when it
/// shut down (`admin_shutdown`, `crash_shutdown`).
fn is_stale(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_) => true,
        sqlx::Error::Database(e) => e
            .code()
            .is_some_and(|code| code == "57P01" || code == "57P02"),
        _ => false,
    }
}

fn record(row: &PgRow) -> Result<Record, SqlError> {
    render_row(row, text)
}

/// Column `index` as text.
fn text(row: &PgRow, index: usize) -> Result<Option<String>, SqlError> {
    let value = row.try_get_raw(index)?;
    if value.is_null() {
        return Ok(None);
    }
    let type_info = value.type_info().into_owned();
    let decode_err = |e| decode_error(row, index, e);
    macro_rules! decode {
        ($ty:ty) => {
            <$ty as Decode<'_, sqlx::Postgres>>::decode(value).map_err(decode_err)?
        };
    }
    let text = match type_info.name() {
        "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" | "UNKNOWN" | "CITEXT" | "citext" => {
            decode!(&str).to_owned()
        }
        "BOOL" => decode!(bool).to_string(),
        "INT2" => decode!(i16).to_string(),
        "INT4" => decode!(i32).to_string(),
        "INT8" => decode!(i64).to_string(),
        "OID" => decode!(sqlx::postgres::types::Oid).0.to_string(),
        "FLOAT4" => decode!(f32).to_string(),
        "FLOAT8" => decode!(f64).to_string(),
        "NUMERIC" => numeric_text(decode!(&[u8]))
            .ok_or_else(|| decode_err("a NUMERIC value in an unknown binary layout".into()))?,
        "DATE" => date_text(decode!(Date)),
        "TIME" => time_text(decode!(Time)),
        "TIMESTAMP" => datetime_text(decode!(PrimitiveDateTime)),
        "TIMESTAMPTZ" => offset_datetime_text(decode!(OffsetDateTime)),
        "UUID" => uuid::Uuid::from_slice(decode!(&[u8]))
            .map_err(|e| decode_err(e.into()))?
            .to_string(),
        "JSON" => decode!(&str).to_owned(),
        // Binary JSONB is a version byte (1) followed by the JSON text.
        "JSONB" => match decode!(&[u8]).split_first() {
            Some((1, json)) => String::from_utf8_lossy(json).into_owned(),
            _ => return Err(decode_err("a JSONB value of an unknown version".into())),
        },
        name => match type_info.kind() {
            // Enums travel as their label's text.
            PgTypeKind::Enum(_) => decode!(&str).to_owned(),
            _ => return Err(unsupported(row, index, name)),
        },
    };
    Ok(Some(text))
}

/// Renders PostgreSQL's binary NUMERIC (digit count, weight, sign, display
/// scale, then base-10000 digits) as its decimal text, `-12.3400`.
fn numeric_text(bytes: &[u8]) -> Option<String> {
    let word = |i: usize| -> Option<u16> {
        let pair = bytes.get(i * 2..i * 2 + 2)?;
        Some(u16::from_be_bytes([pair[0], pair[1]]))
    };
    let count = usize::from(word(0)?);
    let weight = i32::from(word(1)? as i16);
    let sign = word(2)?;
    let scale = usize::from(word(3)?);
    let negative = match sign {
        0x0000 => false,
        0x4000 => true,
        0xC000 => return Some("NaN".into()),
        0xD000 => return Some("Infinity".into()),
        0xF000 => return Some("-Infinity".into()),
        _ => return None,
    };
    if bytes.len() != 8 + count * 2 {
        return None;
    }
    // Digit `i` is worth 10000^(weight - i); missing ones are zeros.
    let digit = |i: i32| -> u16 {
        usize::try_from(i)
            .ok()
            .filter(|&i| i < count)
            .and_then(|i| word(4 + i))
            .unwrap_or(0)
    };
    let mut out = String::new();
    if negative {
        out.push('-');
    }
    if weight < 0 {
        out.push('0');
    } else {
        for i in 0..=weight {
            if i == 0 {
                let _ = write!(out, "{}", digit(i));
            } else {
                let _ = write!(out, "{:04}", digit(i));
            }
        }
    }
    if scale > 0 {
        let mut fraction = String::with_capacity(scale + 4);
        let mut i = weight + 1;
        while fraction.len() < scale {
            let _ = write!(fraction, "{:04}", digit(i));
            i += 1;
        }
        fraction.truncate(scale);
        out.push('.');
        out.push_str(&fraction);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric(count: u16, weight: i16, sign: u16, scale: u16, digits: &[u16]) -> Vec<u8> {
        let mut out = Vec::new();
        for word in [count, weight as u16, sign, scale].iter().chain(digits) {
            out.extend_from_slice(&word.to_be_bytes());
        }
        out
    }

    #[test]
    fn numerics_render_with_their_display_scale() {
        let cases = [
            (numeric(0, 0, 0, 0, &[]), "0"),
            (numeric(0, 0, 0, 2, &[]), "0.00"),
            // 12345.6700 = 1|2345|.6700
            (numeric(3, 1, 0, 4, &[1, 2345, 6700]), "12345.6700"),
            // -0.001 = .0010 at weight -1
            (numeric(1, -1, 0x4000, 3, &[10]), "-0.001"),
            // 100000000 = 1|0000|0000, trailing zero digits omitted
            (numeric(1, 2, 0, 0, &[1]), "100000000"),
            // 0.00000001 = weight -2: .0000|0001
            (numeric(1, -2, 0, 8, &[1]), "0.00000001"),
            (numeric(0, 0, 0xC000, 0, &[]), "NaN"),
            (numeric(0, 0, 0xF000, 0, &[]), "-Infinity"),
        ];
        for (bytes, expected) in cases {
            assert_eq!(
                numeric_text(&bytes).as_deref(),
                Some(expected),
                "{expected}"
            );
        }
        assert_eq!(numeric_text(&[0, 1]), None, "truncated");
        assert_eq!(
            numeric_text(&numeric(2, 0, 0, 0, &[1])),
            None,
            "short digits"
        );
    }

    #[test]
    fn only_postgres_urls_are_accepted_and_the_location_hides_the_password() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let opened = open(
                "postgres://app:s3cret@db.internal:6432/customers",
                Duration::from_millis(500),
                2,
            )
            .unwrap();
            assert_eq!(opened.location, "db.internal:6432/customers");
            let Err(err) = open("mysql://db/x", Duration::from_millis(500), 2) else {
                panic!("a mysql URL opened a postgres pool");
            };
            assert!(err.contains("postgres://"), "{err}");
        });
    }
}
