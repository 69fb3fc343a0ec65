//! The data dir: its layout, `grove init`, the config file and the node's keys.
//!
//! ```text
//! DIR/              mode 0700
//!   config.toml     commented; every option written out
//!   store.redb      keys, records, trust, engine log, directory, audit
//!   control.sock    the daemon's local control socket (mode 0600), while it runs
//!   ingest.token    the ingest endpoint's bearer token (mode 0600), when it is on
//!   ingest.addr     the address the ingest endpoint is bound to, while it runs
//!   console.addr    the address the owner's console is bound to, while it runs
//! ```
//!
//! Keys come from the operating system's randomness and live in the store's `keys` table:
//! the libp2p ed25519 keypair, the static X25519 secret of share envelopes, and the ed25519
//! commissioner key this node signs its own computation requests with.

use crate::store::{Store, StoreError};
use anyhow::{bail, Context};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const CONFIG_FILE: &str = "config.toml";
pub const STORE_FILE: &str = "store.redb";
const KEY_LIBP2P: &str = "libp2p_keypair";
const KEY_X25519: &str = "x25519_secret";
const KEY_COMMISSIONER: &str = "commissioner_secret";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "default_listen")]
    pub listen: Vec<String>,
    #[serde(default)]
    pub bootstrap: Vec<String>,
    #[serde(default = "default_announce_interval")]
    pub announce_interval_secs: u64,
    /// Seconds between two pulls of the peer directory from a random connected peer, after
    /// the two pulls at start; 0 turns pulls off.
    #[serde(default = "default_directory_sync")]
    pub directory_sync_secs: u64,
    /// Connected peers above which the daemon closes connections it does not need
    /// (`daemon::connections`, whose `CONNECTION_TARGET` is the default).
    #[serde(default = "default_connection_target")]
    pub connection_target: usize,
    /// Address of the local ingest endpoint (loopback only); `None` turns it off.
    #[serde(default)]
    pub ingest_listen: Option<String>,
    /// Address of the owner's console (loopback only); `None` turns it off.
    #[serde(default)]
    pub console_listen: Option<String>,
    /// A Nextcloud account to pull records from (`grove sync`, and every `interval_secs`).
    #[serde(default)]
    pub nextcloud: Option<NextcloudConfig>,
    /// The drand chain whose rounds seed every plan (`crate::beacon`); `None`: no beacon, plans
    /// are seeded by the request id the commissioner picks.
    #[serde(default)]
    pub beacon: Option<crate::beacon::BeaconConfig>,
    /// The issuers whose certificates admit identities (`crate::admission`); `None`: every
    /// announced identity may be selected.
    #[serde(default)]
    pub admission: Option<crate::admission::AdmissionConfig>,
}

fn default_listen() -> Vec<String> {
    vec!["/ip4/127.0.0.1/tcp/0".into()]
}

fn default_announce_interval() -> u64 {
    1800
}

fn default_directory_sync() -> u64 {
    30
}

fn default_connection_target() -> usize {
    48
}

impl Default for Config {
    fn default() -> Config {
        Config {
            listen: default_listen(),
            bootstrap: Vec::new(),
            announce_interval_secs: default_announce_interval(),
            directory_sync_secs: default_directory_sync(),
            connection_target: default_connection_target(),
            ingest_listen: None,
            console_listen: None,
            nextcloud: None,
            beacon: None,
            admission: None,
        }
    }
}

const CONFIG_TEMPLATE: &str = r#"# Grove node configuration, written by `grove init`. Every option is listed with its default.
# Command-line flags of `grove daemon` override the values here.

# Multiaddrs the daemon listens on for other Grove nodes. Port 0 picks a free port; the
# address actually bound is shown by `grove status`. Loopback only by default: use
# "/ip4/0.0.0.0/tcp/4001" to accept peers from other machines.
listen = ["/ip4/127.0.0.1/tcp/0"]

# Peers to contact when the daemon starts (multiaddrs, best ending in /p2p/<peer id>).
bootstrap = []

# Seconds between re-announcements of this node in the peer directory (each gap drawn
# between 3/4 and 5/4 of it). It also announces when it starts and when its addresses change.
# A re-announcement only repairs what gossip and directory pulls both lost, and every node
# hears each one: at a few hundred nodes a short interval costs real CPU.
announce_interval_secs = 1800

