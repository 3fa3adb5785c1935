//! Reading: the public entry points, mapping the file's vertex properties to [`Gaussians`]
//! (and point sets) in memory, whatever their order and type.

use std::io::{self, Read};
use std::path::Path;

use super::PlyError;
use super::header::Element;
use super::read::{PlyReader, Target};
#[cfg(feature = "train")]
use crate::dataset::PointCloud;
use crate::model::{Gaussians, ParamGroup};
use crate::sh;

/// Reads a 3DGS PLY as written by inria, gsplat, SuperSplat (uncompressed), Brush, nerfstudio
/// and similar tools.
///
/// Required vertex properties: `x y z f_dc_0..2 opacity scale_0..2 rot_0..3`; `f_rest_*` must
/// number 0, 9, 24 or 45 (SH degree 0 to 3). Everything else (normals, colours, filter values,
/// other elements) is ignored. Values of any scalar type are converted to `f32`.
pub fn read_gaussians_ply(path: &Path) -> Result<Gaussians, PlyError> {
    gaussians_from_reader(PlyReader::open(path)?)
}

/// [`read_gaussians_ply`] for a file already in memory (the game plugin's asset loader reads
/// through Bevy's asset sources); `path` names the file in errors.
pub fn read_gaussians_ply_bytes(path: &Path, bytes: &[u8]) -> Result<Gaussians, PlyError> {
    gaussians_from_reader(PlyReader::from_bytes(path, bytes)?)
}

fn gaussians_from_reader<R: Read + io::Seek>(mut ply: PlyReader<R>) -> Result<Gaussians, PlyError> {
    let path = ply.path.clone();
    let path = path.as_path();
    let vertex = ply.vertex_element();
    let sh_degree = sh_degree_of(path, vertex)?;
    let rest_per_channel = sh::rest_coeffs_for_degree(sh_degree);

    // In the reference order, so missing properties are listed in that order.
    let mut wanted = TargetList::new(vertex);
    for (a, name) in ["x", "y", "z"].into_iter().enumerate() {
        wanted.add(name, ParamGroup::Means, a);
    }
    for c in 0..3 {
        wanted.add(&format!("f_dc_{c}"), ParamGroup::ShDc, c);
    }
    for c in 0..3 {
        for k in 0..rest_per_channel {
            let name = format!("f_rest_{}", c * rest_per_channel + k);
            wanted.add(&name, ParamGroup::ShRest, k * 3 + c);
        }
    }
    wanted.add("opacity", ParamGroup::Opacities, 0);
    for a in 0..3 {
        wanted.add(&format!("scale_{a}"), ParamGroup::LogScales, a);
    }
    for a in 0..4 {
        wanted.add(&format!("rot_{a}"), ParamGroup::Rotations, a);
    }
    if !wanted.missing.is_empty() {
        let hint = if vertex.find("red").is_some() && vertex.find("opacity").is_none() {
            " (this looks like a plain point cloud, not a 3D Gaussian Splatting PLY)"
        } else {
            ""
        };
        return Err(PlyError::invalid(
            path,
            format!(
                "missing required vertex properties: {}{hint}",
                wanted.missing.join(", ")
            ),
        ));
    }

    let widths = ParamGroup::ALL.map(|g| g.width(sh_degree));
    let targets = wanted.targets;
    let mut arrays = ply.read_vertices(&targets, &widths)?.into_iter();
    let mut next = || arrays.next().unwrap_or_default();
    // Same order as ParamGroup::ALL.
    Ok(Gaussians {
        sh_degree,
        means: next(),
        log_scales: next(),
        rotations: next(),
        logit_opacities: next(),
        sh_dc: next(),
        sh_rest: next(),
    })
}

