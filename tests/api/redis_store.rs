//! The Redis replay store: replicas sharing one view, the epoch guard, and
//! outages in both failure modes. Every test starts its own redis-server.

use std::time::{Duration, Instant};

use futures_util::future::join_all;

use crate::{
    helpers::{Call, assert_error, default_config, metric_value, spawn_app_with, status_and_json},
    process::ServerProcess,
    servers::RedisServer,
};

const BODY: &str = r#"{"callNum":"1","nation":"korea"}"#;

fn redis_config(redis: &RedisServer, extra: &str) -> String {
    default_config().replace(
        "store = \"memory\"\ncapacity = 100000",
        &format!(
            "store = \"redis\"\nredis_url = \"{}\"\nkey_prefix = \"test:\"\ntimeout_ms = 300\n{extra}",
            redis.url()
        ),
    )
}

/// Sends fresh requests (`unique(first)`, `unique(first + 1)`, ...) until
/// one is admitted, for at most 15 s.
async fn wait_until_admitted(app: &crate::helpers::TestApp, first: usize, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    for n in first.. {
        let status = Call::new(unique(n)).send(app).await.status();
        if status == 200 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: never admitted ({status})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn unique(n: usize) -> String {
    format!(r#"{{"callNum":"1","nation":"korea","n":{n}}}"#)
}

#[tokio::test]
async fn two_replicas_sharing_redis_admit_one_of_200_concurrent_copies() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let config = redis_config(&redis, "");
    let replicas = [
        ServerProcess::start(&config, &[]),
        ServerProcess::start(&config, &[]),
    ];
    let call = Call::new(BODY).frozen();
    let responses = join_all((0..200).map(|i| {
        let call = call.clone();
        let address = replicas[i % 2].address.clone();
        async move { call.send_to(&reqwest::Client::new(), &address).await }
    }))
    .await;
    let mut admitted = 0;
    for response in responses {
        if response.status() == 200 {
            admitted += 1;
        } else {
            assert_error(response, 403, "replayed", "concurrent copy").await;
        }
    }
    assert_eq!(admitted, 1);
}

/// One replica under a burst: admits travel to Redis in batches, so copies
/// of one request and unique requests share a script call. Every unique
/// request is admitted once, one copy of the repeated one, and what Redis
/// holds is one `<prefix>r:<hex>` key per admission that expires after two
/// tolerances.
#[tokio::test]
async fn a_burst_on_one_replica_admits_each_request_once() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let app = spawn_app_with(&redis_config(&redis, "")).await;
    let copy = Call::new(BODY).frozen();
    let client = reqwest::Client::new();
    let sends = (0..300).map(|i| {
        let call = if i % 10 == 0 {
            copy.clone()
        } else {
            Call::new(unique(i)).frozen()
        };
        let client = client.clone();
        let address = app.address.clone();
        async move { (i % 10 == 0, call.send_to(&client, &address).await.status()) }
    });
    let mut copies_admitted = 0;
    for (is_copy, status) in join_all(sends).await {
        match (is_copy, status.as_u16()) {
            (true, 200) => copies_admitted += 1,
            (true, status) => assert_eq!(status, 403, "a copy is a replay"),
            (false, status) => assert_eq!(status, 200, "a unique request is admitted"),
        }
    }
    assert_eq!(copies_admitted, 1);

    let mut connection = redis.connection().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut connection)
        .await
        .unwrap();
    let replay_keys: Vec<&String> = keys.iter().filter(|k| *k != "test:epoch").collect();
    assert_eq!(replay_keys.len(), 271, "270 unique + 1 copy: {keys:?}");
    for key in replay_keys {
        let hex = key.strip_prefix("test:r:").expect("under the prefix");
        assert_eq!(hex.len(), 32, "{key}");
        assert!(
            hex.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        let ttl: i64 = redis::cmd("PTTL")
            .arg(key)
            .query_async(&mut connection)
            .await
            .unwrap();
        assert!(
            (500_000..=600_000).contains(&ttl),
            "{key} expires in {ttl} ms"
        );
    }
    // At most one script call per request (plus a NOSCRIPT retry per
    // worker thread): a batch never costs more calls than it holds.
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut connection)
        .await
        .unwrap();
    let calls: usize = stats
        .lines()
        .find_map(|line| line.strip_prefix("cmdstat_evalsha:calls="))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .expect("EVALSHA was called");
    assert!(calls <= 300 + 8, "{calls} script calls for 300 requests");
}

#[tokio::test]
async fn after_redis_loses_its_data_an_old_request_is_still_refused() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let app = spawn_app_with(&redis_config(&redis, "")).await;
    let admitted = Call::new(BODY).frozen();
    assert_eq!(admitted.send(&app).await.status(), 200);

    redis.restart_empty();

    // The replay inside its window: the epoch guard refuses it, whether
    // the first call after the loss errs or not.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let response = admitted.send(&app).await;
        match response.status().as_u16() {
            503 => {
                assert!(Instant::now() < deadline, "redis never came back");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            _ => {
                assert_error(response, 403, "replayed", "replay after data loss").await;
                break;
            }
        }
    }
    // Fresh requests succeed again (signed after the new epoch).
    wait_until_admitted(&app, 1, "fresh requests after the loss").await;
}