# The daemon pulls the peer directory from a connected peer as soon as it has one, from
# another 5 seconds later, then from a random one every directory_sync_secs (an answer is a
# few bytes while both directories are the same). 0: no pulls; the node learns peers only from
# announcements, which reach it only while it is connected.
directory_sync_secs = 30

# Above this many connected peers the daemon closes, every 2 seconds, the connections to peers
# that are neither its gossipsub mesh peers, nor awaiting a message of it, nor peers of a
# computation it takes part in, nor used in the last 10 seconds (least recently used first);
# they are dialed again when needed. 256 (the cap on established connections) closes nothing.
connection_target = 48

# The local ingest endpoint, where a personal-cloud app pushes records as JSON over HTTP with
# the token in DIR/ingest.token (see the README). Loopback addresses only; off when absent.
# The address actually bound is written to DIR/ingest.addr.
# ingest_listen = "127.0.0.1:7380"

# The owner's console: a local web page to see the node, its records, trust and audit, to
# answer requests that wait for the owner, and to run queries. Loopback addresses only; off
# when absent (`grove daemon --console` turns it on for one run). `grove console` prints a
# one-time login link. The address actually bound is written to DIR/console.addr.
# console_listen = "127.0.0.1:7390"

# A Nextcloud account to pull records from: `grove sync` reads it, and the daemon syncs every
# interval_secs (0: only on `grove sync`). The app password is read from password_file
# (create one under Settings > Security > Devices & sessions). Files are taken from the
# folder `folder` of the account; calendars and contacts are always taken.
# [nextcloud]
# url = "https://cloud.example.org"
# user = "alice"
# password_file = "/home/alice/.config/grove/nextcloud-app-password"
# folder = "Grove"
# interval_secs = 0

# The randomness beacon: a drand chain whose rounds seed the placement of aggregators, so that
# no commissioner can choose it. A request names a round published after it is signed; every
# node fetches that round from a relay, verifies its BLS signature under public_key and
# refuses the request if it does not verify. Every node of a network must follow the same
# chain (nodes without it refuse requests that name a round, and nodes with it refuse
# requests that name none). Off when absent. drand's quicknet (values from its /info):
# [beacon]
# scheme = "bls-unchained-g1-rfc9380"
# public_key = "83cf0f2896adee7eb8b5f01fcad3912212c437e0073e911fb90022d3e760183c8c4b450b6a0a6c3ac6a5776a2d1064510d1fec758c921cc22b0e17e63aaf4bcb5ed66304de9cf809bd274ca73bab4af5a6e9c76a4bc09e76eae8991ef5ece45a"
# chain_hash = "52db9ba70e0cc0f6eaf7803dd07447a1f5477735fd3f661792ba94600c84e971"
# genesis_time_secs = 1692803367
# period_secs = 3
# relays = ["https://relay.example.org"]

# Admission: identities that cost something. Only nodes certified by an issuer named here (a
# PDMS provider certifying its instances) are put in a candidate set; every node refuses a
# request whose candidate set lists an identity that is not admitted, omits this node while it
# is admitted, or omits more than 10% (min_known_ppm) of the admitted peers it knew before the
# request. An issuer admits at most `quota` identities (serials 0..quota; a serial used twice
# admits neither). To be admitted, give your peer id (printed by `grove init`) to an issuer,
# who runs `grove admit --issuer-key FILE --serial N PEER_ID`, and put the certificate it
# prints below. An issuer key is made with `grove admit --new-issuer FILE`. Off when absent.
# [admission]
# issuers = [{ key = "<issuer's public key, 64 hex digits>", quota = 1000 }]
# min_age_epochs = 0
# epoch_secs = 120
# min_known_ppm = 900000
# certificate = "<from grove admit>"
"#;

pub fn config_path(dir: &Path) -> PathBuf {
    dir.join(CONFIG_FILE)
}

pub fn store_path(dir: &Path) -> PathBuf {
    dir.join(STORE_FILE)
}

/// Appends a `[beacon]` section to the config file in `dir` (the demo and the tests: a node
/// follows the local chain).
pub fn append_beacon(dir: &Path, section: &crate::beacon::BeaconConfig) -> anyhow::Result<()> {
    append_section(dir, &section.to_toml_section())
}

