//! Tests of reading and writing PLY files, with files built the way other tools write them.

use super::header::ScalarType;
use super::*;
use crate::dataset::PointCloud;
use crate::fsutil::TempDir;
use crate::model::{Gaussians, ParamGroup};
use crate::rng::Pcg32;
use crate::sh;
use std::fs;

mod malformed;

// ---- building PLY files the way other tools write them ----------------------------------

/// One element of a hand-built PLY: properties as `(type, name)` where the type is a
/// scalar type name or `list <count type> <item type>`; each row has one `Vec` per property
/// (one value for scalars, the items for lists).
struct TestElement {
    name: String,
    properties: Vec<(String, String)>,
    rows: Vec<Vec<Vec<f64>>>,
}

fn encode_scalar(ty: ScalarType, v: f64, big_endian: bool, out: &mut Vec<u8>) {
    macro_rules! put {
        ($x:expr) => {{
            let x = $x;
            out.extend_from_slice(&if big_endian {
                x.to_be_bytes()
            } else {
                x.to_le_bytes()
            })
        }};
    }
    match ty {
        ScalarType::I8 => put!(v as i8),
        ScalarType::U8 => put!(v as u8),
        ScalarType::I16 => put!(v as i16),
        ScalarType::U16 => put!(v as u16),
        ScalarType::I32 => put!(v as i32),
        ScalarType::U32 => put!(v as u32),
        ScalarType::F32 => put!(v as f32),
        ScalarType::F64 => put!(v),
    }
}

fn ascii_scalar(ty: ScalarType, v: f64) -> String {
    match ty {
        ScalarType::F32 => format!("{}", v as f32),
        ScalarType::F64 => format!("{v}"),
        _ => format!("{}", v as i64),
    }
}

/// Encodes a whole file. `crlf` ends header lines (and ASCII data lines) with "\r\n".
fn encode_ply(format: &str, elements: &[TestElement], crlf: bool) -> Vec<u8> {
    let eol = if crlf { "\r\n" } else { "\n" };
    let mut header = format!("ply{eol}format {format} 1.0{eol}comment made by a test{eol}");
    header.push_str(&format!("obj_info nothing to see{eol}"));
    for e in elements {
        header.push_str(&format!("element {} {}{eol}", e.name, e.rows.len()));
        for (ty, name) in &e.properties {
            header.push_str(&format!("property {ty} {name}{eol}"));
        }
    }
    header.push_str(&format!("end_header{eol}"));
    let mut out = header.into_bytes();
    let big_endian = format == "binary_big_endian";
    for e in elements {
        let types: Vec<Vec<ScalarType>> = e
            .properties
            .iter()
            .map(|(ty, _)| {
                ty.split_whitespace()
                    .filter(|w| *w != "list")
                    .map(|w| ScalarType::from_name(w).unwrap())
                    .collect()
            })
            .collect();
        for row in &e.rows {
            let mut line = Vec::new();
            for (values, types) in row.iter().zip(&types) {
                let item = *types.last().unwrap();
                if types.len() == 2 {
                    // A list: its length first.
                    if format == "ascii" {
                        line.push(values.len().to_string());
                    } else {
                        encode_scalar(types[0], values.len() as f64, big_endian, &mut out);
                    }
                }
                for &v in values {
                    if format == "ascii" {
                        line.push(ascii_scalar(item, v));
                    } else {
                        encode_scalar(item, v, big_endian, &mut out);
                    }
                }
            }
            if format == "ascii" {
                out.extend_from_slice(line.join(" ").as_bytes());
                out.extend_from_slice(eol.as_bytes());
            }
        }
    }
    out
}

/// A deterministic value for vertex `i`'s property `name`, exactly representable in `ty`.
fn sample(i: usize, name: &str, ty: ScalarType) -> f64 {
    let h = name.bytes().map(usize::from).sum::<usize>() * 31 + i * 13;
    match ty {
        ScalarType::I8 => (h % 200) as f64 - 100.0,
        ScalarType::F32 | ScalarType::F64 => (h % 1000) as f64 / 8.0 - 60.0,
        _ => (h % 250) as f64,
    }
}

