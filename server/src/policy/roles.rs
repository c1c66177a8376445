//! Who may do what (docs/users.md): a fixed set of roles, what each may do, and what each
//! operator route needs. Plain data and lookups; `auth` asks them on every operator request,
//! so a route missing from [`need`] is refused to everyone (and a test fails).

use std::fmt;

/// A user's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Reads everything.
    Viewer,
    /// Reads; triggers, batches, campaigns, host changes, interactive sessions.
    Operator,
    /// Reads; publishes releases, mirrors, withdrawals and trust roots: what a CI pipeline
    /// needs and nothing more.
    Publisher,
    /// Reads; approves campaigns.
    Approver,
    /// Everything, and users, tokens and MQTT connections.
    Admin,
}

/// What a request needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Read,
    Operate,
    Publish,
    Approve,
    Admin,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Viewer,
        Role::Operator,
        Role::Publisher,
        Role::Approver,
        Role::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Publisher => "publisher",
            Role::Approver => "approver",
            Role::Admin => "admin",
        }
    }

    /// Whether this role may do what `need` asks.
    pub fn allows(self, need: Need) -> bool {
        matches!(
            (self, need),
            (Role::Admin, _)
                | (_, Need::Read)
                | (Role::Operator, Need::Operate)
                | (Role::Publisher, Need::Publish)
                | (Role::Approver, Need::Approve)
        )
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Role, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                format!("unknown role {s:?}: use viewer, operator, publisher, approver or admin")
            })
    }
}

impl Need {
    /// The roles that may, in words: "the operator role (or admin)".
    pub fn roles(self) -> String {
        let mine: Vec<&str> = Role::ALL
            .into_iter()
            .filter(|r| r.allows(self))
            .map(Role::as_str)
            .collect();
        match mine.as_slice() {
            [only] => format!("the {only} role"),
            [first, rest @ ..] if rest == ["admin"] => format!("the {first} role (or admin)"),
            all => format!("any role ({})", all.join(", ")),
        }
    }
}

