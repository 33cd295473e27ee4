//! Writing segments to and reading them from the object store. Reads of a few messages use
//! ranged GETs (footer + index, then the blocks needed); a damaged object is an
//! [`Error::Corrupt`] naming it, never a panic.

use std::ops::Range;

use bytes::Bytes;
use object_store::{ObjectStoreExt, PutPayload};

use crate::segment::{self, BlockIndex, FOOTER_LEN, Footer, Message};
use crate::store::Store;
use crate::{Error, Result};

/// How many bytes from the end a first ranged read takes (footer plus a typical index).
const TAIL_GUESS: u64 = 16 * 1024;

/// Attempts of one segment PUT before its batch fails. A store error the client's own retries
/// did not absorb (an S3 503 burst, a local write error, an injected fault) is retried with the
/// same bytes under the same name: the object is not referenced until the commit that follows,
/// so writing it again is harmless, and the alternative is a 503 for every publish it carried.
pub const PUT_ATTEMPTS: u32 = 3;

/// Writes a segment under its relative name, once. Segments have unique names, so a plain put
/// suffices. (The publish path uses [`put_segment_hedged`], which also retries.)
pub async fn put_segment(store: &Store, name: &str, bytes: Bytes) -> Result<()> {
    let path = store.paths.segment(name);
    store
        .inner
        .put(&path, PutPayload::from(bytes))
        .await
        .map_err(|e| Error::store("put", &path, e))?;
    Ok(())
}

/// Writes a segment, hedging a slow PUT with a second identical one (same name, same bytes),
/// and retrying a failed one ([`PUT_ATTEMPTS`], 10 and 20 ms apart).
pub async fn put_segment_hedged(
    store: &Store,
    name: &str,
    bytes: Bytes,
    hedger: &crate::hedge::Hedger,
    clock: &dyn crate::clock::Clock,
) -> Result<()> {
    let path = store.paths.segment(name);
    let backoff = |n: u32| std::time::Duration::from_millis(10 * u64::from(n));
    crate::store::retrying(clock, PUT_ATTEMPTS, backoff, "segment put", || async {
        hedger
            .run(
                clock,
                || store.inner.put(&path, PutPayload::from(bytes.clone())),
                Result::is_ok,
            )
            .await
            .map(|_| ())
            .map_err(|e| Error::store("put", &path, e))
    })
    .await
}

/// Reads a whole segment.
pub async fn read_segment(store: &Store, name: &str) -> Result<Vec<Message>> {
    let bytes = get_segment_bytes(store, name).await?;
    segment::decode(&bytes).map_err(|e| Error::corrupt(store.paths.segment(name), e))
}

/// The raw bytes of a segment.
pub async fn get_segment_bytes(store: &Store, name: &str) -> Result<Bytes> {
    let path = store.paths.segment(name);
    let r = store.inner.get(&path).await.map_err(|e| match e {
        object_store::Error::NotFound { .. } => Error::corrupt(&path, "segment is missing"),
        e => Error::store("get", &path, e),
    })?;
    r.bytes().await.map_err(|e| Error::store("get", &path, e))
}

/// What [`read_ordinals_or_whole`] read.
#[derive(Debug)]
pub enum SegmentRead {
    /// The whole segment (it was small): every message, by ordinal.
    Whole(Vec<Message>),
    /// Only the messages asked for.
    Some(Vec<Message>),
}

/// Reads the messages at `ordinals` of a segment: the whole segment in one GET when it is at
/// most `whole_below` bytes (worth caching: a lagging consumer reads on into it), else with
/// ranged GETs ([`read_ordinals`]).
pub async fn read_ordinals_or_whole(
    store: &Store,
    name: &str,
    ordinals: Range<u32>,
    whole_below: u64,
) -> Result<SegmentRead> {
    let path = store.paths.segment(name);
    let size = head_size(store, &path).await?;
    if size <= whole_below {
        return read_segment(store, name).await.map(SegmentRead::Whole);
    }
    read_ranges(store, &path, size, ordinals)
        .await
        .map(SegmentRead::Some)
}

async fn head_size(store: &Store, path: &object_store::path::Path) -> Result<u64> {
    let meta = store.inner.head(path).await.map_err(|e| match e {
        object_store::Error::NotFound { .. } => Error::corrupt(path, "segment is missing"),
        e => Error::store("head", path, e),
    })?;
    Ok(meta.size)
}

/// Reads the messages at `ordinals` of a segment with ranged GETs.
pub async fn read_ordinals(
    store: &Store,
    name: &str,
    ordinals: Range<u32>,
) -> Result<Vec<Message>> {
    let path = store.paths.segment(name);
    let size = head_size(store, &path).await?;
    read_ranges(store, &path, size, ordinals).await
}

