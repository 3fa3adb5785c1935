//! WGSL sources and a small preprocessor.
//!
//! Every file in `shaders/` is embedded at build time (see `build.rs`). Kernels are specialised
//! for the adapter with a handful of directives, so one source serves the fast path (float
//! atomics, subgroups) and the fallback:
//!
//! - `#include "file.wgsl"`: pastes another embedded file (each file at most once per shader);
//! - `#ifdef NAME` / `#ifndef NAME` / `#else` / `#endif`: keeps or drops lines by definition;
//! - `#define NAME` inside a shader is not supported: definitions come from [`ShaderDefs`].
//!
//! Numeric knobs such as workgroup sizes use WGSL `override` constants instead of text
//! substitution, so naga checks them like any other code.

use std::collections::BTreeSet;
use std::fmt;

use super::GpuCapabilities;

include!(concat!(env!("OUT_DIR"), "/shader_sources.rs"));

/// The source text of an embedded shader file, by file name (`"project.wgsl"`).
pub fn shader_source(name: &str) -> Option<&'static str> {
    SHADER_SOURCES
        .iter()
        .find(|(file, _)| *file == name)
        .map(|(_, source)| *source)
}

/// Kernel development: with `SPLATFORGE_SHADER_DIR=dir` set, a shader file present in `dir`
/// is read from there instead of the embedded copy, so edited kernels run (on the GPU machine
/// too) without rebuilding. Unset, nothing is read from disk.
fn override_source(name: &str) -> Option<String> {
    let dir = std::env::var_os("SPLATFORGE_SHADER_DIR")?;
    std::fs::read_to_string(std::path::Path::new(&dir).join(name)).ok()
}

/// Names of every embedded shader file.
pub fn shader_names() -> impl Iterator<Item = &'static str> {
    SHADER_SOURCES.iter().map(|(name, _)| *name)
}

/// The set of names a shader is specialised with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShaderDefs(BTreeSet<String>);

impl ShaderDefs {
    pub fn new() -> Self {
        Self::default()
    }

    /// Definitions for an adapter's capabilities: `FLOAT_ATOMICS` and `SUBGROUPS` when present.
    pub fn for_capabilities(capabilities: &GpuCapabilities) -> Self {
        let mut defs = Self::new();
        if capabilities.float32_atomics {
            defs.define("FLOAT_ATOMICS");
        }
        if capabilities.subgroups {
            defs.define("SUBGROUPS");
        }
        defs
    }

    pub fn define(&mut self, name: &str) -> &mut Self {
        self.0.insert(name.to_owned());
        self
    }

    pub fn with(mut self, name: &str) -> Self {
        self.define(name);
        self
    }

    pub fn is_defined(&self, name: &str) -> bool {
        self.0.contains(name)
    }
}

/// A malformed directive or a missing include.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShaderError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

impl fmt::Display for ShaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "shaders/{}:{}: {}", self.file, self.line, self.message)
    }
}

impl std::error::Error for ShaderError {}

/// Expands `#include` and conditional directives of the embedded file `name`.
pub fn preprocess(name: &str, defs: &ShaderDefs) -> Result<String, ShaderError> {
    let mut out = String::new();
    let mut included = BTreeSet::new();
    expand(name, defs, &mut included, &mut out, None)?;
    Ok(out)
}

/// Like [`preprocess`] but for source text that is not an embedded file (tests, tools).
pub fn preprocess_text(label: &str, text: &str, defs: &ShaderDefs) -> Result<String, ShaderError> {
    let mut out = String::new();
    let mut included = BTreeSet::new();
    expand(label, defs, &mut included, &mut out, Some(text))?;
    Ok(out)
}

