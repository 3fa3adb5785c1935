use std::path::{Path, PathBuf};

use super::locate::{field_at, position_of_field};
use super::*;
use crate::fsutil::TempDir;

fn shipped(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("configs")
        .join(name)
}

fn parse_error_message(text: &str) -> String {
    Config::from_ron_str(text, "x.ron")
        .expect_err("the text must be rejected")
        .to_string()
}

fn validation_error(change: impl FnOnce(&mut Config)) -> String {
    let mut config = Config::default();
    change(&mut config);
    config
        .validate()
        .expect_err("the change must be rejected")
        .to_string()
}

/// A configuration in which every field differs from its default.
fn every_field_changed() -> Config {
    Config {
        model: ModelParams {
            sh_degree: 1,
            source_path: "scenes/garden".into(),
            model_path: "out/garden".into(),
            images: "images_4".into(),
            resolution: 4,
            white_background: true,
            eval: true,
            random_init_points: 5000,
        },
        optimization: OptimizationParams {
            iterations: 7000,
            position_lr_init: 0.0003,
            position_lr_final: 3e-6,
            position_lr_delay_mult: 0.5,
            position_lr_max_steps: 7000,
            feature_lr: 0.005,
            opacity_lr: 0.05,
            scaling_lr: 0.01,
            rotation_lr: 0.002,
            percent_dense: 0.02,
            lambda_dssim: 0.3,
            densification_interval: 50,
            opacity_reset_interval: 1000,
            densify_from_iter: 100,
            densify_until_iter: 5000,
            densify_grad_threshold: 0.0005,
            random_background: true,
            screen_size_prune: true,
        },
        pipeline: PipelineParams {
            antialiasing: true,
            debug: true,
            near_plane: 0.01,
            tight_tile_bounds: true,
        },
        run: RunParams {
            test_iterations: vec![100, 200],
            save_iterations: vec![300],
            checkpoint_iterations: vec![400, 500],
            start_checkpoint: Some("ckpt/chkpnt7000.bin".into()),
            quiet: true,
            debug_from: 10,
            detect_anomaly: true,
            seed: 42,
            steps_per_frame: 8,
            loss_readback_interval: 25,
            good_state_interval: 500,
            eval_quantize_8bit: false,
            profile_interval: 50,
            progress_log_interval_s: 2.5,
            deterministic: true,
        },
    }
}

// ---- schema and defaults ----

#[test]
fn defaults_are_the_reference_values() {
    let c = Config::default();
    assert_eq!(c.model.sh_degree, 3);
    assert_eq!(c.model.source_path, PathBuf::new());
    assert_eq!(c.model.model_path, PathBuf::new());
    assert_eq!(c.model.images, PathBuf::from("images"));
    assert_eq!(c.model.resolution, -1);
    assert!(!c.model.white_background);
    assert!(!c.model.eval);

    assert!(!c.pipeline.antialiasing);
    assert!(!c.pipeline.debug);
    assert_eq!(c.pipeline.near_plane, 0.2);
    assert!(!c.pipeline.tight_tile_bounds);

    let o = &c.optimization;
    assert_eq!(o.iterations, 30000);
    assert_eq!(o.position_lr_init, 0.00016);
    assert_eq!(o.position_lr_final, 0.0000016);
    assert_eq!(o.position_lr_delay_mult, 0.01);
    assert_eq!(o.position_lr_max_steps, 30000);
    assert_eq!(o.feature_lr, 0.0025);
    assert_eq!(o.opacity_lr, 0.025);
    assert_eq!(o.scaling_lr, 0.005);
    assert_eq!(o.rotation_lr, 0.001);
    assert_eq!(o.percent_dense, 0.01);
    assert_eq!(o.lambda_dssim, 0.2);
    assert_eq!(o.densification_interval, 100);
    assert_eq!(o.opacity_reset_interval, 3000);
    assert_eq!(o.densify_from_iter, 500);
    assert_eq!(o.densify_until_iter, 15000);
    assert_eq!(o.densify_grad_threshold, 0.0002);
    assert!(!o.random_background);

    let r = &c.run;
    assert_eq!(r.test_iterations, vec![7000, 30000]);
    assert_eq!(r.save_iterations, vec![7000, 30000]);
    assert!(r.checkpoint_iterations.is_empty());
    assert_eq!(r.start_checkpoint, None);
    assert!(!r.quiet);
    assert_eq!(r.debug_from, -1);
    assert!(!r.detect_anomaly);
    assert_eq!(r.seed, 0);
    assert_eq!(r.steps_per_frame, 1);
    assert_eq!(r.loss_readback_interval, 10);
    assert!(r.eval_quantize_8bit);

    c.validate().unwrap();
}

