//! Sluice replicas as separate processes (the real binary, `sluice serve --config FILE`), on
//! 127.0.0.1, each with its own config file and SQLite log in a temporary folder; stopped by
//! PID (SIGTERM: graceful, the log is flushed).
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `sluice serve`.
pub struct Replica {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Its config file (rewrite it and send SIGHUP to reload).
    pub config: PathBuf,
    /// Its request log.
    pub db: PathBuf,
    /// Where its stdout and stderr go.
    pub out: PathBuf,
    pub err: PathBuf,
    child: Option<Child>,
    _dir: tempfile::TempDir,
}

impl Replica {
    /// Starts `sluice serve` over `yaml` (which must not set `server.listen` or `log.path`:
    /// they are added) with `env`; waits (≤ 30 s) until `/health` answers.
    pub fn start(yaml: &str, env: &[(&str, &str)]) -> Replica {
        let dir = tempfile::tempdir().unwrap();
        let port = super::redis_server::free_port();
        let config = dir.path().join("sluice.yaml");
        let db = dir.path().join("sluice.db");
        std::fs::write(&config, yaml).unwrap();
        let out = dir.path().join("stdout");
        let err = dir.path().join("stderr");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
        cmd.args(["serve", "--config"])
            .arg(&config)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env("SLUICE_TEST_DB", &db)
            .env_remove("SLUICE_CONFIG")
            .stdout(Stdio::from(std::fs::File::create(&out).unwrap()))
            .stderr(Stdio::from(std::fs::File::create(&err).unwrap()));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap();
        let r = Replica {
            base: format!("http://127.0.0.1:{port}"),
            config,
            db,
            out,
            err,
            child: Some(child),
            _dir: dir,
        };
        r.wait_until(30, "/health answers", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        r
    }

    /// The process id (0 once stopped).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Polls `ok` every 20 ms until it holds, failing after `secs` s with the replica's stderr.
    pub fn wait_until(&self, secs: u64, what: &str, mut ok: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !ok() {
            if Instant::now() > deadline {
                panic!("not within {secs} s: {what}\nstderr: {}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What it printed on stdout so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// What it printed on stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    /// Sends `signal` (e.g. `libc::SIGHUP`) to the process.
    pub fn signal(&self, signal: i32) {
        if let Some(c) = &self.child {
            // SAFETY: signalling a child process this test started, by its PID.
            unsafe {
                libc::kill(c.id() as i32, signal);
            }
        }
    }

    /// Stops it with SIGTERM and waits (≤ 30 s; then SIGKILL and a failed test). Gives its
    /// exit status (`None` if it was stopped before).
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        // SAFETY: as in `signal`.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().ok().flatten() {
                return Some(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("replica did not stop within 30 s");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
