//! The agent's one configuration file (TOML). Unknown keys are refused, and every key has a
//! default that works against a dev chain on this machine (`zos-chain --dev`).

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use serde::Deserialize;

/// What the agent is told; see the field docs for each key's default.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The chain's RPC endpoints, tried in order. Default `["ws://127.0.0.1:9944"]`. Endpoints
    /// off this machine must be `wss://` unless `allow_insecure_chain` says otherwise.
    pub chain: Vec<String>,
    /// Allows `ws://` (unencrypted, unauthenticated) endpoints off this machine: anyone on the
    /// path could then feed the node a false chain view. Default `false`.
    pub allow_insecure_chain: bool,
    /// The farm this node belongs to, by id (names can be registered by anyone first). Its
    /// owner must approve the node (`zosctl farm approve`) before it can register. Default 0.
    pub farm: u32,
    /// The node's key, its local state (rocksdb) and nothing else. Default `/var/lib/zos-agent`.
    pub state_dir: PathBuf,
    /// Images, root filesystems and volumes: the filesystem whose size is offered as SRU.
    /// Default `/var/lib/zos-agent/storage`.
    pub storage_dir: PathBuf,
    /// Container runtime state (a tmpfs in production). Default `/run/zos`.
    pub run_dir: PathBuf,
    /// What the node keeps for itself.
    pub reserve: Reserve,
    /// What to offer instead of what is detected (a farmer may offer less than the machine has).
    pub capacity: CapacityOverride,
    /// Which registries images may come from.
    pub registries: Registries,
    /// What an image pull may take, and when unused images go.
    pub images: Images,
    /// How VMs are run.
    pub vms: Vms,
    /// Private networks.
    pub networks: NetworksConfig,
    /// How often things happen.
    pub periods: Periods,
    /// The endpoint peers reach this node's WireGuard at (`host:port`), published on chain.
    /// Default `127.0.0.1:51820` (a single-machine grid); set it to the node's public address.
    /// Each network listens on its port plus the network's slot on this node.
    pub endpoint: String,
    /// This node has no address other nodes can dial (it sits behind NAT): it publishes no
    /// endpoint, connects out to the members of its networks that have one, and reaches other
    /// members behind NAT through one of those. `endpoint`'s port is still where it listens.
    /// Default false.
    pub behind_nat: bool,
}

/// Capacity the node keeps for itself and never offers.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Reserve {
    /// Memory, in bytes. Default 1 GiB.
    pub memory: u64,
    /// Storage, in bytes. Default 10 GiB.
    pub storage: u64,
}

/// Capacity to offer in place of what is detected; each key is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CapacityOverride {
    /// CPU, in thousandths of a logical CPU (4000 for four).
    pub cpu_millis: Option<u64>,
    /// Memory, bytes.
    pub mru: Option<u64>,
    /// Storage, bytes.
    pub sru: Option<u64>,
}

/// The registries workloads may pull from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Registries {
    /// Registry hosts (`host[:port]`) images may come from; empty allows any. An image from
    /// elsewhere is refused with a workload error.
    pub allow: Vec<String>,
}

/// Image pulls and the image store. Every limit breached fails the pull with its own error; the
/// workload is `error` on chain with `pulling <image>: <kind>` (`too large`, `deadline exceeded`,
/// `stalled`, …), the details in the agent's log.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Images {
    /// Largest manifest (or image index), bytes. Default 4 MiB.
    pub max_manifest_bytes: u64,
    /// Largest layer as downloaded (compressed), bytes. Default 4 GiB.
    pub max_layer_bytes: u64,
    /// Largest image as downloaded (all layers, compressed), bytes. Default 8 GiB.
    pub max_image_bytes: u64,
    /// Largest layer unpacked (its tar stream), bytes. Default 16 GiB.
    pub max_unpacked_layer_bytes: u64,
    /// Largest image unpacked (all layers), bytes. Default 32 GiB.
    pub max_unpacked_image_bytes: u64,
    /// Most tar entries in an image (all layers). Default 1,000,000.
    pub max_entries: u64,
    /// Longest pull, from the first request to the stored image, seconds. Default 1800.
    pub pull_deadline: u64,
    /// Longest wait for a registry's answer or its next bytes during a pull, seconds. Default 60.
    pub stall_timeout: u64,
    /// An image no workload uses is removed once unused this long, seconds. Default 3600.
    pub gc_grace: u64,
    /// How often unused images are looked for, seconds. Default 600.
    pub gc_period: u64,
}

