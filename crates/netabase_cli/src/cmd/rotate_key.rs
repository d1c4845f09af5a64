//! `netabase rotate-key FILE --key-file OLD --new-key-file NEW`: re-encrypts every
//! value.

use std::path::Path;
use std::process::ExitCode;

use netabase_store::backend::transform::EncryptionKey;

use crate::Target;
use crate::failure::{Failure, Outcome};
use crate::open::{Values, open_for, with_store};
use crate::progress::Bar;

/// Rewrites every value of `target` under the key in `new_key_file`.
pub fn run(target: &Target, new_key_file: &Path) -> Outcome {
    if target.key_file.is_none() {
        return Err(Failure("give the current key with --key-file PATH".into()));
    }
    let bytes = std::fs::read(new_key_file).map_err(|e| {
        Failure(format!(
            "cannot read the key file {}: {e}",
            new_key_file.display()
        ))
    })?;
    let new = EncryptionKey::from_file_bytes(&bytes)?;
    let store = open_for(target, true, Values::Read)?;
    let bar = Bar::new("re-encrypting");
    let rewritten = with_store!(&store, s => s.backend().rotate_key(new, |p| {
        bar.report(netabase_store::typed::dynamic::Progress {
            table: p.table,
            done: p.done,
            total: p.total,
        });
    }))?;
    bar.finish();
    println!("re-encrypted {rewritten} values; the old key no longer opens the store");
    Ok(ExitCode::SUCCESS)
}
