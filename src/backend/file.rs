//! The `file` backend: a JSON array of objects or a CSV file with a header
//! row, indexed by its key columns at load for O(1) lookups. Only the
//! columns some route returns are kept in memory. SIGHUP re-reads the file;
//! a bad new file leaves the old index serving.

use std::{
    collections::{HashMap, hash_map::Entry},
    fmt,
    path::{Path, PathBuf},
    sync::Arc,
};

use arc_swap::ArcSwap;

use super::{
    Record, RowValues,
    source::{self, RowSink, SourceRow},
};
use crate::configuration::{ConfigError, FileBackendSettings};

/// A loaded file backend.
pub struct FileBackend {
    name: String,
    path: PathBuf,
    config_path: String,
    key_columns: Vec<String>,
    columns: Arc<[Box<str>]>,
    index: ArcSwap<FileIndex>,
}

impl fmt::Debug for FileBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileBackend")
            .field("name", &self.name)
            .field("path", &self.path)
            .field("rows", &self.index.load().rows.len())
            .finish()
    }
}

/// The rows of one load of the file.
struct FileIndex {
    rows: HashMap<Box<[u8]>, Row, foldhash::fast::RandomState>,
    /// Which kept columns appear in at least one row (CSV: in the header).
    seen: Vec<bool>,
}

struct Row {
    number: u32,
    values: RowValues,
}

impl FileBackend {
    /// Loads backend `index` (for error paths), keeping `columns`.
    pub fn load(
        index: usize,
        settings: &FileBackendSettings,
        columns: &[String],
    ) -> Result<FileBackend, ConfigError> {
        let config_path = format!("backends[{index}]");
        if settings.key.is_empty() {
            return Err(ConfigError::new(
                format!("{config_path}.key"),
                "name at least one key column",
            ));
        }
        let columns: Arc<[Box<str>]> = columns.iter().map(|c| c.as_str().into()).collect();
        let loaded = read_index(&settings.path, &settings.key, &columns)
            .map_err(|reason| ConfigError::new(format!("{config_path}.path"), reason))?;
        Ok(FileBackend {
            name: settings.name.clone(),
            path: settings.path.clone(),
            config_path,
            key_columns: settings.key.clone(),
            columns,
            index: ArcSwap::from_pointee(loaded),
        })
    }

    /// The configured name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The data file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The key columns, in the order [`FileBackend::lookup`] takes them.
    pub fn key_columns(&self) -> &[String] {
        &self.key_columns
    }

    /// True when `column` is a kept column that appears in the file.
    pub fn provides(&self, column: &str) -> bool {
        let index = self.index.load();
        self.columns
            .iter()
            .zip(&index.seen)
            .any(|(c, seen)| &**c == column && *seen)
    }

    /// Number of indexed rows.
    pub fn len(&self) -> usize {
        self.index.load().rows.len()
    }

    /// True when the file has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The row whose key columns equal `key` (`None` = empty string).
    pub fn lookup(&self, key: &[Option<&str>]) -> Option<Record> {
        let mut buffer = KeyBuffer::default();
        for part in key {
            buffer.push(part.unwrap_or("").as_bytes());
        }
        let index = self.index.load();
        let row = index.rows.get(buffer.as_slice())?;
        Some(Record::shared(
            Arc::clone(&self.columns),
            Arc::clone(&row.values),
        ))
    }

    /// Re-reads the file; on failure the old index keeps serving.
    pub fn reload(&self) {
        match read_index(&self.path, &self.key_columns, &self.columns) {
            Ok(loaded) => {
                let rows = loaded.rows.len();
                self.index.store(Arc::new(loaded));
                tracing::info!(backend = %self.name, rows, "reloaded the data file");
            }
            Err(reason) => tracing::error!(
                backend = %self.name,
                key = %format!("{}.path", self.config_path),
                %reason,
                "the new data file is invalid; still serving the previous one"
            ),
        }
    }
}

/// [`source::encode_key`] on the stack for the usual short keys: a lookup then
/// allocates nothing.
struct KeyBuffer {
    inline: [u8; 96],
    len: usize,
    spilled: Option<Vec<u8>>,
}

