#!/usr/bin/env bash
# cluster.sh up|down|status|env|images — a real single-node Kubernetes on this
# machine, for the e2e tier (docs/real-cluster.md).
#
#   up      install the Debian packages needed, build the binaries (cached),
#           build the images, start etcd, kube-apiserver, containerd,
#           kube-controller-manager, kube-scheduler, kubelet and kube-proxy,
#           import the images, wait until the node is Ready, and print the
#           kubeconfig. Running it again while the cluster is up does nothing.
#   down    stop exactly what up started and remove everything it made:
#           processes, mounts, network namespaces, the bridge, the nftables
#           rules, the changed sysctls, cgroups, files. Nothing running is fine.
#   prepare install the packages and build the binaries (what up does first;
#           cached), without starting anything.
#   status  say what runs.
#   env     print the variables the e2e test reads (KUBECONFIG, images).
#   images  rebuild the images and import them into the running node.
#
# Everything lives under one folder, $EXPSYNC_CLUSTER_DIR (default
# /tmp/expsync-cluster). Needs root (a kubelet, a bridge, mounts), Debian 12
# and the Go module proxy. Settings: EXPSYNC_CACHE (build cache, default
# ~/.cache/expsync), EXPSYNC_CLUSTER_SKIP_BUILD=1 (use what is cached).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
dir=${EXPSYNC_CLUSTER_DIR:-/tmp/expsync-cluster}
cache=${EXPSYNC_CACHE:-$HOME/.cache/expsync}
envtest_bin=$cache/envtest/bin
node_bin=$cache/cluster/bin
export GOTOOLCHAIN=local

# The node's network. The API server, the kubelet and the node's address are
# on a bridge of the host, not on 127.0.0.1: pods (and the controller in one)
# must reach the API server, and a pod's 127.0.0.1 is its own.
bridge=expsync0
node_ip=10.213.0.1
pod_cidr=10.213.0.0/16
service_cidr=10.214.0.0/24
service_ip=10.214.0.1
node_name=expsync-node

# What the kubelet and kube-proxy may change (restored by down), and what the
# checks compare.
sysctls=(net.ipv4.ip_forward net.ipv4.conf.all.route_localnet net.bridge.bridge-nf-call-iptables
	net.bridge.bridge-nf-call-ip6tables vm.overcommit_memory vm.panic_on_oom kernel.panic
	kernel.panic_on_oops kernel.keys.root_maxkeys kernel.keys.root_maxbytes net.netfilter.nf_conntrack_max
	net.netfilter.nf_conntrack_tcp_timeout_established net.netfilter.nf_conntrack_tcp_timeout_close_wait)
# Folders outside $dir that the components create when missing (the netns
# and CNI cache of containerd's CRI, the shim sockets, the kubelet's log
# links); down removes them again if up found them missing.
# (/var/lib/kubelet: the kubelet's device-plugin socket has a fixed path.)
outside=(/var/run/netns /run/netns /var/lib/cni /run/containerd /var/log/containers /var/log/pods
	/usr/libexec/kubernetes /etc/kubernetes /var/lib/kubelet /opt/containerd)

components=(etcd kube-apiserver containerd kube-controller-manager kube-scheduler kubelet kube-proxy)

log() { printf '%s cluster: %s\n' "$(date +%T)" "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

pidfile() { echo "$dir/run/$1.pid"; }

# There is one node per machine (its bridge, ports and host folders are
# fixed): up, down and images take a machine-wide lock for their own
# duration, so two callers never interleave. Who brought the node up is in
# $dir/owner (EXPSYNC_CLUSTER_OWNER, set by e2e.sh; else the user and folder
# of a hand-run up): e2e.sh reads it before it takes the node over.
lock_node() {
	[[ -z ${node_locked:-} ]] || return 0 # up calls down
	node_locked=1
	exec 9>"$dir.lock"
	if ! flock -n 9; then
		log "another cluster.sh up/down/images is at work on $dir: waiting for it"
		flock 9
	fi
}

# alive NAME: the recorded process runs and is still that program (a reused
# PID is not ours).
alive() {
	local f pid
	f=$(pidfile "$1")
	[[ -f $f ]] || return 1
	pid=$(<"$f")
	[[ -d /proc/$pid ]] || return 1
	tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$1" || return 1
}

# start NAME COMMAND...: run a daemon in its own session, output to its log.
start() {
	local name=$1
	shift
	if alive "$name"; then
		return 0
	fi
	log "starting $name"
	# Not the lock descriptors (9: lock_node's, 8: e2e.sh's): a daemon that
	# inherited one would hold the machine's lock for as long as it runs.
	setsid "$@" >>"$dir/logs/$name.log" 2>&1 </dev/null 8>&- 9>&- &
	echo $! >"$(pidfile "$name")"
}

# stop NAME: SIGTERM, then SIGKILL after 20 s.
stop() {
	local name=$1 pid i
	alive "$name" || {
		rm -f "$(pidfile "$name")"
		return 0
	}
	pid=$(<"$(pidfile "$name")")
	log "stopping $name ($pid)"
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 200; i++)); do
		[[ -d /proc/$pid ]] || break
		sleep 0.1
	done
	if [[ -d /proc/$pid ]]; then
		log "$name did not stop in 20 s: SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
		while [[ -d /proc/$pid ]]; do sleep 0.1; done
	fi
	rm -f "$(pidfile "$name")"
}

