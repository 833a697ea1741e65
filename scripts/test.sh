#!/usr/bin/env bash
# THE test command: brings the local stack up (installing what is missing),
# builds every binary the end-to-end tests start, and runs the whole suite
# against the real services. Extra arguments go to `cargo test`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

scripts/stack.sh up
log "building"
cargo build --workspace --bins
log "testing"
cargo test --workspace "$@"
