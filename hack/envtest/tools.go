//go:build tools

// Package tools records the programs this module builds — the envtest
// binaries (build.sh) and the real node's (hack/cluster/build.sh) — so go.mod
// and go.sum hold every module they need. The build tag keeps it out of any build; the
// imports are main packages, which only tools files may name.
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
