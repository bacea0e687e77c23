"""The console's one style sheet and one small script, inline and allowed by hash.

No build step, no external file, no CDN: the Content-Security-Policy names the SHA-256 of each,
so an injected ``<script>`` or ``style`` attribute is refused by the browser.
"""

from __future__ import annotations

import base64
import hashlib

CONSOLE_CSS = """
:root{color-scheme:light dark;--fg:#1d1d1f;--bg:#fafafa;--card:#fff;--line:#d9d9de;--muted:#5f6368;
--link:#0b57d0;--bar:#3b6fd8;--bar2:#0f8a6a;--bad:#c5221f;--warn:#9a6700;--grid:#e3e3e8;
--crit-bg:#fde7e4;--crit-fg:#7a1b10;--warn-bg:#fff4d6;--warn-fg:#5c4300;--ok-bg:#e6f4ea;--ok-fg:#0d652d}
@media (prefers-color-scheme:dark){:root{--fg:#e8e8ea;--bg:#121214;--card:#1c1c1f;--line:#3a3a40;
--muted:#a8abb0;--link:#8ab4f8;--bar:#7fa7f5;--bar2:#5cc9a7;--bad:#f28b82;--warn:#fdd663;
--grid:#2c2c31;--crit-bg:#3a1512;--crit-fg:#ffd9d4;--warn-bg:#3a2e0a;--warn-fg:#ffe7a6;
--ok-bg:#0f2e1c;--ok-fg:#b7e4c7}}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);
background:var(--bg)}
main{max-width:80rem;margin:0 auto;padding:.75rem 1rem 3rem}
nav{display:flex;flex-wrap:wrap;gap:.25rem 1rem;padding:.6rem 1rem;border-bottom:1px solid var(--line);
background:var(--card)}
nav a{text-decoration:none;font-weight:600}
nav a[aria-current=page]{text-decoration:underline}
h1{font-size:1.4rem;margin:.6rem 0 .8rem;overflow-wrap:break-word}
h2{font-size:1.1rem;margin:1.6rem 0 .5rem}
a{color:var(--link)}
p,li,dd{overflow-wrap:break-word}
.muted,caption,figcaption{color:var(--muted)}
.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(9.5rem,1fr));gap:.6rem;margin:0;padding:0}
.cards div{background:var(--card);border:1px solid var(--line);border-radius:6px;padding:.5rem .7rem}
.cards dt{font-size:.85rem;color:var(--muted)}
.cards dd{margin:0;font-size:1.35rem;font-weight:600;text-align:right;font-variant-numeric:tabular-nums}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,30rem),1fr));gap:1rem;align-items:start}
figure{margin:0;background:var(--card);border:1px solid var(--line);border-radius:6px;padding:.5rem .6rem;min-width:0}
figure h3{font-size:1rem;margin:0 0 .3rem}
figcaption{font-size:.9rem;margin-top:.3rem}
svg.chart{display:block;width:100%;overflow:visible}
.chart text{font-size:12px;fill:var(--muted)}
.chart .stage{font-size:13px;fill:var(--fg)}
.chart .bar{fill:var(--bar)}
.chart .bar2,.chart .gain{fill:var(--bar2)}
.chart .over,.chart .loss{fill:var(--bad)}
.chart .grid{stroke:var(--grid);stroke-width:1}
.chart .limit,.chart .pause{stroke:var(--bad);stroke-width:1.5;stroke-dasharray:5 4}
.chart .review{stroke:var(--warn);stroke-width:1.5;stroke-dasharray:5 4}
.chart .gmail{stroke:var(--fg);stroke-width:1.5;stroke-dasharray:2 3}
.chart .limit-label,.chart .pause-label{fill:var(--bad)}
.chart .review-label{fill:var(--warn)}
.chart .gmail-label{fill:var(--fg)}
.chart text.tick,.chart text[class$=-label]{paint-order:stroke;stroke:var(--card);stroke-width:3px}
.chart .trend{stroke:var(--bar);stroke-width:2}
.chart .dot{fill:var(--bar)}
@media (max-width:40rem){.chart .minor{display:none}}
.scroll{overflow-x:auto;max-width:100%;background:
linear-gradient(to right,var(--card) 30%,transparent) left/2.5rem 100% no-repeat local,
linear-gradient(to left,var(--card) 30%,transparent) right/2.5rem 100% no-repeat local,
radial-gradient(farthest-side at 0 50%,rgb(0 0 0/.35),transparent) left/.9rem 100% no-repeat scroll,
radial-gradient(farthest-side at 100% 50%,rgb(0 0 0/.35),transparent) right/.9rem 100% no-repeat scroll,
var(--card)}
.scroll::before{content:"Swipe sideways for every column \\2192";display:block;position:sticky;left:0;
font-size:.8rem;color:var(--muted);max-height:0;overflow:hidden}
@keyframes scrollable{from,to{max-height:2rem;padding:.1rem 0}}
@supports (animation-timeline:scroll()){.scroll::before{animation:scrollable linear both;
animation-timeline:scroll(nearest inline)}}
table{border-collapse:collapse;font-variant-numeric:tabular-nums;width:100%}
caption{text-align:left;font-size:.9rem;padding:.2rem 0;max-width:calc(100vw - 2.5rem)}
th,td{padding:.3rem .5rem;border-bottom:1px solid var(--line);text-align:right;white-space:nowrap;vertical-align:top}
th:first-child,td:first-child,.text,.left{text-align:left}
td.text{white-space:normal;overflow-wrap:break-word;min-width:8rem}
@media (max-width:40rem){td.text{min-width:15rem}}
.notices{padding:0;list-style:none;margin:.5rem 0}
.notices li{padding:.45rem .7rem;margin:.3rem 0;border-radius:4px}
.critical{background:var(--crit-bg);color:var(--crit-fg)}
.warning{background:var(--warn-bg);color:var(--warn-fg)}
.ok{background:var(--ok-bg);color:var(--ok-fg)}
.critical a,.warning a,.ok a{color:inherit}
form.search{display:flex;flex-wrap:wrap;gap:.5rem;align-items:end;margin:.5rem 0 1rem}
label{font-weight:600}
input,select,textarea,button{font:inherit;color:inherit;background:var(--card);border:1px solid var(--line);
border-radius:4px;padding:.35rem .5rem;max-width:100%}
textarea{width:100%;min-height:5rem}
button{cursor:pointer;font-weight:600}
button.danger{background:var(--bad);color:var(--bg);border-color:var(--bad)}
.actions{display:flex;flex-wrap:wrap;gap:.5rem;list-style:none;padding:0}
.actions a{display:inline-block;padding:.35rem .7rem;border:1px solid var(--line);border-radius:4px;
background:var(--card);text-decoration:none}
dl.record{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem;margin:0}
dl.record dt{color:var(--muted)}
dl.record dd{margin:0}
pre{white-space:pre-wrap;overflow-wrap:anywhere;background:var(--card);border:1px solid var(--line);
padding:.6rem;border-radius:4px;font-size:13px}
progress{width:100%;height:1rem}
.live{font-weight:600}
code.run span{white-space:nowrap}
.pager{margin:1rem 0}
""".strip()

