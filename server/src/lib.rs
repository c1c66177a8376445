//! ferry-server: the fleet server. It never holds a release private key: it is built without
//! `ferry-manifests`' `sign` feature (ferryctl, a crate of its own, signs offline).
//!
//! The layers, top down; each imports only those below it (ARCHITECTURE.md):
//! - [`serve`]: the process: data directory, store, state, background tasks, listening.
//! - [`ui`] and [`api`], side by side (neither imports the other): the web UI, server-rendered,
//!   and the HTTP API's axum handlers; both authenticate, parse, call a service, answer.
//! - [`mqtt`]: the MQTT bridge and Home Assistant discovery: topics and payloads as pure
//!   functions, and one broker connection per `[[mqtt]]`.
//! - [`service`]: what happens when a host checks in, reports arrive, a person asks for an
//!   install, and campaigns and batches at work.
//! - [`auth`]: bearer tokens and web sessions; who is asking, and ([`budget`]) how much it
//!   may still ask.
//! - [`identity`]: device identity: the device CA, the factory CA, client certificates from
//!   the TLS handshake or a trusted proxy.
//! - [`state`]: the shared context every layer above takes.
//! - [`store`]: the store interface and its SQL backend (all SQL).
//! - [`policy`]: decisions as plain code over data (campaigns, batches, the fleet).
//! - [`artifact`] and [`deltas`]: stored artifacts checked as devices check them, and the
//!   deltas built from them.

pub mod api;
pub mod artifact;
pub mod artifact_store;
pub mod auth;
pub mod backup;
pub mod budget;
pub mod cache;
pub mod cluster;
pub mod config;
pub mod deltas;
pub mod egress;
pub mod error;
pub mod identity;
pub mod live;
pub mod metrics;
pub mod mqtt;
pub mod policy;
pub mod presence;
pub mod secrets;
pub mod serve;
pub mod service;
pub mod state;
pub mod store;
pub mod terminal;
#[cfg(test)]
mod testing;
pub mod ui;
pub mod wake;

pub use serve::serve;
