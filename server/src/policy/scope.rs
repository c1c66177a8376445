//! Which hosts a user may see and act on: in an install of several tenants, their tenant's
//! only; and of those, for a user limited with `--tag`, the hosts with that tag, as campaigns
//! see tags (`fleet::effective_labels`). Plain code over
//! data: what a route addresses, and whether a tag set or a campaign target is within scope.
//! `auth` asks it of every path-addressed request; lists and body-addressed requests ask it
//! in the service layer.

use ferry_manifests::wire::CampaignTarget;

/// A user's reach over the fleet.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scope {
    /// Only hosts of this tenant (`None`: of every tenant: a single-tenant install, or the
    /// server itself).
    tenant: Option<String>,
    /// Only hosts with this tag.
    tag: Option<String>,
}

impl Scope {
    /// Every host: what the server itself (campaigns, the MQTT bridge) acts with.
    pub fn all() -> Scope {
        Scope::default()
    }

    /// The scope of a user of `tenant` (`None`: the install has one) with this tag (none:
    /// every host of the tenant).
    pub fn of(tenant: Option<&str>, tag: Option<&str>) -> Scope {
        Scope {
            tenant: tenant.map(str::to_string),
            tag: tag.filter(|t| !t.is_empty()).map(str::to_string),
        }
    }

    /// Whether a host of this tenant with these (effective) tags is within reach.
    pub fn sees(&self, tenant: Option<&str>, tags: &[String]) -> bool {
        let tenant_ok = match &self.tenant {
            None => true,
            Some(t) => tenant == Some(t.as_str()),
        };
        let tag_ok = match &self.tag {
            None => true,
            Some(t) => tags.iter().any(|have| have == t),
        };
        tenant_ok && tag_ok
    }

    pub fn is_all(&self) -> bool {
        self.tenant.is_none() && self.tag.is_none()
    }

    /// The tenant a user is limited to, in an install of several.
    pub fn tenant(&self) -> Option<&str> {
        self.tenant.as_deref()
    }

    /// The tag a user is limited to.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// Whether a campaign with this target stays within reach: for a limited user, only a
    /// target of their tag alone, or of hosts each within reach (`host_seen`).
    /// (A tenant's campaign only ever reaches the tenant's hosts: its membership says so.)
    pub fn allows_target(&self, target: &CampaignTarget, host_seen: impl Fn(&str) -> bool) -> bool {
        match (&self.tag, target) {
            (_, CampaignTarget::Hosts(hosts)) => {
                self.is_all() || hosts.iter().all(|h| host_seen(h))
            }
            (None, _) => true,
            (Some(_), CampaignTarget::All) => false,
            (Some(t), CampaignTarget::Tags(tags)) => {
                !tags.is_empty() && tags.iter().all(|x| x == t)
            }
        }
    }

    /// Why a limited user is refused something that reaches beyond their hosts.
    pub fn refusal(&self, user: &str, what: &str) -> String {
        match &self.tag {
            Some(t) => format!(
                "user {user} is limited to hosts tagged {t}; {what} reaches other hosts (target tag {t}, or hosts tagged {t})"
            ),
            None => format!("{what} is refused"),
        }
    }
}

/// What a request's route names, for the scope check before its handler runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addressed {
    /// A host, by id, id prefix or hostname.
    Host(String),
    /// An update (history entry), by id or prefix.
    Update(String),
    /// A campaign, by id or prefix.
    Campaign(String),
    /// A batch, by id or prefix.
    Batch(String),
    /// Something of every host (an item's settings, every host's batch of an item).
    FleetWide,
    /// Nothing host-bound: a list (filtered by its handler), a release, a user.
    Nothing,
}

