//! `netabase export FILE > data.jsonl`: every record as JSON Lines.

use std::io::Write;
use std::ops::ControlFlow;
use std::process::ExitCode;

use netabase_store::NetabaseError;
use netabase_store::backend::Backend;
use netabase_store::typed::dynamic::{DynModel, DynamicStore};

use crate::Target;
use crate::failure::{Failure, Outcome};
use crate::json::to_json;
use crate::open::{Values, find_model, open_for, with_store};
use crate::progress::Bar;

/// Writes `{"model": "<table>", "record": {...}}` per record. An export must be
/// complete: the first record that does not decode ends it with an error.
pub fn run(target: &Target, model: Option<&str>) -> Outcome {
    let store = open_for(target, false, Values::Read)?;
    with_store!(&store, s => export(s, model))
}

fn export<B: Backend>(s: &DynamicStore<B>, model: Option<&str>) -> Outcome {
    let models: Vec<&DynModel> = match model {
        Some(name) => vec![find_model(s, name)?],
        None => s.models().iter().collect(),
    };
    if let Some(why) = models.iter().find_map(|m| m.undescribed()) {
        return Err(Failure(format!("cannot export: {why}")));
    }
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut written = 0u64;
    for model in models {
        let bar = Bar::new(&model.table);
        bar.set_total(s.len(&model.table)?);
        s.for_each(model, &mut |_, record| {
            bar.inc();
            let line = serde_json::json!({"model": model.table, "record": to_json(&record?)});
            writeln!(out, "{line}")
                .map_err(|e| NetabaseError::io("write the export to", "standard output", e))?;
            written += 1;
            Ok(ControlFlow::Continue(()))
        })?;
        bar.finish();
    }
    out.flush()?;
    eprintln!("exported {written} records");
    Ok(ExitCode::SUCCESS)
}
