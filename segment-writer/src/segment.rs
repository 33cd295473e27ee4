//! The segment format: an immutable object holding one batch of messages, possibly of many
//! topics and queues, in CRC-checked blocks, with an index for seeking by ordinal.
//!
//! ```text
//! "FMQSEG" version:u8
//! block*   = payload_len:u32 crc32c(payload):u32 payload
//!            payload = count:u32 message*
//! index    = block_count:u32 (first_ordinal:u32 offset:u64 len:u32)*
//! footer   = index_offset:u64 index_len:u32 crc32c(index):u32 message_count:u32 "FMQF"
//! ```
//! All integers little-endian; strings are `len:u32` + UTF-8. A segment knows ordinals, not
//! offsets: offsets are assigned when the manifest applies the append, and the manifest maps
//! offset → (segment, ordinal). Decoding never panics: a truncated, damaged or foreign object
//! is a typed [`SegmentError`].

use std::collections::BTreeMap;
use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

const MAGIC: &[u8; 6] = b"FMQSEG";
const FOOTER_MAGIC: &[u8; 4] = b"FMQF";
/// The format version this code writes.
pub const VERSION: u8 = 1;
/// Size of the fixed footer.
pub const FOOTER_LEN: usize = 8 + 4 + 4 + 4 + 4;
const HEADER_LEN: usize = MAGIC.len() + 1;
const INDEX_ENTRY_LEN: usize = 4 + 8 + 4;

/// One message as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Message {
    /// The topic it was published to.
    pub topic: String,
    /// Unique id, assigned by the gateway at publish.
    pub message_id: String,
    /// The payload.
    pub body: Bytes,
    /// RocketMQ tag.
    pub tag: Option<String>,
    /// Business keys, for lookup.
    pub keys: Vec<String>,
    /// User properties.
    pub properties: BTreeMap<String, String>,
    /// FIFO sharding key.
    pub message_group: Option<String>,
    /// The producer group (transactions).
    pub producer_group: Option<String>,
    /// When the gateway accepted it.
    pub publish_time_ms: i64,
    /// When it becomes visible (delayed messages).
    pub deliver_at_ms: Option<i64>,
}

impl Message {
    /// Bytes this message takes in memory and on the wire, roughly.
    pub fn approx_size(&self) -> usize {
        64 + self.topic.len()
            + self.message_id.len()
            + self.body.len()
            + self.tag.as_ref().map_or(0, String::len)
            + self.keys.iter().map(String::len).sum::<usize>()
            + self
                .properties
                .iter()
                .map(|(k, v)| k.len() + v.len() + 8)
                .sum::<usize>()
            + self.message_group.as_ref().map_or(0, String::len)
            + self.producer_group.as_ref().map_or(0, String::len)
    }
}

/// Why a segment could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SegmentError {
    #[error("not a FerryMQ segment (bad magic)")]
    BadMagic,
    #[error("unsupported segment version {0}")]
    UnsupportedVersion(u8),
    #[error("truncated segment: {0}")]
    Truncated(&'static str),
    #[error("checksum mismatch in {0}")]
    Checksum(String),
    #[error("malformed segment: {0}")]
    Malformed(String),
    #[error("ordinal {ordinal} is not in this segment of {count} messages")]
    NoSuchOrdinal { ordinal: u32, count: u32 },
}

type SegResult<T> = Result<T, SegmentError>;

/// Builds one segment. Messages get ordinals 0, 1, … in push order.
#[derive(Debug)]
pub struct SegmentBuilder {
    out: BytesMut,
    block: BytesMut,
    block_count: u32,
    block_first: u32,
    next_ordinal: u32,
    index: Vec<(u32, u64, u32)>,
    target_block_bytes: usize,
}

impl SegmentBuilder {
    /// A builder closing a block whenever it passes `target_block_bytes` (64 KiB is a good
    /// default: one ranged GET per block, CRC per block).
    pub fn new(target_block_bytes: usize) -> Self {
        Self::with_capacity(target_block_bytes, target_block_bytes)
    }

