//! `netabase import FILE < data.jsonl`: records from JSON Lines, through the write
//! pipeline.

use std::io::BufRead;
use std::process::ExitCode;

use netabase_store::backend::Backend;
use netabase_store::backend::transform::Compression;
use netabase_store::codec::dynamic::Value;
use netabase_store::typed::dynamic::DynamicStore;

use crate::Target;
use crate::failure::{Failure, Outcome};
use crate::json::record;
use crate::open::{Values, find_model, open_for, with_store};
use crate::progress::Bar;

/// Reads every line of standard input, then stores the records in one transaction;
/// new values are encrypted when the store is, and compressed with `compression`.
pub fn run(target: &Target, compression: Option<Compression>) -> Outcome {
    let store = open_for(target, true, Values::Write(compression))?;
    with_store!(&store, s => import(s))
}

fn import<B: Backend>(s: &DynamicStore<B>) -> Outcome {
    let mut records: Vec<(String, Value)> = Vec::new();
    for (n, line) in std::io::stdin().lock().lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let at = |what: String| Failure(format!("line {}: {what}", n + 1));
        let json: serde_json::Value =
            serde_json::from_str(&line).map_err(|e| at(format!("not JSON: {e}")))?;
        let name = json
            .get("model")
            .and_then(|m| m.as_str())
            .ok_or_else(|| at("no \"model\" (the model's table, as `export` writes it)".into()))?;
        let model = find_model(s, name).map_err(|Failure(e)| at(e))?;
        let body = json
            .get("record")
            .ok_or_else(|| at("no \"record\"".into()))?;
        let value = record(model, body).map_err(|Failure(e)| at(e))?;
        records.push((model.table.clone(), value));
    }
    let total = records.len() as u64;
    let bar = Bar::new("importing");
    bar.set_total(total);
    let mut done = 0u64;
    let result = s.import(&mut records.into_iter().map(Ok), &mut |p| {
        done = p.done;
        bar.report(p);
    });
    bar.finish();
    match result {
        Ok(n) => {
            println!("imported {n} records");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Err(Failure(format!(
            "record {} of the input was refused, nothing was imported: {e}",
            done + 1
        ))),
    }
}
