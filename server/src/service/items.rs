//! Items: the rules every request about an item passes, whoever makes it.

use super::error::{ServiceError, ServiceResult};
use crate::state::Shared;

/// Refuses (409) an install of a deactivated item.
pub async fn ensure_active(state: &Shared, item: &str) -> ServiceResult<()> {
    let deactivated = state
        .store
        .item_settings()
        .await?
        .into_iter()
        .any(|s| s.name == item && s.deactivated);
    if deactivated {
        return Err(ServiceError::conflict(format!(
            "item {item} is deactivated; activate it first (ferryctl items edit {item} --activate)"
        )));
    }
    Ok(())
}
