//! `verigate import --backend NAME FILE`: builds the SQLite table that a
//! `sqlite` backend's query reads, from a JSON or CSV data file read by the
//! same rules as the `file` backend.
//!
//! The table is the backend's `table` key. Its columns are the file's
//! (every one `TEXT`; a JSON row without a column, or with null, stores
//! NULL), and a unique index covers the backend's `params`, which must be
//! columns of the file, as a file backend's `key` must. The file is checked
//! whole before anything is written; then one transaction replaces the
//! table, so a failed import leaves the previous table serving.

use std::{
    collections::{HashMap, hash_map::Entry},
    path::{Path, PathBuf},
};

use indicatif::{ProgressBar, ProgressStyle};
use secrecy::ExposeSecret as _;
use sqlx::{Connection as _, Executor as _, sqlite::SqliteConnection};

use crate::{
    backend::{
        source::{self, RowSink, SourceRow},
        sql::sqlite,
    },
    configuration::{BackendSettings, ConfigError, Settings, SqliteBackendSettings},
};

/// Rows from which on a terminal shows a progress bar while writing.
const PROGRESS_FROM_ROWS: u64 = 1_000;
/// File size from which on a terminal shows a counter while checking.
const PROGRESS_FROM_BYTES: u64 = 1 << 20;
/// SQLite's limit on bound parameters in one statement (since 3.32).
const MAX_PARAMETERS: usize = 32_766;
/// Rows per INSERT statement, at most.
const ROWS_PER_INSERT: usize = 100;

/// Why an import did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The configuration or the backend named is unfit.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The data file is unreadable or has a bad row (its number is given).
    #[error("{0}")]
    Data(String),
    /// SQLite refused.
    #[error("cannot write {path}: {source}")]
    Database {
        /// The database file.
        path: String,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportReport {
    /// The table written.
    pub table: String,
    /// Its columns, in order.
    pub columns: Vec<String>,
    /// Rows inserted.
    pub rows: u64,
    /// The database file.
    pub database: PathBuf,
}

/// Imports `file` into the table of sqlite backend `backend`.
pub async fn import(
    settings: &Settings,
    backend: &str,
    file: &Path,
) -> Result<ImportReport, ImportError> {
    let (index, target) = find_backend(settings, backend)?;
    let at = |key: &str| format!("backends[{index}].{key}");
    let table = target.table.as_deref().ok_or_else(|| {
        ConfigError::new(
            at("table"),
            "name the table to create, e.g. table = \"customers\"",
        )
    })?;
    check_identifier(table).map_err(|reason| ConfigError::new(at("table"), reason))?;
    if target.params.is_empty() {
        return Err(ConfigError::new(at("params"), "name at least one key column").into());
    }
    let (url, _) = target.url.resolve(&at("url"))?;
    let options = sqlite::connect_options(url.expose_secret())
        .map_err(|reason| ConfigError::new(at("url"), reason))?
        .create_if_missing(true)
        .busy_timeout(std::time::Duration::from_secs(5));
    let database = options.get_filename().to_owned();

    // Check the whole file before writing anything.
    let scan = {
        let file = file.to_owned();
        let key = target.params.clone();
        let counter = check_counter(&file);
        tokio::task::spawn_blocking(move || {
            let scanned = scan(&file, &key, &counter);
            counter.finish_and_clear();
            scanned
        })
        .await
        .map_err(|e| ImportError::Data(format!("the file check stopped: {e}")))??
    };

    if let Some(parent) = database.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| ImportError::Data(format!("cannot create {}: {e}", parent.display())))?;
    }
    let shown = database.display().to_string();
    let db_error = |source| ImportError::Database {
        path: shown.clone(),
        source,
    };
    let mut connection = SqliteConnection::connect_with(&options)
        .await
        .map_err(db_error)?;
    let rows = write_table(&mut connection, table, &target.params, &scan, file)
        .await
        .map_err(|e| match e {
            WriteError::Database(source) => db_error(source),
            WriteError::Data(message) => ImportError::Data(message),
        })?;
    connection.close().await.map_err(db_error)?;
    Ok(ImportReport {
        table: table.to_owned(),
        columns: scan.columns,
        rows,
        database,
    })
}

