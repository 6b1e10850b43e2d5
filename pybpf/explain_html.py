"""The page of ``pybpf explain --html``: one self-contained HTML file per source file.

:func:`render_page` takes the document ``pybpf explain --json`` writes (a dict: the
file, the kernel and each program's :meth:`pybpf.explain.ProgramReport.to_dict`,
optionally with a ``run`` of the program on :mod:`pybpf.vm`) and returns the page:
the listing (source lines on the left, the instructions each became beside them, with
branch, prune and failing-path marks) is written as HTML here, so the page reads
without script; a small inline script fills the state panel when an instruction is
clicked or hovered, from the data embedded as JSON in a
``<script type="application/json" id="explain-data">`` element. Nothing is fetched: no
network, no external script, style or font.

Stable hooks for tests and links: each instruction is ``<div class="insn"
data-prog="P" data-insn="N">``, the panel ``id="state-panel"``, each register row in
it ``data-reg="R1"`` with ``data-text`` (the log's spelling of the value), the failing
path ``class="on-path"`` and the failing instruction ``class="failed"``. The page
honours ``#insn=N`` (and ``#prog=P&insn=N``) on load, and keeps the fragment current
when an instruction is selected, so a link shows the same state.

A top layer like :mod:`pybpf.explain`: standard library only, imported only by the
``explain`` command.
"""

from __future__ import annotations

import html
import json
from string import Template
from typing import Any, Dict, List, Optional

__all__ = ["render_page", "embed_json"]

_M64 = (1 << 64) - 1


def embed_json(data: Any) -> str:
    """``data`` as JSON safe inside a ``<script>`` element: ``<``, ``>``, ``&`` and the
    two JavaScript line separators are written as ``\\uXXXX`` escapes, so no text in
    the data (a ``</script>`` in a source line) can end the element."""
    text = json.dumps(data, separators=(",", ":"))
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _hex(n: int) -> str:
    return hex(n & _M64) if n >= 0 or n < -(1 << 63) else str(n)


def _known_bits(var_off: Optional[Dict[str, int]]) -> str:
    """The tnum as a bit pattern: ``0``/``1`` known, ``x`` unknown; the known zero bits
    above the highest unknown or one bit are left out (``…0`` says so)."""
    if not var_off:
        return ""
    value, mask = var_off["value"] & _M64, var_off["mask"] & _M64
    if mask == 0:
        return f"all 64 known ({_hex(value)})"
    top = max(value | mask, 1).bit_length()
    bits = "".join("x" if mask >> b & 1 else str(value >> b & 1)
                   for b in range(top - 1, -1, -1))
    return ("…0" if top < 64 else "") + bits


def _ranges(bounds: Optional[Dict[str, int]]) -> str:
    """The printed bounds, 64-bit then 32-bit (a bound not printed is the type's own
    limit, as in the log)."""
    if not bounds:
        return ""
    order = ("smin", "smax", "umin", "umax", "smin32", "smax32", "umin32", "umax32")
    return " ".join(f"{k}={bounds[k]}" for k in order if k in bounds)


def _shown_value(value: Dict[str, Any]) -> Dict[str, Any]:
    """What the panel shows of a value: strings made here, so no 64-bit number passes
    through JavaScript's doubles."""
    from .verifier_states import parse_value
    fields = {k: v for k, v in (value.get("fields") or {}).items() if k}
    text = value.get("text", "")
    try:
        short = parse_value(text).short() if text else value.get("type", "")
    except Exception:       # a spelling the parser does not know: as printed
        short = text
    return {"type": value.get("type", ""), "short": short,
            "ranges": _ranges(value.get("bounds")),
            "known": _known_bits(value.get("var_off")),
            "fields": ", ".join(f"{k}={v}" for k, v in fields.items()),
            "precise": bool(value.get("precise")), "text": value.get("text", "")}


