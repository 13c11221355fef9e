//! LEB128 unsigned varints: the compact integer encoding of sliding-log entries and of the
//! persisted limiter state.

pub fn write(out: &mut Vec<u8>, value: u64) {
    let (bytes, len) = encode(value);
    out.extend_from_slice(&bytes[..len]);
}

/// The longest varint (a u64).
pub const MAX_LEN: usize = 10;

/// The varint of `value`: its bytes and how many of them are used.
#[inline]
pub fn encode(value: u64) -> ([u8; MAX_LEN], usize) {
    let mut bytes = [0u8; MAX_LEN];
    let len = encode_into(&mut bytes, value);
    (bytes, len)
}

/// Writes the varint of `value` at the start of `out` (at least MAX_LEN long, or long enough
/// for this value) and returns its length.
#[inline]
pub fn encode_into(out: &mut [u8], mut value: u64) -> usize {
    let mut len = 0;
    while value >= 0x80 {
        out[len] = (value as u8) | 0x80;
        value >>= 7;
        len += 1;
    }
    out[len] = value as u8;
    len + 1
}

/// Reads one varint at `*pos` and advances it; None if the bytes end early or the value exceeds u64.
#[inline]
pub fn read(bytes: &[u8], pos: &mut usize) -> Option<u64> {
    // One byte (a value below 128) is the common case: a short delta, a small cost.
    if let Some(&byte) = bytes.get(*pos).filter(|b| **b < 0x80) {
        *pos += 1;
        return Some(u64::from(byte));
    }
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*pos)?;
        *pos += 1;
        let bits = u64::from(byte & 0x7f);
        if shift == 63 && bits > 1 {
            return None;
        }
        value |= bits << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trips_and_rejects_malformed_input() {
        for value in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX - 1, u64::MAX] {
            let mut buf = Vec::new();
            super::write(&mut buf, value);
            let mut pos = 0;
            assert_eq!(super::read(&buf, &mut pos), Some(value));
            assert_eq!(pos, buf.len());
            let mut pos = 0;
            assert_eq!(super::read(&buf[..buf.len() - 1], &mut pos), None);
        }
        let mut pos = 0;
        assert_eq!(super::read(&[0xff; 10], &mut pos), None);
        let mut pos = 0;
        assert_eq!(super::read(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02], &mut pos), None);
    }
}
