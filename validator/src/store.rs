//! The shared store of pre-signed OCSP responses for the scale-out mode: signers
//! (`jpki serve ocsp-signer`, each pre-signing one partition of the serials) write responses
//! into it and publish an invalidation after each revocation; stateless responders
//! (`jpki serve ocsp-responder`, [`crate::stateless`]) read from it and drop what an
//! invalidation names. [`ResponseStore`] is the boundary; [`RedisStore`] is the Redis Cluster
//! implementation, [`MemoryStore`] the in-process one for tests without Redis.
//!
//! A key is `o` + the CertID hash algorithm (1 SHA-1, 2 SHA-256) + the issuerKeyHash of that
//! algorithm + the serial's minimal bytes (binary, 38 to 54 bytes). A value is one status tag
//! byte (`G`, `R`, `U`) followed by the OCSPResponse DER; thisUpdate, nextUpdate and the ETag
//! are read from the DER by whoever serves it. A key expires at the response's nextUpdate. A
//! revoked response is never replaced by one that is not (the write is a script), so a signer
//! working from an older read cannot undo a revocation.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::Digest as _;
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::responder::{Alg, Status};

/// A boxed future (the trait is used as `dyn`).
pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The Redis pub/sub channel of invalidations (classic pub/sub reaches every node of a cluster).
pub const CHANNEL: &str = "jpki-ocsp-invalidate";

/// One write: a key, its value (tag + DER), and how long it lives (milliseconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Put {
    /// The key ([`key`]).
    pub key: Vec<u8>,
    /// The value ([`value`]).
    pub value: Vec<u8>,
    /// Time to live (ms): until the response's nextUpdate.
    pub ttl_ms: u64,
}

/// Invalidations as they arrive; `None` from `recv` means the subscription was lost (the
/// receiver must assume it missed some).
pub type Subscription = mpsc::Receiver<Vec<u8>>;

/// Where pre-signed responses live between signers and responders.
pub trait ResponseStore: Send + Sync + fmt::Debug {
    /// Writes `puts` (a revoked value is never replaced by one that is not).
    fn put_many(&self, puts: Vec<Put>) -> BoxFut<'_, Result<()>>;
    /// Reads one value; `Ok(None)` if there is none.
    fn get(&self, key: Vec<u8>) -> BoxFut<'_, Result<Option<Vec<u8>>>>;
    /// Tells every subscribed responder to drop `key`.
    fn invalidate(&self, key: Vec<u8>) -> BoxFut<'_, Result<()>>;
    /// Subscribes to invalidations. Returns once the subscription is in place.
    fn subscribe(&self) -> BoxFut<'_, Result<Subscription>>;
}

/// The store key of a CertID: `o`, the algorithm, its issuerKeyHash, the serial (minimal).
pub fn key(alg: Alg, issuer_key_hash: &[u8], serial: &[u8]) -> Vec<u8> {
    let serial = minimal(serial);
    let mut k = Vec::with_capacity(2 + issuer_key_hash.len() + serial.len());
    k.push(b'o');
    k.push(match alg {
        Alg::Sha1 => 1,
        Alg::Sha256 => 2,
    });
    k.extend_from_slice(issuer_key_hash);
    k.extend_from_slice(serial);
    k
}

fn minimal(serial: &[u8]) -> &[u8] {
    let mut s = serial;
    while s.len() > 1 && s[0] == 0 {
        s = &s[1..];
    }
    s
}

/// The status tag of a value.
pub fn tag(status: Status) -> u8 {
    match status {
        Status::Good => b'G',
        Status::Revoked { .. } => b'R',
        Status::Unknown => b'U',
    }
}

/// A value: the status tag and the OCSPResponse DER.
pub fn value(status: Status, der: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(der.len() + 1);
    v.push(tag(status));
    v.extend_from_slice(der);
    v
}

/// One partition `index` of `count` (`I/N` on the command line, 0 ≤ I < N).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partition {
    /// This signer's part.
    pub index: u32,
    /// How many parts.
    pub count: u32,
}

impl Partition {
    /// Everything (one signer).
    pub const ALL: Partition = Partition { index: 0, count: 1 };