def _page_data(doc: Dict[str, Any]) -> Dict[str, Any]:
    """The embedded data: per program the visits, branches, prunes, failure and run,
    values and slots already formatted for the panel."""
    progs = []
    for prog in doc.get("programs", []):
        trace = prog.get("trace") or {}
        progs.append({
            "name": prog["name"],
            "insns": {str(i["index"]): i["text"] for i in prog["instructions"]},
            "values": [_shown_value(v) for v in trace.get("values", [])],
            "slots": [{"kind": s.get("kind", ""), "text": s.get("text", ""),
                       "value": s.get("value")} for s in trace.get("slots", [])],
            "visits": [{"seq": v["seq"], "index": v["index"], "path": v["path"],
                        "before": v["before"], "after": v.get("after"), "notes": v.get("notes", [])[:8]}
                       for v in trace.get("visits", [])],
            "branches": trace.get("branches", []),
            "prunes": trace.get("prunes", []),
            "failure": prog.get("failure"),
            "run": prog.get("run"),
        })
    return {"file": doc.get("file", ""), "kernel": doc.get("kernel", ""), "programs": progs}


def _esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _header(p: int, prog: Dict[str, Any]) -> str:
    trace = prog.get("trace") or {}
    n = len(prog["instructions"])
    if prog["accepted"]:
        verdict = '<span class="ok" data-verdict="accepted">accepted</span>'
        size = (f'<span data-jited="{prog["jited_len"]}">JIT-ed {prog["jited_len"]} bytes'
                f'</span> (translated {prog["xlated_len"]})')
    else:
        verdict = ('<span class="bad" data-verdict="refused">'
                   f'{"refused" if prog.get("trace") else "not loaded"}</span>')
        size = "not JIT-ed"
    stats = ", ".join(f"{k} {v}" for k, v in (trace.get("stats") or {}).items()
                      if k != "limit")
    out = [f'<header class="prog-head" id="head-{p}"><h2>{_esc(prog["name"])} '
           f'<small>({_esc(prog.get("kind") or prog.get("type"))})</small></h2>',
           f'<p>{verdict}, {n} instructions, {size}</p>']
    if stats:
        out.append(f'<p class="stats" data-stats>verifier: {_esc(stats)}</p>')
    fail = prog.get("failure")
    if fail:
        src = fail.get("source")
        where = (f' &mdash; {_esc(src["file"].rsplit("/", 1)[-1])}:{src["line"]}: '
                 f'<code>{_esc(src["text"])}</code>') if src else ""
        out.append(f'<div class="complaint" id="complaint-{p}" data-fail-insn='
                   f'"{fail["index"]}"><b>refused at instruction {fail["index"]}</b>'
                   f'{where}<pre>{_esc(fail.get("complaint", ""))}</pre></div>')
    elif not prog["accepted"] and prog.get("error"):
        out.append(f'<div class="complaint" id="complaint-{p}"><pre>'
                   f'{_esc(prog["error"])}</pre></div>')
    run = prog.get("run")
    if run:
        res = (f'returned {_esc(run["result"])}' if run.get("error") is None
               else f'stopped: {_esc(run["error"])}')
        out.append(f'<p class="run-head" id="run-head-{p}">run on pybpf.vm with '
                   f'{run["input_len"]} bytes of input: {len(run["steps"])} steps, {res}</p>')
    out.append("</header>")
    return "\n".join(out)


def _listing(p: int, prog: Dict[str, Any]) -> str:
    trace = prog.get("trace") or {}
    visits: Dict[int, int] = {}
    for v in trace.get("visits", []):
        visits[v["index"]] = visits.get(v["index"], 0) + 1
    seq_index = {v["seq"]: v["index"] for v in trace.get("visits", [])}
    marks: Dict[int, List[str]] = {}
    for b in trace.get("branches", []):
        at = seq_index.get(b["parent"], b["from"]) if b.get("parent") is not None \
            else b["from"]
        what = "pruned at once" if b["pruned"] else f"walked as p{b['path']}"
        marks.setdefault(at, []).append(
            f'<span class="mark branch" data-branch-to="{b["to"]}">branch '
            f'{b["from"]}&rarr;{b["to"]}: {what}</span>')
    for pr in trace.get("prunes", []):
        marks.setdefault(pr["index"], []).append(
            f'<span class="mark prune" data-prune="{pr["path"]}">p{pr["path"]} pruned'
            f'</span>')
    fail = prog.get("failure") or {}
    on_path = set(fail.get("path") or [])
    steps: Dict[int, int] = {}
    for s in (prog.get("run") or {}).get("steps", []):
        steps[s["pc"]] = steps.get(s["pc"], 0) + 1
    texts = {i["index"]: i["text"] for i in prog["instructions"]}
    rows = [(f'{ln["file"].rsplit("/", 1)[-1]}:{ln["line"]}', ln["text"],
             ln["instructions"]) for ln in prog.get("lines", [])]
    sourced = {i for ln in prog.get("lines", []) for i in ln["instructions"]}
    loose = [i for i in sorted(texts) if i not in sourced]
    if loose:
        rows.append(("", "(no source line)", loose))
    out = [f'<div class="listing" id="listing-{p}">']
    for where, text, indexes in rows:
        cls = " on-path" if any(i in on_path for i in indexes) else ""
        out.append(f'<div class="row{cls}"><div class="src"><span class="where">'
                   f'{_esc(where)}</span> <code>{_esc(text)}</code></div><div class="insns">')
        for i in indexes:
            c = ["insn"]
            if i in on_path:
                c.append("on-path")
            if fail.get("index") == i:
                c.append("failed")
            if i not in visits:
                c.append("unreached")
            extra = f' data-steps="{steps[i]}"' if i in steps else ""
            out.append(f'<div class="{" ".join(c)}" data-prog="{p}" data-insn="{i}" '
                       f'data-visits="{visits.get(i, 0)}"{extra} tabindex="0">'
                       f'<span class="idx">{i}:</span> <code>{_esc(texts[i])}</code>'
                       f'{"".join(marks.get(i, []))}</div>')
        out.append("</div></div>")
    out.append("</div>")
    return "\n".join(out)


