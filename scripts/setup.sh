#!/usr/bin/env bash
# Installs what tamperscope's targets need, idempotently: Go modules, the
# Debian packages for the lab and live capture (and openssl, which checks
# the secure test broker is up), the Kafka jars, and (for
# "bench") Suricata from bookworm-backports.
#
#   scripts/setup.sh test    packages the test suite needs
#   scripts/setup.sh demo    Go modules only
#   scripts/setup.sh bench   test + Suricata and tshark for peer figures
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
what=${1:-test}

log() { echo "setup.sh: $*" >&2; }

go mod download

[ "$what" = demo ] && exit 0

need=()
backports=0
have() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
for p in tcpdump ethtool iptables iproute2 tshark clang llvm libbpf-dev chromium openssl; do
	have "$p" || need+=("$p")
done
if [ "$what" = bench ]; then
	if ! have suricata; then
		if ! grep -rqs bookworm-backports /etc/apt/sources.list /etc/apt/sources.list.d/; then
			echo 'deb http://deb.debian.org/debian bookworm-backports main' >/etc/apt/sources.list.d/backports.list
		fi
		backports=1
	fi
fi
if [ ${#need[@]} -gt 0 ] || [ "$backports" = 1 ]; then
	[ "$(id -u)" = 0 ] || { log "missing packages (${need[*]} suricata); run as root to install them"; exit 1; }
fi
if [ ${#need[@]} -gt 0 ]; then
	log "installing ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	echo 'wireshark-common wireshark-common/install-setuid boolean false' | debconf-set-selections
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if [ "$backports" = 1 ]; then
	# Suricata 7 and its libraries come from bookworm-backports together.
	log "installing suricata from bookworm-backports"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq -t bookworm-backports suricata >/dev/null
	systemctl disable --now suricata >/dev/null 2>&1 || true
fi
sh lab/setup.sh # the lab's tools: iproute2, iptables, ethtool, tcpdump, ping
scripts/kafka.sh fetch
