//! The batch file and its expansion into a flat, ordered list of runs (the plan).
//!
//! ```ron
//! (
//!     output: "output/study",           // optional; default output/<file stem>
//!     runs: [
//!         // One run: a config file plus overrides.
//!         (name: "demo", config: "demo.ron", set: ["model.resolution=2"]),
//!         // A matrix: every scene x variant x seed, in that nesting order.
//!         (
//!             name: "m360",
//!             config: "default.ron",
//!             scenes: ["data/m360/garden", "data/m360/bicycle"],
//!             variants: [(name: "base"), (name: "aa", set: ["pipeline.antialiasing=true"])],
//!             seeds: [0, 1, 2],
//!             set: ["model.eval=true", "model.resolution=4"],
//!         ),
//!     ],
//! )
//! ```
//!
//! Each run's configuration, lowest precedence first: its config file (relative to the batch
//! file; none: the defaults), the scene (`model.source_path`), the entry's `set`, the
//! variant's `set`, the seed (`run.seed`), then the command line's `--set`. Scenes and other
//! paths in values are relative to the working directory, as in config files.
//!
//! A run is named by its entry's name, scene folder name, variant name and `seed<N>`, joined
//! by `/` (`m360/garden/aa/seed1`); an entry without scenes or name is named after its scene
//! folder. A run writes to `<output>/<name>` unless a `set` assigns `model.model_path`. The
//! batch evaluates every run at its last iteration (it adds it to `run.test_iterations`) so
//! the summary has final metrics. Names and output folders must be unique.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;

use crate::config::{Config, ConfigOverrides, resolve_training_config};

/// The batch file as written.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct BatchFile {
    /// Root of the runs' output folders (default `output/<batch file stem>`).
    #[serde(default)]
    pub output: Option<PathBuf>,
    /// Runs and matrices of runs, expanded in order.
    pub runs: Vec<BatchEntry>,
}

/// One entry of `runs`: a single run, or a matrix when it lists scenes, variants or seeds.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct BatchEntry {
    /// First part of the run names (default: none for a matrix, the scene folder otherwise).
    #[serde(default)]
    pub name: Option<String>,
    /// Config file, relative to the batch file; `None`: the defaults.
    #[serde(default)]
    pub config: Option<PathBuf>,
    /// `section.field=value` overrides, applied in order after the file and the scene.
    #[serde(default)]
    pub set: Vec<String>,
    /// Scene folders (each one's `model.source_path`); empty: the config's scene.
    #[serde(default)]
    pub scenes: Vec<PathBuf>,
    /// Variants of the configuration, each with its own overrides.
    #[serde(default)]
    pub variants: Vec<Variant>,
    /// `run.seed` values; each scene and variant is trained once per seed.
    #[serde(default)]
    pub seeds: Vec<u64>,
}

/// A named set of overrides, one axis of a matrix.
#[derive(Deserialize, Debug, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    pub name: String,
    #[serde(default)]
    pub set: Vec<String>,
}

/// Settings from the command line that apply to the whole plan.
#[derive(Debug, Default, Clone)]
pub struct PlanOptions {
    /// Replaces the file's `output`.
    pub output: Option<PathBuf>,
    /// `section.field=value` applied to every run, last.
    pub set: Vec<String>,
}

/// One run of the expanded batch.
#[derive(Debug, Clone)]
pub struct PlannedRun {
    /// Position in the plan (shards are taken by this index).
    pub index: usize,
    /// Unique label, also the output folder under the output root.
    pub name: String,
    /// The name without its seed: runs of one group differ only in their seed.
    pub group: String,
    /// Scene folder name.
    pub scene: String,
    pub variant: Option<String>,
    /// Where the run came from, for messages: `configs/x.ron, runs[2]`.
    pub origin: String,
    /// The complete training configuration.
    pub config: Config,
}

impl PlannedRun {
    pub fn seed(&self) -> u64 {
        self.config.run.seed
    }

    pub fn model_path(&self) -> &Path {
        &self.config.model.model_path
    }
}

/// The expanded batch.
#[derive(Debug)]
pub struct Plan {
    /// The batch file.
    pub file: PathBuf,
    /// Root of the output folders; the summary files go here.
    pub output: PathBuf,
    pub runs: Vec<PlannedRun>,
}

