/* Attention Explorer page logic. Server text reaches the DOM through textContent only. */
(function () {
  "use strict";
  var $ = function (id) { return document.getElementById(id); };
  var last = null, lastImage = null;
  var kinds = {};  // model id -> "text" | "vit" | "multimodal"
  var seq = 0;  // only the newest request's answer is drawn

  function message(text, kind) {
    var m = $("message");
    m.textContent = text || "";
    m.className = text ? kind : "";
  }

  function fillSelect(sel, n, word) {
    var keep = sel.value;
    while (sel.firstChild) { sel.removeChild(sel.firstChild); }
    for (var i = 0; i < n; i++) {
      var o = document.createElement("option");
      o.value = String(i);
      o.textContent = word + " " + i;
      sel.appendChild(o);
    }
    var m = document.createElement("option");
    m.value = "mean";
    m.textContent = "mean of " + word + "s";
    sel.appendChild(m);
    sel.value = (keep === "mean" || Number(keep) < n) ? keep : "0";
  }

  function kind() {
    return $("model-name").value.trim() ? "text" : (kinds[$("model").value] || "text");
  }

  function setMode(k) {
    var image = k !== "text";
    ["text-controls", "text-views", "explain-label"].forEach(function (id) { $(id).hidden = image; });
    $("image-controls").hidden = !image;
    $("image-views").hidden = !image;
    $("question-row").hidden = k !== "multimodal";
  }

  function draw() {
    if (kind() !== "text") {
      if (lastImage) {
        EAImages.draw(lastImage, $("layer").value, $("head").value);
        document.body.setAttribute("data-drawn", String(Date.now()));
      }
      return;
    }
    if (!last) { return; }
    var layer = $("layer").value, head = $("head").value;
    var sel = function (v) { return v === "mean" ? "mean" : Number(v); };
    var v = last.views;
    EAViews.render($("view-heatmap"), Object.assign({}, v.heatmap, { layer: sel(layer), head: sel(head) }));
    EAViews.render($("view-token"), Object.assign({}, v.heatmap,
      { view: "token", token: 0, layer: sel(layer), head: sel(head) }));
    EAViews.render($("view-head"), Object.assign({}, v.heatmap, { view: "head",
      layer: layer === "mean" ? 0 : Number(layer), head: head === "mean" ? "all" : Number(head) }));
    EAViews.render($("view-model"), Object.assign({}, v.model,
      { layer: sel(layer), head: sel(head) }));
    var ex = $("view-explain");
    while (ex.firstChild) { ex.removeChild(ex.firstChild); }
    if (last.explanation) {
      EAViews.render(ex, last.explanation);
    } else {
      ex.textContent = last.kind === "cross" ? "Explanations need self-attention." :
        "Choose an explanation (rollout or flow) and press Show attention.";
    }
    document.body.setAttribute("data-drawn", String(Date.now()));
  }

  /* POST body to url; onAnswer(json) runs only for the newest request and a 2xx answer. */
  function request(url, body, onAnswer) {
    var mine = ++seq;
    $("busy").textContent = "running\u2026";
    $("run").disabled = true;
    fetch(url, { method: "POST", headers: { "Content-Type": "application/json" },
                 body: JSON.stringify(body) })
      .then(function (r) {
        return r.json().then(function (j) { return { ok: r.ok, j: j }; },
          function () { return { ok: false, j: { error: "The server answered " + r.status + "." } }; });
      })
      .then(function (res) {
        if (mine !== seq) { return; }
        if (!res.ok || res.j.error) {
          var detail = res.j.error || (res.j.detail ? JSON.stringify(res.j.detail) : "request failed");
          message(detail, "error");
          document.body.setAttribute("data-error", String(Date.now()));
          return;
        }
        onAnswer(res.j);
      })
      .catch(function (e) { if (mine === seq) { message("Could not reach the server: " + e, "error"); } })
      .then(function () {
        if (mine === seq) { $("busy").textContent = ""; $("run").disabled = false; }
      });
  }

  function fillQuestions(res) {
    var sel = $("question-select");
    while (sel.firstChild) { sel.removeChild(sel.firstChild); }
    var list = res.questions.indexOf(res.question) < 0 ? [res.question].concat(res.questions) : res.questions;
    list.forEach(function (q, i) {
      var o = document.createElement("option");
      o.value = q;
      o.textContent = q + (i === 0 && q === res.questions[0] ? "  (the scene's own question)" : "");
      sel.appendChild(o);
    });
    sel.value = res.question;
  }

  /* Ask /api/image for the chosen example; question: a string, or null for the scene's own. */
  function runImage(question) {
    var v = $("index").value.trim();
    var body = { model: $("model").value, index: /^-?\d+$/.test(v) ? parseInt(v, 10) : v,
                 question: question };
    request("api/image", body, function (res) {
      lastImage = res;
      fillSelect($("layer"), res.num_layers, "layer");
      fillSelect($("head"), res.num_heads, "head");
      if (res.kind === "multimodal") { fillQuestions(res); }
      $("info").textContent = res.model_name + " \u2014 " + res.num_layers + " layers \u00d7 " +
        res.num_heads + " heads, " + (res.kind === "vit" ? "self-attention over image patches ([CLS] first)." :
        "the question's words cross-attend to the image patches.");
      message("", "");
      draw();
    });
  }

  function submit(ev) {
    if (ev) { ev.preventDefault(); }
    if (kind() !== "text") {
      runImage(kind() === "multimodal" ? ($("question-text").value.trim() || $("question-select").value || null) : null);
      return;
    }
    var typed = $("model-name").value.trim();
    var body = { text: $("text").value, model: typed || $("model").value, explain: $("explain").value };
    request("api/trace", body, function (answer) {
        last = answer;
        fillSelect($("layer"), last.num_layers, "layer");
        fillSelect($("head"), last.num_heads, "head");
        var kindText = { self: "self-attention (every token sees every token)",
                         causal: "causal self-attention (each token sees itself and the tokens before it)",
                         cross: "cross-attention" }[last.kind] || last.kind;
        $("info").textContent = last.model_name + " \u2014 " + last.num_layers + " layers \u00d7 " +
          last.num_heads + " heads, " + last.num_tokens + " tokens, " + kindText + ".";
        message(last.explanation_note || "", "note");
        draw();
    });
  }

  function loadModels() {
    return fetch("api/models").then(function (r) { return r.json(); }).then(function (j) {
      var sel = $("model");
      j.models.forEach(function (m) {
        var o = document.createElement("option");
        o.value = m.id;
        o.textContent = m.label;
        sel.appendChild(o);
        kinds[m.id] = m.kind || "text";
      });
      sel.value = j.default;
      setMode(kind());
    });
  }

  function modelChanged() {
    setMode(kind());
    if (kind() !== "text") { $("question-text").value = ""; runImage(null); }
  }

  document.addEventListener("DOMContentLoaded", function () {
    $("form").addEventListener("submit", submit);
    $("layer").addEventListener("change", draw);
    $("head").addEventListener("change", draw);
    $("model").addEventListener("change", modelChanged);
    $("model-name").addEventListener("input", function () { setMode(kind()); });
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
    loadModels().then(function () { submit(null); },
      function (e) { message("Could not list models: " + e, "error"); });
  });
})();
