//! The Avro wire format of usage events (being written).