fn vertex_element(n: usize, properties: &[(&str, &str)]) -> TestElement {
    let rows = (0..n)
        .map(|i| {
            properties
                .iter()
                .map(|(ty, name)| vec![sample(i, name, ScalarType::from_name(ty).unwrap())])
                .collect()
        })
        .collect();
    TestElement {
        name: "vertex".into(),
        properties: properties
            .iter()
            .map(|(t, n)| (t.to_string(), n.to_string()))
            .collect(),
        rows,
    }
}

/// The cloud a reader must produce from `vertex_element(n, properties)`, assembled
/// property by property (f_rest: file index `c * R + k` is memory index `k * 3 + c`).
fn expected_gaussians(n: usize, degree: u32, properties: &[(&str, &str)]) -> Gaussians {
    let value = |i: usize, name: &str| {
        let ty = properties.iter().find(|p| p.1 == name).unwrap().0;
        sample(i, name, ScalarType::from_name(ty).unwrap()) as f32
    };
    let r = sh::rest_coeffs_for_degree(degree);
    let mut g = Gaussians::empty(degree);
    for i in 0..n {
        for name in ["x", "y", "z"] {
            g.means.push(value(i, name));
        }
        for a in 0..3 {
            g.log_scales.push(value(i, &format!("scale_{a}")));
            g.sh_dc.push(value(i, &format!("f_dc_{a}")));
        }
        for a in 0..4 {
            g.rotations.push(value(i, &format!("rot_{a}")));
        }
        g.logit_opacities.push(value(i, "opacity"));
        for k in 0..r {
            for c in 0..3 {
                g.sh_rest.push(value(i, &format!("f_rest_{}", c * r + k)));
            }
        }
    }
    g
}

/// The standard property list of a degree with every property of type `ty`.
fn standard_properties(degree: u32, ty: &'static str) -> Vec<(&'static str, String)> {
    gaussian_property_names(degree)
        .into_iter()
        .map(|name| (ty, name))
        .collect()
}

fn as_refs<'a>(properties: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    properties.iter().map(|(t, n)| (*t, n.as_str())).collect()
}

fn bits(values: &[f32]) -> Vec<u32> {
    values.iter().map(|v| v.to_bits()).collect()
}

fn assert_same_bits(actual: &Gaussians, expected: &Gaussians, what: &str) {
    assert_eq!(actual.sh_degree, expected.sh_degree, "{what}: SH degree");
    for group in ParamGroup::ALL {
        assert_eq!(
            bits(actual.group(group)),
            bits(expected.group(group)),
            "{what}: group {}",
            group.name()
        );
    }
}

/// Writes `bytes` to `dir/name` and reads it as a Gaussian PLY.
fn read_bytes(dir: &TempDir, name: &str, bytes: &[u8]) -> Result<Gaussians, PlyError> {
    let path = dir.path().join(name);
    fs::write(&path, bytes).unwrap();
    read_gaussians_ply(&path)
}

// ---- writing and round trips -------------------------------------------------------------

/// Every f32 bit pattern that must survive: signed zeros, subnormals, extremes,
/// infinities, quiet and signalling NaNs with payloads.
const SPECIAL_BITS: [u32; 13] = [
    0x0000_0000,
    0x8000_0000,
    0x0000_0001,
    0x807f_ffff,
    0x7f7f_ffff,
    0xff7f_ffff,
    0x0080_0000,
    0x7f80_0000,
    0xff80_0000,
    0x7fc0_0001,
    0xffc1_2345,
    0x7f80_0001,
    0x3f80_0000,
];

