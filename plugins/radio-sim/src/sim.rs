//! Run simulated devices as a sans-IO state machine driven by a simulated clock.
//!
//! Each device takes a reading every `reading_interval_ms`, wraps it in a signed
//! envelope, fragments it to the profile's MTU and puts the fragments on the air if its
//! duty-cycle budget covers their air time; otherwise it skips that reading. The budget
//! is a token bucket of air time that refills at `duty_cycle_permille` of the elapsed
//! time, holding at most the allowance of one `duty_cycle_window_ms` (ETSI measures
//! the 1 % over one hour). Each fragment is then lost with the profile's probability,
//! drawn from a seeded generator, so a run is reproducible.

use crate::{identity::SimIdentity, profiles::Profile};
use nest_sdk::{
    device::{DeviceEnvelope, KIND_READING},
    fragment,
};

/// Weakest mean signal of a device above the receiver's sensitivity.
const RSSI_MARGIN_MIN_DB: i32 = 3;
/// Spread of the devices' mean signals above that.
const RSSI_SPREAD_DB: u64 = 38;
/// Per-frame fading around a device's mean signal: ±2 dB.
const RSSI_JITTER_DB: u64 = 5;

/// What the simulation needs besides the profile.
#[derive(Clone, Debug)]
pub struct SimSettings {
    /// The radio's figures (with any config overrides applied).
    pub profile: Profile,
    /// Devices to simulate.
    pub devices: u32,
    /// Time between two readings of one device.
    pub reading_interval_ms: u64,
    /// Bytes of each reading's payload.
    pub payload_bytes: u32,
    /// Seed of the loss and phase generator.
    pub seed: u64,
    /// Prefix of the hardware ids (see [`crate::identity`]).
    pub hardware_id_prefix: String,
    /// Seed of the device keys (see [`crate::identity`]).
    pub key_seed: String,
    /// Window over which the duty cycle is allowed.
    pub duty_cycle_window_ms: u64,
    /// Unix time (ms) at which the simulated clock reads zero; stamped into envelopes.
    pub epoch_ms: u64,
}

/// One fragment on its way to the gateway.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmission {
    /// The sending device's hardware id.
    pub link_address: String,
    /// Bytes on the air.
    pub bytes: Vec<u8>,
    /// Simulated time at which the gateway has it.
    pub deliver_at_ms: u64,
    /// Signal strength at the gateway.
    pub rssi_dbm: i32,
}

/// What the simulation did so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Readings sent on the air.
    pub readings_sent: u64,
    /// Readings skipped because the device's duty-cycle budget was spent.
    pub readings_skipped_duty_cycle: u64,
    /// Readings skipped because their envelope needs more fragments than one message holds.
    pub readings_skipped_too_large: u64,
    /// Fragments put on the air.
    pub fragments_sent: u64,
    /// Fragments lost on the air.
    pub fragments_lost: u64,
    /// Air time used by all devices, in microseconds.
    pub airtime_us: u64,
}

struct Device {
    identity: SimIdentity,
    /// The device's mean signal at the gateway (its distance, fixed per device).
    rssi_dbm: i32,
    next_reading_ms: u64,
    counter: u64,
    message_id: u16,
    budget_us: u64,
    budget_at_ms: u64,
}

/// The simulated devices of one radio.
pub struct Simulator {
    settings: SimSettings,
    devices: Vec<Device>,
    rng: SplitMix64,
    stats: SimStats,
}