# wait_for SECONDS WHAT COMMAND...: poll until COMMAND succeeds.
wait_for() {
	local seconds=$1 what=$2 deadline
	shift 2
	deadline=$((SECONDS + seconds))
	until "$@" >/dev/null 2>&1; do
		if ((SECONDS >= deadline)); then
			log "$what: not ready after ${seconds}s; the last lines of the logs:"
			tail -n 5 "$dir"/logs/*.log >&2 || true
			die "$what did not come up (logs in $dir/logs)"
		fi
		sleep 0.5
	done
}

kubectl() { "$node_bin/kubectl" --kubeconfig "$dir/kubeconfig" "$@"; }
ctr() { command ctr --address "$dir/containerd/containerd.sock" "$@"; }

# free_ports ADDRESS N: N ports free on ADDRESS now (nothing fixed: other
# engineers' servers and tests use this machine too).
free_ports() {
	python3 - "$1" "$2" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[2])):
    s = socket.socket()
    s.bind((sys.argv[1], 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

install_packages() {
	local need=()
	command -v containerd >/dev/null || need+=(containerd)
	command -v runc >/dev/null || need+=(runc)
	[[ -x /usr/lib/cni/bridge ]] || need+=(containernetworking-plugins)
	command -v nft >/dev/null || need+=(nftables)
	command -v openssl >/dev/null || need+=(openssl)
	command -v python3 >/dev/null || need+=(python3)
	command -v findmnt >/dev/null || need+=(util-linux)
	command -v dpkg-deb >/dev/null || need+=(dpkg)
	if ((${#need[@]})); then
		log "installing ${need[*]}"
		apt-get update -qq
		# The package may ship a service; this script runs its own containerd
		# with its own socket and folders, so nothing of the system's is used.
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
	fi
}

build() {
	if [[ ${EXPSYNC_CLUSTER_SKIP_BUILD:-} == 1 ]]; then
		return 0
	fi
	"$repo/hack/envtest/build.sh" "$cache/envtest"
	"$here/build.sh" "$cache/cluster"
	# Kueue's controller, for its image (TestKueueAdmitsRunsWithinItsQuota
	# installs its chart), when EXPSYNC_CLUSTER_KUEUE=1 (not yet verified on
	# a node, so not built by default: docs/real-cluster.md).
	if [[ ${EXPSYNC_CLUSTER_KUEUE:-} == 1 ]]; then
		"$here/build-kueue.sh" "$cache/kueue"
	fi
}

build_images() {
	"$repo/hack/images/build.sh" "$dir/images" >"$dir/logs/images.log" 2>&1 || {
		cat "$dir/logs/images.log" >&2
		die "building the images failed"
	}
	grep -v '^python image' "$dir/logs/images.log" | tail -n 4 >&2
}

# import_images: load the archives into containerd's k8s.io namespace (the
# CRI's), each under its tag and under repository@digest: the CRI resolves a
# pod's image by an image record of that exact name, and only a pull from a
# registry would have made the digest one.
import_images() {
	log "importing images"
	local tarball tagged ref
	for tarball in "$dir"/images/*.tar; do
		ctr -n k8s.io images import "$tarball" >/dev/null
	done
	while IFS=' ' read -r tagged ref; do
		ctr -n k8s.io images tag --force "$tagged" "$ref" >/dev/null
	done < <(python3 -c 'import json, sys
for i in json.load(open(sys.argv[1])): print(i["tagged"], i["ref"])' "$dir/images/images.json")
}

# snapshot_host: what the host looks like before up changes anything, so down
# can put back exactly that.
snapshot_host() {
	local k p
	mkdir -p "$dir/baseline"
	: >"$dir/baseline/sysctl"
	for k in "${sysctls[@]}"; do
		if v=$(sysctl -n "$k" 2>/dev/null); then
			printf '%s\t%s\n' "$k" "$v" >>"$dir/baseline/sysctl"
		fi
	done
	: >"$dir/baseline/missing"
	for p in "${outside[@]}"; do
		[[ -e $p || -L $p ]] || echo "$p" >>"$dir/baseline/missing"
	done
	ls /var/run/netns 2>/dev/null | sort >"$dir/baseline/netns" || true
	cluster_cgroups >"$dir/baseline/cgroups"
	nft list tables 2>/dev/null | sort >"$dir/baseline/nft-tables" || true
	iptables_chains >"$dir/baseline/iptables-chains"
}

# iptables_chains: "family table chain" of every iptables chain (iptables-nft
# and legacy), to tell the chains up's components add from the others.
iptables_chains() {
	local save
	for save in iptables-save ip6tables-save iptables-legacy-save ip6tables-legacy-save; do
		command -v "$save" >/dev/null || continue
		"$save" 2>/dev/null | awk -v s="$save" '/^\*/ { t = substr($0, 2) } /^:/ { print s, t, substr($1, 2) }'
	done | sort
}

