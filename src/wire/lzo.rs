//! LZO1X bodies as distcc sends them: a raw LZO1X stream with no header, no length and no
//! checksum, ending with the standard end marker `11 00 00`.
//!
//! Compression is the `lzo1x` crate's (any valid LZO1X stream decodes on the other side, so we
//! need not be byte-identical to miniLZO). Decompression is our own: the crate's decoder needs
//! the exact decompressed length up front, and distcc never transmits it. This decoder grows
//! its output as it goes, up to a caller-given limit, so a hostile stream cannot make us
//! allocate more than the limit (distcc 3.4 doubles its buffer without bound).
//!
//! This module knows nothing of tokens or sockets; `packet` decides which bodies are
//! compressed, and how far each may expand (`packet::source_bound`).

use std::fmt;

/// Why an LZO1X stream could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LzoError {
    /// The stream ended before its end marker.
    Truncated,
    /// A match refers to bytes before the start of the output.
    BadDistance,
    /// The decoded data would be larger than the limit.
    TooLarge { limit: usize },
    /// Bytes follow the end marker.
    TrailingData,
}

impl fmt::Display for LzoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LzoError::Truncated => write!(f, "LZO data ends before its end marker"),
            LzoError::BadDistance => write!(f, "LZO data refers back before its start"),
            LzoError::TooLarge { limit } => {
                write!(f, "LZO data expands to more than {limit} bytes")
            }
            LzoError::TrailingData => write!(f, "LZO data has bytes after its end marker"),
        }
    }
}

impl std::error::Error for LzoError {}

/// Compresses `data` as one LZO1X-1 stream. Empty input is the caller's special case: distcc
/// sends an empty body rather than a compressed empty stream.
pub fn compress(data: &[u8]) -> Vec<u8> {
    lzo1x::compress(data, lzo1x::CompressLevel::default())
}

/// A cursor over the compressed input that turns every overrun into `Truncated`.
struct Input<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Input<'_> {
    fn byte(&mut self) -> Result<usize, LzoError> {
        let b = *self.data.get(self.pos).ok_or(LzoError::Truncated)?;
        self.pos += 1;
        Ok(usize::from(b))
    }

    fn slice(&mut self, n: usize) -> Result<&[u8], LzoError> {
        let end = self.pos.checked_add(n).ok_or(LzoError::Truncated)?;
        let s = self.data.get(self.pos..end).ok_or(LzoError::Truncated)?;
        self.pos = end;
        Ok(s)
    }

    /// A run length of `base` plus as many 255s as there are zero bytes, plus the next byte.
    fn long_length(&mut self, base: usize) -> Result<usize, LzoError> {
        let mut len = base;
        loop {
            match self.byte()? {
                0 => len = len.checked_add(255).ok_or(LzoError::Truncated)?,
                b => return len.checked_add(b).ok_or(LzoError::Truncated),
            }
        }
    }
}

struct Output {
    data: Vec<u8>,
    limit: usize,
}

impl Output {
    fn room(&self, n: usize) -> Result<(), LzoError> {
        match self.data.len().checked_add(n) {
            Some(end) if end <= self.limit => Ok(()),
            _ => Err(LzoError::TooLarge { limit: self.limit }),
        }
    }

    fn literals(&mut self, bytes: &[u8]) -> Result<(), LzoError> {
        self.room(bytes.len())?;
        self.data.extend_from_slice(bytes);
        Ok(())
    }

    /// Copies `len` bytes starting `distance` bytes back; the source may overlap the bytes
    /// being written, which is how LZO encodes runs.
    fn copy_match(&mut self, distance: usize, len: usize) -> Result<(), LzoError> {
        if distance == 0 || distance > self.data.len() {
            return Err(LzoError::BadDistance);
        }
        self.room(len)?;
        let start = self.data.len() - distance;
        if distance >= len {
            self.data.extend_from_within(start..start + len);
        } else {
            for i in 0..len {
                let b = self.data[start + i];
                self.data.push(b);
            }
        }
        Ok(())
    }
}