    /// A builder that expects about `expected_bytes` of encoded messages (e.g. the sum of
    /// [`Message::approx_size`]): the output is allocated once instead of grown by copying.
    pub fn with_capacity(target_block_bytes: usize, expected_bytes: usize) -> Self {
        let target_block_bytes = target_block_bytes.max(1);
        // Per block: length, CRC and count; then the index entry, footer and some slack.
        let blocks = expected_bytes / target_block_bytes + 1;
        let mut out = BytesMut::with_capacity(
            HEADER_LEN + expected_bytes + blocks * (12 + INDEX_ENTRY_LEN) + FOOTER_LEN + 64,
        );
        out.put_slice(MAGIC);
        out.put_u8(VERSION);
        SegmentBuilder {
            out,
            block: BytesMut::with_capacity(target_block_bytes.min(expected_bytes) + 1024),
            block_count: 0,
            block_first: 0,
            next_ordinal: 0,
            index: Vec::new(),
            target_block_bytes,
        }
    }

    /// Appends a message; returns its ordinal.
    pub fn push(&mut self, m: &Message) -> u32 {
        encode_message(&mut self.block, m);
        self.block_count += 1;
        let ordinal = self.next_ordinal;
        self.next_ordinal += 1;
        if self.block.len() >= self.target_block_bytes {
            self.close_block();
        }
        ordinal
    }

    /// Messages pushed so far.
    pub fn len(&self) -> u32 {
        self.next_ordinal
    }

    /// Whether nothing was pushed.
    pub fn is_empty(&self) -> bool {
        self.next_ordinal == 0
    }

    fn close_block(&mut self) {
        if self.block_count == 0 {
            return;
        }
        // The block is [length][CRC][count, messages]; the CRC covers count and messages,
        // computed in two parts so the messages are copied once, straight into the output.
        let count = self.block_count.to_le_bytes();
        let crc = crc32c::crc32c_append(crc32c::crc32c(&count), &self.block);
        let offset = self.out.len() as u64;
        self.out.put_u32_le((count.len() + self.block.len()) as u32);
        self.out.put_u32_le(crc);
        self.out.put_slice(&count);
        self.out.put_slice(&self.block);
        let len = (self.out.len() as u64 - offset) as u32;
        self.index.push((self.block_first, offset, len));
        self.block.clear();
        self.block_first = self.next_ordinal;
        self.block_count = 0;
    }

    /// The encoded segment.
    pub fn finish(mut self) -> Bytes {
        self.close_block();
        let index_offset = self.out.len() as u64;
        let mut index = BytesMut::with_capacity(4 + self.index.len() * INDEX_ENTRY_LEN);
        index.put_u32_le(self.index.len() as u32);
        for (first, offset, len) in &self.index {
            index.put_u32_le(*first);
            index.put_u64_le(*offset);
            index.put_u32_le(*len);
        }
        self.out.put_slice(&index);
        self.out.put_u64_le(index_offset);
        self.out.put_u32_le(index.len() as u32);
        self.out.put_u32_le(crc32c::crc32c(&index));
        self.out.put_u32_le(self.next_ordinal);
        self.out.put_slice(FOOTER_MAGIC);
        self.out.freeze()
    }
}

/// Encodes `messages` as one segment with the default block size.
pub fn encode(messages: &[Message]) -> Bytes {
    let mut b = SegmentBuilder::new(64 * 1024);
    for m in messages {
        b.push(m);
    }
    b.finish()
}

/// The footer: where the index is and how many messages the segment holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footer {
    pub index_offset: u64,
    pub index_len: u32,
    index_crc: u32,
    pub message_count: u32,
}

impl Footer {
    /// Parses the last [`FOOTER_LEN`] bytes of a segment.
    pub fn parse(tail: &[u8]) -> SegResult<Footer> {
        if tail.len() < FOOTER_LEN {
            return Err(SegmentError::Truncated("footer"));
        }
        let t = &tail[tail.len() - FOOTER_LEN..];
        if &t[20..24] != FOOTER_MAGIC {
            return Err(SegmentError::BadMagic);
        }
        let mut r = Reader::new(t);
        Ok(Footer {
            index_offset: r.u64()?,
            index_len: r.u32()?,
            index_crc: r.u32()?,
            message_count: r.u32()?,
        })
    }
}

/// The block index: (first ordinal, byte range) of each block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockIndex {
    blocks: Vec<(u32, Range<u64>)>,
    message_count: u32,
}

