// `sentinel-switch status` for people: the body of GET /v1/status (src/status.ts) as one block
// per master set, every fact on its own line. Pure: unit-tested in test/unit/status-table.test.ts.
import type { MasterSetStatus, Status } from './status.ts';

/** The status for people: one block per master set, every fact on its own line. */
export function formatStatus(s: Status): string {
  const out: string[] = [];
  for (const m of s.masterSets) out.push(...formatMasterSet(m), '');
  out.push(s.ok ? `all ${s.masterSets.length} master set(s) fine (${s.at})` : `NOT FINE: ${s.masterSets.filter((m) => !m.ok).map((m) => m.masterSet).join(', ')} (${s.at})`);
  return out.join('\n');
}

function formatMasterSet(m: MasterSetStatus): string[] {
  const verdict = m.ok ? 'OK' : m.drift.state === 'drift' ? 'DRIFT' : !m.majority.ok ? 'NO MAJORITY' : m.master && !m.master.verified ? 'MASTER NOT VERIFIED' : 'PROBLEM';
  const lines = [`master set ${m.masterSet}: ${verdict}`];
  const maj = m.majority;
  lines.push(`  sentinels     ${maj.ok ? `${maj.agreeing}/${maj.total} agree on ${maj.master}` : 'no majority'}, ${maj.needed} needed`);
  lines.push(...table(['    SENTINEL', 'ANSWER'], m.sentinels.map((v) => [`    ${v.sentinel}`, v.master ?? `error: ${v.error}`])));
  lines.push(`  master        ${m.master ? `${m.master.address}  ROLE ${m.master.role}${m.master.verified ? '' : '  (not verified)'}` : '(none elected)'}`);
  lines.push('  nodes');
  lines.push(
    ...table(
      ['    NODE', 'ROLE', 'OFFSET', 'LAG', 'REPLICA OF', 'LINK', 'SENTINEL FLAGS'],
      m.nodes.map((n) => [
        `    ${n.address}`,
        n.role,
        n.offset === undefined ? '-' : String(n.offset),
        n.lagBytes === undefined ? '-' : String(n.lagBytes),
        n.replicaOf ?? '-',
        n.linkState ?? '-',
        n.sentinelFlags ?? '-',
      ]),
    ),
  );
  for (const n of m.nodes) if (n.error) lines.push(`    ${n.address}: ${n.error}`);
  const t = m.target;
  lines.push(`  target        ${t.kind} Service ${t.service}${t.endpointSlice ? `, EndpointSlice ${t.endpointSlice}` : ''}`);
  lines.push(`                names ${t.error && t.exists === undefined ? `? (${t.error})` : t.exists === false ? '(does not exist)' : (t.current ?? '(nothing)')}`);
  if (t.desired !== undefined) lines.push(`                needs ${t.desired}`);
  else if (t.error && t.exists !== undefined) lines.push(`                needs ? (${t.error})`);
  lines.push(`  drift         ${m.drift.state === 'none' ? 'none' : `${m.drift.state.toUpperCase()}: ${m.drift.why}`}`);
  lines.push(`  fences        ${m.fences.length ? m.fences.map((f) => `${f.node} paused (${f.reason}) since ${f.since}`).join('; ') : 'none'}`);
  const sw = m.lastSwitch;
  lines.push(`  last switch   ${sw ? `${sw.at} ${sw.reason ?? '?'}: from ${sw.from ?? '(none)'} to master ${sw.to ?? '?'}` : '(none recorded)'}`);
  const f = m.lastFailure;
  lines.push(`  last failure  ${f ? `${f.at} ${f.reason} ${f.result}: ${f.why ?? ''}` : '(none since start)'}`);
  for (const p of m.problems) lines.push(`  PROBLEM       ${p}`);
  return lines;
}

function table(head: string[], rows: string[][]): string[] {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(head), ...rows.map(line)];
}
