//! The `sqlite`, `postgres` and `mysql` backends against real databases:
//! PostgreSQL and MariaDB servers started for each test (see
//! `servers.rs`), SQLite files in temp directories. Every behaviour runs on
//! all three through one function taking a [`Fixture`].

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use futures_util::future::join_all;
use serde_json::{Value, json};
use sqlx::{Connection as _, Executor as _};
use tempfile::TempDir;

use crate::{
    helpers::{
        Call, KEY, PATH, TestApp, assert_error, metric_value, spawn_app_with, status_and_json,
    },
    servers::{MariaDbServer, PostgresServer},
};

/// The rows every database holds. `dup` matches twice (first by `seq`);
/// `solo` has a NULL nation; `1021` a NULL id.
const ROWS: &str = "INSERT INTO customers (call_num, nation, user_name, id, seq) VALUES
  ('1', 'korea', 'test', 'testId', 1),
  ('01012345678', '대한민국', '홍길동', 'hong', 2),
  ('1021', 'japan', 'Tanaka', NULL, 3),
  ('dup', 'korea', 'first', 'dup-1', 4),
  ('dup', 'korea', 'second', 'dup-2', 5),
  ('solo', NULL, '국적없음', 'nonation', 6)";

const ROW_COUNT: i64 = 6;

/// Where the fixture table lives.
enum Server {
    Postgres(PostgresServer),
    MariaDb(MariaDbServer),
    /// Held so the directory (and the file in it) lives as long as the test.
    Sqlite(#[allow(dead_code)] TempDir),
}

/// A database holding the `customers` table, and how verigate reaches it.
struct Fixture {
    kind: &'static str,
    url: String,
    /// Looks up by call number and nation (NULL-safe), sleeping `delay`
    /// seconds when given, first row by `seq`.
    query: &'static str,
    /// Selects one value of each type verigate renders, and `$1` back.
    types_query: &'static str,
    /// Selects a value verigate cannot render as text.
    unsupported_query: &'static str,
    server: Server,
}

const POSTGRES_QUERY: &str = r#"SELECT user_name AS "userName", id FROM customers
WHERE call_num = $1 AND nation IS NOT DISTINCT FROM $2
  AND EXISTS (SELECT 1 FROM pg_sleep(coalesce($3, '0')::float8))
ORDER BY seq"#;

const POSTGRES_TYPES: &str = r#"SELECT 12345.6700::numeric(10,4) AS num, (-0.001)::numeric AS small_num,
 9007199254740993::int8 AS big, 7::int2 AS small, 1.5::float8 AS dbl, true AS flag,
 DATE '2024-01-31' AS day, TIMESTAMP '2024-01-31 10:05:00.25' AS at,
 TIMESTAMPTZ '2024-01-31 19:05:00+09' AS at_tz, TIME '10:05:00' AS clock,
 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid AS uid, '{"a": 1}'::jsonb AS doc,
 NULL::text AS missing, $1 AS echo"#;

const MYSQL_QUERY: &str = "SELECT user_name AS userName, id FROM customers
WHERE call_num = ? AND nation <=> ? AND SLEEP(COALESCE(?, 0)) = 0
ORDER BY seq";

const MYSQL_TYPES: &str = "SELECT CAST(12345.67 AS DECIMAL(10,4)) AS num,
 CAST(-0.001 AS DECIMAL(10,3)) AS small_num, CAST(9007199254740993 AS SIGNED) AS big,
 CAST(7 AS UNSIGNED) AS small, CAST(1.5 AS DOUBLE) AS dbl, TRUE AS flag,
 DATE '2024-01-31' AS day, TIMESTAMP '2024-01-31 10:05:00.25' AS at,
 TIME '10:05:00' AS clock, NULL AS missing, ? AS echo";

/// SQLite has no sleep: a recursive count that would run for minutes.
const SQLITE_QUERY: &str = "SELECT user_name AS userName, id FROM customers
WHERE call_num = ?1 AND nation IS ?2
  AND (CASE WHEN ?3 IS NULL THEN 1 ELSE (
    WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 5000000000)
    SELECT count(*) FROM c) END) > 0
