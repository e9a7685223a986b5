//! A fast, non-keyed hasher for internal maps whose keys are not chosen by an adversary (topic
//! names and partition numbers the application picked, or keys that are themselves random hashes):
//! one rotate, xor and multiply per word, like rustc's FxHash.

use std::hash::Hasher;

/// See the [module docs](self).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct FastHasher(u64);

impl Hasher for FastHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(b));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.write_u64(u64::from(i));
    }

    fn write_u32(&mut self, i: u32) {
        self.write_u64(u64::from(i));
    }

    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }

    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::{BuildHasher, BuildHasherDefault};

    #[test]
    fn distinct_small_keys_spread() {
        let b = BuildHasherDefault::<FastHasher>::default();
        let (mut full, mut low) = (
            std::collections::HashSet::new(),
            std::collections::HashSet::new(),
        );
        for t in ["a", "b", "orders", "orders.v2"] {
            for p in 0..64u32 {
                let h = b.hash_one((t, p));
                full.insert(h);
                low.insert(h & 127);
            }
        }
        // 256 keys: all distinct, and spread over the 128 low-bit buckets (a hash that ignored a
        // field would collide wholesale; uniform hashing fills about 110).
        assert_eq!(full.len(), 256);
        assert!(low.len() > 80, "{}", low.len());
    }
}
