//! One place that knows how to start verigate and sign requests for it.
//!
//! Signing here uses the `hmac` crate directly, not verigate's own signer,
//! so a bug in verigate's signing cannot cancel itself out.

use std::{
    sync::Once,
    time::{SystemTime, UNIX_EPOCH},
};

use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use reqwest::{Response, StatusCode};
use serde_json::Value;
use sha2::Sha256;
use tempfile::TempDir;
use verigate::{
    configuration::Settings,
    startup::Application,
    telemetry::{LogFormat, get_subscriber, init_subscriber},
};

/// The seed's example key (seed 000), the route's current key.
pub const KEY: &str = "bf7769e5321448de88838cdb";
/// A second key still accepted during rotation.
pub const OLD_KEY: &str = "rotating-out-key-2025";
/// The default route path.
pub const PATH: &str = "/contiple/customer";

/// Fixture customers: an extra `phone` column that must never leave.
pub const CUSTOMERS: &str = r#"[
  {"callNum":"1","nation":"korea","userName":"test","id":"testId","phone":"010-1111-2222"},
  {"callNum":"01012345678","nation":"korea","userName":"홍길동","id":"hong","phone":"010-1234-5678"},
  {"callNum":"01012345678","nation":"","userName":"국적없음","id":"nonation","phone":"010-0000-0000"},
  {"callNum":"1021","nation":"japan","userName":"Tanaka","id":null,"phone":"080"}
]"#;

/// The default configuration: one Contiple route over the fixture file.
/// `{data}` is replaced with the fixture's path.
pub fn default_config() -> String {
    format!(
        r#"
[server]
bind = "127.0.0.1:0"
workers = 2

[replay]
store = "memory"
capacity = 100000

[[backends]]
name = "customers"
kind = "file"
path = "{{data}}"
key = ["callNum", "nation"]

[[routes]]
name = "contiple"
path = "{PATH}"
scheme = "contiple"
keys = ["{KEY}", "{OLD_KEY}"]
tolerance_secs = 300
backend = "customers"
request_fields = ["callNum", "nation"]
optional_fields = ["nation"]
response_fields = ["userName", "id"]
"#
    )
}

/// A running verigate on a free port.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`.
    pub address: String,
    /// The main port.
    pub port: u16,
    /// The metrics port, when `metrics_bind` is set.
    pub metrics_port: Option<u16>,
    /// A client without connection reuse limits.
    pub client: reqwest::Client,
    _dir: TempDir,
}

static TRACING: Once = Once::new();

fn init_tracing() {
    TRACING.call_once(|| {
        if std::env::var("TEST_LOG").is_ok() {
            init_subscriber(get_subscriber("debug", LogFormat::Human, std::io::stdout));
        } else {
            init_subscriber(get_subscriber("error", LogFormat::Human, std::io::sink));
        }
    });
}

impl TestApp {
    /// `GET /readyz`: status and JSON body.
    pub async fn readyz(&self) -> (StatusCode, Value) {
        let response = self
            .client
            .get(format!("{}/readyz", self.address))
            .send()
            .await
            .expect("readyz answers");
        status_and_json(response).await
    }

    /// `GET /metrics`: the exposition text.
    pub async fn metrics(&self) -> String {
        self.client
            .get(format!("{}/metrics", self.address))
            .send()
            .await
            .expect("metrics answer")
            .text()
            .await
            .expect("metrics body")
    }
}

/// Starts verigate with the default configuration.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(&default_config()).await
}

/// Starts verigate with `config` (`{data}` = the fixture file, `{dir}` = a
/// temp directory for other files).
pub async fn spawn_app_with(config: &str) -> TestApp {
    init_tracing();
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("customers.json");
    std::fs::write(&data, CUSTOMERS).expect("write fixture");
    let text = config
        .replace("{data}", &data.display().to_string())
        .replace("{dir}", &dir.path().display().to_string());
    let settings = Settings::from_toml(&text).expect("test config parses");
    let application = Application::build(&settings)
        .await
        .expect("application builds");
    let port = application.port();
    let metrics_port = application.metrics_port();
    tokio::spawn(application.run_until_stopped());
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        port,
        metrics_port,
        client: reqwest::Client::new(),
        _dir: dir,
    }
}

/// Epoch milliseconds now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

/// Base64(HMAC-SHA256(key, message)), computed independently of verigate.
pub fn sign(key: &str, message: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("any key length");
    mac.update(message);
    STANDARD.encode(mac.finalize().into_bytes())
}

/// A header the call sends: computed, given verbatim, or left out.
#[derive(Clone)]
enum Part {
    Auto,
    Raw(Vec<u8>),
    Omit,
}

/// A Contiple call under construction: signed with [`KEY`] at now, over
/// the body alone, unless told otherwise.
#[derive(Clone)]
pub struct Call {
    path: String,
    body: Vec<u8>,
    key: String,
    timestamp: Part,
    authorization: Part,
    sign_uri: bool,
    headers: Vec<(String, Vec<u8>)>,
    method: reqwest::Method,
}

impl Call {
    /// A POST of `body` to the default route.
    pub fn new(body: impl AsRef<[u8]>) -> Self {
        Self {
            path: PATH.into(),
            body: body.as_ref().to_vec(),
            key: KEY.into(),
            timestamp: Part::Auto,
            authorization: Part::Auto,
            sign_uri: false,
            headers: Vec::new(),
            method: reqwest::Method::POST,
        }
    }

    /// Sends to `path` (path and query).
    pub fn path(mut self, path: &str) -> Self {
        self.path = path.into();
        self
    }

