#!/bin/sh
# Installs the binaries the censor lab drives (netns.Tools: ip, tc,
# iptables, ethtool, tcpdump, ping, sysctl). Idempotent: does nothing when
# every tool is present.
set -eu

need=""
command -v ip >/dev/null 2>&1 || need="$need iproute2"
command -v tc >/dev/null 2>&1 || need="$need iproute2"
command -v iptables >/dev/null 2>&1 || need="$need iptables"
command -v ip6tables >/dev/null 2>&1 || need="$need iptables"
command -v ethtool >/dev/null 2>&1 || need="$need ethtool"
command -v tcpdump >/dev/null 2>&1 || need="$need tcpdump"
command -v ping >/dev/null 2>&1 || need="$need iputils-ping"
command -v sysctl >/dev/null 2>&1 || need="$need procps"

if [ -z "$need" ]; then
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	echo "lab/setup.sh: missing$need; run as root to install" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086 # word splitting of the package list is wanted
apt-get install -y -qq --no-install-recommends $need >/dev/null
