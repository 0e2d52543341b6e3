//! Turn Ctrl-C into a flag while an evaluation runs; outside one it ends the process.
//!
//! signal-hook cannot restore SIGINT's default action once a handler is removed, so
//! two actions are registered once: one that sets the flag, and one that runs the
//! default action (terminate) while no evaluation runs. [`Evaluating`] switches
//! between them.

use signal_hook::consts::SIGINT;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

struct Flags {
    /// Set by SIGINT; taken by the waiting loop.
    interrupted: Arc<AtomicBool>,
    /// True while no evaluation runs: SIGINT then terminates.
    idle: Arc<AtomicBool>,
}

fn flags() -> &'static Flags {
    static FLAGS: OnceLock<Flags> = OnceLock::new();
    FLAGS.get_or_init(|| {
        let flags = Flags { interrupted: Arc::default(), idle: Arc::new(AtomicBool::new(true)) };
        // Registration fails only for a forbidden signal or when sigaction fails; then
        // Ctrl-C keeps its default action and simply ends the console.
        let _ = signal_hook::flag::register_conditional_default(SIGINT, flags.idle.clone());
        let _ = signal_hook::flag::register(SIGINT, flags.interrupted.clone());
        flags
    })
}

/// While alive, Ctrl-C sets a flag instead of ending the process.
#[must_use = "Ctrl-C is caught only while the guard lives"]
pub struct Evaluating {
    flags: &'static Flags,
}

impl Evaluating {
    /// Catch Ctrl-C until the guard drops.
    pub fn begin() -> Evaluating {
        let flags = flags();
        flags.interrupted.store(false, Ordering::SeqCst);
        flags.idle.store(false, Ordering::SeqCst);
        Evaluating { flags }
    }

    /// Whether Ctrl-C was pressed since the last call.
    pub fn take(&self) -> bool {
        self.flags.interrupted.swap(false, Ordering::SeqCst)
    }
}

impl Drop for Evaluating {
    fn drop(&mut self) {
        self.flags.idle.store(true, Ordering::SeqCst);
    }
}