/// Parses batch file text (`origin` names it in errors). Optional fields take plain values
/// (`name: "demo"`), like configuration files.
pub fn parse_batch(text: &str, origin: &str) -> anyhow::Result<BatchFile> {
    let batch: BatchFile = crate::config::ron_options().from_str(text).map_err(|e| {
        anyhow::anyhow!(
            "{origin}:{}:{}: {}",
            e.span.start.line,
            e.span.start.col,
            e.code
        )
    })?;
    if batch.runs.is_empty() {
        bail!("{origin}: the batch lists no runs");
    }
    Ok(batch)
}

impl Plan {
    /// Reads `path` and expands it; every run's configuration is resolved and checked, so a
    /// mistake anywhere in the file stops the batch before any training.
    pub fn load(path: &Path, options: &PlanOptions) -> anyhow::Result<Plan> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let batch = parse_batch(&text, &path.display().to_string())?;
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "batch".into());
        let output = options
            .output
            .clone()
            .or(batch.output.clone())
            .unwrap_or_else(|| PathBuf::from("output").join(stem));
        let base = path.parent().unwrap_or(Path::new("."));
        let runs = expand(&batch, path, base, &output, &options.set)?;
        Ok(Plan {
            file: path.to_path_buf(),
            output,
            runs,
        })
    }
}

/// Expands every entry in order (see the module documentation).
fn expand(
    batch: &BatchFile,
    file: &Path,
    base: &Path,
    output: &Path,
    cli_set: &[String],
) -> anyhow::Result<Vec<PlannedRun>> {
    let mut runs = Vec::new();
    for (entry_index, entry) in batch.runs.iter().enumerate() {
        let origin = format!("{}, runs[{entry_index}]", file.display());
        let config_file = entry.config.as_ref().map(|p| {
            if p.is_relative() {
                base.join(p)
            } else {
                p.clone()
            }
        });
        let scenes: Vec<Option<&PathBuf>> = axis(&entry.scenes);
        let variants: Vec<Option<&Variant>> = axis(&entry.variants);
        let seeds: Vec<Option<&u64>> = axis(&entry.seeds);
        for scene in &scenes {
            for variant in &variants {
                for seed in &seeds {
                    let mut overrides = ConfigOverrides::new();
                    if let Some(scene) = scene {
                        overrides.push_value("model.source_path", scene, "scenes")?;
                    }
                    for assignment in &entry.set {
                        overrides.push_set(assignment)?;
                    }
                    if let Some(variant) = variant {
                        for assignment in &variant.set {
                            overrides.push_set(assignment)?;
                        }
                    }
                    if let Some(seed) = seed {
                        overrides.push_value("run.seed", seed, "seeds")?;
                    }
                    for assignment in cli_set {
                        overrides.push_set(assignment)?;
                    }
                    let mut run_origin = origin.clone();
                    if let Some(scene) = scene {
                        run_origin += &format!(", scene {}", scene.display());
                    }
                    if let Some(variant) = variant {
                        run_origin += &format!(", variant {}", variant.name);
                    }
                    if let Some(seed) = seed {
                        run_origin += &format!(", seed {seed}");
                    }
                    let mut config = resolve_training_config(config_file.as_deref(), &overrides)
                        .with_context(|| run_origin.clone())?;
                    let scene_name = folder_name(&config.model.source_path)
                        .with_context(|| format!("{run_origin}: cannot name the run"))?;
                    let mut parts: Vec<String> = Vec::new();
                    parts.extend(entry.name.clone());
                    if scene.is_some() || entry.name.is_none() {
                        parts.push(scene_name.clone());
                    }
                    let group_parts = parts.len() + usize::from(variant.is_some());
                    parts.extend(variant.map(|v| v.name.clone()));
                    parts.extend(seed.map(|s| format!("seed{s}")));
                    let name = parts.join("/");
                    check_name(&name).with_context(|| run_origin.clone())?;
                    if overrides.origin_of("model.model_path").is_none() {
                        config.model.model_path = output.join(&name);
                    }
                    let last = config.optimization.iterations;
                    if !config.run.test_iterations.contains(&last) {
                        config.run.test_iterations.push(last);
                    }
                    runs.push(PlannedRun {
                        index: runs.len(),
                        group: parts[..group_parts].join("/"),
                        name,
                        scene: scene_name,
                        variant: variant.map(|v| v.name.clone()),
                        origin: run_origin,
                        config,
                    });
                }
            }
        }
    }
    check_unique(&runs)?;
    Ok(runs)
}

