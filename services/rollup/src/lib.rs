//! meterline-rollup
