//! `changegate`: the one binary. `serve` runs the server and system of
//! record; `agent` the Kubernetes enforcement agent; `admin` works on the
//! database directly (bootstrap and recovery); `apply`, `change` and
//! `audit` are clients of a running server.

mod cli;

use std::process::ExitCode;

/// mimalloc: the agent parses two objects per admission request into
/// short-lived maps; glibc malloc spent a fifth of its CPU on them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    cli::main()
}
