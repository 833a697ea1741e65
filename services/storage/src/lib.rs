//! meterline-storage
