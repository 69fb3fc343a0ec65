//! A test that fails in the middle still cleans up: a panic while a cluster runs unwinds to the
//! cluster's guard, which SIGKILLs every daemon, reaps it and removes every data dir. This is
//! the path every end-to-end test takes when one of its assertions fails.

use grove_e2e::start_network;
use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::Pid;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};

const EXE: &str = env!("CARGO_BIN_EXE_grove-e2e-node");

#[test]
fn a_test_that_panics_leaves_no_process_and_no_directory() {
    let _serial = grove_e2e::serial_blocking();
    let (tx, rx) = std::sync::mpsc::channel::<(Vec<u32>, PathBuf)>();
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        // Like `#[tokio::test]`: the test's future, holding the cluster, runs in `block_on`.
        runtime.block_on(async {
            let cluster = start_network(Path::new(EXE), 2)
                .await
                .expect("two daemons start");
            let pids = (0..2).filter_map(|i| cluster.pid(i)).collect();
            tx.send((pids, cluster.root().to_path_buf()))
                .expect("the receiver waits");
            panic!("an assertion fails while the daemons run");
        })
    }));
    assert!(outcome.is_err(), "the inner test was meant to fail");
    let (pids, root) = rx.recv().expect("the cluster started");
    assert_eq!(pids.len(), 2);
    for pid in pids {
        let pid = Pid::from_raw(i32::try_from(pid).expect("a pid fits"));
        // Signal 0 checks existence: the daemon is dead and reaped.
        assert_eq!(kill(pid, None), Err(Errno::ESRCH), "daemon {pid} survived");
    }
    assert!(!root.exists(), "{} was not removed", root.display());
}
