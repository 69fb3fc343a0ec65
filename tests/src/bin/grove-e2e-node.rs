//! The `grove` CLI, built inside this package for the end-to-end tests (see Cargo.toml).

fn main() -> anyhow::Result<()> {
    grove_node::cli::main()
}