fn random_bit_gaussians(n: usize, degree: u32, rng: &mut Pcg32) -> Gaussians {
    let mut g = Gaussians::empty(degree);
    for group in ParamGroup::ALL {
        let len = n * group.width(degree);
        *g.group_mut(group) = (0..len).map(|_| f32::from_bits(rng.next_u32())).collect();
    }
    // The first values of every group take the special patterns.
    for group in ParamGroup::ALL {
        for (v, &b) in g.group_mut(group).iter_mut().zip(SPECIAL_BITS.iter()) {
            *v = f32::from_bits(b);
        }
    }
    g
}

#[test]
fn round_trip_is_bit_exact() {
    let dir = TempDir::new("ply-roundtrip").unwrap();
    let mut rng = Pcg32::new(1, 0);
    for degree in 0..=3 {
        for n in [0, 1, 2, 7, 300] {
            let g = random_bit_gaussians(n, degree, &mut rng);
            let path = dir.path().join(format!("d{degree}_n{n}.ply"));
            write_gaussians_ply(&path, &g).unwrap();
            let back = read_gaussians_ply(&path).unwrap();
            assert_same_bits(&back, &g, &format!("degree {degree}, {n} Gaussians"));
            // 17 floats besides f_rest (62 - 45 at degree 3).
            let record = 4 * (17 + 3 * sh::rest_coeffs_for_degree(degree));
            let header_len = fs::read(&path)
                .unwrap()
                .windows(11)
                .position(|w| w == b"end_header\n")
                .unwrap()
                + 11;
            let expected_len = header_len + n * record;
            assert_eq!(fs::metadata(&path).unwrap().len() as usize, expected_len);
        }
    }
}

#[test]
fn header_is_exactly_what_inria_writes() {
    let dir = TempDir::new("ply-header").unwrap();
    let path = dir.path().join("point_cloud.ply");
    // Degree 1, written out in full.
    let mut g = random_bit_gaussians(2, 1, &mut Pcg32::new(2, 0));
    write_gaussians_ply(&path, &g).unwrap();
    let expected = "ply\nformat binary_little_endian 1.0\nelement vertex 2\n\
        property float x\nproperty float y\nproperty float z\n\
        property float nx\nproperty float ny\nproperty float nz\n\
        property float f_dc_0\nproperty float f_dc_1\nproperty float f_dc_2\n\
        property float f_rest_0\nproperty float f_rest_1\nproperty float f_rest_2\n\
        property float f_rest_3\nproperty float f_rest_4\nproperty float f_rest_5\n\
        property float f_rest_6\nproperty float f_rest_7\nproperty float f_rest_8\n\
        property float opacity\n\
        property float scale_0\nproperty float scale_1\nproperty float scale_2\n\
        property float rot_0\nproperty float rot_1\nproperty float rot_2\nproperty float rot_3\n\
        end_header\n";
    let bytes = fs::read(&path).unwrap();
    assert_eq!(&bytes[..expected.len()], expected.as_bytes());
    assert_eq!(bytes.len(), expected.len() + 2 * 26 * 4);

    // The record layout, read straight from the bytes: Gaussian 1, f_rest channel-major.
    g.sh_rest = (0..18).map(|v| v as f32).collect();
    write_gaussians_ply(&path, &g).unwrap();
    let bytes = fs::read(&path).unwrap();
    let record = &bytes[expected.len() + 26 * 4..];
    let float = |j: usize| f32::from_le_bytes(record[4 * j..4 * j + 4].try_into().unwrap());
    assert_eq!(bits(&[float(0), float(1), float(2)]), bits(&g.means[3..6]));
    assert_eq!([float(3), float(4), float(5)], [0.0; 3]);
    assert_eq!(bits(&[float(6), float(7), float(8)]), bits(&g.sh_dc[3..6]));
    // In memory Gaussian 1's f_rest is 9..18 with index k * 3 + c; the file holds channel 0
    // (coefficients 1, 2, 3), then channel 1, then channel 2.
    let file_rest: Vec<f32> = (9..18).map(float).collect();
    assert_eq!(
        file_rest,
        [9.0, 12.0, 15.0, 10.0, 13.0, 16.0, 11.0, 14.0, 17.0]
    );
    assert_eq!(float(18).to_bits(), g.logit_opacities[1].to_bits());
    assert_eq!(
        bits(&(19..22).map(float).collect::<Vec<_>>()),
        bits(&g.log_scales[3..6])
    );
    assert_eq!(
        bits(&(22..26).map(float).collect::<Vec<_>>()),
        bits(&g.rotations[4..8])
    );

    // Degree 3: the 62 reference properties in order.
    let g3 = random_bit_gaussians(1, 3, &mut Pcg32::new(3, 0));
    write_gaussians_ply(&path, &g3).unwrap();
    let bytes = fs::read(&path).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    let names: Vec<&str> = text
        .lines()
        .take_while(|l| *l != "end_header")
        .filter_map(|l| l.strip_prefix("property float "))
        .collect();
    let mut reference = vec![
        "x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2",
    ]
    .into_iter()
    .map(String::from)
    .collect::<Vec<_>>();
    reference.extend((0..45).map(|j| format!("f_rest_{j}")));
    for name in [
        "opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2",
    ] {
        reference.push(name.to_string());
    }
    reference.push("rot_3".to_string());
    assert_eq!(names.len(), 62);
    assert_eq!(names, reference);
    assert!(text.starts_with("ply\nformat binary_little_endian 1.0\nelement vertex 1\n"));
}

