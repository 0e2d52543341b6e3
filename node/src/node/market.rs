//! Perform market operations on the node loop: strategies (with the store) and quotes.

use super::{LoopState, QueryError};
use crate::ledger::market::MarketTx;
use crate::ledger::market::{self, MarketRules};
use crate::ledger::{BlockEnv, ChainParams, SignedTx, TxBody, TxError};
use crate::market::{CHART_POINTS_MAX, MarketOp, PricingContext, SharedStrategies, StrategyError};
use crate::store::Store;
use crate::telemetry::events::Event;
use borsh::BorshDeserialize;
use serde_json::{Value, json};

/// Loads the stored strategies into the registry; a version that no longer loads is logged.
pub(super) fn load_strategies(strategies: &SharedStrategies, store: &Store) {
    let mut registry = strategies.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    match registry.load(store) {
        Ok(problems) => problems.iter().for_each(|problem| tracing::error!(%problem, "stored pricing strategy")),
        Err(error) => tracing::error!(%error, "pricing strategies not loaded"),
    }
}

/// Blocks whose market transactions one loop iteration publishes, per chain.
const MARKET_EVENT_BLOCKS_MAX: u64 = 64;

fn refused(error: StrategyError) -> QueryError {
    match error {
        StrategyError::Unknown(_) | StrategyError::NoVersion { .. } => QueryError::NotFound(error.to_string()),
        other => QueryError::Failed(other.to_string()),
    }
}

impl LoopState {
    /// Performs one market operation; the answer is JSON for the API and the console.
    pub(super) fn market_op(&mut self, op: MarketOp) -> Result<Value, QueryError> {
        let now_ms = super::now_ms();
        let strategies = self.strategies.clone();
        let mut registry = strategies.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match op {
            MarketOp::InstallStrategy { sku, source } => {
                let version = registry.install(&self.store, &sku, &source, now_ms).map_err(refused)?;
                self.publish_market_event("strategy_installed", &sku, json!({ "version": version }));
                Ok(json!({ "sku": sku, "version": version }))
            }
            MarketOp::Rollback { sku, version } => {
                registry.rollback(&self.store, &sku, version).map_err(refused)?;
                self.publish_market_event("strategy_rolled_back", &sku, json!({ "version": version }));
                Ok(json!({ "sku": sku, "version": version }))
            }
            MarketOp::Strategies { sku: None } => {
                let list: Vec<Value> =
                    registry.list().into_iter().map(|(sku, active)| json!({ "sku": sku, "active": active })).collect();
                Ok(Value::Array(list))
            }
            MarketOp::Strategies { sku: Some(sku) } => serde_json::to_value(registry.history(&sku).map_err(refused)?)
                .map_err(|e| QueryError::Failed(e.to_string())),
            MarketOp::Chart { sku, points, context } => chart(&registry, &sku, points, context),
            MarketOp::Quote { sku, policy, context } => {
                drop(registry);
                self.quote(&sku, policy.as_deref(), context, now_ms)
            }
            MarketOp::Submit { chain, tx } => {
                drop(registry);
                self.submit_market(&chain, *tx, now_ms)
            }
            MarketOp::Skus { chain } => listing(self.chain(&chain)?, market::SKU_PREFIX, |_: &market::Sku| true),
            MarketOp::Demands { chain } => {
                listing(self.chain(&chain)?, market::DEMAND_PREFIX, |_: &market::Demand| true)
            }
            MarketOp::Locks { chain, party } => {
                listing(self.chain(&chain)?, market::LOCK_PREFIX, |lock: &market::Lock| {
                    party.is_none_or(|p| lock.buyer == p || lock.provider == p)
                })
            }
            MarketOp::Book { chain, sku } => book(self.chain(&chain)?, &sku),
        }
    }

