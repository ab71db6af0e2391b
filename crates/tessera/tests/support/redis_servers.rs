//! Redis servers a test starts for itself, for the topologies `scripts/test` does not provide:
//! a Redis Cluster of three masters, and a master with one replica watched by one Sentinel.
//! They run `redis-server` from `TESSERA_TEST_REDIS_SERVER` (and the `redis-cli` beside it) on
//! free loopback ports, in a temporary directory, and are killed when dropped; every wait is
//! bounded.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server gets to start, a cluster to form, a replica to sync.
const START_WITHIN: Duration = Duration::from_secs(20);

fn server_binary() -> PathBuf {
    std::env::var_os("TESSERA_TEST_REDIS_SERVER").map(PathBuf::from).unwrap_or_else(|| {
        panic!(
            "the Redis Cluster and Sentinel tests need TESSERA_TEST_REDIS_SERVER (the path of \
             redis-server): run them with scripts/test"
        )
    })
}

/// `n` distinct free loopback ports.
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<_> = (0..n).map(|_| TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    listeners.iter().map(|l| l.local_addr().unwrap().port()).collect()
}

pub(crate) fn url(port: u16) -> String {
    format!("redis://127.0.0.1:{port}")
}

/// Asks the server on `port` until `done` likes the answer to `cmd`.
async fn wait_for(port: u16, what: &str, cmd: &redis::Cmd, done: impl Fn(&redis::Value) -> bool) {
    let deadline = Instant::now() + START_WITHIN;
    let client = redis::Client::open(url(port)).unwrap();
    loop {
        let attempt = async {
            let mut conn = client.get_multiplexed_async_connection().await?;
            cmd.query_async::<redis::Value>(&mut conn).await
        };
        if let Ok(Ok(answer)) = tokio::time::timeout(Duration::from_secs(1), attempt).await
            && done(&answer)
        {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting until {what} (port {port})");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn text(value: &redis::Value) -> String {
    redis::from_redis_value_ref::<String>(value).unwrap_or_default()
}

/// Server processes, each by its port; all killed on drop.
pub(crate) struct Servers {
    dir: tempfile::TempDir,
    processes: Vec<(u16, Child)>,
}

impl Servers {
    fn new() -> Self {
        Servers { dir: tempfile::tempdir().unwrap(), processes: Vec::new() }
    }

    /// Starts a data node on `port` (no persistence; `extra` arguments appended) and waits
    /// until it answers.
    async fn start_node(&mut self, port: u16, extra: &[&str]) {
        let dir = self.dir.path().join(port.to_string());
        std::fs::create_dir(&dir).unwrap();
        let mut command = Command::new(server_binary());
        command.args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", ""]);
        command.args(["--appendonly", "no", "--repl-diskless-sync-delay", "0"]);
        command.arg("--dir").arg(&dir).args(extra);
        self.spawn(port, command).await;
    }

    /// Starts a sentinel on `port` watching the master on `master_port` as `name`, quick to
    /// call it down (1 s: quicker risks a needless failover on a busy machine), and waits until
    /// it answers.
    async fn start_sentinel(&mut self, port: u16, name: &str, master_port: u16) {
        let dir = self.dir.path().join(port.to_string());
        std::fs::create_dir(&dir).unwrap();
        let config = dir.join("sentinel.conf");
        std::fs::write(
            &config,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {}\n\
                 sentinel monitor {name} 127.0.0.1 {master_port} 1\n\
                 sentinel down-after-milliseconds {name} 1000\n\
                 sentinel failover-timeout {name} 5000\n",
                dir.display()
            ),
        )
        .unwrap();
        let mut command = Command::new(server_binary());
        command.arg(&config).arg("--sentinel");
        self.spawn(port, command).await;
    }

    async fn spawn(&mut self, port: u16, mut command: Command) {
        let child = command.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        self.processes.push((port, child));
        wait_for(port, "it answers", &redis::cmd("PING"), |_| true).await;
    }

    /// Kills the server on `port` at once (SIGKILL: no goodbye to anyone).
    pub(crate) fn kill(&mut self, port: u16) {
        for (_, child) in self.processes.iter_mut().filter(|(p, _)| *p == port) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        for (_, child) in &mut self.processes {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A Redis Cluster of three masters, no replicas.
pub(crate) struct Cluster {
    /// Kept for its drop, which stops the nodes.
    _servers: Servers,
    pub(crate) ports: Vec<u16>,
}

impl Cluster {
    /// Every node's URL, separated by commas.
    pub(crate) fn urls(&self) -> String {
        self.ports.iter().map(|&p| url(p)).collect::<Vec<_>>().join(",")
    }
}

pub(crate) async fn cluster() -> Cluster {
    let ports = free_ports(6);
    let (ports, bus_ports) = ports.split_at(3);
    let mut servers = Servers::new();
    for (port, bus) in ports.iter().zip(bus_ports) {
        let bus = bus.to_string();
        let extra = ["--cluster-enabled", "yes", "--cluster-port", &bus];
        servers.start_node(*port, &extra).await;
    }
    let mut create = Command::new(server_binary().with_file_name("redis-cli"));
    create.args(["--cluster", "create"]);
    create.args(ports.iter().map(|p| format!("127.0.0.1:{p}")));
    create.args(["--cluster-replicas", "0", "--cluster-yes"]);
    let mut create = create.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + START_WITHIN;
    while create.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = create.kill();
            panic!("redis-cli --cluster create did not finish within {START_WITHIN:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(create.wait().unwrap().success(), "redis-cli --cluster create failed");
    for &port in ports {
        let info = redis::cmd("CLUSTER").arg("INFO").clone();
        wait_for(port, "the cluster is formed", &info, |answer| {
            let info = text(answer);
            info.contains("cluster_state:ok") && info.contains("cluster_known_nodes:3")
        })
        .await;
    }
    Cluster { _servers: servers, ports: ports.to_vec() }
}

/// A master with one replica, watched by one sentinel (quorum 1) as `name`.
pub(crate) struct Sentinel {
    pub(crate) servers: Servers,
    pub(crate) master_port: u16,
    pub(crate) replica_port: u16,
    pub(crate) sentinel_port: u16,
}

pub(crate) async fn sentinel(name: &str) -> Sentinel {
    let ports = free_ports(3);
    let (master_port, replica_port, sentinel_port) = (ports[0], ports[1], ports[2]);
    let mut servers = Servers::new();
    servers.start_node(master_port, &[]).await;
    let master = master_port.to_string();
    servers.start_node(replica_port, &["--replicaof", "127.0.0.1", &master]).await;
    let info = redis::cmd("INFO").arg("replication").clone();
    wait_for(replica_port, "the replica is in sync", &info, |answer| {
        text(answer).contains("master_link_status:up")
    })
    .await;
    servers.start_sentinel(sentinel_port, name, master_port).await;
    let replicas = redis::cmd("SENTINEL").arg("REPLICAS").arg(name).clone();
    wait_for(
        sentinel_port,
        "the sentinel knows the replica",
        &replicas,
        |answer| matches!(answer, redis::Value::Array(replicas) if !replicas.is_empty()),
    )
    .await;
    Sentinel { servers, master_port, replica_port, sentinel_port }
}
