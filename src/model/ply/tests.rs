//! Tests of reading and writing PLY files, with files built the way other tools write them.

use super::header::ScalarType;
use super::*;
use crate::dataset::PointCloud;
use crate::fsutil::TempDir;
use crate::model::{Gaussians, ParamGroup};
use crate::rng::Pcg32;
use crate::sh;
use std::fs;

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

// ---- malformed files ---------------------------------------------------------------------

fn standard_header(format: &str, count: &str, degree: u32) -> String {
    let mut h = format!("ply\nformat {format} 1.0\nelement vertex {count}\n");
    for name in gaussian_property_names(degree) {
        h.push_str(&format!("property float {name}\n"));
    }
    h + "end_header\n"
}

/// The error of reading `bytes` as a PLY (it must name the file).
fn read_error(dir: &TempDir, bytes: &[u8]) -> String {
    let error = read_bytes(dir, "bad.ply", bytes)
        .expect_err("the read fails")
        .to_string();
    assert!(
        error.contains("bad.ply: "),
        "'{error}' does not name the file"
    );
    error
}

fn assert_error(dir: &TempDir, bytes: &[u8], expected: &[&str], what: &str) {
    let err = match read_bytes(dir, "bad.ply", bytes) {
        Ok(_) => panic!("{what}: read succeeded"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("bad.ply: "),
        "{what}: '{err}' does not name the file"
    );
    for part in expected {
        assert!(err.contains(part), "{what}: '{err}' does not say '{part}'");
    }
}

#[test]
fn malformed_headers_are_errors_that_name_the_file() {
    let dir = TempDir::new("ply-bad-header").unwrap();
    let valid = standard_header("binary_little_endian", "0", 0);
    let with = |from: &str, to: &str| valid.replacen(from, to, 1);
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        ("empty", String::new(), vec!["empty file"]),
        (
            "not ply",
            "hello\nworld\n".into(),
            vec!["not a PLY file", "hello"],
        ),
        (
            "no end_header",
            "ply\nformat ascii 1.0\nelement vertex 1\n".into(),
            vec!["truncated header"],
        ),
        (
            "unknown format",
            with("binary_little_endian", "binary_middle_endian"),
            vec!["line 2", "unknown format 'binary_middle_endian'"],
        ),
        (
            "format line without version",
            with("format binary_little_endian 1.0", "format ascii"),
            vec!["line 2", "format <encoding> 1.0"],
        ),
        (
            "no format",
            with("format binary_little_endian 1.0\n", ""),
            vec!["no 'format' line"],
        ),
        (
            "negative count",
            with("element vertex 0", "element vertex -5"),
            vec!["line 3", "'-5', not a non-negative integer"],
        ),
        (
            "non-numeric count",
            with("element vertex 0", "element vertex lots"),
            vec!["'lots'"],
        ),
        (
            "count above u64",
            with("element vertex 0", "element vertex 99999999999999999999"),
            vec!["not a non-negative integer"],
        ),
        (
            "element without count",
            with("element vertex 0", "element vertex"),
            vec!["element <name> <count>"],
        ),
        (
            "property before element",
            with("element vertex 0\n", "property float q\nelement vertex 0\n"),
            vec!["line 3", "before any 'element'"],
        ),
        (
            "unknown type",
            with("property float x\n", "property float128 x\n"),
            vec!["line 4", "unknown property type 'float128'"],
        ),
        (
            "float list length",
            with("property float x\n", "property list float int x\n"),
            vec!["not an integer type"],
        ),
        (
            "malformed property",
            with("property float x\n", "property float\n"),
            vec!["expected 'property <type> <name>'"],
        ),
        (
            "unknown keyword",
            with("end_header", "frobnicate 3\nend_header"),
            vec!["unknown keyword 'frobnicate'"],
        ),
        (
            "binary junk line",
            with("end_header", "\u{1}\u{2}\u{3}\nend_header"),
            vec!["line 21 is not text", "no 'end_header'"],
        ),
        (
            "duplicate property",
            with("property float y\n", "property float x\n"),
            vec!["property 'x' of element 'vertex' is declared twice"],
        ),
        (
            "duplicate element",
            with("end_header", "element vertex 0\nend_header"),
            vec!["element 'vertex' is declared twice"],
        ),
        (
            "no vertex element",
            "ply\nformat ascii 1.0\nelement face 0\nproperty list uchar int vertex_indices\n\
             end_header\n"
                .into(),
            vec!["no 'vertex' element", "face"],
        ),
        (
            "compressed",
            "ply\nformat binary_little_endian 1.0\nelement chunk 0\nproperty float min_x\n\
             element vertex 0\nproperty uint packed_position\nend_header\n"
                .into(),
            vec!["compressed"],
        ),
        (
            "list in vertex",
            with("end_header", "property list uchar float extra\nend_header"),
            vec!["'extra' is a list"],
        ),
    ];
    for (what, text, expected) in cases {
        assert_error(&dir, text.as_bytes(), &expected, what);
    }
    // A header that never ends within 1 MiB.
    let mut long = "ply\nformat ascii 1.0\n".to_string();
    while long.len() < (1 << 20) + 100 {
        long.push_str("comment padding padding padding padding padding\n");
    }
    assert_error(&dir, long.as_bytes(), &["1 MiB"], "endless header");
    // The 1 MiB limit falls in the middle of a comment line: the message says the header
    // is too long, not that `commen` is an unknown keyword.
    let mut cut = "ply\nformat ascii 1.0\n".to_string();
    while cut.len() < (1 << 20) - 3 {
        cut.push_str("comment x\n");
    }
    cut.push_str("comment padding\nend_header\n");
    let error = read_error(&dir, cut.as_bytes());
    assert!(error.contains("longer than 1 MiB"), "{error}");
    assert!(!error.contains("unknown keyword"), "{error}");
    // A header whose `end_header` is missing runs into the binary data: said so, without
    // printing the binary bytes.
    let mut binary = b"ply\nformat binary_little_endian 1.0\nelement vertex 2\n\
                       property float x\n"
        .to_vec();
    binary.extend([0x00, 0x00, 0x80, 0x3f, 0xff, 0xfe, 0x07, 0x0a, 0x00, 0x40]);
    let error = read_error(&dir, &binary);
    assert!(error.contains("no 'end_header'"), "{error}");
    assert!(
        !error.chars().any(|c| c.is_control() || c == '\u{fffd}'),
        "{error:?}"
    );
    // A file that does not exist.
    let missing = dir.path().join("missing.ply");
    let err = read_gaussians_ply(&missing).unwrap_err().to_string();
    assert!(err.contains("missing.ply: cannot read"), "{err}");
}

