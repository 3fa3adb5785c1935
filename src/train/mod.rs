//! The training step as Bevy systems (in progress).
