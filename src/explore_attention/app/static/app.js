/* Attention Explorer page logic. Server text reaches the DOM through textContent only. */
(function () {
  "use strict";
  var $ = function (id) { return document.getElementById(id); };
  var last = null;

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

  function draw() {
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

  function submit(ev) {
    if (ev) { ev.preventDefault(); }
    var typed = $("model-name").value.trim();
    var body = { text: $("text").value, model: typed || $("model").value, explain: $("explain").value };
    $("busy").textContent = "running\u2026";
    $("run").disabled = true;
    fetch("api/trace", { method: "POST", headers: { "Content-Type": "application/json" },
                         body: JSON.stringify(body) })
      .then(function (r) {
        return r.json().then(function (j) { return { ok: r.ok, j: j }; },
          function () { return { ok: false, j: { error: "The server answered " + r.status + "." } }; });
      })
      .then(function (res) {
        if (!res.ok || res.j.error) {
          var detail = res.j.error || (res.j.detail ? JSON.stringify(res.j.detail) : "request failed");
          message(detail, "error");
          document.body.setAttribute("data-error", String(Date.now()));
          return;
        }
        last = res.j;
        fillSelect($("layer"), last.num_layers, "layer");
        fillSelect($("head"), last.num_heads, "head");
        var kindText = { self: "self-attention (every token sees every token)",
                         causal: "causal self-attention (each token sees itself and the tokens before it)",
                         cross: "cross-attention" }[last.kind] || last.kind;
        $("info").textContent = last.model_name + " \u2014 " + last.num_layers + " layers \u00d7 " +
          last.num_heads + " heads, " + last.num_tokens + " tokens, " + kindText + ".";
        message(last.explanation_note || "", "note");
        draw();
      })
      .catch(function (e) { message("Could not reach the server: " + e, "error"); })
      .then(function () { $("busy").textContent = ""; $("run").disabled = false; });
  }

  function loadModels() {
    return fetch("api/models").then(function (r) { return r.json(); }).then(function (j) {
      var sel = $("model");
      j.models.forEach(function (m) {
        var o = document.createElement("option");
        o.value = m.id;
        o.textContent = m.label;
        sel.appendChild(o);
      });
      sel.value = j.default;
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    $("form").addEventListener("submit", submit);
    $("layer").addEventListener("change", draw);
    $("head").addEventListener("change", draw);
    loadModels().then(function () { submit(null); },
      function (e) { message("Could not list models: " + e, "error"); });
  });
})();
