//! Embeds every `shaders/*.wgsl` file into the binary, so a release build runs from anywhere
//! (the device machine has no source tree) and `#include` finds its files without a search path.

use std::{env, fs, path::Path};

fn main() {
    let out_dir = env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    let manifest = env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let shader_dir = Path::new(&manifest).join("shaders");
    println!("cargo:rerun-if-changed={}", shader_dir.display());

    let mut names: Vec<String> = fs::read_dir(&shader_dir)
        .expect("shaders/ exists")
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".wgsl"))
        .collect();
    names.sort();

    let mut table = String::from("pub(crate) const SHADER_SOURCES: &[(&str, &str)] = &[\n");
    for name in &names {
        let path = shader_dir.join(name);
        println!("cargo:rerun-if-changed={}", path.display());
        table.push_str(&format!(
            "    ({name:?}, include_str!({:?})),\n",
            path.display().to_string()
        ));
    }
    table.push_str("];\n");
    fs::write(Path::new(&out_dir).join("shader_sources.rs"), table).expect("write shader table");
}