/// What `method` `route` (as routed) addresses, its path parameters `params` given.
pub fn addressed(method: &str, route: &str, params: &[(String, String)]) -> Addressed {
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    if route.starts_with("/api/v1/hosts/{host}") {
        return Addressed::Host(param("host"));
    }
    if route.starts_with("/hosts/{id}") {
        return Addressed::Host(param("id"));
    }
    if route.starts_with("/api/v1/update-history/{id}") || route.starts_with("/history/{id}") {
        return Addressed::Update(param("id"));
    }
    if route.starts_with("/api/v1/campaigns/{id}") || route.starts_with("/campaigns/{id}") {
        return Addressed::Campaign(param("id"));
    }
    if route.starts_with("/api/v1/update-batches/{id}") || route.starts_with("/batches/{id}") {
        return Addressed::Batch(param("id"));
    }
    match (method, route) {
        ("PATCH", "/api/v1/items/{name}")
        | ("POST", "/items/{name}" | "/items/{name}/{version}/batch") => Addressed::FleetWide,
        _ => Addressed::Nothing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(k: &str, v: &str) -> Vec<(String, String)> {
        vec![(k.to_string(), v.to_string())]
    }

    #[test]
    fn a_scope_sees_its_tenants_hosts_with_its_tag() {
        let s = Scope::of(None, Some("site-a"));
        assert!(s.sees(None, &["x".into(), "site-a".into()]));
        assert!(!s.sees(None, &["site-b".into()]));
        assert!(!s.sees(None, &[]));
        assert!(Scope::of(None, None).sees(Some("t2"), &[]));
        assert_eq!(Scope::of(None, Some("")), Scope::all());
        let t = Scope::of(Some("t1"), None);
        assert!(t.sees(Some("t1"), &[]));
        assert!(!t.sees(Some("t2"), &[]));
        assert!(!t.sees(None, &[]));
        let both = Scope::of(Some("t1"), Some("a"));
        assert!(both.sees(Some("t1"), &["a".into()]));
        assert!(!both.sees(Some("t2"), &["a".into()]));
        assert!(!both.sees(Some("t1"), &["b".into()]));
    }

    #[test]
    fn a_limited_user_targets_only_their_tag_or_their_hosts() {
        let s = Scope::of(None, Some("site-a"));
        let mine = |h: &str| h == "h1";
        assert!(!s.allows_target(&CampaignTarget::All, mine));
        assert!(s.allows_target(&CampaignTarget::Tags(vec!["site-a".into()]), mine));
        assert!(!s.allows_target(
            &CampaignTarget::Tags(vec!["site-a".into(), "site-b".into()]),
            mine
        ));
        assert!(!s.allows_target(&CampaignTarget::Tags(vec![]), mine));
        assert!(s.allows_target(&CampaignTarget::Hosts(vec!["h1".into()]), mine));
        assert!(!s.allows_target(&CampaignTarget::Hosts(vec!["h1".into(), "h2".into()]), mine));
        assert!(Scope::all().allows_target(&CampaignTarget::All, mine));
        // A tenant's user targets anything: their campaign reaches their tenant only.
        assert!(Scope::of(Some("t1"), None).allows_target(&CampaignTarget::All, mine));
        assert!(!Scope::of(Some("t1"), None)
            .allows_target(&CampaignTarget::Hosts(vec!["h2".into()]), mine));
    }

    #[test]
    fn routes_name_what_they_act_on() {
        assert_eq!(
            addressed("DELETE", "/api/v1/hosts/{host}", &p("host", "kiosk")),
            Addressed::Host("kiosk".into())
        );
        assert_eq!(
            addressed("POST", "/hosts/{id}/update", &p("id", "abc")),
            Addressed::Host("abc".into())
        );
        assert_eq!(
            addressed(
                "GET",
                "/api/v1/update-history/{id}/output/stream",
                &p("id", "u1")
            ),
            Addressed::Update("u1".into())
        );
        assert_eq!(
            addressed("POST", "/campaigns/{id}/approve", &p("id", "c1")),
            Addressed::Campaign("c1".into())
        );
        assert_eq!(
            addressed("GET", "/batches/{id}", &p("id", "b1")),
            Addressed::Batch("b1".into())
        );
        assert_eq!(
            addressed("PATCH", "/api/v1/items/{name}", &p("name", "web")),
            Addressed::FleetWide
        );
        assert_eq!(addressed("GET", "/api/v1/hosts", &[]), Addressed::Nothing);
        assert_eq!(
            addressed("POST", "/api/v1/releases", &[]),
            Addressed::Nothing
        );
        assert_eq!(
            addressed("POST", "/api/v1/trust-roots", &[]),
            Addressed::Nothing
        );
        assert_eq!(addressed("GET", "/api/v1/mqtt", &[]), Addressed::Nothing);
        assert_eq!(addressed("GET", "/api/v1/items", &[]), Addressed::Nothing);
    }
}
