//! `verigate check-config`: everything `serve` checks at start (secrets,
//! data files, routes against backends), without opening a socket or a
//! database connection. Prints each route with its scheme, backend and key
//! count, and each backend with its kind and where its data lives (a
//! database's host, port and name; never a password or the whole URL).

use std::fmt::Write as _;

use crate::{
    configuration::{BackendSettings, ConfigError, Settings},
    startup::build_state,
};

/// The report for a valid file, or the first mistake.
pub fn check(settings: &Settings) -> Result<String, ConfigError> {
    let built = build_state(settings)?;
    let mut out = String::new();
    let _ = writeln!(out, "configuration OK");
    let _ = writeln!(out, "routes:");
    for route in &built.routes {
        let _ = writeln!(
            out,
            "  {name}  {path}  scheme={scheme}  backend={backend}  keys={keys}",
            name = route.name,
            path = route.path,
            scheme = route.scheme,
            backend = route.backend,
            keys = route.keys,
        );
    }
    let _ = writeln!(out, "backends:");
    for (backend, built) in settings.backends.iter().zip(&built.state.backends) {
        let place = match backend {
            BackendSettings::File(_) | BackendSettings::Sqlite(_) => "path",
            BackendSettings::Postgres(_) | BackendSettings::Mysql(_) => "host",
        };
        let _ = writeln!(
            out,
            "  {}  kind={}  {place}={}",
            backend.name(),
            backend.kind(),
            built.location()
        );
    }
    let _ = writeln!(out, "replay store: {}", built.state.replay.describe());
    for warning in &built.warnings {
        let _ = writeln!(out, "warning: {warning}");
    }
    Ok(out)
}
