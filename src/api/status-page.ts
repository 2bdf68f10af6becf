/** The status server's page: one self-contained HTML document (no CDN), live over /api/v1/events. */
/** The page, with the first snapshot inlined (shown before the event stream connects). */
export function statusPage(initial: unknown): string {
  return PAGE.replace('__INITIAL__', JSON.stringify(initial).replace(/</g, '\\u003c'));
}

const PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>overlay-flannel</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:0;padding:12px;background:#f7f7f9;color:#222}
h1{font-size:18px;margin:0 0 8px} h2{font-size:16px;margin:16px 0 6px}
.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:8px 10px;margin-bottom:12px;overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:13px} th,td{text-align:left;padding:3px 6px;border-bottom:1px solid #eee;white-space:nowrap}
tr.own td{background:#eef6ff;font-weight:600} .muted{color:#777} .st{font-weight:600} .ok{color:#1a7f37} .bad{color:#b42318}
svg{max-width:100%;height:auto}
</style></head><body>
<h1>overlay-flannel <span id="conn" class="muted">connecting…</span></h1>
<div id="root" class="muted">loading…</div>
<script id="initial" type="application/json">__INITIAL__</script>
<script>
const esc=(s)=>String(s??'').replace(/[&<>"]/g,(c)=>({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}[c]));
function picture(o){const n=o.leases.length;if(!n)return '';const W=320,H=160,cx=160,cy=80,r=n>1?60:0;
 let s='<svg viewBox="0 0 '+W+' '+H+'" width="'+W+'" height="'+H+'" role="img" aria-label="hosts">';
 const pts=o.leases.map((l,i)=>[cx+r*Math.cos(2*Math.PI*i/n),cy+r*Math.sin(2*Math.PI*i/n),l]);
 for(let i=0;i<n;i++)for(let j=i+1;j<n;j++)s+='<line x1="'+pts[i][0]+'" y1="'+pts[i][1]+'" x2="'+pts[j][0]+'" y2="'+pts[j][1]+'" stroke="#bbb"/>';
 for(const [x,y,l] of pts)s+='<circle cx="'+x+'" cy="'+y+'" r="9" fill="'+(l.own?'#2f6fde':'#888')+'"/><text x="'+x+'" y="'+(y-13)+'" font-size="10" text-anchor="middle">'+esc(l.subnet)+'</text>';
 return s+'</svg>';}
function render(d){const k=new Map(d.kernel.map((x)=>[x.name,x]));let h='';
 for(const o of d.overlays){const kv=k.get(o.name);const programmed=new Set((kv?.peers??[]).map((p)=>p.subnet));
  h+='<div class="card overlay" data-overlay="'+esc(o.name)+'"><h2>'+esc(o.name)+' <span class="st '+(o.state==='ready'?'ok':'bad')+'">'+esc(o.state)+'</span></h2>';
  h+='<div class="muted">'+esc(o.prefix)+(o.config?' · '+esc(o.config.network)+' /'+o.config.subnetLen+' · '+esc(o.config.backend.type):'')+'</div>';
  h+=picture(o);
  h+='<table><thead><tr><th>subnet</th><th>public IP</th><th>backend</th><th>VTEP MAC</th><th>expires</th><th>kernel</th></tr></thead><tbody>';
  for(const l of o.leases)h+='<tr class="host'+(l.own?' own':'')+'" data-subnet="'+esc(l.subnet)+'"><td>'+esc(l.subnet)+(l.own?' (this host)':'')+'</td><td>'+esc(l.publicIP)+'</td><td>'+esc(l.backend)+'</td><td>'+esc(l.vtepMac??'')+'</td><td>'+esc(l.expiresAt?new Date(l.expiresAt).toLocaleString():'')+'</td><td>'+(l.own?'—':programmed.has(l.subnet)?'<span class="ok">programmed</span>':'<span class="bad">not programmed</span>')+'</td></tr>';
  h+='</tbody></table>';
  if(kv&&kv.stats)h+='<div class="muted kernel">device '+esc(kv.device??'-')+' · mtu '+esc(kv.mtu)+' · full syncs '+kv.stats.fullSyncs+' · fast syncs '+kv.stats.fastSyncs+' · ops '+kv.stats.opsApplied+' · errors '+kv.stats.errors+' · last drift '+kv.stats.lastDrift+'</div>';
  h+='</div>';}
 document.getElementById('root').innerHTML=h||'<p>no overlay joined yet</p>';document.getElementById('root').className='';}
render(JSON.parse(document.getElementById('initial').textContent));
addEventListener('load',()=>setTimeout(()=>{const es=new EventSource('api/v1/events');
es.addEventListener('overlays',(e)=>render(JSON.parse(e.data)));
es.onopen=()=>{const c=document.getElementById('conn');c.textContent='live';c.className='ok';};
es.onerror=()=>{const c=document.getElementById('conn');c.textContent='reconnecting…';c.className='bad';};},0));
</script></body></html>
`;