# Polls the running send's figures every 5 s and writes them into the page; stops when the
# send does. Nothing else runs on the console.
CONSOLE_JS = """
(function () {
  var root = document.querySelector("[data-progress-url]");
  if (!root) { return; }
  var url = root.getAttribute("data-progress-url");
  function show(data) {
    document.querySelectorAll("[data-live]").forEach(function (node) {
      var key = node.getAttribute("data-live");
      if (key in data) { node.textContent = Number(data[key]).toLocaleString("en-US"); }
    });
    var bar = document.querySelector("progress[data-live-progress]");
    if (bar) { bar.max = Math.max(data.recipients, 1); bar.value = data.done; }
    var state = document.querySelector("[data-live-status]");
    if (state) {
      state.textContent = data.running ? "running, updated every 5 seconds"
        : "no longer running: reload for the full figures";
    }
  }
  function poll() {
    fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (data) {
        if (!data) { setTimeout(poll, 15000); return; }
        show(data);
        if (data.running) { setTimeout(poll, 5000); }
      })
      .catch(function () { setTimeout(poll, 15000); });
  }
  setTimeout(poll, 5000);
})();
""".strip()


def _sha256(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


CONSOLE_CSS_HASH = _sha256(CONSOLE_CSS)
CONSOLE_JS_HASH = _sha256(CONSOLE_JS)
# Our style sheet and script only; forms post to this site; fetch reaches only this site.
CONSOLE_CSP = (f"default-src 'none'; style-src '{CONSOLE_CSS_HASH}'; "
               f"script-src '{CONSOLE_JS_HASH}'; connect-src 'self'; img-src 'none'; "
               "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
CONSOLE_HEADERS = {
    "cache-control": "no-store",
    "content-security-policy": CONSOLE_CSP,
    "x-robots-tag": "noindex, nofollow",
    "referrer-policy": "same-origin",
}
