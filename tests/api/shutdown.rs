//! Signals: SIGTERM stops accepting, lets in-flight requests finish and
//! exits 0; SIGHUP re-reads file backends.

use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;

use crate::{
    helpers::{Call, KEY, PATH, default_config},
    process::ServerProcess,
    raw_http::{connect, read_reply, status},
};

#[tokio::test]
async fn sigterm_lets_a_request_whose_body_is_still_arriving_finish() {
    let mut server = ServerProcess::start(&default_config(), &[]);
    let call = Call::new(r#"{"callNum":"1","nation":"korea"}"#).frozen();
    let (head, body) = call.raw_parts(PATH);
    let (first, rest) = body.split_at(10);

    // Arrange: a request in flight, its body half sent.
    let mut stream = connect(server.port).await;
    stream.write_all(&head).await.unwrap();
    stream.write_all(first).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Act: SIGTERM, then the rest of the body.
    server.terminate();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let refused = tokio::net::TcpStream::connect(("127.0.0.1", server.port)).await;
    stream.write_all(rest).await.unwrap();
    let reply = read_reply(&mut stream, Duration::from_secs(10)).await;

    // Assert
    assert_eq!(status(&reply), 200, "{reply}");
    assert!(reply.contains(r#""userName":"test""#), "{reply}");
    assert!(refused.is_err(), "no new connections after SIGTERM");
    let started = Instant::now();
    let exit = server.wait(Duration::from_secs(35));
    assert!(exit.success(), "exit status {exit:?}\n{}", server.log());
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn sighup_reloads_the_data_file_and_a_bad_file_keeps_the_old_rows() {
    let server = ServerProcess::start(&default_config(), &[]);
    let client = reqwest::Client::new();
    let lookup = |call_num: &'static str| {
        let client = client.clone();
        let address = server.address.clone();
        async move {
            Call::new(format!(r#"{{"callNum":"{call_num}","nation":"korea"}}"#))
                .send_to(&client, &address)
                .await
                .status()
                .as_u16()
        }
    };
    assert_eq!(lookup("1").await, 200);
    assert_eq!(lookup("777").await, 400, "not in the file yet");

    std::fs::write(
        server.data_path(),
        r#"[{"callNum":"777","nation":"korea","userName":"New","id":"n7"}]"#,
    )
    .unwrap();
    server.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while lookup("777").await != 200 {
        assert!(Instant::now() < deadline, "the new file was never served");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(lookup("1").await, 400, "the old rows are gone");

    std::fs::write(server.data_path(), "[{broken").unwrap();
    server.signal("HUP");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(lookup("777").await, 200, "a bad file keeps the old index");
    assert!(
        server.log().contains("still serving the previous one"),
        "{}",
        server.log()
    );
}

#[tokio::test]
async fn sigterm_during_a_slow_backend_call_lets_it_finish_then_exits_0() {
    // Arrange: a SQLite backend whose query takes about two seconds.
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("slow.db");
    std::fs::write(&database, b"").unwrap();
    let slow = format!(
        r#"
[[backends]]
name = "slow"
kind = "sqlite"
url = "sqlite://{}"
query = "SELECT 'slow answer' AS userName, (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 6000000) SELECT count(*) FROM c) AS id WHERE ?1 IS NOT NULL"
params = ["callNum"]
timeout_ms = 30000

[[routes]]
name = "slow"
path = "/slow"
scheme = "contiple"
keys = ["{KEY}"]
backend = "slow"
request_fields = ["callNum"]
response_fields = ["userName", "id"]
"#,
        database.display()
    );
    let mut server = ServerProcess::start(&format!("{}{slow}", default_config()), &[]);
    let call = Call::new(r#"{"callNum":"1"}"#).path("/slow");
    let client = reqwest::Client::new();
    let address = server.address.clone();
    let in_flight = tokio::spawn(async move { call.send_to(&client, &address).await });
    tokio::time::sleep(Duration::from_millis(400)).await;

    // Act
    server.terminate();

    // Assert: the lookup completes with its answer, then the process exits 0.
    let response = in_flight.await.unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["data"]["userName"], "slow answer");
    assert_eq!(body["data"]["id"], "6000000");
    let exit = server.wait(Duration::from_secs(35));
    assert!(exit.success(), "exit status {exit:?}\n{}", server.log());
}
