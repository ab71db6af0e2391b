//! A progress bar on standard error for `tessera bench`: redrawn in place on a terminal, one
//! line per step otherwise (logs, CI).

use std::io::{IsTerminal, Write};
use std::time::Instant;

/// Steps done out of a known total.
#[derive(Debug)]
pub struct Progress {
    total: usize,
    done: usize,
    terminal: bool,
    started: Instant,
}

const WIDTH: usize = 30;

impl Progress {
    /// A bar for `total` steps.
    pub fn new(total: usize) -> Self {
        Progress {
            total: total.max(1),
            done: 0,
            terminal: std::io::stderr().is_terminal(),
            started: Instant::now(),
        }
    }

    /// Starts the next step, named `what`.
    pub fn step(&mut self, what: &str) {
        self.done = (self.done + 1).min(self.total);
        self.draw(what, 0.0, true);
    }

    /// Reports progress within the current step (`fraction` of it done).
    pub fn fraction(&mut self, what: &str, fraction: f64) {
        self.draw(what, fraction.clamp(0.0, 1.0), false);
    }

    fn draw(&self, what: &str, within: f64, new_step: bool) {
        let overall = ((self.done.saturating_sub(1)) as f64 + within) / self.total as f64;
        let filled = (overall * WIDTH as f64).round() as usize;
        let bar =
            format!("{}{}", "#".repeat(filled.min(WIDTH)), ".".repeat(WIDTH - filled.min(WIDTH)));
        let elapsed = self.started.elapsed().as_secs();
        let mut err = std::io::stderr().lock();
        if self.terminal {
            let _ = write!(err, "\r\x1b[2K[{bar}] {:>3.0}% {elapsed:>4}s  {what}", overall * 100.0);
        } else if new_step {
            let _ = writeln!(err, "[{bar}] {:>3.0}% {elapsed:>4}s  {what}", overall * 100.0);
        }
        let _ = err.flush();
    }

    /// Ends the bar.
    pub fn finish(&mut self) {
        let mut err = std::io::stderr().lock();
        let elapsed = self.started.elapsed().as_secs();
        if self.terminal {
            let _ = writeln!(err, "\r\x1b[2K[{}] 100% {elapsed:>4}s  done", "#".repeat(WIDTH));
        } else {
            let _ = writeln!(err, "done in {elapsed} s");
        }
    }
}
