"""The report page: inline CSS and vanilla JS (no CDN, no network), and the page skeleton."""

from __future__ import annotations

from html import escape

__all__ = ["CSS", "JS", "page"]

CSS = """
:root{--ink:#1f2a1f;--mute:#5f6b5f;--line:#dfe5df;--bg:#fbfcfb;--accent:#2e7d32}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI","Noto Sans","Noto Sans CJK SC",
"PingFang SC","Microsoft YaHei",sans-serif;color:var(--ink);background:var(--bg)}
header{padding:18px 28px;background:#1b3a1f;color:#fff}
header h1{margin:0 0 4px;font-size:22px}
header .meta{opacity:.85;font-size:13px}
main{padding:8px 28px 40px;max-width:1400px}
section{margin:22px 0}
h2{font-size:18px;border-bottom:2px solid var(--accent);padding-bottom:4px;margin:0 0 12px}
h3{font-size:15px;margin:14px 0 6px}
.kpis{display:grid;grid-template-columns:repeat(auto-fill,minmax(190px,1fr));gap:10px}
.kpi{background:#fff;border:1px solid var(--line);border-radius:6px;padding:10px 12px}
.kpi .v{font-size:22px;font-weight:600}
.kpi .k{color:var(--mute);font-size:12px}
.bar{display:flex;height:22px;border-radius:4px;overflow:hidden;border:1px solid var(--line);
max-width:900px}
.bar span{display:block;height:100%}
.barlegend{font-size:12px;color:var(--mute);margin:4px 0 10px}
.barlegend i{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px;vertical-align:-1px}
.mapbox{position:relative;background:#fff;border:1px solid var(--line);border-radius:6px;
max-width:1100px;cursor:grab}
#farm-map{display:block;height:auto;max-height:720px}
#farm-map path.f{stroke:#6b786b;stroke-width:.6;vector-effect:non-scaling-stroke}
#farm-map path.f:hover{stroke:#000;stroke-width:2}
#farm-map .legend text,#farm-map .scalebar text{font-size:12px;fill:#333}
.critical{fill:#c62828}.warning{fill:#ef6c00}.watch{fill:#fbc02d}.resolved{fill:#64b5f6}
.none{fill:#c5cdc5}
#tip{position:absolute;pointer-events:none;background:#263238;color:#fff;font-size:12px;
padding:3px 6px;border-radius:3px;display:none;white-space:nowrap}
.filters{display:flex;flex-wrap:wrap;gap:10px;align-items:center;margin:6px 0 8px}
.filters label{font-size:12px;color:var(--mute)}
.filters select,.filters input{font:inherit;padding:2px 4px}
table{border-collapse:collapse;background:#fff;width:100%}
th,td{border-bottom:1px solid var(--line);padding:4px 7px;text-align:left;vertical-align:top}
th{background:#eef3ee;font-size:12px;position:sticky;top:0}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
td.ev{font-size:12px;color:#37474f;max-width:520px}
.tablewrap{max-height:620px;overflow:auto;border:1px solid var(--line)}
.sev{display:inline-block;padding:0 6px;border-radius:8px;color:#fff;font-size:12px}
.sev.critical{background:#c62828}.sev.warning{background:#ef6c00}.sev.watch{background:#f9a825}
.st-resolved{color:var(--mute)}
.cards{display:grid;grid-template-columns:1fr;gap:14px}
.card{background:#fff;border:1px solid var(--line);border-left:5px solid #999;border-radius:6px;
padding:10px 14px}
.card.critical{border-left-color:#c62828}.card.warning{border-left-color:#ef6c00}
.card.watch{border-left-color:#fbc02d}
.card.small{display:flex;gap:14px;align-items:center}
.card h3{margin:0 0 4px}
.card .ev{font-size:13px;color:#37474f}
.card img{max-width:100%;height:auto;display:block}
.card .imgs{display:flex;flex-wrap:wrap;gap:10px;align-items:flex-start}
.note{color:var(--mute);font-size:12px}
.cols{display:grid;grid-template-columns:repeat(auto-fit,minmax(380px,1fr));gap:18px}
footer{color:var(--mute);font-size:12px;padding:10px 28px}
table.small{max-width:560px}
table.rollup{font-size:13px}
"""

