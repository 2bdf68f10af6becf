/**
 * The status page's script (page.ts inlines it): plain browser JavaScript, no framework. State is
 * three objects as the server sends them: S (the status, "status" events), C (the whole-overlay
 * view, "cluster" events) and K (every host's containers as compact rows, "containers" events;
 * cluster-view.ts pageContainers). Each event redraws its parts; typing in the search box redraws
 * the containers list alone, once per animation frame, from a lower-case text per row made once
 * per K. At most LIMIT rows are drawn until "show all" is pressed (5,000 rows of DOM on a phone
 * are slow to scroll and to filter). The first data paints problems and hosts first, the
 * containers list one frame later (performance mark "containers-drawn").
 */
export const PAGE_SCRIPT = String.raw`
const esc=(s)=>String(s??'').replace(/[&<>"]/g,(c)=>({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}[c]));
const span=(a)=>a<120?a+' s':a<7200?Math.round(a/60)+' min':Math.round(a/3600)+' h';
function until(iso){if(!iso)return '';const s=Math.round((Date.parse(iso)-Date.now())/1000);return s>0?'in '+span(s):'expired';}
function since(iso){if(!iso)return '';const s=Math.max(0,Math.round((Date.now()-Date.parse(iso))/1000));return s<1?'just now':span(s)+' ago';}
const td=(label,html,cls)=>'<td data-label="'+label+'"'+(cls?' class="'+cls+'"':'')+'>'+html+'</td>';
const $=(id)=>document.getElementById(id);
const LIMIT=200;
let S=null,C=null,K={hosts:[],networks:[],rows:[]},hay=[],all=false,queued=false;
function picture(hosts){const n=hosts.length;if(!n)return '';
 if(n>24)return '<div class="muted">'+n+' hosts (the picture is drawn up to 24)</div>';
 const W=420,H=200,cx=210,cy=100,r=n>1?64:0;
 let s='<svg viewBox="0 0 '+W+' '+H+'" width="'+W+'" height="'+H+'" role="img" aria-label="hosts and vxlan links">';
 const pts=hosts.map((l,i)=>[cx+r*Math.cos(2*Math.PI*i/n-Math.PI/2),cy+r*Math.sin(2*Math.PI*i/n-Math.PI/2),l]);
 for(let i=0;i<n;i++)for(let j=i+1;j<n;j++)s+='<line x1="'+pts[i][0]+'" y1="'+pts[i][1]+'" x2="'+pts[j][0]+'" y2="'+pts[j][1]+'" stroke="#bbb"/>';
 for(const [x,y,l] of pts){
  const below=y>cy+1,side=Math.abs(x-cx)>r*0.6&&n>4;
  const ax=side?(x>cx?'start':'end'):'middle';
  const tx=side?x+(x>cx?13:-13):x;
  const ty=side?y-2:below?y+22:y-24;
  s+='<circle cx="'+x+'" cy="'+y+'" r="9" fill="'+(l.own?'#2f6fde':l.kind==='flanneld'?'#b07d2b':'#888')+'"/>'
   +'<text x="'+tx+'" y="'+ty+'" font-size="10" text-anchor="'+ax+'"><tspan x="'+tx+'">'+esc(l.subnet)+'</tspan><tspan x="'+tx+'" dy="11" fill="#666">'+esc(l.publicIP)+'</tspan></text>';}
 return s+'</svg>';}
function hostRow(l){
 const kind=l.kind==='flanneld'?'<span class="warning" title="no name records from this host: flanneld, or a plugin host with no containers yet">flanneld (no name records)</span>':'plugin';
 const kernel=l.own?'—':l.programmed===null?'<span class="muted">n/a</span>':l.programmed?'<span class="ok">programmed</span>':'<span class="bad">not programmed</span>';
 return '<tr class="host'+(l.own?' own':'')+'" data-subnet="'+esc(l.subnet)+'" data-overlay="'+esc(l.overlay)+'" data-kind="'+esc(l.kind)+'">'
  +td('subnet',esc(l.subnet)+(l.own?' (this host)':''))+td('public IP',esc(l.publicIP))+td('host',kind)
  +td('backend',esc(l.backend))+td('VTEP MAC',esc(l.vtepMac??''))
  +'<td data-label="lease expires" class="expires" title="'+esc(l.expiresAt)+'">'+esc(until(l.expiresAt))
  +'</td><td data-label="last seen" class="seen" title="'+esc(l.lastSeen)+'">'+esc(since(l.lastSeen))+'</td>'
  +td('containers',String(l.containers))+td('kernel',kernel)+td('path',pathCell(l),'path')+'</tr>';}
const NOECHO='never answered a probe and publishes no path report: flanneld, or a plugin host without STATUS_ADDR or with PROBE_PORT=0; its paths cannot be measured';
function pathCell(l){const p=l.path;if(l.own)return '—';if(!p)return '<span class="muted">not probed</span>';
 if(p.note==='no echo')return '<span class="muted" title="'+NOECHO+'">no echo</span>';
 if(p.state==='unreachable')return '<span class="bad st">unreachable</span>'+(p.loss!==null?' <span class="muted">'+Math.round(p.loss*100)+'% lost</span>':'');
 if(p.state==='unknown'||p.rttMs===null)return '<span class="muted">probing…</span>';
 return esc(p.rttMs<10?p.rttMs.toFixed(2):Math.round(p.rttMs))+' ms'+(p.loss?' <span class="warning">'+Math.round(p.loss*100)+'% lost</span>':'');}
function mcell(c,from,to){const st=c[0],age=c[2]===null?'':' <span class="muted age">'+span(c[2])+'</span>';
 const attrs=' data-label="'+esc(to.publicIP)+'" data-from="'+esc(from.publicIP)+'" data-to="'+esc(to.publicIP)+'" data-state="'+({r:'reachable',u:'unreachable','?':'unknown','-':'self'}[st])+'"';
 const title=' title="'+esc(from.publicIP+' → '+to.publicIP+(c[2]!==null?', measured '+span(c[2])+' ago':'')+(c[3]?', '+(c[3]==='no echo'?to.publicIP+' '+NOECHO:c[3]):''))+'"';
 if(st==='-')return '<td class="cell self"'+attrs+'>—</td>';
 if(st==='u')return '<td class="cell bad st"'+attrs+title+'>unreachable'+age+'</td>';
 if(st==='r'&&c[1]!==null)return '<td class="cell ok"'+attrs+title+'>'+esc(c[1]<10?c[1].toFixed(2):Math.round(c[1]))+' ms'+age+'</td>';
 return '<td class="cell muted"'+attrs+title+'>'+(c[3]?esc(c[3]):'unknown')+age+'</td>';}
function matrix(name){const m=(C&&C.matrix||[]).find((x)=>x.overlay===name);if(!m||!m.hosts.length)return '';
 let h='<h3>paths, host × host <span class="muted">row: from, column: to; RTT, age of the measurement</span></h3>';
 if(!m.rows)return h+'<div class="muted">'+m.hosts.length+' hosts: the matrix is drawn up to 50 (unreachable paths are in the problems; every cell in /api/v1/cluster)</div>';
 h+='<table class="matrix" data-overlay="'+esc(name)+'"><thead><tr><th>from \\ to</th>'+m.hosts.map((x)=>'<th data-host="'+esc(x.publicIP)+'">'+esc(x.publicIP)+'</th>').join('')+'</tr></thead><tbody>';
 m.rows.forEach((r,i)=>{const f=m.hosts[i];
  const old=f.reportAgeSec!==null&&r.some((c)=>c[3]==='report stale'||c[3]==='etcd unreachable');
  h+='<tr class="mrow'+(f.own?' own':'')+'" data-host="'+esc(f.publicIP)+'"><th title="'+esc(f.subnet+(f.version?' · plugin '+f.version:''))+'">'+esc(f.publicIP)+(f.own?' (this host)':'')
   +(old?' <span class="muted age stale-row">report '+span(f.reportAgeSec)+' old</span>':'')+'</th>'+r.map((c,j)=>mcell(c,f,m.hosts[j])).join('')+'</tr>';});
 return h+'</tbody></table>';}
function overlay(o,kv){const hosts=(C?C.hosts:[]).filter((h)=>h.overlay===o.name);
 let h='<div class="card overlay" data-overlay="'+esc(o.name)+'"><h2>'+esc(o.name)+' <span class="st '+(o.state==='ready'?'ok':'bad')+'">'+esc(o.state)+'</span> <span class="muted">'+hosts.length+' hosts</span></h2>';
 h+='<div class="muted">'+esc(o.prefix)+(o.config?' · '+esc(o.config.network)+' /'+o.config.subnetLen+' · '+esc(o.config.backend.type):'')
  +(o.configError?' · <span class="bad">'+esc(o.configError)+'</span>':'')+'</div>';
 h+=picture(hosts);
 h+='<table><thead><tr><th>subnet</th><th>public IP</th><th>host</th><th>backend</th><th>VTEP MAC</th><th>lease expires</th><th>last seen</th><th>containers</th><th>kernel</th><th>path from here</th></tr></thead><tbody>';
 h+=hosts.map(hostRow).join('')+'</tbody></table>';
 h+=matrix(o.name);
 if(kv&&kv.stats)h+='<div class="muted kernel">device '+esc(kv.device??'-')+' · mtu '+esc(kv.mtu)
  +(kv.wireguard?' · WireGuard '+esc(kv.wireguard.implementation)+' ('+esc(kv.wireguard.reason)+'), port '+esc(kv.wireguard.listenPort)+', public key '+esc(kv.wireguard.publicKey):'')
  +(kv.wireguard6?' · <span class="wg6">v6 device '+esc(kv.wireguard6.device)+' · WireGuard '+esc(kv.wireguard6.implementation)+', port '+esc(kv.wireguard6.listenPort)+', '+kv.wireguard6.peers.length+(kv.wireguard6.peers.length===1?' peer':' peers')+'</span>':'')
  +' · full syncs '+kv.stats.fullSyncs+' · fast syncs '+kv.stats.fastSyncs+' · ops '+kv.stats.opsApplied+' · errors '+kv.stats.errors+' · last drift '+kv.stats.lastDrift+'</div>';
 return h+'</div>';}
function problems(){const el=$('problems');if(!C){el.innerHTML='';return;}
 const p=C.problems;
 el.className='card'+(C.stale?' stale':'');
 el.innerHTML='<h2>problems</h2>'+(C.stale?'<div class="bad" id="stale">stale: the last known state'+(C.staleSince?' (etcd unreachable since '+esc(new Date(C.staleSince).toLocaleTimeString())+')':'')+'</div>':'')
  +(p.length?'<ul>'+p.map((x)=>'<li class="problem '+(x.severity==='error'?'bad':'warning')+'" data-kind="'+esc(x.kind)+'">'+esc(x.text)+'</li>').join('')+'</ul>':'<div class="ok" id="noproblems">no problems</div>');}
function events(){const el=$('events');if(!C){el.innerHTML='';return;}
 const ev=C.events;
 el.innerHTML='<h2>recent events <span class="muted">newest first</span></h2>'+(ev.length?'<ul>'+ev.map((e)=>'<li class="event" data-kind="'+esc(e.kind)+'"><span class="muted" title="'+esc(e.at)+'">'+esc(new Date(e.at).toLocaleTimeString())+'</span> '+esc(e.text)+'</li>').join('')+'</ul>':'<div class="muted">none since this daemon started</div>');}
function index(){hay=K.rows.map((r)=>(r[0]+' '+r[1]+' '+r[2]+' '+K.hosts[r[4]]+' '+K.networks[r[3]]).toLowerCase());}
function clist(){queued=false;const q=$('q').value.trim().toLowerCase();
 const hit=[];for(let i=0;i<K.rows.length;i++)if(!q||hay[i].includes(q))hit.push(i);
 const shown=all?hit:hit.slice(0,LIMIT);
 $('ccount').textContent=(q?hit.length+' of '+K.rows.length+' match':K.rows.length+' in all')+(shown.length<hit.length?', '+shown.length+' shown':'');
 let h='';
 if(shown.length){h='<table><thead><tr><th>name</th><th>aliases</th><th>address</th><th>network</th><th>host</th></tr></thead><tbody>';
  for(const i of shown){const r=K.rows[i],host=K.hosts[r[4]];
   h+='<tr class="ctr" data-name="'+esc(r[0])+'" data-host="'+esc(host)+'">'+td('name',esc(r[0]))+td('aliases',esc(r[1]))+td('address',esc(r[2]))+td('network',esc(K.networks[r[3]]))+td('host',esc(host))+'</tr>';}
  h+='</tbody></table>';}
 else h='<div class="muted" id="nomatch">'+(K.rows.length?'no container matches':'no name records (NAMES=false, or no containers on overlay networks)')+'</div>';
 if(shown.length<hit.length)h+='<button type="button" id="showall">show all '+hit.length+'</button>';
 $('clist').innerHTML=h;
 const b=$('showall');if(b)b.onclick=()=>{all=true;clist();$('q').focus();};}
function later(){if(!queued){queued=true;requestAnimationFrame(clist);}}
function containers(c){if(!c)return '';let h='<div class="card"><h2>containers on this host</h2>';
 if(c.dockerError)h+='<div class="muted">names unavailable: '+esc(c.dockerError)+'</div>';
 if(!c.endpoints.length)return h+'<div class="muted">no endpoints</div></div>';
 h+='<table><thead><tr><th>container</th><th>address</th><th>endpoint</th><th>network</th></tr></thead><tbody>';
 for(const e of c.endpoints)h+='<tr class="endpoint" data-endpoint="'+esc(e.endpoint)+'">'+td('container',esc(e.container??'(unknown)'))
  +td('address',esc([e.address,e.address6].filter(Boolean).join(' ')))+td('endpoint',esc(e.endpoint))+td('network',esc(e.network??e.bridge??''))+'</tr>';
 return h+'</tbody></table></div>';}
function names(n){if(!n)return '';
 const bad=[n.upstreamProblem,n.notWriting&&('this host writes no name records: '+n.notWriting),n.etcdStale&&('names from before etcd went away: '+(n.problem??''))].filter(Boolean);
 return '<div class="card names"><h2>names</h2><div class="muted">'+n.records+' records known · resolver '
  +(n.resolving?'<span class="ok">answering</span>':'<span class="bad">off (see the log)</span>')+'</div>'
  +bad.map((b)=>'<div class="bad problem">'+esc(b)+'</div>').join('')+'</div>';}
function render(){if(!S)return;const k=new Map(S.kernel.map((x)=>[x.name,x]));
 const e=S.etcd;
 $('bar').innerHTML='<span>host '+esc(S.publicIP??'?')+'</span><span id="etcd">etcd '
  +(e?(e.up?'<span class="ok">up</span>':e.up===false?'<span class="bad">down</span> '+esc(e.lastError??''):'?'):'?')
  +'</span>'+(C?'<span>'+C.counts.hosts+' hosts ('+C.counts.flanneldHosts+' flanneld) · '+C.counts.containers+' containers</span>':'')
  +'<span>'+new Date().toLocaleTimeString()+'</span>';
 const h=S.overlays.map((o)=>overlay(o,k.get(o.name))).join('');
 const root=$('root');root.innerHTML=h||'<p>no overlay joined yet</p>';root.className='';
 $('containers').innerHTML=names(S.names)+containers(S.containers);}
function status(d){S=d;render();}
function cluster(d){C=d;render();problems();events();}
function rows(d){K=d;index();clist();}
const first=JSON.parse($('initial').textContent);
C=first.cluster;status(first.status);problems();events();
// The containers list right after the first paint (the problems and hosts come first); the mark lets tests time it.
requestAnimationFrame(()=>setTimeout(()=>{if(!K.rows.length)rows(first.containers);performance.mark('containers-drawn');},0));
$('q').addEventListener('input',()=>{all=false;later();});
addEventListener('keydown',(ev)=>{const q=$('q');
 if(ev.key==='/'&&document.activeElement!==q&&!ev.ctrlKey&&!ev.metaKey&&!ev.altKey){ev.preventDefault();q.focus();q.select();q.scrollIntoView({block:'nearest'});}
 else if(ev.key==='Escape'&&document.activeElement===q){q.value='';all=false;clist();q.blur();}});
addEventListener('load',()=>setTimeout(()=>{const es=new EventSource('api/v1/events');
es.addEventListener('status',(e)=>status(JSON.parse(e.data)));
es.addEventListener('cluster',(e)=>cluster(JSON.parse(e.data)));
es.addEventListener('containers',(e)=>rows(JSON.parse(e.data)));
es.onopen=()=>{const c=$('conn');c.textContent='live';c.className='ok';};
es.onerror=()=>{const c=$('conn');c.textContent='reconnecting…';c.className='bad';};},0));
`;
