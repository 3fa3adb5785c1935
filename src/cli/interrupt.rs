//! Ctrl-C (SIGINT) and SIGTERM, what a cluster scheduler sends before it preempts or kills a
//! job: the first signal asks the running training to stop after its current step; it then
//! saves a checkpoint and the PLY, and the process exits with 128 + the signal's number (130
//! for Ctrl-C, 143 for SIGTERM). A second Ctrl-C exits at once (files are written atomically,
//! so nothing half-written is left behind); a repeated SIGTERM does not cut the save short.
//! Other signals (SIGHUP included, so `nohup` keeps working) keep their default behaviour.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicI32, Ordering};

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::train::StopRequest;

/// The first stop signal received (0: none yet).
static RECEIVED: AtomicI32 = AtomicI32::new(0);

/// The process's stop request, wired to SIGINT and SIGTERM on first use.
pub fn stop_on_interrupt() -> StopRequest {
    static STOP: OnceLock<StopRequest> = OnceLock::new();
    STOP.get_or_init(|| {
        let stop = StopRequest::default();
        let watcher = Signals::new([SIGINT, SIGTERM]).and_then(|mut signals| {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("splatforge-signals".into())
                .spawn(move || {
                    for signal in signals.forever() {
                        on_signal(signal, &stop);
                    }
                })
        });
        if let Err(error) = watcher {
            eprintln!(
                "warning: cannot handle Ctrl-C and SIGTERM ({error}); they will stop the \
                 process without saving"
            );
        }
        stop
    })
    .clone()
}

fn on_signal(signal: i32, stop: &StopRequest) {
    let first = RECEIVED
        .compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst)
        .is_ok();
    if first {
        let again = if signal == SIGINT {
            " (Ctrl-C again to quit now)"
        } else {
            ""
        };
        eprintln!(
            "\n{}: finishing this step, then saving{again}.",
            signal_name(signal)
        );
        stop.request();
    } else if signal == SIGINT {
        eprintln!("\nInterrupted again: exiting now.");
        std::process::exit(exit_code_for(SIGINT).into());
    } else {
        eprintln!("\n{} again: still saving.", signal_name(signal));
    }
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        SIGINT => "Interrupted (Ctrl-C)",
        SIGTERM => "Terminated (SIGTERM)",
        _ => "Signal",
    }
}

/// The shell's exit code for a process ended by `signal`.
fn exit_code_for(signal: i32) -> u8 {
    u8::try_from(128 + signal).unwrap_or(130)
}

/// The exit code of a command stopped by a signal: 128 + the first signal received (130, as
/// for Ctrl-C, if none was).
pub fn exit_code() -> u8 {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => exit_code_for(SIGINT),
        signal => exit_code_for(signal),
    }
}

/// The error a command returns after a stop request was honoured; `cli::main` turns it into
/// [`exit_code`].
#[derive(Debug, thiserror::Error)]
#[error("interrupted at iteration {iteration}; saved {saved}")]
pub struct Interrupted {
    pub iteration: u32,
    pub saved: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_the_shells() {
        assert_eq!(exit_code_for(SIGINT), 130);
        assert_eq!(exit_code_for(SIGTERM), 143);
        assert_eq!(exit_code(), 130, "no signal in unit tests");
    }
}
