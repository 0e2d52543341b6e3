//! The SDK's commit certificates and offences (`nest_sdk::certificate`), as sync and
//! evidence transactions deliver them.

use nest_sdk::{
    Validator,
    certificate::{CommitCertificate, DoubleVote, Offence},
    testing::LocalHost,
};

/// Four validators of power 1, the set certificates are checked against.
pub fn validators() -> Vec<Validator> {
    (1..=4u8).map(|seed| Validator { key: LocalHost::from_seed([seed; 32]).host().public_key(), power: 1 }).collect()
}

/// Decodes `data` as each type; what decodes must re-encode to `data` and is checked.
pub fn run(data: &[u8]) {
    let host = LocalHost::from_seed([1; 32]).host();
    let verify = |key: &_, message: &[u8], signature: &_| host.verify(key, message, signature);
    if let Some(certificate) = CommitCertificate::decode(data) {
        assert_eq!(borsh::to_vec(&certificate).ok().as_deref(), Some(data), "certificate re-encodes");
        let _ = certificate.check(certificate.height, &validators(), verify);
    }
    if let Some(offence) = Offence::decode(data) {
        assert_eq!(borsh::to_vec(&offence).ok().as_deref(), Some(data), "offence re-encodes");
        let _ = (offence.offender(), offence.height_round(), offence.kind().name(), offence.values());
        let _ = offence.verifies(verify);
    }
    if let Some(double_vote) = DoubleVote::decode(data) {
        assert_eq!(borsh::to_vec(&double_vote).ok().as_deref(), Some(data), "double vote re-encodes");
        let _ = double_vote.verifies(verify);
    }
}
