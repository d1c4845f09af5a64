//! What a command reports when it cannot do its work.

use netabase_store::NetabaseError;

/// A message for the user; the command exits with status 1.
#[derive(Debug)]
pub struct Failure(pub String);

impl From<NetabaseError> for Failure {
    fn from(e: NetabaseError) -> Self {
        Failure(e.to_string())
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure(e.to_string())
    }
}

/// The result of a command.
pub type Outcome<T = std::process::ExitCode> = Result<T, Failure>;
