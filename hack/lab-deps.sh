#!/usr/bin/env bash
# Installs the Debian packages the network-namespace lab (internal/lab), its tests and the e2e tests use, with
# apt-get, as root: iproute2 (ip, bridge), iputils-arping, ndisc6, nftables, tcpdump, iputils-ping, and for the
# real-node lab (internal/kubenode) the container runtime: containerd, runc, containernetworking-plugins (bridge,
# host-local, loopback in /usr/lib/cni) and util-linux (nsenter).
# containerd comes from Debian rather than from its Go module: the package brings containerd, its runc shim
# (containerd-shim-runc-v2) and ctr built and patched together, as the distribution ships them, and runc and the CNI
# plugins have to come from Debian anyway; building containerd from the module proxy would add minutes to every
# fresh clone's build and a second dependency tree to pin. Its daemon is not started as a service: the lab starts
# one containerd per node, with its own root, state and socket.
# Only what is missing is installed (after updating the package lists); a second run does nothing.
# It prints what it did.
# Usage: hack/lab-deps.sh
set -euo pipefail

want=(iproute2 iputils-arping ndisc6 nftables tcpdump iputils-ping containerd runc containernetworking-plugins util-linux)

installed() { # installed PKG: whether dpkg has PKG installed
	[[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]]
}

missing=()
for pkg in "${want[@]}"; do
	installed "$pkg" || missing+=("$pkg")
done

if [[ ${#missing[@]} -eq 0 ]]; then
	echo "hack/lab-deps.sh: nothing to do: ${want[*]} are installed"
	exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
	echo "hack/lab-deps.sh: missing ${missing[*]}: run as root" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# Another apt-get may hold the lock: wait for it rather than fail.
apt_opts=(-qq -o DPkg::Lock::Timeout=300)
# The package lists may be missing or stale: update them first.
echo "hack/lab-deps.sh: installing ${missing[*]} (apt-get update, then install)" >&2
apt-get "${apt_opts[@]}" update >/dev/null
apt-get "${apt_opts[@]}" install -y --no-install-recommends "${missing[@]}" >/dev/null
echo "hack/lab-deps.sh: installed ${missing[*]}"
