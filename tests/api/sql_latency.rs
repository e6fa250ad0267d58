//! A measurement, not a test: what a PostgreSQL lookup costs on loopback.
//! It prints figures and asserts nothing, so it is ignored by default:
//!
//! ```sh
//! cargo test --release --test api -- --ignored --nocapture postgres_lookup_latency
//! ```
//!
//! It times `Backend::lookup` (pool acquire, the prepared query, decoding,
//! release) one call at a time against a PostgreSQL started like the
//! tests' own, on a single-threaded runtime as an actix worker runs it, and
//! beside it the same query sent on one bare sqlx connection, so the
//! difference is verigate's part: 10,000 rows keyed by a primary key, 500
//! warm-up lookups, then 5,000 timed ones over varied keys.

use std::time::{Duration, Instant};

use sqlx::{Connection as _, Executor as _};
use verigate::{backend::Backend, configuration::Settings, metrics::Metrics};

use crate::servers::PostgresServer;

const ROWS: usize = 10_000;
const WARM_UP: usize = 500;
const SAMPLES: usize = 5_000;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64) * p).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn report(what: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "{what}: n={} p50={:?} p90={:?} p99={:?} max={:?}",
        samples.len(),
        percentile(&samples, 0.50),
        percentile(&samples, 0.90),
        percentile(&samples, 0.99),
        percentile(&samples, 1.0),
    );
}

// Single-threaded, like each actix worker's runtime.
#[tokio::test]
#[ignore = "a measurement: prints figures, asserts nothing"]
async fn postgres_lookup_latency() {
    let Some(server) = PostgresServer::start() else {
        return;
    };
    let url = server.url("postgres");
    let mut setup = sqlx::PgConnection::connect(&url).await.unwrap();
    setup
        .execute(sqlx::raw_sql(&format!(
            "CREATE TABLE customers (call_num text PRIMARY KEY, nation text, \
             user_name text, id text);
             INSERT INTO customers SELECT '010' || lpad(n::text, 8, '0'), 'korea', \
             '고객' || n, 'cust' || n FROM generate_series(1, {ROWS}) AS n;
             ANALYZE customers;"
        )))
        .await
        .unwrap();
    let query =
        r#"SELECT user_name AS "userName", id FROM customers WHERE call_num = $1 AND nation = $2"#;
    let settings = Settings::from_toml(&format!(
        r#"
[[backends]]
name = "customers-db"
kind = "postgres"
url = "{url}"
query = '''{query}'''
params = ["callNum", "nation"]
timeout_ms = 500
pool_size = 8
"#
    ))
    .unwrap();
    let backend = Backend::build(0, &settings.backends[0], &[], &Metrics::new()).unwrap();
    let keys: Vec<String> = (0..SAMPLES)
        .map(|i| format!("010{:08}", (i * 7919) % ROWS + 1))
        .collect();

    // verigate's lookup.
    for key in keys.iter().take(WARM_UP) {
        backend.lookup(&[Some(key), Some("korea")]).await.unwrap();
    }
    let mut samples = Vec::with_capacity(SAMPLES);
    for key in &keys {
        let started = Instant::now();
        let found = backend.lookup(&[Some(key), Some("korea")]).await.unwrap();
        samples.push(started.elapsed());
        assert!(found.is_some(), "{key}");
    }
    report("Backend::lookup (postgres)", samples);

    // The same query on one bare connection: the database's own part.
    let mut bare = sqlx::PgConnection::connect(&url).await.unwrap();
    let mut samples = Vec::with_capacity(SAMPLES);
    for (i, key) in keys.iter().enumerate() {
        let started = Instant::now();
        let row = sqlx::query(query)
            .bind(key.as_str())
            .bind("korea")
            .fetch_optional(&mut bare)
            .await
            .unwrap();
        if i >= WARM_UP {
            samples.push(started.elapsed());
        }
        assert!(row.is_some());
    }
    report("bare sqlx query (postgres)", samples);
}
