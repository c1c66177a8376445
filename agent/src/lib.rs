//! ferry-agent: the on-device side of Ferry.
//!
//! A run ([`run`]) takes the state-directory lock ([`lock`]) while it works and walks the
//! stages, each its own module, over the run's context ([`agent::Agent`]):
//! [`check`] → [`download`] → [`install`] → [`report`]. Decisions live in [`policy`]; the
//! state directory and its atomic writes in [`state`]; configuration in [`config`].
//! Each module imports only those below it in that order (ARCHITECTURE.md).

pub mod agent;
pub mod check;
pub mod client;
pub mod config;
pub mod dashboard;
pub mod delivery;
pub mod download;
pub mod error;
pub mod fsops;
pub mod identity;
pub mod install;
pub mod inventory;
pub mod lock;
pub mod metrics;
pub mod observe;
pub mod policy;
pub mod progress;
pub mod report;
pub mod repository;
pub mod run;
pub mod share;
pub mod state;
pub mod status;
pub mod trust;
pub mod verify;

pub use agent::{Agent, Mode};
pub use run::run_mode;