impl Simulator {
    /// Derives the devices and spreads their first readings over one interval.
    pub fn new(settings: SimSettings) -> Self {
        let mut rng = SplitMix64(settings.seed);
        let interval_ms = settings.reading_interval_ms.max(1);
        let devices = (0..settings.devices)
            .map(|index| Device {
                identity: SimIdentity::derive(&settings.key_seed, &settings.hardware_id_prefix, index),
                // Between just above the receiver's sensitivity and 40 dB stronger.
                rssi_dbm: settings.profile.sensitivity_dbm + RSSI_MARGIN_MIN_DB + (rng.below(RSSI_SPREAD_DB) as i32),
                next_reading_ms: rng.next() % interval_ms,
                // A real device keeps its counter in flash; a simulated one has no storage,
                // so it starts from the wall clock (ms): a restarted simulation stays ahead
                // of every counter the chain has anchored, unless a device sent more than
                // one reading per millisecond.
                counter: settings.epoch_ms,
                message_id: 0,
                budget_us: 0,
                budget_at_ms: 0,
            })
            .collect();
        Self { settings, devices, rng, stats: SimStats::default() }
    }

    /// Counters so far.
    pub fn stats(&self) -> SimStats {
        self.stats
    }

    /// The devices' identities, in index order.
    pub fn identities(&self) -> impl Iterator<Item = &SimIdentity> {
        self.devices.iter().map(|d| &d.identity)
    }

    /// When the next reading falls due (simulated ms), if there are devices.
    pub fn next_reading_ms(&self) -> Option<u64> {
        self.devices.iter().map(|d| d.next_reading_ms).min()
    }

    /// Takes every reading due at or before `now_ms`; returns the fragments that survive the air.
    pub fn advance(&mut self, now_ms: u64) -> Vec<Transmission> {
        let mut out = Vec::new();
        for index in 0..self.devices.len() {
            while self.devices[index].next_reading_ms <= now_ms {
                let at_ms = self.devices[index].next_reading_ms;
                self.devices[index].next_reading_ms = at_ms.saturating_add(self.settings.reading_interval_ms.max(1));
                self.reading(index, at_ms, &mut out);
            }
        }
        out
    }

    fn reading(&mut self, index: usize, at_ms: u64, out: &mut Vec<Transmission>) {
        let profile = self.settings.profile;
        let payload = self.reading_payload();
        let device = &mut self.devices[index];
        let mut envelope = DeviceEnvelope::unsigned(
            device.identity.uid,
            device.counter + 1,
            self.settings.epoch_ms.saturating_add(at_ms),
            KIND_READING,
            payload,
        );
        device.identity.sign(&mut envelope);
        let Ok(fragments) = fragment(&envelope.encode(), profile.mtu_bytes, device.message_id) else {
            // The profile's MTU cannot carry the envelope; nothing goes on the air.
            self.stats.readings_skipped_too_large += 1;
            return;
        };
        let airtime_us: u64 = fragments.iter().map(|f| profile.airtime_us(f.len())).sum();
        if !Self::spend(&self.settings, device, at_ms, airtime_us) {
            self.stats.readings_skipped_duty_cycle += 1;
            return;
        }
        device.counter += 1;
        device.message_id = device.message_id.wrapping_add(1);
        self.stats.readings_sent += 1;
        self.stats.airtime_us += airtime_us;
        let link_address = device.identity.hardware_id.clone();
        let mut on_air_end_us = at_ms * 1000;
        for bytes in fragments {
            on_air_end_us += profile.airtime_us(bytes.len());
            self.stats.fragments_sent += 1;
            if self.rng.below(1000) < u64::from(profile.loss_permille) {
                self.stats.fragments_lost += 1;
                continue;
            }
            let deliver_at_ms = on_air_end_us.div_ceil(1000) + profile.latency_ms;
            let rssi_dbm = self.devices[index].rssi_dbm + self.rng.below(RSSI_JITTER_DB) as i32 - 2;
            out.push(Transmission { link_address: link_address.clone(), bytes, deliver_at_ms, rssi_dbm });
        }
    }

    /// Refills the device's air-time bucket up to `at_ms` and takes `airtime_us` if it is there.
    fn spend(settings: &SimSettings, device: &mut Device, at_ms: u64, airtime_us: u64) -> bool {
        let duty = u64::from(settings.profile.duty_cycle_permille);
        if duty >= 1000 {
            return true;
        }
        let elapsed_ms = at_ms.saturating_sub(device.budget_at_ms);
        let capacity_us = settings.duty_cycle_window_ms.saturating_mul(duty);
        device.budget_us = device.budget_us.saturating_add(elapsed_ms.saturating_mul(duty)).min(capacity_us);
        device.budget_at_ms = at_ms;
        if device.budget_us < airtime_us {
            return false;
        }
        device.budget_us -= airtime_us;
        true
    }

