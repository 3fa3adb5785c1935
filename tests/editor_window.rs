//! The editor in a real window: under Xvfb (a virtual X server) on the software Vulkan
//! driver, it opens the demo scene, runs 30 frames, and exits cleanly on the quit request,
//! saving the run as closing the window does. `.ci/run` installs Xvfb.

use std::path::Path;
use std::process::Command;

use splatforge::fsutil::TempDir;

#[test]
fn editor_window_under_xvfb_runs_30_frames_and_exits_cleanly() {
    let dir = TempDir::new("editor-window").unwrap();
    let output = dir.path().join("run");
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("xvfb-run")
        .args(["-a", "-s", "-screen 0 1024x768x24"])
        .arg(env!("CARGO_BIN_EXE_splatforge"))
        .args(["editor", "-s"])
        .arg(manifest.join("assets/demo"))
        .arg("-m")
        .arg(&output)
        .args([
            "-r",
            "32",
            "--sh_degree",
            "1",
            "--frames",
            "30",
            "--size",
            "800x500",
        ])
        .arg("--layout")
        .arg(dir.path().join("layout.ron"))
        .env_remove("WAYLAND_DISPLAY")
        .output()
        .expect("xvfb-run starts (install the xvfb package; .ci/run does)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(output.join("config.ron").is_file());
    let checkpoints = std::fs::read_dir(&output)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "sfck")
        })
        .count();
    assert_eq!(checkpoints, 1, "quitting saves the run: {stderr}");
}
