/**
 * probe-report.ts — what the path-probe benchmark (probe-bench.ts) prints: one Markdown table of
 * the prober's packets per second and memory at N peers, in the form of the README's scale
 * tables (measure | result). Pure: no I/O, so test/unit/probe-report.test.ts checks it.
 *
 * Design note: memory is the host child's (node + tsx + the prober): the prober's own cost is the
 * difference "before" (modules loaded, prober not started) → "after" (N peers, after the window);
 * RSS is VmRSS after two forced GCs, "raw" the VmRSS before them (what a daemon shows).
 */

export interface ProbeMemory {
  rssKb: number;
  hwmKb: number;
  heapUsed: number;
}
export interface ProbeResult {
  peers: number;
  windowS: number;
  /** UDP datagrams a second out of / into the host's namespace over the window. */
  outPerS: number;
  inPerS: number;
  rcvbufErrors: number;
  /** The host process's CPU (user + system), ms per second of the window. */
  cpuMsPerS: number;
  before: ProbeMemory;
  after: ProbeMemory & { rawRssKb: number };
  reachable: number;
  lossMean: number;
  rttMedianMs: number | null;
}

const mb = (kb: number, signed = false): string => `${signed && kb >= 0 ? '+' : ''}${(kb / 1024).toFixed(1)} MB`;

/** The table's rows, `| measure | result |`, for one run. */
export function renderProbeRows(r: ProbeResult): string {
  const heapKb = (r.after.heapUsed - r.before.heapUsed) / 1024;
  const rows: Array<[string, string]> = [
    [`path probes, ${r.peers} peers: UDP datagrams/s out / in (${r.windowS} s window)`, `${r.outPerS.toFixed(0)} / ${r.inPerS.toFixed(0)} (by design ${r.peers} / ${r.peers})`],
    [`… peers reachable, mean loss, median RTT`, `${r.reachable}/${r.peers}, ${(r.lossMean * 100).toFixed(1)} %, ${r.rttMedianMs === null ? '-' : `${r.rttMedianMs.toFixed(3)} ms`}`],
    [`… the prober's process CPU`, `${r.cpuMsPerS.toFixed(1)} ms/s`],
    [`… RSS before → after (VmRSS, after GC; raw)`, `${mb(r.before.rssKb)} → ${mb(r.after.rssKb)} (${mb(r.after.rssKb - r.before.rssKb, true)}; raw ${mb(r.after.rawRssKb)})`],
    [`… VmHWM before → after`, `${mb(r.before.hwmKb)} → ${mb(r.after.hwmKb)} (${mb(r.after.hwmKb - r.before.hwmKb, true)})`],
    [`… live heap of the prober (after forced GCs)`, `${mb(heapKb, true)} (${((heapKb * 1024) / r.peers).toFixed(0)} B/peer)`],
  ];
  if (r.rcvbufErrors) rows.push(['… UDP receive buffer drops', String(r.rcvbufErrors)]);
  return ['| measure | result |', '|---|---:|', ...rows.map(([a, b]) => `| ${a} | ${b} |`)].join('\n');
}
