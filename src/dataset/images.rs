//! Image files: headers (at [`Dataset::load`](super::Dataset::load) time) and pixels
//! ([`load_images`]): decode (JPEG with libjpeg-turbo's code, see [`super::jpeg`]; PNG with the
//! `image` crate), composite RGBA on the background (Blender), resize to the view's camera size,
//! pack as RGBA8 `u32` (red in the low byte, see ARCHITECTURE.md).

use std::fs::File;
use std::io::{BufRead, BufReader, Cursor, IsTerminal};
use std::path::Path;

use image::error::ImageError;
use image::imageops::{self, FilterType};
use image::{DynamicImage, ImageFormat, ImageReader, RgbImage, RgbaImage};
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;

use super::{Dataset, DatasetError, DatasetFormat, ViewInfo, jpeg};

/// One decoded image, packed RGBA8: pixel `(x, y)` is `pixels[y * width + x]` =
/// `r | g << 8 | b << 16 | a << 24`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadedImage {
    pub width: u32,
    pub height: u32,
    pub pixels: Vec<u32>,
}

impl LoadedImage {
    /// The `[r, g, b, a]` bytes of pixel `(x, y)`.
    pub fn rgba(&self, x: u32, y: u32) -> [u8; 4] {
        self.pixels[(y * self.width + x) as usize].to_le_bytes()
    }

    /// The pixels as bytes in memory order (r, g, b, a, r, ...), e.g. for a GPU upload.
    pub fn as_bytes(&self) -> &[u8] {
        bytemuck::cast_slice(&self.pixels)
    }

    fn from_rgb(image: &RgbImage) -> Self {
        let pixels = image
            .as_raw()
            .chunks_exact(3)
            .map(|p| u32::from_le_bytes([p[0], p[1], p[2], 255]))
            .collect();
        Self {
            width: image.width(),
            height: image.height(),
            pixels,
        }
    }
}

/// The size of an image from its header, without decoding the pixels. `listed_in` is the
/// metadata file that refers to the image (for the message when it is missing).
pub(crate) fn read_image_size(path: &Path, listed_in: &Path) -> Result<(u32, u32), DatasetError> {
    if !path.is_file() {
        return Err(DatasetError::MissingImage {
            path: path.to_path_buf(),
            listed_in: listed_in.to_path_buf(),
        });
    }
    let io_error = |e| DatasetError::io(path, e);
    let mut file = BufReader::new(File::open(path).map_err(io_error)?);
    // Told apart by content, as `load_view_image` does.
    if jpeg::is_jpeg(file.fill_buf().map_err(io_error)?) {
        return jpeg::read_size(file).map_err(|e| DatasetError::image(path, e));
    }
    // As `ImageReader::open`: the format from the extension unless the content says otherwise.
    let mut reader = ImageReader::new(file);
    if let Ok(format) = ImageFormat::from_path(path) {
        reader.set_format(format);
    }
    reader
        .with_guessed_format()
        .map_err(io_error)?
        .into_dimensions()
        .map_err(|e| DatasetError::image(path, e))
}

/// Composites an RGBA image on `background` with inria's arithmetic: in f64,
/// `rgb / 255 * a / 255 + bg * (1 - a / 255)`, times 255, truncated to 8 bits (numpy's cast).
pub fn composite_on_background(image: &RgbaImage, background: [f32; 3]) -> RgbImage {
    let background = background.map(f64::from);
    let mut out = RgbImage::new(image.width(), image.height());
    for (source, target) in image.pixels().zip(out.pixels_mut()) {
        let alpha = f64::from(source[3]) / 255.0;
        for c in 0..3 {
            let color = f64::from(source[c]) / 255.0;
            let blended = color * alpha + background[c] * (1.0 - alpha);
            // `as u8` truncates toward zero and saturates, like the cast for values in [0, 255].
            target[c] = (blended * 255.0) as u8;
        }
    }
    out
}

