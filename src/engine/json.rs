//! How the state's values are written in JSON (the status API): durations as whole
//! milliseconds since the engine started, operations in flight as their generation.

use std::time::Duration;

use super::image::{BuildOp, SyncOp};

pub(super) fn is_some<S: serde::Serializer, T>(v: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_bool(v.is_some())
}

pub(super) fn build_generation<S: serde::Serializer>(
    op: &Option<BuildOp>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match op {
        Some(op) => s.serialize_u64(op.generation),
        None => s.serialize_none(),
    }
}

pub(super) fn generation_of<S: serde::Serializer>(
    op: &Option<SyncOp>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match op {
        Some(op) => s.serialize_u64(op.generation),
        None => s.serialize_none(),
    }
}

pub(super) fn as_ms<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => ms(d, s),
        None => s.serialize_none(),
    }
}

pub(super) fn ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
