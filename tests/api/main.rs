//! Black-box tests against verigate on a free port.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod bodies;
mod check_config;
mod cli;
mod contiple_lookup;
mod helpers;
mod operations;
mod replay;
mod signatures;
mod timestamps;
