//! `grove`: the Grove node daemon and CLI. The daemon, the libp2p adapter and the redb store
//! arrive with the node issue; until then this binary only reports its version.

use clap::Parser;

/// Grove: statistics over personal data that never leaves its owners.
#[derive(Parser, Debug)]
#[command(name = "grove", version, about)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    println!(
        "grove {}: the node daemon is not built yet; see README.md",
        env!("CARGO_PKG_VERSION")
    );
    Ok(())
}
