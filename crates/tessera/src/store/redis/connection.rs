//! The connection under a [`RedisStore`](super::RedisStore), whatever stands behind the URL
//! ([`Topology`]): one node through a `ConnectionManager`, which reconnects by itself; a Redis
//! Cluster through the crate's cluster connection, which follows slot moves and failovers; or
//! the master that Sentinel names through a [`SentinelConnection`], which asks the sentinels
//! again whenever it loses the master. Also where a feed subscription connects ([`Subscriber`]):
//! the node itself, the first cluster node that answers (a classic `PUBLISH` reaches every node
//! of a cluster), or the master the sentinels name at that moment.

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig, PubSub};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Cmd, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, Pipeline,
    RedisFuture, TlsMode, Value,
};

use super::sentinel::SentinelConnection;
use super::{RedisOptions, Topology, within};
use crate::store::StoreError;

/// One connection, shared by clones, to whatever serves the store's commands.
#[derive(Clone)]
pub(super) enum RedisConnection {
    /// One node.
    Single(ConnectionManager),
    /// A Redis Cluster.
    Cluster(ClusterConnection),
    /// The master Sentinel names.
    Sentinel(SentinelConnection),
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisConnection::Single(conn) => conn.req_packed_command(cmd),
            RedisConnection::Cluster(conn) => conn.req_packed_command(cmd),
            RedisConnection::Sentinel(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            RedisConnection::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            RedisConnection::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
            RedisConnection::Sentinel(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConnection::Single(conn) => conn.get_db(),
            RedisConnection::Cluster(conn) => conn.get_db(),
            RedisConnection::Sentinel(conn) => conn.get_db(),
        }
    }
}

/// Where a feed subscription connects.
#[derive(Clone)]
pub(super) enum Subscriber {
    /// The first of these nodes that answers: the one node, or any node of a cluster.
    Nodes(Vec<ConnectionInfo>),
    /// The master the sentinels name now.
    Sentinel(SentinelConnection),
}

impl Subscriber {
    /// A new pub/sub connection, each step within `timeout`.
    pub(super) async fn pubsub(&self, timeout: Duration) -> Result<PubSub, StoreError> {
        match self {
            Subscriber::Nodes(nodes) => {
                let mut failure = StoreError::Unavailable("no Redis node".to_owned());
                for node in nodes {
                    let pubsub =
                        async { redis::Client::open(node.clone())?.get_async_pubsub().await };
                    match within(timeout, pubsub).await {
                        Ok(pubsub) => return Ok(pubsub),
                        Err(e) => failure = e,
                    }
                }
                Err(failure)
            }
            Subscriber::Sentinel(sentinel) => {
                let master = within(timeout, sentinel.master_client()).await?;
                within(timeout, master.get_async_pubsub()).await
            }
        }
    }
}

/// Connects to what `urls` (one URL, or for a cluster or Sentinel several separated by commas)
/// and `options.topology` describe, within `options.timeout`.
pub(super) async fn open(
    urls: &str,
    options: &RedisOptions,
) -> Result<(RedisConnection, Subscriber), StoreError> {
    let timeout = options.timeout;
    match &options.topology {
        Topology::Single => {
            // One URL, commas and all (a password may hold one).
            let node = urls.trim().into_connection_info().map_err(|e| invalid(&e))?;
            let client = redis::Client::open(node.clone()).map_err(|e| invalid(&e))?;
            let subscriber = Subscriber::Nodes(vec![node]);
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(timeout))
                .set_response_timeout(Some(timeout))
                .set_number_of_retries(1)
                .set_max_delay(Duration::from_millis(500));
            let conn = within(timeout, client.get_connection_manager_with_config(config)).await?;
            Ok((RedisConnection::Single(conn), subscriber))
        }
        Topology::Cluster => {
            let nodes = parse(urls)?;
            let client = ClusterClient::builder(nodes.clone())
                .connection_timeout(timeout)
                .response_timeout(timeout)
                .retries(3)
                .build()
                .map_err(|e| invalid(&e))?;
            let conn = within(timeout, client.get_async_connection()).await?;
            Ok((RedisConnection::Cluster(conn), Subscriber::Nodes(nodes)))
        }
        Topology::Sentinel { master } => {
            let (sentinels, node) = sentinel_settings(parse(urls)?)?;
            let client =
                SentinelClient::build(sentinels, master, Some(node), SentinelServerType::Master)
                    .map_err(|e| invalid(&e))?;
            // A little less than the store's deadline, so a master that stopped answering is
            // dropped (and looked up again) before the caller gives up on the command.
            let config = AsyncConnectionConfig::new()
                .set_connection_timeout(Some(timeout))
                .set_response_timeout(Some(timeout * 9 / 10));
            let conn = SentinelConnection::new(client, config);
            within(timeout, conn.connect()).await?;
            Ok((RedisConnection::Sentinel(conn.clone()), Subscriber::Sentinel(conn)))
        }
    }
}

/// The sentinels' addresses (without the database, which a sentinel has not), and how to
/// reach the master: with the first URL's username, password, database and TLS mode.
fn sentinel_settings(
    nodes: Vec<ConnectionInfo>,
) -> Result<(Vec<ConnectionInfo>, SentinelNodeConnectionInfo), StoreError> {
    let Some(first) = nodes.first() else {
        return Err(StoreError::Unavailable("no Redis Sentinel URL".to_owned()));
    };
    let mut node = SentinelNodeConnectionInfo::default()
        .set_redis_connection_info(first.redis_settings().clone());
    if let ConnectionAddr::TcpTls { insecure, .. } = first.addr() {
        node = node.set_tls_mode(if *insecure { TlsMode::Insecure } else { TlsMode::Secure });
    }
    let sentinels = nodes
        .into_iter()
        .map(|info| {
            let settings = info.redis_settings().clone().set_db(0);
            info.set_redis_settings(settings)
        })
        .collect();
    Ok((sentinels, node))
}

/// The URLs of a comma-separated list (a comma in a password is written `%2C`).
fn parse(urls: &str) -> Result<Vec<ConnectionInfo>, StoreError> {
    let nodes = urls
        .split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .map(|url| url.into_connection_info().map_err(|e| invalid(&e)))
        .collect::<Result<Vec<_>, _>>()?;
    if nodes.is_empty() {
        return Err(StoreError::Unavailable("no Redis URL".to_owned()));
    }
    Ok(nodes)
}

/// A bad URL or setting, without the error's text: it may quote the URL, which may hold a
/// password.
fn invalid(e: &redis::RedisError) -> StoreError {
    StoreError::Unavailable(format!("invalid Redis URL ({:?})", e.kind()))
}
