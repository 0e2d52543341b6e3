//! Put the offences consensus engines prove on chain: each double-vote or double-proposal proof an engine
//! reports becomes an evidence transaction signed with the node key, admitted here and
//! gossiped (the ledger records each offence once, whoever reports it first).

use super::LoopState;
use crate::ledger::evidence::evidence_tx;

impl LoopState {
    /// Submits an evidence transaction for every proof the chains' engines reported
    /// since the last call.
    pub(super) fn report_evidence(&mut self) {
        let key = self.key.clone();
        for index in 0..self.chains.len() {
            let chain = &mut self.chains[index];
            let proofs = chain.take_evidence_proofs();
            if proofs.is_empty() {
                continue;
            }
            let chain_id = chain.id().to_string();
            let genesis = chain.genesis_hash();
            let mut submitted = Vec::new();
            for proof in proofs {
                let nonce = chain.pending_nonce(&key.public_key());
                let tx = evidence_tx(proof, genesis, &key, nonce);
                match chain.admit(vec![(tx.hash(), tx.clone())]).remove(0) {
                    Ok(()) => submitted.push(tx),
                    Err(error) => tracing::warn!(chain = %chain_id, %error, "evidence transaction not admitted"),
                }
            }
            self.gossip_txs(&chain_id, submitted);
        }
    }
}