/// The readiness probe writes a missing epoch: once `/readyz` is 200 again
/// after a loss, the first request signed after it is admitted, while one
/// admitted before the loss is still refused.
#[tokio::test]
async fn after_a_loss_the_first_request_signed_once_ready_is_admitted() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let app = spawn_app_with(&redis_config(&redis, "")).await;
    let admitted = Call::new(unique(0)).frozen();
    assert_eq!(admitted.send(&app).await.status(), 200);

    redis.restart_empty();
    let deadline = Instant::now() + Duration::from_secs(10);
    while readyz(&app).await != 200 {
        assert!(Instant::now() < deadline, "never ready again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(5)).await;
    let fresh = Call::new(unique(1)).send(&app).await;
    assert_eq!(fresh.status(), 200, "signed after the epoch");
    let replay = admitted.send(&app).await;
    assert_error(replay, 403, "replayed", "signed before the loss").await;
}

#[tokio::test]
async fn a_flushed_script_cache_is_reloaded_by_itself() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let app = spawn_app_with(&redis_config(&redis, "")).await;
    assert_eq!(Call::new(unique(0)).send(&app).await.status(), 200);
    let mut connection = redis.connection().await;
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut connection)
        .await
        .unwrap();
    let replay = Call::new(unique(1)).frozen();
    assert_eq!(replay.send(&app).await.status(), 200, "NOSCRIPT is handled");
    assert_eq!(
        replay.send(&app).await.status(),
        403,
        "and replays still caught"
    );
}

/// The README's advice: with `noeviction`, a Redis out of memory refuses
/// the insert, and verigate answers 503 rather than admitting unrecorded.
#[tokio::test]
async fn a_redis_out_of_memory_refuses_rather_than_admits() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let app = spawn_app_with(&redis_config(&redis, "")).await;
    assert_eq!(Call::new(unique(0)).send(&app).await.status(), 200);
    let mut connection = redis.connection().await;
    let set_maxmemory = |bytes: &'static str| {
        let mut command = redis::cmd("CONFIG");
        command.arg("SET").arg("maxmemory").arg(bytes);
        command.arg("maxmemory-policy").arg("noeviction");
        command
    };
    let _: () = set_maxmemory("1")
        .query_async(&mut connection)
        .await
        .unwrap();
    let refused = Call::new(unique(1)).frozen();
    let response = refused.send(&app).await;
    assert_error(response, 503, "store_unavailable", "Redis out of memory").await;

    let _: () = set_maxmemory("0")
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(
        refused.send(&app).await.status(),
        200,
        "nothing was recorded"
    );
    assert_eq!(refused.send(&app).await.status(), 403);
}

/// A Redis that accepts the connection but does not answer (paused):
/// every request, the queued ones too, gets 503 within about
/// `timeout_ms` (300 ms here), and service resumes with Redis.
#[tokio::test]
async fn a_redis_that_does_not_answer_is_503_within_the_timeout() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let app = spawn_app_with(&redis_config(&redis, "")).await;
    assert_eq!(Call::new(unique(0)).send(&app).await.status(), 200);
    let mut connection = redis.connection().await;
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(3_000)
        .arg("WRITE")
        .query_async(&mut connection)
        .await
        .unwrap();
    let started = Instant::now();
    let app_ref = &app;
    let answers = join_all((1..=20).map(|n| async move {
        let response = Call::new(unique(n)).send(app_ref).await;
        (response.status().as_u16(), started.elapsed())
    }))
    .await;
    for (status, elapsed) in answers {
        assert_eq!(status, 503);
        assert!(
            elapsed < Duration::from_millis(1_500),
            "answered after {elapsed:?}"
        );
    }
    let _: () = redis::cmd("CLIENT")
        .arg("UNPAUSE")
        .query_async(&mut connection)
        .await
        .unwrap();
    wait_until_admitted(&app, 100, "after the pause").await;
}

#[tokio::test]
async fn while_redis_is_down_every_request_is_503_and_none_admitted() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let app = spawn_app_with(&redis_config(&redis, "")).await;
    assert_eq!(Call::new(unique(0)).send(&app).await.status(), 200);
    assert_eq!(readyz(&app).await, 200);

    redis.stop();
    for n in 1..=20 {
        let started = Instant::now();
        let response = Call::new(unique(n)).send(&app).await;
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "answered in bounded time"
        );
        assert_eq!(response.headers()["retry-after"], "1");
        assert_error(response, 503, "store_unavailable", "during the outage").await;
    }
    assert_eq!(readyz(&app).await, 503);

    redis.restart_empty();
    wait_until_admitted(&app, 100, "after the outage, without a restart").await;
    assert_eq!(readyz(&app).await, 200);
    let text = metrics(&app).await;
    assert!(
        metric_value(
            &text,
            r#"verigate_replay_store_errors_total{store="redis"}"#
        ) >= 20.0
    );
    assert!(
        metric_value(
            &text,
            r#"verigate_replay_store_duration_seconds_count{store="redis"}"#
        ) >= 22.0
    );
}

