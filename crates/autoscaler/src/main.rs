//! `autoscaler`: parse the command line, run it, map errors to exit codes, with the allocator. Nothing else.

use clap::Parser;

use autoscaler::cli::{Cli, Command};

/// jemalloc, configured in `.cargo/config.toml` to give pages freed for a second back to the
/// kernel: glibc's malloc kept the peak of a connection flood resident for good.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("autoscaler: cannot start the async runtime: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => autoscaler::serve::run(args).await,
            Command::Mcp(remote) => autoscaler::mcp::run_stdio(remote).await,
            Command::Simulate(args) => autoscaler::simulate::run_simulate(args),
            Command::Export { what } => autoscaler::export::run(what),
            Command::Completions { shell } => {
                autoscaler::install::completions(shell, &mut std::io::stdout());
                Ok(())
            }
            Command::Man { out } => autoscaler::install::man_pages(&out),
            other => autoscaler::cli::run_client(other).await,
        }
    });
    // A read still stuck on tokio's blocking pool (a hung cgroup file or database) must not
    // keep the process from exiting: dropping the runtime would wait for it forever.
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("autoscaler: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}
