//! Real servers for the tests, started on free loopback ports in temp
//! directories and stopped when dropped. A missing server binary skips the
//! test with a message, or fails it under `VERIGATE_REQUIRE_SERVERS=1`.

use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use tempfile::TempDir;

/// Whether a missing server must fail the test (CI) instead of skipping it.
pub fn servers_required() -> bool {
    std::env::var("VERIGATE_REQUIRE_SERVERS").is_ok_and(|v| v == "1")
}

/// Returns `None` (the test skips) or panics under
/// `VERIGATE_REQUIRE_SERVERS=1`, saying what is missing.
pub fn missing<T>(what: &str) -> Option<T> {
    assert!(
        !servers_required(),
        "{what} is required (VERIGATE_REQUIRE_SERVERS=1) but not installed"
    );
    eprintln!("skipped: {what} is not installed");
    None
}

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The first of `candidates` that exists, or one found on `PATH`.
pub fn find_binary(name: &str, candidates: &[&str]) -> Option<PathBuf> {
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .or_else(|| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|dir| dir.join(name))
                    .find(|p| p.exists())
            })
        })
}

/// Waits until 127.0.0.1:`port` accepts connections, at most `limit`.
pub fn wait_for_port(port: u16, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A `redis-server` with no persistence, on a free port.
pub struct RedisServer {
    child: Option<Child>,
    binary: PathBuf,
    /// Its port.
    pub port: u16,
    dir: TempDir,
}

impl RedisServer {
    /// Starts one, or skips (see [`missing`]).
    pub fn start() -> Option<RedisServer> {
        let Some(binary) = find_binary("redis-server", &["/usr/bin/redis-server"]) else {
            return missing("redis-server");
        };
        let mut server = RedisServer {
            child: None,
            binary,
            port: free_port(),
            dir: tempfile::tempdir().expect("temp dir"),
        };
        server.launch();
        Some(server)
    }

    /// `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    fn launch(&mut self) {
        let child = Command::new(&self.binary)
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        assert!(
            wait_for_port(self.port, Duration::from_secs(10)),
            "redis-server did not listen on {}",
            self.port
        );
    }

    /// Stops the server, losing every key (`SHUTDOWN NOSAVE`, or a kill).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again, empty, on the same port.
    pub fn restart_empty(&mut self) {
        self.stop();
        self.launch();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
