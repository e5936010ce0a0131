//! One private, loopback-only PostgreSQL per test process, started on first
//! use and shared by every test in the process; each test gets a fresh
//! database in it (`PgServer::create_database`).
//!
//! Lifetime: statics are never dropped and a test process may end by a
//! panic, `process::exit`, Ctrl-C or SIGKILL, so nothing in the process can
//! be trusted to stop the server. Instead a small watchdog (bash) owns it:
//! the server is its child, and its stdin is a pipe whose only writer is
//! this process. The kernel closes that pipe however the process ends; the
//! watchdog then reads EOF, stops the server (immediate shutdown: no
//! checkpoint, the data is deleted next) and removes the data directory.
//! A `postgres` started directly by the test would outlive it, as
//! postmasters do not watch their parent.

use std::fmt;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sqlx::Connection;

/// Where the PostgreSQL 15 binaries are unless `CHANGEGATE_TEST_PG_BIN` says otherwise.
pub const DEFAULT_PG_BIN: &str = "/usr/lib/postgresql/15/bin";
const USER: &str = "app";
const PASSWORD: &str = "secret";
/// initdb and start: about 2 s, much more on a loaded machine.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The watchdog: $1 directory, $2 bin dir, $3 port, $4 OS user to run
/// the server as ("" for the current one). It owns the directory from the
/// start: it runs initdb and then the server, so that the test process
/// may die at any point after handing it over. When its stdin reaches EOF
/// (the test process is gone) it stops the server, if running, and removes
/// the directory. Should initdb fail or the server stop first (it could not
/// start, or Ctrl-C reached it too), it writes `server.exited` for the
/// harness and still waits for EOF before removing anything: the harness
/// reads the logs. It ignores the terminal's signals so that Ctrl-C does
/// not stop it before it has cleaned up. It repeats the stop signal until
/// the server is gone: a server still starting has not installed its
/// handlers yet, and bash starts background jobs with SIGQUIT ignored, so
/// an early signal is lost.
///
/// Host connections are trusted, not password-checked: the server only
/// listens on loopback for the life of the test process and holds test
/// data, while SCRAM's key derivation costs tens of milliseconds per
/// connection in debug builds, seconds per test binary. The user is `app`
/// (`USER`).
const WATCHDOG: &str = r#"
set -u
dir=$1 bin=$2 port=$3 user=$4
trap '' INT TERM HUP
exec 3<&0 </dev/null
as_user=()
[ -n "$user" ] && as_user=(setpriv --reuid="$user" --regid="$user" --init-groups --)
if { [ -z "$user" ] || chown -R "$user:" "$dir"; } >"$dir/setup.log" 2>&1 &&
  "${as_user[@]}" "$bin/initdb" -D "$dir/data" -U app --pwfile="$dir/pw" --auth-local=trust --auth-host=trust \
    -E UTF8 --locale=C.UTF-8 --no-sync >>"$dir/setup.log" 2>&1; then
  "${as_user[@]}" "$bin/postgres" -D "$dir/data" -p "$port" -k "$dir" -c listen_addresses=127.0.0.1 \
    -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300 -c max_wal_size=256MB \
    >>"$dir/server.log" 2>&1 &
  pg=$!
  { read -r -u 3 _; while [ ! -e "$dir/server.exited" ]; do kill -QUIT "$pg" 2>/dev/null; sleep 0.1; done; } &
  reader=$!
  wait "$pg"
  echo "$?" >"$dir/server.exited"
  wait "$reader"
else
  echo "setup" >"$dir/server.exited"
  read -r -u 3 _
fi
rm -rf "$dir"
"#;

/// Why the private PostgreSQL is not available; tests fail with this text.
#[derive(Debug, Clone)]
pub struct PgError(String);

impl fmt::Display for PgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PgError {}

fn fail<T>(message: impl Into<String>) -> Result<T, PgError> {
    Err(PgError(message.into()))
}

/// The running server of this test process.
pub struct PgServer {
    port: u16,
    dir: PathBuf,
    bin: PathBuf,
    run_as: Option<String>,
    next_database: AtomicU64,
    /// Holding the watchdog's stdin open keeps the server running.
    _watchdog: (Child, ChildStdin),
}

static SERVER: OnceLock<Result<PgServer, PgError>> = OnceLock::new();

