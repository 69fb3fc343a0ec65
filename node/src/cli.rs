//! The command line. Every command but `init`, `admit`, `daemon` and `demo` talks to the running
//! daemon over its control socket.

use crate::control::{self, ComputeParams, ControlRequest, TrustLimits};
use crate::sources::import::{self, Format};
use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Grove: statistics over personal data that never leaves its owners.
#[derive(Parser, Debug)]
#[command(name = "grove", version, about)]
pub struct Cli {
    /// The node's data directory.
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Create a node: identity keys, a commented config file and the store.
    Init,
    /// As an issuer: admit a node by signing its certificate (the node puts the printed
    /// certificate in its config's [admission] section), or create an issuer key.
    Admit {
        /// Create a new issuer key in FILE (mode 0600) and print its public key, which every
        /// node names in [admission] issuers.
        #[arg(long, value_name = "FILE", conflicts_with_all = ["issuer_key", "node"])]
        new_issuer: Option<PathBuf>,
        /// The issuer's secret key file.
        #[arg(long, value_name = "FILE", requires = "node")]
        issuer_key: Option<PathBuf>,
        /// The certificate's serial: 0 up to the issuer's quota, each used once.
        #[arg(long, default_value_t = 0)]
        serial: u32,
        /// The deployment's epoch length ([admission] epoch_secs).
        #[arg(long, default_value_t = crate::admission::DEFAULT_EPOCH_SECS)]
        epoch_secs: u64,
        /// The node to admit: its peer id or node id.
        #[arg(value_name = "NODE")]
        node: Option<String>,
    },
    /// Run the node.
    Daemon {
        /// Listen multiaddr (repeatable); overrides the config file.
        #[arg(long, value_name = "ADDR")]
        listen: Vec<String>,
        /// Peer to contact first (repeatable), added to the config file's list.
        #[arg(long, value_name = "MULTIADDR")]
        bootstrap: Vec<String>,
        /// Exit when standard input closes (used by `grove demo` and the tests, so that no
        /// daemon outlives the process that started it).
        #[arg(long, hide = true)]
        exit_on_stdin_eof: bool,
        /// Serve the owner's console on this loopback address (default 127.0.0.1:0, any free
        /// port), overriding console_listen; `grove console` prints its login link.
        #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:0")]
        console: Option<String>,
    },
    /// Print a one-time login link to the owner's console (the daemon must serve it:
    /// console_listen in the config, or `grove daemon --console`).
    Console,
    /// Requests waiting for the owner's answer (commissioners trusted with --ask).
    Requests {
        #[command(subcommand)]
        command: RequestsCmd,
    },
    /// The owner's records.
    Records {
        #[command(subcommand)]
        command: RecordsCmd,
    },
    /// Commissioners this node contributes to.
    Trust {
        #[command(subcommand)]
        command: TrustCmd,
    },
    /// Pull records from a Nextcloud account over WebDAV: files of its Grove folder (CSV,
    /// JSON), calendars (iCalendar) and contacts (vCard). Only files whose ETag changed are
    /// downloaded. Flags override the config file's [nextcloud] table.
    Sync {
        /// The server, e.g. https://cloud.example.org.
        #[arg(long)]
        url: Option<String>,
        #[arg(long)]
        user: Option<String>,
        /// A file holding the app password (the password itself is never a flag).
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
        /// The account's folder whose files are imported (default Grove).
        #[arg(long)]
        folder: Option<String>,
    },
    /// Peers, directory and computations in flight.
    Status,
    /// Every computation this node took part in or declined, and why (never values).
    Audit,
    /// Stop the running daemon.
    Stop,
    /// As commissioner: run a query over every consenting node and print its result table.
    Compute {
        /// The query text, e.g. "SELECT count(*), avg(steps) FROM activity CLIP steps TO
        /// [0, 50000]" (or --file).
        #[arg(value_name = "QUERY", required_unless_present = "file")]
        query: Option<String>,
        /// Read the query from this file.
        #[arg(long, conflicts_with = "query")]
        file: Option<PathBuf>,
        /// Group size (default: the planner's, from the network's size and round trips).
        #[arg(long)]
        g: Option<u8>,
        /// Threshold: shares needed to reconstruct (default: the planner's, the cheapest
        /// below the exposure target).
        #[arg(long)]
        t: Option<u8>,
        /// Fewest contributors a released cell (each GROUP BY row, each histogram bucket) may
        /// count; the root group withholds the others.
        #[arg(long, default_value_t = crate::owner::defaults::DEFAULT_MIN_K)]
        k_min: u64,
        /// Children per inner group (default: the planner's).
        #[arg(long)]
        fan_in: Option<u32>,
        /// Leaf groups (default: the planner's, within what the directory can fill).
        #[arg(long)]
        leaf_groups: Option<u32>,
        /// Contributors the request allows (default: the most the query's bounds allow).
        #[arg(long)]
        max_contributors: Option<u64>,
        /// How long leaf groups collect shares, in milliseconds (default: the planner's, at
        /// least 2000).
        #[arg(long)]
        share_window_ms: Option<u64>,
        /// The planner's exposure target: the largest acceptable probability that one
        /// contributor's value is revealed.
        #[arg(long, default_value_t = grove_protocol::planner::DEFAULT_EXPOSURE_TARGET)]
        exposure_target: f64,
        /// The fraction of nodes the exposure target assumes colluding.
        #[arg(long, default_value_t = grove_protocol::planner::DEFAULT_COLLUDING_FRACTION)]
        colluding_fraction: f64,
        /// Lifetime of the computation, in seconds.
        #[arg(long, default_value_t = 60)]
        lifetime_secs: u64,
    },
    /// Start a local network of separate grove processes and run a computation on it.
    Demo {
        #[arg(long, default_value_t = 20)]
        nodes: usize,
        /// Aggregators to SIGKILL in the middle of the computation.
        #[arg(long, default_value_t = 0)]
        kill: usize,
        #[arg(long, default_value_t = 5)]
        g: u8,
        #[arg(long, default_value_t = 3)]
        t: u8,
        /// The request's k_min and every node's floor: rows and histogram buckets of fewer
        /// contributors are withheld (shown as suppressed).
        #[arg(long, default_value_t = 5)]
        k_min: u64,
        /// Seed of the synthetic records.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value_t = 2000)]
        share_window_ms: u64,
        /// Keep the data dirs (and daemon logs) after the demo.
        #[arg(long)]
        keep: bool,
        /// The query to run over the synthetic collections bank.operations (date, category,
        /// amount), activity (date, age_band, steps) and model.updates (round, samples,
        /// update: 8 numbers). Default: spending by month.
        #[arg(long)]
        query: Option<String>,
        /// Read the query from this file.
        #[arg(long, conflicts_with = "query")]
        query_file: Option<PathBuf>,
        /// Afterwards, keep the network running with node 0's console open (the commissioner)
        /// and print its login link, until Ctrl-C.
        #[arg(long)]
        console: bool,
        /// Run without the local randomness beacon (plans seeded by the request id, which the
        /// commissioner picks). `--kill` always runs without it (victims are picked from the
        /// plan at launch, which a beacon round fixes only later).
        #[arg(long)]
        no_beacon: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum RecordsCmd {
    /// Import a CSV (with header), JSON (array of objects) or NDJSON file. A file with an error
    /// imports nothing.
    Import {
        #[arg(long)]
        collection: String,
        /// Format (default: from the file extension).
        #[arg(long, value_enum)]
        format: Option<Format>,
        file: PathBuf,
    },
    /// Import a Cozy data export: a folder or a zip of JSON documents grouped by doctype
    /// (io.cozy.bank.operations goes to the collection bank.operations). Documents are keyed
    /// by _id: importing again changes nothing, a newer _rev replaces an older one. Malformed
    /// files and documents are skipped and listed; the rest is imported.
    ImportCozy { export: PathBuf },
    /// List collections, or the records of one.
    List {
        #[arg(long)]
        collection: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum RequestsCmd {
    /// Requests waiting for an answer.
    List,
    /// Contribute to a waiting request (if every limit of its trust still holds).
    Approve { computation: String },
    /// Decline a waiting request: no share is sent.
    Decline { computation: String },
}

#[derive(Subcommand, Debug)]
pub enum TrustCmd {
    /// Trust a commissioner key (64 hex digits), within limits. Without this, a node
    /// declines every request.
    Add {
        key: String,
        /// Collections it may compute over (comma separated; default: all).
        #[arg(long, value_delimiter = ',')]
        collections: Vec<String>,
        /// Fields its queries may read (comma separated; default: all).
        #[arg(long, value_delimiter = ',')]
        fields: Vec<String>,
        /// A name for this commissioner.
        #[arg(long, alias = "label", default_value = "")]
        name: String,
        /// Refuse requests whose k_min (fewest contributors a released cell may count) is
        /// lower.
        #[arg(long, alias = "min-contributors", default_value_t = crate::owner::defaults::DEFAULT_MIN_K)]
        min_k: u64,
        /// Refuse requests whose group threshold t is lower (at least 2).
        #[arg(long, default_value_t = crate::owner::defaults::DEFAULT_MIN_T)]
        min_t: u8,
        /// Computations per 24 hours this commissioner may have this node in.
        #[arg(long, default_value_t = crate::owner::defaults::DEFAULT_MAX_PER_DAY)]
        max_per_day: u32,
        /// Window of the differencing rule, in seconds.
        #[arg(long, default_value_t = crate::owner::defaults::DEFAULT_DIFFERENCING_WINDOW_SECS)]
        differencing_window: u64,
        /// Refuse queries that declare more GROUP BY keys (or buckets).
        #[arg(long, default_value_t = crate::owner::defaults::DEFAULT_MAX_GROUP_KEYS)]
        max_group_keys: u32,
        /// Let the same query run again inside the differencing window (by default a repeat
        /// is declined).
        #[arg(long)]
        allow_repeats: bool,
        /// Ask the owner before contributing: a request that passes every limit waits, within
        /// its share window, for `grove requests approve` (or the console).
        #[arg(long)]
        ask: bool,
        /// A privacy budget: the epsilon (at delta 1e-9, by zCDP composition) this
        /// commissioner may spend on this node's records per 30 days; it then gets only
        /// queries WITH PRIVACY, and none once the budget is spent.
        #[arg(long)]
        epsilon_per_month: Option<f64>,
    },
    List,
    Remove {
        key: String,
    },
}

/// A stored trust entry's limits, one per line, as `grove trust add` and `list` show them.
fn trust_limits(e: &serde_json::Value) -> Vec<String> {
    let list = |v: &serde_json::Value, all: &str| {
        v.as_array()
            .filter(|a| !a.is_empty())
            .map(|a| a.iter().map(str_of).collect::<Vec<_>>().join(","))
            .unwrap_or_else(|| all.into())
    };
    let mut lines = vec![
        format!("collections: {}", list(&e["collections"], "all")),
        format!("fields: {}", list(&e["fields"], "all")),
        format!("k_min >= {}", e["min_contributors"]),
        format!("t >= {}", e["min_t"]),
        format!("GROUP BY keys <= {}", e["max_group_keys"]),
        format!("computations per day <= {}", e["max_per_day"]),
        format!("differencing window: {} s", e["differencing_window_secs"]),
        format!(
            "repeats: {}",
            if e["allow_repeats"].as_bool() == Some(true) {
                "allowed"
            } else {
                "declined"
            }
        ),
        format!("mode: {}", e["mode"].as_str().unwrap_or("auto")),
    ];
    // Only a trust with a privacy budget has this line (`owner/budget.rs`).
    if let Some(m) = e["epsilon_per_month_milli"].as_u64() {
        lines.push(format!(
            "privacy budget: epsilon {} per 30 days; spent: {}",
            m as f64 / 1000.0,
            e["privacy_spent"].as_str().unwrap_or("nothing yet")
        ));
    }
    lines
}

fn data_dir(cli: &Cli) -> anyhow::Result<&Path> {
    cli.data_dir
        .as_deref()
        .context("--data-dir DIR is required for this command")
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("grove_node=info,warn"));
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}

/// Runs the command line.
pub fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // A daemon is one event loop plus its connections' tasks; one thread runs them without
    // the cross-thread wake-ups a work-stealing pool pays on every packet (many daemons may
    // share a machine). The other commands keep a small pool.
    let runtime = if matches!(cli.command, Cmd::Daemon { .. }) {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?
    };
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match &cli.command {
        Cmd::Init => {
            let dir = data_dir(&cli)?;
            let keys = crate::config::init(dir)?;
            let peer = keys.libp2p.public().to_peer_id();
            let commissioner =
                grove_protocol::ids::hex(&keys.commissioner.verifying_key().to_bytes());
            if cli.json {
                println!(
                    "{}",
                    serde_json::json!({"data_dir": dir, "peer_id": peer.to_base58(), "commissioner_key": commissioner})
                );
            } else {
                println!("created a Grove node in {}", dir.display());
                println!("peer id:          {peer}");
                println!("commissioner key: {commissioner}");
                println!(
                    "config:           {}",
                    crate::config::config_path(dir).display()
                );
                println!(
                    "admission:        where the network admits identities, give the peer id to an\n                  issuer (`grove admit --issuer-key FILE --serial N {peer}`) and put the\n                  certificate it prints in [admission] of the config"
                );
            }
            Ok(())
        }
        Cmd::Admit {
            new_issuer,
            issuer_key,
            serial,
            epoch_secs,
            node,
        } => {
            if let Some(path) = new_issuer {
                let key = crate::admission::new_issuer(path)?;
                if cli.json {
                    println!("{}", serde_json::json!({"issuer_key": key}));
                } else {
                    println!("issuer key (name it in [admission] issuers): {key}");
                }
                return Ok(());
            }
            let (Some(path), Some(node)) = (issuer_key, node) else {
                bail!("give --new-issuer FILE, or --issuer-key FILE and the node to admit");
            };
            let issuer = crate::admission::load_issuer(path)?;
            let node = crate::admission::parse_node(node)?;
            let cert = crate::admission::admit(&issuer, node, *serial, *epoch_secs);
            let text = crate::admission::encode_certificate(&cert);
            if cli.json {
                println!(
                    "{}",
                    serde_json::json!({"node_id": node.to_string(), "serial": serial, "epoch": cert.epoch, "certificate": text})
                );
            } else {
                println!("certificate = \"{text}\"");
            }
            Ok(())
        }
        Cmd::Daemon {
            listen,
            bootstrap,
            exit_on_stdin_eof,
            console,
        } => {
            init_tracing();
            crate::daemon::run(crate::daemon::DaemonArgs {
                data_dir: data_dir(&cli)?.to_path_buf(),
                listen: listen.clone(),
                bootstrap: bootstrap.clone(),
                exit_on_stdin_eof: *exit_on_stdin_eof,
                console: console.clone(),
            })
            .await
        }
        Cmd::Console => {
            let d = call(&cli, ControlRequest::ConsoleLink).await?;
            print(&cli, &d, |d| {
                format!(
                    "{}
(open it in a browser on this machine; it works once, within 10 minutes)",
                    str_of(&d["link"])
                )
            });
            Ok(())
        }
        Cmd::Requests { command } => {
            let request = match command {
                RequestsCmd::List => ControlRequest::RequestsList,
                RequestsCmd::Approve { computation } => ControlRequest::RequestAnswer {
                    computation: computation.clone(),
                    approve: true,
                },
                RequestsCmd::Decline { computation } => ControlRequest::RequestAnswer {
                    computation: computation.clone(),
                    approve: false,
                },
            };
            let d = call(&cli, request).await?;
            print(&cli, &d, requests_text);
            Ok(())
        }
        Cmd::Records { command } => match command {
            RecordsCmd::ImportCozy { export } => {
                crate::sources::cozy::import_command(data_dir(&cli)?, export, cli.json).await
            }
            RecordsCmd::Import {
                collection,
                format,
                file,
            } => {
                let format = format.or_else(|| Format::from_path(file)).context(
                    "cannot tell the format from the file name: pass --format csv|json|ndjson",
                )?;
                let text = std::fs::read_to_string(file)
                    .with_context(|| format!("cannot read {}", file.display()))?;
                let records = import::parse(&text, format).map_err(|e| {
                    anyhow::anyhow!("{}: {e}; nothing was imported", file.display())
                })?;
                let data = call(
                    &cli,
                    ControlRequest::Import {
                        collection: collection.clone(),
                        records,
                    },
                )
                .await?;
                print(&cli, &data, |d| {
                    format!(
                        "imported {} records into collection {}",
                        d["imported"], d["collection"]
                    )
                });
                Ok(())
            }
            RecordsCmd::List { collection } => {
                let data = call(
                    &cli,
                    ControlRequest::ListRecords {
                        collection: collection.clone(),
                    },
                )
                .await?;
                print(&cli, &data, |d| {
                    if let Some(cs) = d["collections"].as_array() {
                        if cs.is_empty() {
                            return "no records".into();
                        }
                        cs.iter()
                            .map(|c| format!("{}\t{} records", str_of(&c["name"]), c["records"]))
                            .collect::<Vec<_>>()
                            .join("\n")
                    } else {
                        let rows: Vec<String> = d["records"]
                            .as_array()
                            .map(|r| r.iter().map(|x| x.to_string()).collect())
                            .unwrap_or_default();
                        format!("{}\n({} records)", rows.join("\n"), d["total"])
                    }
                });
                Ok(())
            }
        },
        Cmd::Trust { command } => {
            let request = match command {
                TrustCmd::Add {
                    key,
                    collections,
                    fields,
                    name,
                    min_k,
                    min_t,
                    max_per_day,
                    differencing_window,
                    max_group_keys,
                    allow_repeats,
                    ask,
                    epsilon_per_month,
                } => ControlRequest::TrustAdd {
                    key: key.clone(),
                    collections: collections.clone(),
                    label: name.clone(),
                    min_contributors: *min_k,
                    limits: TrustLimits {
                        fields: fields.clone(),
                        max_per_day: Some(*max_per_day),
                        min_t: Some(*min_t),
                        differencing_window_secs: Some(*differencing_window),
                        max_group_keys: Some(*max_group_keys),
                        allow_repeats: *allow_repeats,
                        mode: Some(if *ask {
                            crate::store::TrustMode::Ask
                        } else {
                            crate::store::TrustMode::Auto
                        }),
                        epsilon_per_month: *epsilon_per_month,
                    },
                },
                TrustCmd::List => ControlRequest::TrustList,
                TrustCmd::Remove { key } => ControlRequest::TrustRemove { key: key.clone() },
            };
            let data = call(&cli, request).await?;
            print(&cli, &data, |d| {
                if let Some(list) = d["trusted"].as_array() {
                    if list.is_empty() {
                        return "no trusted commissioners".into();
                    }
                    list.iter()
                        .map(|e| {
                            format!(
                                "{}\t{}\t{}",
                                str_of(&e["key"]),
                                str_of(&e["label"]),
                                trust_limits(e).join("; ")
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("\n")
                } else if let Some(k) = d["removed"].as_str() {
                    format!("no longer trusted: {k}")
                } else {
                    // The limits as stored, defaults filled in.
                    let mut out = format!("trusted: {}", str_of(&d["key"]));
                    if let Some(label) = d["label"].as_str().filter(|l| !l.is_empty()) {
                        out.push_str(&format!(" ({label})"));
                    }
                    for line in trust_limits(d) {
                        out.push_str(&format!("\n  {line}"));
                    }
                    out
                }
            });
            Ok(())
        }
        Cmd::Sync {
            url,
            user,
            password_file,
            folder,
        } => {
            let flags = crate::sources::webdav::SyncFlags {
                url: url.clone(),
                user: user.clone(),
                password_file: password_file.clone(),
                folder: folder.clone(),
            };
            crate::sources::webdav::sync_command(data_dir(&cli)?, flags, cli.json).await
        }
        Cmd::Status => {
            let d = call(&cli, ControlRequest::Status).await?;
            print(&cli, &d, |d| {
                let inflight = d["computations_in_flight"]
                    .as_array()
                    .map_or(0, |a| a.len());
                format!(
                    "peer id:            {}\nnode id:            {}\nlisten:             {}\nconnected peers:    {}\ndirectory peers:    {}\ncomputations:       {inflight} in flight\ncommissioner key:   {}\nmessages sent:      {}\nmessages received:  {}\nmessages refused:   {}",
                    str_of(&d["peer_id"]),
                    str_of(&d["node_id"]),
                    d["listen"].as_array().map(|a| a.iter().map(str_of).collect::<Vec<_>>().join(" ")).unwrap_or_default(),
                    d["connected_peers"],
                    d["directory_peers"],
                    str_of(&d["commissioner_key"]),
                    d["sent"],
                    d["received"],
                    d["rejected"],
                )
            });
            Ok(())
        }
        Cmd::Stop => {
            let d = call(&cli, ControlRequest::Shutdown).await?;
            print(&cli, &d, |_| "the daemon is stopping".into());
            Ok(())
        }
        Cmd::Audit => {
            let d = call(&cli, ControlRequest::Audit).await?;
            print(&cli, &d, |d| {
                d["entries"]
                    .as_array()
                    .map(|es| {
                        es.iter()
                            .map(|e| {
                                let rule = e["rule"]
                                    .as_str()
                                    .map(|r| format!(" [{r}]"))
                                    .unwrap_or_default();
                                format!(
                                    "{}\t{}{rule}\t{}\t{}",
                                    e["at_micros"],
                                    str_of(&e["kind"]),
                                    str_of(&e["computation"]),
                                    str_of(&e["detail"])
                                )
                            })
                            .collect::<Vec<_>>()
                            .join("\n")
                    })
                    .unwrap_or_default()
            });
            Ok(())
        }
        Cmd::Compute {
            query,
            file,
            g,
            t,
            k_min,
            fan_in,
            leaf_groups,
            max_contributors,
            share_window_ms,
            lifetime_secs,
            exposure_target,
            colluding_fraction,
        } => {
            let query = match (query, file) {
                (Some(q), _) => q.clone(),
                (None, Some(f)) => std::fs::read_to_string(f)
                    .with_context(|| format!("cannot read {}", f.display()))?,
                (None, None) => bail!("give a query, or --file FILE"),
            };
            // Errors in the query and the parameters are reported here, before anything is
            // launched.
            let compiled = crate::owner::query::compile(&query).map_err(|e| anyhow::anyhow!(e))?;
            if let (Some(g), Some(t)) = (g, t) {
                crate::owner::query::check_threshold(*g, *t).map_err(|e| anyhow::anyhow!(e))?;
            }
            // The planner picks what the flags leave open, from the daemon's view of the
            // network (its size and measured round trips).
            let status = call(&cli, ControlRequest::Status).await?;
            let net = crate::owner::query::NetworkEstimate::from_status(&status);
            let flags = crate::owner::query::PlanFlags {
                g: *g,
                t: *t,
                fan_in: *fan_in,
                leaf_groups: *leaf_groups,
                share_window_ms: *share_window_ms,
                goal: grove_protocol::planner::ExposureGoal {
                    target: *exposure_target,
                    colluding_fraction: *colluding_fraction,
                },
            };
            let planned =
                crate::owner::query::plan_compute(&flags, &net, compiled.spec().length, *k_min)
                    .map_err(|e| anyhow::anyhow!(e))?;
            for line in &planned.report {
                eprintln!("{line}");
            }
            crate::owner::query::check_threshold(planned.g, planned.t)
                .map_err(|e| anyhow::anyhow!(e))?;
            let params = ComputeParams {
                query,
                g: planned.g,
                t: planned.t,
                k_min: *k_min,
                leaf_groups: planned.leaf_groups,
                fan_in: planned.fan_in,
                max_contributors: *max_contributors,
                share_window_ms: planned.share_window_ms,
                lifetime_secs: *lifetime_secs,
            };
            let json = cli.json;
            let dir = data_dir(&cli)?;
            let d = control::call(dir, &ControlRequest::Compute(params), |m, _| {
                if !json {
                    eprintln!("{m}");
                }
            })
            .await?;
            print(&cli, &d, control::result_text);
            Ok(())
        }
        Cmd::Demo {
            nodes,
            kill,
            g,
            t,
            k_min,
            seed,
            share_window_ms,
            keep,
            query,
            query_file,
            console,
            no_beacon,
        } => {
            if std::env::var_os("RUST_LOG").is_some() {
                init_tracing();
            }
            let query = match (query, query_file) {
                (Some(q), _) => Some(q.clone()),
                (None, Some(f)) => Some(
                    std::fs::read_to_string(f)
                        .with_context(|| format!("cannot read {}", f.display()))?,
                ),
                (None, None) => None,
            };
            crate::demo::run(crate::demo::DemoArgs {
                nodes: *nodes,
                kill: *kill,
                json: cli.json,
                seed: *seed,
                g: *g,
                t: *t,
                k_min: *k_min,
                share_window_ms: *share_window_ms,
                keep: *keep,
                query,
                console: *console,
                beacon: !*no_beacon,
            })
            .await
        }
    }
}

/// Waiting requests, or the outcome of an answer, as text.
fn requests_text(d: &Value) -> String {
    if let Some(outcome) = d["outcome"].as_str() {
        return format!("{}: {outcome}", str_of(&d["computation"]));
    }
    let list = d["pending"].as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        return "no request waits for an answer".into();
    }
    let now = crate::clock::now_micros().0;
    list.iter()
        .map(|p| {
            format!(
                "{}\tcommissioner {} ({})\t{} s left\tk_min {} t {}\t{}",
                str_of(&p["computation"]),
                str_of(&p["commissioner"]),
                str_of(&p["label"]),
                p["answer_by_micros"]
                    .as_u64()
                    .unwrap_or(0)
                    .saturating_sub(now)
                    / 1_000_000,
                p["k_min"],
                p["t"],
                str_of(&p["query"]).replace('\n', " "),
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn str_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

async fn call(cli: &Cli, request: ControlRequest) -> anyhow::Result<Value> {
    let dir = data_dir(cli)?;
    if !dir.exists() {
        bail!("{} does not exist (run `grove init` first)", dir.display());
    }
    Ok(control::call(dir, &request, |m, _| eprintln!("{m}")).await?)
}

fn print(cli: &Cli, data: &Value, text: impl FnOnce(&Value) -> String) {
    if cli.json {
        println!("{data}");
    } else {
        println!("{}", text(data));
    }
}
