#!/usr/bin/env bash
# check-clean.sh snapshot FILE | compare BEFORE AFTER
#
# What hack/cluster/up can change on the host, written down so that a test
# can prove down put everything back: mount points, network namespaces,
# links and addresses, routes, the nftables ruleset (iptables-nft's tables
# included) and legacy iptables, the sysctls the kubelet and kube-proxy
# write, the cgroups of pods, the folders the components make outside the cluster's
# folder, and processes that belong to the cluster (their command line names
# its folder or its socket, or their root is inside it).
#
# compare prints a diff and exits 1 when AFTER differs from BEFORE.
set -euo pipefail

dir=${EXPSYNC_CLUSTER_DIR:-/tmp/expsync-cluster}
sysctls=(net.ipv4.ip_forward net.ipv4.conf.all.route_localnet net.bridge.bridge-nf-call-iptables
	net.bridge.bridge-nf-call-ip6tables vm.overcommit_memory vm.panic_on_oom kernel.panic
	kernel.panic_on_oops kernel.keys.root_maxkeys kernel.keys.root_maxbytes net.netfilter.nf_conntrack_max
	net.netfilter.nf_conntrack_tcp_timeout_established net.netfilter.nf_conntrack_tcp_timeout_close_wait)
paths=(/var/run/netns /run/netns /var/lib/cni /run/containerd /var/log/containers /var/log/pods
	/usr/libexec/kubernetes /etc/kubernetes /var/lib/kubelet /opt/containerd /opt/cni /etc/cni "$dir")

snapshot() {
	local p k
	echo "## mounts"
	awk '{ print $5 }' /proc/self/mountinfo | sort -u
	echo "## netns"
	ls -A /var/run/netns /run/netns 2>/dev/null | sort -u || true
	echo "## links"
	ip -o link show | awk -F': ' '{ sub(/@.*/, "", $2); print $2 }' | sort
	echo "## addresses"
	ip -o addr show | awk '{ print $2, $3, $4 }' | sort
	echo "## routes"
	ip route show table all 2>/dev/null | sort
	echo "## nftables"
	# Handles and counters change by themselves; the rules are what count.
	nft list ruleset 2>/dev/null | sed -E 's/ # handle [0-9]+//; s/counter packets [0-9]+ bytes [0-9]+/counter/'
	echo "## iptables-legacy"
	if command -v iptables-legacy-save >/dev/null; then
		iptables-legacy-save 2>/dev/null | grep -v '^#' | sed -E 's/\[[0-9]+:[0-9]+\]//' || true
	fi
	echo "## sysctls"
	for k in "${sysctls[@]}"; do
		printf '%s = %s\n' "$k" "$(sysctl -n "$k" 2>/dev/null || echo '(none)')"
	done
	echo "## cgroups"
	# Those of a kubelet's or containerd's kind only: other programs here
	# make and remove cgroups of their own all the time.
	find /sys/fs/cgroup -mindepth 1 -maxdepth 4 -type d 2>/dev/null | grep -E '/(k8s\.io|kubepods[^/]*)(/|$)' | sort || true
	echo "## paths"
	for p in "${paths[@]}"; do
		if [[ -e $p || -L $p ]]; then echo "$p exists"; else echo "$p missing"; fi
	done
	echo "## processes"
	local pid cmd root
	for pid in /proc/[0-9]*; do
		cmd=$( (tr "\0" " " <"$pid/cmdline") 2>/dev/null) || continue
		root=$(readlink "$pid/root" 2>/dev/null) || root=/
		[[ $pid == "/proc/$$" || $pid == "/proc/$BASHPID" ]] && continue
		if [[ $cmd == *"$dir/"* || $root == "$dir/"* ]]; then
			echo "${pid#/proc/} $cmd (root $root)"
		fi
	done | grep -v check-clean.sh || true
}

case ${1:-} in
snapshot)
	snapshot >"${2:?usage: $0 snapshot FILE}"
	;;
compare)
	before=${2:?usage: $0 compare BEFORE AFTER}
	after=${3:?usage: $0 compare BEFORE AFTER}
	if ! diff -u "$before" "$after"; then
		echo "check-clean: the host differs from before up (above: - before, + after)" >&2
		exit 1
	fi
	echo "check-clean: nothing left behind ($(grep -c . "$after") lines compared)"
	;;
*)
	echo "usage: $0 snapshot FILE | compare BEFORE AFTER" >&2
	exit 2
	;;
esac
