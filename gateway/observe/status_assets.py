"""The status page's inline style and script (docs/operations.md#the-status-page).

The script refreshes ``<main>`` from ``/status.json`` every ``REFRESH_SECONDS``; its
functions are those of ``status_html.py`` (same names, same markup), so the page looks the
same before and after the first refresh. It uses no library and loads nothing.
"""

from __future__ import annotations

__all__ = ["REFRESH_SECONDS", "SCRIPT", "STYLE"]

REFRESH_SECONDS = 5

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:0 1.2em 2em;color:#222;background:#fafafa}
header{display:flex;gap:1em;align-items:baseline;flex-wrap:wrap;border-bottom:1px solid #ddd}
h1{font-size:1.3em;margin:.5em 0}h2{font-size:1.1em;margin:1.2em 0 .4em}h3{font-size:1em}
.badge{padding:.15em .6em;border-radius:.8em;color:#fff;font-weight:600;background:#777}
.badge.ready{background:#2e7d32}.badge.degraded{background:#ef6c00}
.badge.not_ready{background:#c62828}
#problems{background:#fdecea;border:1px solid #c62828;padding:.2em 1em;margin-top:1em}
#notice{background:#e8f0fe;border:1px solid #1565c0;padding:.4em 1em}
table{border-collapse:collapse}.grid th,.grid td{border-bottom:1px solid #e3e3e3;
padding:.25em .6em;text-align:left;vertical-align:top}.grid td[data-k]{text-align:right}
.kv th{text-align:left;font-weight:normal;color:#555;padding:.1em 1.2em .1em 0}
.muted{color:#888}.pill{display:inline-block;background:#eee;border-radius:.6em;
padding:0 .5em;margin:0 .3em .2em 0}.route{font-family:monospace}
.health.up{color:#2e7d32}.health.down{color:#c62828;font-weight:600}
.error{font-family:monospace;max-width:32em;overflow-wrap:anywhere}
form.inline{display:inline}button{margin-right:.3em}
.charts{display:flex;flex-wrap:wrap;gap:1.2em}.chart{margin:0}
.chart figcaption{font-size:.9em;color:#555}.chart .last{color:#222;font-weight:600}
section{max-width:80em}.cols{display:flex;gap:4em;flex-wrap:wrap}
"""

SCRIPT = """
(function(){
'use strict';
var COLOURS=[['2xx','#2e7d32'],['3xx','#1565c0'],['4xx','#ef6c00'],['5xx','#c62828']];
function e(v){return String(v).replace(/&/g,'&amp;').replace(/</g,'&lt;')
  .replace(/>/g,'&gt;').replace(/"/g,'&quot;').replace(/'/g,'&#x27;');}
function num(v){return v===null||v===undefined?'\\u2013':Math.trunc(v).toLocaleString('en-US');}
function dec(v,d){if(d===undefined)d=2;return v===null||v===undefined?'\\u2013':v.toFixed(d);}
function when(t){if(t===null||t===undefined)return '\\u2013';
  return new Date(t*1000).toISOString().slice(0,19).replace('T',' ')+'Z';}
function age(s){if(s===null||s===undefined)return '\\u2013';
  if(s<120)return s.toFixed(0)+' s';if(s<7200)return (s/60).toFixed(1)+' min';
  if(s<172800)return (s/3600).toFixed(1)+' h';return (s/86400).toFixed(1)+' d';}
function size(n){if(n===null||n===undefined)return '\\u2013';var v=n,units=['B','KiB','MiB',
  'GiB','TiB'],i=0;while(v>=1024&&i<units.length-1){v/=1024;i++;}
  return i===0?v.toFixed(0)+' B':v.toFixed(1)+' '+units[i];}
function mixBar(c){var total=0,k;for(k in c)total+=c[k];if(!total)return '';var x=0,p='';
  COLOURS.forEach(function(kc){var w=80*(c[kc[0]]||0)/total;if(w>0){p+='<rect x="'+
  x.toFixed(2)+'" y="0" width="'+w.toFixed(2)+'" height="10" fill="'+kc[1]+'"><title>'+
  kc[0]+': '+c[kc[0]]+'</title></rect>';x+=w;}});
  return '<svg class="mix" width="80" height="10" viewBox="0 0 80 10" role="img" '+
  'aria-label="status mix">'+p+'</svg>';}
function chart(key,title,t,values,unit){var pts=[];for(var i=0;i<t.length&&i<values.length;
  i++){if(values[i]!==null)pts.push([t[i],values[i]]);}
  var head='<figure class="chart" data-chart="'+e(key)+'"><figcaption>'+e(title);
  if(pts.length<2)return head+' <span class="muted">collecting\\u2026</span></figcaption></figure>';
  var t0=pts[0][0],t1=pts[pts.length-1][0],top=0;pts.forEach(function(p){if(p[1]>top)top=p[1];});
  top=top||1;var span=(t1-t0)||1;var line=pts.map(function(p){return (300*(p[0]-t0)/span)
  .toFixed(1)+','+(80-76*p[1]/top).toFixed(1);}).join(' ');
  return head+' <span class="last">'+dec(pts[pts.length-1][1])+' '+e(unit)+
  '</span></figcaption><svg width="300" height="96" viewBox="0 0 300 96" role="img" '+
  'aria-label="'+e(title)+'"><line x1="0" y1="80" x2="300" y2="80" stroke="#bbb"/>'+
  '<polyline fill="none" stroke="#1565c0" stroke-width="1.5" points="'+line+'"/>'+
  '<text x="0" y="94" font-size="10">-'+age(t1-t0)+'</text><text x="300" y="94" '+
  'font-size="10" text-anchor="end">now</text><text x="2" y="10" font-size="10">max '+
  dec(top)+'</text></svg></figure>';}
function kv(rows){return '<table class="kv">'+rows.map(function(r){return '<tr><th>'+
  e(r[1])+'</th><td data-k="'+e(r[0])+'">'+r[2]+'</td></tr>';}).join('')+'</table>';}
function counts(c,empty){var keys=Object.keys(c);if(!keys.length)return '<span class="muted">'+
  e(empty)+'</span>';return keys.map(function(k){return '<span class="pill" data-reason="'+
  e(k)+'">'+e(k)+' <b>'+num(c[k])+'</b></span>';}).join(' ');}
function upstreams(r){var cells=(r.upstreams||[]).map(function(u){var ok=u.reachable;
  var mark=ok===null?'?':ok?'up':'down';var reason=u.reason?' title="'+e(u.reason)+'"':'';
  return '<span class="health '+mark+'"'+reason+'>'+e(u.upstream)+' '+mark+'</span>';});
  return cells.join('<br>')||'<span class="muted">\\u2013</span>';}
function routeRow(r){var lat=r.latency_ms;var st=Object.keys(r.statuses).map(function(c){
  return e(c)+'\\u00d7'+num(r.statuses[c]);}).join(' ');var s=r.spool;
  var spooled=s?num(s.depth)+' waiting, oldest '+age(s.oldest_age_seconds)+', '+
  num(s.dead_letters)+' dead':'\\u2013';
  return '<tr data-route="'+e(r.route)+'"><td class="route">'+e(r.route)+'</td><td>'+
  e(r.delivery)+'</td><td data-k="requests_per_s">'+dec(r.requests_per_s)+
  '</td><td data-k="requests">'+num(r.requests)+'</td><td data-k="statuses">'+
  mixBar(r.classes)+' '+st+'</td><td data-k="p50">'+dec(lat.p50)+'</td><td data-k="p99">'+
  dec(lat.p99)+'</td><td>'+upstreams(r)+'</td><td data-k="spool">'+spooled+'</td></tr>';}
function deadLetters(doc,csrf){var dead=doc.dead_letters;if(!dead.length)
  return '<p class="muted" id="no-dead-letters">No dead letters.</p>';
  var head='<tr><th>id</th><th>route</th><th>method</th><th>size</th><th>arrived</th>'+
  '<th>attempts</th><th>last status</th><th>last error</th>'+(csrf?'<th>actions</th>':'')+
  '</tr>';var rows=dead.map(function(d){var id=Math.trunc(d.id),actions='';
  if(csrf){actions='<td>'+['retry','purge'].map(function(v){return '<form method="post" '+
  'action="/spool/'+v+'" class="inline"><input type="hidden" name="csrf" value="'+e(csrf)+
  '"><input type="hidden" name="id" value="'+id+'"><button type="submit" class="'+v+
  '" data-id="'+id+'">'+v+'</button></form>';}).join('')+'</td>';}
  return '<tr data-dead="'+id+'"><td>'+id+'</td><td>'+e(d.route)+'</td><td>'+e(d.method)+
  '</td><td>'+size(d.bytes)+'</td><td>'+when(d.accepted_at)+'</td><td>'+num(d.attempts)+
  '</td><td>'+e(d.last_status||'\\u2013')+'</td><td class="error">'+e(d.last_error||'')+
  '</td>'+actions+'</tr>';}).join('');
  var note=csrf?'':'<p class="muted">Actions are offered when the page is opened by IP '+
  'address, localhost or server.admin.host.</p>';
  return '<table class="grid" id="dead-letters">'+head+rows+'</table>'+note;}
function renderMain(doc,csrf){var parts=[],ready=doc.readiness||{};
  var problems=(ready.reasons||[]).concat(ready.degraded||[]);
  if(problems.length)parts.push('<section id="problems"><ul>'+problems.map(function(p){
  return '<li>'+e(p)+'</li>';}).join('')+'</ul></section>');
  parts.push('<section id="routes"><h2>Routes</h2><table class="grid"><tr><th>route</th>'+
  '<th>delivery</th><th>req/s</th><th>requests</th><th>status mix</th><th>p50 ms</th>'+
  '<th>p99 ms</th><th>upstream</th><th>spool</th></tr>'+doc.routes.map(routeRow).join('')+
  '</table><p class="muted">Rates and percentiles over the last minute.</p></section>');
  var tk=doc.token_endpoint;
  parts.push('<div class="cols"><section id="token"><h2>Token endpoint</h2>'+kv([
  ['tokens_issued','tokens issued',num(tk.tokens_issued)],['tokens_issued_per_s',
  'tokens/s',dec(tk.tokens_issued_per_s)],['rate_limited','429 refusals',num(tk.rate_limited)],
  ['token_p99','p99 ms',dec(tk.latency_ms.p99)]])+
  '<h3>Authentication failures</h3><p id="auth-failures">'+counts(doc.auth_failures,'none')+
  '</p></section>');
  var w=doc.workers,rl=doc.reload,st=doc.state,ex=doc.tls.certificate_expires_at;
  var last=rl.last_at===null?'never since start':when(rl.last_at)+' ('+e(rl.last_result)+')';
  parts.push('<section id="gateway"><h2>Gateway</h2>'+kv([['workers','workers',
  num(w.running)+' of '+num(w.configured)],['restarts','restarts',num(w.restarts)],
  ['reload','last reload',last],['state','shared state','<span class="health '+
  (st.status==='ok'?'up':'down')+'">'+e(st.backend)+' '+e(st.status)+'</span>'],
  ['certificate','certificate expires',ex===null?'\\u2013':when(ex)+' (in '+
  age(ex-doc.generated_at)+')'],['in_flight','in flight',num(doc.in_flight)],
  ['upstream_errors','upstream errors',counts(doc.upstream_errors,'none')]])+'</section></div>');
  var sp=doc.spool;if(sp!==null){parts.push('<section id="spool"><h2>Spool</h2>'+kv([
  ['depth','waiting',num(sp.depth)],['oldest_age_seconds','oldest',age(sp.oldest_age_seconds)],
  ['bytes','stored',size(sp.bytes)+' of '+size(sp.max_bytes)],['dead_letters','dead letters',
  num(sp.dead_letters)]].concat(sp.store?[['store','store',e(sp.store)]]:[]))+
  '<h3>Dead letters</h3>'+deadLetters(doc,csrf)+'</section>');}
  var h=doc.history;parts.push('<section id="charts"><h2>Last minutes</h2><div class="charts">'+
  chart('requests','requests/s',h.t,h.requests_per_s,'/s')+chart('errors','5xx/s',h.t,
  h.errors_5xx_per_s,'/s')+chart('p99','p99 latency',h.t,h.p99_ms,'ms')+chart('auth',
  'auth failures/s',h.t,h.auth_failures_per_s,'/s')+(sp!==null?chart('spool',
  'spool waiting',h.t,h.spool_depth,''):'')+'</div></section>');
  return parts.join('');}
var meta=document.querySelector('meta[name="csrf-token"]');
var csrf=meta?meta.getAttribute('content'):null;
var refresh=document.getElementById('refresh');
refresh.textContent='refreshing every %(seconds)d s';
function update(){fetch('/status.json',{cache:'no-store',credentials:'same-origin'})
  .then(function(r){if(!r.ok)throw new Error('HTTP '+r.status);return r.json();})
  .then(function(doc){document.getElementById('status').innerHTML=renderMain(doc,csrf);
  var status=(doc.readiness||{}).status||'unknown',badge=document.getElementById('readiness');
  badge.className='badge '+status;badge.textContent=status.replace('_',' ');
  document.title='gateway status: '+status;
  document.getElementById('generated').textContent='as of '+when(doc.generated_at);
  refresh.textContent='refreshing every %(seconds)d s';refresh.className='';})
  .catch(function(err){refresh.textContent='refresh failed ('+err.message+
  '); showing the last figures';refresh.className='health down';});}
document.addEventListener('submit',function(ev){var f=ev.target;
  if(f.action&&/\\/spool\\/purge$/.test(f.action)&&!window.confirm('Purge this dead letter '+
  'for good?'))ev.preventDefault();});
window.setInterval(update,%(seconds)d*1000);
})();
""".replace("%(seconds)d", str(REFRESH_SECONDS))
