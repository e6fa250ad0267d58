//! Slow clients, large bodies and malformed framing.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{
    helpers::{Call, PATH, default_config, spawn_app, spawn_app_with, status_and_json},
    raw_http::{connect, exchange, read_reply, status},
};

const BODY: &str = r#"{"callNum":"1","nation":"korea"}"#;

fn fast_timeouts() -> String {
    default_config().replace(
        "workers = 2",
        "workers = 2\nheader_timeout_ms = 1000\nbody_timeout_ms = 1000",
    )
}

#[tokio::test]
async fn a_trickled_head_is_cut_off_while_others_are_served() {
    let app = spawn_app_with(&fast_timeouts()).await;
    let mut slow = connect(app.port).await;
    slow.write_all(format!("POST {PATH} HTTP/1.1\r\nHost: x\r\n").as_bytes())
        .await
        .unwrap();
    let started = Instant::now();
    let trickle = async {
        for _ in 0..10 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if slow.write_all(b"X-Slow: 1\r\n").await.is_err() {
                break;
            }
        }
    };
    let served = async {
        for n in 0..5 {
            let body = format!(r#"{{"callNum":"1","nation":"korea","n":{n}}}"#);
            let (status, _) = status_and_json(Call::new(&body).send(&app).await).await;
            assert_eq!(status, 200, "others are served meanwhile");
        }
    };
    tokio::join!(trickle, served);
    let reply = read_reply(&mut slow, Duration::from_secs(3)).await;
    assert!(
        status(&reply) == 408 || reply.is_empty(),
        "a slow head gets 408 or a close: {reply:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(6));
}

/// After a request, an idle keep-alive connection is closed once
/// `header_timeout_ms` passes, silently: no 408 for a request that never
/// started. Before that, it carries the next request.
#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_silently() {
    let app = spawn_app_with(&fast_timeouts()).await;
    let mut connection = connect(app.port).await;
    for n in 0..2 {
        let call = Call::new(format!(r#"{{"callNum":"1","nation":"korea","n":{n}}}"#));
        let (head, body) = call.raw_parts(PATH);
        connection.write_all(&head).await.unwrap();
        connection.write_all(&body).await.unwrap();
        let reply = read_reply(&mut connection, Duration::from_secs(3)).await;
        assert_eq!(
            status(&reply),
            200,
            "request {n} on one connection: {reply}"
        );
    }
    let idle = Instant::now();
    let reply = read_reply(&mut connection, Duration::from_secs(5)).await;
    assert_eq!(reply, "", "closed without a reply");
    // actix's timers run on a clock it refreshes every 500 ms.
    let waited = idle.elapsed();
    assert!(
        waited >= Duration::from_millis(400) && waited < Duration::from_secs(4),
        "closed after {waited:?}"
    );
}

/// Too many header lines, or a head over actix's 128 KiB, is 431.
#[tokio::test]
async fn an_oversized_head_is_431() {
    let app = spawn_app().await;
    let many: String = (0..200).map(|i| format!("X-H{i}: v\r\n")).collect();
    let long = format!("X-Big: {}\r\n", "a".repeat(200 * 1024));
    for (what, headers) in [("200 header lines", many), ("a 200 KiB header", long)] {
        let request = format!("POST {PATH} HTTP/1.1\r\nHost: x\r\n{headers}\r\n");
        let reply = exchange(app.port, request.as_bytes(), Duration::from_secs(5)).await;
        assert_eq!(status(&reply), 431, "{what}: {reply}");
    }
}

#[tokio::test]
async fn a_trickled_body_gets_408_request_timeout_in_the_envelope() {
    let app = spawn_app_with(&fast_timeouts()).await;
    let mut slow = connect(app.port).await;
    slow.write_all(
        format!("POST {PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\n\r\n{{\"call").as_bytes(),
    )
    .await
    .unwrap();
    let started = Instant::now();
    let (status_other, _) = status_and_json(Call::new(BODY).send(&app).await).await;
    assert_eq!(status_other, 200, "others are served meanwhile");
    let reply = read_reply(&mut slow, Duration::from_secs(5)).await;
    assert_eq!(status(&reply), 408, "{reply}");
    assert!(reply.contains(r#""code":"request_timeout""#), "{reply}");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(800) && waited < Duration::from_secs(4),
        "{waited:?}"
    );
}

#[tokio::test]
async fn a_declared_oversized_body_is_refused_before_it_is_sent() {
    let app = spawn_app_with(&default_config()).await;
    let reply = exchange(
        app.port,
        format!("POST {PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: 104857600\r\n\r\n").as_bytes(),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(status(&reply), 413, "{reply}");
    assert!(reply.contains(r#""code":"payload_too_large""#), "{reply}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_oversized_body_is_refused_without_being_buffered() {
    let app = spawn_app_with(&default_config()).await;
    let (mut reader, mut writer) = connect(app.port).await.into_split();
    writer
        .write_all(
            format!("POST {PATH} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let sent = Arc::new(AtomicUsize::new(0));
    // The reply must come while the body is still streaming: note how much
    // had been sent when its first byte arrived.
    let sent_at_reply = {
        let sent = Arc::clone(&sent);
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let n = reader.read(&mut buf).await.unwrap_or(0);
            (
                sent.load(Ordering::SeqCst),
                String::from_utf8_lossy(&buf[..n]).into_owned(),
            )
        })
    };
    let rss_before = rss_kib();
    // 128 MiB in 64 KiB chunks, against a 64 KiB limit.
    let chunk = format!("10000\r\n{}\r\n", "a".repeat(0x10000));
    for _ in 0..2048 {
        match tokio::time::timeout(Duration::from_secs(2), writer.write_all(chunk.as_bytes())).await
        {
            Ok(Ok(())) => sent.fetch_add(0x10000, Ordering::SeqCst),
            _ => break,
        };
    }
    let rss_growth_kib = rss_kib().saturating_sub(rss_before);
    let (sent_before_reply, reply) = sent_at_reply.await.unwrap();
    assert_eq!(status(&reply), 413, "{reply}");
    // Socket buffers hold a few MiB, and a busy test machine may run the
    // reader late: the reply must still come well before the end.
    assert!(
        sent_before_reply < 64 * 1024 * 1024,
        "413 came only after {sent_before_reply} bytes"
    );
    assert!(
        rss_growth_kib < 48 * 1024,
        "memory grew by {rss_growth_kib} KiB while {} bytes were offered",
        sent.load(Ordering::SeqCst)
    );
}

/// Resident memory of this process (the server runs in it), in KiB.
fn rss_kib() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::test]
async fn smuggling_shapes_are_400_and_close_the_connection() {
    let app = spawn_app_with(&default_config()).await;
    for (head, what) in [
        (
            "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
            "length and chunked",
        ),
        ("Content-Length: 5\r\nContent-Length: 6\r\n", "two lengths"),
    ] {
        let reply = exchange(
            app.port,
            format!("POST {PATH} HTTP/1.1\r\nHost: x\r\n{head}\r\n0\r\n\r\n").as_bytes(),
            Duration::from_secs(3),
        )
        .await;
        assert_eq!(status(&reply), 400, "{what}: {reply}");
        assert!(
            reply.to_ascii_lowercase().contains("connection: close"),
            "{what}: {reply}"
        );
    }
}
