//! `meterline`: the operator's command line.

mod loadgen;

fn main() {}