    /// Whether the serial (any leading zeros) is in this partition: the first 8 bytes of
    /// SHA-256 of its minimal bytes, big-endian, mod `count`. Stable across processes,
    /// versions and platforms.
    pub fn owns(&self, serial: &[u8]) -> bool {
        partition_of(serial, self.count) == self.index
    }
}

/// The partition (of `count`) a serial belongs to.
pub fn partition_of(serial: &[u8], count: u32) -> u32 {
    let h = sha2::Sha256::digest(minimal(serial));
    let mut first = [0u8; 8];
    first.copy_from_slice(&h[..8]);
    (u64::from_be_bytes(first) % u64::from(count.max(1))) as u32
}

impl std::str::FromStr for Partition {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Partition, String> {
        let (i, n) = s.split_once('/').ok_or("a partition is I/N, e.g. 0/2")?;
        let index: u32 = i.trim().parse().map_err(|_| "I in I/N is a number")?;
        let count: u32 = n.trim().parse().map_err(|_| "N in I/N is a number")?;
        if count == 0 || index >= count {
            return Err(format!("partition {index}/{count}: need 0 ≤ I < N"));
        }
        Ok(Partition { index, count })
    }
}

/// A store operation, in the order a signer made it.
#[derive(Debug)]
enum Op {
    Put(Put),
    Invalidate(Vec<u8>),
}

/// The signer's side of the store: operations queued in order and written by one task
/// ([`Sink::spawn`]), which retries until the store takes them, so an invalidation is never
/// published before the response it announces is written.
#[derive(Debug, Clone)]
pub struct Sink {
    tx: mpsc::UnboundedSender<Op>,
    pending: Arc<AtomicU64>,
    /// The serials this signer signs.
    pub partition: Partition,
}

impl Sink {
    /// Starts the writer task for `store`.
    pub fn spawn(store: Arc<dyn ResponseStore>, partition: Partition) -> Sink {
        let (tx, rx) = mpsc::unbounded_channel();
        let pending = Arc::new(AtomicU64::new(0));
        tokio::spawn(writer(store, rx, pending.clone()));
        Sink { tx, pending, partition }
    }

    /// Queues a write.
    pub fn put(&self, p: Put) -> Result<()> {
        self.send(Op::Put(p))
    }

    /// Queues an invalidation (published after every write queued before it).
    pub fn invalidate(&self, key: Vec<u8>) -> Result<()> {
        self.send(Op::Invalidate(key))
    }

    fn send(&self, op: Op) -> Result<()> {
        self.pending.fetch_add(1, Ordering::SeqCst);
        self.tx.send(op).map_err(|_| {
            self.pending.fetch_sub(1, Ordering::SeqCst);
            Error::Internal("the store writer has stopped".into())
        })
    }

    /// Operations queued and not yet in the store.
    pub fn pending(&self) -> u64 {
        self.pending.load(Ordering::SeqCst)
    }

