//! The Redis replay store: what lets several replicas share one view of
//! what was already admitted. One server-side script call per request
//! (EVALSHA) does the epoch check and the `SET key 1 NX PX ttl` atomically;
//! calls that arrive while the previous ones are in flight travel together
//! as one pipeline, so a busy replica makes one write and one read for
//! many requests instead of one each.
//!
//! The epoch guard (DESIGN §8a): a Redis that restarts without persistence,
//! or fails over, forgets admitted requests. verigate keeps `<prefix>epoch`,
//! the time it was written; the script writes it whenever it is missing and,
//! for one window after it, refuses requests signed before it (they may
//! have been admitted before the loss). Checking in the script, on every
//! call, catches a loss however the connection came back.

use std::time::Duration;

use redis::{
    Client, Script,
    aio::{ConnectionManager, ConnectionManagerConfig},
};
use secrecy::ExposeSecret;
use thread_local::ThreadLocal;
use tokio::sync::{mpsc, oneshot};

use super::{ReplayError, ReplayKey};
use crate::{
    configuration::{ConfigError, RedisReplaySettings},
    domain::timestamp::now_millis,
};

/// KEYS[1] replay key, KEYS[2] epoch key; ARGV[1] ttl ms (also the guard
/// window), ARGV[2] the request's timestamp ms (-1: none), ARGV[3] now ms.
/// Returns 1 first seen, 0 replay, -1 signed before the epoch.
const ADMIT_SCRIPT: &str = r"
local now = tonumber(ARGV[3])
local epoch = tonumber(redis.call('GET', KEYS[2]))
if not epoch then
  redis.call('SET', KEYS[2], ARGV[3])
  epoch = now
end
local ts = tonumber(ARGV[2])
if ts >= 0 and ts < epoch and now < epoch + tonumber(ARGV[1]) then
  return -1
end
if redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then
  return 1
end
return 0
";

/// A lazily connected, self-reconnecting Redis store.
///
/// Each thread that calls it gets its own connection, made on first use
/// inside that thread's runtime: one shared connection would run its I/O
/// task on whichever runtime built it, and every call from an actix worker
/// would cross threads twice (measured: about a fifth of the throughput).
pub struct RedisStore {
    client: Client,
    config: ConnectionManagerConfig,
    connections: ThreadLocal<ConnectionManager>,
    batchers: ThreadLocal<mpsc::UnboundedSender<Admit>>,
    admit: Script,
    prefix: String,
    epoch_key: String,
    timeout: Duration,
    address: String,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("address", &self.address)
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl RedisStore {
    /// Resolves the URL and prepares a connection manager that connects on
    /// first use and reconnects by itself. Must run inside a Tokio runtime.
    pub fn connect_lazily(settings: &RedisReplaySettings) -> Result<Self, ConfigError> {
        let (url, _) = settings.redis_url.resolve("replay.redis_url")?;
        let client = Client::open(url.expose_secret()).map_err(|e| {
            ConfigError::new("replay.redis_url", format!("not a Redis URL: {}", kind(&e)))
        })?;
        let info = client.get_connection_info();
        let address = format!("{}/{}", info.addr(), info.redis_settings().db());
        if settings.timeout_ms == 0 {
            return Err(ConfigError::new("replay.timeout_ms", "must be at least 1"));
        }
        let timeout = Duration::from_millis(settings.timeout_ms);
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        Ok(Self {
            client,
            config,
            connections: ThreadLocal::new(),
            batchers: ThreadLocal::new(),
            admit: Script::new(ADMIT_SCRIPT),
            epoch_key: format!("{}epoch", settings.key_prefix),
            prefix: settings.key_prefix.clone(),
            timeout,
            address,
        })
    }

    /// `host:port/db`, never the password.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// See [`super::ReplayStore::first_seen`].
    pub async fn first_seen(
        &self,
        key: &ReplayKey,
        ttl: Duration,
        timestamp_ms: Option<i64>,
    ) -> Result<bool, ReplayError> {
        let replay_key = format!("{}r:{}", self.prefix, hex(key.as_bytes()));
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let (reply, answer) = oneshot::channel();
        let admit = Admit {
            key: replay_key,
            ttl_ms,
            timestamp_ms: timestamp_ms.unwrap_or(-1),
            now_ms: now_millis(),
            reply,
        };
        self.batcher()?
            .send(admit)
            .map_err(|_| ReplayError::Unavailable(anyhow::anyhow!("the Redis batcher stopped")))?;
        let call = async {
            answer.await.unwrap_or_else(|_| {
                Err(redis::RedisError::from(std::io::Error::from(
                    std::io::ErrorKind::BrokenPipe,
                )))
            })
        };
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(1)) => Ok(true),
            Ok(Ok(0)) => Ok(false),
            Ok(Ok(_)) => {
                tracing::warn!(
                    "request signed before the replay store's epoch (Redis lost its data); \
                     refused as a possible replay"
                );
                Ok(false)
            }
            Ok(Err(e)) => Err(ReplayError::Unavailable(anyhow::Error::new(e))),
            Err(_) => Err(ReplayError::Unavailable(anyhow::anyhow!(
                "no answer from Redis within {:?}",
                self.timeout
            ))),
        }
    }

    /// This thread's batcher: a task on this thread's runtime that sends
    /// every admit queued while the previous batch was in flight as one
    /// pipeline (one write and one read for many requests).
    fn batcher(&self) -> Result<&mpsc::UnboundedSender<Admit>, ReplayError> {
        self.batchers.get_or_try(|| {
            let connection = self.connection()?;
            let (sender, receiver) = mpsc::unbounded_channel();
            tokio::spawn(send_batches(
                connection,
                self.admit.clone(),
                self.epoch_key.clone(),
                receiver,
            ));
            Ok(sender)
        })
    }

    /// This thread's connection manager, created (not connected) on first use.
    fn connection(&self) -> Result<ConnectionManager, ReplayError> {
        self.connections
            .get_or_try(|| {
                ConnectionManager::new_lazy_with_config(self.client.clone(), self.config.clone())
            })
            .cloned()
            .map_err(|e| ReplayError::Unavailable(anyhow::Error::new(e)))
    }

    /// Readiness: a PING within the timeout.
    pub async fn check_ready(&self) -> Result<(), String> {
        let mut connection = self.connection().map_err(|e| e.to_string())?;
        let command = redis::cmd("PING");
        let ping = command.query_async::<String>(&mut connection);
        match tokio::time::timeout(self.timeout, ping).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("redis error: {}", kind(&e))),
            Err(_) => Err("redis did not answer in time".into()),
        }
    }

    /// Writes the epoch key when it is missing, so requests signed after
    /// start are never taken for pre-loss ones.
    pub async fn init_epoch(&self) {
        let Ok(mut connection) = self.connection() else {
            return;
        };
        let mut command = redis::cmd("SET");
        command.arg(&self.epoch_key).arg(now_millis()).arg("NX");
        let set = command.query_async::<Option<String>>(&mut connection);
        match tokio::time::timeout(self.timeout, set).await {
            Ok(Ok(Some(_))) => tracing::info!("wrote the replay store's epoch key"),
            Ok(Ok(None)) => {}
            Ok(Err(e)) => tracing::warn!(error = %kind(&e), "cannot reach Redis at start"),
            Err(_) => tracing::warn!("Redis did not answer at start"),
        }
    }
}