impl BlockIndex {
    /// Parses the index bytes named by `footer`.
    pub fn parse(footer: &Footer, bytes: &[u8]) -> SegResult<BlockIndex> {
        if bytes.len() != footer.index_len as usize {
            return Err(SegmentError::Truncated("index"));
        }
        if crc32c::crc32c(bytes) != footer.index_crc {
            return Err(SegmentError::Checksum("index".into()));
        }
        let mut r = Reader::new(bytes);
        let n = r.u32()? as usize;
        if bytes.len() != 4 + n * INDEX_ENTRY_LEN {
            return Err(SegmentError::Malformed(
                "index length does not match its block count".into(),
            ));
        }
        let mut blocks = Vec::with_capacity(n);
        let mut expect_offset = HEADER_LEN as u64;
        let mut prev_first = None;
        for _ in 0..n {
            let first = r.u32()?;
            let offset = r.u64()?;
            let len = r.u32()? as u64;
            if offset != expect_offset
                || len < 8
                || prev_first.is_some_and(|p| first <= p)
                || first >= footer.message_count
            {
                return Err(SegmentError::Malformed("index entries out of order".into()));
            }
            expect_offset = offset + len;
            prev_first = Some(first);
            blocks.push((first, offset..offset + len));
        }
        if expect_offset != footer.index_offset {
            return Err(SegmentError::Malformed(
                "blocks do not end where the index starts".into(),
            ));
        }
        if (n == 0) != (footer.message_count == 0) || blocks.first().is_some_and(|b| b.0 != 0) {
            return Err(SegmentError::Malformed(
                "index does not cover the messages".into(),
            ));
        }
        Ok(BlockIndex {
            blocks,
            message_count: footer.message_count,
        })
    }

    /// Messages in the segment.
    pub fn message_count(&self) -> u32 {
        self.message_count
    }

    /// The blocks holding ordinals `ordinals` (half-open): (block number, first ordinal, byte range).
    pub fn blocks_for(&self, ordinals: Range<u32>) -> SegResult<Vec<(usize, u32, Range<u64>)>> {
        if ordinals.end > self.message_count || ordinals.start > ordinals.end {
            return Err(SegmentError::NoSuchOrdinal {
                ordinal: ordinals.end.saturating_sub(1),
                count: self.message_count,
            });
        }
        let mut out = Vec::new();
        for (i, (first, range)) in self.blocks.iter().enumerate() {
            let end = self.blocks.get(i + 1).map_or(self.message_count, |b| b.0);
            if *first < ordinals.end && end > ordinals.start {
                out.push((i, *first, range.clone()));
            }
        }
        Ok(out)
    }
}

/// Decodes one block (its bytes as named by the index); returns its messages.
pub fn decode_block(bytes: &[u8], block_no: usize) -> SegResult<Vec<Message>> {
    let mut r = Reader::new(bytes);
    let len = r.u32()? as usize;
    let crc = r.u32()?;
    let payload = r.take(len).map_err(|_| SegmentError::Truncated("block"))?;
    if !r.is_empty() {
        return Err(SegmentError::Malformed(format!(
            "block {block_no} has trailing bytes"
        )));
    }
    if crc32c::crc32c(payload) != crc {
        return Err(SegmentError::Checksum(format!("block {block_no}")));
    }
    let mut r = Reader::new(payload);
    let count = r.u32()? as usize;
    let mut out = Vec::with_capacity(count.min(65_536));
    for _ in 0..count {
        out.push(decode_message(&mut r)?);
    }
    if !r.is_empty() {
        return Err(SegmentError::Malformed(format!(
            "block {block_no} has bytes after its messages"
        )));
    }
    Ok(out)
}

/// Checks the header of a whole segment.
fn check_header(bytes: &[u8]) -> SegResult<()> {
    if bytes.len() < HEADER_LEN {
        return Err(SegmentError::Truncated("header"));
    }
    if &bytes[..MAGIC.len()] != MAGIC {
        return Err(SegmentError::BadMagic);
    }
    match bytes[MAGIC.len()] {
        VERSION => Ok(()),
        v => Err(SegmentError::UnsupportedVersion(v)),
    }
}

/// Parses footer and index of a whole segment held in memory.
pub fn parse_index(bytes: &[u8]) -> SegResult<BlockIndex> {
    check_header(bytes)?;
    let footer = Footer::parse(bytes)?;
    let start = usize::try_from(footer.index_offset)
        .map_err(|_| SegmentError::Malformed("index offset".into()))?;
    let end = start
        .checked_add(footer.index_len as usize)
        .ok_or(SegmentError::Malformed("index length".into()))?;
    if end != bytes.len() - FOOTER_LEN || start < HEADER_LEN {
        return Err(SegmentError::Malformed(
            "index does not end at the footer".into(),
        ));
    }
    BlockIndex::parse(&footer, &bytes[start..end])
}

