// frbook's live figures: the margin and gradient explorers and the probability reduction h(a, p),
// drawn in the browser, with no kernel.
//
// The target logits are closed-form, so the page evaluates them itself: this file mirrors
// frbook.losses (target_logit) and frbook.losses.gradients (target_slope, target_probability,
// target_angle_gradient) for NormFace, CosFace, ArcFace, SphereFace and the combined margin, and
// frbook.losses.search_softmax (reduce_probability, cosface_margin) for Search-Softmax.
// tests/test_live.py checks the mirror against the library; tests/test_browser.py checks the
// values drawn in a page against it. Vanilla JavaScript and SVG: nothing is fetched.
//
// A figure is a <div class="frbook-live" data-config="{...}"> written by frbook.viz.live; every
// output carries this script, and the first copy to run defines window.frbookLive.
(function () {
  "use strict";
  // The figure this copy of the script follows (in JupyterLab its output may not be in the
  // document yet when the script runs, so it is found from the script, not by a query).
  const mine = document.currentScript && document.currentScript.previousElementSibling;
  if (window.frbookLive) {
    if (mine && mine.matches(".frbook-live[data-config]")) window.frbookLive.mount(mine);
    window.frbookLive.mountAll();
    return;
  }
  const PI = Math.PI;
  const SVG = "http://www.w3.org/2000/svg";
  const SAMPLES = 361;

  // Each loss's controls: [parameter, label, min, max, step]; the ranges of frbook.viz.widgets.
  const CONTROLS = {
    normface: [["s", "s (scale)", 1, 128, 1]],
    cosface: [["s", "s (scale)", 1, 128, 1], ["m", "m (cos)", 0, 1, 0.01]],
    arcface: [["s", "s (scale)", 1, 128, 1], ["m", "m (rad)", 0, 1.5, 0.01]],
    sphereface: [["s", "s (scale)", 1, 128, 1], ["m", "m (integer)", 1, 8, 1], ["lamb", "λ", 0, 20, 0.5]],
    combined: [["s", "s (scale)", 1, 128, 1], ["m1", "m1", 0.5, 2, 0.01], ["m2", "m2 (rad)", 0, 1.5, 0.01],
               ["m3", "m3 (cos)", 0, 1, 0.01]],
  };
  const DEFAULTS = {
    normface: {s: 64}, cosface: {s: 64, m: 0.35}, arcface: {s: 64, m: 0.5, fallback: "classic"},
    sphereface: {s: 30, m: 4, lamb: 5}, combined: {s: 64, m1: 1, m2: 0.3, m3: 0.2},
  };
  const NAMES = {normface: "NormFace", cosface: "CosFace", arcface: "ArcFace", sphereface: "SphereFace",
                 combined: "Combined margin"};
  const FALLBACKS = ["classic", "easy", "clip", "none"];
  const CLIP_EPS = 1e-3;  // frbook.losses.arcface.CLIP_EPS

  // ------------------------------------------------------------------ the formulas

  // f(theta): the target logit divided by s (frbook.losses.*.target_logit).
  function targetLogit(loss, p, theta) {
    const c = Math.cos(theta);
    switch (loss) {
      case "normface": return c;
      case "cosface": return c - p.m;
      case "arcface": {
        if (p.fallback === "clip") return Math.cos(Math.min(Math.max(theta + p.m, CLIP_EPS), PI - CLIP_EPS));
        const margined = Math.cos(theta + p.m);
        if (p.fallback === "classic") return c > Math.cos(PI - p.m) ? margined : c - p.m * Math.sin(p.m);
        if (p.fallback === "easy") return c > 0 ? margined : c;
        return margined;
      }
      case "sphereface": {
        const k = Math.min(Math.max(Math.floor(theta * p.m / PI), 0), p.m - 1);
        const psi = (k % 2 === 0 ? 1 : -1) * Math.cos(p.m * theta) - 2 * k;
        return (p.lamb * c + psi) / (1 + p.lamb);
      }
      case "combined": {
        const sw = (PI - p.m2) / p.m1;
        const f = theta <= sw ? Math.cos(p.m1 * theta + p.m2) : c - (1 + Math.cos(sw));
        return f - p.m3;
      }
    }
    throw new Error("frbook live figure: unknown loss " + loss);
  }

  // f'(theta) = d f / d cos(theta) (frbook.losses.gradients.target_slope).
  function targetSlope(loss, p, theta) {
    const c = Math.cos(theta);
    switch (loss) {
      case "normface": case "cosface": return 1;
      case "arcface": {
        const exact = Math.sin(theta + p.m) / Math.sin(theta);
        if (p.fallback === "classic") return c > Math.cos(PI - p.m) ? exact : 1;
        if (p.fallback === "easy") return c > 0 ? exact : 1;
        if (p.fallback === "clip") return theta + p.m >= CLIP_EPS && theta + p.m <= PI - CLIP_EPS ? exact : 0;
        return exact;
      }
      case "sphereface": {
        const k = Math.min(Math.max(Math.floor(theta * p.m / PI), 0), p.m - 1);
        // U_{m-1}(cos theta) by the recurrence U_{k+1} = 2 c U_k - U_{k-1}
        let prev = 1, cur = 2 * c;
        if (p.m - 1 === 0) cur = 1;
        for (let i = 0; i < p.m - 2; i++) [prev, cur] = [cur, 2 * c * cur - prev];
        const psiSlope = (k % 2 === 0 ? 1 : -1) * p.m * cur;
        return (p.lamb + psiSlope) / (1 + p.lamb);
      }
      case "combined": {
        const sw = (PI - p.m2) / p.m1;
        let margined = p.m1 * Math.sin(p.m1 * theta + p.m2) / Math.sin(theta);
        if (p.m2 === 0 && theta === 0) margined = p.m1 * p.m1;
        return theta <= sw ? margined : 1;
      }
    }
    throw new Error("frbook live figure: unknown loss " + loss);
  }

  // P_y when the C - 1 other cosines are 0: sigmoid(s f - log(C - 1)).
  function targetProbability(loss, p, theta, C) {
    const gap = p.s * targetLogit(loss, p, theta) - Math.log(C - 1);
    return 1 / (1 + Math.exp(-gap));
  }

  // |d loss / d theta_y| = (1 - P_y) s f' sin(theta), a hair inside (0, pi) where f' is infinite.
  function angleGradient(loss, p, theta, C) {
    const P = targetProbability(loss, p, theta, C);
    const t = Math.min(Math.max(theta, 1e-9), PI - 1e-9);
    return Math.abs((1 - P) * p.s * targetSlope(loss, p, t) * Math.sin(t));
  }

  // h(a, p) = p / (a p + 1 - a), the target probability after the margin
  // (frbook.losses.search_softmax.reduce_probability). Written as p / (1 + (-a)(1 - p)): both terms
  // of the denominator are >= 0, so nothing cancels when p is near 1 and |a| is large.
  function reduceProbability(a, p) {
    return p / (1 - a * (1 - p));
  }

  // The CosFace margin that a constant a is at scale s: log(1 - a) / s (cosface_margin).
  function cosfaceMargin(a, s) {
    return Math.log1p(-a) / s;
  }

  function p2sgradGradient(theta) {
    return (1 - Math.cos(theta)) * Math.sin(theta);
  }

  function grid(lo, hi, n) {
    return Array.from({length: n}, (_, i) => lo + (hi - lo) * i / (n - 1));
  }

  // ------------------------------------------------------------------ drawing

  const STYLE = `
.frbook-live { font: 14px/1.35 system-ui, sans-serif; margin: 0.5em 0 1em; color: inherit; }
.frbook-live .fl-controls { display: flex; flex-wrap: wrap; gap: 0.3em 1.4em; align-items: center; margin-bottom: 0.4em; }
.frbook-live label { display: inline-flex; align-items: center; gap: 0.4em; white-space: nowrap; }
.frbook-live input[type=range] { width: 150px; }
.frbook-live output { min-width: 3.5em; font-variant-numeric: tabular-nums; }
.frbook-live .fl-panels { display: flex; flex-wrap: wrap; gap: 0.5em; }
.frbook-live .fl-panel { flex: 1 1 320px; max-width: 560px; min-width: 260px; }
.frbook-live svg { width: 100%; height: auto; overflow: visible; }
.frbook-live svg text { fill: currentColor; font-size: 14px; }
.frbook-live .fl-axis { stroke: currentColor; stroke-width: 1; fill: none; }
.frbook-live .fl-grid { stroke: currentColor; stroke-opacity: 0.15; }
.frbook-live .fl-title { font-size: 15px; font-weight: 600; }
.frbook-live .fl-readout { margin-top: 0.3em; font-variant-numeric: tabular-nums; }
`;

  function el(tag, attrs, parent) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (parent) parent.appendChild(node);
    return node;
  }

  function niceTicks(lo, hi, count) {
    const span = hi - lo, raw = span / count;
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 2.5, 5, 10].map((x) => x * mag).find((x) => x >= raw);
    const ticks = [];
    for (let t = Math.ceil(lo / step) * step; t <= hi + 1e-9; t += step) ticks.push(+t.toFixed(10));
    return ticks;
  }

  // One panel: curves [{x, y, color, dash, width, label, name}]; x is an angle (rad, labelled in
  // degrees from 0 to 180) unless spec.xangle is false.
  function drawPanel(svg, spec) {
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    const W = 480, H = 340, L = 56, R = 12, T = 30, B = 46;
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    const [xlo, xhi] = spec.xrange, [ylo, yhi] = spec.yrange;
    const X = (x) => L + (x - xlo) / (xhi - xlo) * (W - L - R);
    const Y = (y) => T + (yhi - y) / (yhi - ylo) * (H - T - B);
    // An angle axis is labelled in degrees; the values stay in radians.
    const ticks = (angle, lo, hi) => (angle ? [0, 30, 60, 90, 120, 150, 180].map((d) => [d * PI / 180, d + "°"])
      : niceTicks(lo, hi, 5).map((t) => [t, String(+t.toFixed(2))]));
    for (const [t, text] of ticks(spec.yangle, ylo, yhi)) {
      el("line", {class: "fl-grid", x1: L, x2: W - R, y1: Y(t), y2: Y(t)}, svg);
      el("text", {x: L - 6, y: Y(t) + 4, "text-anchor": "end"}, svg).textContent = text;
    }
    for (const [t, text] of ticks(spec.xangle !== false, xlo, xhi)) {
      el("line", {class: "fl-grid", x1: X(t), x2: X(t), y1: T, y2: H - B}, svg);
      el("text", {x: X(t), y: H - B + 17, "text-anchor": "middle"}, svg).textContent = text;
    }
    el("rect", {class: "fl-axis", x: L, y: T, width: W - L - R, height: H - T - B}, svg);
    el("text", {x: (L + W - R) / 2, y: H - 6, "text-anchor": "middle"}, svg).textContent = spec.xlabel;
    el("text", {x: 14, y: (T + H - B) / 2, "text-anchor": "middle",
                transform: `rotate(-90 14 ${(T + H - B) / 2})`}, svg).textContent = spec.ylabel;
    el("text", {class: "fl-title", x: (L + W - R) / 2, y: 18, "text-anchor": "middle"}, svg).textContent = spec.title;
    const clip = "fl-clip-" + Math.random().toString(36).slice(2);
    el("rect", {x: L, y: T, width: W - L - R, height: H - T - B},
       el("clipPath", {id: clip}, el("defs", {}, svg)));
    let legendY = T + 16;
    for (const curve of spec.curves) {
      let d = "", pen = false;
      curve.x.forEach((x, i) => {
        const y = curve.y[i];
        if (!Number.isFinite(y)) { pen = false; return; }
        d += (pen ? "L" : "M") + X(x).toFixed(2) + "," + Y(y).toFixed(2);
        pen = true;
      });
      const width = curve.width || 2.2;
      const path = el("path", {d, fill: "none", stroke: curve.color, "stroke-width": width,
                               "clip-path": `url(#${clip})`, class: "fl-curve"}, svg);
      if (curve.dash) path.setAttribute("stroke-dasharray", "7 5");
      // The values drawn, for readers' tools and the tests: x (angles in radians) and y as plotted.
      path.dataset.name = curve.name;
      path.dataset.x = JSON.stringify(curve.x);
      path.dataset.y = JSON.stringify(curve.y.map((y) => (Number.isFinite(y) ? y : null)));
      if (curve.label) {
        const lx = spec.legendRight ? W - R - 190 : L + 10;
        el("line", {x1: lx, x2: lx + 24, y1: legendY - 4, y2: legendY - 4, stroke: curve.color,
                    "stroke-width": width, "stroke-dasharray": curve.dash ? "7 5" : "none"}, svg);
        el("text", {x: lx + 30, y: legendY}, svg).textContent = curve.label;
        legendY += 18;
      }
    }
  }

  function fmt(v) {
    return Number.isInteger(v) ? String(v) : (+v.toFixed(3)).toString();
  }

  function describe(loss, p) {
    const keys = CONTROLS[loss].map((c) => c[0]).filter((k) => k !== "s");
    const parts = keys.map((k) => `${k === "lamb" ? "λ" : k} = ${fmt(p[k])}`);
    if (loss === "arcface") parts.push(p.fallback);
    return NAMES[loss] + (parts.length ? " (" + parts.join(", ") + ")" : "");
  }

  const BLUE = "#1f77b4", RED = "#d62728", GREY = "#7f7f7f";

  function drawMargin(fig) {
    const {loss, params: p, confidence} = fig.state;
    const theta = grid(0, PI, SAMPLES);
    const f = theta.map((t) => targetLogit(loss, p, t));
    drawPanel(fig.svgs[0], {
      title: describe(loss, p), xlabel: "target angle θ", ylabel: "f(θ) = target logit ÷ s",
      xrange: [0, PI], yrange: [Math.min(-1.05, Math.min(...f) - 0.05), 1.05],
      curves: [
        {name: "normface", x: theta, y: theta.map(Math.cos), color: GREY, dash: true, label: "cos θ (no margin)"},
        {name: "target_logit", x: theta, y: f, color: BLUE, label: NAMES[loss]},
      ], legendRight: true,
    });
    // Two classes: class 1 wins where s f(θ1) > s cos θ2, i.e. above θ2 = arccos f(θ1); the
    // dashed line is where P_1 = confidence: cos θ2 = f(θ1) - log(c / (1 - c)) / s.
    const acos = (v) => (v >= -1 && v <= 1 ? Math.acos(v) : NaN);
    const shift = Math.log(confidence / (1 - confidence)) / p.s;
    drawPanel(fig.svgs[1], {
      title: `decision boundaries, s = ${fmt(p.s)}`, xlabel: "θ1, angle to centre 1",
      ylabel: "θ2, angle to centre 2", xrange: [0, PI], yrange: [0, PI], yangle: true,
      curves: [
        {name: "boundary", x: theta, y: f.map((v) => acos(Math.max(-1, Math.min(1, v)))), color: BLUE,
         label: "class 1 wins above"},
        {name: "confident", x: theta, y: f.map((v) => acos(v - shift)), color: BLUE, dash: true,
         label: `P1 = ${confidence} above`},
        {name: "diagonal", x: theta, y: theta, color: GREY, dash: true},
      ],
    });
  }

  function drawGradient(fig) {
    const {loss, params: p, num_classes: C} = fig.state;
    const theta = grid(0, PI, SAMPLES).slice(1, -1);
    const prob = theta.map((t) => targetProbability(loss, p, t, C));
    const pull = theta.map((t) => angleGradient(loss, p, t, C));
    const p2s = theta.map(p2sgradGradient);
    const pmax = Math.max(...pull), qmax = Math.max(...p2s);
    drawPanel(fig.svgs[0], {
      title: describe(loss, p) + `, s = ${fmt(p.s)}`, xlabel: "target angle θ", ylabel: "target probability P_y",
      xrange: [0, PI], yrange: [-0.02, 1.02],
      curves: [{name: "target_probability", x: theta, y: prob, color: BLUE}],
    });
    drawPanel(fig.svgs[1], {
      title: `C = ${C.toLocaleString("en")}, other cosines 0`, xlabel: "target angle θ",
      ylabel: "|∂L/∂θ| ÷ its maximum", xrange: [0, PI], yrange: [-0.03, 1.3],
      curves: [
        {name: "target_angle_gradient", x: theta, y: pull.map((v) => v / pmax), color: BLUE,
         label: `${NAMES[loss]}, max ${pmax.toPrecision(3)}`},
        {name: "p2sgrad", x: theta, y: p2s.map((v) => v / qmax), color: RED, dash: true,
         label: `P2SGrad, max ${qmax.toPrecision(3)}`},
      ],
    });
    fig.root.dataset.pullMax = pmax;
  }

  // a spans six decades; four significant digits say it, with thousands separated.
  function fmtA(a) {
    return a === 0 ? "0" : (+a.toPrecision(4)).toLocaleString("en", {maximumFractionDigits: 3});
  }

  function drawReduction(fig) {
    const {a, s} = fig.state.params;
    const p = grid(0, 1, SAMPLES);
    drawPanel(fig.svgs[0], {
      title: `h(a, p) = p / (a p + 1 − a), a = ${fmtA(a)}`, xangle: false,
      xlabel: "softmax probability of the target, p", ylabel: "after the margin, p_m = h(a, p)",
      xrange: [0, 1], yrange: [-0.02, 1.02],
      curves: [
        {name: "identity", x: p, y: p, color: GREY, dash: true, width: 1.2, label: "a = 0 (no margin): p_m = p"},
        {name: "reduction", x: p, y: p.map((v) => reduceProbability(a, v)), color: BLUE, label: `a = ${fmtA(a)}`},
      ],
    });
    fig.readout.textContent = `a = ${fmtA(a)} lowers the target logit by log(1 − a) = ${fmt(Math.log1p(-a))}: `
      + `at s = ${fmt(s)} it is CosFace with margin m = log(1 − a) / s = ${fmt(cosfaceMargin(a, s))}.`;
  }

  // ------------------------------------------------------------------ controls

  function control(parent, labelText, input, readout) {
    const label = document.createElement("label");
    label.append(labelText, input);
    if (readout) label.append(readout);
    parent.appendChild(label);
  }

  // One range input with its readout; onInput(value) updates the state and returns the text to show.
  function slider(fig, {name, label, min, max, step, value, text}, onInput) {
    const input = document.createElement("input");
    Object.assign(input, {type: "range", name, min, max, step, value});
    const out = document.createElement("output");
    out.textContent = text;
    input.addEventListener("input", () => {
      out.textContent = onInput(Number(input.value));
      fig.draw();
    });
    control(fig.controls, label, input, out);
  }

  function buildReductionControls(fig) {
    const params = fig.state.params;
    // a on a log scale, through log10(1 - a): 0 .. 6, so a from 0 to -999999. The input is named
    // after the parameter it sets; params.a is the value drawn.
    slider(fig, {name: "a", label: "a", min: 0, max: 6, step: 0.01, value: Math.log10(1 - params.a),
                 text: fmtA(params.a)}, (v) => {
      params.a = 1 - Math.pow(10, v);
      return fmtA(params.a);
    });
    slider(fig, {name: "s", label: "s (scale)", min: 1, max: 64, step: 1, value: params.s, text: fmt(params.s)},
           (v) => { params.s = v; return fmt(v); });
  }

  function buildControls(fig) {
    const box = fig.controls;
    box.textContent = "";
    const {loss, params} = fig.state;
    const select = document.createElement("select");
    select.name = "loss";
    for (const name of fig.losses) select.add(new Option(NAMES[name], name, false, name === loss));
    select.addEventListener("change", () => {
      fig.state.loss = select.value;
      fig.state.params = {...DEFAULTS[select.value]};
      buildControls(fig);
      fig.draw();
    });
    control(box, "loss", select);
    for (const [key, label, min, max, step] of CONTROLS[loss]) {
      slider(fig, {name: key, label, min, max, step, value: params[key], text: fmt(params[key])}, (v) => {
        params[key] = v;
        return fmt(v);
      });
    }
    if (loss === "arcface") {
      const fb = document.createElement("select");
      fb.name = "fallback";
      for (const name of FALLBACKS) fb.add(new Option(name, name, false, name === params.fallback));
      fb.addEventListener("change", () => { params.fallback = fb.value; fig.draw(); });
      control(box, "fallback", fb);
    }
    if (fig.kind === "gradient") {
      // C on a log scale: 10^1 .. 10^6
      slider(fig, {name: "num_classes", label: "C (classes)", min: 0.31, max: 6, step: 0.01,
                   value: Math.log10(fig.state.num_classes), text: fig.state.num_classes.toLocaleString("en")},
             (v) => {
               fig.state.num_classes = Math.max(2, Math.round(Math.pow(10, v)));
               return fig.state.num_classes.toLocaleString("en");
             });
    }
  }

  function mount(root) {
    if (root.dataset.mounted) return;
    root.dataset.mounted = "1";
    const config = JSON.parse(root.dataset.config);
    root.textContent = "";
    const reduction = config.kind === "reduction";
    const fig = {root, kind: config.kind, losses: config.losses,
                 state: reduction ? {params: {...config.params}}
                   : {loss: config.loss, params: {...DEFAULTS[config.loss], ...config.params},
                      confidence: config.confidence, num_classes: config.num_classes}};
    fig.controls = document.createElement("div");
    fig.controls.className = "fl-controls";
    const panels = document.createElement("div");
    panels.className = "fl-panels";
    fig.svgs = (reduction ? [0] : [0, 1]).map(() => {
      const holder = document.createElement("div");
      holder.className = "fl-panel";
      panels.appendChild(holder);
      const svg = el("svg", {role: "img"}, holder);
      return svg;
    });
    root.append(fig.controls, panels);
    if (reduction) {
      fig.readout = document.createElement("div");
      fig.readout.className = "fl-readout";
      root.append(fig.readout);
    }
    const draw = {margin: drawMargin, gradient: drawGradient, reduction: drawReduction}[fig.kind];
    if (!draw) throw new Error("frbook live figure: unknown kind " + fig.kind);
    fig.draw = () => {
      draw(fig);
      root.dataset.state = JSON.stringify(fig.state);
      root.dataset.draws = String(Number(root.dataset.draws || 0) + 1);
    };
    (reduction ? buildReductionControls : buildControls)(fig);
    fig.draw();
  }

  function mountAll() {
    for (const root of document.querySelectorAll(".frbook-live[data-config]")) mount(root);
  }

  const style = document.createElement("style");
  style.textContent = STYLE;
  document.head.appendChild(style);
  window.frbookLive = {targetLogit, targetSlope, targetProbability, angleGradient, reduceProbability,
                       cosfaceMargin, mount, mountAll, DEFAULTS, CONTROLS};
  if (mine && mine.matches(".frbook-live[data-config]")) mount(mine);
  mountAll();
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", mountAll);
})();
