//! Real servers for the tests, started on free loopback ports in temp
//! directories and stopped when dropped. A missing server binary skips the
//! test with a message, or fails it under `VERIGATE_REQUIRE_SERVERS=1`.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
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

    /// A client connection, for a test to look at or change the server.
    pub async fn connection(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .expect("redis url")
            .get_multiplexed_async_connection()
            .await
            .expect("redis connection")
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

/// True when the tests run as root (CI does), where PostgreSQL's tools
/// refuse to run and must run as the `postgres` user instead.
fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// The directory holding `initdb` and `pg_ctl`: Debian's versioned
/// `/usr/lib/postgresql/*/bin` (newest first), else `PATH`.
fn postgres_bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("bin"))
        .filter(|bin| bin.join("initdb").exists() && bin.join("pg_ctl").exists())
        .collect();
    versions.sort_by_key(|bin| {
        bin.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    versions
        .pop()
        .or_else(|| find_binary("initdb", &[]).and_then(|p| p.parent().map(Path::to_owned)))
}

/// Runs `command`, panicking with its output when it fails.
fn run(mut command: Command, what: &str) {
    let output = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A throw-away PostgreSQL cluster (trust authentication, user
/// `postgres`), listening on 127.0.0.1 at a free port, its socket and data
/// in a temp directory.
pub struct PostgresServer {
    bin: PathBuf,
    as_postgres: bool,
    running: bool,
    tls: bool,
    /// Its port.
    pub port: u16,
    dir: TempDir,
}

impl PostgresServer {
    /// Creates and starts a cluster, or skips (see [`missing`]).
    pub fn start() -> Option<PostgresServer> {
        let Some(bin) = postgres_bin_dir() else {
            return missing("PostgreSQL (initdb, pg_ctl)");
        };
        let as_postgres = running_as_root();
        if as_postgres && find_binary("runuser", &["/usr/sbin/runuser", "/sbin/runuser"]).is_none()
        {
            return missing("runuser (to run PostgreSQL as the postgres user)");
        }
        let dir = tempfile::tempdir().expect("temp dir");
        if as_postgres {
            let mut chown = Command::new("chown");
            chown.arg("postgres:postgres").arg(dir.path());
            run(chown, "chown of the PostgreSQL temp dir");
        }
        let mut server = PostgresServer {
            bin,
            as_postgres,
            running: false,
            tls: false,
            port: free_port(),
            dir,
        };
        let mut initdb = server.tool("initdb");
        initdb
            .arg("-D")
            .arg(server.data())
            .args(["-A", "trust", "-U", "postgres", "-E", "UTF8"])
            .args(["--no-locale", "--no-sync"]);
        run(initdb, "initdb");
        server.launch();
        Some(server)
    }

    /// Restarts the server with TLS on: a certificate for `localhost` and
    /// 127.0.0.1 issued by a throw-away CA, whose certificate is
    /// [`PostgresServer::certificate`]. Skips (`None`) when `openssl` is
    /// missing.
    pub fn enable_tls(&mut self) -> Option<()> {
        let Some(openssl) = find_binary("openssl", &["/usr/bin/openssl"]) else {
            return missing("openssl (for a TLS certificate)");
        };
        let dir = self.dir.path();
        let openssl_run = |args: &[&str], what: &str| {
            let mut command = Command::new(&openssl);
            command.current_dir(dir).args(args);
            run(command, what);
        };
        openssl_run(
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=verigate test CA",
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
            ],
            "openssl: the CA",
        );
        openssl_run(
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=localhost",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
            ],
            "openssl: the server's request",
        );
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
        )
        .expect("extensions file");
        openssl_run(
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "1",
                "-extfile",
                "server.ext",
                "-out",
                "server.crt",
            ],
            "openssl: the server's certificate",
        );
        let (key, certificate) = (dir.join("server.key"), dir.join("server.crt"));
        if self.as_postgres {
            let mut chown = Command::new("chown");
            chown.arg("postgres:postgres").arg(&key).arg(&certificate);
            run(chown, "chown of the TLS key");
        }
        let mut chmod = Command::new("chmod");
        chmod.arg("600").arg(&key);
        run(chmod, "chmod of the TLS key");
        self.stop();
        self.tls = true;
        self.launch();
        Some(())
    }

    /// The certificate of the CA that issued the server's (PEM), once TLS
    /// is enabled.
    pub fn certificate(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    /// `postgres://postgres@127.0.0.1:PORT/DATABASE`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A command running one of PostgreSQL's tools, as `postgres` when we
    /// are root.
    fn tool(&self, name: &str) -> Command {
        let program = self.bin.join(name);
        if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        }
    }

    fn launch(&mut self) {
        let mut options = format!(
            "-k {} -p {} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off",
            self.dir.path().display(),
            self.port
        );
        if self.tls {
            options.push_str(&format!(
                " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
                self.dir.path().join("server.crt").display(),
                self.dir.path().join("server.key").display()
            ));
        }
        let mut pg_ctl = self.tool("pg_ctl");
        pg_ctl
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.dir.path().join("log"))
            .args(["-w", "-t", "30", "-o", &options, "start"]);
        run(pg_ctl, "pg_ctl start");
        self.running = true;
        assert!(
            wait_for_port(self.port, Duration::from_secs(30)),
            "PostgreSQL did not listen on {}",
            self.port
        );
    }

    /// Stops the server at once (`-m immediate`), keeping its data.
    pub fn stop(&mut self) {
        if !self.running {
            return;
        }
        let mut pg_ctl = self.tool("pg_ctl");
        pg_ctl
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "-t", "30", "stop"]);
        // Best effort: Drop must not panic while a test unwinds.
        let _ = pg_ctl.stdout(Stdio::null()).stderr(Stdio::null()).status();
        self.running = false;
    }

    /// Starts it again on the same port, with the same data.
    pub fn start_again(&mut self) {
        self.launch();
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A throw-away MariaDB server without grant tables (any user connects,
/// with any password), listening on 127.0.0.1 at a free port.
pub struct MariaDbServer {
    server: PathBuf,
    child: Option<Child>,
    /// Its port.
    pub port: u16,
    dir: TempDir,
}

impl MariaDbServer {
    /// Creates a data directory and starts the server, or skips.
    pub fn start() -> Option<MariaDbServer> {
        let Some(server) = find_binary(
            "mariadbd",
            &[
                "/usr/sbin/mariadbd",
                "/usr/sbin/mysqld",
                "/usr/bin/mariadbd",
            ],
        ) else {
            return missing("MariaDB (mariadbd)");
        };
        let Some(install) = find_binary(
            "mariadb-install-db",
            &["/usr/bin/mariadb-install-db", "/usr/bin/mysql_install_db"],
        ) else {
            return missing("MariaDB (mariadb-install-db)");
        };
        let dir = tempfile::tempdir().expect("temp dir");
        // Its own temporary files too: concurrent servers sharing /tmp
        // have been seen to remove each other's.
        std::fs::create_dir(dir.path().join("tmp")).expect("tmp dir");
        let mut install_db = Command::new(install);
        install_db
            .env("TMPDIR", dir.path().join("tmp"))
            .arg("--no-defaults")
            .arg(format!("--datadir={}", dir.path().join("data").display()))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"]);
        run(install_db, "mariadb-install-db");
        let mut server = MariaDbServer {
            server,
            child: None,
            port: free_port(),
            dir,
        };
        server.launch();
        Some(server)
    }

    /// `mysql://root@127.0.0.1:PORT/DATABASE`.
    pub fn url(&self, database: &str) -> String {
        format!("mysql://root@127.0.0.1:{}/{database}", self.port)
    }

    fn launch(&mut self) {
        let dir = self.dir.path();
        let child = Command::new(&self.server)
            .env("TMPDIR", dir.join("tmp"))
            .arg("--no-defaults")
            .arg(format!("--datadir={}", dir.join("data").display()))
            .args(["--user=root", "--skip-grant-tables", "--skip-networking=0"])
            .arg(format!("--socket={}", dir.join("s.sock").display()))
            .arg(format!("--port={}", self.port))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--log-error={}", dir.join("error.log").display()))
            .arg(format!("--pid-file={}", dir.join("mariadb.pid").display()))
            .args(["--innodb-buffer-pool-size=32M", "--skip-log-bin"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mariadbd starts");
        self.child = Some(child);
        assert!(
            wait_for_port(self.port, Duration::from_secs(30)),
            "MariaDB did not listen on {} (see {})",
            self.port,
            dir.join("error.log").display()
        );
    }

    /// Kills the server (its data stays; InnoDB recovers on restart).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, with the same data.
    pub fn start_again(&mut self) {
        self.launch();
    }
}

impl Drop for MariaDbServer {
    fn drop(&mut self) {
        self.stop();
    }
}