def render_page(doc: Dict[str, Any]) -> str:
    """The page for ``doc`` (the ``--json`` document) as one HTML string."""
    body = []
    for p, prog in enumerate(doc.get("programs", [])):
        cls = "accepted" if prog["accepted"] else "refused"
        body.append(f'<section class="program {cls}" id="prog-{p}" data-program='
                    f'"{_esc(prog["name"])}">{_header(p, prog)}{_listing(p, prog)}</section>')
    return _PAGE.substitute(
        title=_esc(f'pybpf explain {doc.get("file", "")}'),
        file=_esc(doc.get("file", "")), kernel=_esc(doc.get("kernel", "")),
        css=_CSS, js=_JS, data=embed_json(_page_data(doc)), body="\n".join(body))


_PAGE = Template("""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>$title</title><style>$css</style></head>
<body>
<div id="main"><h1>What the verifier saw: <code>$file</code>
<small>Linux $kernel</small></h1>
<p class="help">Click or hover an instruction to see the registers and the stack the
verifier knew of before it, on each path (<b>pN</b>) that reached it.
<span class="legend on-path">failing path</span></p>
$body
</div>
<aside id="state-panel" aria-live="polite"><p class="hint">Select an instruction.</p></aside>
<script type="application/json" id="explain-data">$data</script>
<script>$js</script>
</body></html>
""")

_CSS = """
body{margin:0;font:14px/1.35 system-ui,sans-serif;color:#222;background:#fafafa;
 display:flex;height:100vh;overflow:hidden}
#main{flex:1 1 57%;height:100vh;overflow:auto;box-sizing:border-box;padding:8px 16px}
h1{font-size:18px}h1 small,h2 small{color:#777;font-weight:normal}h2{font-size:16px;margin:4px 0}
code,pre{font-family:ui-monospace,monospace;font-size:13px}
.help{color:#555}.ok{color:#080;font-weight:bold}.bad{color:#b00;font-weight:bold}
.stats,.run-head{color:#555;margin:2px 0}
.complaint{border-left:4px solid #c00;background:#fee;padding:4px 8px;margin:6px 0}
.complaint pre{margin:4px 0;white-space:pre-wrap}
section.program{border-top:2px solid #ccc;margin-top:12px}
.row{display:grid;grid-template-columns:minmax(12em,38%) 1fr;border-bottom:1px solid #eee}
.row.on-path>.src{background:#fff0f0}
.src{padding:3px 6px;background:#f3f3f7}.where{color:#07a;font-size:12px}
.insns{padding:1px 4px}
.insn{padding:1px 4px;cursor:pointer;border-radius:3px;white-space:nowrap}
.insn:hover{background:#eef}.insn.selected{background:#cde;outline:1px solid #79b}
.insn.on-path{background:#fdd}.insn.on-path.selected{background:#fbb}
.insn.failed{background:#f99;font-weight:bold}.insn.unreached{color:#aaa}
.idx{display:inline-block;width:3.5em;text-align:right;color:#888}
.mark{margin-left:8px;font-size:11px;padding:0 4px;border-radius:3px}
.branch{background:#ffe9b3}.prune{background:#dde}
.legend.on-path{background:#fdd;padding:0 4px}
#state-panel{flex:0 0 43%;height:100vh;overflow:auto;
 box-sizing:border-box;padding:8px 12px;background:#fff;border-left:2px solid #ccc}
#state-panel h3{font-size:15px;margin:4px 0}
.visit{border:1px solid #ddd;border-radius:4px;margin:6px 0;padding:4px 6px}
.visit.failed{border-color:#c00;background:#fff5f5}
.visit h4{margin:0 0 4px;font-size:13px}
table{border-collapse:collapse;width:100%}td,th{text-align:left;padding:1px 4px;
 border-bottom:1px solid #f0f0f0;font-size:12px;vertical-align:top}
td.t{font-weight:bold}td.k{font-family:ui-monospace,monospace;word-break:break-all}
.notes{color:#777;font-size:11px;white-space:pre-wrap}
.run td{font-family:ui-monospace,monospace}
"""

