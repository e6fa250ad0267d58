//! The Redis replay store on loopback, against a redis-server this bench
//! starts on a free port: one admit alone (a round trip: the script's epoch
//! check and SET NX PX), a replay detected, and 32 admits at once (one
//! batch, one script call). Runs inside a `LocalSet`, as on an actix
//! worker. Skips with a message when redis-server is not installed.

use std::{
    hint::black_box,
    net::TcpListener,
    process::{Command, Stdio},
    time::Duration,
};

use criterion::{Criterion, criterion_group, criterion_main};
use verigate::{
    configuration::{ReplaySettings, Settings},
    metrics::Metrics,
    replay::{ReplayKey, ReplayStore},
};

fn redis_round_trip(c: &mut Criterion) {
    let Ok(port) = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
    else {
        eprintln!("skipped: no free port");
        return;
    };
    let dir = std::env::temp_dir().join(format!("verigate-bench-redis-{port}"));
    let _ = std::fs::create_dir_all(&dir);
    let Ok(mut server) = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .arg("--dir")
        .arg(&dir)
        .stdout(Stdio::null())
        .spawn()
    else {
        eprintln!("skipped: redis-server is not installed");
        return;
    };
    std::thread::sleep(Duration::from_millis(300));

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let text = format!(
        "[replay]\nstore = \"redis\"\nredis_url = \"redis://127.0.0.1:{port}/0\"\ntimeout_ms = 1000\n"
    );
    let settings = Settings::from_toml(&text).expect("settings");
    let ReplaySettings::Redis(_) = &settings.replay else {
        panic!("redis settings expected");
    };
    let local = tokio::task::LocalSet::new();
    let store = local.block_on(&runtime, async {
        let store = ReplayStore::from_settings(&settings.replay, &Metrics::new()).expect("store");
        store.init().await;
        store
    });
    let ttl = Duration::from_secs(600);
    let mut n: u64 = 0;
    c.bench_function("replay_redis_first_seen", |b| {
        b.iter(|| {
            n += 1;
            let key = ReplayKey::from_mac("bench", &n.to_le_bytes());
            let admitted = local
                .block_on(&runtime, store.first_seen(&key, ttl, Some(i64::MAX)))
                .expect("redis answers");
            black_box(admitted)
        })
    });
    let key = ReplayKey::from_mac("bench", &1u64.to_le_bytes());
    c.bench_function("replay_redis_replay_detect", |b| {
        b.iter(|| black_box(local.block_on(&runtime, store.first_seen(&key, ttl, None))))
    });
    let mut group = c.benchmark_group("replay_redis_batch");
    group.throughput(criterion::Throughput::Elements(32));
    group.bench_function("32_admits", |b| {
        b.iter(|| {
            let keys: Vec<ReplayKey> = (0..32)
                .map(|_| {
                    n += 1;
                    ReplayKey::from_mac("bench", &n.to_le_bytes())
                })
                .collect();
            let admits = keys
                .iter()
                .map(|key| store.first_seen(key, ttl, Some(i64::MAX)));
            let answers = local.block_on(&runtime, futures_util::future::join_all(admits));
            black_box(answers)
        })
    });
    group.finish();
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group! {
    name = replay_redis;
    config = Criterion::default()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    targets = redis_round_trip
}
criterion_main!(replay_redis);
