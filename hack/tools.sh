#!/usr/bin/env bash
# Builds the pinned tools Herald's tests, generators and demo run, from the Go module proxy into bin/:
#   etcd            go.etcd.io/etcd/server/v3 (hack/tools/etcd)
#   kube-apiserver  k8s.io/kubernetes         (hack/tools/kube)
#   kubectl         k8s.io/kubernetes         (hack/tools/kube)
#   kube-controller-manager, kube-scheduler, kubelet, kube-proxy
#                   k8s.io/kubernetes         (hack/tools/kube; the real-node lab: internal/nodelab)
#   controller-gen  sigs.k8s.io/controller-tools (hack/tools/ctrltools)
#   promtool        github.com/prometheus/prometheus (hack/tools/promtool; built without the service-discovery
#                   plugins, tag remove_all_sd: the alert tests need none)
#   helm            helm.sh/helm/v4          (hack/tools/helm; lints and renders charts/herald)
#   herald-image    our image assembler      (hack/tools/image; go-containerregistry, no container engine)
# Each binary carries a stamp of its tool module's go.mod and go.sum (and build tags): a second run with the same
# pins does nothing.
# Groups: controlplane (etcd, kube-apiserver, kubectl); nodes (the real-node lab's kube-controller-manager,
# kube-scheduler, kubelet, kube-proxy); all (every tool).
# Usage: hack/tools.sh [controlplane|nodes|all|NAME...]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/bin"
mkdir -p "$bin"
# The checksum database does not serve every k8s.io / go.etcd.io module; the go.sum files committed beside the
# tool modules hold their hashes, so a build needs no lookup.
export GONOSUMDB=${GONOSUMDB:-k8s.io,go.etcd.io}
export GOFLAGS=-mod=mod
export CGO_ENABLED=0

# The build of the tool being built (its go build, its log, its output): stopped and removed however the script
# ends, an interrupt included.
log= pid= out=
trap '[[ -z $pid ]] || kill "$pid" 2>/dev/null; rm -f "$log" ${out:+"$out.tmp"}' EXIT
trap 'exit 130' INT TERM

build() { # build NAME: one tool into bin/NAME
	local dir pkg tags=
	case $1 in
	etcd) dir=etcd pkg=. ;;
	kube-apiserver) dir=kube pkg=k8s.io/kubernetes/cmd/kube-apiserver ;;
	kubectl) dir=kube pkg=k8s.io/kubernetes/cmd/kubectl ;;
	kube-controller-manager | kube-scheduler | kubelet | kube-proxy) dir=kube pkg=k8s.io/kubernetes/cmd/$1 ;;
	controller-gen) dir=ctrltools pkg=sigs.k8s.io/controller-tools/cmd/controller-gen ;;
	promtool) dir=promtool pkg=github.com/prometheus/prometheus/cmd/promtool tags=remove_all_sd ;;
	helm) dir=helm pkg=helm.sh/helm/v4/cmd/helm ;;
	herald-image) dir=image pkg=. ;;
	*) echo "hack/tools.sh: unknown tool $1" >&2; exit 2 ;;
	esac
	dir="$root/hack/tools/$dir"
	local want
	out="$bin/$1"
	want=$( (cat "$dir/go.mod" "$dir/go.sum"; [[ -z $tags ]] || echo "tags $tags"
		# herald-image is our own code, not only a pin: its stamp covers its sources too.
		[[ $1 != herald-image ]] || cat "$dir"/*.go) | sha256sum | cut -c1-16)
	if [[ -x $out && -f $out.stamp && $(cat "$out.stamp") == "$want" ]]; then
		return 0
	fi
	echo "hack/tools.sh: building $1 (the Kubernetes binaries and helm take minutes the first time)" >&2
	# go build -v names each package as it compiles it: a line every 30 s says how far the build is.
	local start=$SECONDS rc=0 next=30
	log=$(mktemp "${TMPDIR:-/tmp}/herald-tools-$1.XXXXXX")
	(cd "$dir" && exec go build -v -tags "$tags" -trimpath -ldflags='-s -w' -o "$out.tmp" "$pkg") 2>"$log" &
	pid=$!
	while kill -0 "$pid" 2>/dev/null; do
		sleep 1
		if ((SECONDS - start >= next)); then
			echo "hack/tools.sh: still building $1: $((SECONDS - start)) s, $(grep -c -v -e '^#' -e '^go: ' "$log") packages compiled" >&2
			next=$((next + 30))
		fi
	done
	wait "$pid" || rc=$?
	if ((rc != 0)); then
		grep -v -E '^[a-zA-Z0-9._~/-]+$' "$log" >&2 || true
		rm -f "$log" "$out.tmp"
		echo "hack/tools.sh: building $1 failed" >&2
		exit "$rc"
	fi
	rm -f "$log"
	pid=
	mv "$out.tmp" "$out"
	echo "$want" >"$out.stamp"
	((SECONDS - start < 30)) || echo "hack/tools.sh: built $1 in $((SECONDS - start)) s" >&2
}

[[ $# -gt 0 ]] || set -- all
for want in "$@"; do
	case $want in
	controlplane) build etcd; build kube-apiserver; build kubectl ;;
	nodes) build kube-controller-manager; build kube-scheduler; build kubelet; build kube-proxy ;;
	all) build etcd; build kube-apiserver; build kubectl; build kube-controller-manager; build kube-scheduler
		build kubelet; build kube-proxy; build controller-gen; build promtool; build helm; build herald-image ;;
	*) build "$want" ;;
	esac
done