    /// Waits until everything queued so far is in the store.
    pub async fn flushed(&self) {
        while self.pending() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// Writes batches in order; a failed batch is retried (with the store's error logged) until it
/// is taken.
async fn writer(store: Arc<dyn ResponseStore>, mut rx: mpsc::UnboundedReceiver<Op>, pending: Arc<AtomicU64>) {
    const BATCH: usize = 256;
    let mut ops = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut ops, BATCH).await > 0 {
        let mut puts = Vec::new();
        for op in ops.drain(..) {
            match op {
                Op::Put(p) => puts.push(p),
                Op::Invalidate(k) => {
                    flush(&*store, &mut puts, &pending).await;
                    retry("publish an invalidation", || store.invalidate(k.clone())).await;
                    pending.fetch_sub(1, Ordering::SeqCst);
                }
            }
        }
        flush(&*store, &mut puts, &pending).await;
    }
}

async fn flush(store: &dyn ResponseStore, puts: &mut Vec<Put>, pending: &AtomicU64) {
    if puts.is_empty() {
        return;
    }
    let n = puts.len() as u64;
    let batch = std::mem::take(puts);
    retry("write responses", || store.put_many(batch.clone())).await;
    metrics::counter!("jpki_ocsp_store_writes_total").increment(n);
    pending.fetch_sub(n, Ordering::SeqCst);
}

async fn retry<'a, F: Fn() -> BoxFut<'a, Result<()>>>(what: &str, f: F) {
    let mut wait = Duration::from_millis(50);
    loop {
        match f().await {
            Ok(()) => return,
            Err(e) => {
                metrics::counter!("jpki_ocsp_store_errors_total", "op" => "write").increment(1);
                tracing::warn!("OCSP store: cannot {what} (retrying in {wait:?}): {e}");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// The in-process store: a map and a broadcast of invalidations. For tests and single-process
/// trials; it is not shared between processes.
#[derive(Debug, Default)]
pub struct MemoryStore {
    map: Mutex<HashMap<Vec<u8>, Vec<u8>>>,
    subscribers: Mutex<Vec<mpsc::Sender<Vec<u8>>>>,
}

impl MemoryStore {
    /// Drops every subscription (as a lost connection would).
    pub fn disconnect_all(&self) {
        if let Ok(mut s) = self.subscribers.lock() {
            s.clear();
        }
    }
    /// Writes a value as is, bypassing the revoked-is-final rule (tests of hostile stores).
    pub fn set_raw(&self, key: Vec<u8>, value: Vec<u8>) {
        if let Ok(mut m) = self.map.lock() {
            m.insert(key, value);
        }
    }
    /// Entries.
    pub fn len(&self) -> usize {
        self.map.lock().map(|m| m.len()).unwrap_or(0)
    }
    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn poisoned<T>(_: T) -> Error {
    Error::Internal("poisoned lock".into())
}

impl ResponseStore for MemoryStore {
    fn put_many(&self, puts: Vec<Put>) -> BoxFut<'_, Result<()>> {
        Box::pin(async move {
            let mut m = self.map.lock().map_err(poisoned)?;
            for p in puts {
                let final_revoked = m.get(&p.key).is_some_and(|old| old.first() == Some(&b'R'));
                if final_revoked && p.value.first() != Some(&b'R') {
                    continue;
                }
                m.insert(p.key, p.value);
            }
            Ok(())
        })
    }
    fn get(&self, key: Vec<u8>) -> BoxFut<'_, Result<Option<Vec<u8>>>> {
        Box::pin(async move { Ok(self.map.lock().map_err(poisoned)?.get(&key).cloned()) })
    }
    fn invalidate(&self, key: Vec<u8>) -> BoxFut<'_, Result<()>> {
        Box::pin(async move {
            let subs = self.subscribers.lock().map_err(poisoned)?.clone();
            for s in subs {
                let _ = s.send(key.clone()).await;
            }
            Ok(())
        })
    }
    fn subscribe(&self) -> BoxFut<'_, Result<Subscription>> {
        Box::pin(async move {
            let (tx, rx) = mpsc::channel(1024);
            self.subscribers.lock().map_err(poisoned)?.push(tx);
            Ok(rx)
        })
    }
}

/// The write script: a revoked value (tag `R`) is final until it expires.
const PUT_SCRIPT: &str = r"
local old = redis.call('GET', KEYS[1])
if old and string.byte(old, 1) == 82 and string.byte(ARGV[1], 1) ~= 82 then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1";

/// Redis Cluster (or one Redis node with cluster mode on): keys spread over the cluster's
/// slots; invalidations by classic pub/sub, which every node relays to every subscriber.
#[derive(Clone)]
pub struct RedisStore {
    nodes: Vec<String>,
    conn: redis::cluster_async::ClusterConnection,
    timeout: Duration,
    /// Replicas that must acknowledge a revocation before it counts as written (`WAIT`).
    replicas: u32,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore").field("nodes", &self.nodes).finish_non_exhaustive()
    }
}

fn redis_err(e: redis::RedisError) -> Error {
    Error::Store(e.to_string())
}

impl RedisStore {
    /// Connects to the cluster through its seed nodes (`redis://HOST:PORT`, comma-separated
    /// in one string or several). Each command gives up after `timeout`.
    pub async fn connect(urls: &str, timeout: Duration) -> Result<RedisStore> {
        let nodes: Vec<String> = urls.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect();
        if nodes.is_empty() {
            return Err(Error::Config("--store: no Redis node given (redis://HOST:PORT,…)".into()));
        }
        for n in &nodes {
            if !n.starts_with("redis://") && !n.starts_with("rediss://") {
                return Err(Error::Config(format!("--store: {n} is not a redis:// URL")));
            }
        }
        let client = redis::cluster::ClusterClientBuilder::new(nodes.clone())
            .connection_timeout(timeout)
            .response_timeout(timeout)
            .retries(1)
            .build()
            .map_err(redis_err)?;
        let conn = tokio::time::timeout(timeout * 4, client.get_async_connection())
            .await
            .map_err(|_| Error::Store(format!("no answer from the Redis cluster at {}", nodes.join(","))))?
            .map_err(redis_err)?;
        Ok(RedisStore { nodes, conn, timeout, replicas: 0 })
    }