#[test]
fn render_defaults_agree_with_render_settings() {
    let config = Config::default();
    let render = crate::RenderSettings::default();
    assert_eq!(config.pipeline.near_plane, render.near_plane);
    assert_eq!(config.pipeline.antialiasing, render.antialiased);
    assert_eq!(config.pipeline.tight_tile_bounds, render.tight_tile_bounds);
    assert_eq!(config.model.sh_degree, render.active_sh_degree);
}

#[test]
fn field_lists_match_the_serialised_sections() {
    let text = Config::default().to_ron_string().unwrap();
    for &section in Config::SECTIONS {
        let fields = Config::section_fields(section).unwrap();
        for field in fields {
            let key = format!("{section}.{field}");
            assert!(
                position_of_field(&text, &key).is_some(),
                "{key} not serialised"
            );
            assert!(Config::field_type(&key).is_some(), "{key} has no type");
        }
    }
    let total: usize = Config::SECTIONS
        .iter()
        .map(|s| Config::section_fields(s).unwrap().len())
        .sum();
    assert_eq!(text.matches(": ").count(), total + Config::SECTIONS.len());
    assert_eq!(Config::section_fields("optimisation"), None);
    assert_eq!(Config::field_type("run.test_iterations"), Some("Vec<u32>"));
    assert_eq!(Config::field_type("run.nope"), None);
}

#[test]
fn field_table_lists_every_field_with_its_doc_and_mutability() {
    let fields: Vec<FieldInfo> = Config::fields().collect();
    let total: usize = Config::SECTIONS
        .iter()
        .map(|s| Config::section_fields(s).unwrap().len())
        .sum();
    assert_eq!(fields.len(), total);
    for field in &fields {
        assert_eq!(field.key, format!("{}.{}", field.section, field.name));
        assert_eq!(Config::field(field.key), Some(*field));
        assert_eq!(Config::field_type(field.key), Some(field.rust_type));
        assert!(
            field.doc_text().len() > 20,
            "{} needs a doc comment",
            field.key
        );
        assert!(!field.doc_text().contains("  "), "{}", field.doc_text());
    }
    let lambda = Config::field("optimization.lambda_dssim").unwrap();
    assert!(lambda.doc_text().starts_with("Weight of the D-SSIM term"));
    assert_eq!(lambda.mutability, Mutability::Live);
    assert_eq!(lambda.expected(), "a number");
    for fixed in [
        "model.sh_degree",
        "model.source_path",
        "model.resolution",
        "run.seed",
    ] {
        assert!(
            matches!(Config::field(fixed).unwrap().mutability, Mutability::Restart(why) if !why.is_empty()),
            "{fixed} cannot change during a run"
        );
    }
    assert_eq!(Config::field("optimization.nope"), None);
    assert_eq!(Config::field("nope"), None);
}

#[test]
fn get_writes_every_field_as_set_reads_it() {
    let changed = every_field_changed();
    let mut config = Config::default();
    for field in Config::fields() {
        let text = changed.get(field.key).unwrap();
        config.set_from_ron(field.key, &text, false).unwrap();
    }
    assert_eq!(config, changed);
    assert_eq!(
        changed.get("run.start_checkpoint").unwrap(),
        "Some(\"ckpt/chkpnt7000.bin\")"
    );
    assert_eq!(changed.get("run.test_iterations").unwrap(), "[100,200]");
    assert!(Config::default().get("run.nope").is_err());
    let differing = Config::default().differing_fields(&changed);
    assert_eq!(differing.len(), Config::fields().count());
    assert!(
        Config::default()
            .differing_fields(&Config::default())
            .is_empty()
    );
}

