/**
 * Reading `/api/v1/cluster`'s matrix in tests: its documented by-row form (README, `MatrixRow`)
 * decoded back to one cell, independently of src/status/cluster-view.ts apiMatrix, so a test
 * that reads a cell also checks the format.
 */
export interface ApiMatrixRow {
  state: string;
  rttMs: (number | null)[];
  loss: (number | null)[];
  lastReplyAgeSec: (number | null)[];
  ageSec: number | null;
  notes: Record<string, string>;
}

export interface ApiMatrix {
  overlay: string;
  hosts: { publicIP: string; subnet: string; own: boolean; live: boolean; version: string | null; reportAgeSec: number | null }[];
  rows: ApiMatrixRow[];
}

export interface ApiCell {
  state: 'self' | 'reachable' | 'unreachable' | 'unknown';
  rttMs: number | null;
  loss: number | null;
  ageSec: number | null;
  lastReplyAgeSec: number | null;
  note: string | null;
}

const STATES: Record<string, ApiCell['state']> = { '-': 'self', r: 'reachable', u: 'unreachable', '?': 'unknown' };

/** Cell (i, j) of a row-form matrix. */
export function cellAt(m: ApiMatrix, i: number, j: number): ApiCell | undefined {
  const r = m.rows[i];
  const code = r?.state[j];
  if (!r || code === undefined) return undefined;
  const state = STATES[code];
  if (!state) throw new Error(`matrix row ${i}: unknown state code ${JSON.stringify(code)}`);
  return { state, rttMs: r.rttMs[j] ?? null, loss: r.loss[j] ?? null, ageSec: state === 'self' ? null : r.ageSec, lastReplyAgeSec: r.lastReplyAgeSec[j] ?? null, note: r.notes[String(j)] ?? null };
}

/** The cell from one host to another (by public IP). */
export function cellOf(m: ApiMatrix | undefined, from: string, to: string): ApiCell | undefined {
  if (!m) return undefined;
  return cellAt(m, m.hosts.findIndex((h) => h.publicIP === from), m.hosts.findIndex((h) => h.publicIP === to));
}
