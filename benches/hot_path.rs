//! Hot-path benchmarks: signature verification, the replay store, the file
//! backend's lookup over a million rows, body parsing and envelope rendering.
//!
//! `cargo bench --bench hot_path`. The 1M-row load time and the process RSS
//! (before and after the load) are printed to stderr once, before the lookup
//! benches run; the file load is the first bench so nothing else has grown
//! the heap yet.

use std::{
    fs::File,
    hint::black_box,
    io::{BufWriter, Write},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use verigate::{
    backend::{Record, file::FileBackend},
    configuration::{FileBackendSettings, SignedContent},
    domain::{
        lookup_request::{FieldSpec, LookupRequest},
        timestamp::now_millis,
    },
    envelope::contiple::data_body,
    replay::{ReplayKey, memory::MemoryStore},
    verify::{
        SignedRequest,
        contiple::{ContipleScheme, SIGNATURE_HEADER, TIMESTAMP_HEADER},
        hmac_sha256::{HmacKey, KeyRing},
    },
};

const KEY: &str = "bf7769e5321448de88838cdb";
const OLD_KEY: &str = "0123456789abcdef01234567";
const ROWS: u32 = 1_000_000;
const BODY_LEN: usize = 100;

/// A 100-byte JSON body: the two lookup fields padded with an extra field.
fn body_100b() -> Vec<u8> {
    let head = r#"{"callNum":"01000001234","nation":"korea","pad":""#;
    let tail = r#""}"#;
    let pad = BODY_LEN - head.len() - tail.len();
    let body = format!("{head}{}{tail}", "x".repeat(pad));
    assert_eq!(body.len(), BODY_LEN, "the body must be exactly 100 bytes");
    body.into_bytes()
}

/// The headers a caller signing with `key` would send.
fn signed_headers(key: &str, body: &[u8], now: i64) -> HeaderMap {
    let signed = verigate::sign::contiple(key.as_bytes(), None, body, now);
    let mut headers = HeaderMap::new();
    for (name, value) in [
        (TIMESTAMP_HEADER, signed.timestamp),
        (SIGNATURE_HEADER, signed.authorization),
    ] {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_str(&value).expect("a signed header value is ASCII"),
        );
    }
    headers
}

fn contiple_verify(c: &mut Criterion) {
    let body = body_100b();
    let now = now_millis();
    let headers = signed_headers(KEY, &body, now);
    let request = SignedRequest {
        headers: &headers,
        path_and_query: "/contiple/customer",
        body: &body,
    };
    let tolerance = Duration::from_secs(300);
    let one = ContipleScheme::new(
        KeyRing::new(vec![HmacKey::new(KEY.as_bytes())]),
        SignedContent::BodyTimestamp,
        tolerance,
    );
    let two = ContipleScheme::new(
        KeyRing::new(vec![
            HmacKey::new(OLD_KEY.as_bytes()),
            HmacKey::new(KEY.as_bytes()),
        ]),
        SignedContent::BodyTimestamp,
        tolerance,
    );
    assert_eq!(one.verify(request, now).map(|v| v.key_id), Ok(0));
    assert_eq!(two.verify(request, now).map(|v| v.key_id), Ok(1));

    let mut group = c.benchmark_group("contiple_verify_100b");
    group.bench_function("one_key", |b| {
        b.iter(|| one.verify(black_box(request), black_box(now)))
    });
    group.bench_function("two_keys_second_matches", |b| {
        b.iter(|| two.verify(black_box(request), black_box(now)))
    });
    group.finish();
}

fn replay_key(n: u64) -> ReplayKey {
    ReplayKey::from_mac("bench", &n.to_le_bytes())
}

fn replay(c: &mut Criterion) {
    let ttl = Duration::from_secs(600);
    let store = MemoryStore::new(50_000_000);
    let counter = AtomicU64::new(1);

    // The key is derived outside the timed section: only the store is timed.
    c.bench_function("replay_insert_memory", |b| {
        b.iter_batched(
            || replay_key(counter.fetch_add(1, Ordering::Relaxed)),
            |key| {
                let first = store.first_seen(&key, ttl);
                assert!(matches!(first, Ok(true)), "a fresh key is new");
                first
            },
            BatchSize::SmallInput,
        )
    });

    let existing = replay_key(0);
    assert!(matches!(store.first_seen(&existing, ttl), Ok(true)));
    c.bench_function("replay_detect", |b| {
        b.iter(|| store.first_seen(black_box(&existing), ttl))
    });
    eprintln!(
        "replay store: {} live entries after the benches",
        store.live_entries()
    );
}

