//! The `sluice` binary: see [`sluice::cli`].

/// mimalloc instead of the system allocator: the request path allocates many small, short-lived
/// buffers across worker threads, where glibc's malloc spent ~12 % of CPU and contended on its
/// arena locks (see docs/performance.md). [`sluice::allocator::Allocator`] says how it is called.
#[global_allocator]
static GLOBAL: sluice::allocator::Allocator = sluice::allocator::Allocator;

fn main() -> std::process::ExitCode {
    sluice::cli::main()
}