// ---- shipped configuration files ----

#[test]
fn default_ron_spells_out_every_default() {
    let path = shipped("default.ron");
    assert_eq!(Config::load(&path).unwrap(), Config::default());
    let text = std::fs::read_to_string(&path).unwrap();
    for &section in Config::SECTIONS {
        for field in Config::section_fields(section).unwrap() {
            let key = format!("{section}.{field}");
            assert!(
                position_of_field(&text, &key).is_some(),
                "default.ron lacks {key}"
            );
        }
    }
}

#[test]
fn shipped_configs_parse_and_validate() {
    for name in ["default.ron", "demo.ron", "blender.ron"] {
        let config = Config::load(&shipped(name)).unwrap_or_else(|e| panic!("{e}"));
        config.validate().unwrap_or_else(|e| panic!("{name}: {e}"));
    }

    let demo = Config::load(&shipped("demo.ron")).unwrap();
    assert_eq!(demo.model.source_path, PathBuf::from("assets/demo"));
    let demo_scene = Path::new(env!("CARGO_MANIFEST_DIR")).join(&demo.model.source_path);
    assert!(demo_scene.join("sparse/0").is_dir() && demo_scene.join("images").is_dir());
    assert!(demo.model.eval);
    let o = &demo.optimization;
    assert!(
        (1000..=10_000).contains(&o.iterations),
        "a few thousand steps"
    );
    assert_eq!(o.position_lr_max_steps, o.iterations);
    assert!(o.densify_until_iter <= o.iterations / 2);
    assert!(o.opacity_reset_interval < o.densify_until_iter);
    assert!(demo.run.test_iterations.contains(&o.iterations));
    let resolved = resolve_training_config(Some(&shipped("demo.ron")), &ConfigOverrides::new());
    assert!(
        resolved.is_ok(),
        "the bare command needs a complete demo config"
    );

    let blender = Config::load(&shipped("blender.ron")).unwrap();
    assert!(blender.model.white_background);
    assert!(blender.model.eval);
}

// ---- RON round trip and files ----

#[test]
fn round_trip_through_ron() {
    for config in [Config::default(), every_field_changed()] {
        let text = config.to_ron_string().unwrap();
        assert_eq!(
            Config::from_ron_str(&text, "round trip").unwrap(),
            config,
            "{text}"
        );
    }
}

#[test]
fn every_field_changed_changes_every_line() {
    // Guards the round-trip test: each field line of the changed config differs.
    let default = Config::default().to_ron_string().unwrap();
    let changed = every_field_changed().to_ron_string().unwrap();
    let field_lines = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|line| line.contains(": ") && !line.trim_end().ends_with('('))
            .map(str::to_string)
            .collect()
    };
    let (a, b) = (field_lines(&default), field_lines(&changed));
    assert_eq!(a.len(), b.len());
    for (a, b) in a.iter().zip(&b) {
        assert_ne!(a, b);
    }
}

#[test]
fn write_atomic_writes_a_file_that_loads_back() {
    let dir = TempDir::new("config-write").unwrap();
    let path = dir.path().join("run/config.ron");
    let config = every_field_changed();
    config.write_atomic(&path).unwrap();
    assert_eq!(Config::load(&path).unwrap(), config);
    assert!(std::fs::read_to_string(&path).unwrap().starts_with("//"));
}

#[test]
fn a_file_holds_only_what_differs() {
    let text = "// comment\n(optimization: (lambda_dssim: 0.5), run: (start_checkpoint: \"c\"))";
    let config = Config::from_ron_str(text, "x.ron").unwrap();
    let mut expected = Config::default();
    expected.optimization.lambda_dssim = 0.5;
    expected.run.start_checkpoint = Some("c".into());
    assert_eq!(config, expected);
    assert_eq!(
        Config::from_ron_str("()", "x.ron").unwrap(),
        Config::default()
    );
    // Explicit struct names and an explicit Some are fine too.
    let named =
        "Config(run: RunParams(start_checkpoint: Some(\"c\")), optimization: (lambda_dssim: 0.5))";
    assert_eq!(Config::from_ron_str(named, "x.ron").unwrap(), expected);
}

