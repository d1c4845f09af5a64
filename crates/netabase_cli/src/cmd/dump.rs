//! `netabase dump FILE [--model M] [--json]`: the records, readable.

use std::io::Write;
use std::ops::ControlFlow;
use std::process::ExitCode;

use netabase_store::backend::Backend;
use netabase_store::typed::dynamic::{DynModel, DynamicStore};

use crate::Target;
use crate::failure::Outcome;
use crate::json::{readable, to_json};
use crate::open::{Values, find_model, open_for, with_store};
use crate::progress::Bar;

/// Prints every record of `model` (or of every model). A record that does not decode
/// is shown as an error line and the dump goes on; the exit status is then 1.
pub fn run(target: &Target, model: Option<&str>, json: bool) -> Outcome {
    let store = open_for(target, false, Values::Read)?;
    with_store!(&store, s => dump(s, model, json))
}

fn dump<B: Backend>(s: &DynamicStore<B>, model: Option<&str>, json: bool) -> Outcome {
    let models: Vec<&DynModel> = match model {
        Some(name) => vec![find_model(s, name)?],
        None => s.models().iter().collect(),
    };
    let mut out = std::io::stdout().lock();
    let mut failed = 0u64;
    for model in models {
        let total = s.len(&model.table)?;
        if !json {
            writeln!(out, "{} ({total} records)", model.table)?;
        }
        let bar = Bar::new(&model.table);
        bar.set_total(total);
        s.for_each(model, &mut |pk, record| {
            bar.inc();
            let line = match record {
                Ok(record) if json => serde_json::json!({
                    "model": model.table,
                    "record": to_json(&record),
                })
                .to_string(),
                Ok(record) => format!("  {}", readable(&record)),
                Err(e) => {
                    failed += 1;
                    eprintln!("netabase: {e}");
                    return Ok(ControlFlow::Continue(()));
                }
            };
            let _ = pk;
            // A closed pipe (`| head`) ends the dump quietly.
            if writeln!(out, "{line}").is_err() {
                return Ok(ControlFlow::Break(()));
            }
            Ok(ControlFlow::Continue(()))
        })?;
        bar.finish();
    }
    if failed > 0 {
        eprintln!("netabase: {failed} records could not be decoded");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
