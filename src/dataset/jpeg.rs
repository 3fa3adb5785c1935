//! JPEG decoding with libjpeg-turbo's code (through the `mozjpeg` crate, whose decoder is
//! libjpeg-turbo's), for the ground truth of datasets ([`load_view_image`]) and for `splatforge
//! metrics`.
//!
//! Why not the `image` crate: inria and gsplat read images with PIL, i.e. libjpeg-turbo with its
//! defaults (the accurate integer IDCT `JDCT_ISLOW`, fancy chroma upsampling, RGB output). The
//! `image` crate's decoder (zune-jpeg) differs from it by up to 4 levels on ~12% of the values of
//! the demo images, which moves PSNR by ~0.01 dB; decoded here, splatforge's ground truth is
//! PIL's byte for byte and its metrics are the reference's (tests/golden.rs). PNGs are still
//! decoded by the `image` crate.
//!
//! Files are recognised as JPEG by their first bytes (`FF D8 FF`), whatever their extension, like
//! the `image` crate guesses formats.
//!
//! libjpeg reports a fatal error by calling `error_exit`, which the `mozjpeg` crate turns into an
//! unwind (`resume_unwind`, so no panic message is printed) through the C code, compiled with
//! `-fexceptions` (mozjpeg-sys's "unwinding" feature). Every call into it is wrapped in
//! `catch_unwind` here, so corrupt data becomes a [`JpegError`]. Warnings (corrupt entropy data,
//! which libjpeg decodes as well as it can) are ignored, as PIL ignores them; a truncated file,
//! which libjpeg would complete with grey, is refused first (PIL refuses it too).
//!
//! [`load_view_image`]: super::load_view_image

use std::io::BufRead;
use std::panic::{AssertUnwindSafe, catch_unwind};

use image::RgbImage;
use mozjpeg::{ColorSpace, DctMethod, Decompress};

/// The first bytes of every JPEG file: start of image (`FF D8`) and the next marker's `FF`.
const MAGIC: [u8; 3] = [0xFF, 0xD8, 0xFF];

/// Why a JPEG could not be decoded (the caller names the file).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct JpegError(String);

impl From<std::io::Error> for JpegError {
    fn from(error: std::io::Error) -> Self {
        Self(format!("JPEG: {error}"))
    }
}

/// True when `bytes` (a file's beginning) are a JPEG's.
pub fn is_jpeg(bytes: &[u8]) -> bool {
    bytes.starts_with(&MAGIC)
}

/// The size of a JPEG from its header, without decoding the pixels. Refuses the colour spaces
/// [`decode_rgb`] refuses (CMYK), so that a dataset fails when it is opened.
pub fn read_size(reader: impl BufRead) -> Result<(u32, u32), JpegError> {
    guarded(move || {
        let decompress = Decompress::new_reader(reader)?;
        check_color_space(&decompress)?;
        Ok(size_u32(decompress.width(), decompress.height()))
    })
}

/// Decodes a JPEG as libjpeg-turbo does with its defaults, i.e. as PIL's `Image.open(path)`
/// (`.convert("RGB")` for grayscale): ISLOW IDCT, fancy upsampling, RGB output; grayscale
/// becomes RGB with three equal channels. CMYK and YCCK JPEGs are refused.
pub fn decode_rgb(bytes: &[u8]) -> Result<RgbImage, JpegError> {
    if !is_complete(bytes) {
        return Err(JpegError(
            "the file is truncated (no end-of-image marker after the last scan)".into(),
        ));
    }
    guarded(|| {
        let mut decompress = Decompress::new_mem(bytes)?;
        check_color_space(&decompress)?;
        // libjpeg's defaults, set explicitly: these decide the decoded values.
        decompress.dct_method(DctMethod::IntegerSlow);
        decompress.do_fancy_upsampling(true);
        let mut started = decompress.rgb()?;
        let (width, height) = size_u32(started.width(), started.height());
        let pixels: Vec<u8> = started.read_scanlines()?;
        started.finish()?;
        RgbImage::from_raw(width, height, pixels)
            .ok_or_else(|| JpegError("JPEG: fewer pixels than its size".into()))
    })
}

fn size_u32(width: usize, height: usize) -> (u32, u32) {
    // libjpeg's dimensions are at most 65500.
    (width as u32, height as u32)
}

fn check_color_space<R>(decompress: &Decompress<R>) -> Result<(), JpegError> {
    match decompress.color_space() {
        ColorSpace::JCS_CMYK | ColorSpace::JCS_YCCK => Err(JpegError(
            "CMYK JPEGs are not supported; convert the image to RGB".into(),
        )),
        _ => Ok(()),
    }
}

/// Runs `decode`, turning libjpeg's fatal errors (an unwind carrying its message) into
/// [`JpegError`]. Any other panic (a bug) is reported the same way, after Rust's panic hook has
/// printed it.
fn guarded<T>(decode: impl FnOnce() -> Result<T, JpegError>) -> Result<T, JpegError> {
    // Nothing that `decode` touches outlives it: the decoder state is dropped while unwinding.
    catch_unwind(AssertUnwindSafe(decode)).unwrap_or_else(|payload| {
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("unknown error");
        // mozjpeg's error manager formats "libjpeg fatal error: <libjpeg's message>".
        let message = message
            .strip_prefix("libjpeg fatal error: ")
            .unwrap_or(message);
        Err(JpegError(format!("libjpeg: {message}")))
    })
}