impl Default for Images {
    fn default() -> Self {
        let limits = zos_image_store::Limits::default();
        Images {
            max_manifest_bytes: limits.manifest_bytes,
            max_layer_bytes: limits.layer_bytes,
            max_image_bytes: limits.image_bytes,
            max_unpacked_layer_bytes: limits.unpacked_layer_bytes,
            max_unpacked_image_bytes: limits.unpacked_image_bytes,
            max_entries: limits.entries,
            pull_deadline: limits.deadline.as_secs(),
            stall_timeout: limits.stall.as_secs(),
            gc_grace: 3600,
            gc_period: 600,
        }
    }
}

impl Images {
    /// The limits of one pull.
    pub fn limits(&self) -> zos_image_store::Limits {
        zos_image_store::Limits {
            manifest_bytes: self.max_manifest_bytes,
            layer_bytes: self.max_layer_bytes,
            image_bytes: self.max_image_bytes,
            unpacked_layer_bytes: self.max_unpacked_layer_bytes,
            unpacked_image_bytes: self.max_unpacked_image_bytes,
            entries: self.max_entries,
            deadline: Duration::from_secs(self.pull_deadline),
            stall: Duration::from_secs(self.stall_timeout),
        }
    }
}

/// Private networks: WireGuard through wireguard-go (these hosts have no WireGuard module). A
/// node without it runs workloads still, and reports networks (and what joins them)
/// `unsupported`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworksConfig {
    /// Whether this node takes part in private networks. Default `true`.
    pub enabled: bool,
    /// wireguard-go. Default `/usr/bin/wireguard-go` (Debian's `wireguard-go`).
    pub wireguard_go: PathBuf,
    /// The network namespace (a file, as `/run/netns/<name>`) whose links carry WireGuard's UDP
    /// traffic to the other nodes; the agent's own when unset. Local grids and tests give each
    /// node on one machine a namespace of its own, joined to the others by their underlay.
    pub host_namespace: Option<PathBuf>,
}

impl Default for NetworksConfig {
    fn default() -> Self {
        NetworksConfig {
            enabled: true,
            wireguard_go: "/usr/bin/wireguard-go".into(),
            host_namespace: None,
        }
    }
}

/// How VMs are run. A node whose VM tooling is missing runs containers still, and reports its
/// VMs and disks `unsupported` (the reason is in its log).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Vms {
    /// Whether this node runs VMs at all. Default `true`.
    pub enabled: bool,
    /// A kernel package unpacked here (`boot/vmlinuz-<release>`, `lib/modules/<release>/`): the
    /// default kernel of VMs that name none. Default `/opt/zos/kernel` (where `scripts/setup.sh`
    /// unpacks Debian's cloud kernel).
    pub kernel_dir: PathBuf,
    /// A static busybox for the VMs' initramfs. Default `/bin/busybox` (Debian's
    /// `busybox-static`).
    pub busybox: PathBuf,
    /// QEMU. Default `qemu-system-x86_64`.
    pub qemu: PathBuf,
    /// virtiofsd. Default `/opt/zos/bin/virtiofsd`.
    pub virtiofsd: PathBuf,
    /// `auto` (KVM when a probe guest boots with it, else TCG), `kvm` or `tcg`. Default `auto`.
    pub accel: String,
    /// How long a guest has to power down after the node asks, seconds, before QEMU is killed.
    /// Default 10.
    pub stop_grace: u64,
}

impl Default for Vms {
    fn default() -> Self {
        Vms {
            enabled: true,
            kernel_dir: "/opt/zos/kernel".into(),
            busybox: "/bin/busybox".into(),
            qemu: "qemu-system-x86_64".into(),
            virtiofsd: "/opt/zos/bin/virtiofsd".into(),
            accel: "auto".into(),
            stop_grace: 10,
        }
    }
}

/// Periods, in seconds.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Periods {
    /// Uptime reports. Default 60 (the chain accepts one a minute).
    pub uptime: u64,
    /// Consumption reports, all contracts in one. Default 60.
    pub consumption: u64,
    /// Full resync of every contract naming this node. Default 300.
    pub resync: u64,
    /// How often running workloads are looked at (exits, restarts). Default 2.
    pub watch: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            chain: vec!["ws://127.0.0.1:9944".into()],
            allow_insecure_chain: false,
            farm: 0,
            state_dir: "/var/lib/zos-agent".into(),
            storage_dir: "/var/lib/zos-agent/storage".into(),
            run_dir: "/run/zos".into(),
            reserve: Reserve::default(),
            capacity: CapacityOverride::default(),
            registries: Registries::default(),
            images: Images::default(),
            vms: Vms::default(),
            networks: NetworksConfig::default(),
            periods: Periods::default(),
            endpoint: "127.0.0.1:51820".into(),
            behind_nat: false,
        }
    }
}

