/* The explorable page (docs/explore.md): knobs for the model (queue-model.js), its run drawn by the
 * drill's viewer (drill-viewer.js), its figures, and the model set side by side with the drill's
 * committed run. Each `.qe-claim` on the page states a figure of one setting; this script fills in
 * what the model answers, and the browser check holds the model to the bound the claim states.
 */
(function () {
  "use strict";

  var STAGES = [
    ["naive", "01-naive: Twitter called in the web request"],
    ["table", "02-db-queue: a jobs table, each job retried 1, 2, 4... s later"],
    ["kestrel", "03-kestrel: a queue, the job worker backs off 1, 2, 4... s"],
    ["rq", "04-rq: retries and a circuit breaker"],
  ];
  var DRILL_STAGES = { naive: "01-naive", table: "02-db-queue", kestrel: "03-kestrel", rq: "04-rq" };
  // [knob, label, kind, step, most]: the bounds keep one run to milliseconds
  var KNOBS = [
    ["stage", "stage", "stage"],
    ["outage", "outage", "outage"],
    ["outage_seconds", "outage length (s)", "number", 1, 300],
    ["web_workers", "web workers", "number", 1, 64],
    ["job_workers", "job workers (02-04)", "number", 1, 64],
    ["latency_low", "Twitter answers in (s), from", "number", 0.1, 30],
    ["latency_high", "... to", "number", 0.1, 30],
    ["comment_rate", "comments per second", "number", 0.1, 20],
    ["naive_call_timeout", "the web request's call timeout (s, 01; empty: none)", "number", 0.5, 60],
    ["call_timeout", "a job's call timeout (s, 02-04)", "number", 0.5, 60],
  ];
  // [figure, label, format]
  var FIGURES = [
    ["availability_during_outage", "page views answered within 1 s during the outage", percent],
    ["comment_p50_seconds", "comment latency, median", latency],
    ["tweets_lost", "tweets lost", String],
    ["peak_listen", "listen queue, at its longest", String],
    ["peak_backlog", "backlog, at its peak", String],
    ["caught_up_seconds", "backlog back to normal, after the outage", seconds],
    ["drain_seconds", "last tweet posted, after the outage", seconds],
  ];
  var TOLERANCES = { availability_during_outage: 0.05, peak_backlog: 0.2, drain_seconds: 0.2 };

  function percent(v) { return v === null || v === undefined ? "-" : Math.round(v * 100) + " %"; }
  function seconds(v) { return v === null || v === undefined ? "-" : v.toFixed(1) + " s"; }
  // A queued stage answers in milliseconds: "0.0 s" would say nothing.
  function latency(v) {
    if (v === null || v === undefined) return "-";
    return v < 1 ? Math.max(1, Math.round(v * 1000)) + " ms" : v.toFixed(1) + " s";
  }
  function format(figure, value) {
    for (var i = 0; i < FIGURES.length; i++) if (FIGURES[i][0] === figure) return FIGURES[i][2](value);
    return String(value);
  }

  function el(tag, attributes, text) {
    var node = document.createElement(tag);
    Object.keys(attributes || {}).forEach(function (key) { node.setAttribute(key, attributes[key]); });
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // The model's settings from the knobs' values, and back.
  function bounded(value, most) { return Math.min(most, Math.max(0, Number(value) || 0)); }

  function toSettings(knobs) {
    var timeout = knobs.naive_call_timeout === "" || knobs.naive_call_timeout === null ? Infinity
      : Number(knobs.naive_call_timeout);
    var low = bounded(knobs.latency_low, 30);
    return {
      stage: knobs.stage,
      outage: knobs.outage,
      outage_seconds: bounded(knobs.outage_seconds, 300),
      web_workers: Math.max(1, Math.round(bounded(knobs.web_workers, 64))),
      job_workers: Math.max(1, Math.round(bounded(knobs.job_workers, 64))),
      twitter_latency: [low, Math.max(low, bounded(knobs.latency_high, 30))],
      rates: { view: 10, comment: bounded(knobs.comment_rate, 20), upload: 0.25 },
      naive_call_timeout: isFinite(timeout) ? bounded(timeout, 60) : timeout,
      call_timeout: bounded(knobs.call_timeout, 60),
    };
  }

  function fromSettings(settings) {
    var d = window.QueueModel.DEFAULTS, all = {};
    Object.keys(d).forEach(function (k) { all[k] = d[k]; });
    Object.keys(settings).forEach(function (k) { all[k] = settings[k]; });
    return {
      stage: all.stage, outage: all.outage, outage_seconds: all.outage_seconds,
      web_workers: all.web_workers, job_workers: all.job_workers,
      latency_low: all.twitter_latency[0], latency_high: all.twitter_latency[1],
      comment_rate: all.rates.comment,
      naive_call_timeout: isFinite(all.naive_call_timeout) ? all.naive_call_timeout : "",
      call_timeout: all.call_timeout,
    };
  }

  function Explorer(root, results) {
    this.root = root;
    this.results = results;
    this.inputs = {};
    this.build();
    this.set(fromSettings(window.QueueModel.drillSettings(results, "01-naive")));
  }

  Explorer.prototype.build = function () {
    var self = this, root = this.root;
    root.textContent = "";
    var form = el("form", { class: "qe-knobs", "aria-label": "the model's settings" });
    form.addEventListener("submit", function (event) { event.preventDefault(); });
    KNOBS.forEach(function (knob) {
      var label = el("label", {}, knob[1] + " "), input;
      if (knob[2] === "stage" || knob[2] === "outage") {
        input = el("select", { name: knob[0] });
        (knob[2] === "stage" ? STAGES : [["hang", "hang: accepts, never answers"], ["down", "down: 503 at once"],
          ["slow", "slow: ten times the latency"]]).forEach(function (option) {
          input.appendChild(el("option", { value: option[0] }, option[1]));
        });
      } else {
        input = el("input", { name: knob[0], type: "number", min: 0, step: knob[3], max: knob[4] });
      }
      input.addEventListener("input", function () { self.run(); });
      label.appendChild(input);
      form.appendChild(label);
      self.inputs[knob[0]] = input;
    });
    var reset = el("button", { type: "button", class: "qe-reset" }, "The drill's settings");
    reset.addEventListener("click", function () {
      self.set(fromSettings(window.QueueModel.drillSettings(self.results, DRILL_STAGES[self.inputs.stage.value])));
    });
    form.appendChild(reset);
    root.appendChild(form);
    this.viewer = root.appendChild(el("div", { class: "drill-viewer qe-viewer" }));
    var table = el("table", { class: "qe-figures" }), body = el("tbody");
    table.appendChild(el("caption", {}, "The whole run, counted by the model"));
    this.cells = {};
    FIGURES.forEach(function (figure) {
      var row = el("tr");
      row.appendChild(el("th", { scope: "row" }, figure[1]));
      self.cells[figure[0]] = row.appendChild(el("td", { "data-figure": figure[0] }, "-"));
      body.appendChild(row);
    });
    table.appendChild(body);
    root.appendChild(table);
  };

  Explorer.prototype.set = function (knobs) {
    var inputs = this.inputs;
    Object.keys(knobs).forEach(function (key) { if (inputs[key]) inputs[key].value = knobs[key]; });
    this.run();
  };

  Explorer.prototype.run = function () {
    var knobs = {};
    Object.keys(this.inputs).forEach(function (key) { knobs[key] = this.inputs[key].value; }, this);
    var settings = toSettings(knobs), model = window.QueueModel.simulate(settings), cells = this.cells;
    var name = "model: " + DRILL_STAGES[settings.stage], stages = {};
    stages[name] = model;
    var old = this.viewer.drillViewer, clock = old ? old.clock : undefined;
    window.DrillViewer.show(this.viewer, {
      about: "The model, " + settings.outage + " for " + settings.outage_seconds + " s. Play it, or drag to any " +
        "moment; change a setting and the same moment shows the new run.",
      description: "the model",
      model: true,
      phases: model.phases,
      client_timeout: model.settings.client_timeout,
      available_within: model.settings.available_within,
      stages: stages,
    }, clock);
    FIGURES.forEach(function (figure) {
      var value = model.summary[figure[0]];
      cells[figure[0]].textContent = figure[2](value);
      cells[figure[0]].setAttribute("data-value", value === null ? "" : String(value));
    });
    this.root.setAttribute("data-runs", Number(this.root.getAttribute("data-runs") || 0) + 1);
  };

  // The model against the drill's committed run, stage by stage, on the figures the check holds.
  function comparison(results) {
    var rows = [];
    Object.keys(results.stages).forEach(function (stage) {
      var model = window.QueueModel.simulate(window.QueueModel.drillSettings(results, stage)).summary;
      var drill = results.stages[stage].summary;
      var figures = stage === "01-naive" ? ["availability_during_outage"] : ["peak_backlog", "drain_seconds"];
      figures.forEach(function (figure) {
        var m = model[figure], d = drill[figure], tolerance = TOLERANCES[figure];
        var within = figure === "availability_during_outage" ? Math.abs(m - d) <= tolerance
          : Math.abs(m - d) <= tolerance * d;
        rows.push({ stage: stage, figure: figure, model: m, drill: d, within: within });
      });
    });
    return rows;
  }

  function showComparison(holder, results) {
    var table = el("table", { class: "qe-comparison" }), head = el("tr");
    ["stage", "figure", "model", "drill", "agree"].forEach(function (h) { head.appendChild(el("th", {}, h)); });
    table.appendChild(el("thead")).appendChild(head);
    var body = table.appendChild(el("tbody"));
    comparison(results).forEach(function (row) {
      var tr = el("tr", { "data-stage": row.stage, "data-figure": row.figure });
      var tolerance = row.figure === "availability_during_outage" ? "within 5 points" : "within 20 %";
      [row.stage, FIGURES.filter(function (f) { return f[0] === row.figure; })[0][1],
        format(row.figure, row.model), format(row.figure, row.drill),
        (row.within ? "yes, " : "no, not ") + tolerance].forEach(function (text) { tr.appendChild(el("td", {}, text)); });
      body.appendChild(tr);
    });
    holder.textContent = "";
    holder.appendChild(table);
  }

  // Each claim on the page: the model's answer for its settings, in place of the bound it states.
  function fillClaims() {
    Array.prototype.forEach.call(document.querySelectorAll(".qe-claim"), function (claim) {
      var settings = JSON.parse(claim.getAttribute("data-settings"));
      var figure = claim.getAttribute("data-figure");
      var value = window.QueueModel.simulate(settings).summary[figure];
      claim.textContent = format(figure, value);
      claim.setAttribute("data-value", value === null ? "" : String(value));
    });
  }

  function start() {
    var root = document.querySelector(".queue-explorer");
    if (!root || !window.QueueModel || !window.DrillViewer) return;
    fillClaims();
    var link = root.querySelector("a[href$='results.json']");
    fetch(link.href).then(function (response) {
      if (!response.ok) throw new Error(response.status + " " + response.statusText);
      return response.json();
    }).then(function (results) {
      root.explorer = new Explorer(root, results);
      Array.prototype.forEach.call(document.querySelectorAll(".qe-comparison-here"), function (holder) {
        showComparison(holder, results);
      });
      Array.prototype.forEach.call(document.querySelectorAll("button.qe-try"), function (button) {
        button.addEventListener("click", function () {
          var settings = JSON.parse(button.getAttribute("data-settings"));
          root.explorer.set(fromSettings(settings));
          root.scrollIntoView({ behavior: "smooth" });
        });
      });
      root.setAttribute("data-state", "ready");
    }).catch(function (error) {
      root.setAttribute("data-state", "failed");
      root.appendChild(el("p", {}, "The model could not load the drill's run (" + error.message + ")."));
    });
  }

  window.QueueExplorer = { comparison: comparison };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