/// The values of one matrix axis; an empty axis is one step with no value.
fn axis<T>(values: &[T]) -> Vec<Option<&T>> {
    if values.is_empty() {
        vec![None]
    } else {
        values.iter().map(Some).collect()
    }
}

/// The last component of a scene folder (`data/m360/garden` -> `garden`).
fn folder_name(path: &Path) -> anyhow::Result<String> {
    match path.components().next_back() {
        Some(Component::Normal(name)) => Ok(name.to_string_lossy().into_owned()),
        _ => bail!(
            "the scene folder {} has no name to use; give the entry a name",
            path.display()
        ),
    }
}

/// A run name is a relative path of plain parts (it becomes a folder under the output root).
fn check_name(name: &str) -> anyhow::Result<()> {
    let path = Path::new(name);
    let plain = path.components().all(|c| matches!(c, Component::Normal(_)));
    if name.is_empty() || !plain || name.split('/').any(str::is_empty) {
        bail!("the run name \"{name}\" must be a relative path of plain folder names");
    }
    Ok(())
}

/// Two runs may not share a name or an output folder.
fn check_unique(runs: &[PlannedRun]) -> anyhow::Result<()> {
    let mut names: HashMap<&str, &PlannedRun> = HashMap::new();
    let mut folders: HashMap<&Path, &PlannedRun> = HashMap::new();
    for run in runs {
        if let Some(first) = names.insert(&run.name, run) {
            bail!(
                "two runs are named \"{}\" ({} and {}): give the entries different names",
                run.name,
                first.origin,
                run.origin
            );
        }
        if let Some(first) = folders.insert(run.model_path(), run) {
            bail!(
                "two runs write to {} ({} and {}): give them different model.model_path",
                run.model_path().display(),
                first.origin,
                run.origin
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsutil::TempDir;

    fn plan(text: &str, options: &PlanOptions) -> anyhow::Result<Plan> {
        let dir = TempDir::new("batch-plan")?;
        let path = dir.path().join("study.ron");
        std::fs::write(&path, text)?;
        std::fs::write(
            dir.path().join("short.ron"),
            "(optimization: (iterations: 50), run: (test_iterations: [20]))",
        )?;
        Plan::load(&path, options)
    }

    #[test]
    fn optional_fields_take_plain_values() {
        let batch = parse_batch(
            r#"(output: "out", runs: [(name: "demo", config: "demo.ron", set: ["run.seed=1"])])"#,
            "b.ron",
        )
        .unwrap();
        assert_eq!(batch.output, Some(PathBuf::from("out")));
        assert_eq!(batch.runs[0].name.as_deref(), Some("demo"));
        assert_eq!(batch.runs[0].config, Some(PathBuf::from("demo.ron")));
        // `Some(...)` is accepted too.
        let batch = parse_batch(r#"(runs: [(name: Some("x"))])"#, "b.ron").unwrap();
        assert_eq!(batch.runs[0].name.as_deref(), Some("x"));
    }

    #[test]
    fn parse_errors_name_the_file_and_position() {
        let error = parse_batch("(runs: [(nmae: \"x\")])", "b.ron").unwrap_err();
        let message = format!("{error:#}");
        assert!(message.starts_with("b.ron:1:"), "{message}");
        assert!(message.contains("nmae"), "{message}");
        let error = parse_batch("(runs: [])", "b.ron").unwrap_err();
        assert!(format!("{error}").contains("no runs"));
    }

    #[test]
    fn a_matrix_expands_scene_variant_seed_in_order() {
        let plan = plan(
            r#"(
                output: "out/study",
                runs: [
                    (name: "single", config: "short.ron", set: ["model.source_path=\"data/one\""]),
                    (
                        name: "m",
                        config: "short.ron",
                        scenes: ["data/garden", "data/room"],
                        variants: [(name: "base"), (name: "aa", set: ["pipeline.antialiasing=true"])],
                        seeds: [0, 7],
                        set: ["model.resolution=4", "run.seed=99"],
                    ),
                    (config: "short.ron", set: ["model.source_path=\"data/plain\""]),
                ],
            )"#,
            &PlanOptions {
                output: None,
                set: vec!["optimization.iterations=60".into()],
            },
        )
        .unwrap();
        let names: Vec<&str> = plan.runs.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "single",
                "m/garden/base/seed0",
                "m/garden/base/seed7",
                "m/garden/aa/seed0",
                "m/garden/aa/seed7",
                "m/room/base/seed0",
                "m/room/base/seed7",
                "m/room/aa/seed0",
                "m/room/aa/seed7",
                "plain",
            ]
        );
        assert!(plan.runs.iter().enumerate().all(|(i, r)| r.index == i));
        let run = &plan.runs[4];
        assert_eq!(run.group, "m/garden/aa");
        assert_eq!(run.scene, "garden");
        assert_eq!(run.variant.as_deref(), Some("aa"));
        // The seed axis wins over the entry's run.seed; the command line wins over everything.
        assert_eq!(run.seed(), 7);
        assert!(run.config.pipeline.antialiasing);
        assert!(!plan.runs[2].config.pipeline.antialiasing);
        assert_eq!(run.config.model.resolution, 4);
        assert_eq!(run.config.model.source_path, PathBuf::from("data/garden"));
        assert_eq!(run.config.optimization.iterations, 60);
        assert_eq!(run.model_path(), Path::new("out/study/m/garden/aa/seed7"));
        // The last iteration is always evaluated (and saved).
        assert_eq!(run.config.run.test_iterations, [20, 60]);
        assert!(run.config.run.save_iterations.contains(&60));
        assert_eq!(plan.runs[0].group, "single");
        assert_eq!(plan.runs[9].scene, "plain");
        assert!(
            run.origin
                .contains("runs[1], scene data/garden, variant aa, seed 7")
        );
    }

    #[test]
    fn output_folders_default_to_the_file_stem_and_yield_to_explicit_paths() {
        let runs = r#"(runs: [
            (name: "a", set: ["model.source_path=\"s\""]),
            (name: "b", set: ["model.source_path=\"s\"", "model.model_path=\"elsewhere/b\""]),
        ])"#;
        let plan = plan(runs, &PlanOptions::default()).unwrap();
        assert_eq!(plan.output, PathBuf::from("output/study"));
        assert_eq!(plan.runs[0].model_path(), Path::new("output/study/a"));
        assert_eq!(plan.runs[1].model_path(), Path::new("elsewhere/b"));
        let options = PlanOptions {
            output: Some("tmp/o".into()),
            set: vec![],
        };
        let plan = super::tests::plan(runs, &options).unwrap();
        assert_eq!(plan.runs[0].model_path(), Path::new("tmp/o/a"));
    }

    #[test]
    fn duplicate_names_and_folders_are_errors() {
        let error = plan(
            r#"(runs: [(scenes: ["a/x", "b/x"])])"#,
            &PlanOptions::default(),
        )
        .unwrap_err();
        let message = format!("{error:#}");
        assert!(message.contains("two runs are named \"x\""), "{message}");
        assert!(message.contains("scene a/x") && message.contains("scene b/x"));

        let error = plan(
            r#"(runs: [
                (name: "a", set: ["model.source_path=\"s\"", "model.model_path=\"o\""]),
                (name: "b", set: ["model.source_path=\"s\"", "model.model_path=\"o\""]),
            ])"#,
            &PlanOptions::default(),
        )
        .unwrap_err();
        assert!(format!("{error:#}").contains("two runs write to o"));
    }

    #[test]
    fn a_bad_run_stops_the_plan_naming_the_run() {
        let error = plan(
            r#"(runs: [(name: "a", scenes: ["s"], seeds: [1], set: ["optimization.lambda_dssim=2"])])"#,
            &PlanOptions::default(),
        )
        .unwrap_err();
        let message = format!("{error:#}");
        assert!(message.contains("runs[0], scene s, seed 1"), "{message}");
        assert!(message.contains("lambda_dssim"), "{message}");
        let error = plan(
            r#"(runs: [(name: "../up", set: ["model.source_path=\"s\""])])"#,
            &PlanOptions::default(),
        )
        .unwrap_err();
        assert!(format!("{error:#}").contains("plain folder names"));
        let error = plan(
            r#"(runs: [(config: "missing.ron", set: ["model.source_path=\"s\""])])"#,
            &PlanOptions::default(),
        )
        .unwrap_err();
        assert!(format!("{error:#}").contains("missing.ron"), "{error:#}");
    }
}
