//! COLMAP's text model format (`cameras.txt`, `images.txt`, `points3D.txt`).
//!
//! Lines starting with `#` are comments. Fields are separated by whitespace:
//! - cameras.txt: `CAMERA_ID MODEL WIDTH HEIGHT PARAMS[]`, one line per camera;
//! - images.txt: two lines per image, `IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME`, then the
//!   2D points as `(X, Y, POINT3D_ID)` triples (this line may be empty);
//! - points3D.txt: `POINT3D_ID X Y Z R G B ERROR TRACK[]` with the track as
//!   `(IMAGE_ID, POINT2D_IDX)` pairs.
//!
//! Errors give the line number (1-based).

use std::path::Path;
use std::str::FromStr;

use super::{ColmapCamera, ColmapImage, ColmapPoint, camera_model_from_name};
use crate::dataset::DatasetError;

/// The fields of one line, read left to right, with errors that point at the line.
struct Fields<'a> {
    rest: &'a str,
    path: &'a Path,
    line: usize,
}

impl<'a> Fields<'a> {
    fn new(text: &'a str, path: &'a Path, line: usize) -> Self {
        Self {
            rest: text,
            path,
            line,
        }
    }

    fn error(&self, message: impl Into<String>) -> DatasetError {
        DatasetError::MalformedLine {
            path: self.path.to_path_buf(),
            line: self.line,
            message: message.into(),
        }
    }

    fn next_token(&mut self) -> Option<&'a str> {
        let trimmed = self.rest.trim_start();
        if trimmed.is_empty() {
            self.rest = trimmed;
            return None;
        }
        let end = trimmed.find(char::is_whitespace).unwrap_or(trimmed.len());
        let (token, rest) = trimmed.split_at(end);
        self.rest = rest;
        Some(token)
    }

    fn next<T: FromStr>(&mut self, what: &str, kind: &str) -> Result<T, DatasetError> {
        let token = self
            .next_token()
            .ok_or_else(|| self.error(format!("missing {what}")))?;
        token
            .parse()
            .map_err(|_| self.error(format!("{what} should be {kind}, found `{token}`")))
    }

    fn next_f64(&mut self, what: &str) -> Result<f64, DatasetError> {
        self.next(what, "a number")
    }

    fn next_f64s<const N: usize>(&mut self, what: &str) -> Result<[f64; N], DatasetError> {
        let mut values = [0.0; N];
        for value in &mut values {
            *value = self.next_f64(what)?;
        }
        Ok(values)
    }

    /// Everything left on the line, without surrounding whitespace.
    fn remainder(&mut self) -> &'a str {
        std::mem::take(&mut self.rest).trim()
    }

    /// Fails if anything but whitespace is left.
    fn finish(mut self) -> Result<(), DatasetError> {
        match self.next_token() {
            None => Ok(()),
            Some(token) => Err(self.error(format!("unexpected extra field `{token}`"))),
        }
    }
}

fn read_text(path: &Path) -> Result<String, DatasetError> {
    std::fs::read(path)
        .map_err(|e| DatasetError::io(path, e))
        .and_then(|bytes| {
            String::from_utf8(bytes).map_err(|e| {
                let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
                let line = valid.iter().filter(|&&b| b == b'\n').count() + 1;
                DatasetError::MalformedLine {
                    path: path.to_path_buf(),
                    line,
                    message: "not valid UTF-8 text".into(),
                }
            })
        })
}

/// Lines that carry data: neither comments nor blank, numbered from 1.
fn data_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(index, line)| (index + 1, line))
        .filter(|(_, line)| {
            let trimmed = line.trim_start();
            !trimmed.is_empty() && !trimmed.starts_with('#')
        })
}

