//! Local clusters of real `grove daemon` processes, for `grove demo` and the end-to-end tests.
//!
//! Every daemon runs in its own process group, with standard input piped from us (the daemon
//! is started with `--exit-on-stdin-eof`, so it exits if we die without cleaning up). The
//! [`Cluster`] guard SIGKILLs every process group it started and removes its temporary data
//! dirs when dropped: on success, on error, on panic and on Ctrl-C (the demo turns Ctrl-C into
//! an error that unwinds to the guard).

use crate::control::{self, ControlRequest};
use anyhow::{bail, Context};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// Largest number of nodes one local cluster may start.
pub const MAX_CLUSTER_NODES: usize = 200;
const POLL: Duration = Duration::from_millis(50);

struct Running {
    child: Child,
    /// Held open: the daemon exits when it closes.
    _stdin: Option<ChildStdin>,
}

pub struct Slot {
    pub dir: PathBuf,
    running: Option<Running>,
    /// `peer multiaddr` once the daemon reported it.
    pub addr: Option<String>,
    pub peer_id: Option<String>,
    /// Extra environment of the daemon, set at every start (tests arm kill points with it).
    pub env: Vec<(String, String)>,
    /// Extra arguments of `grove daemon` at every start (`--console 127.0.0.1:0`).
    pub args: Vec<String>,
}

/// A guard over local daemons and their data dirs.
pub struct Cluster {
    exe: PathBuf,
    pub nodes: Vec<Slot>,
    /// Removed on drop, after every process is dead.
    root: Option<tempfile::TempDir>,
}

impl Cluster {
    /// A cluster whose data dirs live in a fresh temporary directory.
    pub fn new(exe: &Path) -> anyhow::Result<Cluster> {
        let root = tempfile::Builder::new()
            .prefix("grove-cluster-")
            .tempdir()
            .context("cannot create a temporary directory")?;
        Ok(Cluster {
            exe: exe.to_path_buf(),
            nodes: Vec::new(),
            root: Some(root),
        })
    }

    pub fn root(&self) -> &Path {
        match &self.root {
            Some(r) => r.path(),
            None => Path::new("."),
        }
    }

    /// Creates a node's data dir (keys, config, store) and returns its index.
    pub fn add_node(&mut self) -> anyhow::Result<usize> {
        if self.nodes.len() >= MAX_CLUSTER_NODES {
            bail!("at most {MAX_CLUSTER_NODES} nodes");
        }
        let i = self.nodes.len();
        let dir = self.root().join(format!("node-{i:03}"));
        crate::config::init(&dir)?;
        self.nodes.push(Slot {
            dir,
            running: None,
            addr: None,
            peer_id: None,
            env: Vec::new(),
            args: Vec::new(),
        });
        Ok(i)
    }

    pub fn dir(&self, i: usize) -> &Path {
        &self.nodes[i].dir
    }

    pub fn log_path(&self, i: usize) -> PathBuf {
        self.nodes[i].dir.join("daemon.log")
    }

