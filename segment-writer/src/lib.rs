//! FerryMQ's durable core.
//!
//! Everything a gateway acknowledges is in the object store before the acknowledgement: message
//! bytes in immutable [`segment`] objects, and every change of state as one version of the
//! [`manifest`] log, created only if absent so that two writers can never both write a version.
//! The state is a deterministic function of the log ([`manifest::State::apply`]), so any gateway
//! that replays the log derives the same state. In steady state one gateway, the sequencer,
//! writes the log; the others hand their commands to it through a [`node::Forwarder`].
//!
//! Modules:
//! - [`paths`]: every object key.
//! - [`store`]: opening `file://`, `s3://` and `memory://` stores; [`faulty`] injects latency and faults.
//! - [`segment`]: the segment codec.
//! - [`manifest`]: commands, state, apply, the log and checkpoints.
//! - [`node`]: group commit, sequencer leadership, forwarding and tailing.
//! - [`clock`]: injected time; [`hedge`]: hedged PUTs against the latency tail.
//! - [`inline`]: small segments carried inside deltas, and writing them out as objects.

pub mod clock;
pub mod error;
pub mod faulty;
pub mod hedge;
pub mod inline;
pub mod manifest;
pub mod node;
pub mod paths;
pub mod segment;
pub mod segment_store;
pub mod store;

pub use error::{Error, Result};
