//! `splatforge bench` (in progress).

/// Arguments of `splatforge bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {}

pub fn run(_args: BenchArgs) -> anyhow::Result<()> {
    anyhow::bail!("`splatforge bench` is not available yet")
}
