//! Progress of long work: a bar on a terminal, nothing drawn otherwise (callers then write
//! periodic log lines, which a hidden bar tells them to do).

use indicatif::{ProgressBar, ProgressStyle};

/// A bar drawn with `template` when `shown` (hidden otherwise).
pub fn bar(template: &str, shown: bool) -> ProgressBar {
    let bar = if shown { ProgressBar::new(0) } else { ProgressBar::hidden() };
    bar.set_style(ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()));
    bar
}

/// [`bar`], shown when standard error is a terminal.
pub fn terminal_bar(template: &str) -> ProgressBar {
    bar(template, std::io::IsTerminal::is_terminal(&std::io::stderr()))
}