JS = """
(function(){
  var q=function(s,r){return (r||document).querySelectorAll(s)};
  var rows=q('#alert-table tbody tr'), cards=q('.card[data-farm]');
  var sels=q('.filters select[data-key]'), farmIn=document.getElementById('f-farm');
  var count=document.getElementById('shown-count');
  function want(el){
    for(var i=0;i<sels.length;i++){var s=sels[i];
      if(s.value && el.getAttribute('data-'+s.getAttribute('data-key'))!==s.value) return false;}
    var f=farmIn && farmIn.value.trim();
    return !f || el.getAttribute('data-farm')===f;
  }
  function apply(){
    var n=0;
    for(var i=0;i<rows.length;i++){var ok=want(rows[i]); rows[i].style.display=ok?'':'none'; if(ok) n++;}
    for(var j=0;j<cards.length;j++){cards[j].style.display=want(cards[j])?'':'none';}
    if(count) count.textContent=n;
  }
  for(var i=0;i<sels.length;i++) sels[i].addEventListener('change',apply);
  if(farmIn) farmIn.addEventListener('input',apply);
  var svg=document.getElementById('farm-map'), tip=document.getElementById('tip');
  if(svg){
    var box=svg.getAttribute('viewBox').split(' ').map(Number), vb=box.slice(), drag=null;
    var set=function(){svg.setAttribute('viewBox',vb.join(' '))};
    svg.addEventListener('mousemove',function(e){
      var t=e.target, r=svg.parentNode.getBoundingClientRect();
      if(drag){var k=vb[2]/svg.clientWidth; vb[0]=drag[2]-(e.clientX-drag[0])*k;
        vb[1]=drag[3]-(e.clientY-drag[1])*k; set(); return;}
      if(t.tagName==='path' && t.getAttribute('data-farm')){
        tip.style.display='block'; tip.textContent=t.getAttribute('data-farm')+' · '+
          (t.getAttribute('class')||'').replace('f ','');
        tip.style.left=(e.clientX-r.left+12)+'px'; tip.style.top=(e.clientY-r.top+12)+'px';
      } else tip.style.display='none';
    });
    svg.addEventListener('mouseleave',function(){tip.style.display='none'; drag=null});
    svg.addEventListener('mousedown',function(e){drag=[e.clientX,e.clientY,vb[0],vb[1]]});
    window.addEventListener('mouseup',function(){drag=null});
    svg.addEventListener('wheel',function(e){
      e.preventDefault(); var r=svg.getBoundingClientRect(), f=e.deltaY<0?0.8:1.25;
      var px=vb[0]+(e.clientX-r.left)/r.width*vb[2], py=vb[1]+(e.clientY-r.top)/r.height*vb[3];
      vb=[px-(px-vb[0])*f, py-(py-vb[1])*f, vb[2]*f, vb[3]*f]; set();
    },{passive:false});
    svg.addEventListener('dblclick',function(){vb=box.slice(); set()});
    svg.addEventListener('click',function(e){
      var t=e.target, id=t.getAttribute && t.getAttribute('data-farm');
      if(id && farmIn && (t.getAttribute('class')||'').indexOf('none')<0){
        farmIn.value=id; apply();
        var c=document.getElementById('alerts'); if(c) c.scrollIntoView();
      }
    });
  }
  apply();
  var ms=Math.round(performance.now());
  document.body.setAttribute('data-load-ms', String(ms));
  var el=document.getElementById('load-ms'); if(el) el.textContent=ms+' ms';
})();
"""


def page(title: str, lang: str, header_meta: str, body: str, footer: str) -> str:
    """The whole HTML document (UTF-8), CSS and JS inline."""
    html_lang = "zh-CN" if lang == "zh" else "en"
    return (
        f'<!DOCTYPE html>\n<html lang="{html_lang}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>"
        f'<header><h1>{escape(title)}</h1><div class="meta">{header_meta}</div></header>'
        f"<main>{body}</main><footer>{footer}</footer><script>{JS}</script></body></html>\n"
    )