impl Default for KeyBuffer {
    fn default() -> Self {
        Self {
            inline: [0; 96],
            len: 0,
            spilled: None,
        }
    }
}

impl KeyBuffer {
    fn push(&mut self, part: &[u8]) {
        let prefix = (part.len() as u32).to_le_bytes();
        if let Some(spilled) = &mut self.spilled {
            spilled.extend_from_slice(&prefix);
            spilled.extend_from_slice(part);
            return;
        }
        let end = self.len + prefix.len() + part.len();
        if end <= self.inline.len() {
            self.inline[self.len..self.len + 4].copy_from_slice(&prefix);
            self.inline[self.len + 4..end].copy_from_slice(part);
            self.len = end;
        } else {
            let mut spilled = Vec::with_capacity(end * 2);
            spilled.extend_from_slice(&self.inline[..self.len]);
            spilled.extend_from_slice(&prefix);
            spilled.extend_from_slice(part);
            self.spilled = Some(spilled);
        }
    }

    fn as_slice(&self) -> &[u8] {
        match &self.spilled {
            Some(spilled) => spilled,
            None => &self.inline[..self.len],
        }
    }
}

fn read_index(path: &Path, key: &[String], columns: &[Box<str>]) -> Result<FileIndex, String> {
    let mut builder = IndexBuilder::new(key, columns);
    source::read_file(path, &mut builder)?;
    Ok(builder.finish())
}

/// Accumulates rows, checking keys as they come.
struct IndexBuilder<'a> {
    key: &'a [String],
    columns: &'a [Box<str>],
    rows: HashMap<Box<[u8]>, Row, foldhash::fast::RandomState>,
    seen: Vec<bool>,
}

impl<'a> IndexBuilder<'a> {
    fn new(key: &'a [String], columns: &'a [Box<str>]) -> Self {
        Self {
            key,
            columns,
            rows: HashMap::default(),
            seen: vec![false; columns.len()],
        }
    }

    fn mark_seen(&mut self, column: &str) {
        if let Some(i) = self.columns.iter().position(|c| &**c == column) {
            self.seen[i] = true;
        }
    }

    fn finish(self) -> FileIndex {
        FileIndex {
            rows: self.rows,
            seen: self.seen,
        }
    }
}

