//! Files an installation needs, generated from the command line's own definition: shell
//! completions (clap_complete) and man pages (clap_mangen). Nothing here is written by hand,
//! so a new flag reaches `--help`, the completions and the man pages at once.

use std::path::Path;

use anyhow::Context;
use clap::CommandFactory;

use crate::cli::Cli;

/// Prints the completion script for `shell` on `out`.
pub fn completions(shell: clap_complete::Shell, out: &mut dyn std::io::Write) {
    let mut cmd = Cli::command();
    clap_complete::generate(shell, &mut cmd, "autoscaler", out);
}

/// Writes `autoscaler.1` and `autoscaler-<subcommand>.1` (nested ones too) into `dir`.
pub fn man_pages(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    clap_mangen::generate_to(Cli::command(), dir)
        .with_context(|| format!("writing the man pages into {}", dir.display()))
}