#[test]
fn missing_file_names_the_file() {
    let error = Config::load(Path::new("no/such/config.ron")).unwrap_err();
    assert!(error.to_string().contains("no/such/config.ron"), "{error}");
}

// ---- parse errors ----

#[test]
fn unknown_field_names_file_line_column_section_and_suggestion() {
    let text =
        "(\n    optimization: (\n        iterations: 7,\n        lamda_dssim: 0.3,\n    ),\n)";
    let message = parse_error_message(text);
    assert!(
        message.starts_with(
            "x.ron:4:9: unknown field \"lamda_dssim\" in optimization, expected one of: iterations,"
        ),
        "{message}"
    );
    assert!(
        message.contains("(did you mean \"lambda_dssim\"?)"),
        "{message}"
    );
}

#[test]
fn unknown_section_is_named() {
    let message = parse_error_message("(\n  optimisation: (),\n)");
    assert!(
        message.starts_with("x.ron:2:3: unknown section \"optimisation\", expected one of: model, optimization, pipeline, run"),
        "{message}"
    );
}

#[test]
fn wrong_types_name_the_field_and_the_expected_type() {
    let cases = [
        (
            "(optimization: (iterations: 1.5))",
            "optimization.iterations: invalid value `1.5`, expected a whole number >= 0",
        ),
        (
            "(optimization: (iterations: -3))",
            "optimization.iterations: invalid value `-3`, expected a whole number >= 0",
        ),
        (
            "(optimization: (lambda_dssim: \"x\"))",
            "optimization.lambda_dssim: invalid value `\"x\"`, expected a number",
        ),
        (
            "(model: (white_background: 1))",
            "model.white_background: invalid value `1`, expected true or false",
        ),
        (
            "(model: (source_path: 3))",
            "model.source_path: invalid value `3`, expected a string in double quotes",
        ),
        (
            "(run: (test_iterations: [1, \"a\"]))",
            "run.test_iterations: invalid value `[1, \"a\"]`, expected a list of whole numbers",
        ),
        (
            "(run: (start_checkpoint: 5))",
            "run.start_checkpoint: invalid value `5`, expected None or a string",
        ),
        ("(model: 5)", "model: expected opening `(`"),
    ];
    for (text, expected) in cases {
        let message = parse_error_message(text);
        assert!(message.starts_with("x.ron:1:"), "{message}");
        assert!(message.contains(expected), "{text}: {message}");
    }
}

#[test]
fn error_positions_are_those_of_the_text() {
    // Column of the value (ron reports the position just after the colon).
    let message = parse_error_message("(\n  model: (\n    sh_degree: \"three\",\n  ),\n)");
    assert!(
        message.starts_with("x.ron:3:15: model.sh_degree:"),
        "{message}"
    );
}

#[test]
fn duplicate_fields_and_missing_commas_are_explained() {
    let message = parse_error_message("(optimization: (iterations: 7, iterations: 8))");
    assert!(
        message.contains("optimization.iterations is given more than once"),
        "{message}"
    );
    let message = parse_error_message("(model: (), model: ())");
    assert!(
        message.contains(": model is given more than once"),
        "{message}"
    );
    let message = parse_error_message("(optimization: (iterations: 7 densify_from_iter: 8))");
    assert!(
        message.contains("optimization.iterations: expected comma"),
        "{message}"
    );
    let message = parse_error_message("(model: (sh_degree: 3)");
    assert!(message.starts_with("x.ron:1:"), "{message}");
}

// ---- validation ----

