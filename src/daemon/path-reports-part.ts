/**
 * The daemon's path-report part (issue 20, with the path prober): this host's probe results
 * offered to its path report every second (the publisher writes only what domain/path-report.ts
 * publishDue allows: ≤ 1 put / 3 s, 1 / 10 s when steady), and every host's reports watched for
 * the status page's host × host matrix. Under the default overlay's prefix, one record per host
 * covering every probed overlay.
 *
 * Design note.
 * - The plugin version comes from the package.json beside dist/ (the managed plugin ships it);
 *   "unknown" when it cannot be read.
 * - Stop: the publisher revokes its lease (this host's row goes at once), then the watch stops.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { PathReport } from '../domain/path-report';
import { MAX_OVERLAYS, MAX_PEERS_PER_OVERLAY } from '../domain/path-report';
import { errorText } from '../errors';
import type { PathsOfOverlay } from '../reconcile/path-prober';
import type { Store } from '../store';
import type { UndoStack } from '../util/undo-stack';

const OFFER_EVERY_MS = 1000;

let version: string | null = null;
/** This plugin's version (package.json), read once. */
export function pluginVersion(): string {
  if (version === null) {
    try {
      const v = JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8')).version;
      version = typeof v === 'string' && v.length <= 64 ? v : 'unknown';
    } catch {
      version = 'unknown';
    }
  }
  return version;
}

/** The report of this host's probes now. */
export function reportOf(host: string, paths: PathsOfOverlay[], nowMs: number): PathReport {
  return {
    host,
    version: pluginVersion(),
    at: nowMs,
    overlays: paths.slice(0, MAX_OVERLAYS).map((o) => ({
      overlay: o.overlay,
      peers: o.peers.slice(0, MAX_PEERS_PER_OVERLAY).map((p) => ({ peer: p.publicIP, subnet: p.subnet, state: p.state, rttMs: p.rttMs, loss: p.loss, lastReplyAt: p.lastReplyAt })),
    })),
  };
}

export interface PathReportsPart {
  reports(): PathReport[];
  onChange(cb: () => void): void;
}

export function startPathReports(p: { store: Store; publicIP: string; paths: () => PathsOfOverlay[] }, log: Logger, undo: UndoStack): PathReportsPart {
  const ov = p.store.overlay();
  const watcher = ov.pathWatcher();
  watcher.start().then(
    () => log.info({ reports: watcher.reports().length }, 'path reports: every host\'s listed'),
    (e) => log.warn({ err: errorText(e) }, 'path reports: the watch did not start'),
  );
  undo.push('stopping the path report watch', () => watcher.stop());
  const publisher = ov.pathPublisher(p.publicIP);
  const timer = setInterval(() => void publisher.offer(reportOf(p.publicIP, p.paths(), Date.now())), OFFER_EVERY_MS);
  timer.unref();
  undo.push('revoking this host\'s path report', async () => {
    clearInterval(timer);
    await publisher.stop();
  });
  log.info({ key: ov.keys.pathsRoot + p.publicIP }, 'path reports: publishing this host\'s probes');
  return { reports: () => watcher.reports(), onChange: (cb) => void watcher.on('change', cb) };
}