make_pki() {
	local pki=$dir/pki
	[[ -f $pki/ca.crt ]] && return 0
	mkdir -p "$pki"
	chmod 0700 "$pki"
	(
		cd "$pki"
		local ec=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
		openssl req -x509 "${ec[@]}" -keyout ca.key -out ca.crt -days 7 -subj /CN=expsync-cluster-ca \
			-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
		sign() { # sign NAME SUBJECT EXTENSIONS
			openssl req "${ec[@]}" -keyout "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null
			openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 7 -out "$1.crt" \
				-extfile <(printf '%s\n' "$3") 2>/dev/null
			rm -f "$1.csr"
		}
		sign apiserver /CN=kube-apiserver \
			"subjectAltName=IP:$node_ip,IP:$service_ip,IP:127.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local
extendedKeyUsage=serverAuth
keyUsage=critical,digitalSignature"
		sign apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" \
			"extendedKeyUsage=clientAuth
keyUsage=critical,digitalSignature"
		openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out sa.key 2>/dev/null
		openssl pkey -in sa.key -pubout -out sa.pub
		# Bearer tokens, one per identity; RBAC's bootstrap policy knows the
		# component users, the Node authorizer the kubelet's.
		: >tokens.csv
		token() { # token NAME USER GROUPS
			local t
			t=$(openssl rand -hex 24)
			printf '%s,%s,%s,"%s"\n' "$t" "$2" "$1" "$3" >>tokens.csv
			echo "$t" >"$1.token"
		}
		token admin admin system:masters
		token kubelet "system:node:$node_name" system:nodes
		token kube-controller-manager system:kube-controller-manager ""
		token kube-scheduler system:kube-scheduler ""
		token kube-proxy system:kube-proxy ""
		chmod 0600 ./*.key ./*.token tokens.csv
	)
}

# kubeconfig NAME FILE: a kubeconfig for an identity of tokens.csv.
kubeconfig() {
	cat >"$2" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: expsync
  cluster:
    server: https://$node_ip:$api_port
    certificate-authority: $dir/pki/ca.crt
users:
- name: $1
  user:
    tokenFile: $dir/pki/$1.token
contexts:
- name: expsync
  context: {cluster: expsync, user: $1}
current-context: expsync
EOF
	chmod 0600 "$2"
}

setup_network() {
	if ! ip link show "$bridge" >/dev/null 2>&1; then
		log "creating bridge $bridge ($node_ip)"
		ip link add "$bridge" type bridge
		echo "$bridge" >"$dir/run/bridge"
	fi
	ip addr show dev "$bridge" | grep -q "inet $node_ip/" || ip addr add "$node_ip/16" dev "$bridge"
	ip link set "$bridge" up
	mkdir -p "$dir/cni/net.d" "$dir/cni/ipam"
	# The bridge plugin only: no masquerading (pods reach nothing outside
	# the node) and no portmap (no hostPorts), so CNI adds no firewall rules.
	cat >"$dir/cni/net.d/10-expsync.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "expsync",
  "plugins": [{
    "type": "bridge", "bridge": "$bridge", "isGateway": true, "ipMasq": false, "hairpinMode": true,
    "ipam": {"type": "host-local", "dataDir": "$dir/cni/ipam",
             "ranges": [[{"subnet": "$pod_cidr", "gateway": "$node_ip"}]],
             "routes": [{"dst": "0.0.0.0/0"}]}
  }]
}
EOF
}

write_containerd_config() {
	local images_env=$dir/images/images.env
	local sandbox
	sandbox=$(awk -F= '$1 == "PAUSE_IMAGE_TAGGED" { print $2 }' "$images_env")
	mkdir -p "$dir/containerd"
	# restrict_oom_score_adj: this machine lacks CAP_SYS_RESOURCE, so runc
	# cannot set the negative oom_score_adj the kubelet asks for (-998 for
	# sandboxes, -997 for Guaranteed pods: "can't get final child's PID from
	# pipe: EOF"); containerd then clamps it to its own score (0) instead.
	cat >"$dir/containerd/config.toml" <<EOF
version = 2
root = "$dir/containerd/root"
state = "$dir/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "$dir/containerd/containerd.sock"

[plugins."io.containerd.internal.v1.opt"]
  path = "$dir/containerd/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$sandbox"
  restrict_oom_score_adj = true
  # Network namespaces are bind-mounted under the state folder, not in
  # /var/run/netns: everything of the cluster stays in one folder.
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$dir/containerd/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$dir/cni/net.d"
EOF
}

write_node_configs() {
	mkdir -p "$dir/kubelet/root" "$dir/logs/pods"
	# cgroup v1 hybrid: the kubelet refuses it unless failCgroupV1 is false;
	# cgroupfs because no systemd manages cgroups here; no QoS cgroups and no
	# node-allocatable enforcement (nothing reserved on a test node).
	# authentication and authorization: the API server's client certificate,
	# and tokens checked with the API server — not anonymous: pods running
	# experiments can reach the kubelet's port on the bridge.
	cat >"$dir/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $node_ip
port: $kubelet_port
readOnlyPort: 0
healthzPort: 0
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $dir/pki/ca.crt}
authorization: {mode: Webhook}
containerRuntimeEndpoint: unix://$dir/containerd/containerd.sock
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupsPerQOS: false
enforceNodeAllocatable: []
failSwapOn: false
oomScoreAdj: 0
podLogsDir: $dir/logs/pods
volumePluginDir: $dir/kubelet/volume-plugins
clusterDomain: cluster.local
maxPods: 250
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 90
evictionHard: {memory.available: 100Mi, nodefs.available: 2%, imagefs.available: 2%}
EOF
	cat >"$dir/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $dir/pki/kube-proxy.kubeconfig}
hostnameOverride: $node_name
mode: nftables
clusterCIDR: $pod_cidr
nodePortAddresses: ["$node_ip/32"]
healthzBindAddress: 127.0.0.1:$proxy_healthz_port
metricsBindAddress: 127.0.0.1:$proxy_metrics_port
oomScoreAdj: 0
# 0: leave the host's conntrack settings as they are.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
}

node_ready() {
	[[ $(kubectl get node "$node_name" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null) == True ]]
}

print_env() {
	echo "export KUBECONFIG=$dir/kubeconfig"
	echo "export EXPSYNC_CLUSTER_DIR=$dir"
	echo "export EXPSYNC_KUBECTL=$node_bin/kubectl"
	sed 's/^/export EXPSYNC_/' "$dir/images/images.env"
	echo "export EXPSYNC_NODE_IP=$node_ip"
	echo "export EXPSYNC_NODE_NAME=$node_name"
	[[ ! -f $cache/kueue/version ]] || echo "export EXPSYNC_KUEUE_CHART=$cache/kueue/chart"
}

all_alive() {
	local c
	for c in "${components[@]}"; do alive "$c" || return 1; done
}

cmd_up() {
	[[ $(id -u) == 0 ]] || die "up needs root (a kubelet, a bridge, mounts)"
	lock_node
	if [[ -f $dir/ports ]] && all_alive; then
		# shellcheck disable=SC1091
		source "$dir/ports"
		if node_ready; then
			log "already up (brought up by: $(cat "$dir/owner" 2>/dev/null || echo unknown)): KUBECONFIG=$dir/kubeconfig"
			return 0
		fi
	fi
	if [[ -d $dir ]]; then
		log "a previous cluster left $dir behind (stopped or half up): cleaning it first"
		cmd_down
	fi
	local started=$SECONDS
	install_packages
	build
	mkdir -p "$dir/run" "$dir/logs"
	snapshot_host
	build_images

	read -r etcd_port etcd_peer_port proxy_healthz_port proxy_metrics_port < <(free_ports 127.0.0.1 4)
	setup_network
	read -r api_port kubelet_port < <(free_ports "$node_ip" 2)
	cat >"$dir/ports" <<EOF
etcd_port=$etcd_port
etcd_peer_port=$etcd_peer_port
api_port=$api_port
kubelet_port=$kubelet_port
proxy_healthz_port=$proxy_healthz_port
proxy_metrics_port=$proxy_metrics_port
EOF
	make_pki
	kubeconfig admin "$dir/kubeconfig"
	local c
	for c in kubelet kube-controller-manager kube-scheduler kube-proxy; do
		kubeconfig "$c" "$dir/pki/$c.kubeconfig"
	done
	write_containerd_config
	write_node_configs

	# etcd: a throwaway cluster, so no fsync (much faster on a busy disk).
	start etcd "$envtest_bin/etcd" --name expsync --data-dir "$dir/etcd" --unsafe-no-fsync \
		--listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
		--listen-peer-urls "http://127.0.0.1:$etcd_peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer_port" \
		--initial-cluster "expsync=http://127.0.0.1:$etcd_peer_port"
	start kube-apiserver "$envtest_bin/kube-apiserver" --etcd-servers "http://127.0.0.1:$etcd_port" \
		--bind-address "$node_ip" --advertise-address "$node_ip" --secure-port "$api_port" \
		--tls-cert-file "$dir/pki/apiserver.crt" --tls-private-key-file "$dir/pki/apiserver.key" \
		--client-ca-file "$dir/pki/ca.crt" --token-auth-file "$dir/pki/tokens.csv" \
		--authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
		--service-account-key-file "$dir/pki/sa.pub" --service-account-signing-key-file "$dir/pki/sa.key" \
		--service-account-issuer https://kubernetes.default.svc.cluster.local \
		--service-cluster-ip-range "$service_cidr" \
		--kubelet-client-certificate "$dir/pki/apiserver-kubelet-client.crt" \
		--kubelet-client-key "$dir/pki/apiserver-kubelet-client.key" \
		--kubelet-preferred-address-types InternalIP --profiling=false --cert-dir "$dir/pki/apiserver"
	start containerd containerd --config "$dir/containerd/config.toml"
	wait_for 60 "containerd" ctr version
	import_images
	wait_for 120 "kube-apiserver" kubectl get --raw /readyz
	start kube-controller-manager "$envtest_bin/kube-controller-manager" --kubeconfig "$dir/pki/kube-controller-manager.kubeconfig" \
		--secure-port 0 --leader-elect=false --controllers '*,-nodeipam' --use-service-account-credentials \
		--service-account-private-key-file "$dir/pki/sa.key" --root-ca-file "$dir/pki/ca.crt" \
		--cluster-signing-cert-file "$dir/pki/ca.crt" --cluster-signing-key-file "$dir/pki/ca.key" \
		--flex-volume-plugin-dir "$dir/kube-controller-manager/volume-plugins"
	start kube-scheduler "$node_bin/kube-scheduler" --kubeconfig "$dir/pki/kube-scheduler.kubeconfig" \
		--secure-port 0 --leader-elect=false
	start kubelet "$node_bin/kubelet" --config "$dir/kubelet/config.yaml" --kubeconfig "$dir/pki/kubelet.kubeconfig" \
		--root-dir "$dir/kubelet/root" --cert-dir "$dir/kubelet/pki" --hostname-override "$node_name" --node-ip "$node_ip"
	start kube-proxy "$node_bin/kube-proxy" --config "$dir/kube-proxy.yaml"
	wait_for 180 "node $node_name Ready" node_ready
	# Pods need their namespace's default ServiceAccount and the cluster CA
	# ConfigMap (controllers of kube-controller-manager make both).
	wait_for 60 "the default ServiceAccount" kubectl -n default get serviceaccount default
	wait_for 60 "kube-root-ca.crt" kubectl -n default get configmap kube-root-ca.crt
	print_env >"$dir/env"
	echo "${EXPSYNC_CLUSTER_OWNER:-hack/cluster/up by $(id -un) from $PWD} since $(date -u +%FT%TZ)" >"$dir/owner"
	log "up in $((SECONDS - started))s: node $node_name Ready"
	log "kubeconfig: $dir/kubeconfig   (source $dir/env for the images and KUBECONFIG)"
	kubectl get nodes -o wide >&2
}

# unmount_under PREFIX: unmount every mount point at or below PREFIX,
# deepest first (lazily if still busy).
unmount_under() {
	local m
	findmnt -rn -o TARGET | awk -v p="$1" 'index($0, p) == 1' | sort -r | while read -r m; do
		m=$(printf '%b' "$m") # findmnt escapes spaces as \x20
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "cannot unmount $m"
	done
}

cmd_down() {
	if [[ ! -d $dir ]]; then
		log "nothing to stop ($dir does not exist)"
		return 0
	fi
	[[ $(id -u) == 0 ]] || die "down needs root"
	lock_node
	# Nothing new may start: the controllers first, then the node agents.
	local c
	for c in kube-controller-manager kube-scheduler kube-proxy kubelet; do stop "$c"; done
	if [[ -f $dir/kube-proxy.yaml && -x $node_bin/kube-proxy ]]; then
		"$node_bin/kube-proxy" --config "$dir/kube-proxy.yaml" --cleanup >>"$dir/logs/kube-proxy-cleanup.log" 2>&1 || true
	fi
	# Every pod's containers, sandboxes included: killed, then deleted (which
	# unmounts their root file systems and removes their cgroups).
	if alive containerd; then
		local ids sock=$dir/containerd/containerd.sock
		ids=$(ctr -n k8s.io tasks ls -q 2>/dev/null || true)
		if [[ -n $ids ]]; then
			log "killing and deleting $(wc -w <<<"$ids") containers"
			# Side by side: one ctr call costs ~0.1-0.5 s on a busy machine.
			xargs -r -n 1 -P 8 ctr --address "$sock" -n k8s.io tasks kill -s SIGKILL <<<"$ids" >/dev/null 2>&1 || true
			xargs -r -n 1 -P 8 sh -c 'for i in $(seq 50); do ctr --address "$0" -n k8s.io tasks delete "$1" >/dev/null 2>&1 && exit 0; sleep 0.1; done' "$sock" <<<"$ids" || true
		fi
		ids=$(ctr -n k8s.io containers ls -q 2>/dev/null || true)
		xargs -r -n 1 -P 8 ctr --address "$sock" -n k8s.io containers delete <<<"$ids" >/dev/null 2>&1 || true
	fi
	stop containerd
	# A shim whose containerd is gone serves no one; ours name our socket.
	local pid
	for pid in $(pgrep -f "containerd-shim-runc-v2 .*-address $dir/containerd/containerd.sock" || true); do
		log "stopping leftover shim $pid"
		kill -KILL "$pid" 2>/dev/null || true
	done
	stop kube-apiserver
	stop etcd

	unmount_under "$dir/"
	# Network namespaces: those CRI made for this cluster's pods (their
	# bind mounts hold them; unmounted, the namespace and its veth go).
	if [[ -f $dir/baseline/netns ]]; then
		local ns
		for ns in $(ls /var/run/netns 2>/dev/null | sort | comm -23 - "$dir/baseline/netns"); do
			umount "/var/run/netns/$ns" 2>/dev/null || umount -l "/var/run/netns/$ns" 2>/dev/null || true
			rm -f "/var/run/netns/$ns"
		done
	fi
	if ip link show "$bridge" >/dev/null 2>&1; then
		for c in $(ip -o link show master "$bridge" 2>/dev/null | awk -F': ' '{ sub(/@.*/, "", $2); print $2 }'); do
			ip link delete "$c" 2>/dev/null || true
		done
		log "deleting bridge $bridge"
		ip link delete "$bridge"
	fi
	restore_firewall
	restore_sysctls
	remove_cgroups
	if [[ -f $dir/baseline/missing ]]; then
		local p
		while read -r p; do
			[[ -e $p ]] && rm -rf "$p"
		done <"$dir/baseline/missing"
	fi
	rm -rf "$dir"
	log "down: nothing of the cluster is left"
}