async fn read_ranges(
    store: &Store,
    path: &object_store::path::Path,
    size: u64,
    ordinals: Range<u32>,
) -> Result<Vec<Message>> {
    let path = path.clone();
    let corrupt = |e: segment::SegmentError| Error::corrupt(&path, e);
    if size < FOOTER_LEN as u64 {
        return Err(corrupt(segment::SegmentError::Truncated("footer")));
    }
    let tail_start = size.saturating_sub(TAIL_GUESS);
    let tail = store
        .inner
        .get_range(&path, tail_start..size)
        .await
        .map_err(|e| Error::store("get", &path, e))?;
    let footer = Footer::parse(&tail).map_err(corrupt)?;
    let index_end = footer
        .index_offset
        .checked_add(u64::from(footer.index_len))
        .ok_or_else(|| corrupt(segment::SegmentError::Malformed("index range".into())))?;
    if index_end + FOOTER_LEN as u64 != size {
        return Err(corrupt(segment::SegmentError::Malformed(
            "index does not end at the footer".into(),
        )));
    }
    let index_bytes = if footer.index_offset >= tail_start {
        tail.slice((footer.index_offset - tail_start) as usize..(index_end - tail_start) as usize)
    } else {
        store
            .inner
            .get_range(&path, footer.index_offset..index_end)
            .await
            .map_err(|e| Error::store("get", &path, e))?
    };
    let index = BlockIndex::parse(&footer, &index_bytes).map_err(corrupt)?;
    let blocks = index.blocks_for(ordinals.clone()).map_err(corrupt)?;
    let ranges: Vec<Range<u64>> = blocks.iter().map(|(_, _, r)| r.clone()).collect();
    let datas = store
        .inner
        .get_ranges(&path, &ranges)
        .await
        .map_err(|e| Error::store("get", &path, e))?;
    let mut out = Vec::with_capacity(ordinals.len());
    for ((no, first, _), data) in blocks.iter().zip(datas) {
        let msgs = segment::decode_block(&data, *no).map_err(corrupt)?;
        for (i, m) in msgs.into_iter().enumerate() {
            let ord = first + i as u32;
            if ordinals.contains(&ord) {
                out.push(m);
            }
        }
    }
    if out.len() != ordinals.len() {
        return Err(corrupt(segment::SegmentError::Malformed(
            "blocks hold fewer messages than the index says".into(),
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a panic is the failure report

    use std::sync::Arc;
    use std::time::Duration;

    use object_store::memory::InMemory;

    use super::*;
    use crate::clock::{Clock, TokioClock};
    use crate::faulty::{FaultConfig, FaultyStore};
    use crate::hedge::Hedger;

    #[tokio::test(start_paused = true)]
    async fn a_failed_segment_put_is_retried_and_an_outage_fails_after_the_last_attempt() {
        let clock: Arc<dyn Clock> = TokioClock::shared();
        let faulty = Arc::new(FaultyStore::new(
            Arc::new(InMemory::new()),
            FaultConfig::default(),
            1,
            clock.clone(),
        ));
        let store = Store::from_object_store(faulty.clone(), "memory://");
        let bytes = segment::encode(&[Message {
            topic: "t".into(),
            body: "x".into(),
            ..Message::default()
        }]);
        // Down for the first attempt only: the retry lands, the same bytes under the same name.
        faulty.set_outage(true);
        let put = {
            let (store, bytes, clock) = (store.clone(), bytes.clone(), clock.clone());
            tokio::spawn(async move {
                let hedger = Hedger::new(false, Duration::ZERO);
                put_segment_hedged(&store, "d/a.seg", bytes, &hedger, clock.as_ref()).await
            })
        };
        // (A refused call counts as an injected fault, not as a put.)
        while faulty.counts().injected_faults < 1 {
            tokio::task::yield_now().await;
        }
        faulty.set_outage(false);
        put.await.unwrap().unwrap();
        assert_eq!(
            (faulty.counts().injected_faults, faulty.counts().puts),
            (1, 1)
        );
        assert_eq!(get_segment_bytes(&store, "d/a.seg").await.unwrap(), bytes);
        // Down throughout: the batch fails after the last attempt, with a retryable error.
        faulty.set_outage(true);
        let hedger = Hedger::new(false, Duration::ZERO);
        let r = put_segment_hedged(&store, "d/b.seg", bytes, &hedger, clock.as_ref()).await;
        assert!(r.as_ref().is_err_and(Error::is_retryable), "{r:?}");
        assert_eq!(faulty.counts().injected_faults, 1 + u64::from(PUT_ATTEMPTS));
        assert_eq!(faulty.counts().puts, 1);
    }
}