#[test]
fn missing_and_misnumbered_properties_are_named() {
    let dir = TempDir::new("ply-bad-props").unwrap();
    let mut properties = standard_properties(0, "float");
    properties.retain(|p| p.1 != "opacity" && p.1 != "rot_3");
    let bytes = encode_ply("ascii", &[vertex_element(1, &as_refs(&properties))], false);
    assert_error(
        &dir,
        &bytes,
        &["missing required vertex properties: opacity, rot_3"],
        "missing",
    );

    let mut properties = standard_properties(1, "float");
    properties.push(("float", "f_rest_9".into()));
    let bytes = encode_ply("ascii", &[vertex_element(1, &as_refs(&properties))], false);
    assert_error(
        &dir,
        &bytes,
        &["10 f_rest properties", "0, 9, 24 or 45"],
        "10 f_rest",
    );

    let mut properties = standard_properties(1, "float");
    properties.retain(|p| p.1 != "f_rest_4");
    properties.push(("float", "f_rest_12".into()));
    let bytes = encode_ply("ascii", &[vertex_element(1, &as_refs(&properties))], false);
    assert_error(
        &dir,
        &bytes,
        &["found f_rest_12", "missing f_rest_4"],
        "misnumbered",
    );

    let mut properties = standard_properties(0, "float");
    properties.push(("float", "f_rest_x".into()));
    let bytes = encode_ply("ascii", &[vertex_element(1, &as_refs(&properties))], false);
    assert_error(&dir, &bytes, &["'f_rest_x'"], "odd f_rest name");

    // A plain point cloud gets a hint.
    let points = vertex_element(
        2,
        &[
            ("float", "x"),
            ("float", "y"),
            ("float", "z"),
            ("uchar", "red"),
        ],
    );
    let bytes = encode_ply("binary_little_endian", &[points], false);
    assert_error(
        &dir,
        &bytes,
        &["f_dc_0", "plain point cloud"],
        "point cloud",
    );
}