ORDER BY seq";

const SQLITE_TYPES: &str =
    "SELECT 9007199254740993 AS big, 1.5 AS dbl, 'x' AS txt, NULL AS missing, ?1 AS echo";

impl Fixture {
    async fn postgres() -> Option<Fixture> {
        let server = PostgresServer::start()?;
        let url = server.url("postgres");
        let mut connection = sqlx::PgConnection::connect(&url).await.unwrap();
        connection
            .execute(sqlx::raw_sql(
                "CREATE TABLE customers (call_num text NOT NULL, nation text, \
                 user_name text, id text, seq int NOT NULL)",
            ))
            .await
            .unwrap();
        connection.execute(sqlx::raw_sql(ROWS)).await.unwrap();
        Some(Fixture {
            kind: "postgres",
            url,
            query: POSTGRES_QUERY,
            types_query: POSTGRES_TYPES,
            unsupported_query: r"SELECT '\x00ff'::bytea AS blob WHERE $1 IS NOT NULL",
            server: Server::Postgres(server),
        })
    }

    async fn mysql() -> Option<Fixture> {
        let server = MariaDbServer::start()?;
        let mut connection = sqlx::MySqlConnection::connect(&server.url(""))
            .await
            .unwrap();
        connection
            .execute(sqlx::raw_sql(
                "CREATE DATABASE verigate CHARACTER SET utf8mb4; USE verigate; \
                 CREATE TABLE customers (call_num VARCHAR(64) NOT NULL, nation VARCHAR(64), \
                 user_name VARCHAR(64), id VARCHAR(64), seq INT NOT NULL)",
            ))
            .await
            .unwrap();
        connection.execute(sqlx::raw_sql(ROWS)).await.unwrap();
        Some(Fixture {
            kind: "mysql",
            url: server.url("verigate"),
            query: MYSQL_QUERY,
            types_query: MYSQL_TYPES,
            unsupported_query: "SELECT UNHEX('FF') AS blob FROM DUAL WHERE ? IS NOT NULL",
            server: Server::MariaDb(server),
        })
    }

    async fn sqlite() -> Option<Fixture> {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("customers.db").display());
        create_sqlite(&url).await;
        Some(Fixture {
            kind: "sqlite",
            url,
            query: SQLITE_QUERY,
            types_query: SQLITE_TYPES,
            unsupported_query: "SELECT x'FF' AS blob WHERE ?1 IS NOT NULL",
            server: Server::Sqlite(dir),
        })
    }

    /// A configuration with one route over the fixture's lookup query.
    fn config(&self, timeout_ms: u64, pool_size: u32) -> String {
        format!(
            r#"
[server]
bind = "127.0.0.1:0"
workers = 2

[replay]
store = "memory"

[[backends]]
name = "customers-db"
kind = "{kind}"
url = "{url}"
query = '''{query}'''
params = ["callNum", "nation", "delay"]
timeout_ms = {timeout_ms}
pool_size = {pool_size}

[[routes]]
name = "contiple"
path = "{PATH}"
scheme = "contiple"
keys = ["{KEY}"]
backend = "customers-db"
request_fields = ["callNum", "nation", "delay"]
optional_fields = ["nation", "delay"]
response_fields = ["userName", "id"]
"#,
            kind = self.kind,
            url = self.url,
            query = self.query,
        )
    }

    fn stop(&mut self) {
        match &mut self.server {
            Server::Postgres(server) => server.stop(),
            Server::MariaDb(server) => server.stop(),
            Server::Sqlite(_) => unreachable!("SQLite has no server to stop"),
        }
    }

    fn start_again(&mut self) {
        match &mut self.server {
            Server::Postgres(server) => server.start_again(),
            Server::MariaDb(server) => server.start_again(),
            Server::Sqlite(_) => unreachable!("SQLite has no server to start"),
        }
    }

    /// Statements still running a sleep on the server (`None` for SQLite,
    /// which has no server), counted without verigate.
    async fn running_sleeps(&self) -> Option<i64> {
        match self.kind {
            "postgres" => {
                let mut c = sqlx::PgConnection::connect(&self.url).await.unwrap();
                let sql = "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' \
                           AND query LIKE '%pg_sleep%' AND pid <> pg_backend_pid()";
                Some(sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap())
            }
            "mysql" => {
                let mut c = sqlx::MySqlConnection::connect(&self.url).await.unwrap();
                let sql = "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
                           WHERE INFO LIKE '%SLEEP(COALESCE%' AND ID <> CONNECTION_ID()";
                Some(sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap())
            }
            _ => None,
        }
    }

    /// Rows in `customers`, counted without verigate.
    async fn row_count(&self) -> i64 {
        let sql = "SELECT COUNT(*) FROM customers";
        match self.kind {
            "postgres" => {
                let mut c = sqlx::PgConnection::connect(&self.url).await.unwrap();
                sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap()
            }
            "mysql" => {
                let mut c = sqlx::MySqlConnection::connect(&self.url).await.unwrap();
                sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap()
            }
            _ => {
                let mut c = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
                sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap()
            }
        }
    }
}

