//! `splatforge info` (in progress).

/// Arguments of `splatforge info`.
#[derive(clap::Args, Debug)]
pub struct InfoArgs {}

pub fn run(_args: InfoArgs) -> anyhow::Result<()> {
    anyhow::bail!("`splatforge info` is not available yet")
}
