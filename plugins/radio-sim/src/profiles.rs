//! Describe each simulated radio technology by its published link figures.
//!
//! Air time is modelled as `bits / bitrate` of the bytes on the air, which is what the
//! duty-cycle budget is charged with. Sources, per technology:
//!
//! - **LoRa, EU868, 125 kHz**: LoRaWAN Regional Parameters (RP002-1.0.x), EU863-870
//!   data rates DR0..DR5 = SF12..SF7 with bit rates 250, 440, 980, 1760, 3125 and
//!   5470 bit/s, and the maximum application payload N = 51 (DR0–DR2), 115 (DR3) and
//!   222 bytes (DR4–DR5). Duty cycle 1 % in the g1 sub-band (ETSI EN 300 220-2,
//!   868.0–868.6 MHz), measured over one hour. Loss 10 %: field measurements of LoRa
//!   report packet delivery of roughly 80–95 % at a few km (Petäjäjärvi et al., "On the
//!   coverage of LPWANs", ITST 2015). Latency: a class A uplink is heard once its air
//!   time is over; 100 ms stands for gateway and backhaul.
//! - **BLE**: Bluetooth Core 4.2/5.x, LE 1M PHY at 1 Mbit/s; an ATT MTU of 247 bytes
//!   (data length extension) leaves 244 bytes of attribute value per notification.
//!   Connection intervals run from 7.5 ms to 4 s; 30 ms is typical. No duty-cycle
//!   limit at 2.4 GHz (ETSI EN 300 328 uses listen-before-talk or adaptivity instead).
//! - **ZigBee**: IEEE 802.15.4 O-QPSK at 2.4 GHz, 250 kbit/s, 127-byte PHY frames; after
//!   the MAC, NWK and APS headers with network security about 82 bytes of application
//!   payload remain. 15 ms for one hop including CSMA-CA back-off.
//! - **NB-IoT**: 3GPP Rel-13 Cat-NB1, uplink peak of about 66 kbit/s (multi-tone), PDCP
//!   SDUs of up to 1600 bytes (3GPP TS 36.323); licensed spectrum, no duty-cycle limit.
//!   Latency 2 s: 3GPP's target for exception reports is under 10 s, typical
//!   measurements are 1.5–3 s in normal coverage.
//! - **WiFi**: IEEE 802.11n, 20 MHz, one stream, MCS7 with short guard interval:
//!   72.2 Mbit/s; IP MTU 1500 bytes; a few ms of latency on a quiet channel.
//!
//! Receiver sensitivity, which bounds the RSSI a frame can arrive with: LoRa at
//! 125 kHz per the Semtech SX1276 datasheet (SF7 −123 … SF12 −136 dBm); BLE −96 dBm
//! (Nordic nRF52832, 1 Mbit/s); ZigBee −97 dBm (TI CC2530; 802.15.4 itself requires
//! −85 dBm); NB-IoT about −108 dBm (3GPP TS 36.101 reference sensitivity, before
//! repetitions); WiFi −64 dBm (IEEE 802.11 minimum sensitivity for MCS7 at 20 MHz).

/// The figures of one radio technology.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Profile {
    /// Name used in the config and reported as the technology.
    pub name: &'static str,
    /// Largest payload of one frame on the air.
    pub mtu_bytes: u32,
    /// Raw link rate.
    pub bitrate_bps: u64,
    /// One-way latency besides the air time.
    pub latency_ms: u64,
    /// Share of frames lost on the air, in thousandths.
    pub loss_permille: u32,
    /// Allowed share of air time, in thousandths (1000 = unrestricted).
    pub duty_cycle_permille: u32,
    /// Weakest signal the receiver decodes.
    pub sensitivity_dbm: i32,
}

const fn lora(name: &'static str, mtu_bytes: u32, bitrate_bps: u64, sensitivity_dbm: i32) -> Profile {
    Profile {
        name,
        mtu_bytes,
        bitrate_bps,
        latency_ms: 100,
        loss_permille: 100,
        duty_cycle_permille: 10,
        sensitivity_dbm,
    }
}

/// Every profile the simulator knows.
pub const PROFILES: [Profile; 10] = [
    lora("lora-sf7", 222, 5_470, -123),
    lora("lora-sf8", 222, 3_125, -126),
    lora("lora-sf9", 115, 1_760, -129),
    lora("lora-sf10", 51, 980, -132),
    lora("lora-sf11", 51, 440, -133),
    lora("lora-sf12", 51, 250, -136),
    Profile {
        name: "ble",
        mtu_bytes: 244,
        bitrate_bps: 1_000_000,
        latency_ms: 30,
        sensitivity_dbm: -96,
        loss_permille: 10,
        duty_cycle_permille: 1000,
    },
    Profile {
        name: "zigbee",
        mtu_bytes: 82,
        bitrate_bps: 250_000,
        latency_ms: 15,
        sensitivity_dbm: -97,
        loss_permille: 20,
        duty_cycle_permille: 1000,
    },
    Profile {
        name: "nb-iot",
        mtu_bytes: 1600,
        bitrate_bps: 66_000,
        latency_ms: 2_000,
        sensitivity_dbm: -108,
        loss_permille: 10,
        duty_cycle_permille: 1000,
    },
    Profile {
        name: "wifi",
        mtu_bytes: 1500,
        bitrate_bps: 72_200_000,
        latency_ms: 5,
        sensitivity_dbm: -64,
        loss_permille: 5,
        duty_cycle_permille: 1000,
    },
];

/// The profile named `name`.
pub fn profile(name: &str) -> Option<Profile> {
    PROFILES.iter().copied().find(|p| p.name == name)
}

/// The profile names, for error messages.
pub fn names() -> Vec<&'static str> {
    PROFILES.iter().map(|p| p.name).collect()
}

impl Profile {
    /// Air time of `bytes` on this link, in microseconds (rounded up).
    pub fn airtime_us(&self, bytes: usize) -> u64 {
        (bytes as u64 * 8 * 1_000_000).div_ceil(self.bitrate_bps.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lora_airtime_follows_the_bitrate() {
        let sf12 = profile("lora-sf12").unwrap();
        assert_eq!(sf12.airtime_us(51), 1_632_000);
        assert_eq!(profile("lora-sf7").unwrap().airtime_us(222), 324_681);
        assert!(profile("lora-sf13").is_none());
        assert_eq!(names().len(), PROFILES.len());
    }
}