/// True when a JPEG file has an end-of-image marker (`FF D9`) after its last start-of-scan
/// marker (`FF DA`). libjpeg completes a truncated JPEG with grey and a warning (PIL, which inria
/// uses, refuses it); a complete file always ends its last scan with EOI. Neither marker can
/// occur by accident inside entropy-coded data, where `FF` is always followed by `00` or a
/// restart marker.
fn is_complete(bytes: &[u8]) -> bool {
    const START_OF_SCAN: [u8; 2] = [0xFF, 0xDA];
    const END_OF_IMAGE: [u8; 2] = [0xFF, 0xD9];
    // The usual case, decided without a scan: the file ends with EOI.
    if bytes.ends_with(&END_OF_IMAGE) {
        return true;
    }
    // Otherwise EOI may be followed by other data (some cameras append some).
    bytes
        .windows(2)
        .rposition(|w| w == START_OF_SCAN)
        .is_some_and(|scan| bytes[scan..].windows(2).any(|w| w == END_OF_IMAGE))
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;
    use std::path::Path;

    use image::{DynamicImage, GrayImage, ImageFormat, Luma};

    use super::*;

    fn demo_jpeg() -> Vec<u8> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo/images/img_0000.jpg");
        std::fs::read(path).unwrap()
    }

    #[test]
    fn truncated_jpegs_are_recognised() {
        let bytes = demo_jpeg();
        assert!(is_complete(&bytes));
        let mut with_trailer = bytes.clone();
        with_trailer.extend_from_slice(b"trailing metadata");
        assert!(is_complete(&with_trailer));
        for keep in [bytes.len() - 1, bytes.len() / 2, 700, 2] {
            assert!(!is_complete(&bytes[..keep]), "{keep} bytes");
            let error = decode_rgb(&bytes[..keep]).unwrap_err().to_string();
            assert!(error.contains("truncated"), "{keep} bytes: {error}");
        }
    }

    #[test]
    fn demo_images_decode_with_their_header_size() {
        let bytes = demo_jpeg();
        assert!(is_jpeg(&bytes));
        let image = decode_rgb(&bytes).unwrap();
        assert_eq!(image.dimensions(), (320, 240));
        assert_eq!(read_size(&bytes[..]).unwrap(), (320, 240));
        // Only the header is needed for the size.
        assert_eq!(read_size(&bytes[..bytes.len() / 2]).unwrap(), (320, 240));
    }

    /// libjpeg's fatal errors, raised in the header and after it (while starting to decode),
    /// come back as errors carrying libjpeg's message, not as a panic or an abort.
    #[test]
    fn corrupt_jpegs_are_errors() {
        // After the magic bytes, `t` (0x74) reads as a marker that does not exist.
        let mut garbage = MAGIC.to_vec();
        garbage.extend_from_slice(b"this is not a JPEG\xFF\xD9");
        for error in [
            decode_rgb(&garbage).unwrap_err(),
            read_size(&garbage[..]).unwrap_err(),
        ] {
            assert_eq!(error.to_string(), "libjpeg: Unsupported marker type 0x74");
        }

        // The first component's quantisation table (in SOF0) set to one that is not defined:
        // the header reads, decoding fails.
        let mut bytes = demo_jpeg();
        let sof = bytes.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
        bytes[sof + 12] = 3;
        assert_eq!(read_size(&bytes[..]).unwrap(), (320, 240));
        let error = decode_rgb(&bytes).unwrap_err().to_string();
        assert!(error.contains("Quantization table 0x03"), "{error}");
        assert!(!is_jpeg(b"\x89PNG\r\n\x1a\n"));
    }

    #[test]
    fn grayscale_jpegs_decode_to_equal_channels() {
        let gray = GrayImage::from_fn(64, 48, |x, y| Luma([(x * 2 + y + 40) as u8]));
        let mut bytes = Vec::new();
        DynamicImage::ImageLuma8(gray.clone())
            .write_to(&mut Cursor::new(&mut bytes), ImageFormat::Jpeg)
            .unwrap();
        // A one-component JPEG, which libjpeg expands to RGB.
        let header = guarded(|| Ok(Decompress::new_mem(&bytes)?.color_space())).unwrap();
        assert_eq!(header, ColorSpace::JCS_GRAYSCALE);
        let rgb = decode_rgb(&bytes).unwrap();
        assert_eq!(rgb.dimensions(), (64, 48));
        for (pixel, source) in rgb.pixels().zip(gray.pixels()) {
            assert_eq!(pixel[0], pixel[1]);
            assert_eq!(pixel[0], pixel[2]);
            assert!(pixel[0].abs_diff(source[0]) <= 8, "{pixel:?} vs {source:?}");
        }
    }

    #[test]
    fn cmyk_jpegs_are_refused_clearly() {
        let bytes = guarded(|| {
            let mut compress = mozjpeg::Compress::new(ColorSpace::JCS_CMYK);
            compress.set_size(16, 16);
            let mut started = compress.start_compress(Vec::new())?;
            started.write_scanlines(&[128u8; 16 * 16 * 4])?;
            Ok(started.finish()?)
        })
        .unwrap();
        for error in [
            decode_rgb(&bytes).unwrap_err(),
            read_size(&bytes[..]).unwrap_err(),
        ] {
            assert!(error.to_string().contains("CMYK"), "{error}");
        }
    }
}
