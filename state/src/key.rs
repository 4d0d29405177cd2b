//! The state key layout and key groups.
//!
//! Every state key starts with its key group as two big-endian bytes, then a
//! fixed-width namespace (for example a window end as eight big-endian bytes
//! with the sign bit flipped, so that byte order is time order), then the
//! operator's key bytes (arrow-row encoded by the engine). The namespace
//! comes before the variable-length key so it can be read without parsing
//! the key. Key groups are the unit in which state moves
//! when a job's parallelism changes, as in Flink: a job has a fixed maximum
//! parallelism (the number of key groups) and each subtask owns a contiguous
//! range of them.

/// Index of a key group, below the job's maximum parallelism.
pub type KeyGroup = u16;

/// Number of key groups when a job does not choose one (Flink uses 128 as its
/// smallest default; we pick a larger value so rescaling up to 1024 subtasks
/// needs no state rewrite).
pub const DEFAULT_MAX_PARALLELISM: u16 = 1024;

/// The key group of a key whose 64-bit hash is `hash`.
pub fn key_group_for_hash(hash: u64, max_parallelism: u16) -> KeyGroup {
    // Mix the high bits in: hash functions often vary most there, and the
    // modulo alone would only look at the low bits.
    let mixed = hash ^ (hash >> 32);
    (mixed % u64::from(max_parallelism.max(1))) as KeyGroup
}

/// The subtask that owns `key_group` when `parallelism` subtasks share
/// `max_parallelism` key groups (contiguous ranges, as in Flink).
pub fn subtask_for_key_group(
    key_group: KeyGroup,
    parallelism: usize,
    max_parallelism: u16,
) -> usize {
    usize::from(key_group) * parallelism / usize::from(max_parallelism.max(1))
}

/// The key groups owned by `subtask` out of `parallelism`.
pub fn key_group_range(
    subtask: usize,
    parallelism: usize,
    max_parallelism: u16,
) -> std::ops::Range<u32> {
    let max = u32::from(max_parallelism);
    let p = parallelism.max(1) as u32;
    let s = subtask as u32;
    // The smallest key group g with g * p / max >= s is ceil(s * max / p).
    let start = (s * max).div_ceil(p);
    let end = ((s + 1) * max).div_ceil(p);
    start..end
}

/// Builds a state key: key group, namespace, key bytes.
pub fn encode_key(key_group: KeyGroup, namespace: &[u8], key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + namespace.len() + key.len());
    out.extend_from_slice(&key_group.to_be_bytes());
    out.extend_from_slice(namespace);
    out.extend_from_slice(key);
    out
}

/// Encodes a timestamp so that byte order equals numeric order.
pub fn encode_time(ts: i64) -> [u8; 8] {
    ((ts as u64) ^ (1u64 << 63)).to_be_bytes()
}

/// Inverse of [`encode_time`].
pub fn decode_time(bytes: [u8; 8]) -> i64 {
    (u64::from_be_bytes(bytes) ^ (1u64 << 63)) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_group_ranges_partition_all_groups() {
        for parallelism in [1usize, 2, 3, 4, 7, 16] {
            let mut next = 0u32;
            for s in 0..parallelism {
                let r = key_group_range(s, parallelism, 128);
                assert_eq!(r.start, next, "ranges must be contiguous");
                for g in r.clone() {
                    assert_eq!(subtask_for_key_group(g as u16, parallelism, 128), s);
                }
                next = r.end;
            }
            assert_eq!(next, 128);
        }
    }

    #[test]
    fn time_encoding_preserves_order() {
        let times = [i64::MIN, -5, -1, 0, 1, 1_700_000_000_000, i64::MAX];
        for w in times.windows(2) {
            assert!(encode_time(w[0]) < encode_time(w[1]));
            assert_eq!(decode_time(encode_time(w[0])), w[0]);
        }
    }
}
