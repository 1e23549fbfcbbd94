#!/usr/bin/env bash
# Installs the tools the network-namespace lab (internal/lab) and its tests use, with apt-get, as root:
#   ip (iproute2), arping (iputils-arping), ndisc6, nft (nftables), tcpdump, ping (iputils-ping).
# Only what is missing is installed; a second run does nothing. It prints what it did.
# Usage: hack/lab-deps.sh
set -euo pipefail

# command:package pairs; a package is installed when its command is missing.
want=(ip:iproute2 arping:iputils-arping ndisc6:ndisc6 nft:nftables tcpdump:tcpdump ping:iputils-ping)

missing=()
for pair in "${want[@]}"; do
	cmd=${pair%%:*} pkg=${pair#*:}
	if ! command -v "$cmd" >/dev/null 2>&1 && ! [[ -x /usr/sbin/$cmd || -x /sbin/$cmd ]]; then
		missing+=("$pkg")
	fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
	echo "hack/lab-deps.sh: nothing to do: ip, arping, ndisc6, nft, tcpdump and ping are installed"
	exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
	if [[ ${CI:-} == true ]]; then
		echo "hack/lab-deps.sh: missing ${missing[*]}: run as root (CI=true: the lab tests must run)" >&2
		exit 1
	fi
	echo "hack/lab-deps.sh: missing ${missing[*]} and not root: the lab (end-to-end) tests will skip" >&2
	exit 0
fi
export DEBIAN_FRONTEND=noninteractive
# Another apt-get may hold the lock: wait for it rather than fail.
apt_opts=(-qq -o DPkg::Lock::Timeout=300)
if ! apt-get "${apt_opts[@]}" install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
	# The package lists may be missing or stale: update them once, then retry loudly.
	apt-get "${apt_opts[@]}" update >/dev/null
	apt-get "${apt_opts[@]}" install -y --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "hack/lab-deps.sh: installed ${missing[*]}"
