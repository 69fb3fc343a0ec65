//! Parity between the simulator and real processes: one seeded scenario (which nodes
//! contribute, their values, the plan, one kill) runs through real `grove` daemons and then
//! through `grove-sim` on the same node ids, contributions and computation id. Both must
//! release the same values over the same contributor set.
//!
//! The plan is a function of the node ids and the request, so the test first rebuilds it from
//! the real node ids and checks that it is the plan the real commissioner printed; the sim
//! builds the same plan. The kill hits the same position in both: the member at one seeded leaf
//! position dies as it sends its partial sum up (in the daemon, the message never leaves; in
//! the sim, the crash follows the send). Node `i` contributes `2^e_i` for a seeded permutation
//! `e`, so a released sum names the contributors it covers.

use anyhow::Context;
use grove_e2e::{
    ctl, exact_set, grove_node, import_and_trust, start_armed_network, sum_params, TriggerSpec,
};
use grove_node::control::{ComputeParams, ControlRequest};
use grove_node::daemon::directory::node_id_of;
use grove_protocol::ids::{ComputationId, GroupId, Micros, NodeId};
use grove_protocol::plan::{PeerKeys, Plan, SortedDirectory};
use grove_protocol::request::CommissionerKey;
use grove_sim::config::SimConfig;
use grove_sim::sim::Fixture;
use libp2p::PeerId;
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

const EXE: &str = env!("CARGO_BIN_EXE_grove-e2e-node");
const NODES: usize = 12;
const SEED: u64 = 7;

/// splitmix64: the scenario's one random stream.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// The real computation's parameters: two leaf groups and the root, `g = 3`, `t = 2`. The
/// share window is long enough to arm the kill after the plan is known and before any
/// partial sum is sent.
fn params() -> ComputeParams {
    ComputeParams {
        leaf_groups: Some(2),
        share_window_ms: 3000,
        lifetime_secs: 60,
        ..sum_params("c", "x", 3, 2)
    }
}

/// The sim config of the same scenario: the real request's tree and timeouts
/// (`grove_node::owner::query::timeouts`), loopback-like links, the kill at `(0, index, position)`.
fn sim_config(index: u32, position: u8) -> anyhow::Result<SimConfig> {
    let p = params();
    let t = grove_node::owner::query::timeouts(p.share_window_ms);
    let ms = |us: u64| us as f64 / 1000.0;
    let text = format!(
        r#"
seed = {SEED}
[network]
nodes = {NODES}
selectivity = 1.0
[protocol]
g = {g}
t = {t_}
k_min = 1
fan_in = {fan_in}
# 11 possible contributors, 6 per leaf: 2 leaf groups, as the real request.
contributors_per_leaf = 6
backups = 2
lifetime_s = {lifetime}.0
strategy = "grove"
leaf_roster = false
# As the daemon runs the engine.
send_ahead = true
seed_compression = true
[protocol.timeouts]
share_window_ms = {sw}
collect_window_ms = {cw}
level_span_ms = {ls}
report_window_ms = {rw}
manifest_timeout_ms = {mt}
heal_attempt_ms = {ha}
release_window_ms = {rl}
[payload]
mode = "full"
# The sim's indicator, then the query's sum and count (its row indicator is the sim's).
vector_len = 3
value_max_abs = 1000000.0
[latency]
model = "fixed"
ms = 2.0
[bandwidth]
upload_kb_per_s = 100000.0
download_kb_per_s = 100000.0
charge_downlink = true
[cpu]
model = "per-kb"
crypto_ms_per_message = 0.1
crypto_on = "payload"
compute_us_per_kb = 1.0
[gossip]
fanout = 8
[failures]
detection_delay_ms = 20.0
oracle = false
oracle_delay_ms = 20.0
[[failures.kill]]
level = 0
index = {index}
position = {position}
after_send = "partial|partial-confirm"
[failures.uniform]
rate_percent_per_s = 0.0
probability = 1.0
[failures.churn]
mean_up_s = 0.0
rejoin = false
mean_down_s = 1.0
[checks]
privacy = true
sum = true
[run]
stop_after_result = true
max_sim_s = 60.0
max_events = 1000000
"#,
        g = p.g,
        t_ = p.t,
        fan_in = p.fan_in,
        lifetime = p.lifetime_secs,
        sw = ms(t.share_window),
        cw = ms(t.collect_window),
        ls = ms(t.level_span),
        rw = ms(t.report_window),
        mt = ms(t.manifest_timeout),
        ha = ms(t.heal_attempt),
        rl = ms(t.release_window),
    );
    let cfg = SimConfig::from_toml(&text).map_err(|e| anyhow::anyhow!(e))?;
    anyhow::ensure!(cfg.leaf_groups() == 2, "the sim must plan two leaf groups");
    Ok(cfg)
}

