//! The `simforge` binary: argument parsing and dispatch. Every command lives in a library;
//! this file and `cli/` only wire flags and recipes to them.

mod cli;

use std::process::ExitCode;

use clap::Parser;

// burn's CPU backend allocates and frees a buffer for every tensor operation; glibc's allocator
// often hands the large ones back to the kernel (page faults, zeroing: a third of a training
// step in `perf`). mimalloc reuses them (BENCHMARKS.md, "CPU speed").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("SIMFORGE_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")))
        .init();
    let peak_report = args.peak_memory_report.clone();
    let result = cli::dispatch(args);
    if let Some(path) = peak_report {
        // Benchmarks read the peak resident memory of the command they ran.
        if let Some(kb) = simforge::bench::peak_rss_kb() {
            let _ = std::fs::write(path, kb.to_string());
        }
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let top = e.to_string();
            eprintln!("error: {top}");
            // Library errors already quote their cause; print only what the message lacks.
            for cause in e.chain().skip(1).map(|c| c.to_string()).filter(|c| !top.contains(c.as_str())) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}
