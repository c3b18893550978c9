//! What the platform's and the applications' HTTP routes share: the
//! extractors (`extract`: bad input becomes a problem, the caller is
//! authenticated by the platform's [`Hub`](civic_hub::Hub), taken from any
//! state that holds one) and the one place where errors become RFC 9457
//! problems (`problem`). An application's routes are written against
//! this crate and the server (civic-api) mounts them in one line.

pub mod extract;
pub mod problem;
