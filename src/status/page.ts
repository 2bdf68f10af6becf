/**
 * The status server's page: one self-contained HTML document (inline CSS, JS and SVG; no CDN, no
 * framework). The first data is inlined ({status, cluster, containers}: the status without its
 * per-lease lists, the whole-overlay view, every host's containers in compact rows; see
 * cluster-view.ts), so the page shows everything before the event stream (/api/v1/events)
 * connects; its "status", "cluster" and "containers" events re-render the parts they carry.
 * Order: problems first, then each overlay's hosts, every container (search: name, alias,
 * address, host, network; "/" focuses it, Escape clears it; the first 200 matches are drawn, a
 * button draws all), recent events, this host's names and containers. Each probed overlay's card ends with the
 * host × host path matrix (row: from, column: to; the RTT, "unreachable" or "unknown" in words,
 * and the age of the measurement), drawn up to 50 hosts. The host picture is drawn
 * up to 24 hosts (n² links). On a narrow screen (phone) each table row becomes a small card with
 * the column names as labels. Elements carry data-* attributes (data-subnet, data-endpoint,
 * data-name, data-kind) that tests and scripts can select on. The script is page-script.ts.
 */
import { PAGE_SCRIPT } from './page-script';

/** The page, with the first snapshot inlined (shown before the event stream connects). */
export function statusPage(initial: unknown): string {
  return PAGE.replace('__SCRIPT__', () => PAGE_SCRIPT).replace('__INITIAL__', () => JSON.stringify(initial).replace(/</g, '\\u003c'));
}

const PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>overlay-flannel</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:0;padding:12px;background:#f7f7f9;color:#222}
h1{font-size:18px;margin:0 0 8px} h2{font-size:16px;margin:0 0 6px} h3{font-size:14px;margin:10px 0 4px}
.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:8px 10px;margin-bottom:12px;overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:13px} th,td{text-align:left;padding:3px 6px;border-bottom:1px solid #eee;white-space:nowrap}
tr.own td{background:#eef6ff;font-weight:600} .muted{color:#777} .st{font-weight:600} .ok{color:#1a7f37} .bad{color:#b42318}
.bar{display:flex;flex-wrap:wrap;gap:4px 14px;margin-bottom:10px}
table.matrix{width:auto;margin-top:4px} table.matrix td,table.matrix th{border:1px solid #eee;text-align:center} td.cell.bad{background:#fdecea} .age{font-size:11px;font-weight:400}
svg{max-width:100%;height:auto;display:block;margin:4px auto}
.stale{background:#fff4e5} .warning{color:#9a6700} ul{margin:4px 0;padding-left:20px} li{margin:2px 0}
input[type=search]{font:inherit;width:100%;max-width:420px;box-sizing:border-box;padding:6px 8px;margin:4px 0 8px;border:1px solid #aaa;border-radius:4px;display:block}
:focus-visible{outline:3px solid #2f6fde;outline-offset:1px} button{font:inherit;padding:4px 10px;margin-top:6px}
@media (max-width:640px){
 body{padding:6px} thead{display:none} table,tbody,tr,td{display:block;width:auto}
 tr{border:1px solid #eee;border-radius:4px;margin:6px 0;padding:2px 0}
 td{white-space:normal;border:0;padding:1px 6px} td::before{content:attr(data-label) ": ";color:#777;font-weight:400}
}
</style></head><body>
<h1>overlay-flannel <span id="conn" class="muted">connecting…</span></h1>
<div id="bar" class="bar muted"></div>
<nav class="bar"><a href="#problems">problems</a><a href="#root">hosts</a><a href="#everyc">containers</a><a href="#events">events</a></nav>
<div id="problems" class="card" role="status" aria-live="polite"></div>
<div id="root" class="muted">loading…</div>
<div id="everyc" class="card"><h2>containers, every host <span id="ccount" class="muted"></span></h2>
<label for="q" class="muted">search (name, address, host; press /)</label>
<input id="q" type="search" autocomplete="off" spellcheck="false" placeholder="e.g. web, 10.1.4., 192.0.2.3">
<div id="clist"></div></div>
<div id="events" class="card"></div>
<div id="containers"></div>
<script id="initial" type="application/json">__INITIAL__</script>
<script>
__SCRIPT__</script></body></html>
`;
