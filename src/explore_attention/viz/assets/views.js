/* explore-attention interactive views. Plain JS over Plotly (inlined next to this file).
 * Every string from the data (tokens, titles, notes) reaches the DOM through textContent, or
 * through Plotly labels after escapeLabel() (Plotly parses a small HTML subset in labels). */
(function () {
  "use strict";
  if (window.EAViews) { return; }

  function escapeLabel(s) {
    // Plotly decodes entities in labels, so the user sees the literal token.
    // Quotes stay: with "<" escaped no tag (and so no attribute) can start.
    return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  }
  function visible(s) {
    // Empty and whitespace-only tokens get a visible stand-in.
    if (s === "") { return "\u2205"; }
    if (/^\s+$/.test(s)) { return s.replace(/\s/g, "\u2423"); }
    return s;
  }
  function label(s) { return escapeLabel(visible(s)); }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined) { e.textContent = text; }
    return e;
  }

  function select(labelText, options, value, onChange) {
    var wrap = el("label", "ea-control", labelText + " ");
    var s = document.createElement("select");
    options.forEach(function (o) {
      var opt = document.createElement("option");
      opt.value = String(o[0]);
      opt.textContent = o[1];
      s.appendChild(opt);
    });
    s.value = String(value);
    s.addEventListener("change", function () { onChange(s.value); });
    wrap.appendChild(s);
    return wrap;
  }

  function range(n) { var r = []; for (var i = 0; i < n; i++) { r.push(i); } return r; }

  // The (Lq, Lk) matrix for a layer/head choice; "mean" averages over that axis.
  function matrix(p, layer, head) {
    var A = p.attentions, layers = layer === "mean" ? range(A.length) : [Number(layer)];
    var Lq = p.tokens.length, Lk = p.key_tokens.length, out = [], count = 0;
    for (var i = 0; i < Lq; i++) { out.push(new Array(Lk).fill(0)); }
    layers.forEach(function (l) {
      var heads = head === "mean" ? range(A[l].length) : [Number(head)];
      heads.forEach(function (h) {
        count += 1;
        for (var i = 0; i < Lq; i++) {
          for (var j = 0; j < Lk; j++) { out[i][j] += A[l][h][i][j]; }
        }
      });
    });
    for (var i2 = 0; i2 < Lq; i2++) {
      for (var j2 = 0; j2 < Lk; j2++) { out[i2][j2] /= count; }
    }
    return out;
  }

  function heatmapFigure(p, z, title, small) {
    var q = p.tokens, k = p.key_tokens, custom = [];
    for (var i = 0; i < q.length; i++) {
      var row = [];
      for (var j = 0; j < k.length; j++) { row.push([label(q[i]), label(k[j])]); }
      custom.push(row);
    }
    var trace = {
      type: "heatmap", z: z, x: range(k.length), y: range(q.length), customdata: custom,
      colorscale: "Viridis", zmin: 0, zmax: p.zmax || 1, showscale: !small,
      hovertemplate: "query %{y}: %{customdata[0]}<br>key %{x}: %{customdata[1]}<br>weight %{z:.4f}<extra></extra>"
    };
    var tick = function (toks) { return toks.map(label); };
    var layout = {
      title: { text: escapeLabel(title) },
      xaxis: { title: { text: "key token" }, tickmode: "array", tickvals: range(k.length),
               ticktext: tick(k), tickangle: -60, automargin: true, side: "bottom" },
      yaxis: { title: { text: "query token" }, tickmode: "array", tickvals: range(q.length),
               ticktext: tick(q), autorange: "reversed", automargin: true },
      margin: { t: 50, l: 60, r: 20, b: 60 },
      height: Math.max(360, Math.min(900, 120 + 14 * q.length))
    };
    return { data: [trace], layout: layout };
  }

  function header(root, p, name) {
    root.appendChild(el("div", "ea-title", name + " \u2014 " + p.model_name + " (" + p.kind + " attention)"));
    if (p.note) { root.appendChild(el("div", "ea-note", p.note)); }
  }

  function layerOptions(p, withMean) {
    var o = range(p.attentions.length).map(function (l) { return [l, "layer " + l]; });
    if (withMean) { o.push(["mean", "mean of layers"]); }
    return o;
  }
  function headOptions(p, withMean) {
    var o = range(p.attentions[0].length).map(function (h) { return [h, "head " + h]; });
    if (withMean) { o.push(["mean", "mean of heads"]); }
    return o;
  }

  function renderHeatmap(root, p) {
    header(root, p, p.label || "Attention heatmap");
    var state = { layer: p.layer, head: p.head };
    var controls = el("div", "ea-controls");
    var plot = el("div", "ea-plot ea-heatmap");
    function draw() {
      var name = p.fixed_title || ("layer " + state.layer + ", head " + state.head);
      var f = heatmapFigure(p, matrix(p, state.layer, state.head), name);
      Plotly.react(plot, f.data, f.layout, { responsive: true, displaylogo: false });
    }
    if (p.attentions.length > 1 || p.attentions[0].length > 1) {
      controls.appendChild(select("Layer", layerOptions(p, true), state.layer,
        function (v) { state.layer = v; draw(); }));
      controls.appendChild(select("Head", headOptions(p, true), state.head,
        function (v) { state.head = v; draw(); }));
    }
    root.appendChild(controls);
    root.appendChild(plot);
    draw();
  }

  function renderHead(root, p) {
    header(root, p, "Head view");
    var state = { layer: p.layer, head: p.head, focus: null };
    var controls = el("div", "ea-controls");
    var plot = el("div", "ea-plot ea-headview");
    var colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
                  "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#637939"];
    function draw() {
      var q = p.tokens, k = p.key_tokens, data = [];
      var heads = state.head === "all" ? range(p.attentions[0].length) : [Number(state.head)];
      heads.forEach(function (h) {
        var M = p.attentions[Number(state.layer)][h];
        // Five opacity bins: Plotly cannot vary opacity along one line trace.
        for (var b = 1; b <= 5; b++) {
          var xs = [], ys = [], lo = (b - 1) / 5, hi = b / 5;
          for (var i = 0; i < q.length; i++) {
            if (state.focus !== null && state.focus !== i) { continue; }
            for (var j = 0; j < k.length; j++) {
              var w = M[i][j];
              if (w > 0.02 && w > lo && (w <= hi || b === 5)) { xs.push(0, 1, null); ys.push(i, j, null); }
            }
          }
          if (xs.length) {
            data.push({ type: "scatter", mode: "lines", x: xs, y: ys, hoverinfo: "skip",
                        showlegend: b === 5, name: "head " + h, legendgroup: "h" + h,
                        line: { color: colors[h % colors.length], width: 1 + 2 * b / 5 },
                        opacity: 0.15 + 0.85 * (b - 0.5) / 5 });
          }
        }
      });
      data.push({ type: "scatter", mode: "text", x: q.map(function () { return -0.02; }),
                  y: range(q.length), text: q.map(label), textposition: "middle left",
                  hovertemplate: "%{text}<extra>query %{y}</extra>", showlegend: false });
      data.push({ type: "scatter", mode: "text", x: k.map(function () { return 1.02; }),
                  y: range(k.length), text: k.map(label), textposition: "middle right",
                  hovertemplate: "%{text}<extra>key %{y}</extra>", showlegend: false });
      var n = Math.max(q.length, k.length);
      var layout = {
        title: { text: escapeLabel("layer " + state.layer + (state.head === "all" ? ", all heads" : ", head " + state.head)
                 + (state.focus === null ? "" : ", query " + state.focus)) },
        xaxis: { range: [-0.7, 1.7], showgrid: false, zeroline: false, tickvals: [0, 1],
                 ticktext: ["query tokens", "key tokens"], title: { text: "click a query token to focus it" } },
        yaxis: { autorange: "reversed", showgrid: false, zeroline: false, showticklabels: false,
                 title: { text: "position" } },
        height: Math.max(320, Math.min(2000, 90 + 18 * n)), margin: { t: 50, l: 30, r: 30, b: 50 }
      };
      Plotly.react(plot, data, layout, { displaylogo: false });
    }
    controls.appendChild(select("Layer", layerOptions(p, false), state.layer,
      function (v) { state.layer = v; draw(); }));
    var hopts = headOptions(p, false); hopts.push(["all", "all heads"]);
    controls.appendChild(select("Head", hopts, state.head, function (v) { state.head = v; draw(); }));
    root.appendChild(controls);
    root.appendChild(plot);
    draw();
    plot.on("plotly_click", function (ev) {
      var pt = ev.points[0];
      if (pt && pt.data.mode === "text" && pt.x < 0.5) {
        state.focus = state.focus === pt.pointIndex ? null : pt.pointIndex;
        draw();
      }
    });
  }

  function renderModel(root, p) {
    header(root, p, "Model view");
    root.appendChild(el("div", "ea-note", "Rows: layers; columns: heads. Click a cell to enlarge it."));
    var Lq = p.attentions.length, H = p.attentions[0].length;
    var grid = el("div", "ea-plot ea-modelview");
    var big = el("div", "ea-plot ea-enlarged");
    var data = [], layout = {
      grid: { rows: Lq, columns: H, pattern: "independent", xgap: 0.08, ygap: 0.08 },
      height: 40 + 70 * Lq, width: Math.max(500, 70 * H + 80), showlegend: false,
      margin: { t: 40, l: 60, r: 10, b: 10 },
      title: { text: escapeLabel(p.model_name + ": " + Lq + " layers \u00d7 " + H + " heads") }
    };
    for (var l = 0; l < Lq; l++) {
      for (var h = 0; h < H; h++) {
        var n = l * H + h + 1, s = n === 1 ? "" : String(n);
        data.push({ type: "heatmap", z: p.attentions[l][h], xaxis: "x" + s, yaxis: "y" + s,
                    colorscale: "Viridis", zmin: 0, zmax: 1, showscale: false,
                    hovertemplate: "layer " + l + ", head " + h + "<extra></extra>" });
        layout["xaxis" + s] = { showticklabels: false, ticks: "" };
        layout["yaxis" + s] = { showticklabels: false, ticks: "", autorange: "reversed",
                                title: h === 0 ? { text: "L" + l } : undefined };
        if (l === 0) { layout["xaxis" + s].title = { text: "H" + h }; layout["xaxis" + s].side = "top"; }
      }
    }
    root.appendChild(grid);
    root.appendChild(big);
    Plotly.newPlot(grid, data, layout, { displaylogo: false, staticPlot: false });
    function enlarge(l, h) {
      var f = heatmapFigure(p, p.attentions[l][h], "layer " + l + ", head " + h);
      big.setAttribute("data-layer", String(l));
      big.setAttribute("data-head", String(h));
      Plotly.react(big, f.data, f.layout, { displaylogo: false });
    }
    grid.on("plotly_click", function (ev) {
      var c = ev.points[0].curveNumber;
      enlarge(Math.floor(c / H), c % H);
    });
    enlarge(p.layer === "mean" ? 0 : Number(p.layer), p.head === "mean" ? 0 : Number(p.head));
  }

  function renderToken(root, p) {
    header(root, p, "Token view");
    var self = p.kind !== "cross";
    var state = { layer: p.layer, head: p.head, side: "query", index: p.token || 0 };
    var controls = el("div", "ea-controls");
    controls.appendChild(select("Layer", layerOptions(p, true), state.layer,
      function (v) { state.layer = v; draw(); }));
    controls.appendChild(select("Head", headOptions(p, true), state.head,
      function (v) { state.head = v; draw(); }));
    root.appendChild(controls);
    root.appendChild(el("div", "ea-note", self ? "Hover or click a token." :
      "Hover or click a query token (top) or a key token (bottom)."));
    function strip(tokens, side) {
      var d = el("div", "ea-tokens ea-tokens-" + side);
      tokens.forEach(function (t, i) {
        var s = el("span", "ea-token", visible(t));
        s.setAttribute("data-index", String(i));
        s.addEventListener("mouseenter", function () { state.side = side; state.index = i; draw(); });
        s.addEventListener("click", function () { state.side = side; state.index = i; draw(); });
        d.appendChild(s);
      });
      root.appendChild(d);
      return d;
    }
    var qs = strip(p.tokens, "query");
    var ks = self ? null : strip(p.key_tokens, "key");
    var out = el("div", "ea-plot ea-attends-to"), inn = el("div", "ea-plot ea-attended-by");
    root.appendChild(out);
    root.appendChild(inn);
    function paint(d, weights, chosen) {
      Array.prototype.forEach.call(d.children, function (s, i) {
        var w = weights ? weights[i] : 0;
        s.style.background = "rgba(255, 127, 14, " + Math.min(1, w).toFixed(3) + ")";
        s.style.outline = i === chosen ? "2px solid #1f77b4" : "none";
      });
    }
    function bar(div, toks, vals, title, xtitle) {
      Plotly.react(div, [{ type: "bar", x: range(toks.length), y: vals,
        customdata: toks.map(label), hovertemplate: "%{customdata}: %{y:.4f}<extra></extra>" }],
        { title: { text: escapeLabel(title) }, height: 300, margin: { t: 50, b: 90, l: 60, r: 10 },
          xaxis: { title: { text: xtitle }, tickmode: "array", tickvals: range(toks.length),
                   ticktext: toks.map(label), tickangle: -60, automargin: true },
          yaxis: { title: { text: "attention weight" }, rangemode: "tozero" } },
        { displaylogo: false });
    }
    function draw() {
      var M = matrix(p, state.layer, state.head), i = state.index, row = null, col = null;
      var where = "layer " + state.layer + ", head " + state.head;
      if (state.side === "query") {
        row = M[i];
        bar(out, p.key_tokens, row, visible(p.tokens[i]) + " attends to (" + where + ")", "key token");
      }
      if (self || state.side === "key") {
        col = M.map(function (r) { return r[i]; });
        var name = state.side === "key" ? p.key_tokens[i] : p.tokens[i];
        bar(inn, p.tokens, col, visible(name) + " is attended by (" + where + ")", "query token");
      }
      if (self) { paint(qs, row, i); }
      else if (state.side === "query") { paint(qs, null, i); paint(ks, row, -1); }
      else { paint(ks, null, i); paint(qs, col, -1); }
      root.setAttribute("data-side", state.side);
      root.setAttribute("data-index", String(i));
    }
    draw();
  }

  var RENDERERS = { heatmap: renderHeatmap, head: renderHead, model: renderModel, token: renderToken };

  function render(root, p) {
    while (root.firstChild) { root.removeChild(root.firstChild); }
    var r = RENDERERS[p.view];
    if (!r) { root.appendChild(el("div", "ea-error", "unknown view " + p.view)); return; }
    r(root, p);
  }

  // Render every view whose data block is in the document and not yet drawn.
  function renderPending() {
    var blocks = document.querySelectorAll("script.ea-data[data-for]");
    Array.prototype.forEach.call(blocks, function (b) {
      var root = document.getElementById(b.getAttribute("data-for"));
      if (!root || root.getAttribute("data-rendered") === "1") { return; }
      root.setAttribute("data-rendered", "1");
      render(root, JSON.parse(b.textContent));
    });
  }

  window.EAViews = { render: render, renderPending: renderPending, matrix: matrix,
                     escapeLabel: escapeLabel, visible: visible };
})();