/// `VmRSS` and `VmHWM` from /proc/self/status, as printed there.
fn memory_status() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .filter(|l| l.starts_with("VmRSS") || l.starts_with("VmHWM"))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join(", ")
}

fn call_num(n: u32) -> String {
    format!("010{n:08}")
}

fn write_rows(path: &std::path::Path) -> std::io::Result<()> {
    let mut out = BufWriter::new(File::create(path)?);
    out.write_all(b"[")?;
    for n in 0..ROWS {
        if n > 0 {
            out.write_all(b",\n")?;
        }
        write!(
            out,
            r#"{{"callNum":"{}","nation":"korea","userName":"name{n}","id":"id{n}"}}"#,
            call_num(n)
        )?;
    }
    out.write_all(b"]\n")?;
    out.flush()
}

fn file_lookup(c: &mut Criterion) {
    let dir = tempfile::TempDir::new().expect("a temporary directory");
    let path = dir.path().join("customers.json");
    write_rows(&path).expect("the data file is written");
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let settings = FileBackendSettings {
        name: "customers".into(),
        path,
        key: vec!["callNum".into(), "nation".into()],
    };

    eprintln!("file_lookup_1m: before load: {}", memory_status());
    let started = Instant::now();
    let backend = FileBackend::load(0, &settings, &["userName".into(), "id".into()])
        .expect("the data file loads");
    let elapsed = started.elapsed();
    eprintln!(
        "file_lookup_1m: loaded {} rows ({:.1} MB file) in {:.3} s; after load: {}",
        backend.len(),
        size as f64 / 1e6,
        elapsed.as_secs_f64(),
        memory_status()
    );
    assert_eq!(backend.len(), ROWS as usize);

    // Keys spread over the whole file (a multiplicative walk mod ROWS).
    let keys: Vec<String> = (0..4096u64)
        .map(|i| call_num(((i * 7_919 + 13) % u64::from(ROWS)) as u32))
        .collect();
    for key in &keys {
        assert!(backend.lookup(&[Some(key), Some("korea")]).is_some());
    }
    let miss = call_num(ROWS + 7);
    assert!(backend.lookup(&[Some(&miss), Some("korea")]).is_none());

    let mut group = c.benchmark_group("file_lookup_1m");
    let mut next = 0usize;
    group.bench_function("hit", |b| {
        b.iter(|| {
            next = (next + 1) % keys.len();
            backend.lookup(black_box(&[Some(keys[next].as_str()), Some("korea")]))
        })
    });
    group.bench_function("miss", |b| {
        b.iter(|| backend.lookup(black_box(&[Some(miss.as_str()), Some("korea")])))
    });
    group.finish();
    drop(backend);
    drop(dir);
}

fn lookup_request_parse(c: &mut Criterion) {
    let body = body_100b();
    let spec = FieldSpec::new(vec!["callNum".into(), "nation".into()], &[]);
    let parsed = LookupRequest::parse(&body, &spec).expect("the body parses");
    assert_eq!(parsed.get(0), Some("01000001234"));
    c.bench_function("lookup_request_parse", |b| {
        b.iter(|| LookupRequest::parse(black_box(&body), &spec))
    });
}

fn contiple_envelope_render(c: &mut Criterion) {
    let columns: Arc<[Box<str>]> = Arc::from(vec!["userName".into(), "id".into()]);
    let record = Record::new(
        columns,
        vec![Some("홍길동".into()), Some("id1234567".into())],
    );
    let fields: Vec<String> = vec!["userName".into(), "id".into()];
    c.bench_function("contiple_envelope_render", |b| {
        b.iter(|| data_body(black_box(&fields), black_box(&record)))
    });
}

criterion_group! {
    name = hot_path;
    config = Criterion::default()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    // The file load runs first so its RSS is not inflated by the memory the
    // replay store leaves in the allocator; the replay store runs last.
    targets = file_lookup, contiple_verify, lookup_request_parse, contiple_envelope_render, replay
}
criterion_main!(hot_path);