fn find_backend<'a>(
    settings: &'a Settings,
    name: &str,
) -> Result<(usize, &'a SqliteBackendSettings), ConfigError> {
    let Some((index, backend)) = settings
        .backends
        .iter()
        .enumerate()
        .find(|(_, b)| b.name() == name)
    else {
        let names: Vec<&str> = settings.backends.iter().map(|b| b.name()).collect();
        return Err(ConfigError::new(
            "--backend",
            format!(
                "no backend named \"{name}\" (configured: {})",
                names.join(", ")
            ),
        ));
    };
    match backend {
        BackendSettings::Sqlite(sqlite) => Ok((index, sqlite)),
        other => Err(ConfigError::new(
            format!("backends[{index}].kind"),
            format!(
                "backend \"{name}\" is kind \"{}\"; import builds tables for sqlite backends only",
                other.kind()
            ),
        )),
    }
}

/// Table and column names are quoted, but a table name is also written in
/// the operator's query: keep it a plain identifier.
fn check_identifier(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let plain = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain {
        Ok(())
    } else {
        Err(format!(
            "\"{name}\" is not a plain table name (letters, digits and _, not starting with a digit)"
        ))
    }
}

/// `"name"`, with inner quotes doubled.
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// What the checking pass learnt.
#[derive(Debug)]
struct Scan {
    columns: Vec<String>,
    rows: u64,
}

/// Reads the whole file once: its columns (the CSV header, or the union of
/// the JSON rows' keys), its row count, and every rule a bad row breaks.
fn scan(file: &Path, key: &[String], counter: &ProgressBar) -> Result<Scan, ImportError> {
    struct Checker<'a> {
        counter: &'a ProgressBar,
        key: &'a [String],
        columns: Vec<String>,
        keys: HashMap<Vec<u8>, u32>,
        rows: u64,
    }
    impl Checker<'_> {
        fn add_column(&mut self, column: &str) -> Result<(), String> {
            if column.is_empty() {
                return Err("a column has an empty name".into());
            }
            if !self.columns.iter().any(|c| c == column) {
                self.columns.push(column.to_owned());
            }
            Ok(())
        }
    }
    impl RowSink for Checker<'_> {
        fn header(&mut self, columns: &[&str]) -> Result<(), String> {
            for column in self.key {
                if !columns.contains(&column.as_str()) {
                    return Err(format!("the header has no key column \"{column}\""));
                }
            }
            for (i, column) in columns.iter().enumerate() {
                if columns[..i].contains(column) {
                    return Err(format!("the header names column \"{column}\" twice"));
                }
                self.add_column(column)?;
            }
            Ok(())
        }

        fn row(&mut self, row: &SourceRow<'_>) -> Result<(), String> {
            if let Some(columns) = row.json_columns() {
                for column in columns {
                    self.add_column(column)
                        .map_err(|e| format!("row {}: {e}", row.number()))?;
                }
            }
            match self.keys.entry(row.key(self.key)?) {
                Entry::Occupied(first) => {
                    return Err(source::duplicate_key(*first.get(), row.number(), self.key));
                }
                Entry::Vacant(slot) => {
                    slot.insert(row.number());
                }
            }
            self.rows += 1;
            if self.rows.is_multiple_of(1_000) {
                self.counter.set_position(self.rows);
            }
            Ok(())
        }
    }

    let mut checker = Checker {
        counter,
        key,
        columns: Vec::new(),
        keys: HashMap::new(),
        rows: 0,
    };
    source::read_file(file, &mut checker).map_err(ImportError::Data)?;
    if checker.rows == 0 {
        return Err(ImportError::Data(format!(
            "{}: the file has no rows",
            file.display()
        )));
    }
    Ok(Scan {
        columns: checker.columns,
        rows: checker.rows,
    })
}

enum WriteError {
    Database(sqlx::Error),
    Data(String),
}

impl From<sqlx::Error> for WriteError {
    fn from(e: sqlx::Error) -> Self {
        WriteError::Database(e)
    }
}

