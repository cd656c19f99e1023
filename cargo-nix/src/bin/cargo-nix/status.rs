//! Status output as cargo prints it: coloured status lines, warnings and errors on stderr, JSON
//! messages on stdout, and the progress bar, keeping every line above the bar.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Result;
use clap::ValueEnum;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle, TermLike};

/// When to show the progress bar (cargo's `term.progress.when`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ProgressWhen {
    /// When stderr is a terminal.
    Auto,
    /// Always, even when stderr is not a terminal.
    Always,
    /// Never.
    Never,
}

impl ProgressWhen {
    /// `--progress`, else `CARGO_TERM_PROGRESS_WHEN`, else `auto`.
    pub fn resolve(flag: Option<ProgressWhen>) -> Result<ProgressWhen> {
        if let Some(w) = flag {
            return Ok(w);
        }
        match std::env::var("CARGO_TERM_PROGRESS_WHEN") {
            Ok(v) if !v.is_empty() => ProgressWhen::from_str(&v, true)
                .map_err(|_| anyhow::anyhow!("CARGO_TERM_PROGRESS_WHEN: expected auto, always or never, got `{v}`")),
            _ => Ok(ProgressWhen::Auto),
        }
    }
}

/// stderr as indicatif's terminal when it is not a terminal (`--progress always`): the bar is
/// drawn with plain ANSI cursor movements, `CARGO_TERM_PROGRESS_WIDTH` or `COLUMNS` wide
/// (default 100).
#[derive(Debug)]
struct StderrTerm {
    width: u16,
}

impl StderrTerm {
    fn write(&self, s: &str) -> std::io::Result<()> {
        std::io::stderr().lock().write_all(s.as_bytes())
    }
}

impl TermLike for StderrTerm {
    fn width(&self) -> u16 {
        self.width
    }
    fn move_cursor_up(&self, n: usize) -> std::io::Result<()> {
        if n > 0 { self.write(&format!("\x1b[{n}A")) } else { Ok(()) }
    }
    fn move_cursor_down(&self, n: usize) -> std::io::Result<()> {
        if n > 0 { self.write(&format!("\x1b[{n}B")) } else { Ok(()) }
    }
    fn move_cursor_right(&self, n: usize) -> std::io::Result<()> {
        if n > 0 { self.write(&format!("\x1b[{n}C")) } else { Ok(()) }
    }
    fn move_cursor_left(&self, n: usize) -> std::io::Result<()> {
        if n > 0 { self.write(&format!("\x1b[{n}D")) } else { Ok(()) }
    }
    fn write_line(&self, s: &str) -> std::io::Result<()> {
        self.write(&format!("{s}\n"))
    }
    fn write_str(&self, s: &str) -> std::io::Result<()> {
        self.write(s)
    }
    fn clear_line(&self) -> std::io::Result<()> {
        self.write("\r\x1b[2K")
    }
    fn flush(&self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Prints cargo-style status lines on stderr, JSON messages on stdout, and the progress bar,
/// keeping every line above the bar.
pub struct Status {
    color: bool,
    /// The progress bar (hidden when not shown).
    pub bar: ProgressBar,
    /// Whether the bar has been shown and not yet cleared.
    bar_active: AtomicBool,
    /// `-q`: no status lines, warnings or bar (errors and rustc's diagnostics still show).
    pub quiet: bool,
}

impl Status {
    pub fn new(color: bool, progress: ProgressWhen) -> Status {
        let target = match progress {
            ProgressWhen::Never => None,
            ProgressWhen::Auto if !std::io::stderr().is_terminal() => None,
            ProgressWhen::Auto => Some(ProgressDrawTarget::stderr_with_hz(10)),
            ProgressWhen::Always if std::io::stderr().is_terminal() => Some(ProgressDrawTarget::stderr_with_hz(10)),
            ProgressWhen::Always => {
                let width = ["CARGO_TERM_PROGRESS_WIDTH", "COLUMNS"]
                    .iter()
                    .find_map(|v| std::env::var(v).ok().and_then(|c| c.parse().ok()))
                    .unwrap_or(100);
                Some(ProgressDrawTarget::term_like_with_hz(Box::new(StderrTerm { width }), 10))
            }
        };
        let bar = match target {
            None => ProgressBar::hidden(),
            Some(target) => {
                let template = if color {
                    "{prefix:>12.cyan.bold} [{bar:27}] {pos}/{len}: {wide_msg}"
                } else {
                    "{prefix:>12} [{bar:27}] {pos}/{len}: {wide_msg}"
                };
                let style = ProgressStyle::with_template(template).expect("a valid template").progress_chars("=> ");
                ProgressBar::with_draw_target(Some(0), target).with_style(style).with_prefix("Building")
            }
        };
        Status { color, bar, bar_active: AtomicBool::new(false), quiet: false }
    }

    /// Shows the bar for `total` units.
    pub fn start_progress(&self, total: usize) {
        if !self.bar.is_hidden() {
            self.bar.set_length(total as u64);
            self.bar_active.store(true, Ordering::Relaxed);
            self.bar.tick();
        }
    }

    /// Removes the bar (before "Finished" and anything printed after the build).
    pub fn finish_progress(&self) {
        if self.bar_active.swap(false, Ordering::Relaxed) {
            self.bar.finish_and_clear();
        }
    }

    /// Runs `f`, which prints, with the bar out of the way.
    pub fn print<R>(&self, f: impl FnOnce() -> R) -> R {
        if self.bar_active.load(Ordering::Relaxed) { self.bar.suspend(f) } else { f() }
    }

    pub fn line(&self, verb: &str, text: &str) {
        if self.quiet {
            return;
        }
        self.print(|| {
            let mut err = std::io::stderr().lock();
            if self.color {
                let _ = writeln!(err, "\x1b[1;32m{verb:>12}\x1b[0m {text}");
            } else {
                let _ = writeln!(err, "{verb:>12} {text}");
            }
        });
    }

    pub fn error(&self, text: &str) {
        self.labelled("error", "1;31", text);
    }

    pub fn warning(&self, text: &str) {
        if self.quiet {
            return;
        }
        self.labelled("warning", "1;33", text);
    }

    /// `label: text`, the label in bold `colour` (an SGR code) on a terminal.
    pub fn labelled(&self, label: &str, colour: &str, text: &str) {
        self.print(|| {
            if self.color {
                eprintln!("\x1b[{colour}m{label}\x1b[0m: {text}");
            } else {
                eprintln!("{label}: {text}");
            }
        });
    }

    /// Text that may carry ANSI colours (rustc's rendered diagnostics).
    pub fn raw(&self, text: &str) {
        if text.is_empty() {
            return;
        }
        let text = if self.color { text.to_owned() } else { nix_rs::strip_ansi(text) };
        self.print(|| {
            let mut err = std::io::stderr().lock();
            let _ = err.write_all(text.as_bytes());
            if !text.ends_with('\n') {
                let _ = err.write_all(b"\n");
            }
        });
    }

    /// One JSON message on stdout.
    pub fn json(&self, line: &str) {
        self.print(|| {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        });
    }
}

/// A command line as a shell would take it back: words with special characters single-quoted.
pub fn shell_join<S: AsRef<str>>(words: &[S]) -> String {
    let quote = |w: &str| {
        if !w.is_empty() && w.chars().all(|c| c.is_ascii_alphanumeric() || "_-./=:,+@%".contains(c)) {
            w.to_owned()
        } else {
            format!("'{}'", w.replace('\'', r"'\''"))
        }
    };
    words.iter().map(|w| quote(w.as_ref())).collect::<Vec<_>>().join(" ")
}
