//! meterline-sdk