    /// Publishes a market event for each market transaction in blocks committed since
    /// the last call (at most [`MARKET_EVENT_BLOCKS_MAX`] blocks per chain per call), so
    /// `watch("market")` shows the market on every node, not only where a tx was sent.
    pub(super) fn publish_committed_market_txs(&mut self) {
        let heights: Vec<(String, u64)> =
            self.chains.iter().map(|c| (c.id().to_string(), c.head_ref().height)).collect();
        for (chain, height) in heights {
            let Some(&seen) = self.market_heights.get(&chain) else {
                // Nothing before the node started is replayed.
                self.market_heights.insert(chain, height);
                continue;
            };
            let last = height.min(seen.saturating_add(MARKET_EVENT_BLOCKS_MAX));
            if self.events.has_subscribers() {
                for at in seen + 1..=last {
                    self.publish_block_market_txs(&chain, at);
                }
            }
            self.market_heights.insert(chain, last);
        }
    }

    fn publish_block_market_txs(&mut self, chain: &str, height: u64) {
        let Ok(block) = self.reader.block(chain, height) else { return };
        for view in block.txs {
            if let TxBody::Market(body) = &view.tx.tx.body {
                let detail = json!({ "tx": view.hash, "chain": chain, "height": height, "from": view.tx.tx.from });
                self.publish_market_event(&format!("{}_committed", market_tx_name(body)), &sku_of(body), detail);
            }
        }
    }

    /// Dry-runs a market transaction on the committed state (its nonce set to the
    /// committed one, since pending transactions are not part of that state), then
    /// admits it like any transaction and gossips it.
    fn submit_market(&mut self, chain_id: &str, tx: SignedTx, now_ms: u64) -> Result<Value, QueryError> {
        let TxBody::Market(body) = &tx.tx.body else {
            return Err(QueryError::Refused("not a market transaction".into()));
        };
        let (what, sku) = (market_tx_name(body), sku_of(body));
        // Admission marks the id verified: the block that includes it is not checked again.
        if !tx.verify_signature() {
            return Err(QueryError::Refused(format!("{what} refused: bad signature")));
        }
        let chain = self.chain(chain_id)?;
        let mut trial = tx.clone();
        trial.tx.nonce = chain.ledger().account(&tx.tx.from).nonce;
        let env = BlockEnv {
            height: chain.head_ref().height + 1,
            parent: chain.head_ref().hash,
            time_ms: now_ms,
            proposer: tx.tx.from,
        };
        let params = ChainParams { chain: chain.genesis_hash(), gas_price: 0 };
        let outcome = chain.ledger().execute(std::slice::from_ref(&trial), &env, &params, true);
        if let Some((_, error @ TxError::Market(_))) = outcome.rejected.first() {
            return Err(QueryError::Refused(format!("{what} refused: {error}")));
        }
        let hash = tx.hash();
        let admitted = chain.admit(vec![(hash, tx.clone())]).pop().unwrap_or(Ok(()));
        admitted.map_err(|error| QueryError::Refused(format!("{what} refused: {error}")))?;
        self.gossip_txs(chain_id, vec![tx]);
        self.publish_market_event(what, &sku, json!({ "tx": hash, "chain": chain_id }));
        Ok(json!({ "hash": hash, "id": hash }))
    }

    /// Quotes through the local market policy instance (which runs the strategy).
    fn quote(
        &mut self,
        sku: &str,
        policy: Option<&str>,
        mut context: PricingContext,
        now_ms: u64,
    ) -> Result<Value, QueryError> {
        context.sku = sku.to_string();
        if context.now_ms == 0 {
            context.now_ms = now_ms;
        }
        let policy = self.policy_for(sku, policy)?;
        let context_json = serde_json::to_string(&context).map_err(|e| QueryError::Failed(e.to_string()))?;
        let request = nest_sdk::QuoteRequest {
            sku: sku.into(),
            units: context.units.max(1),
            duration_s: context.duration_s,
            now_ms: context.now_ms,
            context_json: context_json.into(),
        };
        let part = &mut self.markets[policy];
        let quote = part.slot.call(|m| m.quote(request)).map_err(|e| QueryError::Failed(e.to_string()))?;
        Ok(json!({
            "sku": sku,
            "market": part.id,
            "policy": part.slot.status().name,
            "unit_price": quote.unit_price,
            "price": quote.price,
            "valid_until_ms": quote.valid_until_ms,
        }))
    }

