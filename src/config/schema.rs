//! The configuration schema: every field with its type, default and documentation.
//!
//! Each section is declared once through [`config_section!`], which writes the struct, its
//! `Default`, the by-name field setter used by `--set` and the field table the editor's
//! inspector shows: adding a field is one line (its default and whether it can change during a
//! run, plus its doc comment) in the section below, and, if its values have limits, one check
//! in [`Config::problems`].

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{ConfigError, Problem, parse_field_value, unknown_name_message};

/// Declares one configuration section: `field: Type = default; mutability,` per field, with
/// the field's doc comment.
///
/// Generates the struct (serde: missing fields take defaults, unknown fields are errors), its
/// `Default`, the list of field names, `field_type`, `field_info` (key, type, doc comment and
/// mutability), `field_ron` (a field's value written in RON) and `set_field_from_ron`, which parses one
/// field's value from RON text into the field's own type. The editor's inspector is built
/// from these, so a new field appears there with its documentation.
macro_rules! config_section {
    (
        $(#[$struct_attribute:meta])*
        pub struct $name:ident in $section:literal {
            $(
                $(#[doc = $doc:literal])*
                $field:ident: $type:ty = $default:expr; $mutability:expr,
            )*
        }
    ) => {
        $(#[$struct_attribute])*
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct $name {
            $(
                $(#[doc = $doc])*
                pub $field: $type,
            )*
        }

        impl Default for $name {
            fn default() -> Self {
                Self {
                    $($field: $default,)*
                }
            }
        }

        impl $name {
            /// The names of this section's fields, in declaration order.
            pub const FIELDS: &'static [&'static str] = &[$(stringify!($field)),*];

            /// The Rust type of field `field` as written in the schema (`"Vec<u32>"`).
            pub fn field_type(field: &str) -> Option<&'static str> {
                match field {
                    $(stringify!($field) => Some(stringify!($type)),)*
                    _ => None,
                }
            }

            /// The name of this section in configuration files.
            pub const SECTION: &'static str = $section;

            /// Field `field` with its key, type, documentation and mutability.
            pub fn field_info(field: &str) -> Option<FieldInfo> {
                match field {
                    $(stringify!($field) => Some(FieldInfo {
                        key: concat!($section, ".", stringify!($field)),
                        section: $section,
                        name: stringify!($field),
                        rust_type: stringify!($type),
                        doc: concat!($($doc, "\n",)* ""),
                        mutability: $mutability,
                    }),)*
                    _ => None,
                }
            }

            /// The value of field `field` written in RON (as a configuration file holds it).
            fn field_ron(&self, field: &str) -> Option<Result<String, String>> {
                match field {
                    $(stringify!($field) => Some(
                        ron::to_string(&self.$field).map_err(|error| error.to_string())
                    ),)*
                    _ => None,
                }
            }

            /// Sets field `field` from its value written in RON (string fields also take a
            /// bare word if `bare_words`). `None` if there is no such field; `Some(Err(why))` if
            /// the text is not a valid value of the field's type.
            fn set_field_from_ron(
                &mut self,
                field: &str,
                text: &str,
                bare_words: bool,
            ) -> Option<Result<(), String>> {
                match field {
                    $(stringify!($field) => Some(
                        parse_field_value(text, bare_words).map(|value| self.$field = value)
                    ),)*
                    _ => None,
                }
            }
        }
    };
}

/// Whether a field may change while a run is going (the editor's inspector applies live edits
/// at the next step and shows the reason for the others).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mutability {
    /// Every step reads it: an edit applies from the next step on.
    Live,
    /// Fixed when a run starts, for the reason given.
    Restart(&'static str),
}

use Mutability::{Live, Restart};

/// Why the dataset fields need a restart.
const LOADED_WITH_SCENE: &str = "the scene's images are loaded with it when the run starts";

config_section! {
    /// The scene and the model (inria's `ModelParams`).
    pub struct ModelParams in "model" {
        /// Highest spherical-harmonics degree of the colours, 0..=3 (16 coefficients per
        /// channel at 3). The reference starts at degree 0 and raises the active degree by one
        /// every 1000 iterations up to this. Flag: `--sh_degree`.
        sh_degree: u32 = 3; Restart("the colour buffers of every Gaussian are sized for it when the run starts"),
        /// Scene folder: a COLMAP layout (`images/`, `sparse/0/`) or a Blender/NeRF-synthetic
        /// one (`transforms_train.json`). Required for training. Flag: `-s/--source_path`.
        source_path: PathBuf = PathBuf::new(); Restart(LOADED_WITH_SCENE),
        /// Output folder of the run (PLY snapshots, `config.ron`, `cameras.json`). Empty: the
        /// reference's `output/<10 random hex characters>`. Flag: `-m/--model_path`.
        model_path: PathBuf = PathBuf::new(); Restart("a run writes to the folder it started in (fork the run to continue elsewhere)"),
        /// Folder of the COLMAP images, relative to `source_path`. Flag: `-i/--images`.
        images: PathBuf = PathBuf::from("images"); Restart(LOADED_WITH_SCENE),
        /// Training image size. -1: the reference's automatic choice (images wider than 1600
        /// pixels are scaled down to 1600 wide); 1, 2, 4, 8: divide width and height by it;
        /// any other value: the target width in pixels. Flag: `-r/--resolution`.
        resolution: i32 = -1; Restart(LOADED_WITH_SCENE),
        /// Composite Blender RGBA images on white instead of black and render on a white
        /// background (NeRF-synthetic scenes). Flag: `-w/--white_background`.
        white_background: bool = false; Restart(LOADED_WITH_SCENE),
        /// Hold out test views: for COLMAP every 8th image in name order (llffhold 8), for
        /// Blender the `transforms_test.json` views. Off: train on every view. Flag: `--eval`.
        eval: bool = false; Restart("the train/test split is made when the scene loads"),
        /// Number of random points a scene without points (Blender) starts from, drawn
        /// uniformly in [-1.3, 1.3]^3 as in the reference, which uses 100,000.
        random_init_points: u32 = crate::model::init::DEFAULT_RANDOM_POINTS as u32; Restart("it only matters when a run starts from random points"),
    }
}

config_section! {
    /// Rendering options of the rasterizer (inria's `PipelineParams` and our additions).
    pub struct PipelineParams in "pipeline" {
        /// gsplat's "antialiased" mode: opacity multiplied by sqrt(det(Σ2D) / det(Σ2D + 0.3 I))
        /// (Mip-Splatting's 2D filter). The reference default is off.
        antialiasing: bool = false; Live,
        /// The reference's rasterizer debug mode: after every stage of every step, check the
        /// buffers it wrote (render, loss gradient, parameter gradients, parameters) for
        /// non-finite values and stop at the first, naming the buffer, the Gaussian or pixel,
        /// the stage and the step. Slow: each check downloads the buffer.
        debug: bool = false; Live,
        /// Ours: Gaussians whose view-space depth is at or below this are culled, in scene
        /// units. 0.2 is the value hard-coded in the reference rasterizer.
        near_plane: f32 = 0.2; Live,
        /// Ours: tile rectangles from per-axis, opacity-aware extents (gsplat) instead of the
        /// reference's 3-sigma square: fewer tile intersections, nearly the same image.
        /// Off: reference.
        tight_tile_bounds: bool = false; Live,
    }
}

config_section! {
    /// Learning rates and the densification schedule (inria's `OptimizationParams`). Steps
    /// ("iterations") are counted from 1.
    pub struct OptimizationParams in "optimization" {
        /// Number of training steps (one view per step). Flag: `--iterations`.
        iterations: u32 = 30_000; Live,
        /// Initial learning rate of the Gaussian centres, in units of the scene extent (it is
        /// multiplied by the camera extent, `spatial_lr_scale`).
        position_lr_init: f64 = 0.000_16; Live,
        /// Final learning rate of the centres (same units); the rate decays log-linearly from
        /// `position_lr_init` to this over `position_lr_max_steps` steps.
        position_lr_final: f64 = 0.000_001_6; Live,
        /// Warm-up multiplier of the centres' learning rate. Kept for compatibility: the
        /// reference uses no warm-up steps for positions, so it has no effect.
        position_lr_delay_mult: f64 = 0.01; Live,
        /// Steps over which the centres' learning rate decays; it stays at the final rate
        /// afterwards.
        position_lr_max_steps: u32 = 30_000; Live,
        /// Learning rate of the SH band-0 colour coefficients; the higher bands use 1/20 of it.
        feature_lr: f64 = 0.0025; Live,
        /// Learning rate of the opacity logits (0.05 in older inria versions and gsplat).
        opacity_lr: f64 = 0.025; Live,
        /// Learning rate of the log-scales.
        scaling_lr: f64 = 0.005; Live,
        /// Learning rate of the (unnormalised) rotation quaternions.
        rotation_lr: f64 = 0.001; Live,
        /// Densification size limit, as a fraction of the scene extent: Gaussians with a
        /// large view-space gradient are cloned if their largest scale is at most this, split
        /// otherwise.
        percent_dense: f64 = 0.01; Live,
        /// Weight of the D-SSIM term: loss = (1 - λ) L1 + λ (1 - SSIM), in [0, 1].
        lambda_dssim: f64 = 0.2; Live,
        /// Densify and prune every this many steps (within the densification window).
        densification_interval: u32 = 100; Live,
        /// Reset all opacities to at most 0.01 every this many steps (within the
        /// densification window); after the first reset, pruning also removes Gaussians that
        /// are too large on screen or in the world.
        opacity_reset_interval: u32 = 3000; Live,
        /// Densification starts after this step.
        densify_from_iter: u32 = 500; Live,
        /// Densification (and gradient statistics, and opacity resets) stop at this step.
        densify_until_iter: u32 = 15_000; Live,
        /// Average screen-space gradient norm, in normalised device coordinates, above which a
        /// Gaussian is cloned or split.
        densify_grad_threshold: f64 = 0.0002; Live,
        /// Render each training step on a random background colour (the ground truth keeps
        /// its own), which discourages using the background as a colour.
        random_background: bool = false; Live,
        /// After the first opacity reset, also prune Gaussians whose screen radius exceeded 20
        /// pixels since the last densification. inria's train.py asks for this, but its
        /// `densify_and_prune` zeroes the radii before testing them, so the reference never
        /// prunes by screen size (only by opacity and world size); gsplat's default strategy
        /// does not either. Off (default): what the reference actually does.
        screen_size_prune: bool = false; Live,
    }
}

config_section! {
    /// Options of the training run (the command-line options of inria's `train.py`, and ours).
    pub struct RunParams in "run" {
        /// Steps after which the test views (and 5 training views) are evaluated: L1 and PSNR.
        /// Steps beyond `optimization.iterations` never come. Flag: `--test_iterations`.
        test_iterations: Vec<u32> = vec![7000, 30_000]; Live,
        /// Steps after which `point_cloud/iteration_<N>/point_cloud.ply` is written. The final
        /// step is always added, as in the reference. Flag: `--save_iterations`.
        save_iterations: Vec<u32> = vec![7000, 30_000]; Live,
        /// Steps after which a checkpoint (parameters, optimizer state, step, random state) is
        /// written, to resume from with `start_checkpoint`. Flag: `--checkpoint_iterations`.
        checkpoint_iterations: Vec<u32> = Vec::new(); Live,
        /// Checkpoint file to resume training from; `None` starts from the point cloud.
        /// Flag: `--start_checkpoint`.
        start_checkpoint: Option<PathBuf> = None; Restart("it is read when the run starts"),
        /// Print nothing but errors. Flag: `--quiet`.
        quiet: bool = false; Live,
        /// Switch `pipeline.debug` on from this step on; -1: never. Flag: `--debug_from`.
        debug_from: i64 = -1; Live,
        /// Stop at the first non-finite loss, parameter or gradient, naming the parameter and
        /// the step (the reference enables PyTorch's anomaly detection). Flag: `--detect_anomaly`.
        detect_anomaly: bool = false; Live,
        /// Seed of every random choice (view order, split children, random background); the
        /// reference seeds its generators with 0.
        seed: u64 = 0; Restart("it seeds the random generators when the run starts"),
        /// Ours: training steps run per displayed frame in the interactive editor (batch mode
        /// runs steps back to back). The reference has no viewer loop.
        steps_per_frame: u32 = 1; Live,
        /// Ours: steps between asynchronous readbacks of the loss for the progress display
        /// (the reference reads it every step and shows a running average every 10).
        loss_readback_interval: u32 = 10; Live,
        /// Ours: steps between captures of the last good state (parameters, Adam moments and
        /// densification statistics, checked finite and kept in CPU memory, saved as a
        /// checkpoint if the run later fails); copied without waiting for the GPU. 0: never.
        /// With `detect_anomaly`, every loss readback instead (and waiting).
        good_state_interval: u32 = 1000; Live,
        /// Ours: compute evaluation metrics on renders quantised to 8 bits, as when saved PNGs
        /// are evaluated (the reference's `metrics.py`); off: on the float renders, like the
        /// reference's in-training report.
        eval_quantize_8bit: bool = true; Live,
        /// Ours: every this many steps, time each stage of the step on the GPU (timestamp
        /// queries) and on the CPU, and at the end print the medians per stage and the step
        /// time per 1000 iterations (also written to `profile.md` in the model folder, and
        /// every step's time and cloud size to `step_times.csv`); 0: off.
        /// A profiled step waits for the GPU once, so keep this large (e.g. 100).
        profile_interval: u32 = 0; Restart("the GPU profiler is set up when the run starts"),
        /// Ours: when stderr is not a terminal (a log file, CI), print a progress line
        /// (iteration, it/s, smoothed loss, Gaussians) every this many seconds instead of the
        /// progress bar; 0: never. Nothing with `quiet`.
        progress_log_interval_s: f64 = 10.0; Live,
        /// Ours: make runs reproducible: the rasterizer's backward pass sums gradients in a
        /// fixed order instead of with float atomics, so two runs with the same seed on the
        /// same GPU and driver give bit-identical results (unless the run reports intersection
        /// list overflows). Costs 36 bytes of GPU memory per tile intersection; its time cost
        /// is in BENCHMARKS.md. Read when a run starts.
        deterministic: bool = false; Restart("the backward pass is chosen when the run starts"),
    }
}

/// A complete training configuration. The RON file has one section per field.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The scene and the model.
    pub model: ModelParams,
    /// Learning rates and densification.
    pub optimization: OptimizationParams,
    /// Rasterizer options.
    pub pipeline: PipelineParams,
    /// Run options: evaluation, saving, checkpoints, logging.
    pub run: RunParams,
}

impl Config {
    /// The section names, in file order.
    pub const SECTIONS: &'static [&'static str] = &["model", "optimization", "pipeline", "run"];

    /// The field names of `section`, or `None` if there is no such section.
    pub fn section_fields(section: &str) -> Option<&'static [&'static str]> {
        match section {
            "model" => Some(ModelParams::FIELDS),
            "optimization" => Some(OptimizationParams::FIELDS),
            "pipeline" => Some(PipelineParams::FIELDS),
            "run" => Some(RunParams::FIELDS),
            _ => None,
        }
    }

    /// The Rust type of the field `key` (`section.field`), or `None` if there is no such field.
    pub fn field_type(key: &str) -> Option<&'static str> {
        let (section, field) = key.split_once('.')?;
        match section {
            "model" => ModelParams::field_type(field),
            "optimization" => OptimizationParams::field_type(field),
            "pipeline" => PipelineParams::field_type(field),
            "run" => RunParams::field_type(field),
            _ => None,
        }
    }

    /// Every field of every section, in file order, with its type, documentation and
    /// mutability.
    pub fn fields() -> impl Iterator<Item = FieldInfo> {
        Config::SECTIONS.iter().flat_map(|&section| {
            let fields = Config::section_fields(section).unwrap_or_default();
            fields
                .iter()
                .filter_map(move |&field| Config::field_info(section, field))
        })
    }

    /// The description of field `key` (`section.field`), or `None` if there is no such field.
    pub fn field(key: &str) -> Option<FieldInfo> {
        let (section, field) = key.split_once('.')?;
        Config::field_info(section, field)
    }

    fn field_info(section: &str, field: &str) -> Option<FieldInfo> {
        match section {
            "model" => ModelParams::field_info(field),
            "optimization" => OptimizationParams::field_info(field),
            "pipeline" => PipelineParams::field_info(field),
            "run" => RunParams::field_info(field),
            _ => None,
        }
    }

    /// The value of field `key` (`section.field`) written in RON, as [`Config::set`] takes it
    /// (`0.3`, `[7000, 30000]`, `"data/garden"`, `None`).
    pub fn get(&self, key: &str) -> Result<String, ConfigError> {
        let unknown = || ConfigError::Override {
            origin: key.to_string(),
            message: format!("unknown field {key}"),
        };
        let (section, field) = key.split_once('.').ok_or_else(unknown)?;
        let value = match section {
            "model" => self.model.field_ron(field),
            "optimization" => self.optimization.field_ron(field),
            "pipeline" => self.pipeline.field_ron(field),
            "run" => self.run.field_ron(field),
            _ => None,
        };
        value.ok_or_else(unknown)?.map_err(ConfigError::Serialize)
    }

    /// The fields whose values differ between `self` and `other`, in file order.
    pub fn differing_fields(&self, other: &Config) -> Vec<&'static str> {
        Config::fields()
            .filter(|field| self.get(field.key).ok() != other.get(field.key).ok())
            .map(|field| field.key)
            .collect()
    }

    /// Sets the field `key` (`section.field`) from its value written in RON, e.g.
    /// `set("optimization.lambda_dssim", "0.3")`; string and path fields also take a bare word
    /// (`set("model.source_path", "data/garden")`). Errors name the key and list the valid
    /// sections or fields.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        self.set_from_ron(key, value, true)
    }

    /// [`Config::set`], with bare words for strings allowed or not (not in files).
    pub(super) fn set_from_ron(
        &mut self,
        key: &str,
        value: &str,
        bare_words: bool,
    ) -> Result<(), ConfigError> {
        let invalid = |message: String| ConfigError::Override {
            origin: format!("{key}={value}"),
            message,
        };
        let Some((section, field)) = key.split_once('.') else {
            return Err(invalid(format!(
                "expected section.field, with a section among: {}",
                Config::SECTIONS.join(", ")
            )));
        };
        let result = match section {
            "model" => self.model.set_field_from_ron(field, value, bare_words),
            "optimization" => self
                .optimization
                .set_field_from_ron(field, value, bare_words),
            "pipeline" => self.pipeline.set_field_from_ron(field, value, bare_words),
            "run" => self.run.set_field_from_ron(field, value, bare_words),
            _ => {
                return Err(invalid(unknown_name_message(
                    "section",
                    section,
                    "",
                    Config::SECTIONS,
                )));
            }
        };
        match result {
            Some(Ok(())) => Ok(()),
            Some(Err(why)) => {
                let expected = Config::field_type(key)
                    .map(describe_type)
                    .unwrap_or_default();
                Err(invalid(format!(
                    "{key}: invalid value `{}`, expected {expected} ({why})",
                    shorten(value)
                )))
            }
            None => {
                let fields = Config::section_fields(section).unwrap_or_default();
                Err(invalid(unknown_name_message(
                    "field", field, section, fields,
                )))
            }
        }
    }

    /// Checks every limit; the error lists each offending field with its value and the rule.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let problems = self.problems();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    /// Every value outside its limits (empty when the configuration is valid).
    pub fn problems(&self) -> Vec<Problem> {
        let mut checks = Checks::default();

        let model = &self.model;
        checks.require(
            "model.sh_degree",
            model.sh_degree,
            model.sh_degree <= 3,
            "must be in 0..=3",
        );
        checks.require(
            "model.resolution",
            model.resolution,
            model.resolution == -1 || model.resolution >= 1,
            "must be -1 (automatic) or >= 1 (1, 2, 4, 8: divisor; other values: target width)",
        );
        checks.at_least_one("model.random_init_points", model.random_init_points);

        let opt = &self.optimization;
        let valid_rate = |rate: f64| rate.is_finite() && rate >= 0.0;
        checks.at_least_one("optimization.iterations", opt.iterations);
        for (field, rate) in [
            ("optimization.position_lr_init", opt.position_lr_init),
            ("optimization.position_lr_final", opt.position_lr_final),
            (
                "optimization.position_lr_delay_mult",
                opt.position_lr_delay_mult,
            ),
            ("optimization.feature_lr", opt.feature_lr),
            ("optimization.opacity_lr", opt.opacity_lr),
            ("optimization.scaling_lr", opt.scaling_lr),
            ("optimization.rotation_lr", opt.rotation_lr),
        ] {
            checks.require(field, rate, valid_rate(rate), "must be finite and >= 0");
        }
        checks.require(
            "optimization.position_lr_final",
            opt.position_lr_final,
            // (Invalid rates are reported above.)
            !valid_rate(opt.position_lr_init)
                || !valid_rate(opt.position_lr_final)
                || (opt.position_lr_init > 0.0) == (opt.position_lr_final > 0.0),
            "must be > 0 when position_lr_init is > 0, and 0 when it is 0 (the schedule \
             interpolates their logarithms)",
        );
        checks.at_least_one(
            "optimization.position_lr_max_steps",
            opt.position_lr_max_steps,
        );
        checks.require(
            "optimization.percent_dense",
            opt.percent_dense,
            opt.percent_dense.is_finite() && opt.percent_dense > 0.0,
            "must be finite and > 0",
        );
        checks.require(
            "optimization.lambda_dssim",
            opt.lambda_dssim,
            (0.0..=1.0).contains(&opt.lambda_dssim),
            "must be in [0, 1]",
        );
        checks.at_least_one(
            "optimization.densification_interval",
            opt.densification_interval,
        );
        checks.at_least_one(
            "optimization.opacity_reset_interval",
            opt.opacity_reset_interval,
        );
        checks.require(
            "optimization.densify_from_iter",
            opt.densify_from_iter,
            opt.densify_from_iter <= opt.densify_until_iter,
            "must be <= optimization.densify_until_iter",
        );
        checks.require(
            "optimization.densify_grad_threshold",
            opt.densify_grad_threshold,
            opt.densify_grad_threshold.is_finite() && opt.densify_grad_threshold > 0.0,
            "must be finite and > 0",
        );

        let pipeline = &self.pipeline;
        checks.require(
            "pipeline.near_plane",
            pipeline.near_plane,
            pipeline.near_plane.is_finite() && pipeline.near_plane > 0.0,
            "must be finite and > 0",
        );

        let run = &self.run;
        for (field, steps) in [
            ("run.test_iterations", &run.test_iterations),
            ("run.save_iterations", &run.save_iterations),
            ("run.checkpoint_iterations", &run.checkpoint_iterations),
        ] {
            checks.require(
                field,
                steps,
                !steps.contains(&0),
                "steps are counted from 1",
            );
        }
        checks.require(
            "run.start_checkpoint",
            &run.start_checkpoint,
            run.start_checkpoint
                .as_ref()
                .is_none_or(|path| !path.as_os_str().is_empty()),
            "must be None or a file path",
        );
        checks.require(
            "run.debug_from",
            run.debug_from,
            run.debug_from >= -1,
            "must be -1 (never) or a step",
        );
        checks.at_least_one("run.steps_per_frame", run.steps_per_frame);
        checks.at_least_one("run.loss_readback_interval", run.loss_readback_interval);
        checks.require(
            "run.progress_log_interval_s",
            run.progress_log_interval_s,
            run.progress_log_interval_s.is_finite() && run.progress_log_interval_s >= 0.0,
            "must be finite and >= 0 (0: no progress lines)",
        );

        checks.problems
    }
}

