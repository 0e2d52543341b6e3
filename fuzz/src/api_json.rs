//! The JSON bodies the API and the console socket deserialize, and what the routes do
//! with them before the node loop (hex, transaction decoding, signature checks).

use nest_api::{
    api::{decode_and_verify, parse_send, parse_submission},
    market::PricingContext,
    session::{ClientMessage, EvalRequest, PluginActionBody},
};

/// Reads `data` as every body type.
pub fn run(data: &[u8]) {
    if let Ok(texts) = parse_submission(data) {
        let checked = decode_and_verify(texts.clone());
        assert_eq!(checked.len(), texts.len(), "one verdict per submitted transaction");
    }
    let _ = parse_send(data);
    let _ = serde_json::from_slice::<PricingContext>(data);
    let _ = serde_json::from_slice::<EvalRequest>(data);
    let _ = serde_json::from_slice::<PluginActionBody>(data);
    let _ = serde_json::from_slice::<ClientMessage>(data);
}