    /// The local market instance that quotes `sku`: the one whose policy the SKU uses on
    /// chain, else the one asked for, else the only instance the node runs.
    fn policy_for(&self, sku: &str, asked: Option<&str>) -> Result<usize, QueryError> {
        if let Some(policy) = self.shelved_policy(sku).or(asked.map(str::to_string)) {
            return self.markets.iter().position(|m| m.slot.status().name == policy).ok_or_else(|| {
                QueryError::Failed(format!("SKU \"{sku}\" uses policy {policy}, which this node does not load"))
            });
        }
        match self.markets.len() {
            1 => Ok(0),
            0 => Err(QueryError::Failed("this node runs no market policy ([[market]] in the manifest)".into())),
            _ => Err(QueryError::Refused(format!(
                "SKU \"{sku}\" is not shelved on any chain of this node: name its policy (policy = \"market-...\")"
            ))),
        }
    }

    fn publish_market_event(&self, what: &str, sku: &str, detail: Value) {
        tracing::info!(sku, %detail, "market: {what}");
        let event = Event::Market { what: what.to_string(), sku: sku.to_string(), detail: detail.to_string() };
        self.events.publish(event);
    }

    /// The policy plugin name an SKU shelved on one of this node's chains uses.
    fn shelved_policy(&self, sku: &str) -> Option<String> {
        self.chains.iter().find_map(|chain| {
            let bytes = chain.ledger().record(&[market::SKU_PREFIX, sku.as_bytes()].concat())?;
            borsh::from_slice::<market::Sku>(bytes).ok().map(|record| record.policy)
        })
    }
}

fn chart(
    registry: &crate::market::Strategies,
    sku: &str,
    points: usize,
    mut context: PricingContext,
) -> Result<Value, QueryError> {
    if !(2..=CHART_POINTS_MAX).contains(&points) {
        return Err(QueryError::Failed(format!("chart points: {points}, expected 2 to {CHART_POINTS_MAX}")));
    }
    context.sku = sku.to_string();
    let mut series = Vec::with_capacity(points);
    for index in 0..points {
        context.utilization = index as f64 / (points - 1) as f64;
        let priced = registry.price(sku, &context).map_err(refused)?;
        series.push(json!({ "utilization": context.utilization, "unit_price": priced.unit_price }));
    }
    Ok(Value::Array(series))
}

/// Builds the deterministic side of every market policy the manifest uses: one
/// instance per plugin name (from its first `[[market]]` entry), lent to the ledgers.
pub(super) fn build_rules(
    manifest: &crate::manifest::Manifest,
    libraries: &std::collections::BTreeMap<&str, &std::sync::Arc<crate::loader::LoadedLibrary>>,
    key: &std::sync::Arc<crate::crypto::SecretKey>,
    errors: &mut Vec<String>,
) -> MarketRules {
    let mut instances = std::collections::BTreeMap::new();
    for entry in &manifest.market {
        let Some(library) = libraries.get(entry.plugin.as_str()) else { continue };
        let name = library.info.name.to_string();
        if instances.contains_key(&name) || !library.kinds().contains(&nest_sdk::PluginKind::Market) {
            continue;
        }
        let host = super::services::NodeServices::host(key.clone(), &format!("market/{}/rules", entry.id));
        match library.new_market(&crate::manifest::config_json(&entry.config), &host) {
            Ok(instance) => {
                instances.insert(name, instance);
            }
            Err(error) => errors.push(format!("[[market]] id=\"{}\": rules instance: {error}", entry.id)),
        }
    }
    MarketRules::new(instances)
}

