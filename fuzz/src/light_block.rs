//! The light client's reading of a block view a node serves (`nest_light`): any JSON
//! (or bytes that are not JSON) is refused with a reason or read as a header whose hash
//! it recomputed, never a panic; a finality proof in it is checked against four
//! authorities.

use nest_sdk::{PublicKey, testing::LocalHost};
use serde_json::Value;

/// Four authorities a proof is checked against.
pub fn authorities() -> Vec<PublicKey> {
    (1..=4u8).map(|seed| LocalHost::from_seed([seed; 32]).host().public_key()).collect()
}

/// Reads `data` as a block view at the height it names (or 1).
pub fn run(data: &[u8]) {
    let Ok(block) = serde_json::from_slice::<Value>(data) else { return };
    let height = block["height"].as_u64().unwrap_or(1);
    if let Ok(header) = nest_light::checked_header(&block, height) {
        assert_eq!(header.header.height, height, "a header is read at the height asked for");
        let _ = nest_light::check_votes(&header, &block, &authorities());
    }
}
