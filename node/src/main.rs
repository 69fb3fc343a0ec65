//! `grove`: the Grove node daemon and CLI. See `grove --help` and the crate docs.

fn main() -> anyhow::Result<()> {
    grove_node::cli::main()
}
