//! Notices: what one server instance tells the others sharing its PostgreSQL database
//! (`NOTIFY ferry`), so that a trigger on one wakes a device long-polling on another, a
//! watcher on one sees live output posted to another, and caches drop what changed.
//!
//! A notice is a small JSON text (PostgreSQL bounds a payload at 8000 bytes); output too large
//! for one goes without its text, and an instance with watchers reads it from the database.
//! Instances skip their own notices: they have already acted on them.

use serde::{Deserialize, Serialize};

/// PostgreSQL's channel.
pub const CHANNEL: &str = "ferry";

/// Under PostgreSQL's 8000-byte bound on a payload, with room for the envelope.
const MAX_PAYLOAD: usize = 7900;

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Notice {
    /// Work for this host: end its long-poll.
    Wake { host: String },
    /// An operator asked this host for a check now.
    Check { host: String },
    /// Updates were created, finished or cancelled somewhere in the fleet.
    Updates,
    /// Releases or items changed (published, deactivated).
    Releases,
    /// A new trust root was published.
    Root,
    /// A campaign was created or changed status.
    Campaigns,
    /// A host was removed: forget its credential.
    HostRemoved { host: String },
    /// A DDI token was made or replaced: forget the DDI credentials resolved.
    DdiTokens,
    /// Something the MQTT bridge publishes may have changed.
    Changed,
    /// Live output of an update: `len` characters at `offset`, with the text when it fits.
    Output {
        update: String,
        offset: i64,
        len: i64,
        text: Option<String>,
    },
    /// The update finished with this status.
    End { update: String, status: String },
}

#[derive(Serialize, Deserialize)]
struct Envelope<'a> {
    /// The instance that sent it.
    from: std::borrow::Cow<'a, str>,
    notice: Notice,
}

/// The payload of `notice` from `instance`, within PostgreSQL's bound (output text left out
/// when it would not fit).
pub fn encode(instance: &str, notice: &Notice) -> String {
    let text = |n: &Notice| {
        serde_json::to_string(&Envelope {
            from: instance.into(),
            notice: n.clone(),
        })
        .unwrap_or_default()
    };
    let payload = text(notice);
    if payload.len() <= MAX_PAYLOAD {
        return payload;
    }
    match notice {
        Notice::Output {
            update,
            offset,
            len,
            ..
        } => text(&Notice::Output {
            update: update.clone(),
            offset: *offset,
            len: *len,
            text: None,
        }),
        // Ids and statuses are short; nothing else grows.
        _ => payload,
    }
}

/// The notice of a payload and the instance that sent it; `None` for what is not one.
pub fn decode(payload: &str) -> Option<(String, Notice)> {
    let e: Envelope = serde_json::from_str(payload).ok()?;
    Some((e.from.into_owned(), e.notice))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_round_trip_with_their_sender() {
        for n in [
            Notice::Wake { host: "h1".into() },
            Notice::Check { host: "h1".into() },
            Notice::Updates,
            Notice::Changed,
            Notice::End {
                update: "u".into(),
                status: "installed".into(),
            },
        ] {
            let payload = encode("instance-a", &n);
            assert_eq!(decode(&payload), Some(("instance-a".to_string(), n)));
        }
        assert_eq!(decode("not json"), None);
        assert_eq!(decode(r#"{"from":"a","notice":{"kind":"unknown"}}"#), None);
    }

    #[test]
    fn output_too_large_for_a_payload_goes_without_its_text() {
        let small = Notice::Output {
            update: "u".into(),
            offset: 10,
            len: 5,
            text: Some("hello".into()),
        };
        assert_eq!(decode(&encode("a", &small)).map(|d| d.1), Some(small));
        let big = Notice::Output {
            update: "u".into(),
            offset: 10,
            len: 20_000,
            text: Some("é".repeat(10_000)),
        };
        let payload = encode("a", &big);
        assert!(payload.len() <= MAX_PAYLOAD, "{}", payload.len());
        assert_eq!(
            decode(&payload).map(|d| d.1),
            Some(Notice::Output {
                update: "u".into(),
                offset: 10,
                len: 20_000,
                text: None
            })
        );
    }
}