fn parse_id(hex: &str) -> anyhow::Result<[u8; 32]> {
    anyhow::ensure!(hex.len() == 64, "not 32 bytes of hex: {hex}");
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)?;
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_and_real_processes_agree_on_one_seeded_scenario() -> anyhow::Result<()> {
    let _serial = grove_e2e::serial().await;
    // The scenario: a permutation of exponents, who contributes, which leaf position dies.
    let mut rng = Rng(SEED);
    let mut exponent: Vec<u32> = (0..NODES as u32).collect();
    for i in (1..NODES).rev() {
        let j = (rng.next() % (i as u64 + 1)) as usize;
        exponent.swap(i, j);
    }
    // Node 0 is the commissioner: it never contributes (as in the sim).
    let contributes: Vec<bool> = (0..NODES)
        .map(|i| i != 0 && !rng.next().is_multiple_of(4))
        .collect();
    let values: Vec<Option<u64>> = (0..NODES)
        .map(|i| contributes[i].then(|| 1u64 << exponent[i]))
        .collect();
    let leaf = (rng.next() % 2) as u32;
    let mut position = (1 + rng.next() % 3) as u8;
    let expected_count = contributes.iter().filter(|c| **c).count();
    assert!(expected_count >= 3, "a scenario worth running");

    let (mut cluster, triggers) = start_armed_network(Path::new(EXE), NODES).await?;
    import_and_trust(&cluster, &values).await?;
    let mut ids = Vec::new();
    for i in 0..NODES {
        let status = ctl(&cluster, i, ControlRequest::Status).await?;
        let peer: PeerId = status["peer_id"].as_str().unwrap_or_default().parse()?;
        let id = node_id_of(&peer);
        assert_eq!(status["node_id"].as_str(), Some(id.to_string().as_str()));
        ids.push(id);
    }

    // The real run: launch, read the plan, arm the kill at the seeded position.
    let (plan, compute) = grove_e2e::launch(&cluster, 0, params()).await?;
    let computation = ComputationId(parse_id(plan["computation"].as_str().unwrap_or_default())?);
    let members = |level: u64, index: u32| -> Vec<NodeId> {
        plan["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|g| g["level"] == level && g["index"] == index)
            .flat_map(|g| g["members"].as_array().cloned().unwrap_or_default())
            .filter_map(|m| m.as_str().and_then(|p| p.parse::<PeerId>().ok()))
            .map(|p| node_id_of(&p))
            .collect()
    };
    // The commissioner never dies (in the sim it cannot): then the next position.
    if members(0, leaf).get(usize::from(position) - 1) == Some(&ids[0]) {
        position = position % 3 + 1;
    }
    let victim_id = members(0, leaf)[usize::from(position) - 1];
    let victim = ids
        .iter()
        .position(|id| *id == victim_id)
        .context("the victim is in the network")?;
    let pid = cluster.pid(victim).context("the victim runs")?;
    triggers.arm(
        "parity",
        &TriggerSpec::new("send", "partial|partial-confirm", Some(1), Some(position)).for_pid(pid),
    )?;
    let result = compute.await??;
    let fired = triggers
        .fired("parity")
        .context("the victim never sent its partial sum")?;
    assert_eq!(fired.pid, pid);
    let start = Instant::now();
    while !cluster.exited(victim) {
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(30),
            "the victim survived"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let by_exponent = exact_set(&result, NODES)?;
    let mut real_included: Vec<String> = (0..NODES)
        .filter(|&i| by_exponent >> exponent[i] & 1 == 1)
        .map(|i| ids[i].to_string())
        .collect();
    real_included.sort();

    // The plan is a function of the node ids and the request: rebuilt here, it is the real one.
    let request = grove_node::owner::query::build_request(
        &params(),
        computation,
        CommissionerKey([0; 32]),
        ids[0],
        Micros(1),
        NODES,
    )
    .map_err(|e| anyhow::anyhow!(e))?;
    let rebuilt = Plan::build(
        &request,
        &grove_protocol::plan::request_seed(&request, None),
        &SortedDirectory::new(ids.iter().map(|id| (*id, PeerKeys::default())).collect()),
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let groups: Vec<GroupId> = rebuilt.groups().collect();
    assert_eq!(groups.len(), 3);
    for g in groups {
        assert_eq!(
            rebuilt.members(g),
            members(u64::from(g.level), g.index),
            "{g:?}"
        );
    }

    // The same scenario in the simulator.
    let fixture = Fixture {
        nodes: ids.clone(),
        values: values
            .iter()
            .map(|v| v.map(|v| vec![1.0, v as f64, 1.0]))
            .collect(),
        computation,
    };
    let report = grove_sim::run_fixture(&sim_config(leaf, position)?, SEED, &fixture);
    assert!(report.checks.violations.is_empty(), "{report:?}");
    assert_eq!(report.summary.crashes, 1, "the sim killed its victim");
    let outcome = report
        .outcome
        .as_ref()
        .context("the sim released nothing")?;

    eprintln!(
        "leaf ({leaf}) position {position} (node {victim}) killed as it sent its partial sum;\n\
         real: {result}\nsim:  values {:?} over {} contributors, latency {:?} s",
        outcome.values,
        outcome.included.len(),
        report.latency_s
    );
    // The real vector is (sum, count, the row's indicator); the sim's is (its indicator,
    // sum, count): the same numbers in another order.
    let sim = &outcome.values;
    assert_eq!(sim.len(), 3, "{sim:?}");
    assert_eq!(
        vec![sim[1], sim[2], sim[0]],
        result["values"]
            .as_array()
            .map(|v| v.iter().filter_map(Value::as_f64).collect::<Vec<f64>>())
            .unwrap_or_default(),
        "the same result"
    );
    assert_eq!(outcome.included, real_included, "the same included set");
    Ok(())
}