# restore_firewall: kube-proxy --cleanup removed its nftables tables; what
# remains is what the kubelet makes through iptables (its KUBE-* canary and
# hint chains) and the iptables-nft tables they made: removed when up did not
# find them.
restore_firewall() {
	[[ -f $dir/baseline/iptables-chains ]] || return 0
	local save family table chain cmd rule
	iptables_chains | comm -23 - "$dir/baseline/iptables-chains" | while read -r save table chain; do
		case $save in
		iptables-save) cmd=iptables ;;
		ip6tables-save) cmd=ip6tables ;;
		iptables-legacy-save) cmd=iptables-legacy ;;
		ip6tables-legacy-save) cmd=ip6tables-legacy ;;
		esac
		case $chain in
		KUBE-* | CNI-*)
			# Rules elsewhere jumping to it first, then the chain.
			{ "$cmd" -t "$table" -S 2>/dev/null || true; } | { grep -E -- "-j $chain( |\$)" || true; } | sed 's/^-A/-D/' |
				while read -r rule; do
					# shellcheck disable=SC2086 # a rule is words
					"$cmd" -t "$table" $rule 2>/dev/null || true
				done
			"$cmd" -t "$table" -F "$chain" 2>/dev/null || true
			"$cmd" -t "$table" -X "$chain" 2>/dev/null || true
			;;
		esac
	done
	# Tables iptables-nft created for those chains, now holding only empty
	# built-in chains: delete those not there before up.
	{ nft list tables 2>/dev/null || true; } | sort | comm -23 - "$dir/baseline/nft-tables" | while read -r _ family table; do
		if ! nft list table "$family" "$table" 2>/dev/null | grep -Eq '^[[:space:]]+(counter|jump|goto|meta|ip |ip6 |tcp |udp |ct |fib |iifname|oifname|mark|return|drop|accept|reject|log)'; then
			log "deleting nftables table $family $table (made by iptables for the kubelet, now empty)"
			nft delete table "$family" "$table" 2>/dev/null || true
		fi
	done
}