/// Creates the SQLite file with the fixture table.
async fn create_sqlite(url: &str) {
    let options: sqlx::sqlite::SqliteConnectOptions = url.parse().unwrap();
    let mut connection = sqlx::SqliteConnection::connect_with(&options.create_if_missing(true))
        .await
        .unwrap();
    connection
        .execute(sqlx::raw_sql(
            "CREATE TABLE customers (call_num TEXT NOT NULL, nation TEXT, \
             user_name TEXT, id TEXT, seq INTEGER NOT NULL)",
        ))
        .await
        .unwrap();
    connection.execute(sqlx::raw_sql(ROWS)).await.unwrap();
}

/// A signed lookup for these fields, with a field no route reads that
/// makes each body (and so each signature) unique: identical requests
/// signed in the same millisecond would be replays.
fn lookup(mut fields: Value) -> Call {
    static SENT: AtomicU64 = AtomicU64::new(0);
    fields["unique"] = json!(SENT.fetch_add(1, Ordering::Relaxed));
    Call::new(fields.to_string())
}

/// Sends `call` and returns its status, JSON body and duration.
async fn timed(call: &Call, client: &reqwest::Client, address: &str) -> (u16, Value, Duration) {
    let started = Instant::now();
    let (status, body) = status_and_json(call.send_to(client, address).await).await;
    (status.as_u16(), body, started.elapsed())
}

// ---------------------------------------------------------------------------
// Lookups

/// One test per database for a behaviour that takes a [`Fixture`]: the
/// test `<behaviour>::<database>` skips when that database is not installed
/// (or fails, under `VERIGATE_REQUIRE_SERVERS=1`).
macro_rules! on_each_database {
    ($behaviour:ident: $($database:ident),+) => {
        mod $behaviour {
            $(
                #[tokio::test]
                async fn $database() {
                    let Some(fixture) = super::Fixture::$database().await else {
                        return;
                    };
                    super::$behaviour(fixture).await;
                }
            )+
        }
    };
}

on_each_database!(lookups_answer_from_the_query: postgres, mysql, sqlite);
on_each_database!(injection_strings_find_nothing_and_leave_the_table_intact: postgres, mysql, sqlite);
on_each_database!(slow_queries_time_out_and_leak_no_connection: postgres, mysql, sqlite);
on_each_database!(an_outage_is_survived_without_a_restart: postgres, mysql);