impl Default for Reserve {
    fn default() -> Self {
        Reserve {
            memory: 1 << 30,
            storage: 10 << 30,
        }
    }
}

impl Default for Periods {
    fn default() -> Self {
        Periods {
            uptime: 60,
            consumption: 60,
            resync: 300,
            watch: 2,
        }
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a valid configuration (names the key, line and column).
    #[error("{path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, and where.
        source: toml::de::Error,
    },
    /// A value is out of range.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl Config {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text).map_err(|e| match e {
            ConfigError::Parse { source, .. } => ConfigError::Parse {
                path: path.to_owned(),
                source,
            },
            ConfigError::Invalid { message, .. } => ConfigError::Invalid {
                path: path.to_owned(),
                message,
            },
            other => other,
        })
    }

    /// Parses and checks a configuration's text.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|source| ConfigError::Parse {
            path: PathBuf::new(),
            source,
        })?;
        config.check().map_err(|message| ConfigError::Invalid {
            path: PathBuf::new(),
            message,
        })?;
        Ok(config)
    }

    fn check(&self) -> Result<(), String> {
        if !["auto", "kvm", "tcg"].contains(&self.vms.accel.as_str()) {
            return Err(format!(
                "`vms.accel` is {:?}: it must be \"auto\", \"kvm\" or \"tcg\"",
                self.vms.accel
            ));
        }
        if self.chain.is_empty() {
            return Err("`chain` needs at least one RPC endpoint".into());
        }
        if let Some(bad) = self
            .chain
            .iter()
            .find(|u| !(u.starts_with("ws://") || u.starts_with("wss://")))
        {
            return Err(format!("`chain`: {bad:?} is not a ws:// or wss:// URL"));
        }
        if !self.allow_insecure_chain {
            if let Some(bad) = self
                .chain
                .iter()
                .find(|u| u.starts_with("ws://") && !is_loopback_url(u))
            {
                return Err(format!(
                    "`chain`: {bad:?} is off this machine and not wss://: use wss://, or set \
                     `allow_insecure_chain = true` to accept a chain view anyone on the path can forge"
                ));
            }
        }
        for (key, dir) in [
            ("state_dir", &self.state_dir),
            ("storage_dir", &self.storage_dir),
            ("run_dir", &self.run_dir),
        ] {
            if !dir.is_absolute() {
                return Err(format!("`{key}` must be an absolute path, not {dir:?}"));
            }
        }
        let valid_endpoint = self.endpoint.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
        }) && self.endpoint.len() <= 128;
        if !valid_endpoint {
            return Err(format!("`endpoint` {:?} is not host:port", self.endpoint));
        }
        let p = &self.periods;
        for (key, secs) in [
            ("periods.uptime", p.uptime),
            ("periods.consumption", p.consumption),
            ("periods.resync", p.resync),
            ("periods.watch", p.watch),
        ] {
            if secs == 0 {
                return Err(format!("`{key}` must be at least 1 second"));
            }
        }
        let i = &self.images;
        for (key, value) in [
            ("images.max_manifest_bytes", i.max_manifest_bytes),
            ("images.max_layer_bytes", i.max_layer_bytes),
            ("images.max_image_bytes", i.max_image_bytes),
            (
                "images.max_unpacked_layer_bytes",
                i.max_unpacked_layer_bytes,
            ),
            (
                "images.max_unpacked_image_bytes",
                i.max_unpacked_image_bytes,
            ),
            ("images.max_entries", i.max_entries),
            ("images.pull_deadline", i.pull_deadline),
            ("images.stall_timeout", i.stall_timeout),
            ("images.gc_period", i.gc_period),
        ] {
            if value == 0 {
                return Err(format!("`{key}` must be at least 1"));
            }
        }
        Ok(())
    }

    /// The node key's file.
    pub fn key_path(&self) -> PathBuf {
        self.state_dir.join("node.key")
    }

    /// The local database.
    pub fn db_path(&self) -> PathBuf {
        self.state_dir.join("db")
    }
}

