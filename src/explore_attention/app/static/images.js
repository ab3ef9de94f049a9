/* Attention Explorer: the image models (a ViT, or words cross-attending to an image).
 * Draws the server's /api/image answer with Plotly: the image as an "image" trace and a patch
 * grid as a half-transparent heatmap over it (one cell per patch). Server text reaches the DOM
 * through textContent only, and Plotly titles through EAViews.escapeLabel. */
(function () {
  "use strict";
  var $ = function (id) { return document.getElementById(id); };
  var esc = function (s) { return window.EAViews.escapeLabel(String(s)); };

  // matplotlib's inferno (what viz.image draws with); Plotly has no such named scale
  var INFERNO = [[0, "#000004"], [0.25, "#57106e"], [0.5, "#bc3754"], [0.75, "#f98e09"], [1, "#fcffa4"]];

  function clear(el) { while (el.firstChild) { el.removeChild(el.firstChild); } }

  function mean(grids) {
    var out = grids[0].map(function (row) { return row.map(function () { return 0; }); });
    grids.forEach(function (g) {
      g.forEach(function (row, r) { row.forEach(function (v, c) { out[r][c] += v / grids.length; }); });
    });
    return out;
  }

  /* One grid from nested [layer][head](...)[G][G] data; "mean" averages that axis. */
  function select(byLayer, layer, head, inner) {
    var layers = layer === "mean" ? byLayer : [byLayer[Number(layer)]];
    var grids = [];
    layers.forEach(function (heads) {
      (head === "mean" ? heads : [heads[Number(head)]]).forEach(function (h) { grids.push(inner(h)); });
    });
    return grids.length === 1 ? grids[0] : mean(grids);
  }

  /* A figure in `parent`: the image and, when `grid` is given, the grid over it. */
  function figure(parent, res, grid, title, what, size, colorscale, zmax) {
    var el = document.createElement("div");
    el.className = "ea-image-plot";
    el.setAttribute("role", "img");
    el.setAttribute("aria-label", title);
    el.setAttribute("data-what", what);
    parent.appendChild(el);
    var H = res.image.length, W = res.image[0].length, P = res.patch_size;
    var data = [{ type: "image", z: res.image, hovertemplate: "pixel (%{y}, %{x})<extra></extra>" }];
    if (grid) {
      data.push({
        type: "heatmap", z: grid, x0: (P - 1) / 2, dx: P, y0: (P - 1) / 2, dy: P, opacity: 0.8,
        zmin: 0, zmax: zmax, colorscale: colorscale || INFERNO, colorbar: { thickness: 10, len: 0.85 },
        text: grid.map(function (row, r) { return row.map(function (v, c) { return "p" + r + "," + c; }); }),
        hovertemplate: "%{text}: %{z:.4f}<extra></extra>"
      });
    }
    var layout = {
      title: { text: esc(title), font: { size: 12 } },
      width: size + (grid ? 70 : 0), height: size + 40,
      margin: { t: 34, b: 36, l: 40, r: 10 },
      xaxis: { range: [-0.5, W - 0.5], title: { text: "pixel column", font: { size: 10 } }, constrain: "domain" },
      yaxis: { range: [H - 0.5, -0.5], title: { text: "pixel row", font: { size: 10 } }, scaleanchor: "x" }
    };
    window.Plotly.newPlot(el, data, layout, { displayModeBar: false });
    return el;
  }

  function gridMax(g) {
    var m = 0;
    g.forEach(function (row) { row.forEach(function (v) { if (v > m) { m = v; } }); });
    return m;
  }

  function pct(p) { return (100 * p).toFixed(1) + " %"; }

  function summary(res) {
    $("image-about").textContent = res.about;
    var pred = res.labels[res.prediction];
    var text = "Prediction: " + pred + " (" + pct(res.probabilities[res.prediction]) + ")";
    if (res.truth === null || res.truth === undefined) {
      text += " \u2014 true answer unknown (not a question the scene generator would ask)";
    } else {
      text += " \u2014 true " + (res.kind === "vit" ? "label" : "answer") + ": " + res.labels[res.truth] +
        (res.truth === res.prediction ? " \u2713" : " \u2717");
    }
    $("prediction").textContent = text;
  }

  function layerHead(layer, head) {
    return (layer === "mean" ? "mean of layers" : "layer " + layer) + ", " +
      (head === "mean" ? "mean of heads" : "head " + head);
  }

  function drawVit(res, layer, head) {
    var maps = $("view-image-maps");
    clear(maps);
    figure(maps, res, null, "image", "image", 240);
    var cls = select(res.cls_attention, layer, head, function (g) { return g; });
    // one scale for every layer and head: the largest [CLS] weight on a patch anywhere
    var top = 1e-6;
    res.cls_attention.forEach(function (hs) { hs.forEach(function (g) { top = Math.max(top, gridMax(g)); }); });
    figure(maps, res, cls, "[CLS] \u2192 patches, " + layerHead(layer, head), "cls", 240, null, top);
    figure(maps, res, res.rollout, "attention rollout (Abnar & Zuidema 2020)", "rollout", 240);
    figure(maps, res, res.gradient, "gradient relevance for " + res.labels[res.prediction] +
      " (Chefer et al. 2021)", "gradient", 240);
    var self = select(res.cls_self.map(function (hs) { return hs.map(function (v) { return [[v]]; }); }),
      layer, head, function (g) { return g; })[0][0];
    $("image-note").textContent = "The [CLS] map leaves out the share [CLS] keeps on itself (" + pct(self) +
      " here); rollout and gradient relevance are the [CLS] row, patches only.";
  }

  function drawWords(res, layer, head) {
    var maps = $("view-image-maps");
    clear(maps);
    figure(maps, res, null, "image", "image", 240);
    var words = $("view-words");
    clear(words);
    var grids = res.words.map(function (w, i) {
      return select(res.cross_attention, layer, head, function (h) { return h[i]; });
    });
    var top = Math.max.apply(null, grids.map(gridMax).concat([1e-6]));  // one scale for all words
    res.words.forEach(function (w, i) {
      var el = figure(words, res, grids[i], "\u201c" + w + "\u201d", "word", 170, null, top);
      el.setAttribute("data-word", String(i));
    });
    $("image-note").textContent = "Each word's cross-attention over the patches (" + layerHead(layer, head) +
      "): each word's weights over the patches sum to 1; all words share one colour scale.";
  }

  function draw(res, layer, head) {
    summary(res);
    var multimodal = res.kind === "multimodal";
    $("words-section").hidden = !multimodal;
    if (multimodal) { drawWords(res, layer, head); } else { drawVit(res, layer, head); }
  }

  window.EAImages = { draw: draw };
})();
