/* Attention Explorer page logic. One set of controls (text, model, layer, head) drives every
 * view; the state lives in the URL's query string so a view can be shared. Server text reaches
 * the DOM through textContent only. */
(function () {
  "use strict";
  var $ = function (id) { return document.getElementById(id); };
  var V = null;  // window.EAViews, once loaded
  var S = {
    models: {},      // id -> {kind, label}
    res: null,       // the /api/trace answer
    heads: null,     // that layer's weights [head][query][key]
    thumbs: null,    // [layer][head][n][n]
    focus: null,     // pinned query token
    hover: null,     // hovered token (transient), linked across views
    key: null,       // the neuron view's key token
    off: {},         // "layer,head" -> true: heads switched off
    gen: null,       // the /api/generate answer
    hvOn: null,      // the head view's head toggles
    step: 0,
    timer: null
  };
  var seq = 0;  // only the newest request's answer is drawn
  // an example text per kind of model; an untouched example follows the model switch
  var EXAMPLES = { encoder: "The cat sat on the mat because it was tired.", causal: "\"\"\"Return the",
                   seq2seq: "The cat sat on the mat because it was tired." };

  function message(text, kind) {
    var m = $("message");
    m.textContent = text || "";
    m.className = text ? kind : "";
  }
  function clear(e) { while (e.firstChild) { e.removeChild(e.firstChild); } }
  function range(n) { var r = []; for (var i = 0; i < n; i++) { r.push(i); } return r; }

  function fillSelect(sel, n, word, withMean) {
    var keep = sel.value;
    clear(sel);
    range(n).forEach(function (i) {
      var o = document.createElement("option");
      o.value = String(i);
      o.textContent = word + " " + i;
      sel.appendChild(o);
    });
    if (withMean) {
      var m = document.createElement("option");
      m.value = "mean";
      m.textContent = "mean of " + word + "s";
      sel.appendChild(m);
    }
    sel.value = (keep === "mean" && withMean) || Number(keep) < n ? keep : "0";
  }

  function kind() { return (S.models[$("model").value] || {}).kind || "encoder"; }
  function isImage() { var k = kind(); return k === "vit" || k === "multimodal"; }
  function headSel() { var h = $("head").value; return h === "mean" ? "mean" : Number(h); }

  function setMode() {
    var image = isImage();
    ["text-controls", "text-views", "explain-label", "contrast-label"].forEach(function (id) { $(id).hidden = image; });
    $("image-controls").hidden = !image;
    $("image-views").hidden = !image;
    $("question-row").hidden = kind() !== "multimodal";
    $("gen-section").hidden = kind() !== "causal";
  }

  // ------------------------------------------------------------------ the URL

  function writeURL() {
    var p = new URLSearchParams();
    p.set("model", $("model").value);
    if (!isImage()) { p.set("text", $("text").value); }
    p.set("layer", $("layer").value);
    p.set("head", $("head").value);
    if (S.focus !== null) { p.set("focus", String(S.focus)); }
    if (S.key !== null) { p.set("key", String(S.key)); }
    history.replaceState(null, "", "?" + p.toString());
  }

  function readURL() {
    var p = new URLSearchParams(location.search), n = function (k) {
      var v = p.get(k);
      return v !== null && /^\d+$/.test(v) ? Number(v) : null;
    };
    if (p.get("model") && S.models[p.get("model")]) { $("model").value = p.get("model"); }
    if (p.get("text") !== null) { $("text").value = p.get("text"); }
    return { layer: p.get("layer"), head: p.get("head"), focus: n("focus"), key: n("key") };
  }

  // ------------------------------------------------------------------ requests

  /* POST body to url; onAnswer(json) runs only for the newest request and a 2xx answer.
   * While it runs the views are dimmed; on an error they are cleared. */
  function request(url, body, onAnswer, opts) {
    opts = opts || {};
    var mine = opts.side ? 0 : ++seq;
    if (!opts.side) {
      $("busy").textContent = "running\u2026";
      $("run").disabled = true;
      document.body.classList.add("busy");
    }
    return fetch(url, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) })
      .then(function (r) {
        return r.json().then(function (j) { return { ok: r.ok, j: j }; },
          function () { return { ok: false, j: { error: "The server answered " + r.status + "." } }; });
      })
      .then(function (res) {
        if (!opts.side && mine !== seq) { return; }
        if (!res.ok || res.j.error) {
          message(res.j.error || "request failed", "error");
          if (opts.onError) { opts.onError(); } else { clearViews(); }
          document.body.setAttribute("data-error", String(Date.now()));
          return;
        }
        onAnswer(res.j);
      })
      .catch(function (e) {
        if (opts.side || mine === seq) { message("Could not reach the server: " + e, "error"); clearViews(); }
      })
      .then(function () {
        if (!opts.side && mine === seq) {
          $("busy").textContent = "";
          $("run").disabled = false;
          document.body.classList.remove("busy");
        }
      });
  }

  function clearViews() {
    S.res = null; S.heads = null; S.thumbs = null;
    ["tokens", "view-row", "view-col", "view-heatmap", "view-head", "view-neuron", "view-model",
     "head-list", "ablation-result", "view-ablation", "view-explain", "view-image-maps", "view-words",
     "prediction", "image-about", "image-note"].forEach(function (id) {
      var e = $(id);
      if (window.Plotly && e.classList.contains("js-plotly-plot")) { window.Plotly.purge(e); }
      clear(e);
    });
    $("info").textContent = "";
  }

  // ------------------------------------------------------------------ text models

  function run(ev) {
    if (ev) { ev.preventDefault(); }
    if (isImage()) {
      runImage(kind() === "multimodal" ? ($("question-text").value.trim() || $("question-select").value || null) : null);
      return;
    }
    var layer = $("layer").value === "mean" ? 0 : Number($("layer").value);
    var body = { text: $("text").value, model: $("model").value, layer: layer, explain: $("explain").value };
    writeURL();
    return request("api/trace", body, function (res) {
      var sameText = S.res && S.res.tokens.join("\u0000") === res.tokens.join("\u0000") && S.res.model === res.model;
      S.res = res;
      S.heads = V.unpack(res.attention);
      S.thumbs = V.unpack(res.thumbnails.weights);
      if (!sameText) { S.off = {}; }
      if (S.focus !== null && S.focus >= res.num_tokens) { S.focus = null; }
      if (S.key !== null && S.key >= res.num_tokens) { S.key = null; }
      fillSelect($("layer"), res.num_layers, "layer", false);
      $("layer").value = String(res.layer);
      fillSelect($("head"), res.num_heads, "head", true);
      var kindText = { self: "self-attention (every token sees every token)",
                       causal: "causal self-attention (each token sees itself and the tokens before it)",
                       cross: "cross-attention" }[res.kind] || res.kind;
      $("info").textContent = res.model_name + " \u2014 " + res.num_layers + " layers \u00d7 " +
        res.num_heads + " heads, " + res.num_tokens + " tokens, " + kindText + ".";
      message(res.explanation_note || "", "note");
      drawText();
      if (!sameText) { ablate(); }
      writeURL();
    });
  }

  function current() { return S.hover !== null ? S.hover : S.focus; }

  function layerMatrix() {
    var h = headSel();
    return h === "mean" ? V.meanOf(S.heads) : S.heads[h];
  }

  function where() {
    var h = headSel();
    return "layer " + S.res.layer + ", " + (h === "mean" ? "mean of heads" : "head " + h);
  }

  function drawTokens() {
    var res = S.res, M = layerMatrix(), f = current();
    var row = f === null ? null : M[f];
    var masked = function (j) { return f !== null && V.isMasked(res.kind, f, j); };
    var act = document.activeElement;
    var had = act && act.parentNode === $("tokens") ? Number(act.getAttribute("data-index")) : null;
    V.tokenStrip($("tokens"), { tokens: res.tokens, weights: row, chosen: S.focus, masked: masked, hovered: S.hover,
      label: "tokens; hover or focus one to see its attention",
      onHover: function (i) { setHover(i); },
      onPick: function (i) { pin(i); } });
    if (had !== null && $("tokens").children[had]) { $("tokens").children[had].focus(); }  // keep keyboard focus
    var i = f === null ? 0 : f;
    V.barRow($("view-row"), res.tokens, M[i], V.visible(res.tokens[i]) + " (query " + i + ") attends to \u2014 " + where(),
      "key token", function (j) { return V.isMasked(res.kind, i, j); }, 1);
    V.barRow($("view-col"), res.tokens, M.map(function (r) { return r[i]; }),
      V.visible(res.tokens[i]) + " (key " + i + ") is attended by \u2014 " + where(), "query token",
      function (r) { return V.isMasked(res.kind, r, i); }, 1);
  }

  function drawHeatmap() {
    var res = S.res;
    V.heatmap($("view-heatmap"), { tokens: res.tokens, kind: res.kind, z: layerMatrix(), title: where(),
      contrast: $("contrast").checked, focus: current(), keyFocus: S.key });
  }

  var headViewCtl = null;
  function drawHeadView() {
    var res = S.res;
    if (!S.hvOn || S.hvOn.length !== res.num_heads) { S.hvOn = range(res.num_heads).map(function () { return true; }); }
    headViewCtl = V.headView($("view-head"), { tokens: res.tokens, kind: res.kind, heads: S.heads,
      enabled: S.hvOn,
      focus: S.focus, title: "layer " + res.layer,
      onFocus: function (i) { pin(i); },
      onKey: function (j) { S.key = j; drawHeatmap(); neuron(); writeURL(); },
      onHover: function (i) { setHover(i, true); } });
  }

  function drawModel() {
    var res = S.res, h = headSel();
    V.modelGrid($("view-model"), { thumbs: S.thumbs, kind: res.kind, contrast: $("contrast").checked,
      selected: [res.layer, h === "mean" ? -1 : h], off: S.off, labels: res.head_types.labels,
      onSelect: function (l, hh) { choose(l, hh); } });
    $("model-note").textContent = "Rows: layers; columns: heads; one colour scale" +
      ($("contrast").checked ? " (contrast: each map to its own max)" : " from 0 to 1") +
      ". Click a cell (or Tab + Enter) to select that layer and head. Tags: the head's pattern." +
      (res.thumbnails.note ? " " + res.thumbnails.note : "");
  }

  function choose(l, h) {
    $("head").value = String(h);
    if (String(l) !== String(S.res.layer)) { $("layer").value = String(l); run(); }
    else { drawText(); writeURL(); }
  }

  function drawHeadList() {
    var list = $("head-list"), res = S.res, pat = $("pattern").value;
    clear(list);
    var scores = res.head_types.scores[pat], ranked = [];
    scores.forEach(function (row, l) { row.forEach(function (v, h) { if (v !== null) { ranked.push([l, h, v]); } }); });
    ranked.sort(function (a, b) { return b[2] - a[2]; });
    if (!ranked.length) {
      list.appendChild(document.createTextNode(pat === "induction" ? "Not measurable: no token repeats in this text (try a text that repeats a phrase)." :
        "Not measurable on this text."));
      return;
    }
    ranked.slice(0, 8).forEach(function (r) {
      var li = document.createElement("li");
      var b = document.createElement("button");
      b.type = "button";
      b.className = "jump";
      b.textContent = "layer " + r[0] + ", head " + r[1];
      b.setAttribute("data-layer", String(r[0]));
      b.setAttribute("data-head", String(r[1]));
      b.addEventListener("click", function () { choose(r[0], r[1]); });
      li.appendChild(b);
      li.appendChild(document.createTextNode(" score " + r[2].toFixed(3) + " (label: " +
        res.head_types.labels[r[0]][r[1]].replace("_", " ") + ") "));
      var lab = document.createElement("label"), c = document.createElement("input");
      c.type = "checkbox";
      c.className = "off";
      c.checked = !!S.off[r[0] + "," + r[1]];
      c.addEventListener("change", function () {
        if (c.checked) { S.off[r[0] + "," + r[1]] = true; } else { delete S.off[r[0] + "," + r[1]]; }
        drawModel();
        ablate();
      });
      lab.appendChild(c);
      lab.appendChild(document.createTextNode(" switch off"));
      li.appendChild(lab);
      list.appendChild(li);
    });
  }

  function ablate() {
    var heads = Object.keys(S.off).map(function (k) { return k.split(",").map(Number); });
    var out = $("ablation-result"), plot = $("view-ablation");
    if (!heads.length) {
      clear(out);
      if (plot.classList.contains("js-plotly-plot")) { window.Plotly.purge(plot); }
      clear(plot);
      out.textContent = "Tick \u201cswitch off\u201d to zero a head's output and see the prediction change.";
      return;
    }
    var body = { text: $("text").value, model: $("model").value, heads: heads };
    request("api/ablate", body, function (a) {
      var names = heads.map(function (p) { return "L" + p[0] + "H" + p[1]; }).join(", ");
      if (a.kind === "causal") {
        out.textContent = "Next token after \u201c" + V.visible(a.after) + "\u201d with " + names +
          " switched off (KL divergence from the full model: " + a.kl.toFixed(4) + ").";
        var x = a.tokens.map(function (t) { return V.escapeLabel(V.visible(t)); });
        plot.setAttribute("role", "img");
        plot.setAttribute("aria-label", "next-token probabilities with all heads and with " + names + " switched off");
        window.Plotly.react(plot, [
          { type: "bar", name: "all heads", x: x, y: a.before, marker: { color: "#9ecae1" } },
          { type: "bar", name: names + " off", x: x, y: a.ablated, marker: { color: "#e6550d" } }],
          { barmode: "group", height: 300, margin: { t: 40, b: 60, l: 60, r: 10 },
            title: { text: "next-token probabilities" }, yaxis: { title: { text: "probability" }, range: [0, 1] },
            xaxis: { title: { text: "token" } } }, V.config);
      } else {
        out.textContent = "Sentence embedding (mean of the last layer) with " + names +
          " switched off: cosine similarity " + a.cosine.toFixed(4) + " to the full model's.";
        V.barRow(plot, a.tokens, a.token_cosine, "each token's last-layer vector: cosine to the full model's",
          "token", null, 1);
      }
      document.body.setAttribute("data-ablated", String(Date.now()));
    }, { side: true, onError: function () { clear(out); } });
  }

  function neuron() {
    var res = S.res, h = headSel(), root = $("view-neuron"), q = S.focus === null ? res.num_tokens - 1 : S.focus;
    var sel = $("neuron-key");
    clear(sel);
    res.tokens.forEach(function (t, j) {
      var o = document.createElement("option");
      o.value = String(j);
      o.textContent = j + ": " + V.visible(t) + (V.isMasked(res.kind, q, j) ? " (masked)" : "");
      o.disabled = V.isMasked(res.kind, q, j);
      sel.appendChild(o);
    });
    var head = h === "mean" ? 0 : h;
    var body = { text: $("text").value, model: $("model").value, layer: res.layer, head: head, query: q };
    var layerAsked = res.layer;
    request("api/neurons", body, function (d) {
      if (!S.res || S.res.layer !== layerAsked) { return; }
      var key = V.neuronView(root, d, S.key, res.tokens, function (j) { S.key = j; neuron(); drawHeatmap(); writeURL(); });
      if (h === "mean") { root.insertBefore(document.createTextNode("Head 0 shown: the neuron view needs one head (choose it above). "), root.firstChild); }
      sel.value = String(key);
      document.body.setAttribute("data-neuron", String(Date.now()));
    }, { side: true, onError: function () { clear(root); } });
  }

  function drawExplain() {
    var ex = $("view-explain");
    clear(ex);
    if (S.res.explanation) { V.render(ex, S.res.explanation); }
    else { ex.textContent = "Choose an explanation (rollout, flow or gradient relevance) above."; }
  }

  function drawText() {
    if (!S.res) { return; }
    drawTokens();
    drawHeatmap();
    drawHeadView();
    drawModel();
    drawHeadList();
    drawExplain();
    neuron();
    if (S.gen) { drawGen(); }
    document.body.setAttribute("data-drawn", String(Date.now()));
  }

  /* Linked hover: a token hovered anywhere is highlighted in the strip, bars, heatmap, head view. */
  function setHover(i, fromHeadView) {
    if (!S.res || S.hover === i) { return; }
    S.hover = i;
    drawTokens();
    var f = current(), shapes = [];
    if (f !== null) {
      shapes.push({ type: "rect", x0: -0.5, x1: S.res.num_tokens - 0.5, y0: f - 0.5, y1: f + 0.5, line: { color: "#e6550d", width: 2 } });
    }
    if (S.key !== null) {
      shapes.push({ type: "rect", x0: S.key - 0.5, x1: S.key + 0.5, y0: -0.5, y1: S.res.num_tokens - 0.5, line: { color: "#31a354", width: 2, dash: "dot" } });
    }
    window.Plotly.relayout($("view-heatmap"), { shapes: shapes });
    if (!fromHeadView && headViewCtl) { headViewCtl.hover(i, "query"); }
    $("tokens").setAttribute("data-hover", i === null ? "" : String(i));
  }

  function pin(i) {
    S.focus = S.focus === i ? null : i;
    S.key = null;
    drawTokens();
    drawHeatmap();
    drawHeadView();
    neuron();
    writeURL();
  }

  // ------------------------------------------------------------------ generation

  function generate() {
    stop();
    var body = { model: $("model").value, prompt: $("text").value,
                 max_new_tokens: Number($("gen-max").value), temperature: Number($("gen-temp").value) };
    request("api/generate", body, function (g) {
      S.gen = g;
      S.step = 0;
      $("gen-step").max = String(g.steps.length - 1);
      $("gen-stepper").hidden = false;
      drawGen();
      document.body.setAttribute("data-generated", String(Date.now()));
    }, { onError: function () { S.gen = null; clear($("gen-tokens")); $("gen-stepper").hidden = true; } });
  }

  function genRow(step) {
    var A = step.attention, h = headSel(), layers = $("gen-all-layers").checked ? range(A.length) : [Number($("layer").value) || 0];
    var n = A[0][0].length, out = new Array(n).fill(0), count = 0;
    layers.forEach(function (l) {
      (h === "mean" ? range(A[l].length) : [h]).forEach(function (hh) {
        count++;
        for (var j = 0; j < n; j++) { out[j] += A[l][hh][j]; }
      });
    });
    return out.map(function (v) { return v / count; });
  }

  function drawGen() {
    var g = S.gen, t = S.step, step = g.steps[t];
    var toks = g.prompt_tokens.concat(g.steps.slice(0, t + 1).map(function (s) { return s.token; }));
    var row = genRow(step), weights = row.concat([null]);
    var newIndex = toks.length - 1;
    V.tokenStrip($("gen-tokens"), { tokens: toks, weights: weights, chosen: -1, generated: g.prompt_tokens.length,
                                    label: "prompt and generated tokens (generated ones in italics)" });
    var nb = $("gen-tokens").children[newIndex];
    nb.classList.add("ea-new");
    nb.setAttribute("aria-label", "new token " + V.visible(step.token));
    $("gen-step").value = String(t);
    var which = ($("gen-all-layers").checked ? "mean of layers" : "layer " + (Number($("layer").value) || 0)) + ", " +
      (headSel() === "mean" ? "mean of heads" : "head " + headSel());
    $("gen-label").textContent = "step " + (t + 1) + " of " + g.steps.length + ": wrote \u201c" + V.visible(step.token) +
      "\u201d (p = " + step.probability.toFixed(3) + ")";
    V.barRow($("view-gen"), toks.slice(0, newIndex), row,
      "writing \u201c" + V.visible(step.token) + "\u201d, it attended to \u2014 " + which, "earlier token", null, 1);
    $("gen-prev").disabled = t === 0;
    $("gen-next").disabled = t === g.steps.length - 1;
    document.body.setAttribute("data-gen-step", String(t));
  }

  function stepTo(t) {
    if (!S.gen) { return; }
    S.step = Math.max(0, Math.min(S.gen.steps.length - 1, t));
    drawGen();
  }
  function stop() {
    if (S.timer) { clearInterval(S.timer); S.timer = null; }
    $("gen-play").textContent = "play";
  }
  function play() {
    if (S.timer) { stop(); return; }
    if (S.step >= S.gen.steps.length - 1) { S.step = -1; }
    $("gen-play").textContent = "pause";
    S.timer = setInterval(function () {
      if (!S.gen || S.step >= S.gen.steps.length - 1) { stop(); return; }
      stepTo(S.step + 1);
      if (S.step >= S.gen.steps.length - 1) { stop(); }
    }, 500);
  }

  // ------------------------------------------------------------------ image models

  function fillQuestions(res) {
    var sel = $("question-select");
    clear(sel);
    var list = res.questions.indexOf(res.question) < 0 ? [res.question].concat(res.questions) : res.questions;
    list.forEach(function (q, i) {
      var o = document.createElement("option");
      o.value = q;
      o.textContent = q + (i === 0 && q === res.questions[0] ? "  (the scene's own question)" : "");
      sel.appendChild(o);
    });
    sel.value = res.question;
  }

  var lastImage = null;
  function drawImage() {
    if (lastImage) {
      window.EAImages.draw(lastImage, $("layer").value, $("head").value);
      document.body.setAttribute("data-drawn", String(Date.now()));
    }
  }

  /* Ask /api/image for the chosen example; question: a string, or null for the scene's own. */
  function runImage(question, first) {
    var v = $("index").value.trim();
    var index = first ? null : (/^-?\d+$/.test(v) ? parseInt(v, 10) : v);
    var body = { model: $("model").value, index: index, question: question };
    writeURL();
    request("api/image", body, function (res) {
      lastImage = res;
      $("index").value = String(res.index);
      fillSelect($("layer"), res.num_layers, "layer", true);
      fillSelect($("head"), res.num_heads, "head", true);
      if (res.kind === "multimodal") { fillQuestions(res); }
      $("info").textContent = res.model_name + " \u2014 " + res.num_layers + " layers \u00d7 " +
        res.num_heads + " heads, " + (res.kind === "vit" ? "self-attention over image patches ([CLS] first)." :
        "the question's words cross-attend to the image patches.");
      message("", "");
      drawImage();
    });
  }

  // ------------------------------------------------------------------ wiring

  function loadModels() {
    return fetch("api/models").then(function (r) { return r.json(); }).then(function (j) {
      var sel = $("model");
      j.models.forEach(function (m) {
        var o = document.createElement("option");
        o.value = m.id;
        o.textContent = m.label;
        sel.appendChild(o);
        S.models[m.id] = m;
      });
      sel.value = j.default;
    });
  }

  function modelChanged() {
    var t = $("text").value, k = kind();
    var untouched = Object.keys(EXAMPLES).some(function (x) { return EXAMPLES[x] === t; });
    if (untouched && EXAMPLES[k]) { $("text").value = EXAMPLES[k]; }
    setMode();
    stop();
    S.gen = null;
    S.focus = null; S.key = null; S.off = {};
    $("gen-stepper").hidden = true;
    clear($("gen-tokens"));
    $("layer").value = "0";
    if (isImage()) { $("question-text").value = ""; runImage(null, kind() === "multimodal"); } else { run(); }
  }

  document.addEventListener("DOMContentLoaded", function () {
    V = window.EAViews;
    $("form").addEventListener("submit", run);
    $("text").addEventListener("keydown", function (ev) {
      if (ev.key === "Enter" && !ev.shiftKey) { ev.preventDefault(); run(); }
    });
    $("layer").addEventListener("change", function () {
      if (isImage()) { drawImage(); writeURL(); return; }
      run();
    });
    $("head").addEventListener("change", function () {
      if (isImage()) { drawImage(); writeURL(); return; }
      drawText();
      writeURL();
    });
    $("contrast").addEventListener("change", function () { if (S.res) { drawHeatmap(); drawModel(); } });
    $("model").addEventListener("change", modelChanged);
    $("pattern").addEventListener("change", function () { if (S.res) { drawHeadList(); } });
    $("ablate-clear").addEventListener("click", function () { S.off = {}; if (S.res) { drawModel(); drawHeadList(); } ablate(); });
    $("neuron-key").addEventListener("change", function () { S.key = Number($("neuron-key").value); neuron(); drawHeatmap(); writeURL(); });
    $("tokens").addEventListener("mouseleave", function () { setHover(null); });
    $("generate").addEventListener("click", generate);
    $("gen-prev").addEventListener("click", function () { stop(); stepTo(S.step - 1); });
    $("gen-next").addEventListener("click", function () { stop(); stepTo(S.step + 1); });
    $("gen-play").addEventListener("click", play);
    $("gen-step").addEventListener("input", function () { stop(); stepTo(Number($("gen-step").value)); });
    $("gen-all-layers").addEventListener("change", function () { if (S.gen) { drawGen(); } });
    $("index").addEventListener("change", function () { $("question-text").value = ""; runImage(null); });
    $("next-image").addEventListener("click", function () {
      var v = parseInt($("index").value, 10);
      $("index").value = String(isNaN(v) || v < 0 ? 0 : v + 1);
      $("question-text").value = "";
      runImage(null);
    });
    $("question-select").addEventListener("change", function () {
      $("question-text").value = "";
      runImage($("question-select").value);
    });
    loadModels().then(function () {
      var u = readURL();
      setMode();
      if (u.layer !== null) { fillSelect($("layer"), Number(u.layer) + 1, "layer", false); $("layer").value = u.layer; }
      if (u.head !== null) {
        fillSelect($("head"), u.head === "mean" ? 1 : Number(u.head) + 1, "head", true);
        $("head").value = u.head;
      }
      S.focus = u.focus;
      S.key = u.key;
      run();
    }, function (e) { message("Could not list models: " + e, "error"); });
  });
})();