async fn lookups_answer_from_the_query(fixture: Fixture) {
    // Arrange
    let app = spawn_app_with(&fixture.config(3_000, 4)).await;
    let cases = [
        (
            json!({"callNum": "1", "nation": "korea"}),
            200,
            json!({"data": {"userName": "test", "id": "testId"}}),
            "found",
        ),
        (
            json!({"callNum": "01012345678", "nation": "대한민국"}),
            200,
            json!({"data": {"userName": "홍길동", "id": "hong"}}),
            "Korean in a request field and in a column",
        ),
        (
            json!({"callNum": "1021", "nation": "japan"}),
            200,
            json!({"data": {"userName": "Tanaka", "id": null}}),
            "a NULL column renders as null",
        ),
        (
            json!({"callNum": "solo"}),
            200,
            json!({"data": {"userName": "국적없음", "id": "nonation"}}),
            "an absent optional field is bound as NULL",
        ),
        (
            json!({"callNum": 1, "nation": "korea"}),
            200,
            json!({"data": {"userName": "test", "id": "testId"}}),
            "a numeric field is bound as its text",
        ),
        (
            json!({"callNum": "dup", "nation": "korea"}),
            200,
            json!({"data": {"userName": "first", "id": "dup-1"}}),
            "several rows: the first one answers",
        ),
    ];

    for (fields, status, expected, what) in cases {
        // Act
        let (actual, body) = status_and_json(lookup(fields).send(&app).await).await;

        // Assert
        assert_eq!(actual, status, "{}: {what}: {body}", fixture.kind);
        assert_eq!(body, expected, "{}: {what}", fixture.kind);
    }
    for (fields, what) in [
        (
            json!({"callNum": "999", "nation": "korea"}),
            "unknown caller",
        ),
        (
            json!({"callNum": "1", "nation": "japan"}),
            "one field differs",
        ),
        (json!({"callNum": "1"}), "NULL nation matches no korea row"),
    ] {
        let response = lookup(fields).send(&app).await;
        let body = assert_error(response, 400, "no_result", what).await;
        assert_eq!(body["error"]["detail"], Value::Null, "{what}");
    }
    let metrics = app.metrics().await;
    assert_eq!(
        metric_value(
            &metrics,
            r#"verigate_backend_multiple_rows_total{backend="customers-db"}"#
        ),
        1.0,
        "{}: the duplicate lookup is counted once: {metrics}",
        fixture.kind
    );
}

// ---------------------------------------------------------------------------
// Injection

async fn injection_strings_find_nothing_and_leave_the_table_intact(fixture: Fixture) {
    let app = spawn_app_with(&fixture.config(3_000, 2)).await;
    let attacks = [
        "' OR 1=1 --",
        "1' OR '1'='1",
        "1; DROP TABLE customers",
        "1; DROP TABLE customers; --",
        "1' UNION SELECT user_name, id FROM customers --",
        "1\" UNION SELECT user_name, id FROM customers --",
        "x') OR ('a'='a",
    ];
    for attack in attacks {
        for fields in [
            json!({"callNum": attack, "nation": "korea"}),
            json!({"callNum": "1", "nation": attack}),
        ] {
            let response = lookup(fields.clone()).send(&app).await;
            let what = format!("{}: {fields}", fixture.kind);
            assert_error(response, 400, "no_result", &what).await;
        }
    }

    // The table is intact: every row is still there and still found.
    assert_eq!(fixture.row_count().await, ROW_COUNT, "{}", fixture.kind);
    let (status, body) = status_and_json(
        lookup(json!({"callNum": "1", "nation": "korea"}))
            .send(&app)
            .await,
    )
    .await;
    assert_eq!(status, 200, "{}: {body}", fixture.kind);
    assert_eq!(body["data"]["id"], "testId");
}

// ---------------------------------------------------------------------------
// Column types

