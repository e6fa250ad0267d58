//! The Redis replay store: what lets several replicas share one view of
//! what was already admitted. A server-side script (EVALSHA) does the epoch
//! check and the `SET key 1 NX PX ttl` atomically. Admits that arrive while
//! the previous call is in flight travel together in the next call: one
//! script run admits a whole batch, so a busy replica costs Redis one
//! command, one write and one read for many requests instead of one each
//! (Lua's per-call cost was most of Redis's time per request).
//!
//! The epoch guard (DESIGN §8a): a Redis that restarts without persistence,
//! or fails over, forgets admitted requests. verigate keeps `<prefix>epoch`,
//! the time it was written; the script writes it whenever it is missing and,
//! for one window after it, refuses requests signed before it (they may
//! have been admitted before the loss). Checking in the script, on every
//! call, catches a loss however the connection came back.

use std::{cell::RefCell, time::Duration};

use redis::{
    Client, Script,
    aio::{ConnectionManager, ConnectionManagerConfig},
};
use secrecy::ExposeSecret;
use thread_local::ThreadLocal;
use tokio::{
    sync::{mpsc, oneshot},
    time::Instant,
};

use super::{ReplayError, ReplayKey};
use crate::{
    configuration::{ConfigError, RedisReplaySettings},
    domain::timestamp::now_millis,
};

/// KEYS[1] the epoch key, KEYS[2..] the replay keys of one batch;
/// ARGV[1] now ms, ARGV[2] the longest ttl ms in the batch, then for each
/// replay key its ttl ms (also its guard window) and the request's
/// timestamp ms (-1: none). Returns, per replay key in order, 1 first
/// seen, 0 replay, -1 signed before the epoch. A key twice in one batch is
/// first seen once, like two calls in a row. Outside the guard window (the
/// usual case) a key costs one SET and nothing else: Lua's per-key work is
/// most of what a batch costs Redis.
const ADMIT_SCRIPT: &str = r"
local now = tonumber(ARGV[1])
local epoch = tonumber(redis.call('GET', KEYS[1]))
if not epoch then
  redis.call('SET', KEYS[1], ARGV[1])
  epoch = now
end
local guarding = now < epoch + tonumber(ARGV[2])
local answers = {}
for i = 2, #KEYS do
  local ttl = ARGV[2 * i - 1]
  local ts = guarding and tonumber(ARGV[2 * i]) or -1
  if ts >= 0 and ts < epoch and now < epoch + tonumber(ttl) then
    answers[i - 1] = -1
  elseif redis.call('SET', KEYS[i], '1', 'NX', 'PX', ttl) then
    answers[i - 1] = 1
  else
    answers[i - 1] = 0
  end
end
return answers
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
    batchers: ThreadLocal<RefCell<Option<mpsc::UnboundedSender<Admit>>>>,
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
        // One connection attempt per reconnect, no backoff: while Redis is
        // down a request fails in a fraction of a millisecond (a refused
        // connect) instead of waiting out retry delays, and the first call
        // after Redis returns connects at once. `query_reconnecting` adds
        // the one retry a dropped idle connection needs.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(0);
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
            deadline: Instant::now() + self.timeout,
            reply,
        };
        self.enqueue(admit)?;
        // No timer here: the batcher answers every admit by its deadline
        // (one timer per batch, not one per request).
        let answer = answer.await.unwrap_or_else(|_| {
            Err(redis::RedisError::from(std::io::Error::from(
                std::io::ErrorKind::BrokenPipe,
            )))
        });
        match answer {
            Ok(1) => Ok(true),
            Ok(0) => Ok(false),
            Ok(_) => {
                tracing::warn!(
                    "request signed before the replay store's epoch (Redis lost its data); \
                     refused as a possible replay"
                );
                Ok(false)
            }
            Err(e) => Err(ReplayError::Unavailable(anyhow::Error::new(e))),
        }
    }

    /// This thread's batcher: a task that sends every admit queued while
    /// the previous batch was in flight as one script call. It is a local
    /// task, in the same `LocalSet` as the handlers it answers (an actix
    /// worker's): waking a handler from a task outside that set costs an
    /// eventfd write per wake (measured: one in six requests). So
    /// `first_seen` must run inside a `LocalSet`, as handlers always do.
    ///
    /// A batcher whose task is gone (its worker's runtime stopped, and the
    /// thread id was reused by a new worker) is replaced, with a fresh
    /// connection, rather than failing every call from then on.
    fn enqueue(&self, admit: Admit) -> Result<(), ReplayError> {
        let mut slot = self.batchers.get_or(|| RefCell::new(None)).borrow_mut();
        let sender = match slot.as_ref() {
            Some(sender) if !sender.is_closed() => sender,
            _ => {
                let connection = self.new_connection()?;
                let (sender, receiver) = mpsc::unbounded_channel();
                tokio::task::spawn_local(send_batches(
                    connection,
                    self.admit.clone(),
                    self.epoch_key.clone(),
                    receiver,
                ));
                slot.insert(sender)
            }
        };
        sender
            .send(admit)
            .map_err(|_| ReplayError::Unavailable(anyhow::anyhow!("the Redis batcher stopped")))
    }

    fn new_connection(&self) -> Result<ConnectionManager, ReplayError> {
        ConnectionManager::new_lazy_with_config(self.client.clone(), self.config.clone())
            .map_err(|e| ReplayError::Unavailable(anyhow::Error::new(e)))
    }

    /// This thread's connection manager for the readiness probe and the
    /// epoch write at start, created (not connected) on first use.
    fn connection(&self) -> Result<ConnectionManager, ReplayError> {
        self.connections
            .get_or_try(|| self.new_connection())
            .cloned()
    }

    /// Readiness: Redis answers, within the timeout, a write of the epoch
    /// key when it is missing. Writing it here, not only in the first
    /// admit after a loss, starts the guard window as soon as a probe sees
    /// Redis back: a request signed after `/readyz` turned 200 is never
    /// taken for one from before the loss.
    pub async fn check_ready(&self) -> Result<(), String> {
        match self.write_epoch_if_missing().await {
            Ok(true) => {
                tracing::warn!(
                    "the replay store's epoch key was missing (Redis lost its data?): \
                     wrote it; requests signed before now are refused for one window"
                );
                Ok(())
            }
            Ok(false) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Writes the epoch key when it is missing, so requests signed after
    /// start are never taken for pre-loss ones.
    pub async fn init_epoch(&self) {
        match self.write_epoch_if_missing().await {
            Ok(true) => tracing::info!("wrote the replay store's epoch key"),
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "cannot reach Redis at start"),
        }
    }

    /// `SET <prefix>epoch <now> NX` within the timeout: whether it wrote.
    async fn write_epoch_if_missing(&self) -> Result<bool, String> {
        let mut connection = self.connection().map_err(|e| e.to_string())?;
        let mut command = redis::cmd("SET");
        command.arg(&self.epoch_key).arg(now_millis()).arg("NX");
        let set = query_reconnecting::<Option<String>>(&command, &mut connection);
        match tokio::time::timeout(self.timeout, set).await {
            Ok(Ok(written)) => Ok(written.is_some()),
            Ok(Err(e)) => Err(format!("redis error: {}", kind(&e))),
            Err(_) => Err("redis did not answer in time".into()),
        }
    }
}

