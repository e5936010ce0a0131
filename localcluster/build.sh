#!/usr/bin/env bash
# Builds the local control plane (kube-apiserver, kube-controller-manager,
# kube-scheduler, etcd, kwok, helm) and a kubectl of the same Kubernetes
# release (inside the supported client skew) from pinned Go modules through the Go
# module proxy into a cache outside the repository. Each tool is rebuilt only
# when its binary is missing or its pinned version changed.
#
# Usage: localcluster/build.sh        (prints the bin directory on the last line)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"

cache="${CHANGEGATE_CACHE:-$HOME/.cache/changegate}"
bin="$cache/bin"
work="$cache/build"
mkdir -p "$bin" "$work"
export CGO_ENABLED=0
export GOFLAGS=-mod=mod

log() { printf '[build] %s\n' "$*" >&2; }

# up_to_date TOOL VERSION: the binary exists and was built from VERSION.
up_to_date() {
  [[ -x "$bin/$1" && -f "$bin/$1.version" && "$(cat "$bin/$1.version")" == "$2" ]]
}

stamp() { printf '%s\n' "$2" >"$bin/$1.version"; }

# k8s.io/kubernetes replaces every k8s.io/* staging module with a path inside
# its own tree, so `go install` refuses it. A wrapper module requires it and
# replaces each staging module with the published v0.Y.Z of the same release;
# the list is read from that release's own go.mod, fetched through the proxy.
build_kubernetes() {
  local v="$KUBERNETES_VERSION" tools=() t
  for t in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
    up_to_date "$t" "$v" || tools+=("$t")
  done
  ((${#tools[@]})) || { log "kubernetes $v: cached"; return; }

  local staging="v0.${v#v1.}" dir="$work/kubernetes-$v"
  log "kubernetes $v: building ${tools[*]} (staging modules at $staging)"
  rm -rf "$dir" && mkdir -p "$dir" && cd "$dir"
  local gomod
  gomod="$(go mod download -json "k8s.io/kubernetes@$v" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')"
  {
    printf 'module changegate.dev/localcluster/kubernetes\n\n'
    printf 'go %s\n\n' "$(sed -n 's/^go \(.*\)/\1/p' "$gomod")"
    printf 'require k8s.io/kubernetes %s\n\nreplace (\n' "$v"
    # lines like: k8s.io/api => ./staging/src/k8s.io/api
    sed -n 's#^\s*\(k8s\.io/[a-z0-9-]*\) => \./staging/src/.*#\t\1 => \1 '"$staging"'#p' "$gomod"
    printf ')\n'
  } >go.mod
  printf 'package tools\n\nimport (\n\t_ "k8s.io/kubernetes/cmd/kube-apiserver"\n\t_ "k8s.io/kubernetes/cmd/kube-controller-manager"\n\t_ "k8s.io/kubernetes/cmd/kube-scheduler"\n\t_ "k8s.io/kubernetes/cmd/kubectl"\n)\n' >tools.go
  sed -i 's/^package tools/\/\/go:build tools\n\npackage tools/' tools.go
  go mod tidy >&2

  local minor="${v#v1.}"; minor="${minor%%.*}"
  local pkg=k8s.io/component-base/version
  local ldflags="-s -w -X $pkg.gitVersion=$v -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean -X $pkg.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  ldflags+=" -X k8s.io/client-go/pkg/version.gitVersion=$v -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
  for t in "${tools[@]}"; do
    log "  go build $t"
    go build -tags tools -ldflags "$ldflags" -o "$bin/$t" "k8s.io/kubernetes/cmd/$t"
    stamp "$t" "$v"
  done
}

# etcd's server module also carries replace directives (to its sibling
# modules); inside a wrapper module they are ignored and the sibling versions
# its go.mod requires are used.
build_etcd() {
  local v="$ETCD_VERSION" dir="$work/etcd-$ETCD_VERSION"
  up_to_date etcd "$v" && { log "etcd $v: cached"; return; }
  log "etcd $v: building"
  rm -rf "$dir" && mkdir -p "$dir" && cd "$dir"
  printf 'module changegate.dev/localcluster/etcd\n\ngo 1.24\n\nrequire go.etcd.io/etcd/server/v3 %s\n' "$v" >go.mod
  printf '//go:build tools\n\npackage tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n' >tools.go
  go mod tidy >&2
  go build -ldflags "-s -w" -o "$bin/etcd" go.etcd.io/etcd/server/v3
  stamp etcd "$v"
}

# kwok and helm have no replace directives: plain `go install`.
build_installable() {
  local tool="$1" pkg="$2" v="$3"
  up_to_date "$tool" "$v" && { log "$tool $v: cached"; return; }
  log "$tool $v: building"
  GOBIN="$bin" go install -ldflags "-s -w $4" "$pkg@$v"
  stamp "$tool" "$v"
}

build_etcd
build_installable kwok sigs.k8s.io/kwok/cmd/kwok "$KWOK_VERSION" "-X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION"
build_installable helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION" "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
build_kubernetes
echo "$bin"
