//! Timer spill objects in the bucket (`timers/<ulid>.json`): writing and reading them. What
//! they hold and what the state keeps of them is `manifest::model::timers`; when timers spill
//! and load back is decided by `manifest::state::timers` (which tells the whole design).

use bytes::Bytes;
use object_store::{ObjectStoreExt, PutPayload};

pub use super::model::timers::{SPILL_FORMAT, SpillFile, SpilledTimer, TimerSpill};
pub use super::state::timers::SpillSettings;
use crate::store::Store;
use crate::{Error, Result};

/// Writes a spill object under its relative name (unique, so a plain put suffices).
pub async fn put_spill(store: &Store, name: &str, file: &SpillFile) -> Result<()> {
    let path = store.paths.relative(name);
    let bytes = serde_json::to_vec(file).map_err(|e| Error::Invalid(e.to_string()))?;
    store
        .inner
        .put(&path, PutPayload::from(Bytes::from(bytes)))
        .await
        .map_err(|e| Error::store("put", &path, e))?;
    Ok(())
}

/// Reads a spill object; a missing or undecodable one is [`Error::Corrupt`].
pub async fn get_spill(store: &Store, name: &str) -> Result<SpillFile> {
    let path = store.paths.relative(name);
    let r = store.inner.get(&path).await.map_err(|e| match e {
        object_store::Error::NotFound { .. } => Error::corrupt(&path, "timer spill is missing"),
        e => Error::store("get", &path, e),
    })?;
    let bytes = r.bytes().await.map_err(|e| Error::store("get", &path, e))?;
    let file: SpillFile = serde_json::from_slice(&bytes).map_err(|e| Error::corrupt(&path, e))?;
    if file.format != SPILL_FORMAT {
        return Err(Error::corrupt(
            &path,
            format!("timer spill format {} is not {SPILL_FORMAT}", file.format),
        ));
    }
    Ok(file)
}
