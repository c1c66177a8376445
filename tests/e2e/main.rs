//! End-to-end tests: each starts a real ferry-server in a temporary directory and drives it
//! with the real ferryctl and ferry-agent binaries, then checks what a user would check: the
//! files on the device, the exit codes, and what the server reports.

mod agent_cli;
mod apt;
mod backup;
mod batches;
mod budgets;
mod campaigns;
mod containers;
mod crash;
mod ctl_errors;
mod dashboard;
mod ddi;
mod delivery;
mod deltas;
mod enrolment;
mod faults;
mod fleet;
mod hostile;
mod identity;
mod image;
mod interactive;
mod keys;
mod live;
mod load;
mod logs;
mod longpoll;
mod metrics;
mod mqtt;
mod objects;
mod observation;
mod refusals;
mod scaleout;
mod sign_in;
mod signals;
mod signer;
mod sources;
mod space;
mod standalone;
mod tls;
mod ui;
mod update_cycle;
mod users;
mod util;
mod webhooks;
mod withdraw;