/// One queued admit and where its answer goes.
struct Admit {
    key: String,
    ttl_ms: u64,
    timestamp_ms: i64,
    now_ms: i64,
    reply: oneshot::Sender<Result<i64, redis::RedisError>>,
}

/// Most admits sent in one pipeline.
const MAX_BATCH: usize = 256;

/// Sends queued admits as pipelines of EVALSHA until every sender is gone.
/// A batch that finds the script missing (Redis restarted or flushed its
/// scripts) loads it and is sent once more.
async fn send_batches(
    mut connection: ConnectionManager,
    script: Script,
    epoch_key: String,
    mut queue: mpsc::UnboundedReceiver<Admit>,
) {
    let mut batch: Vec<Admit> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = queue.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(admit) => batch.push(admit),
                Err(_) => break,
            }
        }
        // Callers that timed out are not worth a round trip.
        batch.retain(|admit| !admit.reply.is_closed());
        if batch.is_empty() {
            continue;
        }
        let mut pipeline = redis::pipe();
        for admit in &batch {
            let mut command = redis::cmd("EVALSHA");
            command
                .arg(script.get_hash())
                .arg(2)
                .arg(&admit.key)
                .arg(&epoch_key)
                .arg(admit.ttl_ms)
                .arg(admit.timestamp_ms)
                .arg(admit.now_ms);
            pipeline.add_command(command);
        }
        let mut result = pipeline.query_async::<Vec<i64>>(&mut connection).await;
        if matches!(&result, Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript))
        {
            result = match script.load_async(&mut connection).await {
                Ok(_) => pipeline.query_async::<Vec<i64>>(&mut connection).await,
                Err(e) => Err(e),
            };
        }
        match result {
            Ok(answers) if answers.len() == batch.len() => {
                for (admit, answer) in batch.drain(..).zip(answers) {
                    let _ = admit.reply.send(Ok(answer));
                }
            }
            Ok(_) => {
                let error = redis::RedisError::from(std::io::Error::other(
                    "Redis answered a pipeline with the wrong number of replies",
                ));
                for admit in batch.drain(..) {
                    let _ = admit.reply.send(Err(error.clone()));
                }
            }
            Err(error) => {
                for admit in batch.drain(..) {
                    let _ = admit.reply.send(Err(error.clone()));
                }
            }
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

/// The error's kind only: a Redis error's text can echo server replies.
fn kind(error: &redis::RedisError) -> String {
    format!("{:?}", error.kind())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_lowercase_hex() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
    }
}
