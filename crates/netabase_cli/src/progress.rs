//! Progress bars for walks over whole tables: drawn on standard error when it is a
//! terminal, hidden otherwise (so that pipes and tests see clean output).

use indicatif::{ProgressBar, ProgressStyle};
use netabase_store::typed::dynamic::Progress;

/// A bar that follows [`Progress`] reports.
pub struct Bar(ProgressBar);

impl Bar {
    /// A new bar labelled `what`.
    pub fn new(what: &str) -> Self {
        let bar = ProgressBar::new(0);
        if let Ok(style) =
            ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} records ({eta})")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(what.to_owned());
        Bar(bar)
    }

    /// Moves the bar to `p`.
    pub fn report(&self, p: Progress<'_>) {
        if p.total > 0 {
            self.0.set_length(p.total);
        }
        self.0.set_position(p.done);
        self.0.set_message(p.table.to_owned());
    }

    /// Advances by one record (walks that count themselves).
    pub fn inc(&self) {
        self.0.inc(1);
    }

    /// Sets the number of records to walk.
    pub fn set_total(&self, total: u64) {
        self.0.set_length(total);
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.0.finish_and_clear();
    }
}