#[test]
fn data_that_does_not_match_the_header_is_an_error() {
    let dir = TempDir::new("ply-bad-data").unwrap();
    // The example from the brief: 1000 degree-3 vertices declared, 1200 bytes present.
    let mut bytes = standard_header("binary_little_endian", "1000", 3).into_bytes();
    bytes.extend(vec![0u8; 1200]);
    assert_error(
        &dir,
        &bytes,
        &[
            "truncated: header declares 1000 vertices of 248 bytes but only 1200 bytes of \
           data follow",
        ],
        "truncated binary",
    );
    // Same, big endian, and with a count whose byte size overflows u64.
    let mut bytes = standard_header("binary_big_endian", "18446744073709551615", 0).into_bytes();
    bytes.extend(vec![0u8; 100]);
    assert_error(
        &dir,
        &bytes,
        &["truncated", "18446744073709551615"],
        "huge count",
    );
    // Too much data.
    let mut bytes = standard_header("binary_little_endian", "1", 0).into_bytes();
    bytes.extend(vec![0u8; 68 + 3]);
    assert_error(
        &dir,
        &bytes,
        &["3 bytes of data after the 68 bytes"],
        "trailing bytes",
    );
    // A list element before the vertices that runs past the end.
    let header = "ply\nformat binary_little_endian 1.0\nelement tags 2\n\
                  property list uchar int ids\n"
        .to_string()
        + standard_header("binary_little_endian", "0", 0)
            .split_once("1.0\n")
            .unwrap()
            .1;
    let mut bytes = header.clone().into_bytes();
    bytes.extend([3u8, 0, 0, 0, 0]);
    assert_error(&dir, &bytes, &["truncated", "tags"], "truncated list");
    // A negative list length.
    let header_char = header.replace("list uchar int", "list char int");
    let mut bytes = header_char.into_bytes();
    bytes.push(0xff);
    assert_error(&dir, &bytes, &["negative list length -1"], "negative list");

    // ASCII: non-numeric, out of range, too few values, too many.
    let properties = standard_properties(0, "float");
    let mut refs = as_refs(&properties);
    refs.push(("uchar", "red"));
    let good = String::from_utf8(encode_ply("ascii", &[vertex_element(2, &refs)], false)).unwrap();
    let last_line = good.lines().last().unwrap().to_string();
    let first_value = last_line.split(' ').next().unwrap();
    let replace_last = |new_line: String| good.replace(&last_line, &new_line);
    // 24 header lines (with the comment and obj_info lines), data on lines 25 and 26.
    let non_numeric = replace_last(last_line.replacen(first_value, "abc", 1));
    assert_error(
        &dir,
        non_numeric.as_bytes(),
        &[
            "line 26",
            "vertex 1 property 'x': 'abc' is not a valid float",
        ],
        "ascii non-numeric",
    );
    let red = last_line.rsplit(' ').next().unwrap();
    let out_of_range = replace_last(format!("{}300", last_line.strip_suffix(red).unwrap()));
    assert_error(
        &dir,
        out_of_range.as_bytes(),
        &["'300' is not a valid uchar"],
        "range",
    );
    let short = replace_last(last_line.rsplitn(3, ' ').last().unwrap().to_string());
    assert_error(
        &dir,
        short.as_bytes(),
        &["truncated", "vertex 1 of the 2"],
        "short",
    );
    let long = good.clone() + "1 2 3\n";
    assert_error(
        &dir,
        long.as_bytes(),
        &["unexpected '1' after the last of the 2"],
        "long",
    );
    let not_text = good.replacen(first_value, "\u{ff}", 1).into_bytes();
    let mut not_utf8 = not_text.clone();
    let at = not_utf8
        .windows(2)
        .position(|w| w == "\u{ff}".as_bytes())
        .unwrap();
    not_utf8[at] = 0xff;
    not_utf8[at + 1] = 0xfe;
    assert_error(&dir, &not_utf8, &["not text"], "ascii not utf-8");
}

/// Every truncation of a valid binary file is an error; random corruption never panics.
#[test]
fn truncated_and_corrupted_files_never_panic() {
    let dir = TempDir::new("ply-fuzz").unwrap();
    let path = dir.path().join("fuzz.ply");
    let mut rng = Pcg32::new(8, 0);
    let g = random_bit_gaussians(3, 1, &mut rng);
    write_gaussians_ply(&path, &g).unwrap();
    let binary = fs::read(&path).unwrap();
    for len in 0..binary.len() {
        let result = read_bytes(&dir, "fuzz.ply", &binary[..len]);
        let err = result
            .expect_err("a truncated file must not load")
            .to_string();
        assert!(err.contains("fuzz.ply: "), "{err}");
    }
    let properties = standard_properties(1, "double");
    let list_tags = TestElement {
        name: "tags".into(),
        properties: vec![("list uchar int".into(), "ids".into())],
        rows: vec![vec![vec![1.0, 2.0]], vec![vec![3.0]]],
    };
    let ascii = encode_ply(
        "ascii",
        &[
            list_tags.clone_element(),
            vertex_element(3, &as_refs(&properties)),
        ],
        false,
    );
    let big = encode_ply(
        "binary_big_endian",
        &[list_tags, vertex_element(3, &as_refs(&properties))],
        false,
    );
    for len in 0..ascii.len() {
        // A cut inside the last number may still parse; only the absence of panics counts.
        let _ = read_bytes(&dir, "fuzz.ply", &ascii[..len]);
    }
    for original in [&binary, &ascii, &big] {
        for _ in 0..700 {
            let mut bytes = original.clone();
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(bytes.len() as u32) as usize;
                bytes[at] = rng.below(256) as u8;
            }
            if rng.below(4) == 0 {
                bytes.truncate(rng.below(bytes.len() as u32) as usize);
            }
            let _ = read_bytes(&dir, "fuzz.ply", &bytes);
            let _ = {
                fs::write(&path, &bytes).unwrap();
                read_points_ply(&path)
            };
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
