// target.kind endpointSlice, the pure part: when the slice is left alone, patched or refused.
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config.ts';
import {
  type EndpointSliceState, MANAGED_BY, MANAGED_BY_LABEL, planEndpointSlice, type SelectorlessServiceState, SERVICE_NAME_LABEL, sliceContent,
} from '../../src/decide/endpointSlice.ts';

const ids = { service: 'ns/redis-master', slice: 'ns/redis-master' };
const service: SelectorlessServiceState = { exists: true, type: 'ClusterIP', clusterIP: '198.19.0.10', ports: [{ name: 'tcp-redis', port: 6379, protocol: 'TCP' }] };
const labels = { [SERVICE_NAME_LABEL]: 'redis-master', [MANAGED_BY_LABEL]: MANAGED_BY };
const holding = (ip: string, port = 6379, extra: Partial<EndpointSliceState & { exists: true }> = {}): EndpointSliceState => ({
  exists: true,
  resourceVersion: '42',
  addressType: 'IPv4',
  labels,
  endpoints: [{ addresses: [ip], ready: true, serving: true, terminating: false }],
  ports: [{ name: 'tcp-redis', port, protocol: 'TCP' }],
  ...extra,
});
const want = { ip: '198.18.1.11', port: 6379 };

describe('planEndpointSlice: exactly the verified master, one ready endpoint', () => {
  it('already holding exactly that endpoint: nothing to write', () => {
    expect(planEndpointSlice(service, holding('198.18.1.11'), want, ids)).toEqual({ action: 'none', target: '198.18.1.11:6379' });
  });
  it('another IP: a patch under the slice resourceVersion, naming the previous endpoint', () => {
    expect(planEndpointSlice(service, holding('198.18.1.10'), want, ids)).toEqual({ action: 'patch', target: '198.18.1.11:6379', previousTarget: '198.18.1.10:6379', resourceVersion: '42' });
  });
  it('the empty slice the chart creates: a patch with no previous endpoint', () => {
    expect(planEndpointSlice(service, holding('x', 6379, { endpoints: [], ports: [{ name: 'tcp-redis', port: 6379, protocol: 'TCP' }] }), want, ids)).toMatchObject({ action: 'patch', previousTarget: undefined });
  });
  it.each([
    ['another port', holding('198.18.1.11', 6380)],
    ['a second endpoint', holding('198.18.1.11', 6379, { endpoints: [{ addresses: ['198.18.1.11'], ready: true }, { addresses: ['198.18.1.10'], ready: true }] })],
    ['the endpoint not ready', holding('198.18.1.11', 6379, { endpoints: [{ addresses: ['198.18.1.11'], ready: false }] })],
    ['ready left unset', holding('198.18.1.11', 6379, { endpoints: [{ addresses: ['198.18.1.11'] }] })],
    ['the endpoint terminating', holding('198.18.1.11', 6379, { endpoints: [{ addresses: ['198.18.1.11'], ready: true, terminating: true }] })],
    ['a port name the Service does not have (kube-proxy would not route it)', holding('198.18.1.11', 6379, { ports: [{ name: 'redis', port: 6379, protocol: 'TCP' }] })],
    ['no service-name label (kube-proxy would ignore the slice)', holding('198.18.1.11', 6379, { labels: { [MANAGED_BY_LABEL]: MANAGED_BY } })],
    ['no managed-by label', holding('198.18.1.11', 6379, { labels: { [SERVICE_NAME_LABEL]: 'redis-master' } })],
  ])('the right IP but %s: patched back to exactly one ready endpoint', (_what, slice) => {
    expect(planEndpointSlice(service, slice, want, ids)).toMatchObject({ action: 'patch', target: '198.18.1.11:6379', resourceVersion: '42' });
  });
  it('a headless Service (clusterIP None, no selector) works the same', () => {
    expect(planEndpointSlice({ ...service, clusterIP: 'None' }, holding('198.18.1.10'), want, ids)).toMatchObject({ action: 'patch' });
  });
  it('IPv6 is written bracketed in the value', () => {
    expect(planEndpointSlice(service, holding('fd00::1', 6379, { addressType: 'IPv6' }), { ip: 'fd00::2', port: 6379 }, ids)).toMatchObject({ action: 'patch', target: '[fd00::2]:6379', previousTarget: '[fd00::1]:6379' });
  });
});