/// Two more routes: one over the types query, one over a value verigate
/// cannot render.
fn types_config(fixture: &Fixture, columns: &[&str]) -> String {
    let fields: Vec<String> = columns.iter().map(|c| format!("\"{c}\"")).collect();
    format!(
        r#"
[server]
bind = "127.0.0.1:0"
workers = 2

[replay]
store = "memory"

[[backends]]
name = "types"
kind = "{kind}"
url = "{url}"
query = '''{types}'''
params = ["callNum"]
timeout_ms = 3000
pool_size = 2

[[backends]]
name = "unsupported"
kind = "{kind}"
url = "{url}"
query = '''{unsupported}'''
params = ["callNum"]
timeout_ms = 3000
pool_size = 2

[[routes]]
name = "types"
path = "{PATH}"
scheme = "contiple"
keys = ["{KEY}"]
backend = "types"
request_fields = ["callNum"]
response_fields = [{fields}]

[[routes]]
name = "unsupported"
path = "/unsupported"
scheme = "contiple"
keys = ["{KEY}"]
backend = "unsupported"
request_fields = ["callNum"]
response_fields = ["blob"]
"#,
        kind = fixture.kind,
        url = fixture.url,
        types = fixture.types_query,
        unsupported = fixture.unsupported_query,
        fields = fields.join(", "),
    )
}

async fn columns_render_as_text(fixture: Fixture, expected: Value) {
    // Arrange
    let columns: Vec<&str> = expected
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let app = spawn_app_with(&types_config(&fixture, &columns)).await;

    // Act
    let (status, body) = status_and_json(lookup(json!({"callNum": "안녕"})).send(&app).await).await;

    // Assert
    assert_eq!(status, 200, "{}: {body}", fixture.kind);
    assert_eq!(body, json!({ "data": expected }), "{}", fixture.kind);

    let response = lookup(json!({"callNum": "1"}))
        .path("/unsupported")
        .send(&app)
        .await;
    let body = assert_error(response, 500, "backend_error", "unsupported type").await;
    assert_eq!(body["error"]["detail"], "re-sign and retry");
}

#[tokio::test]
async fn postgres_columns_of_every_common_type_render_as_text() {
    let Some(fixture) = Fixture::postgres().await else {
        return;
    };
    let expected = json!({
        "num": "12345.6700", "small_num": "-0.001", "big": "9007199254740993",
        "small": "7", "dbl": "1.5", "flag": "true", "day": "2024-01-31",
        "at": "2024-01-31 10:05:00.25", "at_tz": "2024-01-31 10:05:00+00:00",
        "clock": "10:05:00", "uid": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        "doc": "{\"a\": 1}", "missing": null, "echo": "안녕"
    });
    columns_render_as_text(fixture, expected).await;
}

#[tokio::test]
async fn mysql_columns_of_every_common_type_render_as_text() {
    let Some(fixture) = Fixture::mysql().await else {
        return;
    };
    let expected = json!({
        "num": "12345.6700", "small_num": "-0.001", "big": "9007199254740993",
        "small": "7", "dbl": "1.5", "flag": "1", "day": "2024-01-31",
        "at": "2024-01-31 10:05:00.25", "clock": "10:05:00", "missing": null,
        "echo": "안녕"
    });
    columns_render_as_text(fixture, expected).await;
}

#[tokio::test]
async fn sqlite_columns_of_every_storage_class_render_as_text() {
    let Some(fixture) = Fixture::sqlite().await else {
        return;
    };
    let expected = json!({
        "big": "9007199254740993", "dbl": "1.5", "txt": "x", "missing": null, "echo": "안녕"
    });
    columns_render_as_text(fixture, expected).await;
}

// ---------------------------------------------------------------------------
// Timeouts

/// Generous: a loaded CI machine may be slow to answer, never too fast.
const MARGIN: Duration = Duration::from_millis(2_000);