/// Whether a `ws://` URL names this machine (127.0.0.0/8, `[::1]` or `localhost`).
fn is_loopback_url(url: &str) -> bool {
    let rest = url.trim_start_matches("ws://");
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl Periods {
    /// A period as a duration.
    pub fn of(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_file_is_the_defaults() {
        assert_eq!(Config::parse("").unwrap(), Config::default());
    }

    #[test]
    fn keys_override_defaults() {
        let c = Config::parse(
            r#"
chain = ["ws://10.0.0.1:9944", "wss://rpc.example:443"]
allow_insecure_chain = true
farm = 7
state_dir = "/srv/zos"
behind_nat = true

[reserve]
memory = 2147483648

[capacity]
cpu_millis = 1500

[periods]
uptime = 120
"#,
        )
        .unwrap();
        assert_eq!(c.chain.len(), 2);
        assert_eq!(c.farm, 7);
        assert!(c.behind_nat && !Config::default().behind_nat);
        assert_eq!(c.state_dir, PathBuf::from("/srv/zos"));
        assert_eq!(c.reserve.memory, 2 << 30);
        assert_eq!(c.reserve.storage, 10 << 30);
        assert_eq!(c.periods.uptime, 120);
        assert_eq!(c.capacity.cpu_millis, Some(1500));
        assert_eq!(c.capacity.mru, None);
        assert_eq!(c.periods.consumption, 60);
        assert_eq!(c.key_path(), PathBuf::from("/srv/zos/node.key"));
    }

    #[test]
    fn unknown_keys_are_refused_by_name_and_line() {
        let e = Config::parse("farm = 1\n\n[periods]\nuptme = 5\n").unwrap_err();
        let text = e.to_string();
        assert!(text.contains("uptme"), "{text}");
        assert!(text.contains("line 4"), "{text}");
    }

    #[test]
    fn bad_values_are_refused_with_the_key() {
        for (text, key) in [
            ("chain = []", "`chain`"),
            ("chain = [\"http://x\"]", "http://x"),
            ("state_dir = \"relative\"", "`state_dir`"),
            ("[periods]\nwatch = 0", "`periods.watch`"),
            ("[images]\npull_deadline = 0", "`images.pull_deadline`"),
            ("[images]\nmax_entries = 0", "`images.max_entries`"),
            ("endpoint = \"example.org\"", "`endpoint`"),
            ("farm = \"north\"", "farm"),
        ] {
            let e = Config::parse(text).unwrap_err().to_string();
            assert!(e.contains(key), "{text:?}: {e}");
        }
    }
}

#[cfg(test)]
mod images_tests {
    use super::*;

    #[test]
    fn image_limits_default_to_the_stores_and_each_can_be_set() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.images.limits(), zos_image_store::Limits::default());
        assert_eq!((c.images.gc_grace, c.images.gc_period), (3600, 600));
        let c = Config::parse(
            "[images]\nmax_manifest_bytes = 1000\nmax_layer_bytes = 2000\nmax_image_bytes = 3000\n\
             max_unpacked_layer_bytes = 4000\nmax_unpacked_image_bytes = 5000\nmax_entries = 6\n\
             pull_deadline = 7\nstall_timeout = 8\ngc_grace = 0\ngc_period = 10\n",
        )
        .unwrap();
        assert_eq!(
            c.images.limits(),
            zos_image_store::Limits {
                manifest_bytes: 1000,
                layer_bytes: 2000,
                image_bytes: 3000,
                unpacked_layer_bytes: 4000,
                unpacked_image_bytes: 5000,
                entries: 6,
                deadline: Duration::from_secs(7),
                stall: Duration::from_secs(8),
            }
        );
        assert_eq!((c.images.gc_grace, c.images.gc_period), (0, 10));
        let e = Config::parse("[images]\nmax_layers = 3\n").unwrap_err();
        assert!(e.to_string().contains("max_layers"), "{e}");
    }
}

#[cfg(test)]
mod endpoint_tests {
    use super::*;

    #[test]
    fn a_chain_off_this_machine_must_be_wss_unless_the_config_says_otherwise() {
        for local in [
            "ws://127.0.0.1:9944",
            "ws://127.8.0.3:1",
            "ws://localhost:9944",
            "ws://[::1]:9944/path",
        ] {
            let c = Config::parse(&format!("chain = [\"{local}\"]")).unwrap();
            assert_eq!(c.chain, vec![local.to_string()]);
        }
        for remote in [
            "ws://10.0.0.1:9944",
            "ws://rpc.example:9944",
            "ws://127.0.0.1.example:9944",
            "ws://[2001:db8::1]:9944",
        ] {
            let e = Config::parse(&format!("chain = [\"{remote}\"]"))
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("not wss://") && e.contains(remote),
                "{remote}: {e}"
            );
            let allowed = format!("allow_insecure_chain = true\nchain = [\"{remote}\"]");
            assert!(Config::parse(&allowed).is_ok(), "{remote}");
        }
        assert!(Config::parse("chain = [\"wss://rpc.example:443\"]").is_ok());
    }
}