#[test]
fn validation_names_each_field_value_and_rule() {
    type Change = fn(&mut Config);
    let cases: &[(Change, &str)] = &[
        (
            |c| c.model.sh_degree = 4,
            "model.sh_degree = 4: must be in 0..=3",
        ),
        (
            |c| c.model.resolution = 0,
            "model.resolution = 0: must be -1",
        ),
        (
            |c| c.model.resolution = -2,
            "model.resolution = -2: must be -1",
        ),
        (
            |c| c.optimization.iterations = 0,
            "optimization.iterations = 0: must be >= 1",
        ),
        (
            |c| c.optimization.lambda_dssim = 1.5,
            "optimization.lambda_dssim = 1.5: must be in [0, 1]",
        ),
        (
            |c| c.optimization.lambda_dssim = -0.1,
            "optimization.lambda_dssim = -0.1: must be in [0, 1]",
        ),
        (
            |c| c.optimization.lambda_dssim = f64::NAN,
            "optimization.lambda_dssim = NaN: must be in [0, 1]",
        ),
        (
            |c| c.optimization.feature_lr = -1.0,
            "optimization.feature_lr = -1.0: must be finite and >= 0",
        ),
        (
            |c| c.optimization.opacity_lr = f64::INFINITY,
            "optimization.opacity_lr = inf: must be finite",
        ),
        (
            |c| c.optimization.scaling_lr = f64::NAN,
            "optimization.scaling_lr = NaN: must be finite",
        ),
        (
            |c| c.optimization.rotation_lr = -0.5,
            "optimization.rotation_lr = -0.5: must be finite",
        ),
        (
            |c| c.optimization.position_lr_init = -1e-4,
            "optimization.position_lr_init = -0.0001: must be finite",
        ),
        (
            |c| c.optimization.position_lr_delay_mult = -1.0,
            "optimization.position_lr_delay_mult = -1.0",
        ),
        (
            |c| c.optimization.position_lr_final = 0.0,
            "optimization.position_lr_final = 0.0: must be > 0 when position_lr_init is > 0",
        ),
        (
            |c| c.optimization.position_lr_max_steps = 0,
            "optimization.position_lr_max_steps = 0: must be >= 1",
        ),
        (
            |c| c.optimization.percent_dense = 0.0,
            "optimization.percent_dense = 0.0: must be finite and > 0",
        ),
        (
            |c| c.optimization.densification_interval = 0,
            "optimization.densification_interval = 0: must be >= 1",
        ),
        (
            |c| c.optimization.opacity_reset_interval = 0,
            "optimization.opacity_reset_interval = 0: must be >= 1",
        ),
        (
            |c| c.optimization.densify_from_iter = 20_000,
            "optimization.densify_from_iter = 20000: must be <= optimization.densify_until_iter",
        ),
        (
            |c| c.optimization.densify_grad_threshold = 0.0,
            "optimization.densify_grad_threshold = 0.0: must be finite and > 0",
        ),
        (
            |c| c.pipeline.near_plane = 0.0,
            "pipeline.near_plane = 0.0: must be finite and > 0",
        ),
        (
            |c| c.pipeline.near_plane = f32::NAN,
            "pipeline.near_plane = NaN",
        ),
        (
            |c| c.run.test_iterations = vec![0, 10],
            "run.test_iterations = [0, 10]: steps are counted from 1",
        ),
        (
            |c| c.run.save_iterations = vec![0],
            "run.save_iterations = [0]",
        ),
        (
            |c| c.run.checkpoint_iterations = vec![5, 0],
            "run.checkpoint_iterations = [5, 0]",
        ),
        (
            |c| c.run.start_checkpoint = Some(PathBuf::new()),
            "run.start_checkpoint = Some(\"\"): must be None or a file path",
        ),
        (
            |c| c.run.debug_from = -2,
            "run.debug_from = -2: must be -1 (never) or a step",
        ),
        (
            |c| c.run.steps_per_frame = 0,
            "run.steps_per_frame = 0: must be >= 1",
        ),
        (
            |c| c.run.loss_readback_interval = 0,
            "run.loss_readback_interval = 0: must be >= 1",
        ),
    ];
    for (change, expected) in cases {
        let message = validation_error(change);
        assert!(
            message.starts_with(expected),
            "expected {expected:?}, got {message:?}"
        );
        assert_eq!(message.lines().count(), 1, "{message}");
    }
}