/// One queued admit and where its answer goes.
struct Admit {
    key: String,
    ttl_ms: u64,
    timestamp_ms: i64,
    /// When the caller must have its answer: `timeout_ms` after it asked.
    deadline: Instant,
    reply: oneshot::Sender<Result<i64, redis::RedisError>>,
}

/// Most admits sent in one script call.
const MAX_BATCH: usize = 256;

/// Sends queued admits, a batch per script call, until every sender is
/// gone. A batch that finds the script missing (Redis restarted or flushed
/// its scripts) loads it and is sent once more.
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
        // Callers gone or out of time are not worth a round trip.
        let now = Instant::now();
        for admit in batch.extract_if(.., |admit| admit.reply.is_closed() || admit.deadline <= now)
        {
            let _ = admit.reply.send(Err(timed_out()));
        }
        let Some(deadline) = batch.iter().map(|admit| admit.deadline).min() else {
            continue;
        };
        let command = admit_command(&script, &epoch_key, &batch);
        let attempt = async {
            let result = query_reconnecting::<Vec<i64>>(&command, &mut connection).await;
            match result {
                Err(e)
                    if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
                {
                    script.load_async(&mut connection).await?;
                    command.query_async::<Vec<i64>>(&mut connection).await
                }
                result => result,
            }
        };
        let result = tokio::time::timeout_at(deadline, attempt)
            .await
            .unwrap_or_else(|_| Err(timed_out()));
        let result = result.and_then(|answers| {
            if answers.len() == batch.len() {
                Ok(answers)
            } else {
                Err(redis::RedisError::from(std::io::Error::other(
                    "Redis answered a batch with the wrong number of replies",
                )))
            }
        });
        match result {
            Ok(answers) => {
                for (admit, answer) in batch.drain(..).zip(answers) {
                    let _ = admit.reply.send(Ok(answer));
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

/// The answer to an admit whose time ran out before Redis answered.
fn timed_out() -> redis::RedisError {
    redis::RedisError::from(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "no answer from Redis within replay.timeout_ms",
    ))
}

/// Runs `command`, and once more when the connection turned out dead.
/// After a Redis restart the first command on each idle connection finds
/// it closed, and `ConnectionManager` only reconnects then; without the
/// second try that request would be a needless 503. Safe for the admit
/// script: if the first try did run, its keys answer "replay" to the
/// second, which refuses those requests and never admits one twice.
async fn query_reconnecting<T: redis::FromRedisValue>(
    command: &redis::Cmd,
    connection: &mut ConnectionManager,
) -> redis::RedisResult<T> {
    match command.query_async(connection).await {
        Err(e) if e.is_unrecoverable_error() && !e.is_timeout() => {
            command.query_async(connection).await
        }
        result => result,
    }
}

/// One EVALSHA of the admit script for the whole batch.
fn admit_command(script: &Script, epoch_key: &str, batch: &[Admit]) -> redis::Cmd {
    let mut command = redis::cmd("EVALSHA");
    command
        .arg(script.get_hash())
        .arg(batch.len() + 1)
        .arg(epoch_key);
    for admit in batch {
        command.arg(&admit.key);
    }
    let longest_ttl_ms = batch.iter().map(|admit| admit.ttl_ms).max().unwrap_or(1);
    command.arg(now_millis()).arg(longest_ttl_ms);
    for admit in batch {
        command.arg(admit.ttl_ms).arg(admit.timestamp_ms);
    }
    command
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
