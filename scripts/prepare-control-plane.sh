#!/usr/bin/env bash
# Prepare the binaries of the e2e test control plane (etcd, kube-apiserver, kubectl) and cache them
# under .cache/kube/<version>/bin in the repo. Idempotent: a second run only checks the cache.
#
#   scripts/prepare-control-plane.sh          # build or reuse; prints the bin directory on stdout
#   KUBE_BIN_DIR=$(scripts/prepare-control-plane.sh)
#
# kube-apiserver is built from the k8s.io/kubernetes Go module in tools/kube (no Docker here), and so
# is kubectl unless an installed one is within the version skew Kubernetes supports (one minor version
# either side of the apiserver): $KUBECTL if set, else the kubectl on PATH. When both are built, one
# `go build` compiles them together. etcd comes from Debian's etcd-server package (installed with
# apt-get when running as root), or from $ETCD if set. Progress goes to stderr so stdout stays a
# single path.
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

minor="${version#v1.}"; minor="${minor%%.*}"

# The minor version of a kubectl binary, from `kubectl version --client -o json` ("gitVersion":
# "v1.33.2" or "v1.32.4-dispatcher"); empty when it does not run or is not a 1.x release.
kubectl_minor() {
  "$1" version --client -o json 2>/dev/null \
    | sed -n 's/^ *"gitVersion": *"v1\.\([0-9][0-9]*\)\..*/\1/p' | head -1
}

# kubectl is supported within one minor version of kube-apiserver; the e2e tests only use long-stable
# commands (apply, server-side apply, --dry-run=server, get -o jsonpath, label, delete, kustomize).
kubectl_in_skew() {
  local m
  m="$(kubectl_minor "$1")"
  [[ -n "$m" ]] && (( m >= minor - 1 && m <= minor + 1 ))
}

# Use an installed kubectl when one is within skew: a link in $bin, like etcd. A link made earlier is
# checked again, since the installed kubectl may have been upgraded or removed since.
reuse_kubectl() {
  if [[ -L "$bin/kubectl" ]]; then
    if kubectl_in_skew "$bin/kubectl"; then
      log "kubectl: $(readlink "$bin/kubectl") (v1.$(kubectl_minor "$bin/kubectl"), within one minor version of $version)"
      return 0
    fi
    log "kubectl: $(readlink "$bin/kubectl") is gone or no longer within one minor version of $version"
    rm -f "$bin/kubectl"
  fi
  [[ -x "$bin/kubectl" ]] && return 1 # built here earlier
  local candidate="${KUBECTL:-$(command -v kubectl || true)}"
  [[ -n "$candidate" ]] || return 1
  [[ "$candidate" == /* ]] || candidate="$PWD/$candidate"
  if kubectl_in_skew "$candidate"; then
    ln -sf "$candidate" "$bin/kubectl"
    log "kubectl: using $candidate (v1.$(kubectl_minor "$candidate"), within one minor version of $version)"
    return 0
  fi
  local m
  m="$(kubectl_minor "$candidate")"
  log "kubectl: $candidate is ${m:+v1.$m, }not within one minor version of $version: building kubectl"
  return 1
}

# Build the named commands of k8s.io/kubernetes that are not cached yet, in one `go build`: one module
# load and one action graph, and one binary compiles while the other links. The packages both use are
# compiled once either way (Go's build cache). kube-apiserver is most of the work: kubectl adds 203
# packages to its 1948 (about a tenth of the compile time of a cold build).
build_tools() {
  local todo=() name
  for name in "$@"; do
    if [[ -x "$bin/$name" ]]; then
      log "$name $version cached"
    else
      todo+=("$name")
    fi
  done
  (( ${#todo[@]} > 0 )) || return 0
  command -v go >/dev/null || { log "go is required to build ${todo[*]}"; exit 1; }
  log "building ${todo[*]} $version from k8s.io/kubernetes (a cold build takes many minutes)"
  local start=$SECONDS
  # Stamp the release into the binaries (`kubectl version`, the apiserver's /version), as the
  # Kubernetes release build does; a plain `go build` would report v0.0.0-master.
  local ldflags="-s -w" pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  done
  # Build into a temporary directory and rename, so an interrupted build never leaves a half-written
  # binary that a later run would take for a cached one.
  local tmp
  tmp="$(mktemp -d "$bin/.build.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tools" && go build -trimpath -ldflags="$ldflags" -o "$tmp/" "${todo[@]/#/k8s.io/kubernetes/cmd/}")
  for name in "${todo[@]}"; do mv "$tmp/$name" "$bin/$name"; done
  rm -rf "$tmp"
  trap - EXIT
  log "built ${todo[*]} in $((SECONDS - start))s"
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
if reuse_kubectl; then
  build_tools kube-apiserver
else
  build_tools kube-apiserver kubectl
fi
"$bin/kube-apiserver" --version >&2
echo "$bin"
