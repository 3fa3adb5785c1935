//! The [`Splats`] asset: a trained cloud loaded from a 3DGS `.ply` file.
//!
//! `asset_server.load("scene.ply")` reads every PLY layout `splatforge` reads
//! (`model::ply::read_gaussians_ply`: inria, gsplat, SuperSplat uncompressed, Brush, nerfstudio;
//! ASCII or binary, any property order and scalar type). A bad file is an asset load error
//! whose message starts with the file's path; the game keeps running and the cloud is simply
//! not drawn. With Bevy's file watcher on, editing the file reloads the cloud.
//!
//! The GPU copy is made by Bevy's render-asset path (`render_world::GpuSplats`).

use std::sync::Arc;

use bevy::asset::io::Reader;
use bevy::asset::{AssetLoader, LoadContext};
use bevy::camera::primitives::Aabb;
use bevy::math::Vec3A;
use bevy::prelude::*;

use crate::model::Gaussians;
use crate::model::ply::{self, PlyError};

/// A trained Gaussian cloud (CPU data; the render world holds its GPU buffers).
#[derive(Asset, TypePath, Clone, Debug)]
pub struct Splats {
    /// Shared, so extracting the asset to the render world does not copy it.
    pub gaussians: Arc<Gaussians>,
    /// Box around every Gaussian's centre, widened by three times its largest scale.
    pub bounds: Aabb,
}

impl Splats {
    pub fn new(gaussians: Gaussians) -> Self {
        Self::from_shared(Arc::new(gaussians))
    }

    /// A cloud sharing Gaussians that are already behind an `Arc`.
    pub fn from_shared(gaussians: Arc<Gaussians>) -> Self {
        let bounds = bounds_of(&gaussians);
        Self { gaussians, bounds }
    }

    /// Number of Gaussians.
    pub fn len(&self) -> usize {
        self.gaussians.len()
    }

    pub fn is_empty(&self) -> bool {
        self.gaussians.is_empty()
    }
}

/// Three sigmas around each finite centre; an empty (or all non-finite) cloud is a point.
fn bounds_of(gaussians: &Gaussians) -> Aabb {
    let mut min = Vec3A::splat(f32::INFINITY);
    let mut max = Vec3A::splat(f32::NEG_INFINITY);
    for i in 0..gaussians.len() {
        let m = &gaussians.means[3 * i..3 * i + 3];
        let centre = Vec3A::new(m[0], m[1], m[2]);
        let s = &gaussians.log_scales[3 * i..3 * i + 3];
        let radius = 3.0 * s[0].max(s[1]).max(s[2]).exp();
        if !(centre.is_finite() && radius.is_finite()) {
            continue;
        }
        min = min.min(centre - radius);
        max = max.max(centre + radius);
    }
    if min.cmpgt(max).any() {
        return Aabb::from_min_max(Vec3::ZERO, Vec3::ZERO);
    }
    Aabb::from_min_max(min.into(), max.into())
}

/// Loads `.ply` files as [`Splats`].
#[derive(Default, TypePath)]
pub struct SplatsLoader;

/// Why a `.ply` asset did not load; the message names the file.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct SplatsLoadError(#[from] pub PlyError);

impl AssetLoader for SplatsLoader {
    type Asset = Splats;
    type Settings = ();
    type Error = SplatsLoadError;

    async fn load(
        &self,
        reader: &mut dyn Reader,
        _settings: &(),
        load_context: &mut LoadContext<'_>,
    ) -> Result<Splats, SplatsLoadError> {
        let path = load_context.path().path().to_path_buf();
        let mut bytes = Vec::new();
        reader
            .read_to_end(&mut bytes)
            .await
            .map_err(|error| PlyError::io(&path, "read", error))?;
        let gaussians = ply::read_gaussians_ply_bytes(&path, &bytes)?;
        Ok(Splats::new(gaussians))
    }

    fn extensions(&self) -> &[&str] {
        &["ply"]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_cover_three_sigmas_and_skip_non_finite_centres() {
        let mut g = Gaussians::empty(0);
        for (mean, log_scale) in [([0.0, 1.0, 2.0], 0.0f32), ([4.0, -1.0, 2.0], 2f32.ln())] {
            g.means.extend(mean);
            g.log_scales.extend([log_scale, -5.0, -5.0]);
            g.rotations.extend([1.0, 0.0, 0.0, 0.0]);
            g.logit_opacities.push(0.0);
            g.sh_dc.extend([0.0; 3]);
        }
        g.means.extend([f32::NAN, 0.0, 0.0]);
        g.log_scales.extend([0.0; 3]);
        g.rotations.extend([1.0, 0.0, 0.0, 0.0]);
        g.logit_opacities.push(0.0);
        g.sh_dc.extend([0.0; 3]);
        let bounds = Splats::new(g).bounds;
        let min = bounds.min();
        let max = bounds.max();
        assert!((min - Vec3A::new(-3.0, -7.0, -4.0)).abs().max_element() < 1e-5);
        assert!((max - Vec3A::new(10.0, 5.0, 8.0)).abs().max_element() < 1e-5);
        let empty = Splats::new(Gaussians::empty(0)).bounds;
        assert_eq!(empty.half_extents, Vec3A::ZERO);
    }
}
