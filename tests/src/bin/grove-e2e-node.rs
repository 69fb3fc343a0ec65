//! The `grove` CLI, built inside this package for the end-to-end tests (see Cargo.toml).

use std::process::ExitCode;

fn main() -> ExitCode {
    match grove_e2e::grove_node::cli::main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