#[test]
fn f_rest_channel_major_in_the_file_is_coefficient_major_in_memory() {
    let dir = TempDir::new("ply-rest").unwrap();
    let mut properties = standard_properties(1, "float");
    properties.retain(|p| !p.1.starts_with("f_rest"));
    let mut element = vertex_element(1, &as_refs(&properties));
    for j in 0..9 {
        element
            .properties
            .push(("float".into(), format!("f_rest_{j}")));
        element.rows[0].push(vec![j as f64]);
    }
    let bytes = encode_ply("binary_little_endian", &[element], false);
    let g = read_bytes(&dir, "rest.ply", &bytes).unwrap();
    assert_eq!(g.sh_degree, 1);
    assert_eq!(g.sh_rest, [0.0, 3.0, 6.0, 1.0, 4.0, 7.0, 2.0, 5.0, 8.0]);
}

// ---- reading what other tools write ------------------------------------------------------

#[test]
fn reads_shuffled_mixed_type_files_in_every_encoding() {
    let dir = TempDir::new("ply-foreign").unwrap();
    let mut rng = Pcg32::new(4, 0);
    let case_types = ["float", "double", "float32", "float64"];
    for degree in 0..=3 {
        for format in ["binary_little_endian", "binary_big_endian", "ascii"] {
            // Standard names, no normals, shuffled, every property a random float type,
            // plus extras other tools add.
            let mut properties: Vec<(&'static str, String)> = standard_properties(degree, "")
                .into_iter()
                .filter(|(_, n)| !n.starts_with('n'))
                .map(|(_, n)| (case_types[rng.below(4) as usize], n))
                .collect();
            for (ty, name) in [
                ("uchar", "red"),
                ("uint8", "green"),
                ("uchar", "blue"),
                ("float", "filter_1"),
                ("int", "segment_id"),
                ("short", "flags"),
            ] {
                properties.push((ty, name.to_string()));
            }
            for i in (1..properties.len()).rev() {
                properties.swap(i, rng.below(i as u32 + 1) as usize);
            }
            let refs = as_refs(&properties);
            let n = 5;
            let bytes = encode_ply(format, &[vertex_element(n, &refs)], format == "ascii");
            let what = format!("{format}, degree {degree}");
            let g =
                read_bytes(&dir, "foreign.ply", &bytes).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_same_bits(&g, &expected_gaussians(n, degree, &refs), &what);
        }
    }
}

#[test]
fn reads_integer_typed_properties() {
    let dir = TempDir::new("ply-ints").unwrap();
    let mut properties = standard_properties(1, "float");
    let types = [
        "char", "uchar", "short", "ushort", "int", "uint", "int8", "uint16",
    ];
    for (j, p) in properties.iter_mut().enumerate() {
        p.0 = types[j % types.len()];
    }
    let refs = as_refs(&properties);
    for format in ["binary_little_endian", "binary_big_endian", "ascii"] {
        let bytes = encode_ply(format, &[vertex_element(4, &refs)], false);
        let g = read_bytes(&dir, "ints.ply", &bytes).unwrap();
        assert_same_bits(&g, &expected_gaussians(4, 1, &refs), format);
        // Negative char values survive.
        let all = ParamGroup::ALL
            .iter()
            .flat_map(|&group| g.group(group).iter());
        assert!(all.clone().any(|&v| v < 0.0) && all.clone().any(|&v| v > 100.0));
    }
}

/// Elements before and after `vertex` (fixed-size and with lists) are skipped.
#[test]
fn skips_other_elements() {
    let dir = TempDir::new("ply-elements").unwrap();
    let properties = standard_properties(2, "float");
    let refs = as_refs(&properties);
    let camera = TestElement {
        name: "camera".into(),
        properties: vec![
            ("float".into(), "fx".into()),
            ("double".into(), "fy".into()),
        ],
        rows: vec![vec![vec![1.5], vec![2.5]]; 3],
    };
    let tags = TestElement {
        name: "tags".into(),
        properties: vec![
            ("uchar".into(), "kind".into()),
            ("list uchar int".into(), "ids".into()),
            ("list ushort float".into(), "weights".into()),
        ],
        rows: vec![
            vec![vec![1.0], vec![4.0, 5.0, 6.0], vec![]],
            vec![vec![2.0], vec![], vec![0.5; 300]],
        ],
    };
    let faces = TestElement {
        name: "face".into(),
        properties: vec![("list uchar int".into(), "vertex_indices".into())],
        rows: vec![vec![vec![0.0, 1.0, 2.0]], vec![vec![2.0, 1.0, 0.0]]],
    };
    let expected = expected_gaussians(6, 2, &refs);
    for format in ["binary_little_endian", "binary_big_endian", "ascii"] {
        let elements = [
            camera.clone_element(),
            tags.clone_element(),
            vertex_element(6, &refs),
            faces.clone_element(),
        ];
        let bytes = encode_ply(format, &elements, false);
        let g =
            read_bytes(&dir, "elements.ply", &bytes).unwrap_or_else(|e| panic!("{format}: {e}"));
        assert_same_bits(&g, &expected, format);
    }
}

impl TestElement {
    fn clone_element(&self) -> TestElement {
        TestElement {
            name: self.name.clone(),
            properties: self.properties.clone(),
            rows: self.rows.clone(),
        }
    }
}

// ---- atomic writes -----------------------------------------------------------------------

#[test]
fn failed_writes_leave_the_old_file_and_no_temp_file() {
    let dir = TempDir::new("ply-atomic").unwrap();
    let path = dir.path().join("point_cloud.ply");
    let good = random_bit_gaussians(4, 2, &mut Pcg32::new(9, 0));
    write_gaussians_ply(&path, &good).unwrap();
    let before = fs::read(&path).unwrap();

    let mut bad = good.clone();
    bad.rotations.pop();
    let err = write_gaussians_ply(&path, &bad).unwrap_err().to_string();
    assert!(
        err.contains("point_cloud.ply: cannot write: parameter group rotation"),
        "{err}"
    );
    let mut bad_degree = good.clone();
    bad_degree.sh_degree = 4;
    assert!(write_gaussians_ply(&path, &bad_degree).is_err());
    assert_eq!(fs::read(&path).unwrap(), before);

    // The final rename fails (a directory is in the way): the temp file is cleaned up.
    let blocked = dir.path().join("blocked.ply");
    fs::create_dir(&blocked).unwrap();
    fs::write(blocked.join("keep"), b"x").unwrap();
    let err = write_gaussians_ply(&blocked, &good)
        .unwrap_err()
        .to_string();
    assert!(err.contains("blocked.ply: cannot write"), "{err}");
    let err = write_points_ply(&blocked, &PointCloud::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("blocked.ply: cannot write"), "{err}");
    assert!(blocked.join("keep").exists());
    let mut names: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["blocked.ply", "point_cloud.ply"]);
}

