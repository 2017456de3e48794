//go:build tools

// Package tools pins helm (go build helm.sh/helm/v3/cmd/helm); a module of its own
// because helm's Kubernetes libraries need not match the API server's.
package tools

import _ "helm.sh/helm/v3/cmd/helm"