pub(super) fn read_cameras(path: &Path) -> Result<Vec<ColmapCamera>, DatasetError> {
    let text = read_text(path)?;
    let mut cameras = Vec::new();
    for (line, content) in data_lines(&text) {
        let mut fields = Fields::new(content, path, line);
        let id = fields.next("CAMERA_ID", "an integer")?;
        let model_name: String = fields.next("MODEL", "a camera model name")?;
        let model = camera_model_from_name(&model_name)
            .ok_or_else(|| fields.error(format!("unknown camera model `{model_name}`")))?;
        let width = fields.next("WIDTH", "an integer")?;
        let height = fields.next("HEIGHT", "an integer")?;
        let params = (0..model.param_count())
            .map(|i| fields.next_f64(&format!("parameter {} of {model_name}", i + 1)))
            .collect::<Result<Vec<_>, _>>()?;
        fields.finish()?;
        cameras.push(ColmapCamera {
            id,
            model,
            width,
            height,
            params,
        });
    }
    Ok(cameras)
}

pub(super) fn read_images(path: &Path) -> Result<Vec<ColmapImage>, DatasetError> {
    let text = read_text(path)?;
    let mut lines = text.lines().enumerate().map(|(i, line)| (i + 1, line));
    let mut images = Vec::new();
    while let Some((line, content)) = lines.next() {
        let trimmed = content.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        images.push(parse_image_line(content, path, line)?);
        // The next line holds the image's 2D points; it may be empty, or absent at the very
        // end of the file.
        if let Some((points_line, points)) = lines.next() {
            check_points2d_line(points, path, points_line)?;
        }
    }
    Ok(images)
}

fn parse_image_line(content: &str, path: &Path, line: usize) -> Result<ColmapImage, DatasetError> {
    let mut fields = Fields::new(content, path, line);
    let id = fields.next("IMAGE_ID", "an integer")?;
    let qvec = fields.next_f64s::<4>("a quaternion component (QW QX QY QZ)")?;
    let tvec = fields.next_f64s::<3>("a translation component (TX TY TZ)")?;
    let camera_id = fields.next("CAMERA_ID", "an integer")?;
    let name = fields.remainder();
    if name.is_empty() {
        return Err(fields.error("missing NAME"));
    }
    Ok(ColmapImage {
        id,
        qvec,
        tvec,
        camera_id,
        name: name.to_string(),
    })
}

/// The 2D points are not used, but a line that is not `(X Y POINT3D_ID)` triples means the file
/// is damaged (or the two-lines-per-image rhythm is broken), so it is checked.
fn check_points2d_line(content: &str, path: &Path, line: usize) -> Result<(), DatasetError> {
    let mut fields = Fields::new(content, path, line);
    let mut count = 0usize;
    while let Some(token) = fields.next_token() {
        let valid = if count % 3 == 2 {
            token.parse::<i64>().is_ok()
        } else {
            token.parse::<f64>().is_ok()
        };
        if !valid {
            return Err(fields.error(format!(
                "2D point list: `{token}` is not a number (expected X Y POINT3D_ID triples)"
            )));
        }
        count += 1;
    }
    if !count.is_multiple_of(3) {
        return Err(fields.error(format!(
            "2D point list has {count} values, not a multiple of 3 (X Y POINT3D_ID)"
        )));
    }
    Ok(())
}

pub(super) fn read_points(path: &Path) -> Result<Vec<ColmapPoint>, DatasetError> {
    let text = read_text(path)?;
    let mut points = Vec::new();
    for (line, content) in data_lines(&text) {
        let mut fields = Fields::new(content, path, line);
        let id = fields.next("POINT3D_ID", "an integer")?;
        let position = fields.next_f64s::<3>("a coordinate (X Y Z)")?;
        let color = [
            fields.next("R", "an integer 0-255")?,
            fields.next("G", "an integer 0-255")?,
            fields.next("B", "an integer 0-255")?,
        ];
        let error = fields.next_f64("ERROR")?;
        let mut track_values = 0u64;
        while let Some(token) = fields.next_token() {
            if token.parse::<u64>().is_err() {
                return Err(fields.error(format!(
                    "track: `{token}` is not an id (expected IMAGE_ID POINT2D_IDX pairs)"
                )));
            }
            track_values += 1;
        }
        if !track_values.is_multiple_of(2) {
            return Err(fields.error(format!(
                "track has {track_values} values, not (IMAGE_ID, POINT2D_IDX) pairs"
            )));
        }
        points.push(ColmapPoint {
            id,
            position,
            color,
            error,
            track_length: track_values / 2,
        });
    }
    Ok(points)
}