// ---- point clouds ------------------------------------------------------------------------

#[test]
fn points_round_trip_with_inria_header() {
    let dir = TempDir::new("ply-points").unwrap();
    let path = dir.path().join("input.ply");
    let mut rng = Pcg32::new(10, 0);
    for n in [0, 1, 1000] {
        let points = PointCloud {
            positions: (0..n)
                .map(|_| [(); 3].map(|_| f32::from_bits(rng.next_u32() & 0x3fff_ffff)))
                .collect(),
            colors: (0..n)
                .map(|_| [(); 3].map(|_| rng.below(256) as u8))
                .collect(),
        };
        write_points_ply(&path, &points).unwrap();
        let bytes = fs::read(&path).unwrap();
        let header = format!(
            "ply\nformat binary_little_endian 1.0\nelement vertex {n}\n\
             property float x\nproperty float y\nproperty float z\n\
             property float nx\nproperty float ny\nproperty float nz\n\
             property uchar red\nproperty uchar green\nproperty uchar blue\nend_header\n"
        );
        assert_eq!(&bytes[..header.len()], header.as_bytes());
        assert_eq!(bytes.len(), header.len() + 27 * n);
        assert_eq!(read_points_ply(&path).unwrap(), points);
    }
    let mismatched = PointCloud {
        positions: vec![[0.0; 3]; 2],
        colors: vec![[0; 3]],
    };
    let err = write_points_ply(&path, &mismatched)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("input.ply: cannot write: 2 positions but 1 colours"),
        "{err}"
    );
}