    /// Signs with `key`.
    pub fn key(mut self, key: &str) -> Self {
        self.key = key.into();
        self
    }

    /// Uses this exact `X-TC-Timestamp` value (signed as is).
    pub fn timestamp(mut self, raw: impl AsRef<[u8]>) -> Self {
        self.timestamp = Part::Raw(raw.as_ref().to_vec());
        self
    }

    /// Signs and sends epoch milliseconds `ms`.
    pub fn at(self, ms: i64) -> Self {
        self.timestamp(ms.to_string())
    }

    /// Sends no `X-TC-Timestamp`.
    pub fn without_timestamp(mut self) -> Self {
        self.timestamp = Part::Omit;
        self
    }

    /// Sends this `Authorization` instead of the right one.
    pub fn authorization(mut self, raw: impl AsRef<[u8]>) -> Self {
        self.authorization = Part::Raw(raw.as_ref().to_vec());
        self
    }

    /// Sends no `Authorization`.
    pub fn without_authorization(mut self) -> Self {
        self.authorization = Part::Omit;
        self
    }

    /// Signs uri + body + timestamp.
    pub fn sign_uri(mut self) -> Self {
        self.sign_uri = true;
        self
    }

    /// Adds a header (sent in addition to the signature headers).
    pub fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> Self {
        self.headers.push((name.into(), value.as_ref().to_vec()));
        self
    }

    /// Uses another method.
    pub fn method(mut self, method: reqwest::Method) -> Self {
        self.method = method;
        self
    }

    /// Fixes the timestamp and signature now, so the call can be sent
    /// several times as the very same request.
    pub fn frozen(self) -> Self {
        let timestamp = match &self.timestamp {
            Part::Auto => Part::Raw(now_ms().to_string().into_bytes()),
            other => other.clone(),
        };
        let authorization = match (&self.authorization, &timestamp) {
            (Part::Auto, Part::Raw(ts)) => Part::Raw(self.signature(ts).into_bytes()),
            (Part::Auto, _) => Part::Raw(self.signature(b"").into_bytes()),
            (other, _) => other.clone(),
        };
        Self {
            timestamp,
            authorization,
            ..self
        }
    }

    /// The right signature for `timestamp`.
    pub fn signature(&self, timestamp: &[u8]) -> String {
        let mut message = Vec::new();
        if self.sign_uri {
            message.extend_from_slice(self.path.as_bytes());
        }
        message.extend_from_slice(&self.body);
        message.extend_from_slice(timestamp);
        sign(&self.key, &message)
    }

    /// The request as raw HTTP/1.1: the head (with `Content-Length`) and
    /// the body, for tests that write to a socket themselves.
    pub fn raw_parts(&self, path: &str) -> (Vec<u8>, Vec<u8>) {
        let frozen = self.clone().frozen();
        let mut head = format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n",
            frozen.body.len()
        )
        .into_bytes();
        for (name, part) in [
            ("X-TC-Timestamp", &frozen.timestamp),
            ("Authorization", &frozen.authorization),
        ] {
            if let Part::Raw(value) = part {
                head.extend_from_slice(name.as_bytes());
                head.extend_from_slice(b": ");
                head.extend_from_slice(value);
                head.extend_from_slice(b"\r\n");
            }
        }
        head.extend_from_slice(b"\r\n");
        (head, frozen.body)
    }

    /// Sends the call to `app` (the server at `address`).
    pub async fn send(&self, app: &TestApp) -> Response {
        self.send_to(&app.client, &app.address).await
    }

    /// Sends the call with `client` to `address`.
    pub async fn send_to(&self, client: &reqwest::Client, address: &str) -> Response {
        let frozen = self.clone().frozen();
        let mut request = client
            .request(frozen.method.clone(), format!("{address}{}", frozen.path))
            .body(frozen.body.clone());
        let value = |bytes: &[u8]| {
            reqwest::header::HeaderValue::from_bytes(bytes).expect("valid header bytes")
        };
        if let Part::Raw(ts) = &frozen.timestamp {
            request = request.header("X-TC-Timestamp", value(ts));
        }
        if let Part::Raw(auth) = &frozen.authorization {
            request = request.header("Authorization", value(auth));
        }
        for (name, bytes) in &frozen.headers {
            request = request.header(name.as_str(), value(bytes));
        }
        request.send().await.expect("request sent")
    }
}

/// Status and JSON body of a response.
pub async fn status_and_json(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.expect("body");
    let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    (status, json)
}

/// Asserts a Contiple error envelope with `status` and `code`.
pub async fn assert_error(response: Response, status: u16, code: &str, what: &str) -> Value {
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let (actual, body) = status_and_json(response).await;
    assert_eq!(actual.as_u16(), status, "{what}: {body}");
    assert_eq!(body["error"]["code"], code, "{what}: {body}");
    assert!(body["error"]["message"].is_string(), "{what}: {body}");
    assert!(body["error"].get("detail").is_some(), "{what}: {body}");
    assert_eq!(
        body.as_object().map(|o| o.len()),
        Some(1),
        "{what}: the envelope carries only `error`: {body}"
    );
    assert_eq!(content_type, "application/json; charset=utf-8", "{what}");
    body
}

/// Reads a counter from `/metrics` text (0 when absent).
pub fn metric_value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| {
            line.strip_prefix(series)
                .and_then(|rest| rest.trim().parse::<f64>().ok())
        })
        .unwrap_or(0.0)
}

/// The `verigate` binary built for these tests.
pub fn verigate_bin() -> &'static str {
    env!("CARGO_BIN_EXE_verigate")
}
