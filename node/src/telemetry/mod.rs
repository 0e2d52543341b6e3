//! What the node reports about itself: [`events`] is its event bus (the admin event
//! stream and the console read it), [`metrics`] names every metric the node exports.

pub mod events;
pub mod metrics;