#[test]
fn reads_points_from_other_writers() {
    let dir = TempDir::new("ply-points-foreign").unwrap();
    let path = dir.path().join("points3d.ply");
    let element = TestElement {
        name: "vertex".into(),
        properties: [
            ("uchar", "blue"),
            ("double", "z"),
            ("float", "red"),
            ("double", "x"),
            ("int", "green"),
            ("float", "y"),
            ("float", "nx"),
        ]
        .iter()
        .map(|(t, n)| (t.to_string(), n.to_string()))
        .collect(),
        rows: vec![
            vec![
                vec![7.0],
                vec![3.5],
                vec![12.6],
                vec![1.25],
                vec![300.0],
                vec![-2.0],
                vec![0.0],
            ],
            vec![
                vec![255.0],
                vec![0.0],
                vec![-5.0],
                vec![0.5],
                vec![0.0],
                vec![8.0],
                vec![1.0],
            ],
        ],
    };
    for format in ["ascii", "binary_big_endian", "binary_little_endian"] {
        fs::write(&path, encode_ply(format, &[element.clone_element()], false)).unwrap();
        let points = read_points_ply(&path).unwrap_or_else(|e| panic!("{format}: {e}"));
        assert_eq!(
            points.positions,
            [[1.25, -2.0, 3.5], [0.5, 8.0, 0.0]],
            "{format}"
        );
        // Rounded and clamped to 0..255.
        assert_eq!(points.colors, [[13, 255, 7], [0, 0, 255]], "{format}");
    }
    let no_colour = vertex_element(1, &[("float", "x"), ("float", "y"), ("float", "z")]);
    fs::write(&path, encode_ply("ascii", &[no_colour], false)).unwrap();
    let err = read_points_ply(&path).unwrap_err().to_string();
    assert!(
        err.contains("points3d.ply: missing required vertex properties: red, green, blue"),
        "{err}"
    );
}
