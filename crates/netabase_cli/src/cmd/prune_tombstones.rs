//! `netabase prune-tombstones FILE --older-than 30d`: drops old tombstones of the
//! models with sync on.

use std::process::ExitCode;
use std::time::Duration;

use crate::Target;
use crate::failure::{Failure, Outcome};
use crate::open::{open, with_store};

/// Removes the tombstones older than `older_than` from every synced model of `target`,
/// in one transaction.
pub fn run(target: &Target, older_than: Duration) -> Outcome {
    let store = open(target, true)?;
    with_store!(&store, s => {
        if s.sync_models()?.is_empty() {
            println!("no model has sync on: nothing to prune");
            return Ok(ExitCode::SUCCESS);
        }
        let pruned = s.prune_tombstones(older_than)?;
        println!("pruned {pruned} tombstones older than {}", show(older_than));
    });
    Ok(ExitCode::SUCCESS)
}

/// Parses an age: a number followed by `s`, `m`, `h` or `d` (seconds when no unit).
pub fn parse_age(text: &str) -> Result<Duration, Failure> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().map_err(|_| {
        Failure(format!(
            "`{text}` is not an age: a number followed by s, m, h or d (e.g. 30d)"
        ))
    })?;
    let seconds = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        other => {
            return Err(Failure(format!(
                "`{other}` is not a unit of age: use s, m, h or d"
            )));
        }
    };
    n.checked_mul(seconds)
        .map(Duration::from_secs)
        .ok_or_else(|| Failure(format!("`{text}` is too long an age")))
}

/// An age as the user would write it.
fn show(age: Duration) -> String {
    let s = age.as_secs();
    match s {
        _ if s >= 86_400 && s.is_multiple_of(86_400) => format!("{}d", s / 86_400),
        _ if s >= 3_600 && s.is_multiple_of(3_600) => format!("{}h", s / 3_600),
        _ if s >= 60 && s.is_multiple_of(60) => format!("{}m", s / 60),
        _ => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_parse_with_and_without_units() {
        let ok = |t: &str| parse_age(t).map_err(|Failure(e)| e);
        assert_eq!(ok("90"), Ok(Duration::from_secs(90)));
        assert_eq!(ok("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(ok("12h"), Ok(Duration::from_secs(12 * 3_600)));
        assert_eq!(ok("5m"), Ok(Duration::from_secs(300)));
        assert!(ok("d").is_err());
        assert!(ok("3w").is_err());
        assert!(ok("99999999999999999999d").is_err());
        assert_eq!(show(Duration::from_secs(30 * 86_400)), "30d");
        assert_eq!(show(Duration::from_secs(90)), "90s");
    }
}
