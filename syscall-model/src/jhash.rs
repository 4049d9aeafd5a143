//! Bob Jenkins' lookup3 hash as include/linux/jhash.h defines it: `jhash` over bytes and
//! `jhash2` over 32-bit words. The hash table's bucket of a key, and so the order in which
//! BPF_MAP_GET_NEXT_KEY walks a BPF_F_ZERO_SEED map, follows from it.

/// `JHASH_INITVAL`, an arbitrary starting value.
const JHASH_INITVAL: u32 = 0xdead_beef;

#[inline]
fn mix(a: &mut u32, b: &mut u32, c: &mut u32) {
    *a = a.wrapping_sub(*c);
    *a ^= c.rotate_left(4);
    *c = c.wrapping_add(*b);
    *b = b.wrapping_sub(*a);
    *b ^= a.rotate_left(6);
    *a = a.wrapping_add(*c);
    *c = c.wrapping_sub(*b);
    *c ^= b.rotate_left(8);
    *b = b.wrapping_add(*a);
    *a = a.wrapping_sub(*c);
    *a ^= c.rotate_left(16);
    *c = c.wrapping_add(*b);
    *b = b.wrapping_sub(*a);
    *b ^= a.rotate_left(19);
    *a = a.wrapping_add(*c);
    *c = c.wrapping_sub(*b);
    *c ^= b.rotate_left(4);
    *b = b.wrapping_add(*a);
}

#[inline]
fn final_mix(a: &mut u32, b: &mut u32, c: &mut u32) {
    *c ^= *b;
    *c = c.wrapping_sub(b.rotate_left(14));
    *a ^= *c;
    *a = a.wrapping_sub(c.rotate_left(11));
    *b ^= *a;
    *b = b.wrapping_sub(a.rotate_left(25));
    *c ^= *b;
    *c = c.wrapping_sub(b.rotate_left(16));
    *a ^= *c;
    *a = a.wrapping_sub(c.rotate_left(4));
    *b ^= *a;
    *b = b.wrapping_sub(a.rotate_left(14));
    *c ^= *b;
    *c = c.wrapping_sub(b.rotate_left(24));
}

/// `jhash(key, length, initval)`: hashes bytes, reading whole 32-bit little-endian words
/// while more than 12 bytes remain; the last 1..=12 bytes go in as the header's switch adds
/// them, which is as zero-padded little-endian words.
pub fn jhash(key: &[u8], initval: u32) -> u32 {
    let len = key.len() as u32;
    let mut a = JHASH_INITVAL.wrapping_add(len).wrapping_add(initval);
    let mut b = a;
    let mut c = a;
    let mut k = key;
    let word = |s: &[u8], i: usize| u32::from_le_bytes([s[i], s[i + 1], s[i + 2], s[i + 3]]);
    while k.len() > 12 {
        a = a.wrapping_add(word(k, 0));
        b = b.wrapping_add(word(k, 4));
        c = c.wrapping_add(word(k, 8));
        mix(&mut a, &mut b, &mut c);
        k = &k[12..];
    }
    if k.is_empty() {
        return c;
    }
    // The tail: byte i of the last block goes to bits 8*(i%4) of a, b or c, which is the same
    // as adding the little-endian words of the block padded with zeros.
    let padded = |i: usize| match k.get(i..i + 4) {
        Some(w) => word(w, 0),
        None => k
            .iter()
            .skip(i)
            .enumerate()
            .fold(0, |w, (j, byte)| w | u32::from(*byte) << (8 * j)),
    };
    a = a.wrapping_add(padded(0));
    b = b.wrapping_add(padded(4));
    c = c.wrapping_add(padded(8));
    final_mix(&mut a, &mut b, &mut c);
    c
}

/// `jhash2(words, length, initval)`: hashes 32-bit words.
pub fn jhash2(words: &[u32], initval: u32) -> u32 {
    let len = words.len() as u32;
    let mut a = JHASH_INITVAL.wrapping_add(len << 2).wrapping_add(initval);
    let mut b = a;
    let mut c = a;
    let mut k = words;
    while k.len() > 3 {
        a = a.wrapping_add(k[0]);
        b = b.wrapping_add(k[1]);
        c = c.wrapping_add(k[2]);
        mix(&mut a, &mut b, &mut c);
        k = &k[3..];
    }
    match k.len() {
        3 => {
            c = c.wrapping_add(k[2]);
            b = b.wrapping_add(k[1]);
            a = a.wrapping_add(k[0]);
        }
        2 => {
            b = b.wrapping_add(k[1]);
            a = a.wrapping_add(k[0]);
        }
        1 => a = a.wrapping_add(k[0]),
        _ => return c,
    }
    final_mix(&mut a, &mut b, &mut c);
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jhash2_equals_jhash_on_little_endian_words() {
        // hashtab.c picks jhash2 for word-sized keys; on little endian both agree.
        for len in [4usize, 8, 12, 16, 20, 24] {
            let bytes: Vec<u8> = (0..len as u8).map(|x| x.wrapping_mul(37)).collect();
            let words: Vec<u32> = bytes
                .chunks(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            assert_eq!(jhash(&bytes, 7), jhash2(&words, 7), "len {len}");
        }
    }

    /// jhash as jhash.h spells out its tail: one case per remaining byte count, each adding
    /// its byte at its place in a, b or c.
    fn jhash_by_cases(key: &[u8], initval: u32) -> u32 {
        let mut a = JHASH_INITVAL
            .wrapping_add(key.len() as u32)
            .wrapping_add(initval);
        let (mut b, mut c) = (a, a);
        let mut k = key;
        while k.len() > 12 {
            let w = |i: usize| u32::from_le_bytes([k[i], k[i + 1], k[i + 2], k[i + 3]]);
            a = a.wrapping_add(w(0));
            b = b.wrapping_add(w(4));
            c = c.wrapping_add(w(8));
            mix(&mut a, &mut b, &mut c);
            k = &k[12..];
        }
        if k.is_empty() {
            return c;
        }
        for n in (1..=k.len()).rev() {
            let v = u32::from(k[n - 1]);
            match n {
                12 => c = c.wrapping_add(v << 24),
                11 => c = c.wrapping_add(v << 16),
                10 => c = c.wrapping_add(v << 8),
                9 => c = c.wrapping_add(v),
                8 => b = b.wrapping_add(v << 24),
                7 => b = b.wrapping_add(v << 16),
                6 => b = b.wrapping_add(v << 8),
                5 => b = b.wrapping_add(v),
                4 => a = a.wrapping_add(v << 24),
                3 => a = a.wrapping_add(v << 16),
                2 => a = a.wrapping_add(v << 8),
                _ => a = a.wrapping_add(v),
            }
        }
        final_mix(&mut a, &mut b, &mut c);
        c
    }

    #[test]
    fn jhash_adds_the_tail_bytes_at_their_places_for_every_length() {
        for len in 0..=40usize {
            let bytes: Vec<u8> = (0..len)
                .map(|x| (x as u8).wrapping_mul(151) ^ 0x5a)
                .collect();
            for initval in [0, 1, 0x9e37_79b9] {
                assert_eq!(
                    jhash(&bytes, initval),
                    jhash_by_cases(&bytes, initval),
                    "len {len} initval {initval:#x}"
                );
            }
        }
    }

    #[test]
    fn empty_key_returns_the_initial_state() {
        assert_eq!(jhash(&[], 0), JHASH_INITVAL);
        assert_eq!(jhash2(&[], 1), JHASH_INITVAL.wrapping_add(1));
    }
}