fn expand(
    name: &str,
    defs: &ShaderDefs,
    included: &mut BTreeSet<String>,
    out: &mut String,
    text: Option<&str>,
) -> Result<(), ShaderError> {
    if !included.insert(name.to_owned()) {
        return Ok(());
    }
    let override_source = text.is_none().then(|| override_source(name)).flatten();
    let source = match (text, &override_source) {
        (Some(text), _) => text,
        (None, Some(file)) => file.as_str(),
        (None, None) => shader_source(name).ok_or_else(|| ShaderError {
            file: name.to_owned(),
            line: 0,
            message: "no such embedded shader file".into(),
        })?,
    };
    // Each entry: (this branch is active, some branch of this #if was already taken).
    let mut stack: Vec<(bool, bool)> = Vec::new();
    let error = |line: usize, message: &str| ShaderError {
        file: name.to_owned(),
        line,
        message: message.to_owned(),
    };
    for (index, line) in source.lines().enumerate() {
        let line_no = index + 1;
        let trimmed = line.trim_start();
        let active = stack.iter().all(|(on, _)| *on);
        if let Some(rest) = trimmed.strip_prefix("#ifdef ") {
            let on = defs.is_defined(rest.trim());
            stack.push((on, on));
        } else if let Some(rest) = trimmed.strip_prefix("#ifndef ") {
            let on = !defs.is_defined(rest.trim());
            stack.push((on, on));
        } else if trimmed.starts_with("#else") {
            let top = stack
                .last_mut()
                .ok_or_else(|| error(line_no, "#else without #ifdef"))?;
            *top = (!top.1, true);
        } else if trimmed.starts_with("#endif") {
            stack
                .pop()
                .ok_or_else(|| error(line_no, "#endif without #ifdef"))?;
        } else if let Some(rest) = trimmed.strip_prefix("#include ") {
            if active {
                let file = rest.trim().trim_matches('"');
                expand(file, defs, included, out, None).map_err(|mut e| {
                    if e.line == 0 {
                        e = error(line_no, &format!("cannot include {file:?}: {}", e.message));
                    }
                    e
                })?;
            }
        } else if trimmed.starts_with('#') {
            return Err(error(line_no, &format!("unknown directive {trimmed:?}")));
        } else if active {
            out.push_str(line);
            out.push('\n');
        } else {
            // Keep line numbers of naga's messages meaningful for the first file.
            out.push('\n');
        }
    }
    if !stack.is_empty() {
        return Err(error(source.lines().count(), "unterminated #ifdef"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditionals_pick_the_defined_branch() {
        let text = "a\n#ifdef X\nb\n#else\nc\n#endif\n#ifndef X\nd\n#endif\ne\n";
        let with_x = preprocess_text("t", text, &ShaderDefs::new().with("X")).unwrap();
        let without = preprocess_text("t", text, &ShaderDefs::new()).unwrap();
        let kept = |s: &str| {
            s.lines()
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join("")
        };
        assert_eq!(kept(&with_x), "abe");
        assert_eq!(kept(&without), "acde");
    }

    #[test]
    fn nested_conditionals() {
        let text = "#ifdef A\n#ifdef B\nab\n#else\na\n#endif\n#else\nnone\n#endif\n";
        let kept = |defs: ShaderDefs| {
            preprocess_text("t", text, &defs)
                .unwrap()
                .lines()
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join(",")
        };
        assert_eq!(kept(ShaderDefs::new().with("A").with("B")), "ab");
        assert_eq!(kept(ShaderDefs::new().with("A")), "a");
        assert_eq!(kept(ShaderDefs::new().with("B")), "none");
    }

    #[test]
    fn malformed_directives_are_errors() {
        assert!(preprocess_text("t", "#endif\n", &ShaderDefs::new()).is_err());
        assert!(preprocess_text("t", "#ifdef A\n", &ShaderDefs::new()).is_err());
        assert!(preprocess_text("t", "#pragma x\n", &ShaderDefs::new()).is_err());
        let missing = preprocess_text("t", "#include \"nope.wgsl\"\n", &ShaderDefs::new());
        assert!(missing.unwrap_err().message.contains("nope.wgsl"));
    }

    #[test]
    fn every_embedded_shader_preprocesses_in_both_variants() {
        for name in shader_names() {
            for defs in [
                ShaderDefs::new(),
                ShaderDefs::new().with("FLOAT_ATOMICS").with("SUBGROUPS"),
            ] {
                preprocess(name, &defs).unwrap_or_else(|e| panic!("{e}"));
            }
        }
    }
}
