//! verigate as a separate process: for signals and for reading its whole log.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tempfile::TempDir;

use crate::helpers::{CUSTOMERS, verigate_bin};

/// A running `verigate serve` child process.
pub struct ServerProcess {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub address: String,
    /// The main port.
    pub port: u16,
    log: Arc<Mutex<String>>,
    _dir: TempDir,
}

impl ServerProcess {
    /// Starts `verigate serve` on `config` (`{data}` = fixture file,
    /// `bind` should use port 0) with extra environment variables, and waits
    /// (bounded) for its "listening" line.
    pub fn start(config: &str, env: &[(&str, &str)]) -> ServerProcess {
        Self::start_with_args(config, &[], env)
    }

    /// As [`ServerProcess::start`], with extra `serve` arguments.
    pub fn start_with_args(config: &str, args: &[&str], env: &[(&str, &str)]) -> ServerProcess {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("customers.json");
        std::fs::write(&data, CUSTOMERS).unwrap();
        let path = dir.path().join("verigate.toml");
        std::fs::write(&path, config.replace("{data}", &data.display().to_string())).unwrap();
        let mut command = Command::new(verigate_bin());
        command
            .args(["serve", "--config"])
            .arg(&path)
            .args(args)
            .env_remove("VERIGATE_CONFIG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (port_tx, port_rx) = std::sync::mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let log = Arc::clone(&log);
            let port_tx = port_tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if line.contains("verigate listening")
                        && let Some(port) = field(&line, "port")
                    {
                        let _ = port_tx.send(port);
                    }
                    let mut log = log.lock().unwrap();
                    log.push_str(&line);
                    log.push('\n');
                }
            });
        }
        let port = port_rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("verigate did not start: {}", log.lock().unwrap()));
        ServerProcess {
            child,
            address: format!("http://127.0.0.1:{port}"),
            port,
            log,
            _dir: dir,
        }
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        self.signal("TERM");
    }

    /// Sends `signal` (`TERM`, `HUP`, ...).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// The fixture data file the server reads (`{data}` in its config).
    pub fn data_path(&self) -> std::path::PathBuf {
        self._dir.path().join("customers.json")
    }

    /// Waits (bounded) for the process to exit.
    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "verigate did not exit in {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything the process printed so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `port=8080` (human) or `"port":8080` (JSON) in a log line.
fn field(line: &str, name: &str) -> Option<u16> {
    let (start, tag) = [format!("{name}="), format!("\"{name}\":")]
        .into_iter()
        .find_map(|tag| line.find(&tag).map(|i| (i, tag)))?;
    let start = start + tag.len();
    line[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .ok()
}
