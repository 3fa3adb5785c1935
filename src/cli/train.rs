//! `splatforge train` (in progress).

/// Arguments of `splatforge train`.
#[derive(clap::Args, Debug)]
pub struct TrainArgs {}

pub fn run(_args: TrainArgs) -> anyhow::Result<()> {
    anyhow::bail!("`splatforge train` is not available yet")
}
