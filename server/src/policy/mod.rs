//! Decisions as plain code over data: no I/O, no clock (the caller passes `now`), unit-tested
//! on their own. The service and API layers gather the data, call these, and carry out what
//! they decide.
//!
//! - [`status`]: the statuses stored as text, as enums.
//! - [`campaign`]: targeting, wave placement, the member gate, when waves open and when a
//!   campaign pauses itself, maintenance windows.
//! - [`batch`]: batch planning, which entry goes next per host, batch status.
//! - [`fleet`]: what is available to a host, the online rule, effective labels.
//! - [`identity`]: which proof a device's request is judged by, the proxy's certificate
//!   header, clones.
//! - [`roles`]: the roles, what each may do, what each operator route needs.

pub mod audit;
pub mod batch;
pub mod campaign;
pub mod ddi;
pub mod fleet;
pub mod identity;
pub mod observation;
pub mod roles;
pub mod scope;
pub mod sites;
pub mod status;
#[cfg(test)]
pub(crate) mod testing;
pub mod webhooks;