/// Reads a coloured point set (`x y z` and `red green blue`; any scalar types, any order, other
/// properties ignored), e.g. inria's `input.ply` or a Blender scene's `points3d.ply`.
///
/// Colours are taken on the 0..255 scale whatever their type (as inria's `fetchPly`, which
/// divides by 255): values are rounded to the nearest integer and clamped to 0..255.
#[cfg(feature = "train")]
pub fn read_points_ply(path: &Path) -> Result<PointCloud, PlyError> {
    let mut ply = PlyReader::open(path)?;
    let vertex = ply.vertex_element();
    const POSITIONS: usize = 0;
    const COLORS: usize = 1;
    let mut wanted = TargetList::new(vertex);
    for (a, name) in ["x", "y", "z"].into_iter().enumerate() {
        wanted.add_to(name, POSITIONS, a);
    }
    for (c, name) in ["red", "green", "blue"].into_iter().enumerate() {
        wanted.add_to(name, COLORS, c);
    }
    if !wanted.missing.is_empty() {
        return Err(PlyError::invalid(
            path,
            format!(
                "missing required vertex properties: {}",
                wanted.missing.join(", ")
            ),
        ));
    }
    let targets = wanted.targets;
    let arrays = ply.read_vertices(&targets, &[3, 3])?;
    let positions = arrays[POSITIONS]
        .chunks_exact(3)
        .map(|p| [p[0], p[1], p[2]])
        .collect();
    // `as u8` saturates (and maps NaN to 0), which is the clamp we want.
    let colors = arrays[COLORS]
        .chunks_exact(3)
        .map(|c| [c[0], c[1], c[2]].map(|v| v.round() as u8))
        .collect();
    Ok(PointCloud { positions, colors })
}

/// The SH degree implied by the `f_rest_*` properties, which must be exactly
/// `f_rest_0 .. f_rest_{N-1}` with N in {0, 9, 24, 45}.
pub(super) fn sh_degree_of(path: &Path, vertex: &Element) -> Result<u32, PlyError> {
    let rest_indices: Vec<usize> = vertex
        .properties
        .iter()
        .filter_map(|p| p.name.strip_prefix("f_rest_"))
        .map(|suffix| {
            suffix
                .parse::<usize>()
                .ok()
                .filter(|i| i.to_string() == suffix)
                .ok_or_else(|| {
                    PlyError::invalid(path, format!("unexpected property name 'f_rest_{suffix}'"))
                })
        })
        .collect::<Result<_, _>>()?;
    let count = rest_indices.len();
    let degree = (0..=sh::MAX_SH_DEGREE)
        .find(|&d| 3 * sh::rest_coeffs_for_degree(d) == count)
        .ok_or_else(|| {
            PlyError::invalid(
                path,
                format!("{count} f_rest properties; expected 0, 9, 24 or 45 (SH degree 0 to 3)"),
            )
        })?;
    if let Some(bad) = rest_indices.iter().find(|&&i| i >= count) {
        let missing: Vec<String> = (0..count)
            .filter(|i| !rest_indices.contains(i))
            .map(|i| format!("f_rest_{i}"))
            .collect();
        return Err(PlyError::invalid(
            path,
            format!(
                "f_rest properties are not numbered 0..{}: found f_rest_{bad}, missing {}",
                count - 1,
                missing.join(", ")
            ),
        ));
    }
    Ok(degree)
}

/// Collects where each wanted vertex property goes, and which ones are missing.
pub(super) struct TargetList<'a> {
    pub(super) vertex: &'a Element,
    pub(super) targets: Vec<Target>,
    pub(super) missing: Vec<String>,
}

impl<'a> TargetList<'a> {
    pub(super) fn new(vertex: &'a Element) -> Self {
        Self {
            vertex,
            targets: Vec::new(),
            missing: Vec::new(),
        }
    }

    pub(super) fn add_to(&mut self, name: &str, array: usize, offset: usize) {
        match self.vertex.find(name) {
            Some(property) => self.targets.push(Target {
                property,
                array,
                offset,
            }),
            None => self.missing.push(name.to_string()),
        }
    }

    pub(super) fn add(&mut self, name: &str, group: ParamGroup, offset: usize) {
        self.add_to(name, group.index(), offset);
    }
}
