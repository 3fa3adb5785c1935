//! Damaged datasets: copies of the shipped scenes in a temporary folder, broken one way each.
//! Every case must give a `DatasetError` whose message names the file at fault (no panic).

use std::fs;
use std::path::{Path, PathBuf};

use super::{Dataset, DatasetError, DatasetOptions, load_images};
use crate::fsutil::TempDir;

fn manifest_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A private copy of a shipped dataset.
struct Fixture {
    dir: TempDir,
}

impl Fixture {
    /// assets/demo with its binary model in sparse/0 and its images.
    fn colmap() -> Self {
        let dir = TempDir::new("dataset-bad-colmap").unwrap();
        let demo = manifest_path("assets/demo");
        copy_tree(&demo.join("sparse/0"), &dir.path().join("sparse/0"));
        copy_tree(&demo.join("images"), &dir.path().join("images"));
        Self { dir }
    }

    /// assets/demo with its text model in sparse/0.
    fn colmap_text() -> Self {
        let dir = TempDir::new("dataset-bad-colmap-text").unwrap();
        let demo = manifest_path("assets/demo");
        copy_tree(&demo.join("sparse_txt/0"), &dir.path().join("sparse/0"));
        copy_tree(&demo.join("images"), &dir.path().join("images"));
        Self { dir }
    }

