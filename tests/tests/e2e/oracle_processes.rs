//! A few of the oracle's random queries through real `grove` processes: twelve daemons
//! import the oracle's records, trust node 0, and every result `compute` prints equals the
//! reference evaluation over the records of the nodes that contributed, at `k_min = 2`: the
//! rows and histogram buckets of fewer contributors are withheld.

use grove_e2e::oracle::{self, Rng};
use grove_e2e::{commissioner_key, ctl, grove_node, query_params, start_network};
use grove_node::control::{ComputeParams, ControlRequest, TrustLimits};
use std::path::Path;

const EXE: &str = env!("CARGO_BIN_EXE_grove-e2e-node");
const NODES: usize = 12;
const QUERIES: usize = 3;
/// Not the harness test's seed: other records, other queries.
const SEED: u64 = 0x5eed_0001;
const K_MIN: u64 = 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_queries_through_real_processes_match_the_reference() -> anyhow::Result<()> {
    let _serial = grove_e2e::serial().await;
    let cluster = start_network(Path::new(EXE), NODES).await?;
    let records: Vec<_> = (0..NODES).map(|i| oracle::records(SEED, i)).collect();
    let key = commissioner_key(&cluster, 0).await?;
    for (i, r) in records.iter().enumerate() {
        if !r.is_empty() {
            ctl(
                &cluster,
                i,
                ControlRequest::Import {
                    collection: oracle::COLLECTION.into(),
                    records: r.clone(),
                },
            )
            .await?;
        }
        // Random queries may narrow one another: no differencing window here (the consent
        // test covers the rule).
        ctl(
            &cluster,
            i,
            ControlRequest::TrustAdd {
                key: key.clone(),
                collections: vec![oracle::COLLECTION.into()],
                label: "oracle".into(),
                min_contributors: 1,
                limits: TrustLimits {
                    differencing_window_secs: Some(0),
                    ..grove_e2e::test_limits()
                },
            },
        )
        .await?;
    }
    let mut rng = Rng::new(SEED);
    let mut ran = 0;
    while ran < QUERIES {
        let q = oracle::query(&mut rng);
        let contributing: Vec<_> = records
            .iter()
            .filter(|r| oracle::uses_any(&q, r))
            .cloned()
            .collect();
        // A query no node has a record for releases nothing; draw another.
        if contributing.is_empty() {
            continue;
        }
        let expected = oracle::evaluate(&q, &contributing);
        // A query whose every row counts fewer than k_min contributors releases nothing.
        if oracle::all_withheld(&expected, K_MIN) {
            continue;
        }
        let params = ComputeParams {
            k_min: K_MIN,
            ..query_params(&q.text(), 3, 2)
        };
        let result = ctl(&cluster, 0, ControlRequest::Compute(params)).await?;
        // Every node consented: those whose records match nothing sent zeros.
        assert_eq!(
            result["contributors"].as_u64(),
            Some(NODES as u64),
            "{}\n{result}",
            q.text()
        );
        if let Err(e) = oracle::compare(&q, &expected, &result["table"], K_MIN) {
            panic!("{e}\n{}\n{}", q.text(), result["text"]);
        }
        eprintln!("{}\n{}\n", q.text(), result["text"].as_str().unwrap_or(""));
        ran += 1;
    }
    Ok(())
}
