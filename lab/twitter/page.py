"""The fake Twitter's own small web page: the timeline, duplicates in red, a button per mode.

Plain HTML and a few lines of JavaScript that poll the control routes; no build step.
"""

from html import escape

from .state import MODES

_MODE_HELP = {
    "up": "answers after the normal latency",
    "slow": "latency x10",
    "down": "503 Service Unavailable",
    "refuse": "the API port stops accepting connections",
    "hang": "accepts and never answers until the mode changes",
    "flaky": "a share of requests fail with 503",
    "limited": "429 Too Many Requests, with Retry-After",
}

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Fake Twitter</title>
<style>
  body {{ font-family: system-ui, sans-serif; max-width: 46rem; margin: 2rem auto; padding: 0 1rem; }}
  button {{ margin: 0 .3rem .3rem 0; padding: .4rem .8rem; cursor: pointer; }}
  button.active {{ background: #1d9bf0; color: white; border-color: #1d9bf0; }}
  #state {{ color: #555; }}
  ol {{ list-style: none; padding: 0; }}
  li {{ border-bottom: 1px solid #ddd; padding: .5rem 0; }}
  li.duplicate {{ background: #ffe3e3; }}
  .meta {{ color: #777; font-size: .85rem; }}
  .tag {{ color: #c00; font-weight: bold; }}
</style>
</head>
<body>
<h1>Fake Twitter</h1>
<p>The workbook's stand-in for Twitter's API. Switch its mode and watch the stages cope.</p>
<div id="modes">{buttons}</div>
<p id="state">loading...</p>
<p><button id="reset">Clear the timeline</button></p>
<h2>Timeline <span id="counts" class="meta"></span></h2>
<ol id="timeline"></ol>
<script>
async function call(method, path, body) {{
  const response = await fetch(path, {{
    method, headers: {{"Content-Type": "application/json"}},
    body: body === undefined ? undefined : JSON.stringify(body),
  }});
  return response.json();
}}
function text(tag, value, className) {{
  const node = document.createElement(tag);
  node.textContent = value;
  if (className) node.className = className;
  return node;
}}
async function refresh() {{
  const [control, ledger, stats] = await Promise.all(
    [call("GET", "/_control"), call("GET", "/_ledger"), call("GET", "/_stats")]);
  document.querySelectorAll("#modes button").forEach(
    b => b.classList.toggle("active", b.dataset.mode === control.mode));
  document.getElementById("state").textContent =
    `mode: ${{control.mode}}, latency ${{control.latency_ms[0]}}-${{control.latency_ms[1]}} ms ` +
    `(time scale ${{control.time_scale}}), fail rate ${{control.fail_rate}}, ` +
    `requests held: ${{control.held}}`;
  document.getElementById("counts").textContent =
    `${{stats.accepted}} accepted, ${{stats.duplicates}} duplicates`;
  const list = document.getElementById("timeline");
  list.replaceChildren(...ledger.tweets.slice().reverse().map(tweet => {{
    const item = document.createElement("li");
    if (tweet.duplicate) {{ item.className = "duplicate"; item.append(text("span", "DUPLICATE ", "tag")); }}
    item.append(text("strong", "@" + tweet.user + " "), text("span", tweet.text),
                text("div", `#${{tweet.id}} at ${{tweet.received_at}}`, "meta"));
    return item;
  }}));
}}
document.querySelectorAll("#modes button").forEach(button =>
  button.addEventListener("click", async () => {{
    await call("POST", "/_control", {{mode: button.dataset.mode}}); refresh();
  }}));
document.getElementById("reset").addEventListener("click", async () => {{
  await call("POST", "/_reset"); refresh();
}});
refresh();
setInterval(refresh, 1000);
</script>
</body>
</html>
"""


def render_page() -> str:
    buttons = "".join(
        f'<button data-mode="{escape(mode)}" title="{escape(_MODE_HELP[mode])}">{escape(mode)}</button>'
        for mode in MODES
    )
    return _PAGE.format(buttons=buttons)