/// Refuses to run a chain whose state holds SKUs or locks of a policy this node does
/// not load: it could not apply their transactions like the other nodes.
pub(super) fn check_required_policies(chains: &[super::chain::ChainRuntime]) -> Result<(), String> {
    for chain in chains {
        let ledger = chain.ledger();
        let skus = ledger
            .records_with_prefix(market::SKU_PREFIX)
            .map(|(k, v)| (k, borsh::from_slice::<market::Sku>(v).map(|s| s.policy)));
        let locks = ledger
            .records_with_prefix(market::LOCK_PREFIX)
            .map(|(k, v)| (k, borsh::from_slice::<market::Lock>(v).map(|l| l.policy)));
        for (key, policy) in skus.chain(locks) {
            let what = String::from_utf8_lossy(key);
            let policy = policy.map_err(|e| format!("chain {}: record {what}: {e}", chain.id()))?;
            if !ledger.markets().has(&policy) {
                return Err(format!(
                    "chain {}: {what} uses market policy {policy}, which this node does not load: add a [[market]] entry for it",
                    chain.id()
                ));
            }
        }
    }
    Ok(())
}

fn market_tx_name(body: &MarketTx) -> &'static str {
    match body {
        MarketTx::Shelve { .. } => "shelve",
        MarketTx::Update { .. } => "update",
        MarketTx::Withdraw { .. } => "withdraw",
        MarketTx::PostDemand { .. } => "demand",
        MarketTx::CancelDemand { .. } => "cancel_demand",
        MarketTx::Bid { .. } => "bid",
        MarketTx::CancelBid { .. } => "cancel_bid",
        MarketTx::Close { .. } => "close",
        MarketTx::Lock { .. } => "lock",
        MarketTx::Report { .. } => "report",
        MarketTx::Confirm { .. } => "confirm",
        MarketTx::Settle { .. } => "settle",
        MarketTx::Refund { .. } => "refund",
    }
}

fn sku_of(body: &MarketTx) -> String {
    match body {
        MarketTx::Shelve { sku, .. }
        | MarketTx::Update { sku, .. }
        | MarketTx::Withdraw { sku }
        | MarketTx::Bid { sku, .. }
        | MarketTx::CancelBid { sku, .. }
        | MarketTx::Close { sku }
        | MarketTx::Lock { sku, .. } => sku.clone(),
        MarketTx::PostDemand { resource, .. } => resource.clone(),
        _ => String::new(),
    }
}

/// Records under `prefix` that decode as `T` and pass `keep`, as JSON with their id.
fn listing<T: BorshDeserialize + serde::Serialize>(
    chain: &super::chain::ChainRuntime,
    prefix: &[u8],
    keep: impl Fn(&T) -> bool,
) -> Result<Value, QueryError> {
    let mut items = Vec::new();
    for (key, bytes) in chain.ledger().records_with_prefix(prefix) {
        let id = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
        let value: T = borsh::from_slice(bytes).map_err(|e| QueryError::Failed(format!("record {id}: {e}")))?;
        if keep(&value) {
            let mut json = serde_json::to_value(&value).map_err(|e| QueryError::Failed(e.to_string()))?;
            json["id"] = Value::String(id);
            items.push(json);
        }
    }
    Ok(Value::Array(items))
}

/// An SKU, its open bids and locks, and its recent prices.
fn book(chain: &super::chain::ChainRuntime, sku: &str) -> Result<Value, QueryError> {
    let bytes = chain
        .ledger()
        .record(&[market::SKU_PREFIX, sku.as_bytes()].concat())
        .ok_or_else(|| QueryError::NotFound(format!("no SKU \"{sku}\" on chain {}", chain.id())))?;
    let record: market::Sku = borsh::from_slice(bytes).map_err(|e| QueryError::Failed(e.to_string()))?;
    let bid_prefix = [market::BID_PREFIX, sku.as_bytes(), b"/"].concat();
    let bids = listing(chain, &bid_prefix, |_: &market::Bid| true)?;
    let locks = listing(chain, market::LOCK_PREFIX, |lock: &market::Lock| lock.sku == sku)?;
    Ok(json!({ "sku": sku, "record": record, "bids": bids, "locks": locks, "recent_prices": record.recent_prices }))
}
