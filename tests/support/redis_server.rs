//! A real `redis-server` (≥ 7) for the coordination tests: started on 127.0.0.1 on a free
//! port with its data in a temporary folder, stopped by its PID (also when dropped).
//! `tests/run.sh` installs Debian's `redis-server` when it is missing; without it the tests
//! fail (they are never skipped).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running redis-server.
pub struct RedisServer {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Its TLS port on 127.0.0.1 ([`RedisServer::start_tls`]).
    pub tls_port: Option<u16>,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts one on a free port; waits (≤ 10 s) until it answers `PING`.
    pub fn start() -> RedisServer {
        let port = free_port();
        let mut s = RedisServer {
            port,
            tls_port: None,
            dir: tempfile::tempdir().unwrap(),
            child: None,
        };
        s.restart();
        s
    }

    /// Starts one that also takes TLS on a second port, with a certificate for `localhost`
    /// only, signed by a throwaway CA ([`RedisServer::ca_file`]); [`RedisServer::other_ca_file`]
    /// is a CA that signed nothing of it. Needs the `openssl` command (tests/run.sh).
    pub fn start_tls() -> RedisServer {
        let mut s = RedisServer {
            port: free_port(),
            tls_port: Some(free_port()),
            dir: tempfile::tempdir().unwrap(),
            child: None,
        };
        let ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
        let script = format!(
            "set -e
openssl req -x509 {ec} -days 3 -subj /CN=sluice-test-ca -keyout ca.key -out ca.pem
openssl req -x509 {ec} -days 3 -subj /CN=sluice-other-ca -keyout other-ca.key -out other-ca.pem
openssl req {ec} -subj /CN=localhost -keyout server.key -out server.csr
printf 'subjectAltName=DNS:localhost\\n' >server.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3 -extfile server.ext -out server.crt"
        );
        let out = Command::new("bash")
            .args(["-c", &script])
            .current_dir(s.dir.path())
            .output()
            .expect("bash");
        assert!(
            out.status.success(),
            "openssl: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        s.restart();
        s
    }

    /// The PEM file of the CA that signed the TLS port's certificate.
    pub fn ca_file(&self) -> std::path::PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The PEM file of a CA that signed nothing of this server's.
    pub fn other_ca_file(&self) -> std::path::PathBuf {
        self.dir.path().join("other-ca.pem")
    }

    /// `rediss://HOST:TLS_PORT`.
    pub fn tls_url(&self, host: &str) -> String {
        format!(
            "rediss://{host}:{}",
            self.tls_port.expect("started with TLS")
        )
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// (Re)starts the server on the same port, with no data (nothing is saved).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "redis-server is already running");
        let bin = std::env::var("SLUICE_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let mut cmd = Command::new(&bin);
        if let Some(tls) = self.tls_port {
            let file = |name: &str| self.dir.path().join(name);
            cmd.arg("--tls-port")
                .arg(tls.to_string())
                .arg("--tls-cert-file")
                .arg(file("server.crt"))
                .arg("--tls-key-file")
                .arg(file("server.key"))
                .arg("--tls-ca-cert-file")
                .arg(file("ca.pem"))
                .args(["--tls-auth-clients", "no"]);
        }
        let child = cmd
            .args(["--bind", "127.0.0.1", "--port"])
            .arg(self.port.to_string())
            .arg("--dir")
            .arg(self.dir.path())
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start `{bin}` ({e}): install Debian's redis-server (tests/run.sh does)"
                )
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.pings() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer within 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server (SIGTERM to its PID, then waits for it; SIGKILL after 5 s).
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // SAFETY: signalling a child process this test started, by its PID.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while child.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether it answers `PING` with `+PONG` now.
    pub fn pings(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        if s.write_all(b"PING\r\n").is_err() {
            return false;
        }
        let mut buf = [0u8; 7];
        s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A port that was free on 127.0.0.1 a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
