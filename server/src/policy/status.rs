//! The statuses the server stores as text, as enums: every comparison is checked by the
//! compiler, and a stored value the code does not know is an error, not a silent mismatch.

/// Declares a status enum with its text form (stored in the database and sent on the wire).
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)*
                    other => Err(format!(
                        "{other:?} is not one of: {}",
                        [$($text),*].join(", ")
                    )),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum! {
    /// An update (a job for one host, or a device's own install) as the history keeps it.
    UpdateStatus {
        /// Assigned; the device has not reported yet.
        Pending = "pending",
        Installed = "installed",
        Failed = "failed",
        RolledBack = "rolled_back",
        Refused = "refused",
        /// Withdrawn before the device reported (a cancelled campaign).
        Cancelled = "cancelled",
    }
}

impl UpdateStatus {
    /// An outcome that counts against a rollout's failure threshold.
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            UpdateStatus::Failed | UpdateStatus::RolledBack | UpdateStatus::Refused
        )
    }

    pub fn from_outcome(outcome: ferry_manifests::wire::Outcome) -> UpdateStatus {
        use ferry_manifests::wire::Outcome;
        match outcome {
            Outcome::Installed => UpdateStatus::Installed,
            Outcome::Failed => UpdateStatus::Failed,
            Outcome::RolledBack => UpdateStatus::RolledBack,
            Outcome::Refused => UpdateStatus::Refused,
        }
    }
}

text_enum! {
    /// A campaign's lifecycle.
    CampaignStatus {
        Running = "running",
        /// By an operator, or by itself on the failure threshold.
        Paused = "paused",
        /// For good: pending installs withdrawn.
        Cancelled = "cancelled",
        /// Every member has a final outcome; no longer evaluated, and hosts no longer join.
        Completed = "completed",
    }
}

/// Where one campaign member stands: before dispatch, what holds it; after, its update's
/// status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberStatus {
    /// Its wave is not open yet.
    Waiting,
    /// The campaign needs the device's acceptance and has not got it.
    AwaitingAcceptance,
    /// Outside the maintenance window, in the device's local time.
    OutsideWindow,
    /// May be dispatched now.
    Dispatchable,
    /// Dispatched (or already had the version: `Installed`).
    Update(UpdateStatus),
}

impl MemberStatus {
    /// As operators see it: a dispatchable member is still waiting for its install.
    pub fn as_str(self) -> &'static str {
        match self {
            MemberStatus::Waiting | MemberStatus::Dispatchable => "waiting",
            MemberStatus::AwaitingAcceptance => "awaiting_acceptance",
            MemberStatus::OutsideWindow => "outside_window",
            MemberStatus::Update(s) => s.as_str(),
        }
    }
}

text_enum! {
    /// A batch as a whole.
    BatchStatus {
        /// Something is queued or dispatched.
        Running = "running",
        /// Every entry installed or was skipped.
        Completed = "completed",
        /// Done, with at least one failure.
        Failed = "failed",
    }
}

/// One batch entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryStatus {
    Queued,
    Skipped,
    /// Its update is pending on the device.
    Dispatched,
    /// Its update finished with this status.
    Finished(UpdateStatus),
}

impl EntryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryStatus::Queued => "queued",
            EntryStatus::Skipped => "skipped",
            EntryStatus::Dispatched => "dispatched",
            EntryStatus::Finished(s) => s.as_str(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_through_their_text() {
        for s in UpdateStatus::ALL {
            assert_eq!(s.as_str().parse::<UpdateStatus>(), Ok(*s));
        }
        for s in CampaignStatus::ALL {
            assert_eq!(s.as_str().parse::<CampaignStatus>(), Ok(*s));
        }
        for s in BatchStatus::ALL {
            assert_eq!(s.as_str().parse::<BatchStatus>(), Ok(*s));
        }
        let err = "done".parse::<CampaignStatus>().unwrap_err();
        assert!(
            err.contains("running, paused, cancelled, completed"),
            "{err}"
        );
    }

    #[test]
    fn only_real_failures_count_against_a_rollout() {
        let failures: Vec<_> = UpdateStatus::ALL
            .iter()
            .filter(|s| s.is_failure())
            .collect();
        assert_eq!(
            failures,
            [
                &UpdateStatus::Failed,
                &UpdateStatus::RolledBack,
                &UpdateStatus::Refused
            ]
        );
    }
}
