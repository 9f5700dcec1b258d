#!/usr/bin/env bash
# Build tools/cilium-oracle (Cilium's own policy code answering flow verdicts, for the differential
# test) and cache the binary under .cache/cilium-oracle/<cilium version>/cilium-oracle in the repo.
# Idempotent: a second run only checks the cache.
#
#   scripts/prepare-cilium-oracle.sh          # build or reuse; prints the binary's path on stdout
#
# A cold build compiles a large part of the Cilium module (about half an hour on 2 shared cores); the Go module
# and build caches make later builds of a changed main.go fast. Progress goes to stderr so stdout
# stays a single path.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="$repo/tools/cilium-oracle"
# The require line, either single-line or inside a require ( ... ) block.
version="$(awk '{ if ($1 == "require") $0 = substr($0, 9) } $1 == "github.com/cilium/cilium" && $2 ~ /^v/ { print $2; exit }' "$tools/go.mod")"
if [[ -z "$version" ]]; then
  echo "prepare-cilium-oracle: cannot read the github.com/cilium/cilium version from $tools/go.mod" >&2
  exit 1
fi
dir="$repo/.cache/cilium-oracle/$version"
bin="$dir/cilium-oracle"
log() { echo "prepare-cilium-oracle: $*" >&2; }

# The cached binary is reused only if it was built from the current main.go and go.sum: a changed
# oracle must not be answered by an old one.
stamp="$(cat "$tools/main.go" "$tools/go.mod" "$tools/go.sum" | sha256sum | cut -c1-16)"
if [[ -x "$bin" && "$(cat "$dir/.stamp" 2>/dev/null)" == "$stamp" ]]; then
  log "cilium-oracle (Cilium $version) cached"
  echo "$bin"
  exit 0
fi
command -v go >/dev/null || export PATH="$PATH:/usr/local/go/bin"
command -v go >/dev/null || { log "go is required to build the oracle"; exit 1; }
mkdir -p "$dir"
log "building cilium-oracle against Cilium $version (a cold build takes about half an hour)"
start=$SECONDS
# Build into a temp name and rename, so an interrupted build never leaves a half-written binary.
(cd "$tools" && go build -trimpath -ldflags="-s -w -X main.ciliumVersion=$version" -o "$dir/.cilium-oracle.tmp" .)
mv "$dir/.cilium-oracle.tmp" "$bin"
echo "$stamp" > "$dir/.stamp"
log "built in $((SECONDS - start))s ($(du -h "$bin" | cut -f1))"
echo "$bin"
