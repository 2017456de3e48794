// target.kind endpointSlice, the pure part: given the selector-less ClusterIP Service, the one
// EndpointSlice we own and the verified master's pod IP and port, decide what (if anything) to
// write. kube-proxy routes the Service's cluster IP to the slice's endpoint, so the Service's
// name never changes at a switch (no DNS answer to expire). No I/O here; unit-tested.
import { isIPv4, isIPv6 } from 'node:net';
import type { Plan } from './index.ts';

/** kube-proxy (and CoreDNS) take a slice into a Service by this label. */
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';
/** Who writes the slice: the EndpointSlice controller leaves slices with another value alone. */
export const MANAGED_BY_LABEL = 'endpointslice.kubernetes.io/managed-by';
export const MANAGED_BY = 'sentinel-switch.io';

export interface ServicePortState {
  name?: string;
  port: number;
  protocol?: string;
}

/** The target Service, as far as an endpointSlice decision needs. */
export type SelectorlessServiceState =
  | { exists: false }
  | { exists: true; type: string; clusterIP?: string; selector?: Record<string, string>; ports: ServicePortState[] };

export interface SliceEndpointState {
  addresses: string[];
  ready?: boolean;
  serving?: boolean;
  terminating?: boolean;
}

/** The EndpointSlice, as far as the decision and the switch history need. */
export type EndpointSliceState =
  | { exists: false }
  | {
      exists: true;
      resourceVersion: string;
      addressType: string;
      labels: Record<string, string>;
      endpoints: SliceEndpointState[];
      ports: { name?: string; port?: number; protocol?: string }[];
    };

/** The verified master as the slice must hold it: its pod's IP (checked live) and Redis port. */
export interface SliceTarget {
  ip: string;
  port: number;
}

export const sliceValue = (t: SliceTarget): string => (isIPv6(t.ip) ? `[${t.ip}]:${t.port}` : `${t.ip}:${t.port}`);
const addressType = (ip: string): string | undefined => (isIPv4(ip) ? 'IPv4' : isIPv6(ip) ? 'IPv6' : undefined);

/** What the slice names now, as host:port; undefined when it holds no endpoint. */
export function currentSliceValue(slice: EndpointSliceState): string | undefined {
  if (!slice.exists) return undefined;
  const ip = slice.endpoints[0]?.addresses[0];
  const port = slice.ports[0]?.port;
  if (!ip) return undefined;
  return port === undefined ? ip : sliceValue({ ip, port });
}

/**
 * The one port of the Service, whose name the slice's port must repeat (kube-proxy matches a
 * Service port to endpoint ports by name); a string says why there is none.
 */
export function servicePort(service: SelectorlessServiceState, id: string): ServicePortState | string {
  if (!service.exists) {
    return `Service ${id} does not exist: create it as type ClusterIP without a selector (the Helm chart does, with targetService.create: true)`;
  }
  if (service.type !== 'ClusterIP') return `Service ${id} is of type ${service.type}; target.kind endpointSlice needs type ClusterIP (or headless, clusterIP: None) without a selector`;
  if (service.selector && Object.keys(service.selector).length > 0) {
    return `Service ${id} has a selector, so the EndpointSlice controller writes its endpoints: remove spec.selector (target.kind endpointSlice owns the endpoints)`;
  }
  if (service.ports.length !== 1) return `Service ${id} has ${service.ports.length} ports; target.kind endpointSlice needs exactly one (the Redis port)`;
  return service.ports[0]!;
}

/**
 * What to do with the EndpointSlice `sliceId` of Service `serviceId` for the verified master:
 * nothing when it already holds exactly that one ready endpoint with the right port and labels,
 * a patch (guarded by the slice's resourceVersion) otherwise, and a refusal naming what the
 * operator must fix when no write could make kube-proxy route to the master.
 */
export function planEndpointSlice(
  service: SelectorlessServiceState,
  slice: EndpointSliceState,
  want: SliceTarget,
  ids: { service: string; slice: string },
): Plan {
  const target = sliceValue(want);
  const serviceName = ids.service.split('/')[1];
  const port = servicePort(service, ids.service);
  if (typeof port === 'string') return { action: 'refuse', why: port };
  if (!slice.exists) {
    return {
      action: 'refuse',
      why: `EndpointSlice ${ids.slice} does not exist: create it (the Helm chart does) with label ${SERVICE_NAME_LABEL}: ${serviceName}; sentinel-switch only patches that named slice, it never creates one`,
    };
  }
  const managedBy = slice.labels[MANAGED_BY_LABEL];
  if (managedBy !== undefined && managedBy !== MANAGED_BY) {
    return { action: 'refuse', why: `EndpointSlice ${ids.slice} is managed by ${managedBy}, not ${MANAGED_BY}: give sentinel-switch a slice of its own (target.endpointSliceName)` };
  }
  const family = addressType(want.ip);
  if (family === undefined) return { action: 'refuse', why: `${want.ip} is not an IP address` };
  if (slice.addressType !== family) {
    return { action: 'refuse', why: `EndpointSlice ${ids.slice} has addressType ${slice.addressType} and the master's IP ${want.ip} is ${family}; addressType cannot be changed: recreate the slice with addressType ${family}` };
  }
  const ep = slice.endpoints[0];
  const p = slice.ports[0];
  const inPlace =
    slice.endpoints.length === 1 &&
    ep!.addresses.length === 1 &&
    ep!.addresses[0] === want.ip &&
    ep!.ready === true &&
    ep!.serving !== false &&
    ep!.terminating !== true &&
    slice.ports.length === 1 &&
    (p!.name ?? '') === (port.name ?? '') &&
    p!.port === want.port &&
    (p!.protocol ?? 'TCP') === (port.protocol ?? 'TCP') &&
    slice.labels[SERVICE_NAME_LABEL] === serviceName &&
    managedBy === MANAGED_BY;
  if (inPlace) return { action: 'none', target };
  return { action: 'patch', target, previousTarget: currentSliceValue(slice), resourceVersion: slice.resourceVersion };
}

/** The slice's content for a master (the write replaces endpoints and ports as a whole). */
export function sliceContent(
  serviceName: string,
  port: ServicePortState,
  want: SliceTarget & { pod?: { namespace: string; name: string } },
): {
  labels: Record<string, string>;
  endpoints: { addresses: string[]; conditions: { ready: boolean; serving: boolean; terminating: boolean }; targetRef?: { kind: 'Pod'; namespace: string; name: string } }[];
  ports: { name: string; port: number; protocol: string }[];
} {
  return {
    labels: { [SERVICE_NAME_LABEL]: serviceName, [MANAGED_BY_LABEL]: MANAGED_BY },
    endpoints: [
      {
        addresses: [want.ip],
        conditions: { ready: true, serving: true, terminating: false },
        ...(want.pod ? { targetRef: { kind: 'Pod' as const, namespace: want.pod.namespace, name: want.pod.name } } : {}),
      },
    ],
    ports: [{ name: port.name ?? '', port: want.port, protocol: port.protocol ?? 'TCP' }],
  };
}
