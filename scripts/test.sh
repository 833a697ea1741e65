#!/usr/bin/env bash
# THE test command: brings the local stack up (installing what is missing),
# builds every binary the end-to-end tests start, and runs the whole suite
# against the real services. Extra arguments go to `cargo test`, e.g.
#   scripts/test.sh -p meterline-tests -- --nocapture
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

scripts/stack.sh up
command -v cargo >/dev/null || die "cargo is missing: install Rust (https://rustup.rs)"
log "cargo build --workspace --bins"
cargo build --workspace --bins
log "cargo test --workspace $*"
cargo test --workspace "$@"
