//! How far an import has got, on stderr (the summary goes to stdout): a progress bar with a
//! rate and an ETA on a terminal, a plain line every few seconds elsewhere (CI logs, journald),
//! where a redrawn bar would be noise.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::Event;

/// How often a line is written when stderr is not a terminal.
const LINE_EVERY: Duration = Duration::from_secs(5);

pub struct Progress {
    /// `None` off a terminal.
    bar: Option<ProgressBar>,
    total: u64,
    done: u64,
    users: u64,
    started: Instant,
    last_line: Instant,
}

impl Default for Progress {
    fn default() -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{bar:40} {percent:>3}% {msg}, ETA {eta}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.set_message("0 users read");
            bar
        });
        let now = Instant::now();
        Progress { bar, total: 0, done: 0, users: 0, started: now, last_line: now }
    }
}

impl Progress {
    pub fn observe(&mut self, event: &Event) {
        match event {
            Event::Total(total) => {
                self.total = *total;
                if let Some(bar) = &self.bar {
                    bar.set_length(*total);
                }
            }
            Event::Advanced(amount) => {
                self.done += amount;
                if let Some(bar) = &self.bar {
                    bar.set_position(self.done);
                    bar.set_message(self.rate());
                } else if self.last_line.elapsed() >= LINE_EVERY {
                    self.last_line = Instant::now();
                    eprintln!("import: {}{}", self.rate(), self.eta());
                }
            }
            Event::User(_) => self.users += 1,
            Event::Failure(_) => {}
        }
    }

    pub fn finish(&self) {
        match &self.bar {
            Some(bar) => bar.finish_and_clear(),
            None => eprintln!("import: {} in {:.1} s", self.rate(), self.started.elapsed().as_secs_f64()),
        }
    }

    fn rate(&self) -> String {
        let seconds = self.started.elapsed().as_secs_f64().max(1e-3);
        format!("{} users read, {:.0}/s", self.users, self.users as f64 / seconds)
    }

    fn eta(&self) -> String {
        if self.done == 0 || self.total <= self.done {
            return String::new();
        }
        let elapsed = self.started.elapsed().as_secs_f64();
        let left = elapsed * (self.total - self.done) as f64 / self.done as f64;
        format!(", {}% of the input, about {left:.0} s left", self.done * 100 / self.total)
    }
}
