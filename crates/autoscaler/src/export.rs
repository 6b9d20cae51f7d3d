//! `autoscaler export` (placeholder until the replay issue lands).

use crate::cli::ExportWhat;

pub fn run(_what: ExportWhat) -> anyhow::Result<()> {
    anyhow::bail!("export is not built yet")
}