#[test]
fn validation_accepts_the_limits_themselves() {
    let mut config = Config::default();
    config.model.sh_degree = 0;
    config.model.resolution = 1;
    config.optimization.iterations = 1;
    config.optimization.lambda_dssim = 1.0;
    config.optimization.position_lr_init = 0.0;
    config.optimization.position_lr_final = 0.0;
    config.optimization.feature_lr = 0.0;
    config.optimization.densify_from_iter = 15_000;
    config.run.debug_from = 0;
    config.run.test_iterations = vec![1, 1_000_000];
    config.validate().unwrap();
    config.optimization.lambda_dssim = 0.0;
    config.model.sh_degree = 3;
    config.model.resolution = 1600;
    config.validate().unwrap();
}

#[test]
fn validation_reports_every_problem_with_real_field_names() {
    let mut config = Config::default();
    config.model.sh_degree = 9;
    config.optimization.lambda_dssim = 2.0;
    config.run.steps_per_frame = 0;
    let ConfigError::Invalid(problems) = config.validate().unwrap_err() else {
        panic!("expected a validation error");
    };
    let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "model.sh_degree",
            "optimization.lambda_dssim",
            "run.steps_per_frame"
        ]
    );
    for problem in &problems {
        assert!(
            Config::field_type(&problem.field).is_some(),
            "{}",
            problem.field
        );
    }
}

// ---- field assignments (--set) ----

#[test]
fn set_parses_each_type() {
    let mut c = Config::default();
    c.set("optimization.lambda_dssim", "0.3").unwrap();
    c.set("optimization.feature_lr", "1").unwrap(); // an integer is a fine float
    c.set("optimization.iterations", "7000").unwrap();
    c.set("model.resolution", "-1").unwrap();
    c.set("model.white_background", "true").unwrap();
    c.set("run.test_iterations", "[100, 200]").unwrap();
    c.set("run.checkpoint_iterations", "[]").unwrap();
    c.set("model.source_path", "\"data/my scene\"").unwrap();
    c.set("model.images", "images_2").unwrap(); // bare word
    c.set("run.seed", "18446744073709551615").unwrap();
    c.set("pipeline.near_plane", "0.01").unwrap();
    assert_eq!(c.optimization.lambda_dssim, 0.3);
    assert_eq!(c.optimization.feature_lr, 1.0);
    assert_eq!(c.optimization.iterations, 7000);
    assert_eq!(c.model.resolution, -1);
    assert!(c.model.white_background);
    assert_eq!(c.run.test_iterations, vec![100, 200]);
    assert!(c.run.checkpoint_iterations.is_empty());
    assert_eq!(c.model.source_path, PathBuf::from("data/my scene"));
    assert_eq!(c.model.images, PathBuf::from("images_2"));
    assert_eq!(c.run.seed, u64::MAX);
    assert_eq!(c.pipeline.near_plane, 0.01);

    for (text, expected) in [
        ("Some(\"a.ckpt\")", Some("a.ckpt")),
        ("\"b.ckpt\"", Some("b.ckpt")),
        ("c.ckpt", Some("c.ckpt")),
        ("None", None),
    ] {
        c.set("run.start_checkpoint", text).unwrap();
        assert_eq!(
            c.run.start_checkpoint,
            expected.map(PathBuf::from),
            "{text}"
        );
    }
}

#[test]
fn set_errors_name_the_key_and_what_is_valid() {
    let mut c = Config::default();
    let message = c
        .set("optimization.lamda_dssim", "0.3")
        .unwrap_err()
        .to_string();
    assert!(
        message.starts_with("optimization.lamda_dssim=0.3: unknown field \"lamda_dssim\" in optimization, expected one of: iterations,"),
        "{message}"
    );
    assert!(
        message.contains("did you mean \"lambda_dssim\""),
        "{message}"
    );

    let message = c.set("optim.iterations", "1").unwrap_err().to_string();
    assert!(
        message.contains(
            "unknown section \"optim\", expected one of: model, optimization, pipeline, run"
        ),
        "{message}"
    );

    let message = c.set("iterations", "1").unwrap_err().to_string();
    assert!(message.contains("expected section.field"), "{message}");

    let message = c
        .set("optimization.iterations", "many")
        .unwrap_err()
        .to_string();
    assert!(
        message.contains(
            "optimization.iterations: invalid value `many`, expected a whole number >= 0"
        ),
        "{message}"
    );
    let message = c.set("model.eval", "yes").unwrap_err().to_string();
    assert!(
        message.contains("model.eval: invalid value `yes`, expected true or false"),
        "{message}"
    );
    let message = c.set("run.test_iterations", "100").unwrap_err().to_string();
    assert!(
        message.contains("run.test_iterations: invalid value `100`, expected a list"),
        "{message}"
    );
    assert_eq!(c, Config::default(), "failed assignments change nothing");
}

