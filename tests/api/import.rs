//! `verigate import`: the shipped sample data becomes a SQLite table that
//! the shipped example configuration serves; bad rows are refused with
//! their row numbers and leave the previous table serving.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use serde_json::{Value, json};
use sqlx::Connection as _;

use crate::helpers::{Call, spawn_app_with, status_and_json, verigate_bin};

/// The repository's own files.
fn shipped(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// A working directory laid out like the repository: `data/` and
/// `examples/sqlite.toml`.
fn workdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    std::fs::create_dir(dir.path().join("examples")).unwrap();
    for file in ["data/customers.json", "examples/sqlite.toml"] {
        std::fs::copy(shipped(file), dir.path().join(file)).unwrap();
    }
    dir
}

/// Runs `verigate import` in `dir`: exit code, stdout, stderr.
fn import(dir: &Path, backend: &str, file: &str) -> (i32, String, String) {
    let output = Command::new(verigate_bin())
        .current_dir(dir)
        .args(["import", "--config", "examples/sqlite.toml", "--backend"])
        .arg(backend)
        .arg(file)
        .env_remove("VERIGATE_CONFIG")
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The example configuration, on a free port, reading `dir`'s database.
fn example_config(dir: &Path) -> String {
    let text = std::fs::read_to_string(shipped("examples/sqlite.toml")).unwrap();
    let database = dir.join("data/customers.db");
    assert!(
        text.contains("sqlite://data/customers.db"),
        "the example moved"
    );
    text.replace("127.0.0.1:8080", "127.0.0.1:0").replace(
        "sqlite://data/customers.db",
        &format!("sqlite://{}", database.display()),
    )
}

async fn row_count(dir: &Path) -> i64 {
    let url = format!("sqlite://{}", dir.join("data/customers.db").display());
    let mut connection = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query_scalar("SELECT COUNT(*) FROM customers")
        .fetch_one(&mut connection)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_shipped_sample_imports_and_the_sqlite_example_serves_it() {
    // Arrange
    let dir = workdir();
    let sample: Vec<Value> =
        serde_json::from_slice(&std::fs::read(shipped("data/customers.json")).unwrap()).unwrap();

    // Act
    let (code, stdout, stderr) = import(dir.path(), "customers", "data/customers.json");

    // Assert: every row is in, and the example answers as the file backend does.
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains(&format!(
            "imported {} rows into table customers",
            sample.len()
        )),
        "{stdout}"
    );
    assert_eq!(row_count(dir.path()).await, sample.len() as i64);
    let app = spawn_app_with(&example_config(dir.path())).await;
    for row in sample.iter().step_by(37).chain(sample.last()) {
        let body = json!({"callNum": row["callNum"], "nation": row["nation"]});
        let (status, answer) = status_and_json(Call::new(body.to_string()).send(&app).await).await;
        assert_eq!(status, 200, "{body}: {answer}");
        assert_eq!(
            answer,
            json!({"data": {"userName": row["userName"], "id": row["id"]}}),
            "{body}"
        );
    }
    let (status, answer) = status_and_json(
        Call::new(r#"{"callNum":"1","nation":"korea"}"#)
            .send(&app)
            .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        answer,
        json!({"data": {"userName": "test", "id": "testId"}})
    );
    let (status, answer) = status_and_json(Call::new(r#"{"callNum":"1"}"#).send(&app).await).await;
    assert_eq!(status, 400, "no row has an empty nation: {answer}");
    assert_eq!(answer["error"]["code"], "no_result");
}

#[tokio::test]
async fn a_csv_file_imports_with_korean_text_and_quoted_commas() {
    let dir = workdir();
    std::fs::write(
        dir.path().join("data/people.csv"),
        "\u{feff}callNum,nation,userName,id\n7,korea,\"김, 민수\",kim\n8,,이영희,\n",
    )
    .unwrap();

    let (code, stdout, stderr) = import(dir.path(), "customers", "data/people.csv");

    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("imported 2 rows"), "{stdout}");
    let app = spawn_app_with(&example_config(dir.path())).await;
    let (status, answer) = status_and_json(
        Call::new(r#"{"callNum":"7","nation":"korea"}"#)
            .send(&app)
            .await,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer,
        json!({"data": {"userName": "김, 민수", "id": "kim"}})
    );
    // An empty CSV cell is the empty string, like the file backend's.
    let (status, answer) = status_and_json(Call::new(r#"{"callNum":"8"}"#).send(&app).await).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer, json!({"data": {"userName": "이영희", "id": ""}}));
}

#[tokio::test]
async fn bad_rows_are_refused_with_their_row_numbers_and_the_old_table_stays() {
    // Arrange: a good import first.
    let dir = workdir();
    let (code, _, stderr) = import(dir.path(), "customers", "data/customers.json");
    assert_eq!(code, 0, "{stderr}");
    let before = row_count(dir.path()).await;
    let cases = [
        (
            "missing.json",
            r#"[{"callNum":"1","nation":"a"},{"nation":"b"}]"#,
            "row 2: missing key column \"callNum\"",
        ),
        (
            "null-key.json",
            r#"[{"callNum":null,"nation":"a"}]"#,
            "row 1: missing key column \"callNum\"",
        ),
        (
            "duplicate.json",
            r#"[{"callNum":"1","nation":"a"},{"callNum":"2","nation":"a"},{"callNum":"1","nation":"a"}]"#,
            "rows 1 and 3 have the same key (callNum, nation)",
        ),
        (
            "scalar.json",
            r#"[{"callNum":"1","nation":"a"}, "2"]"#,
            "row 2 is not an object",
        ),
        ("object.json", r#"{"callNum":"1"}"#, "array"),
        (
            "ragged.csv",
            "callNum,nation,userName\n1,a,x\n2,b\n",
            "row 2",
        ),
        (
            "no-key.csv",
            "callNum,userName\n1,x\n",
            "the header has no key column \"nation\"",
        ),
        (
            "twice.csv",
            "callNum,nation,nation\n1,a,b\n",
            "names column \"nation\" twice",
        ),
        ("empty.json", "[]", "no rows"),
    ];

    for (name, text, expected) in cases {
        // Act
        std::fs::write(dir.path().join(name), text).unwrap();
        let (code, stdout, stderr) = import(dir.path(), "customers", name);

        // Assert
        assert_eq!(code, 1, "{name}: {stdout}");
        assert!(
            stderr.starts_with(&format!("error: {name}: ")) && stderr.contains(expected),
            "{name}: {stderr}"
        );
        assert_eq!(
            row_count(dir.path()).await,
            before,
            "{name}: the table changed"
        );
    }
}

#[test]
fn import_refuses_a_backend_it_cannot_fill() {
    let dir = workdir();
    let config = std::fs::read_to_string(dir.path().join("examples/sqlite.toml")).unwrap();
    std::fs::write(
        dir.path().join("examples/sqlite.toml"),
        config.replace("table = \"customers\"\n", ""),
    )
    .unwrap();
    let cases = [
        ("nope", "--backend: no backend named \"nope\""),
        ("customers", "backends[0].table: name the table to create"),
    ];
    for (backend, expected) in cases {
        let (code, _, stderr) = import(dir.path(), backend, "data/customers.json");
        assert_eq!(code, 2, "{backend}: {stderr}");
        assert!(stderr.contains(expected), "{backend}: {stderr}");
    }
    assert!(
        !dir.path().join("data/customers.db").exists(),
        "nothing was created"
    );
}
