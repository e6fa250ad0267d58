//! Reading a data file row by row: a JSON array of objects or a CSV file
//! with a header row, streamed so a large file is never held as values.
//! The `file` backend indexes the rows; `verigate import` inserts them into
//! SQLite. Both refuse the same bad rows with the same messages, so the
//! rules live here once: a row without a key column, two rows with one key,
//! a JSON element that is not an object, a CSV row of the wrong length.

use std::{collections::HashMap, fmt, path::Path};

use serde::{
    Deserializer as _,
    de::{DeserializeSeed, Error as _, SeqAccess, Visitor},
};
use serde_json::{Map, Value};

/// How a data file is written, decided by its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A JSON array of objects (any extension but `.csv`).
    Json,
    /// A CSV file with a header row (`.csv`).
    Csv,
}

impl Format {
    /// `.csv` (any case) is CSV; everything else is read as JSON.
    pub fn of(path: &Path) -> Format {
        let is_csv = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
        if is_csv { Format::Csv } else { Format::Json }
    }
}

/// One row of a data file, numbered from 1.
pub struct SourceRow<'a> {
    number: u32,
    cells: Cells<'a>,
}

enum Cells<'a> {
    Json(&'a Map<String, Value>),
    Csv {
        position: &'a HashMap<&'a str, usize>,
        record: &'a csv::StringRecord,
    },
}

impl SourceRow<'_> {
    /// The row's 1-based number (the header and the array bracket do not count).
    pub fn number(&self) -> u32 {
        self.number
    }

    /// The text of `column`: strings as they are, numbers and booleans as
    /// their JSON text, nested values as JSON; `None` when absent or null.
    pub fn get(&self, column: &str) -> Result<Option<String>, String> {
        match &self.cells {
            Cells::Json(object) => json_text(object, column, self.number),
            Cells::Csv { position, record } => Ok(position
                .get(column)
                .and_then(|&i| record.get(i))
                .map(str::to_owned)),
        }
    }

    /// A JSON row's own column names (rows may differ); `None` for CSV,
    /// whose columns are the header's.
    pub fn json_columns(&self) -> Option<impl Iterator<Item = &str>> {
        match &self.cells {
            Cells::Json(object) => Some(object.keys().map(String::as_str)),
            Cells::Csv { .. } => None,
        }
    }

    /// The row's key: the key columns' values, length-prefixed so that
    /// ("ab","c") and ("a","bc") differ. A missing or null key column is
    /// an error naming the row.
    pub fn key(&self, key: &[String]) -> Result<Vec<u8>, String> {
        let mut parts = Vec::with_capacity(key.len());
        for column in key {
            match self.get(column)? {
                Some(value) => parts.push(value),
                None => {
                    return Err(format!(
                        "row {}: missing key column \"{column}\"",
                        self.number
                    ));
                }
            }
        }
        Ok(encode_key(parts.iter().map(|p| p.as_bytes())))
    }
}

/// The refusal for a key seen before.
pub fn duplicate_key(first: u32, again: u32, key: &[String]) -> String {
    format!(
        "rows {first} and {again} have the same key ({})",
        key.join(", ")
    )
}

/// Length-prefixed concatenation, so ("ab","c") and ("a","bc") differ.
pub fn encode_key<'a>(parts: impl Iterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    for part in parts {
        out.extend_from_slice(&(part.len() as u32).to_le_bytes());
        out.extend_from_slice(part);
    }
    out
}

/// What a reader does with the rows.
pub trait RowSink {
    /// CSV only: the header row, before any data row. An error stops the read.
    fn header(&mut self, columns: &[&str]) -> Result<(), String>;
    /// One data row. An error stops the read.
    fn row(&mut self, row: &SourceRow<'_>) -> Result<(), String>;
}

/// Reads `path` into `sink`; errors are prefixed with the path.
pub fn read_file(path: &Path, sink: &mut impl RowSink) -> Result<(), String> {
    let shown = path.display();
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    read_bytes(&bytes, Format::of(path), sink).map_err(|e| format!("{shown}: {e}"))
}

/// Reads a whole file's bytes into `sink`.
pub fn read_bytes(bytes: &[u8], format: Format, sink: &mut impl RowSink) -> Result<(), String> {
    match format {
        Format::Csv => read_csv(bytes, sink),
        Format::Json => read_json(bytes, sink),
    }
}

fn read_csv(bytes: &[u8], sink: &mut impl RowSink) -> Result<(), String> {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let mut reader = csv::Reader::from_reader(bytes);
    let headers = reader
        .headers()
        .map_err(|e| format!("cannot read the header row: {e}"))?
        .clone();
    let names: Vec<&str> = headers.iter().collect();
    sink.header(&names)?;
    let position: HashMap<&str, usize> = names.iter().enumerate().map(|(i, h)| (*h, i)).collect();
    let mut record = csv::StringRecord::new();
    let mut number: u32 = 0;
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(format!("row {}: {e}", number + 1)),
        }
        number += 1;
        sink.row(&SourceRow {
            number,
            cells: Cells::Csv {
                position: &position,
                record: &record,
            },
        })?;
    }
    Ok(())
}

fn read_json(bytes: &[u8], sink: &mut impl RowSink) -> Result<(), String> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    (&mut deserializer)
        .deserialize_seq(RowsVisitor { sink })
        .and_then(|()| deserializer.end())
        .map_err(|e| e.to_string())
}

/// Streams the top-level array, one element at a time.
struct RowsVisitor<'s, S> {
    sink: &'s mut S,
}

impl<'de, S: RowSink> Visitor<'de> for RowsVisitor<'_, S> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON array of objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut number: u32 = 0;
        while let Some(row) = seq.next_element_seed(RowSeed)? {
            number += 1;
            let Some(object) = row else {
                return Err(A::Error::custom(format!("row {number} is not an object")));
            };
            self.sink
                .row(&SourceRow {
                    number,
                    cells: Cells::Json(&object),
                })
                .map_err(A::Error::custom)?;
        }
        Ok(())
    }
}

/// One array element: `Some(object)`, or `None` for anything else.
struct RowSeed;

impl<'de> DeserializeSeed<'de> for RowSeed {
    type Value = Option<Map<String, Value>>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        let value: Value = serde::Deserialize::deserialize(d)?;
        Ok(match value {
            Value::Object(object) => Some(object),
            _ => None,
        })
    }
}

/// A JSON cell as text: strings as they are, numbers and booleans as JSON
/// text, null as absent; nested values as their JSON text.
fn json_text(
    object: &Map<String, Value>,
    column: &str,
    number: u32,
) -> Result<Option<String>, String> {
    Ok(match object.get(column) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(Value::Bool(b)) => Some(b.to_string()),
        Some(nested) => serde_json::to_string(nested)
            .map(Some)
            .map_err(|e| format!("row {number}: column \"{column}\": {e}"))?,
    })
}