_JS = r"""
(function () {
  "use strict";
  var DATA = JSON.parse(document.getElementById("explain-data").textContent);
  var panel = document.getElementById("state-panel");
  var pinned = null;

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    for (var k in attrs || {}) { e.setAttribute(k, attrs[k]); }
    if (text !== undefined) { e.textContent = text; }
    return e;
  }
  function valueRow(prog, name, idx) {
    var v = prog.values[idx] || {};
    var tr = el("tr", {"data-reg": name, "data-text": v.text || ""});
    tr.appendChild(el("td", {}, name));
    tr.appendChild(el("td", {"class": "t"}, v.type + (v.precise ? " (precise)" : "")));
    tr.appendChild(el("td", {"class": "v"}, v.short));
    tr.appendChild(el("td", {"class": "r"}, v.ranges));
    tr.appendChild(el("td", {"class": "k", title: "known bits: 0/1 known, x unknown"},
                      v.known));
    tr.appendChild(el("td", {"class": "f"}, v.fields));
    return tr;
  }
  function slotRow(prog, name, idx) {
    var s = prog.slots[idx] || {};
    var tr = el("tr", {"data-slot": name, "data-text": s.text || ""});
    tr.appendChild(el("td", {}, name));
    tr.appendChild(el("td", {"class": "t"}, s.kind));
    var inner = s.value !== null && s.value !== undefined ? prog.values[s.value] : null;
    tr.appendChild(el("td", {"class": "v", colspan: 4},
                      inner ? inner.text : s.text));
    return tr;
  }
  function table(head) {
    var t = el("table");
    var tr = el("tr");
    head.forEach(function (h) { tr.appendChild(el("th", {}, h)); });
    t.appendChild(tr);
    return t;
  }
  function show(p, insn) {
    var prog = DATA.programs[p];
    if (!prog) { return; }
    panel.textContent = "";
    panel.setAttribute("data-prog", p);
    panel.setAttribute("data-insn", insn);
    var h = el("h3", {id: "state-title"}, prog.name + " · instruction " + insn + ": " +
                (prog.insns[insn] || ""));
    panel.appendChild(h);
    var fail = prog.failure;
    var visits = prog.visits.filter(function (v) { return v.index === insn; });
    if (!visits.length) {
      panel.appendChild(el("p", {"class": "hint", id: "state-none"},
        "The verifier's log shows no state here: no path reached this instruction" +
        " (or it was pruned before it)."));
    }
    visits.forEach(function (v) {
      var failed = fail && fail.seq === v.seq;
      var box = el("div", {"class": "visit" + (failed ? " failed" : ""),
                           "data-seq": v.seq, "data-path": v.path});
      box.appendChild(el("h4", {}, "p" + v.path + " (visit " + v.seq + ")" +
        (v.before.frame ? ", frame " + v.before.frame : "") +
        (failed ? " — refused here" : "")));
      var t = table(["reg", "type", "value", "bounds", "known bits", "fields"]);
      Object.keys(v.before.regs).forEach(function (r) {
        t.appendChild(valueRow(prog, r, v.before.regs[r]));
      });
      Object.keys(v.before.stack).forEach(function (s) {
        t.appendChild(slotRow(prog, s, v.before.stack[s]));
      });
      box.appendChild(t);
      if (failed) {
        box.appendChild(el("pre", {"class": "complaint-text"}, fail.complaint || ""));
      }
      if (v.notes.length && !failed) {
        box.appendChild(el("div", {"class": "notes"}, v.notes.join("\n")));
      }
      panel.appendChild(box);
    });
    prog.prunes.filter(function (x) { return x.index === insn; }).forEach(function (x) {
      panel.appendChild(el("p", {"class": "prune-note"}, "p" + x.path +
        " pruned here: a state already proved safe at this instruction covers it"));
    });
    prog.branches.forEach(function (b) {
      if (b.from === insn) {
        panel.appendChild(el("p", {"class": "branch-note"}, "branch " + b.from + " → " +
          b.to + ": " + (b.pruned ? "pruned at once" : "walked as p" + b.path)));
      }
    });
    if (prog.run) {
      var steps = prog.run.steps.filter(function (s) { return s.pc === insn; });
      var rb = el("div", {"class": "visit run", id: "run-steps"});
      rb.appendChild(el("h4", {}, "pybpf.vm run: " + (steps.length ?
        steps.length + " execution(s); registers after each" : "never executed")));
      if (steps.length) {
        var assumed = {};
        visits.forEach(function (v) {
          var regs = (v.after || {}).regs || {};
          Object.keys(regs).forEach(function (r) {
            var t = (prog.values[regs[r]] || {}).short;
            assumed[r] = assumed[r] || [];
            if (assumed[r].indexOf(t) < 0) { assumed[r].push(t); }
          });
        });
        var rt = table(["step", "changed", "verifier assumed after", "registers after"]);
        steps.slice(0, 20).forEach(function (s) {
          var tr = el("tr", {"data-step": s.step});
          tr.appendChild(el("td", {}, String(s.step)));
          tr.appendChild(el("td", {}, s.changes.join(", ")));
          tr.appendChild(el("td", {"class": "assumed"}, s.changes.map(function (c) {
            var r = "R" + c.split(" ")[0].slice(1);
            return assumed[r] ? r + "=" + assumed[r].join(" | ") : "";
          }).filter(Boolean).join(", ")));
          tr.appendChild(el("td", {}, s.regs.join(" ")));
          rt.appendChild(tr);
        });
        rb.appendChild(rt);
      }
      panel.appendChild(rb);
    }
  }
  function select(node, keep) {
    var prev = document.querySelector(".insn.selected");
    if (prev) { prev.classList.remove("selected"); }
    node.classList.add("selected");
    var p = +node.getAttribute("data-prog"), i = +node.getAttribute("data-insn");
    show(p, i);
    if (keep) {
      pinned = node;
      var frag = (DATA.programs.length > 1 ? "prog=" + p + "&" : "") + "insn=" + i;
      if (history.replaceState) { history.replaceState(null, "", "#" + frag); }
    }
  }
  document.addEventListener("click", function (ev) {
    var node = ev.target.closest ? ev.target.closest(".insn") : null;
    if (node) { select(node, true); }
  });
  document.addEventListener("keydown", function (ev) {
    var node = ev.target.closest ? ev.target.closest(".insn") : null;
    if (node && (ev.key === "Enter" || ev.key === " ")) { select(node, true); ev.preventDefault(); }
  });
  document.addEventListener("mouseover", function (ev) {
    var node = ev.target.closest ? ev.target.closest(".insn") : null;
    if (node && !pinned) { show(+node.getAttribute("data-prog"), +node.getAttribute("data-insn")); }
  });
  function fromFragment() {
    var m = /(?:^|[#&])(?:prog=(\d+)&)?insn=(\d+)/.exec(location.hash);
    if (!m) { return; }
    var node = document.querySelector('.insn[data-prog="' + (m[1] || 0) +
                                      '"][data-insn="' + m[2] + '"]');
    if (node) { select(node, true); node.scrollIntoView({block: "center"}); }
  }
  window.addEventListener("hashchange", fromFragment);
  fromFragment();
  if (!location.hash) {
    var failed = document.querySelector(".insn.failed");
    if (failed) { show(+failed.getAttribute("data-prog"), +failed.getAttribute("data-insn")); }
  }
})();
"""