    fn reading_payload(&mut self) -> Vec<u8> {
        // A temperature in milli-°C and a humidity in ‰, then filler up to the size.
        let temperature_milli_c = 18_000 + (self.rng.next() % 8_000) as i32;
        let humidity_permille = 300 + (self.rng.next() % 400) as u16;
        let mut payload = Vec::with_capacity(self.settings.payload_bytes as usize);
        payload.extend_from_slice(&temperature_milli_c.to_le_bytes());
        payload.extend_from_slice(&humidity_permille.to_le_bytes());
        payload.resize(self.settings.payload_bytes as usize, 0);
        payload
    }
}

/// SplitMix64: small, seedable, good enough for loss draws.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profiles::profile;
    use nest_sdk::{Reassembler, Reassembly, ReassemblyLimits};

    fn settings(profile_name: &str, devices: u32, interval_ms: u64) -> SimSettings {
        SimSettings {
            profile: profile(profile_name).unwrap(),
            devices,
            reading_interval_ms: interval_ms,
            payload_bytes: 16,
            seed: 7,
            hardware_id_prefix: "sim-".into(),
            key_seed: "test".into(),
            duty_cycle_window_ms: 3_600_000,
            epoch_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn lossy_lora_stays_within_its_duty_cycle_for_an_hour() {
        // SF12, 51-byte MTU: a 134-byte envelope is 4 fragments, 6.5 s of air time,
        // while the device would send every 60 s: 1 % of an hour (36 s) allows about 5
        // readings per device after the first window's allowance builds up.
        let mut sim = Simulator::new(settings("lora-sf12", 3, 60_000));
        let hour_ms = 3_600_000;
        let mut delivered = Vec::new();
        let mut now = 0;
        while now <= 2 * hour_ms {
            delivered.extend(sim.advance(now));
            now += 1_000;
        }
        let stats = sim.stats();
        let allowed_us = 3 * (2 * hour_ms * 10); // 1 % of two hours, per device
        assert!(stats.airtime_us <= allowed_us, "{stats:?}");
        assert!(stats.readings_skipped_duty_cycle > stats.readings_sent, "{stats:?}");
        assert!(stats.fragments_lost > 0 && stats.fragments_lost < stats.fragments_sent / 3, "{stats:?}");
        assert_eq!(stats.fragments_sent - stats.fragments_lost, delivered.len() as u64);
        let mut reassembler = Reassembler::new(ReassemblyLimits::default());
        let complete = delivered
            .iter()
            .filter(|t| matches!(reassembler.push(&t.link_address, &t.bytes, t.deliver_at_ms), Reassembly::Complete(_)))
            .count() as u64;
        assert!(complete > 0 && complete <= stats.readings_sent, "{complete} of {stats:?}");
        assert!(delivered.iter().all(|t| t.bytes.len() <= 51));
        assert!(delivered.iter().all(|t| (-136..=-94).contains(&t.rssi_dbm)), "RSSI within the receiver's range");
    }

    #[test]
    fn unrestricted_profiles_send_every_reading_and_runs_repeat() {
        let run = || {
            let mut sim = Simulator::new(settings("wifi", 2, 1_000));
            let frames = sim.advance(10_000);
            (frames, sim.stats())
        };
        let (frames, stats) = run();
        assert_eq!(stats.readings_sent, 20);
        assert_eq!(stats.readings_skipped_duty_cycle, 0);
        assert_eq!(run().0, frames);
        let envelope = DeviceEnvelope::decode(&frames[0].bytes).unwrap();
        assert_eq!(envelope.kind, KIND_READING);
        assert_eq!(envelope.payload.len(), 16);
    }
}
