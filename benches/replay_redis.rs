//! One Redis replay-store round trip on loopback (the admit script:
//! epoch check + SET NX PX), against a redis-server this bench starts on a
//! free port. Skips with a message when redis-server is not installed.

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
    let store = runtime.block_on(async {
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
            let admitted = runtime
                .block_on(store.first_seen(&key, ttl, Some(i64::MAX)))
                .expect("redis answers");
            black_box(admitted)
        })
    });
    let key = ReplayKey::from_mac("bench", &1u64.to_le_bytes());
    c.bench_function("replay_redis_replay_detect", |b| {
        b.iter(|| black_box(runtime.block_on(store.first_seen(&key, ttl, None))))
    });
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