/// Decodes a whole segment held in memory.
pub fn decode(bytes: &[u8]) -> SegResult<Vec<Message>> {
    let index = parse_index(bytes)?;
    // The count comes from the object: never trust it for an allocation.
    let mut out = Vec::with_capacity((index.message_count as usize).min(bytes.len() / 16));
    for (i, (first, range)) in index.blocks.iter().enumerate() {
        if *first as usize != out.len() {
            return Err(SegmentError::Malformed(format!(
                "block {i} starts at ordinal {first}"
            )));
        }
        out.extend(decode_block(
            &bytes[range.start as usize..range.end as usize],
            i,
        )?);
    }
    if out.len() != index.message_count as usize {
        return Err(SegmentError::Malformed(
            "message count does not match the footer".into(),
        ));
    }
    Ok(out)
}

/// A whole segment whose index and block checksums were checked once, when it was made:
/// its messages can then be borrowed ([`CheckedSegment::decode`]) any number of times
/// without checking the CRCs again (the compactor reads one segment once per queue).
#[derive(Debug, Clone)]
pub struct CheckedSegment {
    bytes: Bytes,
    index: BlockIndex,
}

impl CheckedSegment {
    /// Checks the header, index and footer, and every block's length, CRC and message count.
    pub fn new(bytes: Bytes) -> SegResult<CheckedSegment> {
        let index = parse_index(&bytes)?;
        for (i, (first, range)) in index.blocks.iter().enumerate() {
            let end = index.blocks.get(i + 1).map_or(index.message_count, |b| b.0);
            let payload = block_payload(&bytes, i, range)?;
            let count = Reader::new(payload).u32()?;
            if Some(count) != end.checked_sub(*first) {
                return Err(SegmentError::Malformed(format!(
                    "block {i} holds {count} messages, the index says {}",
                    end.saturating_sub(*first)
                )));
            }
        }
        Ok(CheckedSegment { bytes, index })
    }

    /// Messages in the segment.
    pub fn message_count(&self) -> u32 {
        self.index.message_count
    }

    /// The segment's size in bytes.
    pub fn size(&self) -> usize {
        self.bytes.len()
    }

    /// The messages at `ordinals` (half-open), borrowed from the segment's bytes: only the
    /// blocks holding them are read; strings are checked for UTF-8 once, here.
    pub fn decode(&self, ordinals: Range<u32>) -> SegResult<Decoded<'_>> {
        let n = (ordinals.end.saturating_sub(ordinals.start) as usize).min(65_536);
        let mut out = Decoded {
            heads: Vec::with_capacity(n),
            keys: Vec::with_capacity(n),
            properties: Vec::with_capacity(n),
        };
        for (block_no, first, range) in self.index.blocks_for(ordinals.clone())? {
            let end = self
                .index
                .blocks
                .get(block_no + 1)
                .map_or(self.index.message_count, |b| b.0);
            // Checked in `new`: only the structure is read here.
            let mut r = Reader::new(block_payload_unchecked(&self.bytes, block_no, &range)?);
            r.u32()?;
            for ordinal in first..end.min(ordinals.end) {
                if ordinal < ordinals.start {
                    skip_message(&mut r)?;
                } else {
                    let head = decode_head(&mut r, &mut out.keys, &mut out.properties)?;
                    out.heads.push(head);
                }
            }
        }
        Ok(out)
    }
}

/// The bytes of block `i` between its length and CRC, once the CRC matched.
fn block_payload<'a>(bytes: &'a [u8], i: usize, range: &Range<u64>) -> SegResult<&'a [u8]> {
    let block = usize::try_from(range.start)
        .ok()
        .zip(usize::try_from(range.end).ok())
        .and_then(|(s, e)| bytes.get(s..e))
        .ok_or(SegmentError::Truncated("block"))?;
    let mut r = Reader::new(block);
    let len = r.u32()? as usize;
    let crc = r.u32()?;
    let payload = r.take(len).map_err(|_| SegmentError::Truncated("block"))?;
    if !r.is_empty() {
        return Err(SegmentError::Malformed(format!(
            "block {i} has trailing bytes"
        )));
    }
    if crc32c::crc32c(payload) != crc {
        return Err(SegmentError::Checksum(format!("block {i}")));
    }
    Ok(payload)
}