    /// Starts node `i`'s daemon on an ephemeral loopback port.
    pub fn start(&mut self, i: usize, bootstrap: &[String]) -> anyhow::Result<()> {
        if self.nodes[i].running.is_some() {
            bail!("node {i} is already running");
        }
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path(i))?;
        let mut cmd = Command::new(&self.exe);
        cmd.arg("daemon")
            .arg("--data-dir")
            .arg(&self.nodes[i].dir)
            .args(["--listen", "/ip4/127.0.0.1/tcp/0", "--exit-on-stdin-eof"]);
        for b in bootstrap {
            cmd.arg("--bootstrap").arg(b);
        }
        cmd.args(&self.nodes[i].args);
        cmd.envs(self.nodes[i].env.iter().map(|(k, v)| (k, v)));
        cmd.stdin(Stdio::piped())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", self.exe.display()))?;
        let stdin = child.stdin.take();
        self.nodes[i].running = Some(Running {
            child,
            _stdin: stdin,
        });
        Ok(())
    }

    pub fn pid(&self, i: usize) -> Option<u32> {
        self.nodes[i].running.as_ref().map(|r| r.child.id())
    }

    pub fn is_running(&self, i: usize) -> bool {
        self.nodes[i].running.is_some()
    }

    /// Whether node `i`'s daemon was started and has exited (by itself or by a signal it sent
    /// itself); such a node is reaped and no longer running.
    pub fn exited(&mut self, i: usize) -> bool {
        let done = match self.nodes[i].running.as_mut() {
            Some(r) => matches!(r.child.try_wait(), Ok(Some(_))),
            None => false,
        };
        if done {
            self.kill(i);
        }
        done
    }

    /// SIGKILLs node `i`'s process group and reaps it.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut r) = self.nodes[i].running.take() {
            kill_group(r.child.id());
            let _ = r.child.kill();
            let _ = r.child.wait();
        }
    }

    /// Waits until node `i` answers `status` with a listen address.
    pub async fn wait_ready(&mut self, i: usize, timeout: Duration) -> anyhow::Result<()> {
        let start = Instant::now();
        loop {
            if let Some(r) = self.nodes[i].running.as_mut() {
                if let Ok(Some(status)) = r.child.try_wait() {
                    bail!(
                        "node {i} exited with {status} before it was ready; see {}",
                        self.log_path(i).display()
                    );
                }
            }
            if let Ok(s) =
                control::call(&self.nodes[i].dir, &ControlRequest::Status, |_, _| {}).await
            {
                let addr = s["listen"]
                    .as_array()
                    .and_then(|a| a.first())
                    .and_then(|a| a.as_str())
                    .map(str::to_string);
                if let Some(addr) = addr {
                    self.nodes[i].addr = Some(addr);
                    self.nodes[i].peer_id = s["peer_id"].as_str().map(str::to_string);
                    return Ok(());
                }
            }
            if start.elapsed() > timeout {
                bail!(
                    "node {i} was not ready within {timeout:?}; see {}",
                    self.log_path(i).display()
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until every running node's directory holds `peers` peers.
    pub async fn wait_directory(&self, peers: usize, timeout: Duration) -> anyhow::Result<()> {
        let start = Instant::now();
        loop {
            let mut lagging = Vec::new();
            for (i, n) in self.nodes.iter().enumerate() {
                if n.running.is_none() {
                    continue;
                }
                let s = control::call(&n.dir, &ControlRequest::Status, |_, _| {}).await;
                let seen = s
                    .ok()
                    .and_then(|s| s["directory_peers"].as_u64())
                    .unwrap_or(0);
                if seen < peers as u64 {
                    lagging.push((i, seen));
                }
            }
            if lagging.is_empty() {
                return Ok(());
            }
            if start.elapsed() > timeout {
                bail!("the peer directory did not converge within {timeout:?}: (node, peers seen) {lagging:?}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Kills every process and keeps the data dirs (for inspection after a failure).
    pub fn keep_dirs(&mut self) -> Option<PathBuf> {
        self.kill_all();
        self.root.take().map(|r| r.keep())
    }

    pub fn kill_all(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}

fn kill_group(pid: u32) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.kill_all();
        // `GROVE_TEST_LOGS=DIR` keeps every daemon's whole log, in a folder named after the
        // cluster's temporary root (several clusters may run in one test binary).
        if let Some(keep) = std::env::var_os("GROVE_TEST_LOGS") {
            let name = self
                .root()
                .file_name()
                .map(|n| n.to_os_string())
                .unwrap_or_default();
            let keep = PathBuf::from(keep).join(name);
            let _ = std::fs::create_dir_all(&keep);
            for i in 0..self.nodes.len() {
                let _ = std::fs::copy(self.log_path(i), keep.join(format!("node-{i}.log")));
            }
        }
        if std::thread::panicking() {
            // A failing test: show the end of every daemon's log before the dirs go.
            for i in 0..self.nodes.len() {
                let log = std::fs::read_to_string(self.log_path(i)).unwrap_or_default();
                let lines: Vec<&str> = log.lines().collect();
                eprintln!("---- node {i} log (last 15 lines)");
                for l in &lines[lines.len().saturating_sub(15)..] {
                    eprintln!("{l}");
                }
            }
        }
        // `root` (a TempDir) is removed when the fields drop, after every process is dead.
    }
}
