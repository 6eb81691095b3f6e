// Small hand-written SVG charts: a scatter (linear, log or category x axis) and lines (learning
// curves, a best-so-far step line). Points link to their trial; stopped trials are drawn hollow and
// their curves dashed and ended with a cross.
"use strict";

const Charts = (() => {
  const NS = "http://www.w3.org/2000/svg";
  const W = 380, H = 240, M = { left: 56, right: 14, top: 12, bottom: 40 };

  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(NS, tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value !== null && value !== undefined && value !== false) node.setAttribute(key, value);
    }
    node.append(...children.flat().filter((c) => c !== null && c !== undefined));
    return node;
  }

  function niceStep(span, count) {
    const raw = span / Math.max(1, count);
    const power = Math.pow(10, Math.floor(Math.log10(raw)));
    const unit = raw / power;
    return power * (unit >= 5 ? 10 : unit >= 2 ? 5 : unit >= 1 ? 2 : 1);
  }

  function label(value) {
    if (Math.abs(value) >= 1e4 || (Math.abs(value) < 1e-3 && value !== 0)) return value.toExponential(0);
    return String(Number(value.toPrecision(4)));
  }

  // A scale maps a value to [from, to] in pixels and offers ticks.
  function linear(values, from, to) {
    let lo = Math.min(...values), hi = Math.max(...values);
    if (lo === hi) { const pad = Math.abs(lo) * 0.1 || 1; lo -= pad; hi += pad; }
    const pad = (hi - lo) * 0.05;
    lo -= pad; hi += pad;
    const at = (v) => from + ((v - lo) / (hi - lo)) * (to - from);
    const step = niceStep(hi - lo, 5);
    const ticks = [];
    for (let t = Math.ceil(lo / step) * step; t <= hi; t += step) ticks.push([at(t), label(t)]);
    return { at, ticks };
  }

  function logScale(values, from, to) {
    const lo = Math.log10(Math.min(...values)) - 0.1, hi = Math.log10(Math.max(...values)) + 0.1;
    const at = (v) => from + ((Math.log10(v) - lo) / (hi - lo)) * (to - from);
    const ticks = [];
    for (let p = Math.ceil(lo); p <= hi; p++) ticks.push([at(Math.pow(10, p)), label(Math.pow(10, p))]);
    return { at, ticks };
  }

  function categories(names, from, to) {
    const band = (to - from) / Math.max(1, names.length);
    const at = (v) => from + band * (names.indexOf(String(v)) + 0.5);
    return { at, ticks: names.map((name) => [at(name), name]) };
  }

  function frame(x, y, xLabel, yLabel) {
    const g = svg("g", { class: "axes" });
    g.append(svg("line", { x1: M.left, y1: H - M.bottom, x2: W - M.right, y2: H - M.bottom }),
      svg("line", { x1: M.left, y1: M.top, x2: M.left, y2: H - M.bottom }));
    for (const [px, text] of x.ticks) {
      g.append(svg("line", { class: "tick", x1: px, x2: px, y1: H - M.bottom, y2: H - M.bottom + 4 }),
        svg("text", { x: px, y: H - M.bottom + 15, "text-anchor": "middle" }, text));
    }
    for (const [py, text] of y.ticks) {
      g.append(svg("line", { class: "grid", x1: M.left, x2: W - M.right, y1: py, y2: py }),
        svg("text", { x: M.left - 5, y: py + 4, "text-anchor": "end" }, text));
    }
    g.append(svg("text", { class: "axis-label", x: (M.left + W - M.right) / 2, y: H - 6, "text-anchor": "middle" }, xLabel),
      svg("text", { class: "axis-label", x: 12, y: (M.top + H - M.bottom) / 2, "text-anchor": "middle",
        transform: `rotate(-90 12 ${(M.top + H - M.bottom) / 2})` }, yLabel));
    return g;
  }

  function empty(container, message) {
    container.replaceChildren(Object.assign(document.createElement("p"), { className: "muted", textContent: message }));
  }

  function draw(container, children, title) {
    container.replaceChildren(svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart-svg", role: "img",
      "aria-label": title }, children));
  }

  // points: [{x, y, trial, stopped, href}]; opts: {scale, categories, xLabel, yLabel, best}
  function scatter(container, points, opts) {
    if (!points.length) { empty(container, "no values yet"); return; }
    const xs = points.map((p) => p.x);
    const x = opts.scale === "category" ? categories(opts.categories, M.left, W - M.right)
      : (opts.scale === "log" ? logScale : linear)(xs, M.left, W - M.right);
    const y = linear(points.map((p) => p.y), H - M.bottom, M.top);
    const dots = points.map((p) => svg("a", { href: p.href },
      svg("circle", { class: `point${p.stopped ? " stopped" : ""}${p.trial === opts.best ? " best" : ""}`,
        cx: x.at(p.x), cy: y.at(p.y), r: p.trial === opts.best ? 6 : 4, "data-trial": p.trial },
      svg("title", {}, `${p.trial}: ${opts.xLabel} ${p.x} → ${label(p.y)}${p.stopped ? " (stopped)" : ""}`))));
    draw(container, [frame(x, y, opts.xLabel, opts.yLabel), ...dots], `${opts.yLabel} against ${opts.xLabel}`);
  }

  // series: [{name, points: [[x, y]], stopped, best, href}]; opts: {xLabel, yLabel, step}
  function lines(container, series, opts) {
    const all = series.flatMap((s) => s.points);
    if (!all.length) { empty(container, opts.emptyText || "no values yet"); return; }
    const x = linear(all.map((p) => p[0]), M.left, W - M.right);
    const y = linear(all.map((p) => p[1]), H - M.bottom, M.top);
    const paths = [];
    for (const s of [...series].reverse()) { // the best last, so it is drawn on top
      const pts = s.points.map(([a, b]) => [x.at(a), y.at(b)]);
      let d = `M${pts[0][0]},${pts[0][1]}`;
      for (let i = 1; i < pts.length; i++) {
        d += opts.step ? ` H${pts[i][0]} V${pts[i][1]}` : ` L${pts[i][0]},${pts[i][1]}`;
      }
      if (opts.step) d += ` H${W - M.right}`;
      const cls = `curve${s.stopped ? " stopped" : ""}${s.best ? " best" : ""}`;
      const group = svg("a", { href: s.href }, svg("path", { class: cls, d, "data-trial": s.name },
        svg("title", {}, `${s.name}${s.stopped ? " (stopped early)" : ""}`)));
      if (opts.markers) {
        group.append(...pts.map(([px, py]) => svg("circle", { class: "point", cx: px, cy: py, r: 3 })));
      }
      if (s.stopped) {
        const [px, py] = pts[pts.length - 1];
        group.append(svg("path", { class: "stop-mark", "data-stopped": s.name,
          d: `M${px - 4},${py - 4} L${px + 4},${py + 4} M${px - 4},${py + 4} L${px + 4},${py - 4}` }));
      }
      paths.push(group);
    }
    draw(container, [frame(x, y, opts.xLabel, opts.yLabel), ...paths], opts.yLabel);
  }

  return { scatter, lines, empty };
})();