/// The bytes of block `i` between its length and CRC, without checking the CRC again.
fn block_payload_unchecked<'a>(
    bytes: &'a [u8],
    i: usize,
    range: &Range<u64>,
) -> SegResult<&'a [u8]> {
    let block = usize::try_from(range.start)
        .ok()
        .zip(usize::try_from(range.end).ok())
        .and_then(|(s, e)| bytes.get(s..e))
        .ok_or(SegmentError::Truncated("block"))?;
    let mut r = Reader::new(block);
    let len = r.u32()? as usize;
    r.u32()?;
    r.take(len)
        .map_err(|_| SegmentError::Malformed(format!("block {i} is shorter than its length")))
}

/// Messages borrowed from a [`CheckedSegment`]: nothing copied, strings checked once.
#[derive(Debug, Clone, Default)]
pub struct Decoded<'a> {
    heads: Vec<Head<'a>>,
    keys: Vec<&'a str>,
    properties: Vec<(&'a str, &'a str)>,
}

/// A message's own fields, and where its keys and properties are in [`Decoded`].
#[derive(Debug, Clone, Copy)]
struct Head<'a> {
    topic: &'a str,
    message_id: &'a str,
    body: &'a [u8],
    tag: Option<&'a str>,
    message_group: Option<&'a str>,
    producer_group: Option<&'a str>,
    publish_time_ms: i64,
    deliver_at_ms: Option<i64>,
    /// (first, end) in `Decoded::keys`.
    keys: (u32, u32),
    /// (first, end) in `Decoded::properties`.
    properties: (u32, u32),
    /// [`Message::approx_size`], counted while decoding.
    size: usize,
}

impl<'a> Decoded<'a> {
    /// How many messages.
    pub fn len(&self) -> usize {
        self.heads.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.heads.is_empty()
    }

    /// The messages, in ordinal order.
    pub fn iter(&self) -> impl Iterator<Item = MessageRef<'_>> {
        self.heads.iter().map(|h| MessageRef {
            topic: h.topic,
            message_id: h.message_id,
            body: h.body,
            tag: h.tag,
            message_group: h.message_group,
            producer_group: h.producer_group,
            publish_time_ms: h.publish_time_ms,
            deliver_at_ms: h.deliver_at_ms,
            keys: &self.keys[h.keys.0 as usize..h.keys.1 as usize],
            properties: &self.properties[h.properties.0 as usize..h.properties.1 as usize],
            size: h.size,
        })
    }
}

/// One message borrowed from a segment's bytes ([`CheckedSegment::decode`]): the compactor
/// turns these straight into Arrow columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageRef<'r> {
    pub topic: &'r str,
    pub message_id: &'r str,
    pub body: &'r [u8],
    pub tag: Option<&'r str>,
    pub message_group: Option<&'r str>,
    pub producer_group: Option<&'r str>,
    pub publish_time_ms: i64,
    pub deliver_at_ms: Option<i64>,
    /// Business keys, in order.
    pub keys: &'r [&'r str],
    /// Properties, in increasing key order, keys unique.
    pub properties: &'r [(&'r str, &'r str)],
    size: usize,
}

impl MessageRef<'_> {
    /// The same as [`Message::approx_size`] of the owned message.
    pub fn approx_size(&self) -> usize {
        self.size
    }

    /// The owned message.
    pub fn to_message(&self) -> Message {
        Message {
            topic: self.topic.to_string(),
            message_id: self.message_id.to_string(),
            body: Bytes::copy_from_slice(self.body),
            tag: self.tag.map(str::to_string),
            keys: self.keys.iter().map(|k| k.to_string()).collect(),
            properties: self
                .properties
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            message_group: self.message_group.map(str::to_string),
            producer_group: self.producer_group.map(str::to_string),
            publish_time_ms: self.publish_time_ms,
            deliver_at_ms: self.deliver_at_ms,
        }
    }
}

