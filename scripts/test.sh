#!/usr/bin/env bash
# THE test command: checks formatting and lints, brings the local stack up
# (installing what is missing), builds every binary the end-to-end tests
# start, and runs the whole suite against the real services. Extra
# arguments go to `cargo test`, e.g.
#   scripts/test.sh -p meterline-tests -- --nocapture
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

command -v cargo >/dev/null || die "cargo is missing: install Rust (https://rustup.rs)"
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
  command -v rustup >/dev/null || die "cargo fmt and cargo clippy are missing, and there is no rustup to add them"
  log "rustup component add rustfmt clippy"
  rustup component add rustfmt clippy
fi
# The house rules first: they fail in seconds, before the stack and the
# suite take minutes.
log "cargo fmt --all --check"
cargo fmt --all --check || die "formatting differs from rustfmt.toml: run cargo fmt --all"
log "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

scripts/stack.sh up
log "cargo build --workspace --bins"
cargo build --workspace --bins
log "cargo test --workspace $*"
cargo test --workspace "$@"
