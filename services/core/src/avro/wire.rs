//! Avro binary primitives over a byte slice, borrowing strings.
//!
//! Varints follow `apache-avro` exactly (at most 10 bytes, bits beyond 64
//! dropped) so that both decoders accept and refuse the same inputs.

use std::borrow::Cow;

use uuid::Uuid;

use super::DecodeError;

pub(super) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    #[inline]
    fn varint(&mut self) -> Result<u64, DecodeError> {
        // Enum and union indexes, map ends, small quantities and string
        // lengths are one byte: most varints of an event.
        if let Some(&b) = self.buf.get(self.pos) {
            if b < 0x80 {
                self.pos += 1;
                return Ok(u64::from(b));
            }
        }
        self.varint_slow()
    }

    #[cold]
    fn varint_slow(&mut self) -> Result<u64, DecodeError> {
        let mut value = 0u64;
        for j in 0..10 {
            let b = *self.buf.get(self.pos).ok_or(DecodeError::Truncated)?;
            self.pos += 1;
            value |= u64::from(b & 0x7F) << (j * 7);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError::Malformed("variable-length integer longer than 10 bytes".into()))
    }

    /// A zig-zag encoded `long`.
    #[inline]
    pub fn long(&mut self) -> Result<i64, DecodeError> {
        let z = self.varint()?;
        Ok(((z >> 1) as i64) ^ -((z & 1) as i64))
    }

    /// An `int` (enum and union indexes): a `long` that must fit 32 bits.
    pub fn int(&mut self) -> Result<i32, DecodeError> {
        let v = self.long()?;
        i32::try_from(v).map_err(|_| DecodeError::Malformed(format!("int out of range: {v}")))
    }

    /// Length-prefixed bytes. A length beyond the payload is `Truncated`
    /// before anything is allocated or read.
    #[inline]
    fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.long()?;
        let len = usize::try_from(len).map_err(|_| DecodeError::Malformed(format!("negative length {len}")))?;
        if len > self.remaining() {
            return Err(DecodeError::Truncated);
        }
        let bytes = &self.buf[self.pos..self.pos + len];
        self.pos += len;
        Ok(bytes)
    }

    #[inline]
    pub fn str(&mut self) -> Result<&'a str, DecodeError> {
        std::str::from_utf8(self.bytes()?).map_err(|_| DecodeError::Malformed("string is not UTF-8".into()))
    }

    /// `{"type": "string", "logicalType": "uuid"}`, read the way `apache-avro`
    /// reads it so both decoders give one answer: any form `Uuid::parse_str`
    /// takes (hyphenated, simple, braced, urn; either case), and a 16-byte
    /// string taken as the UUID's raw bytes (an `apache-avro` quirk no
    /// conforming emitter triggers). The result is the lowercase hyphenated
    /// form, borrowed when the wire already holds exactly that, which is what
    /// every emitter we know writes.
    pub fn uuid(&mut self) -> Result<Cow<'a, str>, DecodeError> {
        let bytes = self.bytes()?;
        if is_canonical_uuid(bytes) {
            // ASCII by the check above, so this cannot fail.
            return std::str::from_utf8(bytes).map(Cow::Borrowed).map_err(|_| DecodeError::Malformed("uuid is not UTF-8".into()));
        }
        let uuid = if bytes.len() == 16 {
            Uuid::from_slice(bytes).map_err(|e| DecodeError::Malformed(format!("bad uuid: {e}")))?
        } else {
            let s = std::str::from_utf8(bytes).map_err(|_| DecodeError::Malformed("uuid is not UTF-8".into()))?;
            let uuid = Uuid::parse_str(s).map_err(|e| DecodeError::Malformed(format!("bad uuid: {e}")))?;
            // 36 bytes that parse are the hyphenated form; without capitals
            // they are already canonical.
            if s.len() == 36 && !s.bytes().any(|b| b.is_ascii_uppercase()) {
                return Ok(Cow::Borrowed(s));
            }
            uuid
        };
        Ok(Cow::Owned(uuid.hyphenated().to_string()))
    }

    /// An enum symbol index below `symbols`.
    pub fn enum_index(&mut self, symbols: usize) -> Result<usize, DecodeError> {
        let i = self.int()?;
        usize::try_from(i).ok().filter(|i| *i < symbols).ok_or_else(|| DecodeError::Malformed(format!("enum index {i} out of range")))
    }

    /// `["null", "string"]`.
    pub fn optional_str(&mut self) -> Result<Option<&'a str>, DecodeError> {
        match self.long()? {
            0 => Ok(None),
            1 => self.str().map(Some),
            i => Err(DecodeError::Malformed(format!("union index {i} out of range"))),
        }
    }

    /// A map of strings, in wire order (repeated keys kept). Block counts may
    /// be negative (then followed by the block's byte size), as the
    /// specification allows.
    pub fn string_map(&mut self, out: &mut Vec<(Cow<'a, str>, Cow<'a, str>)>) -> Result<(), DecodeError> {
        loop {
            let count = self.long()?;
            if count == 0 {
                return Ok(());
            }
            let count = if count < 0 {
                self.long()?; // block size in bytes, not needed
                count.checked_neg().ok_or_else(|| DecodeError::Malformed("map block count overflows".into()))?
            } else {
                count
            };
            // Every entry takes at least two bytes, so a count larger than
            // that cannot be genuine; never reserve on its word alone.
            out.reserve((count as u64).min(self.remaining() as u64 / 2) as usize);
            for _ in 0..count {
                let k = self.str()?;
                let v = self.str()?;
                out.push((Cow::Borrowed(k), Cow::Borrowed(v)));
            }
        }
    }

    pub fn finish(&self) -> Result<(), DecodeError> {
        if self.remaining() == 0 {
            Ok(())
        } else {
            Err(DecodeError::Malformed(format!("{} trailing bytes after the datum", self.remaining())))
        }
    }
}

/// Lowercase hyphenated, the form `Uuid::hyphenated().to_string()` gives:
/// checked directly because parsing and re-encoding costs more than the rest
/// of the event's strings together.
fn is_canonical_uuid(b: &[u8]) -> bool {
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => matches!(c, b'0'..=b'9' | b'a'..=b'f'),
        })
}
