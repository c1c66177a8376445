//! The real ferry-server of a test, on a free loopback port in the test's directory.

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::bin;

/// Bound on waiting for the server to answer /healthz.
const SERVER_START_TIMEOUT: Duration = Duration::from_secs(20);

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

/// A raw GET over loopback; the harness needs nothing more to poll /healthz.
fn http_get_status(addr: &str, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    buf.split_whitespace().nth(1)?.parse().ok()
}

/// The throw-away PostgreSQL server `scripts/test` started (`FERRY_TEST_POSTGRES`, its base
/// URL); tests that need one fail loudly without it.
pub fn postgres_base() -> String {
    std::env::var("FERRY_TEST_POSTGRES").unwrap_or_else(|_| {
        panic!(
            "FERRY_TEST_POSTGRES is not set: run scripts/test, or start a server with \
             `scripts/postgres start DIR` and export FERRY_TEST_POSTGRES=<the URL it prints>"
        )
    })
}

/// A new, empty database on the tests' PostgreSQL server; returns its URL.
pub fn new_postgres_database() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let base = postgres_base();
    let name = format!(
        "t{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    );
    let out = Command::new("psql")
        .arg(format!("{base}/postgres"))
        .args(["-v", "ON_ERROR_STOP=1", "-q", "-c"])
        .arg(format!("CREATE DATABASE {name}"))
        .output()
        .expect("psql (from postgresql-client)");
    assert!(
        out.status.success(),
        "cannot create database {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    format!("{base}/{name}")
}

/// Whether the whole suite runs its servers on PostgreSQL (`FERRY_TEST_DATABASE=postgres`)
/// rather than each on its own SQLite file.
pub fn suite_on_postgres() -> bool {
    match std::env::var("FERRY_TEST_DATABASE").as_deref() {
        Ok("postgres") => true,
        Ok("sqlite") | Err(_) => false,
        Ok(other) => panic!("FERRY_TEST_DATABASE={other:?}: use sqlite or postgres"),
    }
}

pub struct Server {
    child: Option<Child>,
    pub addr: String,
    pub data_dir: PathBuf,
    log: PathBuf,
    config: Option<PathBuf>,
    /// The PostgreSQL database this server keeps its state in (`None`: SQLite).
    pub database: Option<String>,
}

impl Server {
    /// Starts the server with its state in `database` (PostgreSQL) if given.
    pub fn start_on(data_dir: &Path, config: Option<PathBuf>, database: Option<String>) -> Server {
        Server::start_instance(data_dir, config, database, &data_dir.with_extension("log"))
    }

    /// Another instance: its own log, maybe the same data directory and database as others.
    pub fn start_instance(
        data_dir: &Path,
        config: Option<PathBuf>,
        database: Option<String>,
        log: &Path,
    ) -> Server {
        let mut server = Server {
            child: None,
            addr: String::new(),
            data_dir: data_dir.to_path_buf(),
            log: log.to_path_buf(),
            config,
            database,
        };
        server.launch();
        server
    }

    /// Everything the database holds, as bytes to search: the SQLite file and its log, or a
    /// dump of the PostgreSQL database.
    pub fn database_bytes(&self) -> Vec<u8> {
        match &self.database {
            Some(url) => {
                let out = Command::new("pg_dump")
                    .arg(url)
                    .output()
                    .expect("pg_dump (from postgresql-client)");
                assert!(out.status.success(), "pg_dump failed");
                out.stdout
            }
            None => {
                let mut bytes = fs::read(self.data_dir.join("ferry.db")).unwrap_or_default();
                bytes.extend(fs::read(self.data_dir.join("ferry.db-wal")).unwrap_or_default());
                bytes
            }
        }
    }

    /// Starts the server on `addr`; true once it answers /healthz, false if it exited
    /// (the port was taken) or did not answer in time.
    fn spawn_on(&mut self, addr: &str) -> bool {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("server log");
        let mut cmd = Command::new(bin("ferry-server"));
        if let Some(config) = &self.config {
            cmd.arg("--config").arg(config);
        }
        if let Some(database) = &self.database {
            cmd.arg("--database").arg(database);
        }
        let child = cmd
            .arg("--listen")
            .arg(addr)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .env("FERRY_LOG", "info,tower_http=debug")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start ferry-server");
        self.child = Some(child);
        self.addr = addr.to_string();
        let deadline = Instant::now() + SERVER_START_TIMEOUT;
        while Instant::now() < deadline {
            if http_get_status(addr, "/healthz") == Some(200) {
                return true;
            }
            if let Some(Ok(Some(_))) = self.child.as_mut().map(|c| c.try_wait()) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    fn launch(&mut self) {
        for _attempt in 0..5 {
            if self.spawn_on(&format!("127.0.0.1:{}", free_port())) {
                return;
            }
            self.kill();
        }
        panic!(
            "ferry-server did not become ready; log:\n{}",
            self.log_text()
        );
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts again on the same address and data.
    pub fn restart_same_port(&mut self) {
        let addr = self.addr.clone();
        if !self.spawn_on(&addr) {
            panic!("ferry-server did not restart; log:\n{}", self.log_text());
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}
