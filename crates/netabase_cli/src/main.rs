//! `netabase`: the command line of netabase databases. It reads and writes a redb file
//! or a sled directory without the program that defined its models, from the shapes
//! the store records in `__netabase/meta`.
#![deny(missing_docs)]

mod cmd;
mod failure;
mod json;
mod open;
mod progress;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use failure::Failure;

/// Inspect, check, dump, export, import, compact and prune netabase databases.
#[derive(Debug, Parser)]
#[command(name = "netabase", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The database a command works on.
#[derive(Debug, Args)]
struct Target {
    /// The database: a redb file or a sled directory.
    file: PathBuf,
    /// The storage engine; detected when omitted (a directory is sled, a file redb).
    #[arg(long, value_enum)]
    backend: Option<Engine>,
    /// A file holding the store's 32-byte encryption key (raw, or 64 hex digits), for
    /// a store whose values are encrypted.
    #[arg(long, value_name = "PATH")]
    key_file: Option<PathBuf>,
}

/// A storage engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Engine {
    /// A redb file.
    Redb,
    /// A sled directory.
    Sled,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Format, engine, definitions and models with their fields, keys and versions,
    /// and every table with its entries and size.
    Inspect(Target),
    /// Checks that every value decodes, that every index matches its records exactly,
    /// that unique values are held once, and runs the engine's own integrity check
    /// (redb). Exits with 1 and a report of every finding.
    Verify {
        #[command(flatten)]
        target: Target,
        /// Rebuild every index from the primary records, after copying the database
        /// to `<FILE>.backup-<seconds since 1970>`.
        #[arg(long)]
        repair: bool,
    },
    /// Prints the records of every model (or of one), readable without the program
    /// that wrote them.
    Dump {
        #[command(flatten)]
        target: Target,
        /// Only this model: its name (`User`) or its table (`BlogDefinition/User`).
        #[arg(long, short)]
        model: Option<String>,
        /// One JSON object per line instead of the readable form.
        #[arg(long)]
        json: bool,
    },
    /// Writes every record to standard output as JSON Lines: one
    /// `{"model": "<table>", "record": {...}}` per line, the input of `import`.
    Export {
        #[command(flatten)]
        target: Target,
        /// Only this model.
        #[arg(long, short)]
        model: Option<String>,
    },
    /// Reads JSON Lines (as `export` writes them) from standard input and stores every
    /// record through the write pipeline: field validation rules checked, link targets
    /// found (in the database or in the input), indexes and link indexes maintained,
    /// unique keys checked. All or nothing: one refused record leaves the database
    /// unchanged, and the error names its line, model, field and key.
    Import {
        #[command(flatten)]
        target: Target,
        /// Compress the imported values (they are encrypted when the store is).
        #[arg(long, value_enum)]
        compression: Option<Compressor>,
        /// Import records of models with a validator function (`validate = ..`)
        /// without running it. The function is the program's code, which this tool
        /// cannot run, so such models are refused unless this is given; their field
        /// rules (`#[validate(..)]`) are checked either way.
        #[arg(long)]
        skip_custom_validators: bool,
    },
    /// Compacts the database file, giving freed pages back to the file system (redb;
    /// sled compacts its segments by itself).
    Compact(Target),
    /// Entries, key and value bytes of every table, and the size on disk.
    Stats(Target),
    /// Removes the tombstones of models with sync on that are older than an age, in one
    /// transaction. A tombstone keeps a removal from being undone by a replica that
    /// still holds the record: prune only those older than the longest time a replica
    /// may stay out of reach.
    PruneTombstones {
        #[command(flatten)]
        target: Target,
        /// The age: a number followed by s, m, h or d (e.g. 30d).
        #[arg(long, value_name = "AGE", value_parser = parse_age)]
        older_than: std::time::Duration,
    },
    /// Re-encrypts every value with a new key, in one transaction (all or nothing).
    /// `--key-file` gives the current key.
    RotateKey {
        #[command(flatten)]
        target: Target,
        /// A file holding the new key (32 bytes, or 64 hexadecimal digits).
        #[arg(long, value_name = "PATH")]
        new_key_file: PathBuf,
    },
}

/// A compressor for imported values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Compressor {
    /// LZ4: fast.
    Lz4,
    /// zstd (level 3): smaller.
    Zstd,
}

/// The `--older-than` parser of `prune-tombstones`.
fn parse_age(text: &str) -> Result<std::time::Duration, String> {
    cmd::prune_tombstones::parse_age(text).map_err(|Failure(e)| e)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Inspect(target) => cmd::inspect::run(&target),
        Command::Verify { target, repair } => cmd::verify::run(&target, repair),
        Command::Dump {
            target,
            model,
            json,
        } => cmd::dump::run(&target, model.as_deref(), json),
        Command::Export { target, model } => cmd::export::run(&target, model.as_deref()),
        Command::Import {
            target,
            compression,
            skip_custom_validators,
        } => cmd::import::run(
            &target,
            compression.map(|c| match c {
                Compressor::Lz4 => netabase_store::backend::transform::Compression::Lz4,
                Compressor::Zstd => netabase_store::backend::transform::Compression::Zstd(3),
            }),
            netabase_store::typed::dynamic::ImportOptions::new()
                .skip_custom_validators(skip_custom_validators),
        ),
        Command::Compact(target) => cmd::compact::run(&target),
        Command::Stats(target) => cmd::stats::run(&target),
        Command::PruneTombstones { target, older_than } => {
            cmd::prune_tombstones::run(&target, older_than)
        }
        Command::RotateKey {
            target,
            new_key_file,
        } => cmd::rotate_key::run(&target, &new_key_file),
    };
    match result {
        Ok(code) => code,
        Err(Failure(message)) => {
            eprintln!("netabase: {message}");
            ExitCode::FAILURE
        }
    }
}