impl PgServer {
    /// The process's server, started on the first call (about 2 s). Later
    /// calls return the same server, or the same error.
    pub fn shared() -> Result<&'static PgServer, PgError> {
        SERVER
            .get_or_init(PgServer::start)
            .as_ref()
            .map_err(Clone::clone)
    }

    /// `postgres://app:secret@127.0.0.1:PORT/database`
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://{USER}:{PASSWORD}@127.0.0.1:{}/{database}",
            self.port
        )
    }

    /// The data directory (removed when the test process ends).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A new, empty database, named `t_<n>`, dropped again when the
    /// returned guard is (a test's database is about 11 MB with its WAL;
    /// hundreds of tests would otherwise fill the disk before the process
    /// ends).
    pub async fn create_database(&'static self) -> Result<PgDatabase, PgError> {
        let name = format!("t_{}", self.next_database.fetch_add(1, Ordering::Relaxed));
        let mut admin = self.admin().await?;
        // Not a macro: a database name cannot be a bind parameter.
        sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .map_err(|e| PgError(format!("CREATE DATABASE {name} failed: {e}")))?;
        let _ = admin.close().await;
        Ok(PgDatabase {
            url: self.url(&name),
            name,
            server: self,
        })
    }

    async fn admin(&self) -> Result<sqlx::PgConnection, PgError> {
        sqlx::PgConnection::connect(&self.url("postgres"))
            .await
            .map_err(|e| {
                PgError(format!(
                    "cannot connect to the test PostgreSQL on port {}: {e}",
                    self.port
                ))
            })
    }

    /// A server of the test's own, not the process's shared one: for a
    /// test that stops it under a running changegate and starts it again
    /// (`stop`, `restart`). Its watchdog removes it when the process ends.
    pub fn private() -> Result<&'static PgServer, PgError> {
        Ok(Box::leak(Box::new(PgServer::start()?)))
    }

    /// `pg_ctl` on this server's data directory, as the server's OS user.
    fn pg_ctl(&self, args: &[&str]) -> Result<(), PgError> {
        let pg_ctl = self.bin.join("pg_ctl");
        let mut cmd = match &self.run_as {
            Some(user) => {
                let mut c = Command::new("setpriv");
                c.args([
                    &format!("--reuid={user}"),
                    &format!("--regid={user}"),
                    "--init-groups",
                    "--",
                ])
                .arg(&pg_ctl);
                c
            }
            None => Command::new(&pg_ctl),
        };
        let out = cmd
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(args)
            .output()
            .map_err(|e| PgError(format!("cannot run pg_ctl: {e}")))?;
        if out.status.success() {
            Ok(())
        } else {
            fail(format!(
                "pg_ctl {args:?} failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// Stop the server (fast shutdown: sessions are cut), as an outage.
    pub fn stop(&self) -> Result<(), PgError> {
        self.pg_ctl(&["-m", "fast", "-w", "-t", "60", "stop"])
    }

    /// Start it again on the same port and data after `stop`.
    pub fn restart(&self) -> Result<(), PgError> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("restarted.log");
        self.pg_ctl(&[
            "-w",
            "-t",
            "60",
            "-l",
            &log.to_string_lossy(),
            "-o",
            &options,
            "start",
        ])
    }

    fn start() -> Result<PgServer, PgError> {
        let bin = std::env::var_os("CHANGEGATE_TEST_PG_BIN")
            .map_or_else(|| PathBuf::from(DEFAULT_PG_BIN), PathBuf::from);
        for tool in ["initdb", "postgres"] {
            if !bin.join(tool).is_file() {
                return fail(format!(
                    "PostgreSQL tests need the PostgreSQL 15 server, but {} does not exist. \
                     Install it with `apt-get install postgresql-15`, or set CHANGEGATE_TEST_PG_BIN \
                     to the directory holding initdb and postgres.",
                    bin.join(tool).display()
                ));
            }
        }
        // initdb and postgres refuse to run as root.
        let run_as = if is_root()? { Some("postgres") } else { None };
        // A port picked by binding port 0 may be taken again before the
        // server binds it: try a few times, each from scratch.
        let mut last = String::new();
        for _ in 0..3 {
            match start_once(&bin, run_as) {
                Ok(server) => return Ok(server),
                Err(e) if e.0.contains("could not bind") => last = e.0,
                Err(e) => return Err(e),
            }
        }
        fail(format!(
            "PostgreSQL could not bind a free port three times:\n{last}"
        ))
    }
}

/// A test's database; dropping it drops the database in the background
/// (`WITH (FORCE)`: connections still open are closed), so keep it as long
/// as a store uses it.
pub struct PgDatabase {
    name: String,
    url: String,
    server: &'static PgServer,
}

impl PgDatabase {
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        // Drop may run inside a runtime, where blocking is not allowed: a
        // thread of its own does it. A drop still running when the process
        // ends is moot, the watchdog removes the whole server.
        let (server, name) = (self.server, std::mem::take(&mut self.name));
        std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                if let Ok(mut admin) = server.admin().await {
                    let _ = sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut admin)
                        .await;
                    let _ = admin.close().await;
                }
            });
        });
    }
}

