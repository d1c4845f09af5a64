//! `netabase inspect FILE`: what the database is and what it holds.

use std::process::ExitCode;

use crate::Target;
use crate::failure::Outcome;
use crate::open::{open, with_store};

use super::table_sizes;

/// Prints the format, engine, definitions, models and tables of `target`.
pub fn run(target: &Target) -> Outcome {
    let store = open(target, false)?;
    let engine = store.engine();
    with_store!(&store, s => {
        let format = s.format().map_or_else(|| "none (empty database)".to_owned(), |f| f.to_string());
        println!("{} ({engine}, format {format})", target.file.display());
        if netabase_store::backend::transform::Transformed::is_encrypted(s.backend().inner())? {
            println!("values: encrypted (XChaCha20-Poly1305); reading them needs --key-file");
        }
        let sizes = table_sizes(s.backend().inner())?;
        let entries = |table: &str| sizes.iter().find(|t| t.name == table).map_or(0, |t| t.entries);
        // The sync state of every synced model; an encrypted store read without its
        // key cannot show it.
        let synced = s.sync_models();
        let mut definition = "";
        for model in s.models() {
            if model.definition != definition {
                definition = &model.definition;
                println!("\ndefinition {definition}");
            }
            println!(
                "  model {} (version {}, table {}, {} records)",
                model.name,
                model.version,
                model.table,
                entries(&model.table)
            );
            let width = model.fields.iter().map(|f| f.name.len()).max().unwrap_or(0);
            let type_width = model.fields.iter().map(|f| f.type_name.len()).max().unwrap_or(0);
            for field in &model.fields {
                let mut role = if field.primary {
                    "primary key".to_owned()
                } else if let Some((table, unique)) = &field.index {
                    let kind = if *unique { "unique key" } else { "secondary key" };
                    format!("{kind} ({table}, {} entries)", entries(table))
                } else {
                    String::new()
                };
                for link in model.links.iter().filter(|l| l.field == field.name) {
                    let policy = match link.on_delete {
                        netabase_store::rules::OnDelete::Restrict => "restrict",
                        netabase_store::rules::OnDelete::Cascade => "cascade",
                        netabase_store::rules::OnDelete::SetNull => "set_null",
                    };
                    role.push_str(&format!(
                        "link to {} (on_delete {policy}; {}, {} entries)",
                        link.target,
                        link.table,
                        entries(link.table)
                    ));
                }
                let rules: Vec<String> = model
                    .rules
                    .iter()
                    .filter(|(f, _)| *f == field.name)
                    .map(|(_, rule)| crate::json::rule_text(rule))
                    .collect();
                if !rules.is_empty() {
                    if !role.is_empty() {
                        role.push_str("; ");
                    }
                    role.push_str(&format!("validate {}", rules.join(", ")));
                }
                let line = format!(
                    "    {:width$}  {:type_width$}  {role}",
                    field.name, field.type_name
                );
                println!("{}", line.trim_end());
            }
            if let Some(sync) = synced.iter().flatten().find(|m| m.table == model.table) {
                let writer: String = sync.writer.0[..4].iter().map(|b| format!("{b:02x}")).collect();
                println!(
                    "    sync on: {} versions, {} tombstones; this database writes as {writer}..",
                    sync.live, sync.tombstones
                );
            }
            if model.custom_validator {
                println!("    (a validator function checks the records: `import` needs --skip-custom-validators)");
            }
            if let Some(why) = model.undescribed() {
                println!("    (values not readable here: {why})");
            }
        }
        for (name, descriptor) in s.schemas() {
            if !s.models().iter().any(|m| &m.definition == name) {
                println!("\ndefinition {name} (no stored shape: written by an older netabase)");
                for line in descriptor.lines().skip(2) {
                    println!("  {line}");
                }
            }
        }
        if let Err(e) = &synced {
            println!("\nsync state not readable: {e}");
        }
        println!("\ntables");
        println!("  {:>10}  {:>12}  name", "entries", "bytes");
        for t in &sizes {
            println!("  {:>10}  {:>12}  {}", t.entries, t.key_bytes + t.value_bytes, t.name);
        }
    });
    Ok(ExitCode::SUCCESS)
}
