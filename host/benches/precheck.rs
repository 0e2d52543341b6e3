//! What verifying consensus signatures before the loop saves the loop.
//!
//! A PoA vote's signature, checked the way the engine checks it, through its host's
//! `verify`: on the loop (an Ed25519 verification) against answered from the record the
//! bridge fills off the loop (a SHA-256 and a set lookup). Also what the bridge spends
//! off the loop per vote: the library's listing (decode), one verification, recording.
//! Medians of 9 samples each, measured in the same run; prints the ratio.

// A benchmark binary has no public API to document.
#![allow(missing_docs)]

mod support;

use consensus_poa::{PoaEngine, PoaMessage, vote_message};
use nest_host::{
    crypto::SecretKey,
    node::{
        precheck::{Prechecker, VerifiedSignatures},
        services::NodeServices,
    },
};
use nest_sdk::Hash32;
use std::{hint::black_box, sync::Arc};
use support::median_ns;

fn main() {
    let voter = SecretKey::from_seed([1; 32]);
    let (height, unit_hash) = (7, Hash32([9; 32]));
    let message = vote_message(height, &unit_hash);
    let signature = voter.sign(&message);
    let bytes = nest_sdk::borsh::to_vec(&PoaMessage::Vote { height, unit_hash, voter: voter.public_key(), signature })
        .expect("encode");
    let node_key = Arc::new(SecretKey::from_seed([2; 32]));

    let verified = Arc::new(VerifiedSignatures::default());
    let prechecker = Prechecker::new(verified.clone(), NodeServices::host(node_key.clone(), "bench/precheck"));
    prechecker.set_lister("main", Some(nest_sdk::export::consensus_message_signatures::<PoaEngine>));
    prechecker.check("main", &bytes).expect("the vote verifies");

    let on_loop = NodeServices::host(node_key.clone(), "bench/on_loop");
    let from_record = NodeServices::consensus_host(node_key, "bench/record", verified);
    let key = voter.public_key();
    assert!(on_loop.verify(&key, &message, &signature) && from_record.verify(&key, &message, &signature));

    let verify_ns = median_ns(|| _ = black_box(on_loop.verify(&key, &message, &signature)), 2_000);
    let lookup_ns = median_ns(|| _ = black_box(from_record.verify(&key, &message, &signature)), 20_000);
    let precheck_ns = median_ns(|| drop(black_box(prechecker.check("main", &bytes))), 2_000);
    println!("consensus signature check on the loop, per PoA vote (medians of 9 samples, same run):");
    println!("  verified on the loop       {:>9.0} ns", verify_ns);
    println!("  looked up (checked before) {:>9.0} ns", lookup_ns);
    println!("  ratio on-loop cost after/before: {:.3} (target <= 0.10)", lookup_ns / verify_ns);
    println!("  off the loop, per vote (list, verify, record): {:.0} ns", precheck_ns);
}
