//! The `sluice` binary: see [`sluice::cli`].

/// mimalloc instead of the system allocator: the request path allocates many small, short-lived
/// buffers across worker threads, where glibc's malloc spent ~12 % of CPU and contended on its
/// arena locks (see docs/performance.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    sluice::cli::main()
}
