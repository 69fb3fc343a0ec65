//! `grove-sim`: the simulator. The discrete-event core and its models arrive with the simulator
//! issue; until then it only reports its version.

use clap::Parser;

/// Simulates Grove computations with the real protocol engine.
#[derive(Parser, Debug)]
#[command(name = "grove-sim", version, about)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    println!(
        "grove-sim {}: not built yet; see README.md",
        env!("CARGO_PKG_VERSION")
    );
    Ok(())
}
