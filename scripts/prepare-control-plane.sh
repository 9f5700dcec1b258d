#!/usr/bin/env bash
# Prepare the binaries of the e2e test control plane (etcd, kube-apiserver, kubectl) and cache them
# under .cache/kube/<version>/bin in the repo. Idempotent: a second run only checks the cache.
#
#   scripts/prepare-control-plane.sh          # build or reuse; prints the bin directory on stdout
#   KUBE_BIN_DIR=$(scripts/prepare-control-plane.sh)
#
# kube-apiserver and kubectl are built from the k8s.io/kubernetes Go module in tools/kube (no Docker
# here). etcd comes from Debian's etcd-server package (installed with apt-get when running as root), or
# from $ETCD if set. Progress goes to stderr so stdout stays a single path.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="$repo/tools/kube"
# The require line, either single-line or inside a require ( ... ) block.
version="$(awk '{ if ($1 == "require") $0 = substr($0, 9) } $1 == "k8s.io/kubernetes" && $2 ~ /^v/ { print $2; exit }' "$tools/go.mod")"
if [[ -z "$version" ]]; then
  echo "prepare-control-plane: cannot read the k8s.io/kubernetes version from $tools/go.mod" >&2
  exit 1
fi
bin="$repo/.cache/kube/$version/bin"
mkdir -p "$bin"

log() { echo "prepare-control-plane: $*" >&2; }

build_tool() {
  local name="$1"
  if [[ -x "$bin/$name" ]]; then
    log "$name $version cached"
    return
  fi
  command -v go >/dev/null || { log "go is required to build $name"; exit 1; }
  log "building $name $version from k8s.io/kubernetes (a cold build takes many minutes)"
  local start=$SECONDS
  # Build into a temp name and rename, so an interrupted build never leaves a half-written binary
  # that a later run would take for a cached one.
  # Stamp the release into the binaries (`kubectl version`, the apiserver's /version), as the
  # Kubernetes release build does; a plain `go build` would report v0.0.0-master.
  local minor="${version#v1.}"; minor="${minor%%.*}"
  local ldflags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  done
  (cd "$tools" && go build -trimpath -ldflags="$ldflags" -o "$bin/.$name.tmp" "k8s.io/kubernetes/cmd/$name")
  mv "$bin/.$name.tmp" "$bin/$name"
  log "built $name in $((SECONDS - start))s"
}

etcd_ok() { [[ -x "$1" ]] && "$1" --version >/dev/null 2>&1; }

prepare_etcd() {
  if etcd_ok "$bin/etcd"; then
    log "etcd cached"
    return
  fi
  local etcd="${ETCD:-}"
  if [[ -z "$etcd" ]] && command -v etcd >/dev/null; then etcd="$(command -v etcd)"; fi
  if [[ -z "$etcd" ]]; then
    if [[ "$(id -u)" != 0 ]] || ! command -v apt-get >/dev/null; then
      log "etcd not found: install Debian's etcd-server (apt-get install etcd-server) or set ETCD=/path/to/etcd"
      exit 1
    fi
    log "installing etcd-server with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq etcd-server >&2
    etcd="$(command -v etcd)"
  fi
  etcd_ok "$etcd" || { log "$etcd does not run"; exit 1; }
  # A symlink keeps the package manager's binary authoritative; the harness only needs one directory.
  ln -sf "$etcd" "$bin/etcd"
  log "etcd: $("$etcd" --version | head -1)"
}

command -v openssl >/dev/null || { log "openssl is required (certificates for the test control plane)"; exit 1; }
prepare_etcd
build_tool kube-apiserver
build_tool kubectl
"$bin/kube-apiserver" --version >&2
echo "$bin"