/// One field of the schema, for tools that list them (the editor's inspector).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldInfo {
    /// `section.field`, e.g. `optimization.lambda_dssim`.
    pub key: &'static str,
    pub section: &'static str,
    pub name: &'static str,
    /// The Rust type as written in the schema (`"Vec<u32>"`).
    pub rust_type: &'static str,
    /// The field's doc comment, one source line per line.
    pub doc: &'static str,
    pub mutability: Mutability,
}

impl FieldInfo {
    /// The documentation as one paragraph (the doc comment's lines joined).
    pub fn doc_text(&self) -> String {
        self.doc
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// What a value of this field looks like ("a number", "true or false", ...).
    pub fn expected(&self) -> String {
        describe_type(self.rust_type)
    }
}

/// What a value of the schema type `rust_type` looks like, for error messages.
fn describe_type(rust_type: &str) -> String {
    match rust_type.replace(' ', "").as_str() {
        "u32" | "u64" => "a whole number >= 0".to_string(),
        "i32" | "i64" => "a whole number".to_string(),
        "f32" | "f64" => "a number".to_string(),
        "bool" => "true or false".to_string(),
        "PathBuf" | "String" => "a string in double quotes".to_string(),
        "Vec<u32>" => "a list of whole numbers >= 0, like [7000, 30000]".to_string(),
        "Option<PathBuf>" => "None or a string in double quotes".to_string(),
        other => format!("a value of type {other}"),
    }
}

/// At most 60 characters of `text`, for quoting a value in a message.
fn shorten(text: &str) -> String {
    if text.chars().count() <= 60 {
        text.to_string()
    } else {
        text.chars().take(57).chain("...".chars()).collect()
    }
}

/// Collects the problems found by [`Config::problems`].
#[derive(Default)]
struct Checks {
    problems: Vec<Problem>,
}

impl Checks {
    /// Records a problem with `field` unless `ok`.
    fn require(&mut self, field: &str, value: impl std::fmt::Debug, ok: bool, rule: &str) {
        if !ok {
            self.problems.push(Problem {
                field: field.to_string(),
                value: format!("{value:?}"),
                rule: rule.to_string(),
                origin: None,
            });
        }
    }

    fn at_least_one(&mut self, field: &str, value: u32) {
        self.require(field, value, value >= 1, "must be >= 1");
    }
}
