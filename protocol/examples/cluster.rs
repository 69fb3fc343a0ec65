//! A local Grove network computing a real aggregate: N engines on the in-process cluster
//! harness (virtual clock, 5-40 ms links), each contributor holding its own monthly spending in
//! four categories. Some aggregators are killed in the middle of the computation. The example
//! prints the released result beside the plaintext answer computed directly from the same data.
//!
//! Run: `cargo run --release -p grove-protocol --features test-util --example cluster -- [NODES] [KILL] [SEED]`

use grove_protocol::encoding::ContributionSpec;
use grove_protocol::harness::{Cluster, HarnessConfig, LaunchParams};
use grove_protocol::ids::GroupId;
use rand_chacha::rand_core::RngCore;
use std::time::Instant;

const CATEGORIES: [&str; 4] = ["food", "transport", "housing", "leisure"];

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| {
            a.parse().unwrap_or_else(|_| {
                eprintln!(
                    "usage: cluster [NODES (default 1000)] [KILL (default 20)] [SEED (default 7)]"
                );
                std::process::exit(2)
            })
        })
        .collect();
    let nodes = args.first().copied().unwrap_or(1000).max(100) as usize;
    let kill = args.get(1).copied().unwrap_or(20) as usize;
    let seed = args.get(2).copied().unwrap_or(7);
    let contributors = nodes * 4 / 5;

    let wall = Instant::now();
    let mut cluster = Cluster::new(HarnessConfig::new(nodes, seed));
    // Each contributor's spending this month, in euros with cents, per category.
    let mut plaintext = [0.0f64; 4];
    for i in 1..=contributors {
        let values: Vec<f64> = (0..4)
            .map(|k| {
                let cents = cluster.rng().next_u64() % [60_000, 20_000, 150_000, 30_000][k];
                cents as f64 / 100.0
            })
            .collect();
        for (k, v) in values.iter().enumerate() {
            plaintext[k] += v;
        }
        cluster.set_counted_contribution(i, &values);
    }
    let mut params = LaunchParams::new(7, 5, (contributors as u32).div_ceil(16), 8, 4);
    params.spec = ContributionSpec::counted(4, 0.0, 5_000.0, 2);
    params.k_min = 100;
    println!(
        "grove cluster: {nodes} nodes, {contributors} contributors, groups of 7 with threshold 5, {} leaf groups",
        params.leaf_groups
    );
    let id = cluster.launch(0, &params);
    let plan = cluster.plan(&id).expect("the plan of a launched request");
    println!(
        "plan: depth {}, {} groups, computation {}",
        plan.depth(),
        plan.groups().count(),
        id
    );

    // Kill aggregators in the middle: one position of `kill` different groups across levels,
    // at moments spread over the collection and agreement phases.
    let groups: Vec<GroupId> = plan.groups().collect();
    let mut killed = Vec::new();
    for k in 0..kill.min(groups.len()) {
        let group = groups[(k * 7919) % groups.len()];
        let position = (k % plan.g as usize) as u8 + 1;
        let node = cluster
            .index_of(&plan.member(group, position))
            .expect("member");
        if node == 0 || killed.contains(&node) {
            continue;
        }
        let at = cluster.now.plus(100_000 + (k as u64 * 37_000) % 900_000);
        cluster.crash_at(node, at);
        killed.push(node);
    }
    println!(
        "killing {} aggregators with no warning during the run",
        killed.len()
    );

    let start = cluster.now;
    cluster.run(start.plus(120_000_000));
    let outcome = match cluster.outcome(&id) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("result check FAILED: {e}");
            std::process::exit(1);
        }
    };
    let Some(released) = &outcome.released else {
        eprintln!("no result was released: {:?}", outcome.failures);
        std::process::exit(1);
    };
    // The plaintext over exactly the contributors the result covers.
    let mut covered = [0.0f64; 4];
    for node in &outcome.included {
        let i = cluster.index_of(node).expect("included node");
        for (k, v) in cluster_values(&cluster, i).iter().enumerate() {
            covered[k] += v;
        }
    }
    println!();
    println!(
        "{:<10} {:>16} {:>22} {:>22}",
        "category", "grove result", "plaintext (included)", "plaintext (everyone)"
    );
    for k in 0..4 {
        println!(
            "{:<10} {:>16.2} {:>22.2} {:>22.2}",
            CATEGORIES[k],
            released.values[k + 1],
            covered[k],
            plaintext[k]
        );
    }
    println!();
    println!(
        "contributors included: {} of {} that finished sending ({:.2}% complete)",
        outcome.included.len(),
        outcome.finished_sending.len(),
        100.0 * outcome.completeness()
    );
    println!(
        "virtual time to result: {:.2} s; messages: {}; bytes: {}; privacy violations: {}",
        released.at.0.saturating_sub(start.0) as f64 / 1e6,
        cluster.traffic.messages,
        cluster.traffic.bytes,
        cluster.privacy_violations().len()
    );
    println!("wall time: {:.2} s", wall.elapsed().as_secs_f64());
    // The field sum is exact in cents; the plaintext is summed in floating point.
    let exact = (0..4).all(|k| (released.values[k + 1] - covered[k]).abs() < 0.005);
    if !exact || !cluster.privacy_violations().is_empty() {
        std::process::exit(1);
    }
}

/// Node `i`'s values (its contribution without the indicator in front).
fn cluster_values(cluster: &Cluster, i: usize) -> Vec<f64> {
    cluster
        .contribution(i)
        .map(|v| v.iter().skip(1).copied().collect())
        .unwrap_or_default()
}
