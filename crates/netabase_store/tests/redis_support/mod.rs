//! A `redis-server` of the test's own: started on a free loopback port with a temporary
//! directory, answering PING before it is handed out, killed when dropped. No test talks
//! to a server it did not start. `scripts/install-test-deps.sh` installs `redis-server`;
//! without it these tests fail (they are never skipped).

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use netabase_store::NetabaseStore;
use netabase_store::backend::redis::{RedisBackend, RedisConfig, RedisRead, RedisWrite};
use netabase_store::backend::{Backend, Capabilities};

/// A running `redis-server`, killed on drop.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    /// Whether every write is appended to an fsynced log (survives a kill).
    durable: bool,
}

/// How long a server may take to answer its first PING.
const START_TIMEOUT: Duration = Duration::from_secs(20);

impl RedisServer {
    /// A server that keeps nothing on disk.
    pub fn start() -> Self {
        Self::start_with(false)
    }

    /// A server whose every write is in its append-only file before it replies, so a
    /// killed and restarted server keeps every acknowledged commit.
    pub fn start_durable() -> Self {
        Self::start_with(true)
    }

    fn start_with(durable: bool) -> Self {
        let mut dir = tempfile::Builder::new()
            .prefix("netabase-redis-test-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temporary directory: {e}"));
        let mut last_error = String::new();
        // A port found free may be taken before the server binds it: try a few.
        for _ in 0..5 {
            let port = free_port();
            let mut server = RedisServer {
                child: None,
                port,
                dir,
                durable,
            };
            match server.spawn() {
                Ok(()) => return server,
                Err(e) => {
                    last_error = e;
                    dir = server.take_dir();
                }
            }
        }
        panic!("redis-server did not start: {last_error}");
    }

    fn take_dir(mut self) -> tempfile::TempDir {
        self.kill();
        std::mem::replace(
            &mut self.dir,
            tempfile::tempdir().unwrap_or_else(|e| panic!("temporary directory: {e}")),
        )
    }

    /// Starts the process and waits until it answers PING.
    fn spawn(&mut self) -> Result<(), String> {
        let mut command = Command::new("redis-server");
        command
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--dir")
            .arg(self.dir.path())
            .args(["--save", "", "--daemonize", "no", "--protected-mode", "yes"])
            .args(["--logfile", "server.log"]);
        if self.durable {
            command.args(["--appendonly", "yes", "--appendfsync", "always"]);
        } else {
            command.args(["--appendonly", "no"]);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    panic!(
                        "`redis-server` is not installed: the Redis backend's tests need it. \
                         Run `scripts/install-test-deps.sh` (Debian: `apt-get install redis-server`)."
                    )
                }
                format!("cannot run redis-server: {e}")
            })?;
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if self.ping() {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(format!(
                    "redis-server exited with {status} on port {}: {}",
                    self.port,
                    self.log_tail()
                ));
            }
            if Instant::now() > deadline {
                return Err(format!("no answer to PING on port {}", self.port));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn ping(&self) -> bool {
        let Ok(client) = redis::Client::open(self.url()) else {
            return false;
        };
        let Ok(mut con) = client.get_connection_with_timeout(Duration::from_millis(200)) else {
            return false;
        };
        redis::cmd("PING").query::<String>(&mut con).is_ok()
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
        log.lines().rev().take(5).collect::<Vec<_>>().join(" | ")
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The server's data directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Kills the process at once (SIGKILL): no chance to save anything.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and directory (after [`Self::kill`]).
    pub fn restart(&mut self) {
        self.kill();
        if let Err(e) = self.spawn() {
            panic!("redis-server did not restart: {e}");
        }
    }

    /// A plain connection to the server, for inspecting it.
    pub fn connection(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(5)))
            .unwrap_or_else(|e| panic!("cannot connect to the test server: {e}"))
    }
}

/// A `MONITOR` connection: lists the commands clients send to the server, apart from
/// those that scripts run, so a test can count round trips.
pub struct Monitor {
    reader: BufReader<TcpStream>,
    marker: redis::Connection,
    marks: u64,
}

impl Monitor {
    /// Starts monitoring `server`.
    pub fn new(server: &RedisServer) -> Self {
        let stream = TcpStream::connect(("127.0.0.1", server.port))
            .unwrap_or_else(|e| panic!("cannot connect to monitor: {e}"));
        let mut writer = stream
            .try_clone()
            .unwrap_or_else(|e| panic!("cannot clone the monitor socket: {e}"));
        writer
            .write_all(b"MONITOR\r\n")
            .unwrap_or_else(|e| panic!("MONITOR: {e}"));
        let mut monitor = Monitor {
            reader: BufReader::new(stream),
            marker: server.connection(),
            marks: 0,
        };
        let ok = monitor.line();
        assert_eq!(ok.trim_end(), "+OK", "MONITOR answered {ok}");
        monitor
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader
            .read_line(&mut line)
            .unwrap_or_else(|e| panic!("reading the monitor: {e}"));
        line
    }

    /// Sends a marker through the server and returns the commands clients sent before
    /// it (lower-case names), excluding those run inside scripts.
    fn until_mark(&mut self) -> Vec<String> {
        self.marks += 1;
        let mark = format!("netabase-mark-{}", self.marks);
        redis::cmd("ECHO")
            .arg(&mark)
            .query::<String>(&mut self.marker)
            .unwrap_or_else(|e| panic!("ECHO: {e}"));
        let mut commands = Vec::new();
        loop {
            let line = self.line();
            if line.contains(&mark) {
                return commands;
            }
            // `+<time> [<db> <client>] "<COMMAND>" "<arg>" ...`; scripts' commands have
            // `lua` as their client.
            let Some((client, rest)) = line.split_once("] ") else {
                continue;
            };
            if client.ends_with(" lua") {
                continue;
            }
            let name = rest.split('"').nth(1).unwrap_or_default().to_lowercase();
            commands.push(name);
        }
    }

    /// Runs `op` and returns what it returned and the commands it sent to the server
    /// (each one round trip: the backend pipelines nothing else).
    pub fn commands<R>(&mut self, op: impl FnOnce() -> R) -> (R, Vec<String>) {
        self.until_mark();
        let out = op();
        let commands = self.until_mark();
        (out, commands)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free loopback port: {e}"))
}

/// The Redis backend together with the server it talks to, which lives as long as the
/// store: what the conformance suite runs on.
pub struct ServedRedis {
    backend: RedisBackend,
    _server: Arc<RedisServer>,
}

impl ServedRedis {
    /// A new server and a backend on it.
    pub fn start() -> netabase_store::Result<Self> {
        let server = Arc::new(RedisServer::start());
        Ok(ServedRedis {
            backend: RedisBackend::open(&server.url())?,
            _server: server,
        })
    }
}

impl Backend for ServedRedis {
    type Read = RedisRead;
    type Write<'a> = RedisWrite<'a>;

    fn name(&self) -> &'static str {
        self.backend.name()
    }
    fn capabilities(&self) -> Capabilities {
        self.backend.capabilities()
    }
    fn begin_read(&self) -> netabase_store::Result<RedisRead> {
        self.backend.begin_read()
    }
    fn begin_write(&self) -> netabase_store::Result<RedisWrite<'_>> {
        self.backend.begin_write()
    }
}

/// A store of `D` on `server` under `prefix`.
pub fn store_on<D: netabase_store::schema::NetabaseDefinitionTrait>(
    server: &RedisServer,
    prefix: &str,
) -> netabase_store::Result<NetabaseStore<D, RedisBackend>> {
    NetabaseStore::with_redis_config(RedisConfig::new(server.url()).with_prefix(prefix))
}
