//! ClickHouse's `Native` format, written column by column: what the events
//! insert sends instead of RowBinary.
//!
//! RowBinary makes ClickHouse deserialize every value of every row through
//! its own call; in `perf` that was ~10 % of the server's time in the
//! pipeline benchmark. Native carries each column as one run of values that
//! the server reads in bulk. Both 18.16 and 24+ read it over HTTP
//! (`INSERT ... FORMAT Native`); with no client protocol revision there is
//! no block-info header, just: column count, row count, then per column
//! its name, its type name and its values.
//!
//! The columns are filled in one pass over the rows, each into a buffer of
//! its own, and sent as they are, without being joined: a pass per column
//! over a batch of row structs (tens of MB) missed the cache on every row,
//! and cost the rollup more than RowBinary did.

use bytes::Bytes;

/// One column of a block: its header, then its values as they are added.
pub(super) struct Column {
    data: Vec<u8>,
    /// `Array(String)` only: the elements, which follow every row's end
    /// offset (in `data`).
    elements: Vec<u8>,
    elements_end: u64,
}

impl Column {
    /// A column named `name` of ClickHouse type `type_name`, with room for
    /// `capacity` bytes of values.
    pub fn new(name: &str, type_name: &str, capacity: usize) -> Self {
        let mut data = Vec::with_capacity(capacity + name.len() + type_name.len() + 2);
        string(&mut data, name);
        string(&mut data, type_name);
        Self { data, elements: Vec::new(), elements_end: 0 }
    }

    /// A fixed-width little-endian value (numbers, `DateTime`, `Decimal`).
    pub fn fixed<const N: usize>(&mut self, value: [u8; N]) {
        self.data.extend_from_slice(&value);
    }

    /// A `String` value.
    pub fn string(&mut self, value: &str) {
        string(&mut self.data, value);
    }

    /// An `Array(String)` value: the row's end offset into the flattened
    /// elements (UInt64) here, its elements after every offset.
    pub fn string_array<'a>(&mut self, value: impl Iterator<Item = &'a str>) {
        for v in value {
            self.elements_end += 1;
            string(&mut self.elements, v);
        }
        self.data.extend_from_slice(&self.elements_end.to_le_bytes());
    }
}

/// A block of `rows` rows made of `columns`, as chunks to send in order.
pub(super) fn block(rows: usize, columns: Vec<Column>) -> Vec<Bytes> {
    let mut head = Vec::with_capacity(20);
    varint(&mut head, columns.len() as u64);
    varint(&mut head, rows as u64);
    let mut chunks = vec![Bytes::from(head)];
    for c in columns {
        chunks.push(Bytes::from(c.data));
        if !c.elements.is_empty() {
            chunks.push(Bytes::from(c.elements));
        }
    }
    chunks
}

fn varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn string(buf: &mut Vec<u8>, s: &str) {
    varint(buf, s.len() as u64);
    buf.extend_from_slice(s.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_is_counts_then_named_typed_columns() {
        let (mut n, mut s, mut a) = (Column::new("n", "UInt16", 0), Column::new("s", "String", 0), Column::new("a", "Array(String)", 0));
        let arrays: [&[&str]; 2] = [&["x", "yz"], &[]];
        for (i, (num, text)) in [(1u16, "a"), (300, "")].into_iter().enumerate() {
            n.fixed(num.to_le_bytes());
            s.string(text);
            a.string_array(arrays[i].iter().copied());
        }
        let expected: Vec<u8> = [
            &[3u8, 2][..],
            b"\x01n\x06UInt16",
            &[1, 0, 44, 1],
            b"\x01s\x06String",
            b"\x01a\x00",
            b"\x01a\x0dArray(String)",
            &[2, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0],
            b"\x01x\x02yz",
        ]
        .concat();
        assert_eq!(block(2, vec![n, s, a]).concat(), expected);
    }

    #[test]
    fn varints_take_seven_bits_a_byte() {
        let mut buf = Vec::new();
        for v in [0u64, 127, 128, 300, u64::MAX] {
            varint(&mut buf, v);
        }
        assert_eq!(buf, [&[0u8, 127, 0x80, 1, 0xAC, 2][..], &[0xFF; 9], &[1]].concat());
    }
}
