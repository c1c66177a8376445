//! What a change changed, for the audit log: the record before and after, as the API shows
//! it, reduced to the fields that differ. Plain code; the handler that made the change leaves
//! a [`Change`] on its answer, and the audit middleware (`api::audit`) keeps it.

/// What a change changed, left on its answer (`axum::Extension`) by the handler that made it,
/// for the audit entry: the record as the API shows it before and after. A removal has no
/// after; a creation no before.
#[derive(Debug, Clone, Default)]
pub struct Change {
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
}

impl Change {
    /// The change of a record from `before` to `after`.
    pub fn of<B: serde::Serialize, A: serde::Serialize>(
        before: Option<&B>,
        after: Option<&A>,
    ) -> axum::Extension<Change> {
        axum::Extension(Change {
            before: before.and_then(|b| serde_json::to_value(b).ok()),
            after: after.and_then(|a| serde_json::to_value(a).ok()),
        })
    }

    /// What the entry keeps: of an edit, the fields that differ; of a removal or creation,
    /// the whole record.
    pub fn values(self) -> (Option<serde_json::Value>, Option<serde_json::Value>) {
        match (self.before, self.after) {
            (Some(b), Some(a)) => {
                let (b, a) = differing(&b, &a);
                (Some(b), Some(a))
            }
            other => other,
        }
    }
}

/// The top-level fields of two objects that differ, from each (a field one lacks reads as
/// null); two values that are not both objects come back whole.
pub fn differing(
    before: &serde_json::Value,
    after: &serde_json::Value,
) -> (serde_json::Value, serde_json::Value) {
    use serde_json::{Map, Value};
    let (Value::Object(b), Value::Object(a)) = (before, after) else {
        return (before.clone(), after.clone());
    };
    let mut keys: Vec<&String> = b.keys().chain(a.keys()).collect();
    keys.sort();
    keys.dedup();
    let (mut was, mut is) = (Map::new(), Map::new());
    for k in keys {
        let (x, y) = (
            b.get(k).unwrap_or(&Value::Null),
            a.get(k).unwrap_or(&Value::Null),
        );
        if x != y {
            was.insert(k.clone(), x.clone());
            is.insert(k.clone(), y.clone());
        }
    }
    (Value::Object(was), Value::Object(is))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_edit_keeps_only_the_fields_that_changed() {
        let before = serde_json::json!({"name": "vera", "role": "viewer", "tokens": 1});
        let after =
            serde_json::json!({"name": "vera", "role": "operator", "tokens": 1, "tag": "a"});
        let (b, a) = differing(&before, &after);
        assert_eq!(b, serde_json::json!({"role": "viewer", "tag": null}));
        assert_eq!(a, serde_json::json!({"role": "operator", "tag": "a"}));
        let removal = Change {
            before: Some(before.clone()),
            after: None,
        };
        assert_eq!(removal.values(), (Some(before), None));
    }
}