/// Replaces `table` with the file's rows in one transaction. The rows are
/// read again on a blocking thread and sent here in batches.
async fn write_table(
    connection: &mut SqliteConnection,
    table: &str,
    key: &[String],
    scan: &Scan,
    file: &Path,
) -> Result<u64, WriteError> {
    let columns = &scan.columns;
    let mut transaction = connection.begin().await?;
    let column_list: Vec<String> = columns.iter().map(|c| quote(c)).collect();
    let key_list: Vec<String> = key.iter().map(|c| quote(c)).collect();
    let ddl = format!(
        "DROP TABLE IF EXISTS {t};\n\
         CREATE TABLE {t} ({columns});\n\
         CREATE UNIQUE INDEX {index} ON {t} ({key});",
        t = quote(table),
        columns = column_list
            .iter()
            .map(|c| format!("{c} TEXT"))
            .collect::<Vec<_>>()
            .join(", "),
        index = quote(&format!("{table}_key")),
        key = key_list.join(", "),
    );
    transaction.execute(sqlx::raw_sql(&ddl)).await?;

    let per_insert = ROWS_PER_INSERT
        .min(MAX_PARAMETERS / columns.len().max(1))
        .max(1);
    let progress = progress_bar(scan.rows);
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<Vec<Vec<Option<String>>>>(4);
    let reader = {
        let file = file.to_owned();
        let columns = columns.clone();
        tokio::task::spawn_blocking(move || {
            let mut batcher = Batcher {
                columns: &columns,
                per_insert,
                batch: Vec::with_capacity(per_insert),
                sender,
            };
            source::read_file(&file, &mut batcher)?;
            batcher.flush()
        })
    };

    let mut inserted: u64 = 0;
    while let Some(batch) = receiver.recv().await {
        let placeholders = format!("({})", vec!["?"; columns.len()].join(", "));
        let sql = format!(
            "INSERT INTO {} ({}) VALUES {}",
            quote(table),
            column_list.join(", "),
            vec![placeholders; batch.len()].join(", ")
        );
        let mut insert = sqlx::query(&sql);
        for row in &batch {
            for value in row {
                insert = insert.bind(value.as_deref());
            }
        }
        insert.execute(&mut *transaction).await?;
        inserted += batch.len() as u64;
        progress.set_position(inserted);
    }
    reader
        .await
        .map_err(|e| WriteError::Data(format!("reading the file stopped: {e}")))?
        .map_err(WriteError::Data)?;
    if inserted != scan.rows {
        // The file changed between the check and the write.
        return Err(WriteError::Data(format!(
            "{}: the file changed while importing ({} rows checked, {inserted} read)",
            file.display(),
            scan.rows
        )));
    }
    transaction.commit().await?;
    progress.finish_and_clear();
    Ok(inserted)
}

/// Counts rows while a large file is checked (its row count is not known
/// yet). Like the bar, drawn only on a terminal.
fn check_counter(file: &Path) -> ProgressBar {
    let large = std::fs::metadata(file).is_ok_and(|m| m.len() >= PROGRESS_FROM_BYTES);
    if !large {
        return ProgressBar::hidden();
    }
    let counter = ProgressBar::new_spinner();
    if let Ok(style) = ProgressStyle::with_template("{spinner} checking: {pos} rows") {
        counter.set_style(style);
    }
    counter.enable_steady_tick(std::time::Duration::from_millis(200));
    counter
}

/// Drawn on standard error, and only when it is a terminal (indicatif
/// hides it otherwise), so logs and pipes stay clean.
fn progress_bar(rows: u64) -> ProgressBar {
    if rows < PROGRESS_FROM_ROWS {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(rows);
    if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} rows  eta {eta}") {
        bar.set_style(style);
    }
    bar
}

/// Collects rows into batches for the writer.
struct Batcher<'a> {
    columns: &'a [String],
    per_insert: usize,
    batch: Vec<Vec<Option<String>>>,
    sender: tokio::sync::mpsc::Sender<Vec<Vec<Option<String>>>>,
}

impl Batcher<'_> {
    fn flush(&mut self) -> Result<(), String> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(self.per_insert));
        self.sender
            .blocking_send(batch)
            .map_err(|_| "the database writer stopped".to_owned())
    }
}

impl RowSink for Batcher<'_> {
    fn header(&mut self, _: &[&str]) -> Result<(), String> {
        Ok(())
    }

    fn row(&mut self, row: &SourceRow<'_>) -> Result<(), String> {
        let values = self
            .columns
            .iter()
            .map(|c| row.get(c))
            .collect::<Result<Vec<_>, _>>()?;
        self.batch.push(values);
        if self.batch.len() >= self.per_insert {
            self.flush()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_must_be_plain_identifiers() {
        for good in ["customers", "_t", "t2"] {
            assert!(check_identifier(good).is_ok(), "{good}");
        }
        for bad in ["", "2t", "a b", "t;drop", "\"t\"", "고객"] {
            assert!(check_identifier(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn names_are_quoted_with_inner_quotes_doubled() {
        assert_eq!(quote("userName"), "\"userName\"");
        assert_eq!(quote("a\"b"), "\"a\"\"b\"");
    }
}
