//! The fleet model: every device's fixed traits and every reading's
//! values, each a hash of `(seed, device, tick)`.

use std::sync::Arc;

use super::IotConfig;

// Salts separate the independent draws made from one (seed, device, tick).
pub(super) const SALT_REGION: u64 = 1;
pub(super) const SALT_OFFSET: u64 = 2;
pub(super) const SALT_DEVICE_TEMP: u64 = 3;
pub(super) const SALT_DEVICE_HUMIDITY: u64 = 4;
pub(super) const SALT_TEMP_NOISE: u64 = 5;
pub(super) const SALT_HUMIDITY_NOISE: u64 = 6;
pub(super) const SALT_STATUS: u64 = 7;
pub(super) const SALT_MISSING: u64 = 8;
pub(super) const SALT_BAD_TEMP: u64 = 9;
pub(super) const SALT_MALFORMED: u64 = 10;
pub(super) const SALT_LATE: u64 = 11;
pub(super) const SALT_GARBAGE: u64 = 12;
pub(super) const SALT_OUTAGE: u64 = 13;

/// True when `device` is silent during the hour that holds `tick`: a
/// device that fails to report for a while, as fleets do.
pub(super) fn in_outage(config: &IotConfig, device: u64, tick: u64) -> bool {
    if config.outage_rate <= 0.0 {
        return false;
    }
    let hour = tick.saturating_mul(config.interval_ms) / 3_600_000;
    unit(hash(config.seed, device, hour, SALT_OUTAGE)) < config.outage_rate
}

/// SplitMix64's finalizer: a cheap, well-mixed 64-bit hash step.
pub(super) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

pub(super) fn hash(seed: u64, device: u64, tick: u64, salt: u64) -> u64 {
    mix(mix(mix(mix(seed) ^ salt) ^ device) ^ tick)
}

/// A uniform draw in `[0, 1)`.
pub(super) fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// Region name and its climate (mean °F, mean relative humidity %).
pub(super) fn region(index: u64) -> (String, f64, f64) {
    match index {
        0 => ("north".into(), 54.0, 62.0),
        1 => ("south".into(), 80.0, 70.0),
        2 => ("east".into(), 66.0, 55.0),
        3 => ("west".into(), 72.0, 35.0),
        4 => ("central".into(), 64.0, 50.0),
        i => (
            format!("region-{}", i + 1),
            55.0 + ((i * 7) % 25) as f64,
            35.0 + ((i * 11) % 40) as f64,
        ),
    }
}

/// How much warmer a device runs than its region: a few degrees either way,
/// and about one device in twenty sits next to machinery and runs hot, so
/// that threshold alerts have something to find at any time of day.
pub(super) fn device_temperature_offset(h: u64) -> f64 {
    let u = unit(h);
    if u < 0.05 {
        15.0 + u * 100.0
    } else {
        (u - 0.5) * 12.0
    }
}

/// What stays fixed for a device across readings.
#[derive(Debug, Clone)]
pub(super) struct Device {
    pub(super) id: u64,
    pub(super) name: String,
    pub(super) region: Arc<str>,
    /// Offset of its reports within each interval, so a fleet does not report
    /// all at once.
    pub(super) offset_ms: u64,
    pub(super) base_temperature: f64,
    pub(super) base_humidity: f64,
}

impl Device {
    pub(super) fn new(config: &IotConfig, id: u64) -> Self {
        let seed = config.seed;
        let (region, temp, humidity) = region(hash(seed, id, 0, SALT_REGION) % config.regions);
        Self {
            id,
            name: format!("device-{id:04}"),
            region: region.into(),
            offset_ms: hash(seed, id, 0, SALT_OFFSET) % config.interval_ms,
            base_temperature: temp + device_temperature_offset(hash(seed, id, 0, SALT_DEVICE_TEMP)),
            base_humidity: humidity + (unit(hash(seed, id, 0, SALT_DEVICE_HUMIDITY)) - 0.5) * 20.0,
        }
    }
}

