//! Choosing a partition for a record: Kafka's default partitioner (murmur2 of the key) and sticky
//! partitioning for records without a key.

use std::fmt;

use parking_lot::Mutex;

/// Chooses the partition of a record sent without an explicit partition.
///
/// Implementations must be cheap: this runs once per record.
///
/// # Examples
/// ```
/// use topiclog::Partitioner;
/// #[derive(Debug)]
/// struct ByFirstByte;
/// impl Partitioner for ByFirstByte {
///     fn partition(&self, _topic: &str, key: Option<&[u8]>, _value_len: usize, partitions: u32) -> u32 {
///         key.and_then(|k| k.first()).map_or(0, |b| u32::from(*b) % partitions)
///     }
/// }
/// assert_eq!(ByFirstByte.partition("t", Some(b"\x05"), 0, 4), 1);
/// ```
pub trait Partitioner: Send + Sync + fmt::Debug {
    /// The partition, in `0..partitions`, for a record with `key` and a value of `value_len`
    /// bytes. `partitions` is at least 1.
    fn partition(&self, topic: &str, key: Option<&[u8]>, value_len: usize, partitions: u32) -> u32;
}

/// Kafka's murmur2 hash (`org.apache.kafka.common.utils.Utils.murmur2`), bit for bit, so a key
/// maps to the same partition number as with Kafka's default partitioner.
///
/// # Examples
/// ```
/// assert_eq!(topiclog::internals::murmur2(b"21"), -973932308);
/// ```
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    let mut h: u32 = SEED ^ (len as u32);
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition Kafka's default partitioner picks for `key`:
/// `(murmur2(key) & 0x7fffffff) % partitions`.
pub fn key_partition(key: &[u8], partitions: u32) -> u32 {
    ((murmur2(key) as u32) & 0x7fff_ffff) % partitions.max(1)
}

/// The default partitioner, like Kafka's built-in one: a record with a key goes to
/// [`key_partition`]; records without a key stick to one partition until `sticky_batch_bytes` of
/// values have gone there, then move to another, so unkeyed traffic forms large batches yet
/// spreads evenly over time.
#[derive(Debug)]
pub struct DefaultPartitioner {
    sticky_batch_bytes: usize,
    state: Mutex<Sticky>,
}

#[derive(Debug)]
struct Sticky {
    current: Option<u32>,
    bytes: usize,
    rng: u64,
}

impl DefaultPartitioner {
    /// A partitioner that switches unkeyed records to another partition after
    /// `sticky_batch_bytes` (Kafka's `batch.size`, default 16 KiB).
    pub fn new(sticky_batch_bytes: usize) -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x2545_f491, |d| d.as_nanos() as u64)
            | 1;
        DefaultPartitioner::with_seed(sticky_batch_bytes, seed)
    }

    /// As [`new`](Self::new), with a fixed seed for the sticky choice (for reproducible tests).
    pub fn with_seed(sticky_batch_bytes: usize, seed: u64) -> Self {
        DefaultPartitioner {
            sticky_batch_bytes: sticky_batch_bytes.max(1),
            state: Mutex::new(Sticky {
                current: None,
                bytes: 0,
                rng: seed | 1,
            }),
        }
    }
}

impl Default for DefaultPartitioner {
    fn default() -> Self {
        DefaultPartitioner::new(16 << 10)
    }
}

impl Partitioner for DefaultPartitioner {
    fn partition(
        &self,
        _topic: &str,
        key: Option<&[u8]>,
        value_len: usize,
        partitions: u32,
    ) -> u32 {
        let partitions = partitions.max(1);
        if let Some(key) = key {
            return key_partition(key, partitions);
        }
        let mut s = self.state.lock();
        let current = match s.current {
            Some(p) if p < partitions && s.bytes < self.sticky_batch_bytes => p,
            previous => {
                // xorshift64*: pick a partition other than the previous one when there is a choice.
                s.rng ^= s.rng >> 12;
                s.rng ^= s.rng << 25;
                s.rng ^= s.rng >> 27;
                let r = s.rng.wrapping_mul(0x2545_f491_4f6c_dd1d);
                let mut p = (r % u64::from(partitions)) as u32;
                if partitions > 1 && previous == Some(p) {
                    p = (p + 1 + (r >> 32) as u32 % (partitions - 1)) % partitions;
                }
                s.bytes = 0;
                s.current = Some(p);
                p
            }
        };
        s.bytes += value_len.max(1);
        current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_murmur2_vectors() {
        // From Kafka's UtilsTest.testMurmur2.
        let cases: [(&str, i32); 6] = [
            ("21", -973932308),
            ("foobar", -790332482),
            ("a-little-bit-long-string", -985981536),
            ("a-little-bit-longer-string", -1486304829),
            (
                "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58897971,
            ),
            ("abc", 479470107),
        ];
        for (input, expected) in cases {
            assert_eq!(murmur2(input.as_bytes()), expected, "{input}");
        }
    }

    #[test]
    fn keyed_records_follow_the_hash() {
        let p = DefaultPartitioner::with_seed(100, 1);
        for n in 1..20u32 {
            for key in ["a", "user-1", "order-99", ""] {
                let expected = ((murmur2(key.as_bytes()) as u32) & 0x7fff_ffff) % n;
                assert_eq!(p.partition("t", Some(key.as_bytes()), 10, n), expected);
            }
        }
    }

    #[test]
    fn sticky_stays_then_moves_and_spreads_evenly() {
        let p = DefaultPartitioner::with_seed(1000, 42);
        let mut counts = [0u32; 4];
        let mut switches = 0;
        let mut last = None;
        for _ in 0..40_000 {
            let part = p.partition("t", None, 100, 4);
            if last.is_some_and(|l| l != part) {
                switches += 1;
            }
            last = Some(part);
            counts[part as usize] += 1;
        }
        // 100-byte values, 1000-byte sticky batches: a switch every 10 records.
        assert_eq!(switches, 3999);
        for c in counts {
            assert!((8_000..12_000).contains(&c), "uneven: {counts:?}");
        }
    }
}