#[test]
fn overrides_apply_in_order_and_remember_their_origin() {
    let mut overrides = ConfigOverrides::new();
    overrides
        .push_value("model.sh_degree", &2u32, "--sh_degree")
        .unwrap();
    overrides.push_set("model.sh_degree=1").unwrap();
    overrides
        .push_set(" optimization.lambda_dssim = 0.4 ")
        .unwrap();
    let mut config = Config::default();
    overrides.apply(&mut config).unwrap();
    assert_eq!(config.model.sh_degree, 1);
    assert_eq!(config.optimization.lambda_dssim, 0.4);
    assert_eq!(
        overrides.origin_of("model.sh_degree"),
        Some("--set model.sh_degree=1")
    );
    assert_eq!(overrides.origin_of("model.eval"), None);
    assert_eq!(overrides.assignments().len(), 3);

    let message = ConfigOverrides::new()
        .push_set("model.sh_degree")
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("--set model.sh_degree: expected section.field=value"),
        "{message}"
    );

    let mut bad = ConfigOverrides::new();
    bad.push_set("run.sead=3").unwrap();
    let message = bad.apply(&mut config).unwrap_err().to_string();
    assert!(
        message.starts_with("--set run.sead=3: unknown field \"sead\" in run"),
        "{message}"
    );
    assert!(message.contains("did you mean \"seed\""), "{message}");
}

// ---- resolution of a training configuration ----

#[test]
fn resolution_precedence_is_defaults_file_flags_set() {
    let dir = TempDir::new("config-resolve").unwrap();
    let file = dir.path().join("run.ron");
    std::fs::write(
        &file,
        "(model: (source_path: \"from_file\", sh_degree: 1, resolution: 2), \
         optimization: (lambda_dssim: 0.5, iterations: 100))",
    )
    .unwrap();
    let mut overrides = ConfigOverrides::new();
    overrides
        .push_value("model.sh_degree", &2u32, "--sh_degree")
        .unwrap();
    overrides
        .push_value("model.resolution", &4i32, "--resolution")
        .unwrap();
    overrides.push_set("model.resolution=8").unwrap();
    overrides.push_set("model.model_path=out").unwrap();
    let config = resolve_training_config(Some(&file), &overrides).unwrap();
    assert_eq!(config.model.images, PathBuf::from("images"), "default kept");
    assert_eq!(
        config.model.source_path,
        PathBuf::from("from_file"),
        "file over default"
    );
    assert_eq!(config.optimization.lambda_dssim, 0.5, "file over default");
    assert_eq!(config.model.sh_degree, 2, "flag over file");
    assert_eq!(config.model.resolution, 8, "--set over flag over file");
    assert_eq!(config.model.model_path, PathBuf::from("out"));
    assert_eq!(
        config.run.save_iterations,
        vec![7000, 30000, 100],
        "last step saved"
    );
}

#[test]
fn resolution_completes_like_train_py() {
    let mut overrides = ConfigOverrides::new();
    overrides.push_set("model.source_path=scene").unwrap();
    let config = resolve_training_config(None, &overrides).unwrap();
    assert_eq!(
        config.run.save_iterations,
        vec![7000, 30000],
        "30000 is not added twice"
    );
    let model_path = config.model.model_path.to_str().unwrap();
    let id = model_path.strip_prefix("output/").expect(model_path);
    assert_eq!(id.len(), 10);
    assert!(
        id.chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
        "{id}"
    );

    // Resolving the written result again changes nothing.
    let dir = TempDir::new("config-resolve").unwrap();
    let file = dir.path().join("config.ron");
    config.write_atomic(&file).unwrap();
    assert_eq!(
        resolve_training_config(Some(&file), &ConfigOverrides::new()).unwrap(),
        config
    );

    let error = resolve_training_config(None, &ConfigOverrides::new()).unwrap_err();
    assert!(matches!(error, ConfigError::MissingSourcePath));
    assert!(error.to_string().contains("-s/--source_path"), "{error}");
}