describe('planEndpointSlice refuses what no write can fix, naming it', () => {
  it.each([
    ['no Service', { exists: false } as SelectorlessServiceState, holding('198.18.1.10'), /Service ns\/redis-master does not exist: create it as type ClusterIP without a selector/],
    ['an ExternalName Service', { ...service, type: 'ExternalName' }, holding('198.18.1.10'), /is of type ExternalName; target.kind endpointSlice needs type ClusterIP/],
    ['a Service with a selector', { ...service, selector: { app: 'redis' } }, holding('198.18.1.10'), /has a selector, so the EndpointSlice controller writes its endpoints: remove spec.selector/],
    ['a Service with two ports', { ...service, ports: [{ name: 'a', port: 1 }, { name: 'b', port: 2 }] }, holding('198.18.1.10'), /has 2 ports; .* exactly one/],
    ['no slice', service, { exists: false } as EndpointSliceState, /EndpointSlice ns\/redis-master does not exist: create it .*kubernetes.io\/service-name: redis-master.*never creates one/],
    ['a slice of the EndpointSlice controller', service, holding('198.18.1.10', 6379, { labels: { ...labels, [MANAGED_BY_LABEL]: 'endpointslice-controller.k8s.io' } }), /managed by endpointslice-controller.k8s.io, not sentinel-switch.io/],
    ['an IPv6 slice for an IPv4 master', service, holding('fd00::1', 6379, { addressType: 'IPv6' }), /addressType IPv6 and the master's IP 198.18.1.11 is IPv4; .*recreate/],
  ])('%s', (_what, svc, slice, why) => {
    const plan = planEndpointSlice(svc, slice, want, ids);
    expect(plan.action).toBe('refuse');
    if (plan.action === 'refuse') expect(plan.why).toMatch(why);
  });
  it('a non-IP is refused (desired() resolves hostnames before planning)', () => {
    expect(planEndpointSlice(service, holding('198.18.1.10'), { ip: 'redis-node-1', port: 6379 }, ids)).toMatchObject({ action: 'refuse', why: 'redis-node-1 is not an IP address' });
  });
});

describe('sliceContent: what the patch writes', () => {
  it('one ready endpoint with the pod as targetRef, the Service port name with the master port, our labels', () => {
    expect(sliceContent('redis-master', { name: 'tcp-redis', port: 6379, protocol: 'TCP' }, { ip: '198.18.1.11', port: 6380, pod: { namespace: 'ns', name: 'redis-node-1' } })).toEqual({
      labels: { 'kubernetes.io/service-name': 'redis-master', 'endpointslice.kubernetes.io/managed-by': 'sentinel-switch.io' },
      endpoints: [{ addresses: ['198.18.1.11'], conditions: { ready: true, serving: true, terminating: false }, targetRef: { kind: 'Pod', namespace: 'ns', name: 'redis-node-1' } }],
      ports: [{ name: 'tcp-redis', port: 6380, protocol: 'TCP' }],
    });
  });
  it('what it writes, read back, plans nothing (the write is a fixed point)', () => {
    const c = sliceContent('redis-master', service.exists ? service.ports[0]! : { port: 0 }, { ip: '198.18.1.11', port: 6379 });
    const readBack: EndpointSliceState = { exists: true, resourceVersion: '43', addressType: 'IPv4', labels: c.labels, endpoints: c.endpoints.map((e) => ({ addresses: e.addresses, ...e.conditions })), ports: c.ports };
    expect(planEndpointSlice(service, readBack, want, ids).action).toBe('none');
  });
});

describe('config: target.kind endpointSlice', () => {
  const base = { token: { env: 'T' }, masterSets: [{ name: 'm', sentinels: ['s:26379'], target: { namespace: 'ns', name: 'redis-master' } }] };
  const withTarget = (target: Record<string, unknown>) => ({ ...base, masterSets: [{ ...base.masterSets[0], target: { namespace: 'ns', name: 'redis-master', ...target } }] });
  it('externalName stays the default', () => {
    expect(parseConfig(base).masterSets[0]!.target.kind).toBe('externalName');
  });
  it('endpointSlice, with and without its own slice name', () => {
    expect(parseConfig(withTarget({ kind: 'endpointSlice' })).masterSets[0]!.target).toEqual({ kind: 'endpointSlice', namespace: 'ns', name: 'redis-master' });
    expect(parseConfig(withTarget({ kind: 'endpointSlice', endpointSliceName: 'redis-master-1' })).masterSets[0]!.target.endpointSliceName).toBe('redis-master-1');
  });
  it('refuses a slice name without kind endpointSlice, an invalid slice name and an unknown kind, naming the field', () => {
    expect(() => parseConfig(withTarget({ endpointSliceName: 'x' }))).toThrow(/masterSets.0.target.endpointSliceName: endpointSliceName is only used with kind: endpointSlice/);
    expect(() => parseConfig(withTarget({ kind: 'endpointSlice', endpointSliceName: 'Bad_Name' }))).toThrow(/masterSets.0.target.endpointSliceName: must be a DNS-1123 subdomain/);
    expect(() => parseConfig(withTarget({ kind: 'endpoints' }))).toThrow(/masterSets.0.target.kind/);
  });
});
