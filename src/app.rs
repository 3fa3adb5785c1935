//! The Bevy side (in progress).
