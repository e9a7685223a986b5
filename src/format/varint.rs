//! Kafka's varints, bounds-checked: LEB128 over the zig-zag encoding of a signed value, at most 5
//! bytes for an `int32` ("varint") and 10 for an `int64` ("varlong"), as Kafka's `ByteUtils`
//! reads and writes them. Every length, delta and count inside a Kafka record uses them.

/// Longest encoding of a u64.
#[cfg(test)]
pub(crate) const MAX_VARINT_LEN: usize = 10;

#[inline]
pub(crate) fn put_uvarint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

#[inline]
pub(crate) fn uvarint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

#[inline]
pub(crate) fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

#[inline]
pub(crate) fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Decode a varint at `*pos`, advancing it. `None` if the input ends or the value overflows u64.
#[inline]
pub(crate) fn get_uvarint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut result: u64 = 0;
    let mut shift = 0u32;
    loop {
        let byte = *buf.get(*pos)?;
        *pos += 1;
        if shift == 63 && byte > 1 {
            return None;
        }
        result |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Some(result);
        }
        shift += 7;
        if shift > 63 {
            return None;
        }
    }
}

/// Longest encoding of a Kafka varint (`int32`).
const MAX_VARINT32_LEN: usize = 5;

/// Append Kafka's varint (zig-zag, LEB128) encoding of an `int32`.
#[inline]
pub(crate) fn put_varint(buf: &mut Vec<u8>, v: i32) {
    put_uvarint(buf, u64::from(zigzag32(v)));
}

/// Append Kafka's varlong encoding of an `int64`.
#[inline]
pub(crate) fn put_varlong(buf: &mut Vec<u8>, v: i64) {
    put_uvarint(buf, zigzag(v));
}

/// Encoded size of an `int32` varint.
#[inline]
pub(crate) fn varint_len(v: i32) -> usize {
    uvarint_len(u64::from(zigzag32(v)))
}

/// Encoded size of an `int64` varlong.
#[inline]
pub(crate) fn varlong_len(v: i64) -> usize {
    uvarint_len(zigzag(v))
}

#[inline]
fn zigzag32(v: i32) -> u32 {
    ((v << 1) ^ (v >> 31)) as u32
}

/// Decode a Kafka varint (`int32`) at `*pos`, advancing it. `None` if the input ends, the
/// encoding is longer than 5 bytes, or its value does not fit 32 bits (Kafka's reader rejects
/// longer encodings too; the writer never makes the others).
#[inline]
pub(crate) fn get_varint(buf: &[u8], pos: &mut usize) -> Option<i32> {
    // Fast paths for the one- and two-byte encodings (every value below 8192 in magnitude: most
    // lengths and deltas), which can neither overflow nor run long; the same result as the loop.
    let at = *pos;
    if let Some(&b0) = buf.get(at) {
        if b0 < 0x80 {
            *pos = at + 1;
            return Some(unzigzag32(u32::from(b0)));
        }
        if let Some(&b1) = buf.get(at + 1) {
            if b1 < 0x80 {
                *pos = at + 2;
                return Some(unzigzag32(u32::from(b0 & 0x7f) | (u32::from(b1) << 7)));
            }
        }
    }
    get_varint_slow(buf, pos)
}

#[inline]
fn unzigzag32(raw: u32) -> i32 {
    ((raw >> 1) as i32) ^ -((raw & 1) as i32)
}

/// [`get_varint`] for encodings of three bytes or more (or cut short).
#[inline(never)]
fn get_varint_slow(buf: &[u8], pos: &mut usize) -> Option<i32> {
    let start = *pos;
    let raw = get_uvarint(buf, pos)?;
    if *pos - start > MAX_VARINT32_LEN {
        return None;
    }
    let raw = u32::try_from(raw).ok()?;
    Some(unzigzag32(raw))
}

