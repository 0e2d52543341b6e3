//! The root module every plugin library exports, and the machinery behind
//! [`export_plugin!`](crate::export_plugin). Vendors use the macro, not this module.

use crate::{
    chain::{ChainType, ChainTypeAdapter, ChainTypeBox, ChainTypeFfi_TO},
    config::{self, ConfigError},
    consensus::{ConsensusAdapter, ConsensusBox, ConsensusEngine, ConsensusFfi_TO, SignedBytes},
    error::PluginError,
    host::{Host, HostBox},
    market::{MarketAdapter, MarketBox, MarketFfi_TO, MarketPolicy},
    radio::{RadioAdapter, RadioBox, RadioDriver, RadioFfi_TO},
};
use abi_stable::{
    StableAbi, declare_root_module_statics,
    library::RootModule,
    package_version_strings,
    sabi_trait::TD_Opaque,
    sabi_types::VersionStrings,
    std_types::{RBox, RResult, RSlice, RStr, RString, RVec},
};
use std::{any::Any, fmt, panic::AssertUnwindSafe};

/// The four kinds of plugin.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PluginKind {
    /// A consensus engine.
    Consensus = 1,
    /// A chain type.
    ChainType = 2,
    /// A radio driver.
    Radio = 3,
    /// A market policy.
    Market = 4,
}

impl PluginKind {
    /// All kinds, in order.
    pub const ALL: [PluginKind; 4] = [Self::Consensus, Self::ChainType, Self::Radio, Self::Market];

    /// The kind's bit in [`PluginModule::kinds`].
    pub const fn bit(self) -> u32 {
        1 << (self as u8)
    }

    /// The name used in `plugin.toml` and manifests.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Consensus => "consensus",
            Self::ChainType => "chain-type",
            Self::Radio => "radio",
            Self::Market => "market",
        }
    }

    /// Parses a name used in `plugin.toml`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.name() == name)
    }

    /// The kinds whose bits are set in `mask`.
    pub fn from_mask(mask: u32) -> Vec<Self> {
        Self::ALL.into_iter().filter(|kind| mask & kind.bit() != 0).collect()
    }
}

impl fmt::Display for PluginKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a plugin says about itself.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct PluginInfo {
    /// Plugin name, e.g. `consensus-poa`.
    pub name: RString,
    /// Plugin version (semver).
    pub version: RString,
    /// Vendor name.
    pub vendor: RString,
    /// One line describing the plugin.
    pub description: RString,
    /// Bit set of [`PluginKind::bit`].
    pub kinds: u32,
    /// [`crate::ABI_VERSION`] the plugin was built with.
    pub abi_version: u32,
}

