//! Black-box tests against verigate on a free port.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod bodies;
mod check_config;
mod cli;
mod contiple_lookup;
mod helpers;
mod import;
mod limits;
mod logs;
mod network;
mod operations;
mod process;
mod raw_http;
mod redis_store;
mod replay;
mod servers;
mod shutdown;
mod signatures;
mod sql_backends;
mod sql_latency;
mod timestamps;
