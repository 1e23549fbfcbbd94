#!/usr/bin/env bash
# Builds the pinned tools Herald's tests, generators and demo run, from the Go module proxy into bin/:
#   etcd            go.etcd.io/etcd/server/v3
#   kube-apiserver, kubectl, and for the real-node lab (internal/kubenode) kube-controller-manager, kube-scheduler,
#                   kubelet, kube-proxy: k8s.io/kubernetes
#   controller-gen  sigs.k8s.io/controller-tools
#   promtool        github.com/prometheus/prometheus (built without the service-discovery plugins, tag
#                   remove_all_sd: the alert tests need none)
#   helm            helm.sh/helm/v4 (lints and renders charts/herald)
# all pinned in one module, hack/tools/pins: one set of dependency versions, so the packages they share (k8s.io/api,
# client-go, grpc, otel, ...) compile once; and
#   herald-image    our image assembler (hack/tools/image; go-containerregistry, no container engine).
# Tools asked for together build in one go build, which links one while it compiles the next.
# Each binary carries a stamp of its module's go.mod and go.sum (and build tags): a second run with the same pins
# does nothing.
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
# promtool's tag; it selects files in Prometheus's discovery packages alone, so every pinned tool builds with it
# and they share one build.
pintags=remove_all_sd

# The build under way (its go build, its log, its output directory): stopped and removed however the script ends,
# an interrupt included.
log= pid= tmp=
trap '[[ -z $pid ]] || kill "$pid" 2>/dev/null; rm -rf "$log" ${tmp:+"$tmp"}' EXIT
trap 'exit 130' INT TERM

pkg() { # pkg NAME: the module directory and package of a tool
	case $1 in
	etcd) echo "pins ./etcd" ;;
	kube-apiserver | kubectl | kube-controller-manager | kube-scheduler | kubelet | kube-proxy)
		echo "pins k8s.io/kubernetes/cmd/$1" ;;
	controller-gen) echo "pins sigs.k8s.io/controller-tools/cmd/controller-gen" ;;
	promtool) echo "pins github.com/prometheus/prometheus/cmd/promtool" ;;
	helm) echo "pins helm.sh/helm/v4/cmd/helm" ;;
	herald-image) echo "image ." ;;
	*) echo "hack/tools.sh: unknown tool $1" >&2; exit 2 ;;
	esac
}

stamp() { # stamp DIR: what a binary built from module DIR must carry to be current
	local dir="$root/hack/tools/$1"
	(cat "$dir/go.mod" "$dir/go.sum"
		if [[ $1 == pins ]]; then echo "tags $pintags"; else cat "$dir"/*.go; fi # herald-image is our own code
	) | sha256sum | cut -c1-16
}

build() { # build NAME...: the named tools of one module that are not current, in one go build, into bin/
	local dir= names=() pkgs=() n d p
	for n in "$@"; do
		read -r d p <<<"$(pkg "$n")"
		dir=$d
		if [[ -x $bin/$n && -f $bin/$n.stamp && $(cat "$bin/$n.stamp") == "$(stamp "$d")" ]]; then
			continue
		fi
		names+=("$n") pkgs+=("$p")
	done
	((${#names[@]} > 0)) || return 0
	local tags=
	[[ $dir != pins ]] || tags=$pintags
	echo "hack/tools.sh: building ${names[*]} (the Kubernetes binaries and helm take minutes the first time)" >&2
	# go build -v names each package as it compiles it: a line every 30 s says how far the build is.
	local start=$SECONDS rc=0 next=30
	log=$(mktemp "${TMPDIR:-/tmp}/herald-tools.XXXXXX")
	tmp=$(mktemp -d "$bin/.tools.XXXXXX")
	# A lone package is written to the file -o names; several, each into the directory under its command name.
	local out=$tmp/
	((${#pkgs[@]} > 1)) || out=$tmp/${names[0]}
	(cd "$root/hack/tools/$dir" && exec go build -v -tags "$tags" -trimpath -ldflags='-s -w' -o "$out" "${pkgs[@]}") 2>"$log" &
	pid=$!
	while kill -0 "$pid" 2>/dev/null; do
		sleep 1
		if ((SECONDS - start >= next)); then
			echo "hack/tools.sh: still building ${names[*]}: $((SECONDS - start)) s, $(grep -c -v -e '^#' -e '^go: ' "$log") packages compiled" >&2
			next=$((next + 30))
		fi
	done
	wait "$pid" || rc=$?
	pid=
	if ((rc != 0)); then
		grep -v -E '^[a-zA-Z0-9._~/-]+$' "$log" >&2 || true
		echo "hack/tools.sh: building ${names[*]} failed" >&2
		exit "$rc"
	fi
	for n in "${names[@]}"; do
		# go build names a command after its package's directory: ./etcd is etcd, and so on for each.
		mv "$tmp/$n" "$bin/$n"
		stamp "$dir" >"$bin/$n.stamp"
	done
	rm -rf "$log" "$tmp"
	log= tmp=
	((SECONDS - start < 30)) || echo "hack/tools.sh: built ${names[*]} in $((SECONDS - start)) s" >&2
}

controlplane=(etcd kube-apiserver kubectl)
nodes=(kube-controller-manager kube-scheduler kubelet kube-proxy)
[[ $# -gt 0 ]] || set -- all
want=()
for w in "$@"; do
	case $w in
	controlplane) want+=("${controlplane[@]}") ;;
	nodes) want+=("${nodes[@]}") ;;
	all) want+=("${controlplane[@]}" "${nodes[@]}" controller-gen promtool helm herald-image) ;;
	*) pkg "$w" >/dev/null; want+=("$w") ;;
	esac
done
pinned=() image=()
for w in "${want[@]}"; do
	if [[ $w == herald-image ]]; then image=(herald-image); else pinned+=("$w"); fi
done
((${#pinned[@]} == 0)) || build "${pinned[@]}"
((${#image[@]} == 0)) || build "${image[@]}"
