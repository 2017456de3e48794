//go:build tools

// Package tools pins CoreDNS (go build github.com/coredns/coredns), the sandbox's cluster DNS:
// a module of its own because its Kubernetes client libraries need not match the API server's.
package tools

import _ "github.com/coredns/coredns"