/// Steps over one message (of another queue, before the ordinals asked for) without
/// decoding it.
fn skip_message(r: &mut Reader<'_>) -> SegResult<()> {
    fn skip_str(r: &mut Reader<'_>) -> SegResult<()> {
        let n = r.u32()? as usize;
        r.take(n).map(|_| ())
    }
    skip_str(r)?;
    skip_str(r)?;
    r.take(8)?;
    match r.u8()? {
        0 => {}
        1 => {
            r.take(8)?;
        }
        f => return Err(SegmentError::Malformed(format!("bad option flag {f}"))),
    }
    for _ in 0..3 {
        match r.u8()? {
            0 => {}
            1 => skip_str(r)?,
            f => return Err(SegmentError::Malformed(format!("bad option flag {f}"))),
        }
    }
    for _ in 0..r.u32()? {
        skip_str(r)?;
    }
    for _ in 0..r.u32()? {
        skip_str(r)?;
        skip_str(r)?;
    }
    skip_str(r)
}

/// Decodes one message's fields, appending its keys and properties to `keys` and `props`.
fn decode_head<'a>(
    r: &mut Reader<'a>,
    keys: &mut Vec<&'a str>,
    props: &mut Vec<(&'a str, &'a str)>,
) -> SegResult<Head<'a>> {
    let topic = r.str()?;
    let message_id = r.str()?;
    let publish_time_ms = r.i64()?;
    let deliver_at_ms = match r.u8()? {
        0 => None,
        1 => Some(r.i64()?),
        f => return Err(SegmentError::Malformed(format!("bad option flag {f}"))),
    };
    let tag = r.opt_str()?;
    let message_group = r.opt_str()?;
    let producer_group = r.opt_str()?;
    let mut size = 64
        + topic.len()
        + message_id.len()
        + tag.map_or(0, str::len)
        + message_group.map_or(0, str::len)
        + producer_group.map_or(0, str::len);
    let nkeys = r.u32()?;
    let keys_first = keys.len();
    for _ in 0..nkeys {
        let k = r.str()?;
        size += k.len();
        keys.push(k);
    }
    let nprops = r.u32()?;
    let props_first = props.len();
    for _ in 0..nprops {
        let k = r.str()?;
        let v = r.str()?;
        if props.len() > props_first && props.last().is_some_and(|(p, _)| *p >= k) {
            return Err(SegmentError::Malformed(
                "property keys are not in increasing order".into(),
            ));
        }
        size += k.len() + v.len() + 8;
        props.push((k, v));
    }
    let blen = r.u32()? as usize;
    let body = r.take(blen)?;
    size += body.len();
    let index =
        |n: usize| u32::try_from(n).map_err(|_| SegmentError::Malformed("too many keys".into()));
    Ok(Head {
        topic,
        message_id,
        body,
        tag,
        message_group,
        producer_group,
        publish_time_ms,
        deliver_at_ms,
        keys: (index(keys_first)?, index(keys.len())?),
        properties: (index(props_first)?, index(props.len())?),
        size,
    })
}

fn put_str(b: &mut BytesMut, s: &str) {
    b.put_u32_le(s.len() as u32);
    b.put_slice(s.as_bytes());
}

fn put_opt_str(b: &mut BytesMut, s: &Option<String>) {
    match s {
        None => b.put_u8(0),
        Some(s) => {
            b.put_u8(1);
            put_str(b, s);
        }
    }
}

fn encode_message(b: &mut BytesMut, m: &Message) {
    put_str(b, &m.topic);
    put_str(b, &m.message_id);
    b.put_i64_le(m.publish_time_ms);
    match m.deliver_at_ms {
        None => b.put_u8(0),
        Some(t) => {
            b.put_u8(1);
            b.put_i64_le(t);
        }
    }
    put_opt_str(b, &m.tag);
    put_opt_str(b, &m.message_group);
    put_opt_str(b, &m.producer_group);
    b.put_u32_le(m.keys.len() as u32);
    for k in &m.keys {
        put_str(b, k);
    }
    b.put_u32_le(m.properties.len() as u32);
    for (k, v) in &m.properties {
        put_str(b, k);
        put_str(b, v);
    }
    b.put_u32_le(m.body.len() as u32);
    b.put_slice(&m.body);
}