#[tokio::test]
async fn in_allow_mode_an_outage_admits_and_counts() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let app = spawn_app_with(&redis_config(&redis, "on_store_error = \"allow\"")).await;
    redis.stop();
    for n in 0..5 {
        let (status, body) = status_and_json(Call::new(unique(n)).send(&app).await).await;
        assert_eq!(status, 200, "{body}");
    }
    let text = metrics(&app).await;
    assert_eq!(
        metric_value(
            &text,
            r#"verigate_replay_store_fail_open_total{store="redis"}"#
        ),
        5.0
    );
}

#[tokio::test]
async fn a_redis_down_at_start_does_not_stop_verigate() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    redis.stop();
    let app = spawn_app_with(&redis_config(&redis, "")).await;
    assert_eq!(readyz(&app).await, 503);
    let response = Call::new(unique(0)).send(&app).await;
    assert_error(response, 503, "store_unavailable", "redis down").await;
    redis.restart_empty();
    let deadline = Instant::now() + Duration::from_secs(15);
    while readyz(&app).await != 200 {
        assert!(Instant::now() < deadline, "never became ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A Redis that wants a password: the one in `redis_url` (here from a
/// `file:` reference) is used; a wrong one fails closed, visibly in
/// `/readyz`.
#[tokio::test]
async fn a_password_in_the_url_authenticates_and_a_wrong_one_fails_closed() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let mut connection = redis.connection().await;
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg("s3cret-pw")
        .query_async(&mut connection)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let with_password = |password: &str| {
        let path = dir.path().join(format!("url-{password}"));
        let url = redis
            .url()
            .replace("redis://", &format!("redis://:{password}@"));
        std::fs::write(&path, format!("{url}\n")).unwrap();
        redis_config(&redis, "").replace(
            &format!("redis_url = \"{}\"", redis.url()),
            &format!("redis_url = \"file:{}\"", path.display()),
        )
    };

    let app = spawn_app_with(&with_password("s3cret-pw")).await;
    let admitted = Call::new(unique(0)).frozen();
    assert_eq!(admitted.send(&app).await.status(), 200);
    assert_eq!(admitted.send(&app).await.status(), 403);
    assert_eq!(readyz(&app).await, 200);

    let app = spawn_app_with(&with_password("wrong-pw")).await;
    let response = Call::new(unique(1)).send(&app).await;
    assert_error(response, 503, "store_unavailable", "wrong password").await;
    assert_eq!(readyz(&app).await, 503);
}

#[test]
fn check_config_shows_the_redis_host_never_the_password() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let url = redis.url().replace("redis://", "redis://:s3cret-pw@");
    let config = default_config()
        .replace(
            "store = \"memory\"\ncapacity = 100000",
            &format!("store = \"redis\"\nredis_url = \"{url}\"\non_store_error = \"allow\""),
        )
        .replace("{data}", "data/customers.json");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("verigate.toml");
    std::fs::write(&path, config).unwrap();
    let output = std::process::Command::new(crate::helpers::verigate_bin())
        .arg("check-config")
        .arg("--config")
        .arg(&path)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!("127.0.0.1:{}", redis.port)),
        "{stdout}"
    );
    assert!(
        stdout.contains("on_store_error"),
        "allow mode is warned: {stdout}"
    );
    assert!(!stdout.contains("s3cret-pw") && !stderr.contains("s3cret-pw"));
}

async fn readyz(app: &crate::helpers::TestApp) -> u16 {
    app.client
        .get(format!("{}/readyz", app.address))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn metrics(app: &crate::helpers::TestApp) -> String {
    app.client
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// actix restarts a worker that died on a new thread, and thread ids are
/// reused: the store must not keep handing that thread the dead worker's
/// batcher. Two runtimes, one after the other, on one thread.
#[test]
fn a_thread_whose_runtime_was_replaced_gets_a_new_batcher() {
    use verigate::{
        configuration::Settings,
        metrics::Metrics,
        replay::{ReplayKey, ReplayStore},
    };
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let settings = Settings::from_toml(&format!(
        "[replay]\nstore = \"redis\"\nredis_url = \"{}\"\ntimeout_ms = 1000\n",
        redis.url()
    ))
    .unwrap();
    let store = ReplayStore::from_settings(&settings.replay, &Metrics::new()).unwrap();
    let ttl = Duration::from_secs(60);
    for n in 0u8..2 {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let key = ReplayKey::from_mac("test", &[n]);
        let first = tokio::task::LocalSet::new()
            .block_on(&runtime, store.first_seen(&key, ttl, None))
            .expect("Redis answers on every runtime");
        assert!(first, "runtime {n}");
    }
}
