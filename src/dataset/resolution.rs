//! The `-r/--resolution` rule of inria's `loadCam`, with its exact arithmetic.

use super::DatasetError;

/// How images are resized on load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// `-1`: images wider than 1600 pixels are shrunk to 1600 pixels wide, others kept.
    Auto,
    /// `1`, `2`, `4`, `8`: divide both sides, rounding half to even (Python's `round`).
    Divide(u32),
    /// Any other positive value: the target width in pixels.
    Width(u32),
}

/// Width above which [`Resolution::Auto`] shrinks images.
const AUTO_MAX_WIDTH: u32 = 1600;

impl Resolution {
    pub fn from_arg(value: i32) -> Result<Self, DatasetError> {
        match value {
            -1 => Ok(Self::Auto),
            1 | 2 | 4 | 8 => Ok(Self::Divide(value as u32)),
            v if v > 0 => Ok(Self::Width(v as u32)),
            v => Err(DatasetError::InvalidResolution(v)),
        }
    }

    /// The loaded size of an image of `original` size. Mirrors inria's f64 arithmetic: for
    /// `Auto` and `Width` the size is `int(w / scale), int(h / scale)` with
    /// `scale = w / target_width`, which can truncate to one pixel less than the target.
    /// Returns `None` when a side would be 0 pixels.
    pub fn apply(self, original: (u32, u32)) -> Option<(u32, u32)> {
        let (w, h) = (f64::from(original.0), f64::from(original.1));
        let size = match self {
            Self::Divide(factor) => {
                let factor = f64::from(factor);
                (
                    (w / factor).round_ties_even(),
                    (h / factor).round_ties_even(),
                )
            }
            Self::Auto | Self::Width(_) => {
                let scale = match self {
                    Self::Auto if original.0 > AUTO_MAX_WIDTH => w / f64::from(AUTO_MAX_WIDTH),
                    Self::Auto => 1.0,
                    Self::Width(target) => w / f64::from(target),
                    Self::Divide(_) => unreachable!("handled above"),
                };
                ((w / scale).trunc(), (h / scale).trunc())
            }
        };
        let (width, height) = (size.0 as u32, size.1 as u32);
        (width > 0 && height > 0).then_some((width, height))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_values_are_rejected() {
        for value in [0, -2, -8, i32::MIN] {
            assert!(matches!(
                Resolution::from_arg(value),
                Err(DatasetError::InvalidResolution(v)) if v == value
            ));
        }
        assert_eq!(Resolution::from_arg(3).unwrap(), Resolution::Width(3));
        assert_eq!(Resolution::from_arg(8).unwrap(), Resolution::Divide(8));
    }

    #[test]
    fn divide_rounds_half_to_even() {
        // 250 / 4 = 62.5 -> 62; 254 / 4 = 63.5 -> 64; 189 / 2 = 94.5 -> 94.
        assert_eq!(Resolution::Divide(4).apply((250, 254)), Some((62, 64)));
        assert_eq!(Resolution::Divide(2).apply((189, 191)), Some((94, 96)));
        assert_eq!(Resolution::Divide(1).apply((320, 240)), Some((320, 240)));
        assert_eq!(Resolution::Divide(8).apply((3, 3)), None);
    }

    #[test]
    fn auto_shrinks_only_wide_images() {
        assert_eq!(Resolution::Auto.apply((1600, 1200)), Some((1600, 1200)));
        assert_eq!(Resolution::Auto.apply((960, 640)), Some((960, 640)));
        assert_eq!(Resolution::Auto.apply((3200, 2400)), Some((1600, 1200)));
        // 4946 x 3286 (a Mip-NeRF 360 size): scale 3.09125, 3286 / 3.09125 = 1063.0003...
        assert_eq!(Resolution::Auto.apply((4946, 3286)), Some((1600, 1063)));
    }

    #[test]
    fn width_target_truncates_like_python() {
        assert_eq!(Resolution::Width(100).apply((320, 240)), Some((100, 75)));
        // Python 3: int(805 / (805 / 800)) == 799: the target width can lose a pixel.
        assert_eq!(Resolution::Width(800).apply((805, 100)), Some((799, 99)));
        // A side that truncates to 0 pixels is refused (int(10 / (1000 / 3)) == 0).
        assert_eq!(Resolution::Width(3).apply((1000, 10)), None);
        assert_eq!(Resolution::Width(640).apply((960, 640)), Some((640, 426)));
    }
}
