//! f64 CPU references of the GPU kernels: plain loops, written for clarity, not speed. The GPU
//! kernels are tested against these on random inputs, and the references' backward passes
//! against central finite differences.

pub mod adam;
pub mod densify;
pub mod raster;
pub mod ssim;

/// The rows of the rotation matrix of a unit quaternion `(w, x, y, z)` (the reference's
/// `build_rotation`; callers normalise first).
pub fn unit_quaternion_rotation([w, x, y, z]: [f64; 4]) -> [[f64; 3]; 3] {
    [
        [
            1.0 - 2.0 * (y * y + z * z),
            2.0 * (x * y - w * z),
            2.0 * (x * z + w * y),
        ],
        [
            2.0 * (x * y + w * z),
            1.0 - 2.0 * (x * x + z * z),
            2.0 * (y * z - w * x),
        ],
        [
            2.0 * (x * z - w * y),
            2.0 * (y * z + w * x),
            1.0 - 2.0 * (x * x + y * y),
        ],
    ]
}