#[test]
fn resolution_errors_point_at_the_file_line_or_the_override() {
    let dir = TempDir::new("config-resolve").unwrap();
    let file = dir.path().join("bad.ron");
    std::fs::write(
        &file,
        "(\n  model: (source_path: \"s\"),\n  optimization: (\n    lambda_dssim: 1.5,\n  ),\n)",
    )
    .unwrap();
    let message = resolve_training_config(Some(&file), &ConfigOverrides::new())
        .unwrap_err()
        .to_string();
    let expected = format!(
        "{}:4:5: optimization.lambda_dssim = 1.5: must be in [0, 1]",
        file.display()
    );
    assert_eq!(message, expected);

    let mut overrides = ConfigOverrides::new();
    overrides.push_set("optimization.lambda_dssim=2").unwrap();
    overrides.push_set("model.sh_degree=7").unwrap();
    let message = resolve_training_config(Some(&file), &overrides)
        .unwrap_err()
        .to_string();
    assert_eq!(
        message,
        "--set model.sh_degree=7: model.sh_degree = 7: must be in 0..=3\n\
         --set optimization.lambda_dssim=2: optimization.lambda_dssim = 2.0: must be in [0, 1]"
    );

    let message = resolve_training_config(Some(&dir.path().join("none.ron")), &overrides)
        .unwrap_err()
        .to_string();
    assert!(message.contains("none.ron"), "{message}");
}

#[test]
fn run_ids_are_ten_hex_characters_and_differ() {
    let a = random_run_id();
    let b = random_run_id();
    assert_eq!(a.len(), 10);
    assert!(
        a.chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)),
        "{a}"
    );
    assert_ne!(a, b);
}

// ---- locating fields in text ----

#[test]
fn locating_fields_ignores_comments_strings_and_nesting() {
    let text = "// (a: [\n(\n  model: ( /* x: ( */ source_path: \"a, b: (c\", images: r#\"i)\"#,\n    resolution: 2 ),\n  run: (test_iterations: [1, 2], seed: 3),\n)";
    let at = |line, column| {
        field_at(text, TextPosition { line, column }).map(|f| (f.path, f.value_text))
    };
    let pair = |p: &str, v: &str| Some((p.to_string(), v.to_string()));
    assert_eq!(at(1, 5), None);
    assert_eq!(at(3, 40), pair("model.source_path", "\"a, b: (c\""));
    assert_eq!(at(3, 60), pair("model.images", "r#\"i)\"#"));
    assert_eq!(at(4, 17), pair("model.resolution", "2"));
    assert_eq!(at(5, 30), pair("run.test_iterations", "[1, 2]"));
    assert_eq!(at(5, 40), pair("run.seed", "3"));
    assert_eq!(
        at(5, 36),
        pair("run", "(test_iterations: [1, 2], seed: 3)"),
        "on a key name"
    );
    assert_eq!(at(5, 3), None);
    let pos = |path| position_of_field(text, path).map(|p| (p.line, p.column));
    assert_eq!(pos("model.source_path"), Some((3, 23)));
    assert_eq!(pos("model.resolution"), Some((4, 5)));
    assert_eq!(pos("run.seed"), Some((5, 34)));
    assert_eq!(pos("x"), None);
    assert_eq!(pos("model.x"), None);
}

#[test]
fn suggestions_are_close_names_only() {
    let names = ["lambda_dssim", "iterations", "seed"];
    assert_eq!(closest_name("lamda_dssim", &names), Some("lambda_dssim"));
    assert_eq!(closest_name("iteration", &names), Some("iterations"));
    assert_eq!(closest_name("sed", &names), Some("seed"));
    assert_eq!(closest_name("learning_rate", &names), None);
    assert_eq!(edit_distance("kitten", "sitting"), 3);
    assert_eq!(edit_distance("", "abc"), 3);
}
