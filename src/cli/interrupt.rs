//! Ctrl-C: the first press asks the running training to stop after its current step (it then
//! saves a checkpoint and the PLY and the process exits with 130); a second press exits at once
//! (files are written atomically, so nothing half-written is left behind).

use std::sync::OnceLock;

use crate::train::StopRequest;

/// The process's stop request, wired to Ctrl-C on first use.
pub fn stop_on_ctrl_c() -> StopRequest {
    static STOP: OnceLock<StopRequest> = OnceLock::new();
    STOP.get_or_init(|| {
        let stop = StopRequest::default();
        let handler_stop = stop.clone();
        let installed = ctrlc::set_handler(move || {
            if handler_stop.is_requested() {
                eprintln!("\nInterrupted again: exiting now.");
                std::process::exit(130);
            }
            eprintln!(
                "\nInterrupted: finishing this step, then saving (Ctrl-C again to quit now)."
            );
            handler_stop.request();
        });
        if let Err(error) = installed {
            eprintln!("warning: cannot handle Ctrl-C ({error}); it will stop without saving");
        }
        stop
    })
    .clone()
}

/// The error a command returns after a stop request was honoured; `cli::main` turns it into
/// exit code 130 (the shell's code for SIGINT).
#[derive(Debug, thiserror::Error)]
#[error("interrupted at iteration {iteration}; saved {saved}")]
pub struct Interrupted {
    pub iteration: u32,
    pub saved: String,
}