fn decode_message(r: &mut Reader<'_>) -> SegResult<Message> {
    let topic = r.string()?;
    let message_id = r.string()?;
    let publish_time_ms = r.i64()?;
    let deliver_at_ms = match r.u8()? {
        0 => None,
        1 => Some(r.i64()?),
        f => return Err(SegmentError::Malformed(format!("bad option flag {f}"))),
    };
    let tag = r.opt_string()?;
    let message_group = r.opt_string()?;
    let producer_group = r.opt_string()?;
    let nkeys = r.u32()? as usize;
    let mut keys = Vec::with_capacity(nkeys.min(1024));
    for _ in 0..nkeys {
        keys.push(r.string()?);
    }
    let nprops = r.u32()? as usize;
    let mut properties = BTreeMap::new();
    for _ in 0..nprops {
        let k = r.string()?;
        let v = r.string()?;
        properties.insert(k, v);
    }
    let blen = r.u32()? as usize;
    let body = Bytes::copy_from_slice(r.take(blen)?);
    Ok(Message {
        topic,
        message_id,
        body,
        tag,
        keys,
        properties,
        message_group,
        producer_group,
        publish_time_ms,
        deliver_at_ms,
    })
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }
    fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
    fn take(&mut self, n: usize) -> SegResult<&'a [u8]> {
        if self.buf.len() < n {
            return Err(SegmentError::Truncated("field"));
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }
    fn u8(&mut self) -> SegResult<u8> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> SegResult<u32> {
        Ok(u32::from_le_bytes(
            self.take(4)?
                .try_into()
                .map_err(|_| SegmentError::Truncated("u32"))?,
        ))
    }
    fn u64(&mut self) -> SegResult<u64> {
        Ok(u64::from_le_bytes(
            self.take(8)?
                .try_into()
                .map_err(|_| SegmentError::Truncated("u64"))?,
        ))
    }
    fn i64(&mut self) -> SegResult<i64> {
        Ok(self.u64()? as i64)
    }
    fn string(&mut self) -> SegResult<String> {
        let n = self.u32()? as usize;
        let bytes = self.take(n)?;
        String::from_utf8(bytes.to_vec())
            .map_err(|_| SegmentError::Malformed("string is not UTF-8".into()))
    }
    fn str(&mut self) -> SegResult<&'a str> {
        let n = self.u32()? as usize;
        let bytes = self.take(n)?;
        std::str::from_utf8(bytes)
            .map_err(|_| SegmentError::Malformed("string is not UTF-8".into()))
    }
    fn opt_str(&mut self) -> SegResult<Option<&'a str>> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.str()?)),
            f => Err(SegmentError::Malformed(format!("bad option flag {f}"))),
        }
    }
    fn opt_string(&mut self) -> SegResult<Option<String>> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.string()?)),
            f => Err(SegmentError::Malformed(format!("bad option flag {f}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_message() -> impl Strategy<Value = Message> {
        (
            "[a-z]{1,8}",
            "[A-Z0-9]{1,26}",
            proptest::collection::vec(any::<u8>(), 0..300),
            proptest::option::of("[A-Za-z]{0,5}"),
            proptest::collection::vec(".{0,6}", 0..3),
            proptest::collection::btree_map("[a-z]{1,4}", ".{0,5}", 0..3),
            (
                proptest::option::of("[a-z]{1,4}"),
                proptest::option::of("[a-z]{1,4}"),
            ),
            (any::<i64>(), proptest::option::of(any::<i64>())),
        )
            .prop_map(
                |(topic, id, body, tag, keys, properties, (mg, pg), (t, d))| Message {
                    topic,
                    message_id: id,
                    body: body.into(),
                    tag,
                    keys,
                    properties,
                    message_group: mg,
                    producer_group: pg,
                    publish_time_ms: t,
                    deliver_at_ms: d,
                },
            )
    }

    proptest! {
        #[test]
        fn roundtrip_segment(msgs in proptest::collection::vec(arb_message(), 0..40), block in 1usize..2000) {
            let mut b = SegmentBuilder::new(block);
            for m in &msgs { b.push(m); }
            let bytes = b.finish();
            prop_assert_eq!(decode(&bytes).unwrap(), msgs.clone());
            let index = parse_index(&bytes).unwrap();
            // Every ordinal is found in the block the index names.
            for (ord, m) in msgs.iter().enumerate() {
                let ord = ord as u32;
                let blocks = index.blocks_for(ord..ord + 1).unwrap();
                prop_assert_eq!(blocks.len(), 1);
                let (no, first, range) = &blocks[0];
                let got = decode_block(&bytes[range.start as usize..range.end as usize], *no).unwrap();
                prop_assert_eq!(&got[(ord - first) as usize], m);
            }
        }

        #[test]
        fn borrowed_decoding_of_any_ordinal_range_equals_the_owned_messages(
            msgs in proptest::collection::vec(arb_message(), 0..40),
            block in 1usize..2000,
            a in any::<prop::sample::Index>(),
            b in any::<prop::sample::Index>(),
        ) {
            let mut builder = SegmentBuilder::new(block);
            for m in &msgs { builder.push(m); }
            let seg = CheckedSegment::new(builder.finish()).unwrap();
            prop_assert_eq!(seg.message_count() as usize, msgs.len());
            let (x, y) = (a.index(msgs.len() + 1) as u32, b.index(msgs.len() + 1) as u32);
            let range = x.min(y)..x.max(y);
            let refs = seg.decode(range.clone()).unwrap();
            prop_assert_eq!(refs.len(), range.len());
            for (r, m) in refs.iter().zip(&msgs[range.start as usize..range.end as usize]) {
                prop_assert_eq!(&r.to_message(), m);
                prop_assert_eq!(r.approx_size(), m.approx_size());
            }
            prop_assert!(seg.decode(0..msgs.len() as u32 + 1).is_err());
        }

        #[test]
        fn a_checked_segment_after_a_bit_flip_is_an_error_or_identical(msgs in proptest::collection::vec(arb_message(), 1..5), pos in any::<prop::sample::Index>(), bit in 0u8..8) {
            let bytes = encode(&msgs);
            let mut bad = bytes.to_vec();
            let i = pos.index(bad.len());
            bad[i] ^= 1 << bit;
            if let Ok(seg) = CheckedSegment::new(Bytes::from(bad)) {
                if let Ok(refs) = seg.decode(0..msgs.len() as u32) {
                    let owned: Vec<Message> = refs.iter().map(|r| r.to_message()).collect();
                    prop_assert_eq!(owned, msgs);
                }
            }
        }

        #[test]
        fn a_truncated_segment_is_never_checked(msgs in proptest::collection::vec(arb_message(), 1..5), cut in any::<prop::sample::Index>()) {
            let bytes = encode(&msgs);
            let n = cut.index(bytes.len());
            prop_assert!(CheckedSegment::new(bytes.slice(..n)).is_err());
        }

        #[test]
        fn any_single_bit_flip_is_an_error_or_identical(msgs in proptest::collection::vec(arb_message(), 1..5), pos in any::<prop::sample::Index>(), bit in 0u8..8) {
            let bytes = encode(&msgs);
            let mut bad = bytes.to_vec();
            let i = pos.index(bad.len());
            bad[i] ^= 1 << bit;
            // Never a panic; never different messages reported as valid.
            if let Ok(decoded) = decode(&bad) {
                prop_assert_eq!(decoded, msgs);
            }
        }

        #[test]
        fn truncation_is_always_an_error(msgs in proptest::collection::vec(arb_message(), 1..5), cut in any::<prop::sample::Index>()) {
            let bytes = encode(&msgs);
            let n = cut.index(bytes.len());
            prop_assert!(decode(&bytes[..n]).is_err());
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(&bytes);
        }
    }

    #[test]
    fn rejects_foreign_and_future_objects() {
        assert_eq!(decode(b"{\"hello\": 1}"), Err(SegmentError::BadMagic));
        let mut bytes = encode(&[Message::default()]).to_vec();
        bytes[6] = 9;
        assert_eq!(decode(&bytes), Err(SegmentError::UnsupportedVersion(9)));
        assert_eq!(decode(b""), Err(SegmentError::Truncated("header")));
    }

    #[test]
    fn a_huge_message_count_in_the_footer_is_an_error_not_an_allocation() {
        let mut bytes = encode(&[Message::default()]).to_vec();
        let n = bytes.len();
        bytes[n - 8..n - 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode(&bytes).is_err());
    }

    #[test]
    fn flipped_body_byte_is_a_checksum_error() {
        let m = Message {
            body: Bytes::from_static(b"hello world"),
            ..Message::default()
        };
        let mut bytes = encode(&[m]).to_vec();
        let pos = bytes.windows(5).position(|w| w == b"hello").unwrap();
        bytes[pos] ^= 0x20;
        assert_eq!(
            decode(&bytes),
            Err(SegmentError::Checksum("block 0".into()))
        );
    }
}
