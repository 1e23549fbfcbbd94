#!/usr/bin/env bash
# Installs the Debian packages the network-namespace lab (internal/lab), its tests and the e2e tests use, with
# apt-get, as root: iproute2 (ip, bridge), iputils-arping, ndisc6, nftables, tcpdump, iputils-ping.
# Only what is missing is installed (the package lists are updated only then); a second run does nothing.
# It prints what it did.
# Usage: hack/lab-deps.sh
set -euo pipefail

want=(iproute2 iputils-arping ndisc6 nftables tcpdump iputils-ping)

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
if ! apt-get "${apt_opts[@]}" install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
	# The package lists may be missing or stale: update them once, then retry, showing errors.
	apt-get "${apt_opts[@]}" update >/dev/null
	apt-get "${apt_opts[@]}" install -y --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "hack/lab-deps.sh: installed ${missing[*]}"
