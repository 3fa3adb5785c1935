//! Datasets: COLMAP and Blender scenes, train/test split, resolution rules, camera extent and
//! image loading (in progress).

/// The sparse SfM points of a COLMAP scene (initialisation input).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PointCloud {
    pub positions: Vec<[f32; 3]>,
    /// 8-bit RGB colours, one per point.
    pub colors: Vec<[u8; 3]>,
}

impl PointCloud {
    pub fn len(&self) -> usize {
        self.positions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.positions.is_empty()
    }
}
