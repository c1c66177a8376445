//! Several instances on one PostgreSQL database: what one does that the others must know is
//! sent as a [`Notice`] (`NOTIFY`), and each applies the others' here. Nothing else is
//! shared: no cluster protocol, no membership; an instance that starts simply listens.
//!
//! A notice lost while the listening connection was down is made up for on reconnect: caches
//! are dropped and every long-poll held here re-checks its host.

use crate::live::LiveEvent;
use crate::state::Shared;
use crate::store::{Heard, Notice};

/// Applies the other instances' notices until the server stops (returns at once on SQLite).
pub async fn run(state: Shared) {
    let mut listener = match state.store.listen().await {
        Ok(Some(l)) => l,
        Ok(None) => return,
        Err(e) => {
            tracing::error!(
                "cannot hear the other instances ({e}); long-polls here wake only at their timeout"
            );
            return;
        }
    };
    tracing::info!("listening to the other instances on the database");
    loop {
        match listener.next().await {
            Heard::Notice(n) => apply(&state, n).await,
            Heard::Reconnected => {
                tracing::info!("back on the database's notices: refreshing what may be stale");
                state.cache.set_releases(None);
                state.cache.set_root(None);
                state.cache.set_campaigns_active(None);
                state.cache.clear_open_waves();
                state.store.updates_changed_elsewhere();
                state.waker.wake_all();
                state.changed_here();
            }
        }
    }
}

async fn apply(state: &Shared, notice: Notice) {
    match notice {
        Notice::Wake { host } => state.waker.wake(&host),
        Notice::Check { host } => {
            state.check_requests.ask(&host);
            state.waker.wake(&host);
        }
        Notice::Updates => state.store.updates_changed_elsewhere(),
        Notice::Releases => state.cache.set_releases(None),
        Notice::Root => state.cache.set_root(None),
        Notice::Campaigns => {
            state.cache.set_campaigns_active(None);
            state.cache.clear_open_waves();
        }
        Notice::DdiTokens => state.cache.forget_ddi_tokens(),
        Notice::HostRemoved { host } => {
            state.waker.forget(&host);
            state.cache.forget_host(&host);
            state.presence.forget(&host);
        }
        Notice::Changed => state.changed_here(),
        Notice::Output {
            update,
            offset,
            len,
            text,
        } => {
            // Only what someone here watches is worth a read.
            if !state.live.watched(&update) {
                return;
            }
            let text = match text {
                Some(t) => Some(t),
                None => state
                    .store
                    .output_slice(&update, offset, len)
                    .await
                    .unwrap_or_else(|e| {
                        tracing::warn!(%update, "cannot read live output ({e})");
                        None
                    }),
            };
            if let Some(text) = text {
                state
                    .live
                    .publish(&update, LiveEvent::Chunk { offset, text });
            }
        }
        Notice::End { update, status } => state.live.publish(&update, LiveEvent::End { status }),
    }
}