/// The root module of a plugin library.
///
/// `abi_version` and `kinds` are plain data, so the host checks them without running
/// any plugin code. Constructors of kinds the library does not provide answer
/// [`PluginError::WrongKind`].
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModuleRef)))]
#[sabi(missing_field(panic))]
pub struct PluginModule {
    /// [`crate::ABI_VERSION`] of the SDK the library was built with.
    pub abi_version: u32,
    /// Bit set of the kinds the library provides.
    pub kinds: u32,
    /// Describes the plugin.
    pub describe: extern "C" fn() -> RResult<PluginInfo, PluginError>,
    /// Validates a JSON config for one kind.
    pub check_config: extern "C" fn(PluginKind, RStr<'_>) -> RResult<(), PluginError>,
    /// Builds a consensus engine from a JSON config.
    pub new_consensus: extern "C" fn(RStr<'_>, HostBox) -> RResult<ConsensusBox, PluginError>,
    /// Builds a chain type from a JSON config.
    pub new_chain_type: extern "C" fn(RStr<'_>, HostBox) -> RResult<ChainTypeBox, PluginError>,
    /// Builds a radio driver from a JSON config.
    pub new_radio: extern "C" fn(RStr<'_>, HostBox) -> RResult<RadioBox, PluginError>,
    /// Builds a market policy from a JSON config.
    #[sabi(last_prefix_field)]
    pub new_market: extern "C" fn(RStr<'_>, HostBox) -> RResult<MarketBox, PluginError>,
    /// Lists the signatures a consensus message carries
    /// ([`ConsensusEngine::message_signatures`]); empty for a library without a consensus
    /// engine. Added in ABI 9: a library of an older SDK lacks it, and its accessor
    /// answers `None`.
    #[sabi(missing_field(option))]
    pub consensus_message_signatures: extern "C" fn(RSlice<'_, u8>, HostBox) -> RVec<SignedBytes>,
}

/// The type of [`PluginModule::consensus_message_signatures`]: a plain function of the
/// library, callable from any thread.
pub type MessageSignatures = extern "C" fn(RSlice<'_, u8>, HostBox) -> RVec<SignedBytes>;

impl RootModule for PluginModuleRef {
    declare_root_module_statics! {PluginModuleRef}
    const BASE_NAME: &'static str = "nest_plugin";
    const NAME: &'static str = "nest_plugin";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}

/// Runs `f`, turning a panic into [`PluginError::Panicked`].
pub fn guard<T>(f: impl FnOnce() -> Result<T, PluginError>) -> RResult<T, PluginError> {
    match std::panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result.into(),
        Err(payload) => RResult::RErr(PluginError::Panicked { message: panic_message(&payload).into() }),
    }
}

pub(crate) fn panic_message(payload: &Box<dyn Any + Send>) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "non-text panic payload".to_string()
    }
}

fn parse_checked<C: serde::de::DeserializeOwned>(
    json: RStr<'_>,
    check: fn(&C) -> Result<(), ConfigError>,
) -> Result<C, PluginError> {
    let config: C = config::parse(json.as_str())?;
    check(&config)?;
    Ok(config)
}

/// Validates a consensus engine's config.
pub fn check_consensus<E: ConsensusEngine>(json: RStr<'_>) -> Result<(), PluginError> {
    parse_checked::<E::Config>(json, E::check_config).map(drop)
}

/// Validates a chain type's config.
pub fn check_chain_type<C: ChainType>(json: RStr<'_>) -> Result<(), PluginError> {
    parse_checked::<C::Config>(json, C::check_config).map(drop)
}

/// Validates a radio driver's config.
pub fn check_radio<R: RadioDriver>(json: RStr<'_>) -> Result<(), PluginError> {
    parse_checked::<R::Config>(json, R::check_config).map(drop)
}

/// Validates a market policy's config.
pub fn check_market<M: MarketPolicy>(json: RStr<'_>) -> Result<(), PluginError> {
    parse_checked::<M::Config>(json, M::check_config).map(drop)
}

/// Builds a consensus engine instance behind the boundary.
pub extern "C" fn new_consensus<E: ConsensusEngine>(
    json: RStr<'_>,
    host: HostBox,
) -> RResult<ConsensusBox, PluginError> {
    guard(|| {
        let engine = E::new(parse_checked(json, E::check_config)?, Host::from_box(host))?;
        Ok(ConsensusFfi_TO::from_ptr(RBox::new(ConsensusAdapter(engine)), TD_Opaque))
    })
}

/// Builds a chain type instance behind the boundary.
pub extern "C" fn new_chain_type<C: ChainType>(json: RStr<'_>, host: HostBox) -> RResult<ChainTypeBox, PluginError> {
    guard(|| {
        let chain = C::new(parse_checked(json, C::check_config)?, Host::from_box(host))?;
        Ok(ChainTypeFfi_TO::from_ptr(RBox::new(ChainTypeAdapter(chain)), TD_Opaque))
    })
}

/// Builds a radio driver instance behind the boundary.
pub extern "C" fn new_radio<R: RadioDriver>(json: RStr<'_>, host: HostBox) -> RResult<RadioBox, PluginError> {
    guard(|| {
        let radio = R::new(parse_checked(json, R::check_config)?, Host::from_box(host))?;
        Ok(RadioFfi_TO::from_ptr(RBox::new(RadioAdapter(radio)), TD_Opaque))
    })
}

/// Builds a market policy instance behind the boundary.
pub extern "C" fn new_market<M: MarketPolicy>(json: RStr<'_>, host: HostBox) -> RResult<MarketBox, PluginError> {
    guard(|| {
        let market = M::new(parse_checked(json, M::check_config)?, Host::from_box(host))?;
        Ok(MarketFfi_TO::from_ptr(RBox::new(MarketAdapter(market)), TD_Opaque))
    })
}

/// Lists the signatures of a consensus message for the host to verify off the loop;
/// a panic lists none (the engine then verifies on the loop, and judges the message).
pub extern "C" fn consensus_message_signatures<E: ConsensusEngine>(
    message: RSlice<'_, u8>,
    host: HostBox,
) -> RVec<SignedBytes> {
    let host = Host::from_box(host);
    std::panic::catch_unwind(AssertUnwindSafe(|| E::message_signatures(message.as_slice(), &host)))
        .map(RVec::from)
        .unwrap_or_default()
}

/// Lists no signatures: the library has no consensus engine.
pub extern "C" fn no_message_signatures(_: RSlice<'_, u8>, _: HostBox) -> RVec<SignedBytes> {
    RVec::new()
}

/// Answers [`PluginError::WrongKind`] for a kind the library does not provide.
pub extern "C" fn absent_consensus(_: RStr<'_>, _: HostBox) -> RResult<ConsensusBox, PluginError> {
    RResult::RErr(PluginError::WrongKind { kind: PluginKind::Consensus })
}

/// Answers [`PluginError::WrongKind`] for a kind the library does not provide.
pub extern "C" fn absent_chain_type(_: RStr<'_>, _: HostBox) -> RResult<ChainTypeBox, PluginError> {
    RResult::RErr(PluginError::WrongKind { kind: PluginKind::ChainType })
}

/// Answers [`PluginError::WrongKind`] for a kind the library does not provide.
pub extern "C" fn absent_radio(_: RStr<'_>, _: HostBox) -> RResult<RadioBox, PluginError> {
    RResult::RErr(PluginError::WrongKind { kind: PluginKind::Radio })
}

/// Answers [`PluginError::WrongKind`] for a kind the library does not provide.
pub extern "C" fn absent_market(_: RStr<'_>, _: HostBox) -> RResult<MarketBox, PluginError> {
    RResult::RErr(PluginError::WrongKind { kind: PluginKind::Market })
}

/// Exports a plugin library: builds its root module from the types that implement the
/// plugin traits. One line per library:
///
/// ```ignore
/// nest_sdk::export_plugin! {
///     name: "consensus-poa",
///     vendor: "Nest",
///     description: "Proof of authority: a fixed list of authorities signs blocks in turn.",
///     consensus: PoaEngine,
/// }
/// ```
///
/// Any of `consensus:`, `chain_type:`, `radio:`, `market:` may be given, in that order.
/// The version is the crate's version. Every entry point catches panics.
#[macro_export]
macro_rules! export_plugin {
    (
        name: $name:expr,
        vendor: $vendor:expr,
        description: $description:expr,
        $(consensus: $consensus:ty,)?
        $(chain_type: $chain_type:ty,)?
        $(radio: $radio:ty,)?
        $(market: $market:ty,)?
    ) => {
        const __NEST_KINDS: u32 = 0
            $(| { let _ = ::core::marker::PhantomData::<$consensus>; $crate::PluginKind::Consensus.bit() })?
            $(| { let _ = ::core::marker::PhantomData::<$chain_type>; $crate::PluginKind::ChainType.bit() })?
            $(| { let _ = ::core::marker::PhantomData::<$radio>; $crate::PluginKind::Radio.bit() })?
            $(| { let _ = ::core::marker::PhantomData::<$market>; $crate::PluginKind::Market.bit() })?;

        extern "C" fn __nest_describe() -> $crate::RResult<$crate::PluginInfo, $crate::PluginError> {
            $crate::export::guard(|| {
                Ok($crate::PluginInfo {
                    name: $crate::RString::from($name),
                    version: $crate::RString::from(env!("CARGO_PKG_VERSION")),
                    vendor: $crate::RString::from($vendor),
                    description: $crate::RString::from($description),
                    kinds: __NEST_KINDS,
                    abi_version: $crate::ABI_VERSION,
                })
            })
        }

        extern "C" fn __nest_check_config(
            kind: $crate::PluginKind,
            config: $crate::RStr<'_>,
        ) -> $crate::RResult<(), $crate::PluginError> {
            $crate::export::guard(|| match kind {
                $($crate::PluginKind::Consensus => $crate::export::check_consensus::<$consensus>(config),)?
                $($crate::PluginKind::ChainType => $crate::export::check_chain_type::<$chain_type>(config),)?
                $($crate::PluginKind::Radio => $crate::export::check_radio::<$radio>(config),)?
                $($crate::PluginKind::Market => $crate::export::check_market::<$market>(config),)?
                #[allow(unreachable_patterns)]
                other => Err($crate::PluginError::WrongKind { kind: other }),
            })
        }

        /// The plugin's root module, as the host loads it.
        pub fn __nest_root_module() -> $crate::PluginModuleRef {
            use $crate::abi_stable::prefix_type::PrefixTypeTrait;
            $crate::PluginModule {
                abi_version: $crate::ABI_VERSION,
                kinds: __NEST_KINDS,
                describe: __nest_describe,
                check_config: __nest_check_config,
                new_consensus: $crate::__nest_constructor!(consensus $(, $consensus)?),
                new_chain_type: $crate::__nest_constructor!(chain_type $(, $chain_type)?),
                new_radio: $crate::__nest_constructor!(radio $(, $radio)?),
                new_market: $crate::__nest_constructor!(market $(, $market)?),
                consensus_message_signatures: $crate::__nest_constructor!(signatures $(, $consensus)?),
            }
            .leak_into_prefix()
        }

        /// The library header abi_stable looks up when the host opens this plugin.
        ///
        /// It lives in a module of its own so that its object file is only linked from
        /// the rlib when something refers to it: tests and simulators can link several
        /// plugin rlibs into one binary without duplicate symbols.
        #[doc(hidden)]
        pub mod __nest_plugin_export {
            /// The header (its name is abi_stable 0.11's `ROOT_MODULE_LOADER_NAME`).
            #[unsafe(no_mangle)]
            #[allow(non_upper_case_globals)]
            pub static _1as_0lib_1header_0root_bmodule_bloader: $crate::abi_stable::library::LibHeader = {
                extern "C" fn __nest_erased_module() -> $crate::abi_stable::library::RootModuleResult {
                    $crate::abi_stable::library::__call_root_module_loader(super::__nest_root_module)
                }
                // SAFETY: the constructor returns the SDK's `PluginModuleRef`, the type named
                // here, and abi_stable checks its layout against the host's before use.
                unsafe {
                    $crate::abi_stable::library::LibHeader::from_constructor::<$crate::PluginModuleRef>(
                        __nest_erased_module,
                        $crate::abi_stable::library::CheckTypeLayout::Yes,
                    )
                }
            };
        }
    };
}

/// Picks the constructor for one kind in [`export_plugin!`](crate::export_plugin).
#[doc(hidden)]
#[macro_export]
macro_rules! __nest_constructor {
    (signatures) => {
        $crate::export::no_message_signatures
    };
    (signatures, $t:ty) => {
        $crate::export::consensus_message_signatures::<$t>
    };
    (consensus) => {
        $crate::export::absent_consensus
    };
    (consensus, $t:ty) => {
        $crate::export::new_consensus::<$t>
    };
    (chain_type) => {
        $crate::export::absent_chain_type
    };
    (chain_type, $t:ty) => {
        $crate::export::new_chain_type::<$t>
    };
    (radio) => {
        $crate::export::absent_radio
    };
    (radio, $t:ty) => {
        $crate::export::new_radio::<$t>
    };
    (market) => {
        $crate::export::absent_market
    };
    (market, $t:ty) => {
        $crate::export::new_market::<$t>
    };
}

/// Name of the symbol abi_stable 0.11 looks up in a library (checked by a test).
#[doc(hidden)]
pub const ROOT_MODULE_SYMBOL: &str = "_1as_0lib_1header_0root_bmodule_bloader";

#[cfg(test)]
mod tests {
    #[test]
    fn root_module_symbol_matches_abi_stable() {
        assert_eq!(super::ROOT_MODULE_SYMBOL, abi_stable::library::ROOT_MODULE_LOADER_NAME);
    }
}