    /// A revoked response counts as written only once `n` replicas of its master have it
    /// (`WAIT n`, within the command timeout): a master that dies right after taking it cannot
    /// lose it, because the write is retried (on the promoted replica) until `n` acknowledge,
    /// and its invalidation is published only after that. Good responses are not waited for
    /// (one lost is re-signed at half-life and the previous one is still valid). 0: no wait.
    pub fn with_replicas(mut self, n: u32) -> RedisStore {
        self.replicas = n;
        self
    }

    /// `WAIT replicas` at the master of `key`, on the connection its write went through.
    async fn replicated(&self, key: &[u8]) -> Result<()> {
        use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
        let mut c = self.conn.clone();
        let mut cmd = redis::cmd("WAIT");
        let wait_ms = u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX);
        cmd.arg(self.replicas).arg(wait_ms);
        let route =
            RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(Route::with_key(key, SlotAddr::Master)));
        // WAIT blocks for up to its own timeout: the command gets that plus the usual timeout.
        let answer = tokio::time::timeout(self.timeout * 2, c.route_command(cmd, route))
            .await
            .map_err(|_| Error::Store(format!("WAIT did not return within {:?}", self.timeout * 2)))?
            .map_err(redis_err)?;
        let acked: i64 = redis::from_redis_value(answer).map_err(|e| Error::Store(format!("WAIT: {e}")))?;
        if acked < i64::from(self.replicas) {
            metrics::counter!("jpki_ocsp_store_unreplicated_total").increment(1);
            return Err(Error::Store(format!(
                "a revocation was written but {acked} of {} replica(s) acknowledged it within {:?}",
                self.replicas, self.timeout
            )));
        }
        Ok(())
    }

    async fn timed<T>(&self, f: impl Future<Output = redis::RedisResult<T>>) -> Result<T> {
        tokio::time::timeout(self.timeout, f)
            .await
            .map_err(|_| Error::Store(format!("the Redis cluster did not answer within {:?}", self.timeout)))?
            .map_err(redis_err)
    }
}

