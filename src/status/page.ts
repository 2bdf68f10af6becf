/**
 * The status server's page: one self-contained HTML document (inline CSS, JS and SVG; no CDN, no
 * framework). The first snapshot is inlined, so the page shows data before the event stream
 * (/api/v1/events) connects; every event re-renders it. On a narrow screen (phone) each table row
 * becomes a small card with the column names as labels. Elements carry data-* attributes
 * (data-subnet, data-endpoint) that tests and scripts can select on.
 */

/** The page, with the first snapshot inlined (shown before the event stream connects). */
export function statusPage(initial: unknown): string {
  return PAGE.replace('__INITIAL__', JSON.stringify(initial).replace(/</g, '\\u003c'));
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
svg{max-width:100%;height:auto;display:block;margin:4px auto}
@media (max-width:640px){
 body{padding:6px} thead{display:none} table,tbody,tr,td{display:block;width:auto}
 tr{border:1px solid #eee;border-radius:4px;margin:6px 0;padding:2px 0}
 td{white-space:normal;border:0;padding:1px 6px} td::before{content:attr(data-label) ": ";color:#777;font-weight:400}
}
</style></head><body>
<h1>overlay-flannel <span id="conn" class="muted">connecting…</span></h1>
<div id="bar" class="bar muted"></div>
<div id="root" class="muted">loading…</div>
<div id="containers"></div>
<script id="initial" type="application/json">__INITIAL__</script>
<script>
const esc=(s)=>String(s??'').replace(/[&<>"]/g,(c)=>({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}[c]));
const span=(a)=>a<120?a+' s':a<7200?Math.round(a/60)+' min':Math.round(a/3600)+' h';
function until(iso){if(!iso)return '';const s=Math.round((Date.parse(iso)-Date.now())/1000);return s>0?'in '+span(s):'expired';}
function since(iso){if(!iso)return '';const s=Math.max(0,Math.round((Date.now()-Date.parse(iso))/1000));return s<1?'just now':span(s)+' ago';}
const td=(label,html,cls)=>'<td data-label="'+label+'"'+(cls?' class="'+cls+'"':'')+'>'+html+'</td>';
function picture(o){const n=o.leases.length;if(!n)return '';const W=420,H=200,cx=210,cy=100,r=n>1?64:0;
 let s='<svg viewBox="0 0 '+W+' '+H+'" width="'+W+'" height="'+H+'" role="img" aria-label="hosts and vxlan links">';
 const pts=o.leases.map((l,i)=>[cx+r*Math.cos(2*Math.PI*i/n-Math.PI/2),cy+r*Math.sin(2*Math.PI*i/n-Math.PI/2),l]);
 for(let i=0;i<n;i++)for(let j=i+1;j<n;j++)s+='<line x1="'+pts[i][0]+'" y1="'+pts[i][1]+'" x2="'+pts[j][0]+'" y2="'+pts[j][1]+'" stroke="#bbb"/>';
 for(const [x,y,l] of pts){
  const below=y>cy+1,side=Math.abs(x-cx)>r*0.6&&n>4;
  const ax=side?(x>cx?'start':'end'):'middle';
  const tx=side?x+(x>cx?13:-13):x;
  const ty=side?y-2:below?y+22:y-24;
  s+='<circle cx="'+x+'" cy="'+y+'" r="9" fill="'+(l.own?'#2f6fde':'#888')+'"/>'
   +'<text x="'+tx+'" y="'+ty+'" font-size="10" text-anchor="'+ax+'"><tspan x="'+tx+'">'+esc(l.subnet)+'</tspan><tspan x="'+tx+'" dy="11" fill="#666">'+esc(l.publicIP)+'</tspan></text>';}
 return s+'</svg>';}
function overlay(o,kv){const programmed=new Set((kv?.peers??[]).map((p)=>p.subnet));
 let h='<div class="card overlay" data-overlay="'+esc(o.name)+'"><h2>'+esc(o.name)+' <span class="st '+(o.state==='ready'?'ok':'bad')+'">'+esc(o.state)+'</span></h2>';
 h+='<div class="muted">'+esc(o.prefix)+(o.config?' · '+esc(o.config.network)+' /'+o.config.subnetLen+' · '+esc(o.config.backend.type):'')
  +(o.configError?' · <span class="bad">'+esc(o.configError)+'</span>':'')+'</div>';
 h+=picture(o);
 h+='<table><thead><tr><th>subnet</th><th>public IP</th><th>backend</th><th>VTEP MAC</th><th>lease expires</th><th>last seen</th><th>kernel</th></tr></thead><tbody>';
 for(const l of o.leases)h+='<tr class="host'+(l.own?' own':'')+'" data-subnet="'+esc(l.subnet)+'">'+td('subnet',esc(l.subnet)+(l.own?' (this host)':''))
  +td('public IP',esc(l.publicIP))+td('backend',esc(l.backend))+td('VTEP MAC',esc(l.vtepMac??''))
  +'<td data-label="lease expires" class="expires" title="'+esc(l.expiresAt)+'">'+esc(until(l.expiresAt))
  +'</td><td data-label="last seen" class="seen" title="'+esc(l.lastSeen)+'">'+esc(since(l.lastSeen))+'</td>'
  +td('kernel',l.own?'—':programmed.has(l.subnet)?'<span class="ok">programmed</span>':'<span class="bad">not programmed</span>')+'</tr>';
 h+='</tbody></table>';
 if(kv&&kv.stats)h+='<div class="muted kernel">device '+esc(kv.device??'-')+' · mtu '+esc(kv.mtu)
  +' · full syncs '+kv.stats.fullSyncs+' · fast syncs '+kv.stats.fastSyncs+' · ops '+kv.stats.opsApplied+' · errors '+kv.stats.errors+' · last drift '+kv.stats.lastDrift+'</div>';
 return h+'</div>';}
function containers(c){if(!c)return '';let h='<div class="card"><h2>containers on this host</h2>';
 if(c.dockerError)h+='<div class="muted">names unavailable: '+esc(c.dockerError)+'</div>';
 if(!c.endpoints.length)return h+'<div class="muted">no endpoints</div></div>';
 h+='<table><thead><tr><th>container</th><th>address</th><th>endpoint</th><th>network</th></tr></thead><tbody>';
 for(const e of c.endpoints)h+='<tr class="endpoint" data-endpoint="'+esc(e.endpoint)+'">'+td('container',esc(e.container??'(unknown)'))
  +td('address',esc(e.address??''))+td('endpoint',esc(e.endpoint))+td('network',esc(e.network??e.bridge??''))+'</tr>';
 return h+'</tbody></table></div>';}
function names(n){if(!n)return '';
 const bad=[n.upstreamProblem,n.notWriting&&('this host writes no name records: '+n.notWriting),n.etcdStale&&('names from before etcd went away: '+(n.problem??''))].filter(Boolean);
 return '<div class="card names"><h2>names</h2><div class="muted">'+n.records+' records known · resolver '
  +(n.resolving?'<span class="ok">answering</span>':'<span class="bad">off (see the log)</span>')+'</div>'
  +bad.map((b)=>'<div class="bad problem">'+esc(b)+'</div>').join('')+'</div>';}
function render(d){const k=new Map(d.kernel.map((x)=>[x.name,x]));
 const e=d.etcd;
 document.getElementById('bar').innerHTML='<span>host '+esc(d.publicIP??'?')+'</span><span id="etcd">etcd '
  +(e?(e.up?'<span class="ok">up</span>':e.up===false?'<span class="bad">down</span> '+esc(e.lastError??''):'?'):'?')
  +'</span><span>'+new Date().toLocaleTimeString()+'</span>';
 const h=d.overlays.map((o)=>overlay(o,k.get(o.name))).join('');
 const root=document.getElementById('root');root.innerHTML=h||'<p>no overlay joined yet</p>';root.className='';
 document.getElementById('containers').innerHTML=names(d.names)+containers(d.containers);}
render(JSON.parse(document.getElementById('initial').textContent));
addEventListener('load',()=>setTimeout(()=>{const es=new EventSource('api/v1/events');
es.addEventListener('status',(e)=>render(JSON.parse(e.data)));
es.onopen=()=>{const c=document.getElementById('conn');c.textContent='live';c.className='ok';};
es.onerror=()=>{const c=document.getElementById('conn');c.textContent='reconnecting…';c.className='bad';};},0));
</script></body></html>
`;