impl RowSink for IndexBuilder<'_> {
    fn header(&mut self, columns: &[&str]) -> Result<(), String> {
        for column in self.key {
            if !columns.contains(&column.as_str()) {
                return Err(format!("the header has no key column \"{column}\""));
            }
        }
        for column in columns {
            self.mark_seen(column);
        }
        Ok(())
    }

    fn row(&mut self, row: &SourceRow<'_>) -> Result<(), String> {
        if let Some(columns) = row.json_columns() {
            for column in columns {
                self.mark_seen(column);
            }
        }
        let key = row.key(self.key)?.into_boxed_slice();
        let mut values = Vec::with_capacity(self.columns.len());
        for column in self.columns {
            values.push(row.get(column)?.map(String::into_boxed_str));
        }
        match self.rows.entry(key) {
            Entry::Occupied(existing) => Err(source::duplicate_key(
                existing.get().number,
                row.number(),
                self.key,
            )),
            Entry::Vacant(slot) => {
                slot.insert(Row {
                    number: row.number(),
                    values: values.into(),
                });
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(path: &Path, key: &[&str]) -> FileBackendSettings {
        FileBackendSettings {
            name: "customers".into(),
            path: path.to_owned(),
            key: key.iter().map(|k| k.to_string()).collect(),
        }
    }

    fn columns(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn json_rows_are_indexed_by_their_key_columns() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            &dir,
            "c.json",
            r#"[{"callNum":"1","nation":"korea","userName":"홍길동","id":7,"phone":"010"},
                {"callNum":"1","nation":"","userName":null,"id":"x"}]"#,
        );
        let backend = FileBackend::load(
            0,
            &settings(&path, &["callNum", "nation"]),
            &columns(&["userName", "id"]),
        )
        .unwrap();
        let found = backend.lookup(&[Some("1"), Some("korea")]).unwrap();
        assert_eq!(found.get("userName"), Some("홍길동"));
        assert_eq!(found.get("id"), Some("7"));
        assert_eq!(found.get("phone"), None, "only kept columns leave");
        let empty_nation = backend.lookup(&[Some("1"), None]).unwrap();
        assert_eq!(empty_nation.get("userName"), None);
        assert_eq!(empty_nation.get("id"), Some("x"));
        assert!(backend.lookup(&[Some("2"), Some("korea")]).is_none());
        assert!(backend.provides("userName"));
        assert!(!backend.provides("phone"), "not kept");
    }

    #[test]
    fn csv_rows_are_indexed_too() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "c.csv", "callNum,userName\n1,Kim\n2,\"Lee, J\"\n");
        let backend =
            FileBackend::load(0, &settings(&path, &["callNum"]), &columns(&["userName"])).unwrap();
        assert_eq!(
            backend.lookup(&[Some("2")]).unwrap().get("userName"),
            Some("Lee, J")
        );
        assert_eq!(backend.len(), 2);
    }

    #[test]
    fn bad_files_are_refused_with_row_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            (
                "dup.json",
                r#"[{"k":"1"},{"k":"2"},{"k":"1"}]"#,
                "rows 1 and 3 have the same key",
            ),
            (
                "missing.json",
                r#"[{"k":"1"},{"x":"2"}]"#,
                "row 2: missing key column \"k\"",
            ),
            ("null.json", r#"[{"k":null}]"#, "row 1: missing key column"),
            ("scalar.json", r#"[{"k":"1"}, 5]"#, "row 2 is not an object"),
            ("object.json", r#"{"k":"1"}"#, "array"),
            ("broken.json", r#"[{"k":"1"},"#, "EOF"),
            (
                "dup.csv",
                "k,v\n1,a\n1,b\n",
                "rows 1 and 2 have the same key",
            ),
            ("ragged.csv", "k,v\n1,a\n2\n", "row 2"),
            ("nokey.csv", "x,v\n1,a\n", "no key column \"k\""),
        ];
        for (name, text, expected) in cases {
            let path = write(&dir, name, text);
            let err = FileBackend::load(3, &settings(&path, &["k"]), &columns(&["v"])).unwrap_err();
            assert_eq!(err.path, "backends[3].path", "{name}");
            assert!(err.reason.contains(expected), "{name}: {}", err.reason);
        }
        let err = FileBackend::load(0, &settings(&dir.path().join("absent.json"), &["k"]), &[])
            .unwrap_err();
        assert!(err.reason.contains("cannot read"), "{}", err.reason);
    }

    #[test]
    fn long_keys_spill_to_the_heap_and_still_match() {
        let dir = tempfile::tempdir().unwrap();
        let long = "가".repeat(60);
        let path = write(
            &dir,
            "c.json",
            &format!(r#"[{{"k":"{long}","v":"long"}},{{"k":"ab","v":"short"}}]"#),
        );
        let backend = FileBackend::load(0, &settings(&path, &["k"]), &columns(&["v"])).unwrap();
        assert_eq!(
            backend.lookup(&[Some(&long)]).unwrap().get("v"),
            Some("long")
        );
        assert_eq!(
            backend.lookup(&[Some("ab")]).unwrap().get("v"),
            Some("short")
        );
        assert!(backend.lookup(&[Some(&long[..long.len() - 3])]).is_none());
    }

    #[test]
    fn a_bad_reload_keeps_the_old_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "c.json", r#"[{"k":"1","v":"a"}]"#);
        let backend = FileBackend::load(0, &settings(&path, &["k"]), &columns(&["v"])).unwrap();
        std::fs::write(&path, "[{").unwrap();
        backend.reload();
        assert_eq!(backend.lookup(&[Some("1")]).unwrap().get("v"), Some("a"));
        std::fs::write(&path, r#"[{"k":"2","v":"b"}]"#).unwrap();
        backend.reload();
        assert!(backend.lookup(&[Some("1")]).is_none());
        assert_eq!(backend.lookup(&[Some("2")]).unwrap().get("v"), Some("b"));
    }
}