impl ResponseStore for RedisStore {
    fn put_many(&self, puts: Vec<Put>) -> BoxFut<'_, Result<()>> {
        Box::pin(async move {
            // Keys spread over slots (a cluster pipeline must stay in one slot): the writes go
            // out concurrently on the one multiplexed connection.
            let t = self.timeout * 4;
            let writes = puts.iter().map(|p| {
                let mut c = self.conn.clone();
                let mut cmd = redis::cmd("EVAL");
                cmd.arg(PUT_SCRIPT).arg(1).arg(&p.key).arg(&p.value).arg(p.ttl_ms.max(1));
                async move { cmd.query_async::<i64>(&mut c).await }
            });
            tokio::time::timeout(t, futures_util::future::try_join_all(writes))
                .await
                .map_err(|_| Error::Store(format!("the Redis cluster did not take a batch within {t:?}")))?
                .map_err(redis_err)?;
            if self.replicas > 0 {
                // Revoked values carry the tag `R` (see [`tag`]).
                let revoked = puts.iter().filter(|p| p.value.first() == Some(&b'R'));
                futures_util::future::try_join_all(revoked.map(|p| self.replicated(&p.key))).await?;
            }
            Ok(())
        })
    }
    fn get(&self, key: Vec<u8>) -> BoxFut<'_, Result<Option<Vec<u8>>>> {
        Box::pin(async move {
            let mut c = self.conn.clone();
            self.timed(redis::cmd("GET").arg(key).query_async::<Option<Vec<u8>>>(&mut c)).await
        })
    }
    fn invalidate(&self, key: Vec<u8>) -> BoxFut<'_, Result<()>> {
        Box::pin(async move {
            let mut c = self.conn.clone();
            self.timed(redis::cmd("PUBLISH").arg(CHANNEL).arg(key).query_async::<i64>(&mut c)).await.map(|_| ())
        })
    }
    fn subscribe(&self) -> BoxFut<'_, Result<Subscription>> {
        Box::pin(async move {
            // Any node relays the cluster's publications; the first one that answers.
            let mut last = Error::Store("no Redis node".into());
            for n in &self.nodes {
                let attempt = async {
                    let client = redis::Client::open(n.as_str()).map_err(redis_err)?;
                    let mut ps = self.timed(client.get_async_pubsub()).await?;
                    self.timed(ps.subscribe(CHANNEL)).await?;
                    Ok::<_, Error>(ps)
                };
                match attempt.await {
                    Ok(ps) => {
                        let (tx, rx) = mpsc::channel(4096);
                        tokio::spawn(async move {
                            use futures_util::StreamExt as _;
                            let mut s = ps.into_on_message();
                            while let Some(m) = s.next().await {
                                if tx.send(m.get_payload_bytes().to_vec()).await.is_err() {
                                    return;
                                }
                            }
                            // The connection is gone: dropping `tx` tells the subscriber.
                        });
                        tracing::info!(node = %n, "subscribed to OCSP invalidations");
                        return Ok(rx);
                    }
                    Err(e) => last = e,
                }
            }
            Err(last)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_stable_and_cover_every_serial_once() {
        // Fixed values: the partition of a serial never changes between versions.
        assert_eq!(partition_of(&[0x01], 2), partition_of(&[0x00, 0x01], 2), "leading zeros do not count");
        let parts: Vec<Partition> = (0..4).map(|i| Partition { index: i, count: 4 }).collect();
        let mut counts = [0usize; 4];
        for s in 0u32..4000 {
            let serial = (s.wrapping_mul(2_654_435_761)).to_be_bytes();
            let owners: Vec<usize> = (0..4).filter(|&i| parts[i].owns(&serial)).collect();
            assert_eq!(owners.len(), 1, "exactly one partition owns each serial");
            counts[owners[0]] += 1;
        }
        for c in counts {
            assert!((800..1200).contains(&c), "roughly even: {counts:?}");
        }
        assert!(Partition::ALL.owns(&[9, 9, 9]));
        let h = sha2::Sha256::digest([0x2a]);
        let expect = (u64::from_be_bytes(h[..8].try_into().unwrap()) % 3) as u32;
        assert_eq!(partition_of(&[0x2a], 3), expect);
    }

    #[test]
    fn partitions_parse() {
        assert_eq!("1/3".parse::<Partition>().unwrap(), Partition { index: 1, count: 3 });
        assert!("3/3".parse::<Partition>().is_err());
        assert!("0/0".parse::<Partition>().is_err());
        assert!("x".parse::<Partition>().is_err());
    }

    #[test]
    fn keys_separate_algorithms_and_ignore_leading_zeros() {
        let k1 = key(Alg::Sha1, &[7; 20], &[0, 0, 5]);
        assert_eq!(k1, [&[b'o', 1][..], &[7; 20], &[5]].concat());
        assert_ne!(key(Alg::Sha256, &[7; 20], &[5]), k1);
    }

    #[tokio::test]
    async fn a_revoked_value_is_final_and_invalidations_follow_writes() {
        let store = Arc::new(MemoryStore::default());
        let mut sub = store.subscribe().await.unwrap();
        let sink = Sink::spawn(store.clone(), Partition::ALL);
        let k = b"k".to_vec();
        sink.put(Put { key: k.clone(), value: b"Gone".to_vec(), ttl_ms: 1000 }).unwrap();
        sink.put(Put { key: k.clone(), value: b"Rtwo".to_vec(), ttl_ms: 1000 }).unwrap();
        sink.invalidate(k.clone()).unwrap();
        assert_eq!(sub.recv().await.unwrap(), k);
        // The invalidation came after the write it announces.
        assert_eq!(store.get(k.clone()).await.unwrap().unwrap(), b"Rtwo");
        sink.put(Put { key: k.clone(), value: b"Gthree".to_vec(), ttl_ms: 1000 }).unwrap();
        sink.flushed().await;
        assert_eq!(store.get(k).await.unwrap().unwrap(), b"Rtwo", "a good never replaces a revoked");
    }
}