async fn slow_queries_time_out_and_leak_no_connection(fixture: Fixture) {
    // Arrange: two connections, half a second per lookup.
    let timeout = Duration::from_millis(500);
    let app = spawn_app_with(&fixture.config(timeout.as_millis() as u64, 2)).await;
    let slow = || lookup(json!({"callNum": "1", "nation": "korea", "delay": "5"}));
    let fast = || lookup(json!({"callNum": "1", "nation": "korea"}));

    // Act: one slow lookup.
    let (status, body, elapsed) = timed(&slow(), &app.client, &app.address).await;

    // Assert: a backend error once the timeout passed, not before, not much after.
    assert_eq!(status, 500, "{}: {body}", fixture.kind);
    assert_eq!(body["error"]["code"], "backend_error", "{}", fixture.kind);
    assert_eq!(body["error"]["detail"], "re-sign and retry");
    assert!(
        elapsed >= timeout.mul_f32(0.9) && elapsed < timeout + MARGIN,
        "{}: answered after {elapsed:?}",
        fixture.kind
    );

    // Act: twenty slow lookups at once, then twenty fast ones.
    let slow_calls: Vec<Call> = (0..20).map(|_| slow()).collect();
    let slow_answers = join_all(
        slow_calls
            .iter()
            .map(|call| timed(call, &app.client, &app.address)),
    )
    .await;
    let fast_calls: Vec<Call> = (0..20).map(|_| fast()).collect();
    let fast_answers = join_all(
        fast_calls
            .iter()
            .map(|call| timed(call, &app.client, &app.address)),
    )
    .await;

    // Assert: every slow one is a timely backend error; no fast one
    // waits on a connection the slow ones left busy.
    for (status, body, elapsed) in &slow_answers {
        assert_eq!(*status, 500, "{}: {body}", fixture.kind);
        assert_eq!(body["error"]["code"], "backend_error");
        assert!(
            *elapsed < timeout + MARGIN,
            "{}: a slow lookup answered after {elapsed:?}",
            fixture.kind
        );
    }
    for (status, body, _) in &fast_answers {
        assert_eq!(
            *status, 200,
            "{}: a fast lookup failed: {body}",
            fixture.kind
        );
        assert_eq!(body["data"]["id"], "testId");
    }

    // Assert: the server stopped the timed-out statements too (each would
    // sleep for five seconds).
    let deadline = Instant::now() + MARGIN;
    while let Some(running) = fixture.running_sleeps().await {
        if running == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{}: {running} timed-out statements still run on the server",
            fixture.kind
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------------------
// Outages

/// Asserts `/readyz` is 503 and names the backend with a reason.
async fn assert_not_ready(app: &TestApp, what: &str) {
    let (status, body) = app.readyz().await;
    assert_eq!(status, 503, "{what}: {body}");
    assert_eq!(body["status"], "not_ready", "{what}: {body}");
    let reason = body["checks"]["customers-db"].as_str().unwrap_or("");
    assert!(
        !reason.is_empty() && reason != "ok",
        "{what}: the database check is named with a reason: {body}"
    );
    assert_eq!(body["checks"]["replay"], "ok", "{what}: {body}");
}

/// Sends lookups until one is found, for at most `limit`.
async fn wait_for_a_found_lookup(app: &TestApp, limit: Duration, what: &str) {
    let deadline = Instant::now() + limit;
    loop {
        let (status, body) = status_and_json(
            lookup(json!({"callNum": "1", "nation": "korea"}))
                .send(app)
                .await,
        )
        .await;
        if status == 200 {
            assert_eq!(body["data"]["id"], "testId", "{what}");
            return;
        }
        assert_eq!(body["error"]["code"], "backend_error", "{what}: {body}");
        assert!(Instant::now() < deadline, "{what}: no lookup succeeded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn an_outage_is_survived_without_a_restart(mut fixture: Fixture) {
    let kind = fixture.kind;
    let timeout = Duration::from_millis(1_000);

    // Arrange: the database is down when verigate starts.
    fixture.stop();
    let app = spawn_app_with(&fixture.config(timeout.as_millis() as u64, 4)).await;

    // Assert: verigate serves, says it is not ready, answers backend_error in time.
    assert_not_ready(&app, &format!("{kind}: down at start")).await;
    let (status, body, elapsed) = timed(
        &lookup(json!({"callNum": "1", "nation": "korea"})),
        &app.client,
        &app.address,
    )
    .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (500, &json!("backend_error")),
        "{kind}"
    );
    assert!(
        elapsed < timeout + MARGIN,
        "{kind}: answered after {elapsed:?}"
    );

    // Act: the database comes up; lookups succeed by themselves.
    fixture.start_again();
    wait_for_a_found_lookup(&app, Duration::from_secs(20), kind).await;
    assert_eq!(
        app.readyz().await.0,
        200,
        "{kind}: ready once the database is"
    );

    // Act: fill the pool, then restart the database while its connections
    // sit idle.
    let fill: Vec<Call> = (0..4)
        .map(|_| lookup(json!({"callNum": "1", "nation": "korea", "delay": "0.2"})))
        .collect();
    for (status, body, _) in
        join_all(fill.iter().map(|c| timed(c, &app.client, &app.address))).await
    {
        assert_eq!(status, 200, "{kind}: {body}");
    }
    fixture.stop();
    fixture.start_again();

    // Assert: the connections from before the restart are replaced, never
    // used to fail a lookup.
    for _ in 0..8 {
        let response = lookup(json!({"callNum": "1", "nation": "korea"}))
            .send(&app)
            .await;
        let (status, body) = status_and_json(response).await;
        assert_eq!(
            status, 200,
            "{kind}: a lookup after the restart failed: {body}"
        );
    }

    // Act: a stream of lookups while the database goes down and comes back.
    let stop = Arc::new(AtomicBool::new(false));
    let answers = Arc::new(Mutex::new(Vec::<(u16, Value, Duration)>::new()));
    let stream = {
        let (stop, answers) = (Arc::clone(&stop), Arc::clone(&answers));
        let (client, address) = (app.client.clone(), app.address.clone());
        tokio::spawn(async move {
            // Bounded: the test stops it, and it stops itself after 2,000.
            for _ in 0..2_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let call = lookup(json!({"callNum": "1", "nation": "korea"}));
                let answer = timed(&call, &client, &address).await;
                answers.lock().unwrap().push(answer);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    fixture.stop();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_not_ready(&app, &format!("{kind}: stopped")).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let down_until = answers.lock().unwrap().len();
    fixture.start_again();
    // Wait for five found lookups in a row after the restart.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let recovered = {
            let answers = answers.lock().unwrap();
            answers.len() >= down_until + 5
                && answers[answers.len() - 5..]
                    .iter()
                    .all(|(s, _, _)| *s == 200)
        };
        if recovered || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    stream.await.unwrap();

    // Assert: only found or backend_error, each within the timeout; errors
    // while down; found again after, without restarting verigate.
    let answers = std::mem::take(&mut *answers.lock().unwrap());
    for (status, body, elapsed) in answers.iter() {
        match status {
            200 => assert_eq!(body["data"]["id"], "testId", "{kind}"),
            500 => assert_eq!(body["error"]["code"], "backend_error", "{kind}: {body}"),
            other => panic!("{kind}: unexpected status {other}: {body}"),
        }
        assert!(
            *elapsed < timeout + MARGIN,
            "{kind}: answered after {elapsed:?}"
        );
    }
    assert!(
        answers[..down_until].iter().any(|(s, _, _)| *s == 500),
        "{kind}: no lookup failed while the database was down"
    );
    let last: Vec<u16> = answers.iter().rev().take(5).map(|(s, _, _)| *s).collect();
    assert_eq!(last, vec![200; 5], "{kind}: lookups did not recover");
    assert_eq!(app.readyz().await.0, 200, "{kind}: ready again");
}

#[tokio::test]
async fn a_missing_sqlite_file_does_not_stop_verigate_and_is_picked_up_once_created() {
    // Arrange: the URL names a file that does not exist yet.
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("later.db").display());
    let fixture = Fixture {
        kind: "sqlite",
        url: url.clone(),
        query: SQLITE_QUERY,
        types_query: SQLITE_TYPES,
        unsupported_query: "",
        server: Server::Sqlite(dir),
    };
    let app = spawn_app_with(&fixture.config(1_000, 2)).await;

    // Assert: verigate serves, not ready, lookups are backend errors.
    assert_not_ready(&app, "sqlite file missing").await;
    let response = lookup(json!({"callNum": "1", "nation": "korea"}))
        .send(&app)
        .await;
    assert_error(response, 500, "backend_error", "sqlite file missing").await;

    // Act: the file appears.
    create_sqlite(&url).await;

    // Assert: found, and ready, without a restart.
    wait_for_a_found_lookup(&app, Duration::from_secs(10), "sqlite file created").await;
    assert_eq!(app.readyz().await.0, 200);
}

/// DESIGN §3 and §8a: a backend failure is `backend_error` with "re-sign
/// and retry" and no internals, 500 by default or 503 with `Retry-After`
/// when the route says so; the identical request retried is a replay,
/// because its signature was consumed.
#[tokio::test]
async fn a_backend_failure_is_503_when_configured_and_its_retry_a_replay() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("never.db").display());
    let fixture = Fixture {
        kind: "sqlite",
        url,
        query: SQLITE_QUERY,
        types_query: SQLITE_TYPES,
        unsupported_query: "",
        server: Server::Sqlite(dir),
    };
    let config = fixture.config(1_000, 2);
    for (status, config) in [
        (500, config.clone()),
        (
            503,
            config.replace(
                "backend = \"customers-db\"",
                "backend = \"customers-db\"\nbackend_error_status = 503",
            ),
        ),
    ] {
        let app = spawn_app_with(&config).await;
        let call = lookup(json!({"callNum": "1", "nation": "korea"})).frozen();
        let response = call.send(&app).await;
        assert_eq!(response.status().as_u16(), status);
        let retry_after = response.headers().get("retry-after").cloned();
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "backend_error");
        assert_eq!(body["error"]["detail"], "re-sign and retry");
        let text = body.to_string().to_lowercase();
        assert!(
            !text.contains("sqlite") && !text.contains("never.db"),
            "no internals: {text}"
        );
        assert_eq!(
            retry_after.is_some(),
            status == 503,
            "Retry-After only with 503"
        );
        let retry = call.send(&app).await;
        assert_error(retry, 403, "replayed", "the identical request retried").await;
    }
}

// ---------------------------------------------------------------------------
// TLS

#[tokio::test]
async fn postgres_lookups_travel_over_verified_tls() {
    // Arrange: a server with a self-signed certificate, trusted by the URL.
    let Some(mut server) = PostgresServer::start() else {
        return;
    };
    if server.enable_tls().is_none() {
        return;
    }
    let url = format!(
        "{}?sslmode=verify-full&sslrootcert={}",
        server.url("postgres"),
        server.certificate().display()
    );
    // The query reports the connection's own TLS state.
    let config = format!(
        r#"
[server]
bind = "127.0.0.1:0"
workers = 2

[replay]
store = "memory"

[[backends]]
name = "tls-db"
kind = "postgres"
url = "{url}"
query = '''SELECT ssl::text AS "userName", version AS id FROM pg_stat_ssl
WHERE pid = pg_backend_pid() AND $1 IS NOT NULL'''
params = ["callNum"]
timeout_ms = 3000

[[routes]]
name = "contiple"
path = "{PATH}"
scheme = "contiple"
keys = ["{KEY}"]
backend = "tls-db"
request_fields = ["callNum"]
response_fields = ["userName", "id"]
"#
    );
    let app = spawn_app_with(&config).await;

    // Act
    let (status, body) = status_and_json(lookup(json!({"callNum": "1"})).send(&app).await).await;

    // Assert: TLS through rustls, the certificate verified.
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["userName"], "true", "{body}");
    let version = body["data"]["id"].as_str().unwrap_or("");
    assert!(version.starts_with("TLSv1."), "{body}");
}
