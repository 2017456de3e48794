// The watch cache's event handling (src/kube/informer.ts applyEvent), pure: what each watch event
// does to the cached items and to the resourceVersion the watch resumes from.
import { describe, expect, it } from 'vitest';
import { applyEvent, type KubeObject } from '../../src/kube/informer.ts';

const pick = (o: KubeObject) => ({ name: o.metadata?.name, rv: o.metadata?.resourceVersion });
const obj = (name: string, rv: string) => ({ metadata: { name, resourceVersion: rv } });

describe('applyEvent', () => {
  it('ADDED and MODIFIED store the object by name and move the resourceVersion', () => {
    const items = new Map<string, ReturnType<typeof pick>>();
    expect(applyEvent(items, { type: 'ADDED', object: obj('a', '10') }, pick)).toEqual({ resourceVersion: '10' });
    expect(applyEvent(items, { type: 'ADDED', object: obj('b', '11') }, pick)).toEqual({ resourceVersion: '11' });
    expect(applyEvent(items, { type: 'MODIFIED', object: obj('a', '12') }, pick)).toEqual({ resourceVersion: '12' });
    expect([...items.entries()]).toEqual([
      ['a', { name: 'a', rv: '12' }],
      ['b', { name: 'b', rv: '11' }],
    ]);
  });

  it('DELETED removes the object (a missing one is no error)', () => {
    const items = new Map([['a', pick(obj('a', '1'))]]);
    expect(applyEvent(items, { type: 'DELETED', object: obj('a', '5') }, pick)).toEqual({ resourceVersion: '5' });
    expect(applyEvent(items, { type: 'DELETED', object: obj('zz', '6') }, pick)).toEqual({ resourceVersion: '6' });
    expect(items.size).toBe(0);
  });

  it('BOOKMARK moves only the resourceVersion', () => {
    const items = new Map([['a', pick(obj('a', '1'))]]);
    expect(applyEvent(items, { type: 'BOOKMARK', object: { kind: 'Service', metadata: { resourceVersion: '99' } } }, pick)).toEqual({ resourceVersion: '99' });
    expect([...items.values()]).toEqual([{ name: 'a', rv: '1' }]);
  });

  it('ERROR 410 Gone asks for a relist; any other ERROR is a failure with its message; the items stay', () => {
    const items = new Map([['a', pick(obj('a', '1'))]]);
    expect(applyEvent(items, { type: 'ERROR', object: { kind: 'Status', code: 410, reason: 'Expired', message: 'too old resource version: 1 (50)' } }, pick)).toEqual({ relist: true });
    expect(applyEvent(items, { type: 'ERROR', object: { kind: 'Status', code: 500, reason: 'InternalError', message: 'etcd down' } }, pick)).toEqual({ error: 'watch ERROR 500 InternalError: etcd down' });
    expect(items.size).toBe(1);
  });

  it('an event without a name or of an unknown type is a failure, not a silent change', () => {
    const items = new Map<string, ReturnType<typeof pick>>();
    expect(applyEvent(items, { type: 'ADDED', object: { metadata: {} } }, pick).error).toMatch(/without metadata\.name/);
    expect(applyEvent(items, { type: 'SOMETHING', object: obj('a', '1') }, pick).error).toMatch(/unknown watch event type "SOMETHING"/);
    expect(items.size).toBe(0);
  });
});