/// Appends `section`, TOML text of one table, to the config file in `dir`.
pub fn append_section(dir: &Path, section: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let path = config_path(dir);
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    write!(file, "\n{section}")?;
    Ok(())
}

pub fn load_config(dir: &Path) -> anyhow::Result<Config> {
    let path = config_path(dir);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {} (run `grove init` first)", path.display()))?;
    toml::from_str(&text).with_context(|| format!("{} is not a valid config", path.display()))
}

/// The node's keys, loaded from the store.
pub struct Keys {
    pub libp2p: libp2p::identity::Keypair,
    pub x25519_secret: [u8; 32],
    pub commissioner: ed25519_dalek::SigningKey,
}

fn random32() -> [u8; 32] {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b
}

/// Creates the data dir, its config file and the keys. Refuses to overwrite an existing node.
pub fn init(dir: &Path) -> anyhow::Result<Keys> {
    use std::os::unix::fs::PermissionsExt;
    if store_path(dir).exists() {
        bail!("{} already holds a Grove node", dir.display());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    let store = Store::open(&store_path(dir))?;
    let keypair = libp2p::identity::Keypair::generate_ed25519();
    let encoded = keypair
        .to_protobuf_encoding()
        .context("cannot encode the libp2p key")?;
    store.put_key_if_absent(KEY_LIBP2P, &encoded)?;
    store.put_key_if_absent(KEY_X25519, &random32())?;
    store.put_key_if_absent(KEY_COMMISSIONER, &random32())?;
    let path = config_path(dir);
    if !path.exists() {
        std::fs::write(&path, CONFIG_TEMPLATE)?;
    }
    load_keys(&store)
}

pub fn load_keys(store: &Store) -> anyhow::Result<Keys> {
    let missing = || anyhow::anyhow!("the store has no keys (run `grove init` first)");
    let lp = store.key(KEY_LIBP2P)?.ok_or_else(missing)?;
    let libp2p = libp2p::identity::Keypair::from_protobuf_encoding(&lp)
        .context("the stored libp2p key is corrupt")?;
    let x: [u8; 32] = store
        .key(KEY_X25519)?
        .ok_or_else(missing)?
        .try_into()
        .map_err(|_| StoreError::Corrupt("x25519 secret is not 32 bytes".into()))?;
    let c: [u8; 32] = store
        .key(KEY_COMMISSIONER)?
        .ok_or_else(missing)?
        .try_into()
        .map_err(|_| StoreError::Corrupt("commissioner secret is not 32 bytes".into()))?;
    Ok(Keys {
        libp2p,
        x25519_secret: x,
        commissioner: ed25519_dalek::SigningKey::from_bytes(&c),
    })
}

pub fn engine_seed() -> [u8; 32] {
    random32()
}

pub fn random_id() -> [u8; 32] {
    random32()
}

/// The `[nextcloud]` table of the config file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NextcloudConfig {
    /// The server's address, e.g. `https://cloud.example.org` (or with the sub-path Nextcloud
    /// is installed under).
    pub url: String,
    pub user: String,
    /// A file holding an app password (its first line is used).
    pub password_file: PathBuf,
    /// The folder of the account whose files are imported.
    #[serde(default = "default_folder")]
    pub folder: String,
    /// Seconds between two syncs run by the daemon; 0 syncs only on `grove sync`.
    #[serde(default)]
    pub interval_secs: u64,
}

/// The account's folder when the config names none.
pub fn default_folder() -> String {
    "Grove".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_parses_to_the_defaults() {
        let c: Config = toml::from_str(CONFIG_TEMPLATE).unwrap();
        assert_eq!(c, Config::default());
    }

    #[test]
    fn init_creates_keys_once() {
        let dir = tempfile::tempdir().unwrap();
        let node = dir.path().join("n");
        let keys = init(&node).unwrap();
        assert!(init(&node).is_err());
        let store = Store::open(&store_path(&node)).unwrap();
        let again = load_keys(&store).unwrap();
        assert_eq!(
            again.libp2p.public().to_peer_id(),
            keys.libp2p.public().to_peer_id()
        );
        assert_eq!(again.x25519_secret, keys.x25519_secret);
        assert_eq!(load_config(&node).unwrap(), Config::default());
    }
}
