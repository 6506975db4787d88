//! Child processes of the benchmark (the mock, the bare hop, Sluice) that announce their base
//! URL on stdout.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// A child process and the base URL it announced; killed when dropped.
pub struct Proc {
    /// The process.
    pub child: Child,
    /// The `http://…` base URL from its first stdout line that holds one.
    pub url: String,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `cmd` (stdout piped, stderr dropped) and waits for its first stdout line holding
/// `http://…`; the rest of stdout is drained on a thread so the child never blocks on a full
/// pipe.
///
/// Errors: the process cannot start, or exits before announcing an address.
pub fn spawn_announced(mut cmd: Command) -> Result<Proc, String> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("spawn: {e}"))?;
    let Some(stdout) = child.stdout.take() else {
        let _ = child.kill();
        let _ = child.wait();
        return Err("no stdout".into());
    };
    let mut line = String::new();
    let mut reader = BufReader::new(stdout);
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            let _ = child.kill();
            let _ = child.wait();
            return Err("child exited before announcing its address".into());
        }
        if let Some(i) = line.find("http://") {
            let url = line[i..]
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_string();
            std::thread::spawn(move || for _ in reader.lines() {});
            return Ok(Proc { child, url });
        }
    }
}
