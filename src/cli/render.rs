//! `splatforge render` (in progress).

/// Arguments of `splatforge render`.
#[derive(clap::Args, Debug)]
pub struct RenderArgs {}

pub fn run(_args: RenderArgs) -> anyhow::Result<()> {
    anyhow::bail!("`splatforge render` is not available yet")
}