/// Why [`decode_image`] failed: the message of the decoder that was used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DecodeError {
    #[error(transparent)]
    Jpeg(#[from] jpeg::JpegError),
    #[error(transparent)]
    Image(#[from] ImageError),
}

/// Decodes an image file's bytes: JPEG (recognised by content) with libjpeg-turbo's code as PIL
/// does (see [`jpeg`]), anything else with the `image` crate (format guessed from the content).
/// `splatforge metrics` reads its images with this too.
pub(crate) fn decode_image(bytes: &[u8]) -> Result<DynamicImage, DecodeError> {
    if jpeg::is_jpeg(bytes) {
        return Ok(DynamicImage::ImageRgb8(jpeg::decode_rgb(bytes)?));
    }
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(ImageError::IoError)?;
    Ok(reader.decode()?)
}

/// Decodes one view's image: 8-bit RGB (Blender: composited on the background), resized to the
/// view's camera size with a Catmull-Rom (bicubic, a = -0.5) filter like PIL's default.
pub fn load_view_image(dataset: &Dataset, view: &ViewInfo) -> Result<LoadedImage, DatasetError> {
    let path = &view.image_path;
    let bytes = std::fs::read(path).map_err(|e| DatasetError::io(path, e))?;
    let decoded = decode_image(&bytes).map_err(|e| DatasetError::image(path, e))?;
    let size = (decoded.width(), decoded.height());
    if size != view.original_size {
        return Err(DatasetError::invalid(
            path,
            format!(
                "image is now {}x{}, but was {}x{} when the dataset was opened",
                size.0, size.1, view.original_size.0, view.original_size.1
            ),
        ));
    }
    let rgb = match dataset.format {
        DatasetFormat::Blender => {
            composite_on_background(&decoded.into_rgba8(), dataset.background)
        }
        DatasetFormat::Colmap => decoded.into_rgb8(),
    };
    let (width, height) = (view.camera.width, view.camera.height);
    if (width, height) == size {
        Ok(LoadedImage::from_rgb(&rgb))
    } else {
        let resized = imageops::resize(&rgb, width, height, FilterType::CatmullRom);
        Ok(LoadedImage::from_rgb(&resized))
    }
}

/// Decodes every view's image in parallel (rayon), resized to the view's camera size, in the
/// order of `dataset.views`. Shows a progress bar on stderr unless `quiet` or stderr is not a
/// terminal. Fails on the first image that cannot be read, naming it.
pub fn load_images(dataset: &Dataset, quiet: bool) -> Result<Vec<LoadedImage>, DatasetError> {
    let progress = if quiet || !std::io::stderr().is_terminal() {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::new(dataset.views.len() as u64);
        if let Ok(style) =
            ProgressStyle::with_template("loading images {bar:30} {pos}/{len} [{elapsed}]")
        {
            bar.set_style(style);
        }
        bar
    };
    let images = dataset
        .views
        .par_iter()
        .map(|view| {
            let image = load_view_image(dataset, view);
            progress.inc(1);
            image
        })
        .collect::<Result<Vec<_>, _>>();
    progress.finish_and_clear();
    images
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{DynamicImage, ImageBuffer, Luma, LumaA, Rgb, Rgba};

    /// Expected values computed with Python 3 floats (IEEE f64, the same arithmetic as
    /// numpy's float64) from inria's expression
    /// `int((c / 255.0 * (a / 255.0) + bg * (1 - a / 255.0)) * 255.0)`. Several land a hair
    /// below an integer (e.g. 211.99999999999997), which is where truncation and rounding
    /// differ and where the order of operations shows.
    #[test]
    fn compositing_matches_inria_arithmetic() {
        let cases: [(u8, u8, f32, u8); 14] = [
            (200, 128, 1.0, 227),
            (200, 128, 0.0, 100),
            (255, 128, 0.0, 128),
            (0, 128, 1.0, 127),
            (37, 254, 0.0, 36),
            (0, 0, 1.0, 255),
            (0, 0, 0.0, 0),
            (254, 255, 1.0, 254),
            (0, 43, 1.0, 211),
            (0, 132, 1.0, 122),
            (17, 195, 0.0, 12),
            (65, 153, 0.0, 38),
            (17, 45, 1.0, 212),
            (15, 238, 1.0, 30),
        ];
        for (color, alpha, background, expected) in cases {
            let image = RgbaImage::from_pixel(1, 1, Rgba([color, color, color, alpha]));
            let out = composite_on_background(&image, [background; 3]);
            assert_eq!(
                out.get_pixel(0, 0).0,
                [expected; 3],
                "c={color} a={alpha} bg={background}"
            );
        }
    }

    /// Every pixel layout the decoder can hand back ends up as the same 8-bit values.
    #[test]
    fn pixel_formats_convert_to_rgba8() {
        let dir = crate::fsutil::TempDir::new("dataset-formats").unwrap();
        let gray = ImageBuffer::from_fn(4, 2, |x, y| Luma([(x * 60 + y) as u8]));
        let expected: Vec<u32> = gray
            .pixels()
            .map(|p| u32::from_le_bytes([p[0], p[0], p[0], 255]))
            .collect();
        let variants: Vec<(&str, DynamicImage)> = vec![
            ("gray8.png", DynamicImage::ImageLuma8(gray.clone())),
            (
                "gray_alpha.png",
                DynamicImage::ImageLumaA8(ImageBuffer::from_fn(4, 2, |x, y| {
                    LumaA([gray.get_pixel(x, y)[0], 255])
                })),
            ),
            (
                "rgb8.png",
                DynamicImage::ImageRgb8(DynamicImage::ImageLuma8(gray.clone()).into_rgb8()),
            ),
            (
                "rgb16.png",
                DynamicImage::ImageRgb16(ImageBuffer::from_fn(4, 2, |x, y| {
                    let v = u16::from(gray.get_pixel(x, y)[0]) * 257;
                    Rgb([v, v, v])
                })),
            ),
            (
                "rgba16.png",
                DynamicImage::ImageRgba16(ImageBuffer::from_fn(4, 2, |x, y| {
                    let v = u16::from(gray.get_pixel(x, y)[0]) * 257;
                    Rgba([v, v, v, u16::MAX])
                })),
            ),
            (
                "gray16.png",
                DynamicImage::ImageLuma16(ImageBuffer::from_fn(4, 2, |x, y| {
                    Luma([u16::from(gray.get_pixel(x, y)[0]) * 257])
                })),
            ),
        ];
        for (name, image) in variants {
            let path = dir.path().join(name);
            image.save(&path).unwrap();
            let decoded = ImageReader::open(&path).unwrap().decode().unwrap();
            let packed = LoadedImage::from_rgb(&decoded.into_rgb8());
            assert_eq!(packed.pixels, expected, "{name}");
            // Fully opaque RGBA composites to itself on either background.
            let decoded = ImageReader::open(&path).unwrap().decode().unwrap();
            for background in [[0.0; 3], [1.0; 3]] {
                let composited = composite_on_background(&decoded.to_rgba8(), background);
                assert_eq!(
                    LoadedImage::from_rgb(&composited).pixels,
                    expected,
                    "{name}"
                );
            }
        }
    }

    #[test]
    fn packing_puts_red_in_the_low_byte() {
        let image = RgbImage::from_pixel(2, 1, Rgb([1, 2, 3]));
        let packed = LoadedImage::from_rgb(&image);
        assert_eq!(packed.pixels[0], 0xff03_0201);
        assert_eq!(packed.rgba(1, 0), [1, 2, 3, 255]);
        assert_eq!(&packed.as_bytes()[..4], &[1, 2, 3, 255]);
    }
}