    fn blender() -> Self {
        let dir = TempDir::new("dataset-bad-blender").unwrap();
        copy_tree(&manifest_path("tests/data/tiny_blender"), dir.path());
        Self { dir }
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    fn options(&self) -> DatasetOptions {
        DatasetOptions::new(self.dir.path())
    }

    fn load(&self) -> Result<Dataset, DatasetError> {
        Dataset::load(&self.options())
    }

    /// Overwrites bytes of a file at `offset`.
    fn patch(&self, relative: &str, offset: usize, bytes: &[u8]) {
        let path = self.path(relative);
        let mut content = fs::read(&path).unwrap();
        content[offset..offset + bytes.len()].copy_from_slice(bytes);
        fs::write(&path, content).unwrap();
    }

    fn truncate(&self, relative: &str, length: usize) {
        let path = self.path(relative);
        let content = fs::read(&path).unwrap();
        fs::write(&path, &content[..length]).unwrap();
    }

    /// Replaces line `line` (1-based) of a text file.
    fn replace_line(&self, relative: &str, line: usize, text: &str) {
        let path = self.path(relative);
        let content = fs::read_to_string(&path).unwrap();
        let mut lines: Vec<String> = content.lines().map(String::from).collect();
        lines[line - 1] = text.to_string();
        fs::write(&path, lines.join("\n") + "\n").unwrap();
    }

    fn edit_text(&self, relative: &str, edit: impl FnOnce(String) -> String) {
        let path = self.path(relative);
        let content = fs::read_to_string(&path).unwrap();
        fs::write(&path, edit(content)).unwrap();
    }
}

/// The error's message, after checking that it names `file` and contains `phrase`.
#[track_caller]
fn expect_error<T>(result: Result<T, DatasetError>, file: &str, phrase: &str) -> String {
    let Err(error) = result else {
        panic!("the damaged dataset loaded (expected an error naming {file})");
    };
    let message = error.to_string();
    assert!(
        message.contains(file),
        "message does not name {file}: {message}"
    );
    assert!(
        message.contains(phrase),
        "message lacks `{phrase}`: {message}"
    );
    message
}

// Layout of the demo's binary model (see colmap/binary.rs): byte offsets used below.
const CAMERA_MODEL_ID_AT: usize = 12;
const CAMERA_PARAMS_AT: usize = 32;
const FIRST_IMAGE_QVEC_AT: usize = 12;
const FIRST_IMAGE_CAMERA_ID_AT: usize = 68;
/// After the first image's name "img_0029.jpg" and its NUL.
const FIRST_IMAGE_POINT_COUNT_AT: usize = 72 + 13;
const FIRST_POINT_TRACK_LENGTH_AT: usize = 51;

#[test]
fn demo_layout_assumptions_hold() {
    let images = fs::read(manifest_path("assets/demo/sparse/0/images.bin")).unwrap();
    assert_eq!(&images[72..85], b"img_0029.jpg\0");
    assert_eq!(u32::from_le_bytes(images[68..72].try_into().unwrap()), 1);
}

// ---------------------------------------------------------------- folders and detection

#[test]
fn missing_source_folder() {
    let fixture = Fixture::colmap();
    let missing = fixture.path("no_such_scene");
    let message = expect_error(
        Dataset::load(&DatasetOptions::new(&missing)),
        "no_such_scene",
        "does not exist",
    );
    assert!(message.starts_with("dataset folder"));
}

#[test]
fn source_that_is_a_file() {
    let fixture = Fixture::colmap();
    let file = fixture.path("sparse/0/cameras.bin");
    expect_error(
        Dataset::load(&DatasetOptions::new(file)),
        "cameras.bin",
        "not a folder",
    );
}

#[test]
fn folder_without_a_dataset_lists_what_was_looked_for() {
    let dir = TempDir::new("dataset-empty").unwrap();
    let message = expect_error(
        Dataset::load(&DatasetOptions::new(dir.path())),
        &dir.path().display().to_string(),
        "no dataset found",
    );
    for looked_for in [
        "sparse/0/",
        "cameras",
        ".bin",
        ".txt",
        "transforms_train.json",
    ] {
        assert!(message.contains(looked_for), "{message}");
    }
}

#[test]
fn missing_images_folder() {
    let fixture = Fixture::colmap();
    fs::remove_dir_all(fixture.path("images")).unwrap();
    expect_error(fixture.load(), "images", "images folder");
    // A custom --images folder that does not exist is named too.
    let mut options = fixture.options();
    options.images = "images_8".into();
    expect_error(Dataset::load(&options), "images_8", "does not exist");
}

#[test]
fn missing_sparse_file() {
    let fixture = Fixture::colmap();
    fs::remove_file(fixture.path("sparse/0/points3D.bin")).unwrap();
    let message = expect_error(fixture.load(), "sparse/0", "points3D");
    assert!(message.contains("points3D.bin") && message.contains("points3D.txt"));
}

#[test]
fn invalid_resolution() {
    let fixture = Fixture::colmap();
    for resolution in [0, -2, -8] {
        let mut options = fixture.options();
        options.resolution = resolution;
        let message = Dataset::load(&options).unwrap_err().to_string();
        assert!(
            message.contains(&format!("invalid resolution {resolution}")),
            "{message}"
        );
    }
}

// ---------------------------------------------------------------- binary model

#[test]
fn truncated_binary_files_are_errors_at_every_length() {
    let fixture = Fixture::colmap();
    let originals: Vec<(&str, Vec<u8>)> = ["cameras.bin", "images.bin", "points3D.bin"]
        .into_iter()
        .map(|name| {
            (
                name,
                fs::read(fixture.path(&format!("sparse/0/{name}"))).unwrap(),
            )
        })
        .collect();
    for (name, original) in &originals {
        let relative = format!("sparse/0/{name}");
        // Every length for small files; for large ones every length in the first records, then
        // a spread of lengths through the file.
        let lengths: Vec<usize> = if original.len() <= 200 {
            (0..original.len()).collect()
        } else {
            (0..200).chain((200..original.len()).step_by(997)).collect()
        };
        for length in lengths {
            fs::write(fixture.path(&relative), &original[..length]).unwrap();
            let message = fixture.load().unwrap_err().to_string();
            assert!(message.contains(*name), "{name} at {length}: {message}");
            assert!(
                message.contains("corrupt file") || message.contains("no images"),
                "{name} at {length}: {message}"
            );
        }
        fs::write(fixture.path(&relative), original).unwrap();
    }
    assert!(fixture.load().is_ok());
}

#[test]
fn huge_counts_do_not_allocate() {
    let huge = (1u64 << 60).to_le_bytes();
    for (file, offset) in [
        ("sparse/0/cameras.bin", 0),
        ("sparse/0/images.bin", 0),
        ("sparse/0/images.bin", FIRST_IMAGE_POINT_COUNT_AT),
        ("sparse/0/points3D.bin", 0),
        ("sparse/0/points3D.bin", FIRST_POINT_TRACK_LENGTH_AT),
    ] {
        let fixture = Fixture::colmap();
        fixture.patch(file, offset, &huge);
        let name = Path::new(file).file_name().unwrap().to_str().unwrap();
        expect_error(fixture.load(), name, "cannot fit");
    }
    // u64::MAX overflows `count * record size`: still a clean error.
    let fixture = Fixture::colmap();
    fixture.patch(
        "sparse/0/images.bin",
        FIRST_IMAGE_POINT_COUNT_AT,
        &u64::MAX.to_le_bytes(),
    );
    expect_error(fixture.load(), "images.bin", "cannot fit");
}

#[test]
fn trailing_bytes_mean_a_wrong_count() {
    let fixture = Fixture::colmap();
    // Claim one camera fewer... there is one camera, so claim zero: the whole record trails.
    fixture.patch("sparse/0/cameras.bin", 0, &0u64.to_le_bytes());
    expect_error(fixture.load(), "cameras.bin", "unexpected bytes");
}

#[test]
fn unknown_binary_camera_model_id() {
    let fixture = Fixture::colmap();
    fixture.patch(
        "sparse/0/cameras.bin",
        CAMERA_MODEL_ID_AT,
        &77i32.to_le_bytes(),
    );
    expect_error(fixture.load(), "cameras.bin", "unknown model id 77");
}

#[test]
fn unsupported_camera_model_binary() {
    // SIMPLE_RADIAL (id 2) has 4 parameters like PINHOLE, so the file stays well formed.
    let fixture = Fixture::colmap();
    fixture.patch(
        "sparse/0/cameras.bin",
        CAMERA_MODEL_ID_AT,
        &2i32.to_le_bytes(),
    );
    let message = expect_error(fixture.load(), "cameras.bin", "SIMPLE_RADIAL");
    assert!(message.contains("undistort") && message.contains("colmap image_undistorter"));
}

#[test]
fn unsupported_camera_model_text() {
    let fixture = Fixture::colmap_text();
    fixture.replace_line(
        "sparse/0/cameras.txt",
        4,
        "1 OPENCV 320 240 275.4 269.6 160 120 0.01 -0.002 0 0",
    );
    let message = expect_error(fixture.load(), "cameras.txt", "OPENCV");
    assert!(message.contains("undistort"));
}

#[test]
fn nan_in_binary_pose() {
    let fixture = Fixture::colmap();
    fixture.patch(
        "sparse/0/images.bin",
        FIRST_IMAGE_QVEC_AT,
        &f64::NAN.to_le_bytes(),
    );
    expect_error(
        fixture.load(),
        "images.bin",
        "img_0029.jpg is not a finite number",
    );
}

#[test]
fn infinite_binary_intrinsics() {
    let fixture = Fixture::colmap();
    fixture.patch(
        "sparse/0/cameras.bin",
        CAMERA_PARAMS_AT,
        &f64::INFINITY.to_le_bytes(),
    );
    expect_error(fixture.load(), "cameras.bin", "not a finite number");
}

#[test]
fn undefined_camera_id() {
    let fixture = Fixture::colmap();
    fixture.patch(
        "sparse/0/images.bin",
        FIRST_IMAGE_CAMERA_ID_AT,
        &99u32.to_le_bytes(),
    );
    let message = expect_error(fixture.load(), "images.bin", "camera 99");
    assert!(message.contains("cameras.bin") && message.contains("img_0029.jpg"));
}

#[test]
fn empty_binary_model() {
    let fixture = Fixture::colmap();
    fs::write(fixture.path("sparse/0/images.bin"), 0u64.to_le_bytes()).unwrap();
    expect_error(fixture.load(), "images.bin", "has no images");
}

#[test]
fn nan_in_points() {
    let fixture = Fixture::colmap();
    fixture.patch("sparse/0/points3D.bin", 16, &f64::NAN.to_le_bytes());
    expect_error(fixture.load(), "points3D.bin", "position of point");
}

// ---------------------------------------------------------------- text model

#[test]
fn text_model_loads_like_the_binary_one() {
    let text = Fixture::colmap_text().load().unwrap();
    let binary = Fixture::colmap().load().unwrap();
    assert_eq!(text.views.len(), binary.views.len());
    for (t, b) in text.views.iter().zip(&binary.views) {
        assert_eq!(t.name, b.name);
        assert!((t.camera.center() - b.camera.center()).length() < 1e-9);
        assert!((t.camera.fx - b.camera.fx).abs() < 1e-9);
    }
    assert_eq!(text.points, binary.points);
}

#[test]
fn malformed_text_lines_give_the_line_number() {
    // Line 5 of images.txt is the first image line (after 4 comment lines).
    let cases: [(&str, usize, &str, &str); 6] = [
        (
            "sparse/0/cameras.txt",
            4,
            "1 PINHOLE wide 240 275 269 160 120",
            "cameras.txt:4: WIDTH",
        ),
        (
            "sparse/0/cameras.txt",
            4,
            "1 PINHOLE 320 240 275 269 160",
            "cameras.txt:4: missing",
        ),
        (
            "sparse/0/cameras.txt",
            4,
            "1 PINHOLE 320 240 275 269 160 120 7",
            "cameras.txt:4: unexpected",
        ),
        (
            "sparse/0/images.txt",
            5,
            "30 0.99 -0.04 x -0.03 0 -1.3 3.5 1 img_0029.jpg",
            "images.txt:5: a quaternion",
        ),
        (
            "sparse/0/images.txt",
            6,
            "1.0 2.0",
            "images.txt:6: 2D point list",
        ),
        (
            "sparse/0/points3D.txt",
            4,
            "1 0.1 2.1 -1.3 116 95 66 0.16 29 149 30",
            "points3D.txt:4: track",
        ),
    ];
    for (file, line, text, expected) in cases {
        let fixture = Fixture::colmap_text();
        fixture.replace_line(file, line, text);
        expect_error(fixture.load(), expected, "");
    }
}

#[test]
fn nan_in_text_pose() {
    let fixture = Fixture::colmap_text();
    fixture.replace_line(
        "sparse/0/images.txt",
        5,
        "30 0.99533 -0.04953 -0.07546 -0.03418 nan -1.31 3.56 1 img_0029.jpg",
    );
    expect_error(fixture.load(), "images.txt", "not a finite number");
}

#[test]
fn empty_text_model() {
    let fixture = Fixture::colmap_text();
    fixture.edit_text("sparse/0/images.txt", |text| {
        text.lines()
            .filter(|line| line.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n")
    });
    expect_error(fixture.load(), "images.txt", "has no images");
}

#[test]
fn undefined_camera_id_text() {
    let fixture = Fixture::colmap_text();
    fixture.edit_text("sparse/0/cameras.txt", |text| {
        text.replace("\n1 PINHOLE", "\n2 PINHOLE")
    });
    expect_error(
        fixture.load(),
        "images.txt",
        "camera 1, which is not defined",
    );
}

// ---------------------------------------------------------------- layout variants that load

#[test]
fn colmap4_extra_files_and_bin_preference() {
    let fixture = Fixture::colmap();
    fs::write(fixture.path("sparse/0/rigs.bin"), b"not read").unwrap();
    fs::write(fixture.path("sparse/0/frames.bin"), b"not read").unwrap();
    // A broken text file next to the binary one is ignored: .bin wins.
    fs::write(fixture.path("sparse/0/cameras.txt"), "garbage\n").unwrap();
    assert_eq!(fixture.load().unwrap().views.len(), 40);
}

#[test]
fn model_directly_in_sparse() {
    let fixture = Fixture::colmap();
    for name in ["cameras.bin", "images.bin", "points3D.bin"] {
        fs::rename(
            fixture.path(&format!("sparse/0/{name}")),
            fixture.path(&format!("sparse/{name}")),
        )
        .unwrap();
    }
    fs::remove_dir(fixture.path("sparse/0")).unwrap();
    let dataset = fixture.load().unwrap();
    assert_eq!(dataset.views.len(), 40);
    assert!(dataset.metadata_files[0].ends_with("sparse/cameras.bin"));
}

/// inria's `-i images_2` use: images downscaled uniformly, the model at full size. The
/// intrinsics follow the files' size.
#[test]
fn uniformly_downscaled_images_folder() {
    let fixture = Fixture::colmap();
    let half = fixture.path("images_2");
    fs::create_dir(&half).unwrap();
    for entry in fs::read_dir(fixture.path("images")).unwrap() {
        let path = entry.unwrap().path();
        let image = image::open(&path).unwrap();
        image
            .resize_exact(160, 120, image::imageops::FilterType::Triangle)
            .save(half.join(path.file_name().unwrap()))
            .unwrap();
    }
    let full = fixture.load().unwrap();
    let mut options = fixture.options();
    options.images = "images_2".into();
    let dataset = Dataset::load(&options).unwrap();
    for (view, full_view) in dataset.views.iter().zip(&full.views) {
        assert_eq!(view.original_size, (160, 120));
        assert!((view.camera.fx - full_view.camera.fx / 2.0).abs() < 1e-9);
        assert_eq!(view.camera.cx, 80.0);
    }
}

// ---------------------------------------------------------------- images

#[test]
fn image_listed_but_absent() {
    let fixture = Fixture::colmap();
    fs::remove_file(fixture.path("images/img_0007.jpg")).unwrap();
    let message = expect_error(fixture.load(), "img_0007.jpg", "image file is missing");
    assert!(message.contains("images.bin"));
}

#[test]
fn image_size_disagrees_with_camera() {
    let fixture = Fixture::colmap();
    image::RgbImage::new(100, 100)
        .save_with_format(
            fixture.path("images/img_0011.jpg"),
            image::ImageFormat::Jpeg,
        )
        .unwrap();
    let message = expect_error(fixture.load(), "img_0011.jpg", "100x100");
    assert!(message.contains("320x240") && message.contains("cameras.bin"));
}

#[test]
fn image_that_is_not_an_image() {
    let fixture = Fixture::colmap();
    fs::write(fixture.path("images/img_0003.jpg"), b"this is not a JPEG").unwrap();
    expect_error(fixture.load(), "img_0003.jpg", "cannot decode image");
}

#[test]
fn truncated_image_fails_at_load_images() {
    let fixture = Fixture::colmap();
    let path = fixture.path("images/img_0021.jpg");
    let length = fs::metadata(&path).unwrap().len() as usize;
    fixture.truncate("images/img_0021.jpg", length / 3);
    // The header is intact, so the metadata loads...
    let dataset = fixture.load().unwrap();
    // ...and decoding names the file.
    let message = expect_error(
        load_images(&dataset, true),
        "img_0021.jpg",
        "cannot decode image",
    );
    assert!(message.contains("truncated"), "{message}");
}

/// libjpeg's fatal errors (dataset::jpeg) come back as errors naming the file, from the header
/// (at load) or from the decoding (at load_images), whatever the extension.
#[test]
fn corrupt_jpegs_are_errors_naming_the_file() {
    // JPEG magic bytes, then garbage (`t` is not a marker), and an end-of-image marker so that
    // the file is not refused as truncated before libjpeg sees it.
    let fixture = Fixture::colmap();
    fs::write(
        fixture.path("images/img_0003.jpg"),
        b"\xFF\xD8\xFFthis is not a JPEG\xFF\xD9",
    )
    .unwrap();
    let message = expect_error(fixture.load(), "img_0003.jpg", "cannot decode image");
    assert!(message.contains("libjpeg: Unsupported marker"), "{message}");

    // A header that reads but names a quantisation table that is not defined: libjpeg fails
    // when it starts decoding (an unwind through its C code, caught).
    let fixture = Fixture::colmap();
    let path = fixture.path("images/img_0021.jpg");
    let bytes = fs::read(&path).unwrap();
    let sof = bytes.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
    fixture.patch("images/img_0021.jpg", sof + 12, &[3]);
    let dataset = fixture.load().unwrap();
    let message = expect_error(
        load_images(&dataset, true),
        "img_0021.jpg",
        "cannot decode image",
    );
    assert!(message.contains("libjpeg: Quantization table"), "{message}");
}

/// Formats are told apart by content: a JPEG named .png is decoded by libjpeg, a PNG named .jpg
/// by the PNG decoder.
#[test]
fn image_formats_follow_the_content() {
    let fixture = Fixture::blender();
    let png = fs::read(fixture.path("train/r_2.png")).unwrap();
    let jpeg = fs::read(manifest_path("assets/demo/images/img_0000.jpg")).unwrap();
    fs::write(fixture.path("train/r_2.png"), &jpeg).unwrap();
    let dataset = fixture.load().unwrap();
    let view = dataset
        .views
        .iter()
        .find(|v| v.image_path.ends_with("train/r_2.png"))
        .unwrap();
    assert_eq!(view.original_size, (320, 240));
    let loaded = super::load_view_image(&dataset, view).unwrap();
    let expected = super::jpeg::decode_rgb(&jpeg).unwrap();
    assert_eq!(loaded.rgba(17, 100)[..3], expected.get_pixel(17, 100).0);

    let fixture = Fixture::colmap();
    fs::write(fixture.path("images/img_0003.jpg"), &png).unwrap();
    expect_error(fixture.load(), "img_0003.jpg", "128x128");
}

// ---------------------------------------------------------------- Blender

#[test]
fn blender_missing_frame_image() {
    let fixture = Fixture::blender();
    fs::remove_file(fixture.path("test/r_3.png")).unwrap();
    let message = expect_error(fixture.load(), "r_3.png", "image file is missing");
    assert!(message.contains("transforms_test.json"));
}

#[test]
fn blender_malformed_json() {
    let fixture = Fixture::blender();
    fixture.edit_text("transforms_train.json", |text| {
        text.replacen("\"frames\"", "\"frames", 1)
    });
    expect_error(fixture.load(), "transforms_train.json", "line");
    let fixture = Fixture::blender();
    fixture.edit_text("transforms_test.json", |text| {
        text.replace("camera_angle_x", "fov")
    });
    expect_error(fixture.load(), "transforms_test.json", "camera_angle_x");
}

#[test]
fn blender_non_finite_values() {
    // JSON has no NaN; an overflowing literal is the way to write an infinity.
    let fixture = Fixture::blender();
    fixture.edit_text("transforms_train.json", |text| {
        text.replacen("-3.703773021697998", "-3.7e999", 1)
    });
    expect_error(fixture.load(), "transforms_train.json", "out of range");
    let fixture = Fixture::blender();
    fixture.edit_text("transforms_train.json", |text| {
        text.replacen("0.6911112070083618", "0.0", 1)
    });
    expect_error(fixture.load(), "transforms_train.json", "camera_angle_x");
}

#[test]
fn blender_non_rigid_transform() {
    let fixture = Fixture::blender();
    fixture.edit_text("transforms_train.json", |text| {
        text.replacen("-0.21272797882556915", "-2.5", 1)
    });
    expect_error(fixture.load(), "transforms_train.json", "not a rotation");
}

#[test]
fn blender_without_frames() {
    let fixture = Fixture::blender();
    let empty = r#"{"camera_angle_x": 0.69, "frames": []}"#;
    fs::write(fixture.path("transforms_train.json"), empty).unwrap();
    fs::write(fixture.path("transforms_test.json"), empty).unwrap();
    expect_error(fixture.load(), "transforms_train.json", "has no frames");
}

#[test]
fn blender_corrupt_png_fails_at_load_images() {
    let fixture = Fixture::blender();
    let length = fs::metadata(fixture.path("train/r_5.png")).unwrap().len() as usize;
    fixture.truncate("train/r_5.png", length / 2);
    let dataset = fixture.load().unwrap();
    expect_error(
        load_images(&dataset, true),
        "r_5.png",
        "cannot decode image",
    );
}

#[test]
fn blender_extension_is_kept_when_given() {
    let fixture = Fixture::blender();
    fixture.edit_text("transforms_train.json", |text| {
        text.replace("\"./train/r_0\"", "\"./train/r_0.png\"")
    });
    let dataset = fixture.load().unwrap();
    assert_eq!(dataset.views[0].name, "train/r_0.png");
}

#[test]
fn zero_camera_size() {
    let fixture = Fixture::colmap();
    fixture.patch("sparse/0/cameras.bin", 16, &0u64.to_le_bytes());
    expect_error(
        fixture.load(),
        "cameras.bin",
        "width 0 is not a valid image size",
    );
}

// ---------------------------------------------------------------- sizes, paths, messages

#[test]
fn focal_length_that_degenerates_after_scaling_is_refused_at_load() {
    let fixture = Fixture::colmap_text();
    // Positive, so the COLMAP reader accepts it, but 0 once the GPU's f32 sees it (at -r 8
    // even in f64): the rasterizer would refuse the camera mid-run.
    fixture.replace_line(
        "sparse/0/cameras.txt",
        4,
        "1 PINHOLE 320 240 1e-320 269.55465874496696 160 120",
    );
    let mut options = fixture.options();
    options.resolution = 8;
    let message = expect_error(Dataset::load(&options), "cameras.txt", "focal lengths");
    assert!(message.contains("resolution 8"), "{message}");
}

#[test]
fn image_names_outside_the_dataset_folder_are_refused() {
    let fixture = Fixture::colmap_text();
    fixture.edit_text("sparse/0/images.txt", |text| {
        text.replacen(" img_0029.jpg", " ../../etc/passwd", 1)
    });
    expect_error(fixture.load(), "images.txt", "outside the folder");

    let fixture = Fixture::colmap_text();
    fixture.edit_text("sparse/0/images.txt", |text| {
        text.replacen(" img_0029.jpg", " /etc/passwd", 1)
    });
    expect_error(fixture.load(), "images.txt", "outside the folder");

    let fixture = Fixture::blender();
    fixture.edit_text("transforms_train.json", |text| {
        text.replace("\"./train/r_0\"", "\"../../../etc/hostname\"")
    });
    expect_error(
        fixture.load(),
        "transforms_train.json",
        "outside the folder",
    );
}

#[test]
fn a_tiny_image_is_not_a_scaled_copy_of_its_camera() {
    let fixture = Fixture::colmap();
    image::RgbImage::new(1, 1)
        .save_with_format(
            fixture.path("images/img_0011.jpg"),
            image::ImageFormat::Jpeg,
        )
        .unwrap();
    let message = expect_error(fixture.load(), "img_0011.jpg", "1x1");
    assert!(message.contains("320x240"), "{message}");
}

/// Whether a printed error chain says some cause twice (a layer that includes its source in
/// its own message and also returns it as `source`).
fn repeats_a_cause(chain: &str) -> bool {
    let parts: Vec<&str> = chain.split(": ").filter(|p| p.len() > 8).collect();
    parts.iter().enumerate().any(|(i, p)| {
        parts[i + 1..]
            .iter()
            .any(|q| q.contains(p) || p.contains(q))
    })
}

#[test]
fn errors_say_each_cause_once() {
    assert!(repeats_a_cause(
        "a.png: cannot read: No such file: No such file"
    ));
    assert!(!repeats_a_cause(
        "loading /x: /x/a.png: cannot read: No such file"
    ));

    let fixture = Fixture::colmap();
    fs::remove_file(fixture.path("images/img_0005.jpg")).unwrap();
    let chain = format!("{:#}", anyhow::Error::from(fixture.load().unwrap_err()));
    assert!(!repeats_a_cause(&chain), "{chain}");

    let fixture = Fixture::blender();
    let length = fs::metadata(fixture.path("train/r_5.png")).unwrap().len() as usize;
    fixture.truncate("train/r_5.png", length / 2);
    let dataset = fixture.load().unwrap();
    let error = load_images(&dataset, true).unwrap_err();
    let chain = format!("{:#}", anyhow::Error::from(error));
    assert!(chain.contains("cannot decode image"), "{chain}");
    assert!(!repeats_a_cause(&chain), "{chain}");

    let fixture = Fixture::colmap();
    fs::write(fixture.path("images/img_0003.jpg"), b"this is not a JPEG").unwrap();
    let chain = format!("{:#}", anyhow::Error::from(fixture.load().unwrap_err()));
    assert!(!repeats_a_cause(&chain), "{chain}");
}
