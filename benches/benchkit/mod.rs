//! Pieces of the overhead benchmark (`benches/overhead.rs`, run by `benches/overhead.sh`),
//! compiled only into the benchmark (never into the product); `cargo test` runs the benchmark
//! at tiny scale as a smoke test:
//! a fast mock upstream ([`mock`]), a bare pass-through forwarder with no Sluice logic
//! ([`bare`]), and a load generator with closed-loop and open-loop (fixed offered rate) modes
//! ([`load`]); the PostgreSQL + coordinator scenario ([`scale`]).

pub mod bare;
pub mod dialects;
pub mod load;
pub mod mock;
pub mod proc;
pub mod report;
pub mod scale;

/// Reads the peak resident set size (`VmHWM`) and current RSS (`VmRSS`) of a process, in KiB,
/// from `/proc/PID/status` (Linux).
pub fn rss_kib(pid: u32) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some((field("VmHWM:")?, field("VmRSS:")?))
}

/// CPU time (user + system) a process has used, in clock ticks (`/proc/PID/stat` fields 14
/// and 15; 100 ticks per second on Linux).
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces; fields after it follow the last ')'.
    let rest = text.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}