/// Decode a Kafka varlong (`int64`) at `*pos`, advancing it.
#[inline]
pub(crate) fn get_varlong(buf: &[u8], pos: &mut usize) -> Option<i64> {
    if let Some(&b0) = buf.get(*pos) {
        if b0 < 0x80 {
            *pos += 1;
            return Some(unzigzag(u64::from(b0)));
        }
    }
    get_uvarint(buf, pos).map(unzigzag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for v in [
            0u64,
            1,
            127,
            128,
            300,
            u32::MAX as u64,
            u64::MAX - 1,
            u64::MAX,
        ] {
            let mut b = Vec::new();
            put_uvarint(&mut b, v);
            assert_eq!(b.len(), uvarint_len(v));
            assert!(b.len() <= MAX_VARINT_LEN);
            let mut pos = 0;
            assert_eq!(get_uvarint(&b, &mut pos), Some(v));
            assert_eq!(pos, b.len());
        }
        for v in [0i64, -1, 1, i64::MIN, i64::MAX] {
            assert_eq!(unzigzag(zigzag(v)), v);
        }
    }

    /// Encodings from Kafka's `ByteUtilsTest` (`testVarintSerde`, `testVarlongSerde`): the
    /// zig-zag value of each number, in LEB128.
    #[test]
    fn kafka_varint_vectors() {
        let cases: &[(i32, &[u8])] = &[
            (0, &[0x00]),
            (-1, &[0x01]),
            (1, &[0x02]),
            (63, &[0x7e]),
            (-64, &[0x7f]),
            (64, &[0x80, 0x01]),
            (-65, &[0x81, 0x01]),
            (8191, &[0xfe, 0x7f]),
            (-8192, &[0xff, 0x7f]),
            (8192, &[0x80, 0x80, 0x01]),
            (-8193, &[0x81, 0x80, 0x01]),
            (1_048_575, &[0xfe, 0xff, 0x7f]),
            (-1_048_576, &[0xff, 0xff, 0x7f]),
            (1_048_576, &[0x80, 0x80, 0x80, 0x01]),
            (-1_048_577, &[0x81, 0x80, 0x80, 0x01]),
            (134_217_727, &[0xfe, 0xff, 0xff, 0x7f]),
            (-134_217_728, &[0xff, 0xff, 0xff, 0x7f]),
            (134_217_728, &[0x80, 0x80, 0x80, 0x80, 0x01]),
            (-134_217_729, &[0x81, 0x80, 0x80, 0x80, 0x01]),
            (i32::MAX, &[0xfe, 0xff, 0xff, 0xff, 0x0f]),
            (i32::MIN, &[0xff, 0xff, 0xff, 0xff, 0x0f]),
        ];
        for &(v, bytes) in cases {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            assert_eq!(b, bytes, "{v}");
            assert_eq!(varint_len(v), bytes.len());
            let mut pos = 0;
            assert_eq!(get_varint(bytes, &mut pos), Some(v));
            assert_eq!(pos, bytes.len());
        }
        for v in [i64::MIN, -1, 0, 1, i64::MAX, 1 << 40] {
            let mut b = Vec::new();
            put_varlong(&mut b, v);
            assert_eq!(b.len(), varlong_len(v));
            let mut pos = 0;
            assert_eq!(get_varlong(&b, &mut pos), Some(v));
        }
        let mut b = Vec::new();
        put_varlong(&mut b, i64::MIN);
        assert_eq!(
            b,
            [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]
        );
        // Longer than 5 bytes, or past 32 bits: not an int32.
        let mut pos = 0;
        assert_eq!(
            get_varint(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x00], &mut pos),
            None
        );
        let mut pos = 0;
        assert_eq!(get_varint(&[0xff, 0xff, 0xff, 0xff, 0x1f], &mut pos), None);
    }

    #[test]
    fn rejects_truncated_and_overlong() {
        let mut pos = 0;
        assert_eq!(get_uvarint(&[0x80, 0x80], &mut pos), None);
        let mut pos = 0;
        assert_eq!(get_uvarint(&[0xff; 11], &mut pos), None);
        let mut pos = 0;
        assert_eq!(
            get_uvarint(
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02],
                &mut pos
            ),
            None
        );
    }
}

#[cfg(test)]
mod fast_path_tests {
    use super::*;

    /// The fast paths agree with the general decoder on every one-, two- and three-byte input
    /// (and on inputs cut short).
    #[test]
    fn fast_paths_agree_with_the_loop() {
        let reference = |buf: &[u8]| {
            let mut pos = 0;
            let r = get_varint_slow(buf, &mut pos);
            (r, if r.is_some() { pos } else { 0 })
        };
        let fast = |buf: &[u8]| {
            let mut pos = 0;
            let r = get_varint(buf, &mut pos);
            (r, if r.is_some() { pos } else { 0 })
        };
        for a in 0..=255u8 {
            assert_eq!(fast(&[a]), reference(&[a]));
            for b in 0..=255u8 {
                assert_eq!(fast(&[a, b]), reference(&[a, b]));
                assert_eq!(fast(&[a, b, 0x01]), reference(&[a, b, 0x01]));
            }
        }
        for v in [i64::MIN, -1, 0, 1, 63, -64, 64, i64::MAX] {
            let mut b = Vec::new();
            put_varlong(&mut b, v);
            let mut pos = 0;
            assert_eq!(get_varlong(&b, &mut pos), Some(v));
            assert_eq!(pos, b.len());
        }
    }
}
