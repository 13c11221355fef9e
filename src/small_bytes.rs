//! A byte buffer that keeps up to `N` bytes inside itself and moves to the heap only past that:
//! the encoded entries of a sliding log. A log of up to a couple of dozen entries then lives in the
//! same allocation as its header, so a call reads one block of memory instead of following a pointer
//! to a second one (a cache miss of its own on a server with many keys), and a log rebuilt from
//! its packed form allocates nothing.

use crate::varint;

#[derive(Debug, Clone)]
pub enum SmallBytes<const N: usize> {
    Inline { len: u8, bytes: [u8; N] },
    Heap(Vec<u8>),
}

impl<const N: usize> Default for SmallBytes<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> SmallBytes<N> {
    pub const fn new() -> Self {
        const { assert!(N <= u8::MAX as usize, "the inline length is a u8") };
        SmallBytes::Inline { len: 0, bytes: [0; N] }
    }

    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        match self {
            SmallBytes::Inline { len, bytes } => &bytes[..usize::from(*len)],
            SmallBytes::Heap(vec) => vec,
        }
    }

    #[inline]
    pub fn len(&self) -> usize {
        match self {
            SmallBytes::Inline { len, .. } => usize::from(*len),
            SmallBytes::Heap(vec) => vec.len(),
        }
    }

    /// Bytes held on the heap (0 while inline), for MEMORY USAGE.
    pub fn heap_bytes(&self) -> usize {
        match self {
            SmallBytes::Inline { .. } => 0,
            SmallBytes::Heap(vec) => vec.capacity(),
        }
    }

    /// Empties the buffer and gives back its heap memory.
    pub fn clear(&mut self) {
        *self = Self::new();
    }

    /// Appends `more`, moving to the heap (with room to grow) once it no longer fits inline.
    #[inline]
    pub fn extend_from_slice(&mut self, more: &[u8]) {
        match self {
            SmallBytes::Inline { len, bytes } => {
                let start = usize::from(*len);
                let end = start + more.len();
                if end <= N {
                    bytes[start..end].copy_from_slice(more);
                    *len = end as u8;
                } else {
                    // A power of two, then doubling, as a Vec grown from empty: the spare room
                    // of a long log stays under half its bytes.
                    let mut vec = Vec::with_capacity(end.next_power_of_two());
                    vec.extend_from_slice(&bytes[..start]);
                    vec.extend_from_slice(more);
                    *self = SmallBytes::Heap(vec);
                }
            }
            SmallBytes::Heap(vec) => vec.extend_from_slice(more),
        }
    }

    /// Appends `value` as a varint, in place while there is room for the longest one.
    #[inline]
    pub fn push_varint(&mut self, value: u64) {
        if let SmallBytes::Inline { len, bytes } = self {
            let start = usize::from(*len);
            if let Some(room) = bytes.get_mut(start..start + varint::MAX_LEN) {
                *len += varint::encode_into(room, value) as u8;
                return;
            }
        }
        let (encoded, count) = varint::encode(value);
        self.extend_from_slice(&encoded[..count]);
    }

    /// Removes the first `count` bytes (at most `len`). What is left moves back inline when it
    /// fits; a heap buffer mostly empty is shrunk.
    pub fn drain_front(&mut self, count: usize) {
        match self {
            SmallBytes::Inline { len, bytes } => {
                let count = count.min(usize::from(*len));
                bytes.copy_within(count..usize::from(*len), 0);
                *len -= count as u8;
            }
            SmallBytes::Heap(vec) => {
                vec.drain(..count.min(vec.len()));
                if vec.len() <= N {
                    let mut inline = Self::new();
                    inline.extend_from_slice(vec);
                    *self = inline;
                } else if vec.len() * 4 < vec.capacity() {
                    vec.shrink_to(vec.len() * 2);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::SmallBytes;
    use rand::{rngs::StdRng, Rng, SeedableRng};

    #[test]
    fn behaves_as_a_vec_across_the_inline_edge() {
        let mut rng = StdRng::seed_from_u64(5);
        let mut small = SmallBytes::<16>::new();
        let mut model: Vec<u8> = Vec::new();
        for _ in 0..20_000 {
            match rng.gen_range(0..10) {
                0 => {
                    let count = rng.gen_range(0..=model.len() + 2);
                    small.drain_front(count);
                    model.drain(..count.min(model.len()));
                }
                1 if rng.gen_ratio(1, 20) => {
                    small.clear();
                    model.clear();
                }
                2 => {
                    let value = rng.gen::<u64>() >> rng.gen_range(0..64);
                    small.push_varint(value);
                    crate::varint::write(&mut model, value);
                }
                _ => {
                    let more: Vec<u8> = (0..rng.gen_range(0..6)).map(|_| rng.gen()).collect();
                    small.extend_from_slice(&more);
                    model.extend_from_slice(&more);
                }
            }
            assert_eq!(small.as_slice(), &model[..]);
            assert_eq!(small.len(), model.len());
            // Inline exactly while it fits, unless grown past it and not yet drained back.
            if matches!(small, SmallBytes::Heap(_)) {
                assert!(small.heap_bytes() >= model.len());
            } else {
                assert!(model.len() <= 16);
                assert_eq!(small.heap_bytes(), 0);
            }
        }
    }
}