/// One generated reading.
#[derive(Debug)]
pub(super) struct Reading {
    pub(super) event_time: i64,
    pub(super) missing_device: bool,
    pub(super) temperature: Option<f64>,
    pub(super) humidity: f64,
    pub(super) status: &'static str,
    pub(super) malformed: bool,
}

pub(super) const GARBAGE_STATUS: [&str; 6] =
    ["act!ve", "#ERR", "???", "IDL3", "0xFF", "stat\u{fffd}s"];

pub(super) fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

pub(super) fn reading(config: &IotConfig, device: &Device, tick: u64) -> Reading {
    let seed = config.seed;
    let d = device.id;
    let on_time = config.start_ms.saturating_add(
        i64::try_from(
            tick.saturating_mul(config.interval_ms)
                .saturating_add(device.offset_ms),
        )
        .unwrap_or(i64::MAX),
    );
    // A daily cycle peaking mid-afternoon keeps windowed averages interesting.
    let day_fraction = on_time.rem_euclid(86_400_000) as f64 / 86_400_000.0;
    let daily = (std::f64::consts::TAU * (day_fraction - 0.375)).sin();
    let temp_noise = (unit(hash(seed, d, tick, SALT_TEMP_NOISE)) - 0.5) * 6.0;
    let temperature =
        round1((device.base_temperature + 6.0 * daily + temp_noise).clamp(30.0, 115.0));
    let humidity_noise = (unit(hash(seed, d, tick, SALT_HUMIDITY_NOISE)) - 0.5) * 10.0;
    let humidity = round1((device.base_humidity - 10.0 * daily + humidity_noise).clamp(3.0, 100.0));
    let s = unit(hash(seed, d, tick, SALT_STATUS));
    let status = if s < 0.03 {
        "faulty"
    } else if s < 0.15 {
        "idle"
    } else {
        "active"
    };
    let missing_device = unit(hash(seed, d, tick, SALT_MISSING)) < config.missing_rate;
    let bad_temperature = unit(hash(seed, d, tick, SALT_BAD_TEMP)) < config.bad_temperature_rate;
    let malformed = unit(hash(seed, d, tick, SALT_MALFORMED)) < config.malformed_rate;
    let late = unit(hash(seed, d, tick, SALT_LATE)) < config.late_rate;
    let garbage = (hash(seed, d, tick, SALT_GARBAGE) % GARBAGE_STATUS.len() as u64) as usize;
    Reading {
        event_time: if late {
            on_time.saturating_sub(config.late_ms)
        } else {
            on_time
        },
        missing_device,
        temperature: if malformed {
            None
        } else if bad_temperature {
            Some(9999.0)
        } else {
            Some(temperature)
        },
        humidity,
        status: if malformed {
            GARBAGE_STATUS.get(garbage).copied().unwrap_or("???")
        } else {
            status
        },
        malformed,
    }
}

/// The reading as the JSON a device would send; cut short when malformed.
pub(super) fn raw_json(config: &IotConfig, device: &Device, tick: u64, r: &Reading) -> String {
    let time = chrono::DateTime::from_timestamp_millis(r.event_time)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f").to_string())
        .unwrap_or_else(|| r.event_time.to_string());
    let device_id = if r.missing_device {
        "null".to_string()
    } else {
        format!("\"{}\"", device.name)
    };
    let temperature = match r.temperature {
        Some(t) => format!("{t:.1}"),
        // A malformed reading still carried some temperature text; the
        // payload is cut before it is parseable anyway.
        None => "7?.?".to_string(),
    };
    let full = format!(
        "{{\"device_id\":{device_id},\"region\":\"{}\",\"event_time\":\"{time}\",\
         \"temperature\":{temperature},\"humidity\":{:.1},\"status\":\"{}\"}}",
        device.region, r.humidity, r.status
    );
    if !r.malformed {
        return full;
    }
    // Any strict prefix of a JSON object lacks its closing brace, so the cut
    // text never parses.
    let len = full.len();
    let cut = len / 3 + (hash(config.seed, device.id, tick, SALT_GARBAGE) as usize) % (len / 2);
    let mut cut = cut.min(len - 1);
    while !full.is_char_boundary(cut) {
        cut -= 1;
    }
    full[..cut].to_string()
}
