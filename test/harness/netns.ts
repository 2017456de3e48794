// The sandbox's network namespace as the harness sees it (scripts/lib/netns.sh sets it up and
// exports SENTINEL_SWITCH_NETNS=1 to everything started inside). Inside: only lo, no default
// route, 198.18.0.0/16 local on lo, and these addresses:

/** The API server side of the cluster: node-1's InternalIP and the source of Service traffic. */
export const NODE_IP = '198.18.0.1';
/** CoreDNS, the only nameserver of the namespace's /etc/resolv.conf. */
export const DNS_IP = '198.18.0.53';
/** kube-proxy's ClusterIPs (the `kubernetes` Service is .1). */
export const SERVICE_CIDR = '198.19.0.0/24';

/** True when this process runs inside the sandbox's network namespace. */
export function inSandboxNamespace(): boolean {
  return process.env.SENTINEL_SWITCH_NETNS === '1';
}
