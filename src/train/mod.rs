//! The training step as Bevy systems (in progress).

pub mod checkpoint;
pub mod schedule;
