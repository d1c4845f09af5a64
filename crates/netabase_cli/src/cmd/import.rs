//! `netabase import FILE < data.jsonl`: records from JSON Lines, through the write
//! pipeline.

use std::io::BufRead;
use std::process::ExitCode;

use netabase_store::backend::Backend;
use netabase_store::backend::transform::Compression;
use netabase_store::codec::dynamic::Value;
use netabase_store::typed::dynamic::{DynamicStore, ImportOptions};

use crate::Target;
use crate::failure::{Failure, Outcome};
use crate::json::record;
use crate::open::{Values, find_model, open_for, with_store};
use crate::progress::Bar;

/// Reads every line of standard input, then stores the records in one transaction;
/// new values are encrypted when the store is, and compressed with `compression`.
pub fn run(target: &Target, compression: Option<Compression>, options: ImportOptions) -> Outcome {
    let store = open_for(target, true, Values::Write(compression))?;
    with_store!(&store, s => import(s, &options))
}

fn import<B: Backend>(s: &DynamicStore<B>, options: &ImportOptions) -> Outcome {
    let mut records: Vec<(String, Value)> = Vec::new();
    // The input line of each record, for the errors.
    let mut lines: Vec<usize> = Vec::new();
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
        lines.push(n + 1);
    }
    let total = records.len() as u64;
    let bar = Bar::new("importing");
    bar.set_total(total);
    let result = s.import(&mut records.into_iter().map(Ok), options, &mut |p| {
        bar.report(p);
    });
    bar.finish();
    match result {
        Ok(n) => {
            println!("imported {n} records");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            let line = e
                .record
                .and_then(|r| usize::try_from(r).ok())
                .and_then(|r| lines.get(r.wrapping_sub(1)))
                .map(|line| format!("line {line}, "))
                .unwrap_or_default();
            Err(Failure(format!("{line}{e}; nothing was imported")))
        }
    }
}