/// Decodes a whole LZO1X stream, refusing to produce more than `limit` bytes.
pub fn decompress(src: &[u8], limit: usize) -> Result<Vec<u8>, LzoError> {
    let mut inp = Input { data: src, pos: 0 };
    let mut out = Output {
        data: Vec::with_capacity(src.len().saturating_mul(3).min(limit)),
        limit,
    };

    // `state` is the number of literals that followed the previous match (0-3), or 4 after a
    // literal run; it decides how an instruction byte below 16 is read.
    let mut state;
    let first = *src.first().ok_or(LzoError::Truncated)?;
    if first > 17 {
        inp.pos = 1;
        let n = usize::from(first) - 17;
        let lits = inp.slice(n)?;
        out.literals(lits)?;
        state = if n < 4 { n } else { 4 };
    } else {
        state = 0;
    }

    loop {
        let t = inp.byte()?;
        let (distance, len, next_state);
        if t < 16 {
            if state == 0 {
                // A literal run of 3 or more bytes.
                let n = if t == 0 { inp.long_length(15)? } else { t } + 3;
                let lits = inp.slice(n)?;
                out.literals(lits)?;
                state = 4;
                continue;
            }
            let h = inp.byte()?;
            if state == 4 {
                // A 3-byte match from 2049 to 3072 bytes back, right after a literal run.
                distance = 1 + 0x800 + (t >> 2) + (h << 2);
                len = 3;
            } else {
                distance = 1 + (t >> 2) + (h << 2);
                len = 2;
            }
            next_state = t & 3;
        } else if t >= 64 {
            let h = inp.byte()?;
            distance = 1 + ((t >> 2) & 7) + (h << 3);
            len = (t >> 5) + 1;
            next_state = t & 3;
        } else if t >= 32 {
            let n = t & 31;
            len = if n == 0 { inp.long_length(31)? } else { n } + 2;
            let lo = inp.byte()?;
            let hi = inp.byte()?;
            distance = 1 + (lo >> 2) + (hi << 6);
            next_state = lo & 3;
        } else {
            let n = t & 7;
            len = if n == 0 { inp.long_length(7)? } else { n } + 2;
            let lo = inp.byte()?;
            let hi = inp.byte()?;
            let d = ((t & 8) << 11) + (lo >> 2) + (hi << 6);
            if d == 0 {
                // The end marker (`11 00 00`).
                return if inp.pos == src.len() {
                    Ok(out.data)
                } else {
                    Err(LzoError::TrailingData)
                };
            }
            distance = d + 0x4000;
            next_state = lo & 3;
        }
        out.copy_match(distance, len)?;
        if next_state > 0 {
            let lits = inp.slice(next_state)?;
            out.literals(lits)?;
        }
        state = next_state;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(data: &[u8]) {
        let c = compress(data);
        assert_eq!(decompress(&c, data.len()).as_deref(), Ok(data));
    }

    #[test]
    fn distcc_test_vector_decodes() {
        // distcc 3.4's (miniLZO's) encoding of "int x;\n".
        let c = [
            0x18, 0x69, 0x6e, 0x74, 0x20, 0x78, 0x3b, 0x0a, 0x11, 0x00, 0x00,
        ];
        assert_eq!(decompress(&c, 100).unwrap(), b"int x;\n");
        assert_eq!(compress(b"int x;\n"), c);
    }

    #[test]
    fn round_trips_varied_data() {
        round_trip(b"a");
        round_trip(&[0xaa; 100]);
        round_trip(&[0u8; 100_000]);
        let text: Vec<u8> = (0..200_000u32)
            .flat_map(|i| format!("int v{} = {};\n", i % 977, i % 13).into_bytes())
            .collect();
        round_trip(&text);
        // Pseudo-random bytes: mostly literals, long literal runs.
        let mut x = 0x1234_5678u32;
        let noise: Vec<u8> = (0..70_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x >> 24) as u8
            })
            .collect();
        round_trip(&noise);
        // Far matches (beyond 16 KiB, the M4 range).
        let mut far = noise[..20_000].to_vec();
        far.extend_from_slice(&noise[..20_000]);
        round_trip(&far);
    }

    #[test]
    fn limit_is_enforced() {
        let c = compress(&[0u8; 10_000]);
        assert_eq!(
            decompress(&c, 9_999),
            Err(LzoError::TooLarge { limit: 9_999 })
        );
    }

    #[test]
    fn corrupt_streams_are_errors() {
        let c = compress(b"hello hello hello hello hello world\n");
        for cut in 0..c.len() {
            assert!(decompress(&c[..cut], 1 << 20).is_err(), "cut at {cut}");
        }
        let mut trailing = c.clone();
        trailing.push(0);
        assert_eq!(decompress(&trailing, 1 << 20), Err(LzoError::TrailingData));
        // A match before any output.
        assert_eq!(
            decompress(&[0x11, 0x04, 0x00, 0x11, 0, 0], 100),
            Err(LzoError::BadDistance)
        );
        // Every byte sequence either decodes or errors: never panics.
        let mut x = 7u32;
        for _ in 0..20_000 {
            let n = (x % 40) as usize;
            let junk: Vec<u8> = (0..n)
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    (x >> 16) as u8
                })
                .collect();
            let _ = decompress(&junk, 1 << 16);
        }
    }
}