/// What an operator request needs, by method and route (as routed, `/api/v1/hosts/{host}`);
/// `None`: the route is not an operator's (a device's, or unknown), which [`crate::auth`]
/// refuses to operators.
pub fn need(method: &str, route: &str) -> Option<Need> {
    use Need::*;
    let need = match (method, route) {
        // Users, tokens and the MQTT bridge are the admin's; so is who may do what.
        (_, "/api/v1/users" | "/api/v1/users/{name}" | "/api/v1/tenants") => Admin,
        ("GET", "/api/v1/audit" | "/audit") => Admin,
        (_, "/api/v1/tokens" | "/api/v1/tokens/{id}") => Admin,
        (_, "/api/v1/mqtt" | "/api/v1/mqtt/{name}" | "/api/v1/mqtt/{name}/test") => Admin,
        (_, "/api/v1/webhooks" | "/api/v1/webhooks/{id}" | "/api/v1/webhooks/deliveries") => Admin,
        // A DDI device's own token is what adding a device is; the tenant's gateway token
        // lets any device join.
        ("POST", "/api/v1/ddi/gateway-token") => Admin,
        ("POST", "/api/v1/ddi/tokens/{name}") => Operate,
        ("POST", "/settings/tokens" | "/settings/tokens/{id}/revoke") => Admin,
        ("POST", "/settings/mqtt" | "/settings/mqtt/{name}/{action}") => Admin,
        // Releases: what a CI pipeline does.
        ("POST", "/api/v1/releases" | "/api/v1/trust-roots") => Publish,
        (
            "PUT",
            "/api/v1/artifacts/{name}"
            | "/api/v1/releases/{item}/{version}/mirrors"
            | "/api/v1/releases/{item}/{version}/metered-allowed",
        ) => Publish,
        ("POST", "/api/v1/releases/{item}/{version}/withdraw") => Publish,
        ("POST", "/items/{name}/{version}/withdraw") => Publish,
        // A second person's approval of a campaign.
        ("POST", "/api/v1/campaigns/{id}/approval" | "/campaigns/{id}/approve") => Approve,
        // Reading, by a token (the API) or a session (the web UI).
        (
            "GET",
            "/api/v1/hosts"
            | "/api/v1/hosts/{host}"
            | "/api/v1/items"
            | "/api/v1/packages"
            | "/api/v1/packages/hosts"
            | "/api/v1/releases"
            | "/api/v1/releases/{item}/{version}/manifest"
            | "/api/v1/artifacts/{name}"
            | "/api/v1/deltas/{item}/{from}/{to}"
            | "/api/v1/trust-roots/{version}"
            | "/api/v1/campaigns"
            | "/api/v1/campaigns/{id}"
            | "/api/v1/update-batches"
            | "/api/v1/update-batches/{id}"
            | "/api/v1/update-history"
            | "/api/v1/update-history/{id}"
            | "/api/v1/update-history/{id}/output/stream"
            | "/"
            | "/hosts"
            | "/hosts/{id}"
            | "/items"
            | "/packages"
            | "/campaigns"
            | "/campaigns/{id}"
            | "/batches"
            | "/batches/{id}"
            | "/history"
            | "/history/{id}"
            | "/metrics",
        ) => Read,
        // Tokens and broker connections are listed there.
        ("GET", "/settings") => Admin,
        ("POST", "/logout") => Read,
        // Changing what devices do.
        ("POST", "/api/v1/updates" | "/api/v1/check" | "/api/v1/update-batches") => Operate,
        ("POST", "/api/v1/campaigns" | "/api/v1/campaigns/{id}/{action}") => Operate,
        ("PATCH", "/api/v1/campaigns/{id}" | "/api/v1/items/{name}") => Operate,
        ("PATCH" | "DELETE", "/api/v1/hosts/{host}") => Operate,
        ("POST", "/api/v1/hosts/{host}/accept") => Operate,
        ("POST", "/api/v1/update-history/{id}/cancel" | "/api/v1/update-history/{id}/terminal") => {
            Operate
        }
        (
            "POST",
            "/hosts/{id}/check"
            | "/hosts/{id}/accept"
            | "/hosts/{id}/edit"
            | "/hosts/{id}/remove"
            | "/hosts/{id}/update"
            | "/hosts/{id}/batch"
            | "/items/{name}"
            | "/items/{name}/{version}/batch"
            | "/campaigns"
            | "/campaigns/{id}/edit"
            | "/campaigns/{id}/{action}"
            | "/history/{id}/terminal"
            | "/history/{id}/cancel",
        ) => Operate,
        _ => return None,
    };
    Some(need)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_role_may_do_what_the_table_says() {
        use Need::*;
        let table = [
            (Role::Viewer, [true, false, false, false, false]),
            (Role::Operator, [true, true, false, false, false]),
            (Role::Publisher, [true, false, true, false, false]),
            (Role::Approver, [true, false, false, true, false]),
            (Role::Admin, [true, true, true, true, true]),
        ];
        for (role, allowed) in table {
            for (need, want) in [Read, Operate, Publish, Approve, Admin]
                .into_iter()
                .zip(allowed)
            {
                assert_eq!(role.allows(need), want, "{role} {need:?}");
            }
        }
        assert_eq!(Need::Operate.roles(), "the operator role (or admin)");
        assert_eq!(Need::Admin.roles(), "the admin role");
        assert!(Need::Read.roles().starts_with("any role"));
        assert_eq!("publisher".parse::<Role>(), Ok(Role::Publisher));
        assert!("root".parse::<Role>().is_err());
    }

    #[test]
    fn what_a_ci_pipeline_needs_is_publishing_only() {
        assert_eq!(need("POST", "/api/v1/releases"), Some(Need::Publish));
        assert_eq!(need("PUT", "/api/v1/artifacts/{name}"), Some(Need::Publish));
        assert_eq!(need("POST", "/api/v1/updates"), Some(Need::Operate));
        assert_eq!(need("GET", "/api/v1/tokens"), Some(Need::Admin));
        assert_eq!(need("GET", "/api/v1/hosts"), Some(Need::Read));
        assert_eq!(need("POST", "/api/v1/device/checkin"), None);
        assert_eq!(need("DELETE", "/api/v1/update-history"), None);
    }
}
