//! A hasher for tables keyed by small integers that are already well spread or dense
//! (bucket indexes, page numbers, chunk numbers): one multiply instead of SipHash, which the
//! model's hot paths (every element op, every user copy) would otherwise pay per lookup. Not
//! for keys an attacker picks to collide: the model's tables are its own.

use std::hash::{BuildHasherDefault, Hasher};

#[derive(Default, Clone, Copy)]
pub struct IndexHasher(u64);

impl Hasher for IndexHasher {
    fn finish(&self) -> u64 {
        // Fibonacci hashing: the product's high bits, where hashbrown reads its control bytes,
        // depend on every bit of the index.
        self.0.wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u32(&mut self, v: u32) {
        self.0 = u64::from(v);
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// `HashMap<K, V, IndexBuild>`.
pub type IndexBuild = BuildHasherDefault<IndexHasher>;
