//! `grove`: the Grove node daemon and CLI. See `grove --help` and the crate docs.

use std::process::ExitCode;

fn main() -> ExitCode {
    match grove_node::cli::main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
