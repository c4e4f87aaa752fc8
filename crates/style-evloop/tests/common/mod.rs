//! What the integration tests share.

pub(crate) mod stand_in;
