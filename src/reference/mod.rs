//! f64 CPU references of the GPU kernels: plain loops, written for clarity, not speed. The GPU
//! kernels are tested against these on random inputs, and the references' backward passes
//! against central finite differences.

pub mod adam;
pub mod densify;
pub mod raster;
pub mod ssim;