/// A new temporary directory handed to a watchdog that initdb's it and
/// runs the server; on failure the error has the logs, and the directory
/// is gone.
fn start_once(bin: &Path, run_as: Option<&str>) -> Result<PgServer, PgError> {
    let dir = tempfile::Builder::new()
        .prefix("changegate-pg-")
        .tempdir()
        .map_err(|e| PgError(format!("cannot create a temporary directory: {e}")))?
        .keep();
    let started = run_server(bin, &dir, run_as);
    if started.is_err() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    started
}

fn run_server(bin: &Path, dir: &Path, run_as: Option<&str>) -> Result<PgServer, PgError> {
    std::fs::write(dir.join("pw"), format!("{PASSWORD}\n")).map_err(|e| {
        PgError(format!(
            "cannot write the password file in {}: {e}",
            dir.display()
        ))
    })?;
    let port = free_port()?;
    let mut watchdog = Command::new("bash")
        .args(["-c", WATCHDOG, "changegate-pg-watchdog"])
        .arg(dir)
        .arg(bin)
        .arg(port.to_string())
        .arg(run_as.unwrap_or(""))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| PgError(format!("cannot run bash for the PostgreSQL watchdog: {e}")))?;
    let Some(stdin) = watchdog.stdin.take() else {
        return fail("the watchdog has no stdin pipe");
    };
    match wait_until_ready(dir, &mut watchdog) {
        Ok(()) => Ok(PgServer {
            port,
            dir: dir.to_path_buf(),
            bin: bin.to_path_buf(),
            run_as: run_as.map(str::to_string),
            next_database: AtomicU64::new(1),
            _watchdog: (watchdog, stdin),
        }),
        Err(e) => {
            // Read the logs before closing stdin, which makes the watchdog
            // stop the server and remove the directory.
            let mut logs = String::new();
            for log in ["setup.log", "server.log"] {
                logs += &tail(
                    &std::fs::read_to_string(dir.join(log)).unwrap_or_default(),
                    20,
                );
                logs.push('\n');
            }
            drop(stdin);
            let _ = watchdog.wait();
            let hint = match run_as {
                Some(user) if logs.contains("invalid user") || logs.contains("chown") => format!(
                    "\nAs root the test PostgreSQL runs as the `{user}` OS user, which \
                     `apt-get install postgresql-15` creates."
                ),
                _ => String::new(),
            };
            fail(format!("{e}{hint}\n{}", logs.trim_end()))
        }
    }
}

/// Ready when postmaster.pid's status line says so; failed when initdb
/// failed or the server or the watchdog stopped.
fn wait_until_ready(dir: &Path, watchdog: &mut Child) -> Result<(), PgError> {
    let deadline = Instant::now() + START_TIMEOUT;
    let pid_file = dir.join("data").join("postmaster.pid");
    loop {
        if let Ok(pid) = std::fs::read_to_string(&pid_file)
            && pid
                .lines()
                .nth(7)
                .is_some_and(|status| status.trim() == "ready")
        {
            return Ok(());
        }
        if dir.join("server.exited").exists() {
            return fail("the test PostgreSQL did not start");
        }
        if let Ok(Some(status)) = watchdog.try_wait() {
            return fail(format!(
                "the test PostgreSQL's watchdog stopped while it was starting ({status})"
            ));
        }
        if Instant::now() > deadline {
            return fail(format!(
                "the test PostgreSQL was not ready after {START_TIMEOUT:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn is_root() -> Result<bool, PgError> {
    let out = Command::new("id")
        .arg("-u")
        .output()
        .map_err(|e| PgError(format!("cannot run `id -u`: {e}")))?;
    Ok(String::from_utf8_lossy(&out.stdout).trim() == "0")
}

fn free_port() -> Result<u16, PgError> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| PgError(format!("cannot find a free port: {e}")))
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
