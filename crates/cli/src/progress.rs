//! Drawing progress: an indicatif bar on a terminal, a plain line every few
//! seconds otherwise (logs and journald stay readable), nothing with --quiet.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use slipway_store::Progress;

use crate::human::bytes;

pub struct CliProgress {
    mode: Mode,
    state: Mutex<State>,
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Bar,
    Plain,
    Quiet,
}

struct State {
    bar: Option<ProgressBar>,
    phase: String,
    total: Option<u64>,
    done: u64,
    last_line: Instant,
}

impl CliProgress {
    pub fn new(quiet: bool) -> Self {
        let mode = if quiet {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() {
            Mode::Bar
        } else {
            Mode::Plain
        };
        Self {
            mode,
            state: Mutex::new(State {
                bar: None,
                phase: String::new(),
                total: None,
                done: 0,
                last_line: Instant::now(),
            }),
        }
    }
}

impl Progress for CliProgress {
    fn phase(&self, name: &str, total: Option<u64>) {
        let mut s = self.state.lock().expect("progress state");
        if let Some(b) = s.bar.take() {
            b.finish_and_clear();
        }
        s.phase = name.to_string();
        s.total = total;
        s.done = 0;
        s.last_line = Instant::now();
        match self.mode {
            Mode::Quiet => {}
            Mode::Plain => eprintln!("{name}{}", total.map(|t| format!(" ({})", bytes(t))).unwrap_or_default()),
            Mode::Bar => {
                let bar = match total {
                    Some(t) => ProgressBar::new(t).with_style(
                        ProgressStyle::with_template(
                            "{msg:>10} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                        )
                        .expect("template")
                        .progress_chars("=> "),
                    ),
                    None => ProgressBar::new_spinner()
                        .with_style(ProgressStyle::with_template("{msg:>10} {spinner} {elapsed}").expect("template")),
                };
                bar.set_draw_target(ProgressDrawTarget::stderr());
                bar.set_message(name.to_string());
                bar.enable_steady_tick(Duration::from_millis(120));
                s.bar = Some(bar);
            }
        }
    }

    fn advance(&self, n: u64) {
        let mut s = self.state.lock().expect("progress state");
        s.done += n;
        match self.mode {
            Mode::Bar => {
                if let Some(b) = &s.bar {
                    b.inc(n);
                }
            }
            Mode::Plain => {
                if s.last_line.elapsed() >= Duration::from_secs(5) {
                    s.last_line = Instant::now();
                    let pct = s.total.filter(|t| *t > 0).map(|t| format!(" {:.0}%", s.done as f64 * 100.0 / t as f64));
                    eprintln!("{}: {}{}", s.phase, bytes(s.done), pct.unwrap_or_default());
                }
            }
            Mode::Quiet => {}
        }
    }

    fn note(&self, message: &str) {
        if self.mode == Mode::Quiet {
            return;
        }
        let s = self.state.lock().expect("progress state");
        match &s.bar {
            Some(b) => b.suspend(|| eprintln!("note: {message}")),
            None => eprintln!("note: {message}"),
        }
    }

    fn finish(&self) {
        let mut s = self.state.lock().expect("progress state");
        if let Some(b) = s.bar.take() {
            b.finish_and_clear();
        }
    }
}