restore_sysctls() {
	[[ -f $dir/baseline/sysctl ]] || return 0
	local k v now
	while IFS=$'\t' read -r k v; do
		now=$(sysctl -n "$k" 2>/dev/null) || continue
		if [[ $now != "$v" ]]; then
			log "sysctl $k: $now -> $v (as before up)"
			sysctl -q -w "$k=$v" >/dev/null 2>&1 || log "cannot restore $k"
		fi
	done <"$dir/baseline/sysctl"
}

# cluster_cgroups: the cgroups of this cluster's kind — containerd's CRI puts
# pods under k8s.io (the kubelet makes no QoS cgroups here). Only those:
# other programs on this machine make and remove cgroups of their own.
cluster_cgroups() {
	find /sys/fs/cgroup -mindepth 1 -maxdepth 3 -type d 2>/dev/null | grep -E '/(k8s\.io|kubepods[^/]*)(/|$)' | sort || true
}

remove_cgroups() {
	[[ -f $dir/baseline/cgroups ]] || return 0
	local cg
	cluster_cgroups | comm -23 - "$dir/baseline/cgroups" | sort -r | while read -r cg; do
		rmdir "$cg" 2>/dev/null || log "cgroup $cg is still in use"
	done
}

cmd_status() {
	local c
	[[ -d $dir ]] || {
		echo "down ($dir does not exist)"
		return 0
	}
	[[ -f $dir/owner ]] && echo "brought up by: $(<"$dir/owner")"
	for c in "${components[@]}"; do
		if alive "$c"; then echo "$c: running ($(<"$(pidfile "$c")"))"; else echo "$c: not running"; fi
	done
	if [[ -f $dir/ports ]]; then
		# shellcheck disable=SC1091
		source "$dir/ports"
		kubectl get nodes 2>/dev/null || true
	fi
}

cmd_images() {
	alive containerd || die "the cluster is not up"
	lock_node
	build_images
	import_images
	print_env >"$dir/env"
	cat "$dir/env"
}

case ${1:-} in
prepare)
	install_packages
	build
	;;
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
env)
	[[ -f $dir/env ]] || die "the cluster is not up (no $dir/env)"
	cat "$dir/env"
	;;
images) cmd_images ;;
*)
	echo "usage: $0 up|down|prepare|status|env|images" >&2
	exit 2
	;;
esac
