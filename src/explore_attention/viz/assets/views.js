/* explore-attention interactive views. Plain JS over Plotly (inlined next to this file).
 * Every string from the data (tokens, titles, notes) reaches the DOM through textContent, or
 * through Plotly labels after escapeLabel() (Plotly parses a small HTML subset in labels).
 *
 * Building blocks shared by notebooks (render(root, payload)) and the Explorer app:
 *   heatmap(div, opts)      query x key heatmap; masked (future) cells grey and labelled "masked"
 *   headView(root, opts)    BertViz-style lines, every head of a layer in its own colour
 *   modelGrid(root, opts)   every layer x head as a thumbnail, one shared colour scale
 *   tokenStrip(root, opts)  wrapping, keyboard-reachable tokens coloured by a weight row
 *   neuronView(root, data)  q, k, q*k per dimension, the score and the softmax row
 * Colour: one sequential scale (white -> dark blue) from 0 to 1 shared by every map; "contrast"
 * rescales a map to its own maximum. Masked cells are grey, never drawn as weight 0. */
(function () {
  "use strict";
  if (window.EAViews) { return; }

  var COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
                "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#ad494a",
                "#637939", "#843c39", "#7b4173", "#3182bd"];
  var SCALE = [[0, "#f7fbff"], [0.1, "#deebf7"], [0.25, "#9ecae1"], [0.5, "#4292c6"],
               [0.75, "#08519c"], [1, "#08306b"]];
  var MASKED = "#c9c9c9";
  var PLOT_CONFIG = { displayModeBar: false, responsive: true };

  function escapeLabel(s) {
    // Plotly decodes entities in labels, so the user sees the literal token.
    // Quotes stay: with "<" escaped no tag (and so no attribute) can start.
    return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  }
  var WS = { " ": "\u2423", "\n": "\u21b5", "\t": "\u21e5", "\r": "\u240d" };
  function visible(s) {
    // Empty tokens show as the empty-set sign; whitespace is drawn so that space (open box),
    // newline (return arrow) and tab differ; a newline inside a token is shown too.
    s = String(s);
    if (s === "") { return "\u2205"; }
    if (/^\s+$/.test(s)) { return s.replace(/\s/g, function (c) { return WS[c] || "\u00b7"; }); }
    return s.replace(/\n/g, "\u21b5");
  }
  function label(s) { return escapeLabel(visible(s)); }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined) { e.textContent = text; }
    return e;
  }
  function clear(e) { while (e.firstChild) { e.removeChild(e.firstChild); } }
  function range(n) { var r = []; for (var i = 0; i < n; i++) { r.push(i); } return r; }

  /* Packed weights from the server ({shape, encoding: "u16" | "u8sqrt", data: base64}) ->
   * nested arrays of that shape. Plain nested arrays pass through. */
  function unpack(p) {
    if (!p || Array.isArray(p)) { return p; }
    var bin = atob(p.data), n = bin.length, bytes = new Uint8Array(n), vals, i;
    for (i = 0; i < n; i++) { bytes[i] = bin.charCodeAt(i); }
    var scale = p.scale || 1;
    if (p.encoding === "u16") {
      vals = new Float64Array(n / 2);
      for (i = 0; i < n / 2; i++) { vals[i] = (bytes[2 * i] | (bytes[2 * i + 1] << 8)) / 65535 * scale; }
    } else {
      vals = new Float64Array(n);
      for (i = 0; i < n; i++) { var q = bytes[i] / 255; vals[i] = q * q * scale; }
    }
    var pos = 0;
    function build(d) {
      var out = [];
      if (d === p.shape.length - 1) {
        for (var k = 0; k < p.shape[d]; k++) { out.push(vals[pos++]); }
        return out;
      }
      for (var j = 0; j < p.shape[d]; j++) { out.push(build(d + 1)); }
      return out;
    }
    return build(0);
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

  function checkbox(labelText, checked, onChange) {
    var wrap = el("label", "ea-control");
    var c = document.createElement("input");
    c.type = "checkbox";
    c.checked = !!checked;
    c.addEventListener("change", function () { onChange(c.checked); });
    wrap.appendChild(c);
    wrap.appendChild(document.createTextNode(" " + labelText));
    return wrap;
  }

  // Mean of a list of (Lq, Lk) matrices.
  function meanOf(mats) {
    var out = mats[0].map(function (r) { return r.slice(); });
    for (var m = 1; m < mats.length; m++) {
      for (var i = 0; i < out.length; i++) {
        for (var j = 0; j < out[i].length; j++) { out[i][j] += mats[m][i][j]; }
      }
    }
    if (mats.length > 1) {
      out.forEach(function (r) { for (var j = 0; j < r.length; j++) { r[j] /= mats.length; } });
    }
    return out;
  }

  // The (Lq, Lk) matrix for a layer/head choice of a payload; "mean" averages that axis.
  function matrix(p, layer, head) {
    var A = p.attentions, mats = [];
    (layer === "mean" ? range(A.length) : [Number(layer)]).forEach(function (l) {
      (head === "mean" ? range(A[l].length) : [Number(head)]).forEach(function (h) { mats.push(A[l][h]); });
    });
    return meanOf(mats);
  }

  function maxOf(M) {
    var m = 0;
    M.forEach(function (r) { r.forEach(function (v) { if (v > m) { m = v; } }); });
    return m;
  }

  /* masked(kind, i, j): a causal query cannot see later keys. */
  function isMasked(kind, i, j) { return kind === "causal" && j > i; }

  function labelPlot(div, text) {
    div.setAttribute("role", "img");
    div.setAttribute("aria-label", text);
  }

  /* Heatmap. opts: {tokens, keyTokens, kind, z (Lq x Lk), title, contrast, zmax, focus,
   * keyFocus, small}. Masked cells are a grey layer with hover "masked". */
  function heatmapFigure(o) {
    var q = o.tokens, k = o.keyTokens || o.tokens, custom = [], z = [], mask = [], anyMasked = false;
    for (var i = 0; i < q.length; i++) {
      var row = [], zr = [], mr = [];
      for (var j = 0; j < k.length; j++) {
        row.push([label(q[i]), label(k[j])]);
        var m = isMasked(o.kind, i, j);
        anyMasked = anyMasked || m;
        zr.push(m ? null : o.z[i][j]);
        mr.push(m ? 1 : null);
      }
      custom.push(row); z.push(zr); mask.push(mr);
    }
    var zmax = o.zmax || (o.contrast ? Math.max(1e-6, maxOf(o.z)) : 1);
    var data = [{
      type: "heatmap", z: z, x: range(k.length), y: range(q.length), customdata: custom,
      colorscale: SCALE, zmin: 0, zmax: zmax, showscale: !o.small, hoverongaps: false,
      colorbar: { title: { text: o.contrast ? "weight (this map's max)" : "weight" }, thickness: 12 },
      hovertemplate: "query %{y}: %{customdata[0]}<br>key %{x}: %{customdata[1]}<br>weight %{z:.4f}<extra></extra>"
    }];
    if (anyMasked) {
      data.push({
        type: "heatmap", z: mask, x: range(k.length), y: range(q.length), customdata: custom,
        colorscale: [[0, MASKED], [1, MASKED]], showscale: false, hoverongaps: false, name: "masked",
        hovertemplate: "query %{y}: %{customdata[0]}<br>key %{x}: %{customdata[1]}<br>masked (a later token: not visible)<extra></extra>"
      });
    }
    var tick = function (toks) { return toks.map(label); };
    var shapes = [];
    if (o.focus !== null && o.focus !== undefined && o.focus < q.length) {
      shapes.push({ type: "rect", x0: -0.5, x1: k.length - 0.5, y0: o.focus - 0.5, y1: o.focus + 0.5,
                    line: { color: "#e6550d", width: 2 } });
    }
    if (o.keyFocus !== null && o.keyFocus !== undefined && o.keyFocus < k.length) {
      shapes.push({ type: "rect", x0: o.keyFocus - 0.5, x1: o.keyFocus + 0.5, y0: -0.5, y1: q.length - 0.5,
                    line: { color: "#31a354", width: 2, dash: "dot" } });
    }
    var layout = {
      title: { text: escapeLabel(o.title || "") },
      xaxis: { title: { text: "key token (attended to)" }, tickmode: "array", tickvals: range(k.length),
               ticktext: tick(k), tickangle: -60, automargin: true, side: "bottom" },
      yaxis: { title: { text: "query token (attending)" }, tickmode: "array", tickvals: range(q.length),
               ticktext: tick(q), autorange: "reversed", automargin: true },
      margin: { t: 50, l: 60, r: 20, b: 60 }, shapes: shapes, plot_bgcolor: "#ffffff",
      height: Math.max(360, Math.min(900, 140 + 14 * q.length))
    };
    if (anyMasked) {
      layout.annotations = [{ xref: "paper", yref: "paper", x: 1, y: 1.02, xanchor: "right", yanchor: "bottom",
                              showarrow: false, font: { size: 11, color: "#555" },
                              text: "grey = masked (later tokens a causal model cannot see)" }];
    }
    return { data: data, layout: layout };
  }

  function heatmap(div, o) {
    var f = heatmapFigure(o);
    labelPlot(div, (o.title || "attention heatmap") + ": rows are query tokens, columns key tokens");
    Plotly.react(div, f.data, f.layout, PLOT_CONFIG);
    div.setAttribute("data-zmax", String(f.data[0].zmax));
    return f;
  }

  /* Token strip. opts: {tokens, weights (per token or null), chosen, masked (index -> bool),
   * onHover(i | null), onPick(i), label}. Tokens are buttons: Tab reaches them, Enter picks,
   * arrow keys move. Weights colour the background on the shared 0..1 scale. */
  function tokenStrip(root, o) {
    // Buttons are built once per token list and repainted in place, so hover and keyboard
    // focus survive a redraw.
    root._ea = o;
    var key = o.tokens.join("\u0000");
    if (root._eaKey !== key || root.children.length !== o.tokens.length) {
      clear(root);
      root._eaKey = key;
      root.className = "ea-tokens";
      root.setAttribute("role", "toolbar");
      o.tokens.forEach(function (t, i) {
        var b = el("button", "ea-token", visible(t));
        b.type = "button";
        b.setAttribute("data-index", String(i));
        var call = function (name) { return function () { var f = root._ea[name]; if (f) { f(i); } }; };
        b.addEventListener("mouseenter", call("onHover"));
        b.addEventListener("focus", call("onHover"));
        b.addEventListener("mouseleave", function () { if (root._ea.onHover) { root._ea.onHover(null); } });
        b.addEventListener("click", call("onPick"));
        b.addEventListener("keydown", function (ev) {
          var to = null;
          if (ev.key === "ArrowRight") { to = i + 1; } else if (ev.key === "ArrowLeft") { to = i - 1; }
          if (to !== null && to >= 0 && to < root.children.length) {
            ev.preventDefault();
            root.children[to].focus();
          }
        });
        root.appendChild(b);
      });
    }
    root.setAttribute("aria-label", o.label || "tokens");
    o.tokens.forEach(function (t, i) {
      var b = root.children[i];
      var masked = o.masked && o.masked(i);
      var w = o.weights ? o.weights[i] : null;
      b.className = "ea-token";
      b.style.background = "";
      b.style.color = "";
      b.removeAttribute("title");
      b.removeAttribute("aria-pressed");
      if (masked) {
        b.classList.add("ea-masked");
        b.title = "masked: a later token the query cannot see";
        b.setAttribute("aria-label", "token " + i + " " + visible(t) + ", masked");
      } else {
        if (w !== null && w !== undefined) {
          b.style.background = "rgba(8, 81, 156, " + Math.min(1, w).toFixed(3) + ")";
          b.style.color = w > 0.45 ? "#fff" : "#111";
          b.title = "weight " + w.toFixed(4);
        }
        b.setAttribute("aria-label", "token " + i + " " + visible(t) +
          (w !== null && w !== undefined ? ", weight " + w.toFixed(3) : ""));
      }
      if (i === o.chosen) { b.classList.add("ea-chosen"); b.setAttribute("aria-pressed", "true"); }
      if (i === o.hovered) { b.classList.add("ea-hover"); }
      if (o.generated && i >= o.generated) { b.classList.add("ea-generated"); }
    });
  }

  /* Bar chart of one weight row on a fixed 0..1 axis (never rescaled per token); masked keys
   * are grey bars labelled "masked". */
  function barRow(div, tokens, vals, title, xtitle, masked, ymax) {
    var colors = [], text = [], y = [];
    tokens.forEach(function (t, i) {
      var m = masked && masked(i);
      colors.push(m ? MASKED : "#4292c6");
      text.push(m ? "masked" : "");
      y.push(m ? 0.02 * (ymax || 1) : vals[i]);
    });
    labelPlot(div, title);
    Plotly.react(div, [{ type: "bar", x: range(tokens.length), y: y, marker: { color: colors },
      text: text, textposition: "outside", textfont: { size: 9, color: "#666" },
      customdata: tokens.map(function (t, i) { return label(t) + (masked && masked(i) ? " (masked)" : ""); }),
      hovertemplate: "%{customdata}: %{y:.4f}<extra></extra>" }],
      { title: { text: escapeLabel(title) }, height: 300, margin: { t: 50, b: 90, l: 60, r: 10 },
        xaxis: { title: { text: xtitle }, tickmode: "array", tickvals: range(tokens.length),
                 ticktext: tokens.map(label), tickangle: -60, automargin: true },
        yaxis: { title: { text: "attention weight" }, range: [0, ymax || 1] } },
      PLOT_CONFIG);
  }

  /* Head view (BertViz's): query tokens left, key tokens right, one line per (query, key) of
   * every shown head, coloured by head, opacity = weight. opts: {tokens, keyTokens, kind,
   * heads: [H][Lq][Lk], title, focus (pinned query), onFocus(i), onKey(j)}. Hover or focus a
   * token (either side) to see only its lines; click (or Enter) pins the query token. */
  function headView(root, o) {
    clear(root);
    var H = o.heads.length, q = o.tokens, k = o.keyTokens || o.tokens;
    var on = o.enabled || range(H).map(function () { return true; });
    var state = { hover: null, side: "query" };
    var controls = el("div", "ea-controls ea-head-toggles");
    controls.setAttribute("role", "group");
    controls.setAttribute("aria-label", "show or hide heads");
    var buttons = [];
    range(H).forEach(function (h) {
      var b = el("button", "ea-head-toggle", "head " + h);
      b.type = "button";
      b.style.borderColor = COLORS[h % COLORS.length];
      b.setAttribute("data-head", String(h));
      var sw = el("span", "ea-swatch");
      sw.style.background = COLORS[h % COLORS.length];
      b.insertBefore(sw, b.firstChild);
      function paint() { b.setAttribute("aria-pressed", on[h] ? "true" : "false"); b.classList.toggle("ea-off", !on[h]); }
      paint();
      b.addEventListener("click", function () { on[h] = !on[h]; paint(); draw(); });
      b.addEventListener("dblclick", function () {
        range(H).forEach(function (g) { on[g] = g === h; });
        buttons.forEach(function (bb) { bb.paint(); });
        draw();
      });
      b.paint = paint;
      buttons.push(b);
      controls.appendChild(b);
    });
    var all = el("button", "ea-head-toggle", "all"), none = el("button", "ea-head-toggle", "none");
    all.type = none.type = "button";
    all.addEventListener("click", function () { on.forEach(function (_, g) { on[g] = true; }); buttons.forEach(function (bb) { bb.paint(); }); draw(); });
    none.addEventListener("click", function () { on.forEach(function (_, g) { on[g] = false; }); buttons.forEach(function (bb) { bb.paint(); }); draw(); });
    controls.appendChild(all);
    controls.appendChild(none);
    root.appendChild(controls);
    root.appendChild(el("div", "ea-note", "Hover or Tab to a token (left: queries, right: keys) to see its lines; click or Enter pins a query token. Double-click a head to show it alone."));
    var n = Math.max(q.length, k.length);
    var rowH = Math.max(11, Math.min(20, 640 / n)), font = Math.max(9, Math.min(13, rowH - 2));
    var width = 520, colW = 150, height = rowH * n + 10;
    var NS = "http://www.w3.org/2000/svg";
    var svg = document.createElementNS(NS, "svg");
    svg.setAttribute("class", "ea-headview");
    svg.setAttribute("viewBox", "0 0 " + width + " " + height);
    svg.setAttribute("width", "100%");
    svg.style.maxWidth = width + "px";
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", (o.title || "head view") + ": lines from query tokens (left) to key tokens (right)");
    var lines = document.createElementNS(NS, "g");
    svg.appendChild(lines);
    function tokenColumn(toks, side) {
      var g = document.createElementNS(NS, "g");
      toks.forEach(function (t, i) {
        var tx = document.createElementNS(NS, "text");
        tx.textContent = visible(t);
        tx.setAttribute("x", side === "query" ? String(colW - 6) : String(width - colW + 6));
        tx.setAttribute("y", String(5 + rowH * (i + 0.5)));
        tx.setAttribute("dominant-baseline", "middle");
        tx.setAttribute("text-anchor", side === "query" ? "end" : "start");
        tx.setAttribute("font-size", String(font));
        tx.setAttribute("class", "ea-hv-token ea-hv-" + side);
        tx.setAttribute("data-index", String(i));
        tx.setAttribute("data-side", side);
        tx.setAttribute("tabindex", "0");
        tx.setAttribute("role", "button");
        tx.setAttribute("aria-label", side + " token " + i + " " + visible(t));
        var enter = function () { state.hover = i; state.side = side; draw(); if (o.onHover) { o.onHover(i, side); } };
        var leave = function () { state.hover = null; draw(); if (o.onHover) { o.onHover(null, side); } };
        var pick = function () {
          if (side === "query" && o.onFocus) { o.onFocus(i); }
          if (side === "key" && o.onKey) { o.onKey(i); }
        };
        tx.addEventListener("mouseenter", enter);
        tx.addEventListener("mouseleave", leave);
        tx.addEventListener("focus", enter);
        tx.addEventListener("blur", leave);
        tx.addEventListener("click", pick);
        tx.addEventListener("keydown", function (ev) { if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); pick(); } });
        g.appendChild(tx);
      });
      svg.appendChild(g);
      return g;
    }
    var qcol = tokenColumn(q, "query"), kcol = tokenColumn(k, "key");
    function draw() {
      clear(lines);
      var f = state.hover !== null ? state.hover : (o.focus === null || o.focus === undefined ? null : o.focus);
      var side = state.hover !== null ? state.side : "query";
      var count = 0;
      range(H).forEach(function (h) {
        if (!on[h]) { return; }
        var M = o.heads[h];
        for (var i = 0; i < q.length; i++) {
          if (f !== null && side === "query" && i !== f) { continue; }
          for (var j = 0; j < k.length; j++) {
            if (f !== null && side === "key" && j !== f) { continue; }
            var w = M[i][j];
            if (!(w > 0.01) || isMasked(o.kind, i, j)) { continue; }
            var ln = document.createElementNS(NS, "line");
            ln.setAttribute("x1", String(colW));
            ln.setAttribute("y1", String(5 + rowH * (i + 0.5)));
            ln.setAttribute("x2", String(width - colW));
            ln.setAttribute("y2", String(5 + rowH * (j + 0.5)));
            ln.setAttribute("stroke", COLORS[h % COLORS.length]);
            ln.setAttribute("stroke-opacity", String(Math.min(1, 0.08 + w).toFixed(3)));
            ln.setAttribute("stroke-width", String((1 + 2.5 * w).toFixed(2)));
            ln.setAttribute("data-head", String(h));
            lines.appendChild(ln);
            count++;
          }
        }
      });
      Array.prototype.forEach.call(qcol.children, function (t, i) {
        t.classList.toggle("ea-hv-focus", o.focus === i);
        t.classList.toggle("ea-hv-hover", f === i && side === "query");
      });
      Array.prototype.forEach.call(kcol.children, function (t, j) {
        t.classList.toggle("ea-hv-hover", f === j && side === "key");
        t.classList.toggle("ea-hv-masked", f !== null && side === "query" && isMasked(o.kind, f, j));
      });
      svg.setAttribute("data-lines", String(count));
    }
    root.appendChild(svg);
    draw();
    return { redraw: draw, hover: function (i, side) { state.hover = i; state.side = side || "query"; draw(); } };
  }

  /* Model view: a grid of thumbnails, layers down, heads across, on one colour scale.
   * opts: {thumbs: [layers][heads][n][n], kind, contrast, selected: [l, h], off: {"l,h": true},
   * labels: [layers][heads] head types, onSelect(l, h)}. Each cell is a button. */
  function modelGrid(root, o) {
    clear(root);
    var L = o.thumbs.length, H = o.thumbs[0].length;
    var grid = el("div", "ea-grid");
    grid.style.gridTemplateColumns = "3.2em repeat(" + H + ", minmax(0, 1fr))";
    grid.style.maxWidth = (50 + 100 * H) + "px";
    grid.setAttribute("role", "group");
    grid.setAttribute("aria-label", "model view: " + L + " layers by " + H + " heads");
    grid.appendChild(el("div", "ea-grid-corner", ""));
    range(H).forEach(function (h) { grid.appendChild(el("div", "ea-grid-head", "H" + h)); });
    var zmaxAll = 1;
    range(L).forEach(function (l) {
      grid.appendChild(el("div", "ea-grid-layer", "L" + l));
      range(H).forEach(function (h) {
        var M = o.thumbs[l][h], n = M.length, m = M[0].length;
        var b = el("button", "ea-cell");
        b.type = "button";
        b.setAttribute("data-layer", String(l));
        b.setAttribute("data-head", String(h));
        var kind = o.labels ? o.labels[l][h] : "";
        var off = o.off && o.off[l + "," + h];
        b.setAttribute("aria-label", "layer " + l + ", head " + h + (kind ? ", " + kind.replace("_", " ") : "") + (off ? ", switched off" : ""));
        b.title = "layer " + l + ", head " + h + (kind ? " \u2014 " + kind.replace("_", " ") : "");
        if (o.selected && o.selected[0] === l && o.selected[1] === h) { b.classList.add("ea-selected"); b.setAttribute("aria-pressed", "true"); }
        if (off) { b.classList.add("ea-cell-off"); }
        var c = document.createElement("canvas");
        c.width = m; c.height = n;
        var ctx = c.getContext("2d"), img = ctx.createImageData(m, n);
        var zmax = o.contrast ? Math.max(1e-6, maxOf(M)) : zmaxAll;
        for (var i = 0; i < n; i++) {
          for (var j = 0; j < m; j++) {
            var p = 4 * (i * m + j), rgb;
            if (isMasked(o.kind, i, j)) { rgb = [201, 201, 201]; }
            else { rgb = colorAt(Math.min(1, M[i][j] / zmax)); }
            img.data[p] = rgb[0]; img.data[p + 1] = rgb[1]; img.data[p + 2] = rgb[2]; img.data[p + 3] = 255;
          }
        }
        ctx.putImageData(img, 0, 0);
        b.appendChild(c);
        if (kind && kind !== "mixed") { b.appendChild(el("span", "ea-cell-tag", SHORT[kind] || kind)); }
        b.addEventListener("click", function () { if (o.onSelect) { o.onSelect(l, h); } });
        grid.appendChild(b);
      });
    });
    root.appendChild(grid);
    return grid;
  }
  var SHORT = { previous_token: "prev", induction: "ind", first_token: "first", delimiter: "delim",
                diagonal: "self", broad: "broad" };

  function hexToRgb(h) { return [parseInt(h.substr(1, 2), 16), parseInt(h.substr(3, 2), 16), parseInt(h.substr(5, 2), 16)]; }
  var STOPS = SCALE.map(function (s) { return [s[0], hexToRgb(s[1])]; });
  function colorAt(v) {
    for (var s = 1; s < STOPS.length; s++) {
      if (v <= STOPS[s][0]) {
        var a = STOPS[s - 1], b = STOPS[s], t = (v - a[0]) / (b[0] - a[0]);
        return [0, 1, 2].map(function (c) { return Math.round(a[1][c] + t * (b[1][c] - a[1][c])); });
      }
    }
    return STOPS[STOPS.length - 1][1];
  }

  /* Neuron view (BertViz's): data from the server's /api/neurons for one head and query;
   * key = the chosen key. Rows: q, k, q*k per dimension (and q, k before RoPE). */
  function neuronView(root, d, key, tokens, onKey) {
    clear(root);
    var qi = d.query, Dh = d.q.length;
    if (key === null || key === undefined || d.scores[key] === null) {
      var best = 0;
      d.weights.forEach(function (w, j) { if (w > d.weights[best]) { best = j; } });
      key = best;
    }
    var k = d.k[key], prod = d.q.map(function (v, c) { return v * k[c]; });
    var dot = prod.reduce(function (a, b) { return a + b; }, 0);
    var rows = [], names = [];
    if (d.q_raw) {
      rows.push(d.q_raw, d.k_raw[key]);
      names.push("q before RoPE", "k before RoPE");
    }
    rows.push(d.q, k, prod);
    names.push(d.q_raw ? "q (rotated)" : "q", d.q_raw ? "k (rotated)" : "k", "q \u2299 k");
    var lim = 1e-6;
    rows.forEach(function (r) { r.forEach(function (v) { lim = Math.max(lim, Math.abs(v)); }); });
    var head = el("div", "ea-neuron-summary");
    head.textContent = "query " + qi + " \u201c" + visible(tokens[qi]) + "\u201d \u2192 key " + key +
      " \u201c" + visible(tokens[key]) + "\u201d: score = " + d.scale.toFixed(4) + " \u00d7 \u03a3(q \u2299 k) = " +
      d.scale.toFixed(4) + " \u00d7 " + dot.toFixed(3) + " = " + (d.scale * dot).toFixed(3) +
      "; softmax weight = " + d.weights[key].toFixed(4);
    root.appendChild(head);
    var vec = el("div", "ea-plot ea-neuron-vectors");
    root.appendChild(vec);
    labelPlot(vec, "query, key and their elementwise product for each of " + Dh + " dimensions");
    Plotly.react(vec, [{ type: "heatmap", z: rows, y: names, x: range(Dh), colorscale: "RdBu", reversescale: true,
      zmin: -lim, zmax: lim, colorbar: { thickness: 10, title: { text: "value" } },
      hovertemplate: "%{y}, dimension %{x}: %{z:.4f}<extra></extra>" }],
      { title: { text: "layer " + d.layer + ", head " + d.head + ": vectors per dimension" },
        height: 90 + 34 * rows.length, margin: { t: 40, l: 110, r: 20, b: 40 },
        xaxis: { title: { text: "dimension" } }, yaxis: { autorange: "reversed" } }, PLOT_CONFIG);
    var bars = el("div", "ea-plot ea-neuron-softmax");
    root.appendChild(bars);
    var masked = function (j) { return d.scores[j] === null; };
    barRow(bars, tokens, d.weights, "softmax over the keys for query " + qi + " (click a bar to pick the key)",
      "key token", masked, 1);
    bars.on("plotly_click", function (ev) { var j = ev.points[0].x; if (!masked(j) && onKey) { onKey(j); } });
    var scores = el("div", "ea-note ea-neuron-scores");
    scores.textContent = "scores (before softmax): " + d.scores.map(function (s, j) {
      return visible(tokens[j]) + " " + (s === null ? "masked" : s.toFixed(2));
    }).join(", ");
    root.appendChild(scores);
    root.setAttribute("data-key", String(key));
    return key;
  }

  // ---------------------------------------------------------------- notebook views

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
    var state = { layer: p.layer, head: p.head, contrast: false };
    var controls = el("div", "ea-controls");
    var plot = el("div", "ea-plot ea-heatmap");
    function draw() {
      var name = p.fixed_title || ("layer " + state.layer + ", head " + state.head);
      heatmap(plot, { tokens: p.tokens, keyTokens: p.key_tokens, kind: p.kind, title: name,
                      z: matrix(p, state.layer, state.head), contrast: state.contrast, zmax: p.zmax });
    }
    if (p.attentions.length > 1 || p.attentions[0].length > 1) {
      controls.appendChild(select("Layer", layerOptions(p, true), state.layer,
        function (v) { state.layer = v; draw(); }));
      controls.appendChild(select("Head", headOptions(p, true), state.head,
        function (v) { state.head = v; draw(); }));
    }
    if (!p.zmax) { controls.appendChild(checkbox("contrast (scale to this map's max)", false, function (v) { state.contrast = v; draw(); })); }
    root.appendChild(controls);
    root.appendChild(plot);
    draw();
  }

  function renderHead(root, p) {
    header(root, p, "Head view");
    var state = { layer: p.layer, focus: null };
    var controls = el("div", "ea-controls"), body = el("div", "ea-headview-root");
    function draw() {
      var heads = p.attentions[Number(state.layer)];
      var enabled = p.head === "all" ? null : range(heads.length).map(function (h) { return h === Number(p.head); });
      headView(body, { tokens: p.tokens, keyTokens: p.key_tokens, kind: p.kind, heads: heads,
                       enabled: enabled, focus: state.focus, title: "layer " + state.layer,
                       onFocus: function (i) { state.focus = state.focus === i ? null : i; draw(); } });
    }
    controls.appendChild(select("Layer", layerOptions(p, false), state.layer,
      function (v) { state.layer = v; draw(); }));
    root.appendChild(controls);
    root.appendChild(body);
    draw();
  }

  function renderModel(root, p) {
    header(root, p, "Model view");
    root.appendChild(el("div", "ea-note", "Rows: layers; columns: heads; one colour scale for all. Click a cell to enlarge it."));
    var state = { sel: [0, 0], contrast: false };
    var controls = el("div", "ea-controls"), gridRoot = el("div", "ea-modelview"), big = el("div", "ea-plot ea-enlarged");
    controls.appendChild(checkbox("contrast (each map to its own max)", false, function (v) { state.contrast = v; draw(); }));
    root.appendChild(controls);
    root.appendChild(gridRoot);
    root.appendChild(big);
    function draw() {
      modelGrid(gridRoot, { thumbs: p.attentions, kind: p.kind, contrast: state.contrast, selected: state.sel,
                            onSelect: function (l, h) { state.sel = [l, h]; draw(); } });
      var l = state.sel[0], h = state.sel[1];
      big.setAttribute("data-layer", String(l));
      big.setAttribute("data-head", String(h));
      heatmap(big, { tokens: p.tokens, keyTokens: p.key_tokens, kind: p.kind, z: p.attentions[l][h],
                     title: "layer " + l + ", head " + h, contrast: state.contrast });
    }
    draw();
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
    root.appendChild(el("div", "ea-note", self ? "Hover, click or Tab to a token." :
      "Hover or click a query token (top) or a key token (bottom)."));
    var qs = el("div"), ks = self ? null : el("div");
    root.appendChild(qs);
    if (ks) { root.appendChild(ks); }
    var out = el("div", "ea-plot ea-attends-to"), inn = el("div", "ea-plot ea-attended-by");
    root.appendChild(out);
    root.appendChild(inn);
    function pick(side) {
      return function (i) {
        if (i === null || (state.side === side && state.index === i)) { return; }
        state.side = side; state.index = i; draw();
      };
    }
    function draw() {
      var M = matrix(p, state.layer, state.head), i = state.index, row = null, col = null;
      var where = "layer " + state.layer + ", head " + state.head;
      var rowMask = function (j) { return isMasked(p.kind, i, j); };
      var colMask = function (r) { return isMasked(p.kind, r, i); };
      if (state.side === "query") {
        row = M[i];
        barRow(out, p.key_tokens, row, visible(p.tokens[i]) + " attends to (" + where + ")", "key token", rowMask, 1);
      }
      if (self || state.side === "key") {
        col = M.map(function (r) { return r[i]; });
        var name = state.side === "key" ? p.key_tokens[i] : p.tokens[i];
        barRow(inn, p.tokens, col, visible(name) + " is attended by (" + where + ")", "query token", colMask, 1);
      }
      var opts = function (toks, weights, chosen, side, masked) {
        return { tokens: toks, weights: weights, chosen: chosen, masked: masked, onHover: pick(side), onPick: pick(side), label: side + " tokens" };
      };
      if (self) { tokenStrip(qs, opts(p.tokens, row, i, "query", rowMask)); }
      else if (state.side === "query") { tokenStrip(qs, opts(p.tokens, null, i, "query")); tokenStrip(ks, opts(p.key_tokens, row, -1, "key")); }
      else { tokenStrip(ks, opts(p.key_tokens, null, i, "key")); tokenStrip(qs, opts(p.tokens, col, -1, "query")); }
      root.setAttribute("data-side", state.side);
      root.setAttribute("data-index", String(i));
    }
    draw();
  }

  var RENDERERS = { heatmap: renderHeatmap, head: renderHead, model: renderModel, token: renderToken };

  function render(root, p) {
    clear(root);
    if (p.attentions && !Array.isArray(p.attentions)) { p = Object.assign({}, p, { attentions: unpack(p.attentions) }); }
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

  window.EAViews = { render: render, renderPending: renderPending, matrix: matrix, meanOf: meanOf,
                     escapeLabel: escapeLabel, visible: visible, unpack: unpack, heatmap: heatmap,
                     headView: headView, modelGrid: modelGrid, tokenStrip: tokenStrip, barRow: barRow,
                     neuronView: neuronView, isMasked: isMasked, colors: COLORS, config: PLOT_CONFIG };
})();
