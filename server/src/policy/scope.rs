//! Which hosts a user may see and act on: every host, or (a user limited with `--tag`) the
//! hosts with that tag, as campaigns see tags (`fleet::effective_labels`). Plain code over
//! data: what a route addresses, and whether a tag set or a campaign target is within scope.
//! `auth` asks it of every path-addressed request; lists and body-addressed requests ask it
//! in the service layer.

use ferry_manifests::wire::CampaignTarget;

/// A user's reach over the fleet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every host.
    All,
    /// Only hosts with this tag.
    Tag(String),
}

impl Scope {
    /// The scope of a user with this tag (none: every host).
    pub fn of(tag: Option<&str>) -> Scope {
        match tag {
            Some(t) if !t.is_empty() => Scope::Tag(t.to_string()),
            _ => Scope::All,
        }
    }

    /// Whether a host with these (effective) tags is within reach.
    pub fn sees(&self, tags: &[String]) -> bool {
        match self {
            Scope::All => true,
            Scope::Tag(t) => tags.iter().any(|have| have == t),
        }
    }

    pub fn is_all(&self) -> bool {
        matches!(self, Scope::All)
    }

    /// Whether a campaign with this target stays within reach: for a limited user, only a
    /// target of their tag alone, or of hosts each within reach (`host_seen`).
    pub fn allows_target(&self, target: &CampaignTarget, host_seen: impl Fn(&str) -> bool) -> bool {
        match (self, target) {
            (Scope::All, _) => true,
            (Scope::Tag(_), CampaignTarget::All) => false,
            (Scope::Tag(t), CampaignTarget::Tags(tags)) => {
                tags.iter().all(|x| x == t) && !tags.is_empty()
            }
            (Scope::Tag(_), CampaignTarget::Hosts(hosts)) => hosts.iter().all(|h| host_seen(h)),
        }
    }

    /// Why a limited user is refused something that reaches beyond their hosts.
    pub fn refusal(&self, user: &str, what: &str) -> String {
        match self {
            Scope::All => format!("{what} is refused"),
            Scope::Tag(t) => format!(
                "user {user} is limited to hosts tagged {t}; {what} reaches other hosts (target tag {t}, or hosts tagged {t})"
            ),
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
    /// Something of the whole fleet (an item's settings, every host's batch of an item).
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
    fn a_tag_scope_sees_only_hosts_with_its_tag() {
        let s = Scope::of(Some("site-a"));
        assert!(s.sees(&["x".into(), "site-a".into()]));
        assert!(!s.sees(&["site-b".into()]));
        assert!(!s.sees(&[]));
        assert!(Scope::of(None).sees(&[]));
        assert_eq!(Scope::of(Some("")), Scope::All);
    }

    #[test]
    fn a_limited_user_targets_only_their_tag_or_their_hosts() {
        let s = Scope::Tag("site-a".into());
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
        assert!(Scope::All.allows_target(&CampaignTarget::All, mine));
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
        assert_eq!(addressed("GET", "/api/v1/items", &[]), Addressed::Nothing);
    }
}
