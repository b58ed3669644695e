/* The outage drill, drawn as it happens: one panel per stage, side by side.
 *
 * Each panel shows every request as a dot (when it started, how long it took; the encoding of the
 * drill's latency chart), the backlog over time, each web worker and job worker as a slot (idle,
 * serving a page, waiting on Twitter), and the figures so far. The outage is the shaded band.
 *
 * Two sources, one drawing:
 * - replay: <div class="drill-viewer"> holding a link to a drill's results.json (the site's
 *   results page). Play, pause, speed and a scrubber move one clock over every stage.
 * - live: <div class="drill-viewer" data-live="/events"> (`workbook drill --live`). The drill's
 *   samples arrive as server-sent events; each stage's panel shows its own latest moment.
 *
 * The clock is seconds since a stage's load began. A request shows once its answer is known: at
 * its start plus its latency, or plus the client's timeout when it gave up. No library, no build
 * step: the file is served as it is, on the site and by the live server.
 */
(function () {
  "use strict";

  var KINDS = {
    view: { color: "rgba(120, 120, 120, 0.45)", size: 1.6, label: "page view" },
    comment: { color: "#1f77b4", size: 2.6, label: "comment" },
    upload: { color: "#2ca02c", size: 2.6, label: "upload" },
  };
  var FAILED = "#d62728";
  var OUTAGE = "rgba(244, 162, 97, 0.25)";
  // A worker's state: the drill samples the first three; the model also knows the fourth.
  var STATES = { i: "idle", b: "serving a page", t: "waiting on Twitter", h: "held back (backing off, breaker open, restarting)" };
  var LATENCY_MIN = 0.001, LATENCY_MAX = 10; // seconds, the log axis's ends
  var SPEEDS = [1, 2, 5, 10, 20];
  // The replay starts at the fastest speed that still lasts this long: a quick run's story is five
  // times shorter, and at a full run's speed it would be over in four seconds.
  var REPLAY_SECONDS = 15;

  function defaultSpeed(span) {
    var chosen = SPEEDS[0];
    SPEEDS.forEach(function (s) { if (span / s >= REPLAY_SECONDS) chosen = s; });
    return chosen;
  }

  // -- what the samples say at a moment: the same counting as lab/drill/stage_run.py ----------

  function outagePhase(run, stage) {
    var phases = (stage.phases && stage.phases.length ? stage.phases : run.phases) || [];
    for (var i = 0; i < phases.length; i++) if (phases[i].name === "outage") return phases[i];
    return null;
  }

  function answeredAt(run, request) {
    return request.start + (request.latency === null ? run.client_timeout : request.latency);
  }

  function phaseAt(run, stage, clock) {
    var phases = (stage.phases && stage.phases.length ? stage.phases : run.phases) || [];
    for (var i = 0; i < phases.length; i++) {
      if (clock < phases[i].end) return phases[i].name;
    }
    return stage.done && clock >= lastSampleTime(stage) ? "done" : "drain";
  }

  function lastSampleTime(stage) {
    return stage.slots.length ? stage.slots[stage.slots.length - 1][0] : 0;
  }

  function lastAtOrBefore(samples, clock) {
    var found = null;
    for (var i = 0; i < samples.length && samples[i][0] <= clock; i++) found = samples[i];
    return found;
  }

  // The backlog emptied for good after the outage (summarize's _drain_seconds).
  function drainFromBacklog(backlog, outageEnd) {
    var emptied = null;
    backlog.forEach(function (sample) {
      if (sample[0] < outageEnd) return;
      if (sample[1] === 0 && emptied === null) emptied = sample[0];
      else if (sample[1] !== 0) emptied = null;
    });
    return emptied === null ? null : Math.max(0, emptied - outageEnd);
  }

  // Requests waiting for a free web worker: only the model knows them (the drill sees no further
  // than its clients), so a drill's panel leaves the figure out.
  function listenAt(stage, clock) {
    var sample = stage.listen ? lastAtOrBefore(stage.listen, clock) : null;
    return sample ? sample[1] : null;
  }

  function figuresAt(run, stage, clock, waiting) {
    var outage = outagePhase(run, stage), within = run.available_within || 1;
    var known = stage.requests.filter(function (r) { return answeredAt(run, r) <= clock; });
    // A page view counts once its second is up: answered within it, or not. One still waiting
    // then counts as not answered, so the figure never runs ahead of what a visitor saw.
    var due = function (start) { return start + within <= clock; };
    var views = known.filter(function (r) { return r.kind === "view" && due(r.start); });
    var late = (waiting || []).filter(function (w) { return w[0] === "view" && due(w[1]); });
    var ok = function (r) { return r.outcome === "ok" && r.latency <= within; };
    var inOutage = function (start) { return !!outage && outage.start <= start && start < outage.end; };
    var outageViews = views.filter(function (r) { return inOutage(r.start); });
    var outageLate = late.filter(function (w) { return inOutage(w[1]); }).length;
    var backlog = stage.backlog.filter(function (s) { return s[0] <= clock; });
    var slot = lastAtOrBefore(stage.slots, clock);
    var ended = stage.done && clock >= lastSampleTime(stage);
    var drain = null;
    if (outage && stage.drained_at !== null && stage.drained_at !== undefined) {
      if (clock >= stage.drained_at) drain = Math.max(0, stage.drained_at - outage.end);
    } else if (outage && ended) {
      drain = drainFromBacklog(backlog, outage.end);
    }
    return {
      answered_so_far: views.length + late.length ? views.filter(ok).length / (views.length + late.length) : null,
      availability_during_outage: outageViews.length + outageLate
        ? outageViews.filter(ok).length / (outageViews.length + outageLate) : null,
      errors: known.filter(function (r) { return r.outcome !== "ok"; }).length,
      tweets: slot ? slot[3] : 0,
      backlog: backlog.length ? backlog[backlog.length - 1][1] : null,
      listen: listenAt(stage, clock),
      peak_backlog: backlog.reduce(function (peak, s) { return Math.max(peak, s[1]); }, 0),
      drain_seconds: drain,
      web: slot ? slot[1] : "",
      jobs: slot ? slot[2] : "",
    };
  }

  // -- drawing ----------------------------------------------------------------------------------

  function el(tag, attributes, text) {
    var node = document.createElement(tag);
    Object.keys(attributes || {}).forEach(function (key) { node.setAttribute(key, attributes[key]); });
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function sizeCanvas(canvas) {
    var ratio = window.devicePixelRatio || 1, width = canvas.clientWidth, height = canvas.clientHeight;
    if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
      canvas.width = Math.round(width * ratio);
      canvas.height = Math.round(height * ratio);
    }
    var context = canvas.getContext("2d");
    context.setTransform(ratio, 0, 0, ratio, 0, 0);
    context.clearRect(0, 0, width, height);
    return { context: context, width: width, height: height };
  }

  var LEFT = 30, BOTTOM = 14; // room for the axes' labels

  function shadeAndClock(area, outage, span, clock) {
    var c = area.context, x = function (t) { return LEFT + (t / span) * (area.width - LEFT - 2); };
    if (outage) {
      c.fillStyle = OUTAGE;
      c.fillRect(x(outage.start), 0, x(Math.min(outage.end, span)) - x(outage.start), area.height - BOTTOM);
    }
    c.fillStyle = "#888";
    c.font = "9px sans-serif";
    c.textAlign = "center";
    var step = span > 60 ? 20 : span > 25 ? 10 : 5;
    for (var t = 0; t <= span; t += step) c.fillText(t + " s", x(t), area.height - 3);
    if (clock >= 0 && isFinite(clock)) { // no line before a stage starts, or once a live one is done
      c.strokeStyle = "rgba(0, 0, 0, 0.55)";
      c.beginPath();
      c.moveTo(x(Math.min(clock, span)), 0);
      c.lineTo(x(Math.min(clock, span)), area.height - BOTTOM);
      c.stroke();
    }
    return x;
  }

  // The requests still waiting for an answer at `clock`, as [kind, start]: a live drill sends them
  // with each sample; a replay knows every request's answer and works them out.
  function waitingAt(run, stage, clock, live) {
    if (live) return stage.done ? [] : stage.waiting || [];
    return stage.requests.filter(function (r) {
      return r.start <= clock && answeredAt(run, r) > clock;
    }).map(function (r) { return [r.kind, r.start]; });
  }

  function drawLatency(canvas, run, stage, clock, span, waiting) {
    var area = sizeCanvas(canvas), c = area.context, plotHeight = area.height - BOTTOM;
    var x = shadeAndClock(area, outagePhase(run, stage), span, clock);
    var logMin = Math.log10(LATENCY_MIN), logMax = Math.log10(LATENCY_MAX);
    var y = function (seconds) {
      var v = Math.log10(Math.min(LATENCY_MAX, Math.max(LATENCY_MIN, seconds)));
      return plotHeight - ((v - logMin) / (logMax - logMin)) * (plotHeight - 4) - 2;
    };
    c.fillStyle = "#888";
    c.font = "9px sans-serif";
    c.textAlign = "right";
    [[0.01, "10 ms"], [0.1, "0.1 s"], [1, "1 s"]].forEach(function (tick) {
      c.fillText(tick[1], LEFT - 3, y(tick[0]) + 3);
      c.fillRect(LEFT, y(tick[0]), area.width - LEFT, 0.5);
    });
    c.setLineDash([3, 3]);
    c.strokeStyle = FAILED;
    c.beginPath();
    c.moveTo(LEFT, y(run.client_timeout));
    c.lineTo(area.width, y(run.client_timeout));
    c.stroke();
    c.setLineDash([]);
    c.fillText("gave up (" + run.client_timeout + " s)", area.width - 2, y(run.client_timeout) - 3);
    waiting.forEach(function (w) { // hollow: still waiting, as high as it has waited so far
      c.strokeStyle = (KINDS[w[0]] || KINDS.view).color;
      c.beginPath();
      c.arc(x(w[1]), y(clock - w[1]), KINDS[w[0]] === KINDS.view ? 2 : 3, 0, 2 * Math.PI);
      c.stroke();
    });
    stage.requests.forEach(function (r) {
      if (answeredAt(run, r) > clock) return;
      var px = x(r.start);
      if (r.outcome === "timeout") {
        var py = y(run.client_timeout);
        c.strokeStyle = FAILED;
        c.beginPath();
        c.moveTo(px - 2.5, py - 2.5); c.lineTo(px + 2.5, py + 2.5);
        c.moveTo(px - 2.5, py + 2.5); c.lineTo(px + 2.5, py - 2.5);
        c.stroke();
      } else if (r.outcome === "error") {
        c.fillStyle = FAILED;
        c.beginPath();
        c.moveTo(px, y(r.latency) - 3); c.lineTo(px + 3, y(r.latency) + 2.5); c.lineTo(px - 3, y(r.latency) + 2.5);
        c.fill();
      } else {
        var kind = KINDS[r.kind] || KINDS.view;
        c.fillStyle = kind.color;
        c.beginPath();
        c.arc(px, y(r.latency), kind.size, 0, 2 * Math.PI);
        c.fill();
      }
    });
  }

  function drawBacklog(canvas, run, stage, clock, span, top) {
    var area = sizeCanvas(canvas), c = area.context, plotHeight = area.height - BOTTOM;
    var x = shadeAndClock(area, outagePhase(run, stage), span, clock);
    var y = function (count) { return plotHeight - (count / top) * (plotHeight - 4); };
    c.fillStyle = "#888";
    c.font = "9px sans-serif";
    c.textAlign = "right";
    c.fillText(String(top), LEFT - 3, y(top) + 7);
    c.fillText("0", LEFT - 3, y(0));
    c.strokeStyle = "#7b3fa0";
    c.lineWidth = 1.5;
    c.beginPath();
    var started = false;
    stage.backlog.forEach(function (sample) {
      if (sample[0] > clock) return;
      if (started) c.lineTo(x(sample[0]), y(sample[1]));
      else { c.moveTo(x(sample[0]), y(sample[1])); started = true; }
    });
    c.stroke();
    c.lineWidth = 1;
  }

  function drawSlots(holder, states) {
    while (holder.children.length > states.length) holder.removeChild(holder.lastChild);
    while (holder.children.length < states.length) holder.appendChild(el("span", { class: "dv-slot" }));
    for (var i = 0; i < states.length; i++) {
      var slot = holder.children[i];
      if (slot.getAttribute("data-state") !== states[i]) {
        slot.setAttribute("data-state", states[i]);
        slot.title = STATES[states[i]] || states[i];
      }
    }
    holder.setAttribute("data-states", states);
  }

  // Rounded as the drill's table rounds (report.py): to 4 places, then shown as a whole percent.
  function percent(value) { return value === null ? "-" : (Math.round(value * 1e4) / 100).toFixed(0) + " %"; }

  var FIGURES = [ // [key, label, format]
    ["answered_so_far", "page views answered within 1 s, so far", percent],
    ["availability_during_outage", "... of those started in the outage", percent],
    ["errors", "errors and timeouts", String],
    ["tweets", "tweets on Twitter", String],
    ["listen", "listen queue now", function (v) { return v === null ? "-" : String(v); }],
    ["backlog", "backlog now", function (v) { return v === null ? "-" : String(v); }],
    ["peak_backlog", "peak backlog", String],
    ["drain_seconds", "drain time", function (v) { return v === null ? "-" : (Math.round(v * 100) / 100).toFixed(1) + " s"; }],
  ];

  // Figures that mean nothing for a stage, as the drill's table says (report.py's DOES_NOT_APPLY):
  // stage 01 has no queue, so no backlog to peak or drain.
  var DOES_NOT_APPLY = { "01-naive": ["backlog", "peak_backlog", "drain_seconds"] };

  // -- one viewer -------------------------------------------------------------------------------

  function Viewer(root) {
    this.root = root;
    this.run = null;
    this.panels = {};
    this.clock = 0;
    this.speed = 5;
    this.playing = false;
    this.live = root.hasAttribute("data-live");
  }

  Viewer.prototype.build = function () {
    var self = this, root = this.root, run = this.run;
    root.textContent = "";
    var scale = run.time_scale && run.time_scale !== 1
      ? " At time scale " + run.time_scale + " every duration is " + run.time_scale + " times the story's." : "";
    root.appendChild(el("p", { class: "dv-about" }, run.about ? run.about : this.live
      ? "Live: " + run.description + "." + scale + " The stages run one after another, each on its own " +
        "fake Twitter; each panel's clock is the seconds since that stage's load began."
      : "Replay of the run above: " + run.description + "." + scale + " The stages ran one after another; " +
        "here they play side by side, each at the same second of its own load."));
    if (!this.live) {
      this.speed = defaultSpeed(this.span());
      var controls = el("div", { class: "dv-controls" });
      this.playButton = el("button", { type: "button", class: "dv-play" }, "Play");
      this.playButton.addEventListener("click", function () { self.toggle(); });
      var speed = el("select", { class: "dv-speed", "aria-label": "speed" });
      SPEEDS.forEach(function (s) {
        var option = el("option", { value: s }, s + "x");
        if (s === self.speed) option.selected = true;
        speed.appendChild(option);
      });
      speed.addEventListener("change", function () { self.speed = Number(speed.value); });
      this.scrubber = el("input", { type: "range", class: "dv-scrub", min: 0, step: 0.05,
        max: this.span().toFixed(2), value: 0, "aria-label": "moment of the drill, in seconds" });
      this.scrubber.addEventListener("input", function () { self.pause(); self.seek(Number(self.scrubber.value)); });
      controls.appendChild(this.playButton);
      controls.appendChild(el("label", {}, "speed "));
      controls.lastChild.appendChild(speed);
      controls.appendChild(this.scrubber);
      root.appendChild(controls);
    }
    this.status = el("p", { class: "dv-status", "aria-live": "polite" });
    root.appendChild(this.status);
    root.appendChild(this.legend());
    var grid = el("div", { class: "dv-stages" });
    root.appendChild(grid);
    run.stage_names.forEach(function (name) { self.panels[name] = self.panel(grid, name); });
  };

  Viewer.prototype.legend = function () {
    var legend = el("p", { class: "dv-legend" });
    Object.keys(KINDS).forEach(function (kind) {
      legend.appendChild(el("span", { class: "dv-key dv-key-" + kind }, KINDS[kind].label));
    });
    legend.appendChild(el("span", { class: "dv-key dv-key-waiting" }, "still waiting"));
    legend.appendChild(el("span", { class: "dv-key dv-key-timeout" }, "gave up"));
    legend.appendChild(el("span", { class: "dv-key dv-key-error" }, "error"));
    legend.appendChild(el("span", { class: "dv-key dv-key-outage" }, "outage"));
    var model = this.run.model;
    Object.keys(STATES).forEach(function (state) {
      if (state === "h" && !model) return; // only the model knows why a worker waits
      var key = el("span", { class: "dv-key" });
      key.appendChild(el("span", { class: "dv-slot", "data-state": state }));
      key.appendChild(document.createTextNode(" " + STATES[state]));
      legend.appendChild(key);
    });
    return legend;
  };

  Viewer.prototype.panel = function (grid, name) {
    var section = el("section", { class: "dv-stage", "data-stage": name });
    var heading = el("h3", {}, name + " ");
    var phase = el("span", { class: "dv-phase" }, "waiting");
    heading.appendChild(phase);
    section.appendChild(heading);
    section.appendChild(el("div", { class: "dv-caption" }, "every request: when it started, how long it took"));
    var latency = el("canvas", { class: "dv-latency", role: "img", "aria-label": name + ": latency of every request" });
    section.appendChild(latency);
    // Stage 01 has no queue: the drill counts its calls held at Twitter instead.
    section.appendChild(el("div", { class: "dv-caption" }, name.indexOf("01-naive") >= 0
      ? "calls held at Twitter (no queue), on every stage's scale" : "backlog: jobs waiting, on every stage's scale"));
    var backlog = el("canvas", { class: "dv-backlog", role: "img", "aria-label": name + ": backlog over time" });
    section.appendChild(backlog);
    var web = el("div", { class: "dv-slots", "data-kind": "web" });
    var jobs = el("div", { class: "dv-slots", "data-kind": "jobs" });
    // Stage 01's slots turn idle during the outage while nothing answers: gunicorn's timeout at work.
    section.appendChild(el("div", { class: "dv-caption" }, name.indexOf("01-naive") >= 0
      ? "web workers: gunicorn replaces one stuck on Twitter for 30 s with a new, idle one, until the next comment holds it"
      : "web workers"));
    section.appendChild(web);
    section.appendChild(el("div", { class: "dv-caption" }, "job workers"));
    section.appendChild(jobs);
    var list = el("dl", { class: "dv-figures" }), figures = {};
    FIGURES.forEach(function (figure) {
      list.appendChild(el("dt", {}, figure[1]));
      figures[figure[0]] = list.appendChild(el("dd", { "data-figure": figure[0] }, "-"));
    });
    section.appendChild(list);
    grid.appendChild(section);
    return { section: section, phase: phase, latency: latency, backlog: backlog, web: web, jobs: jobs, figures: figures };
  };

  // Seconds shown on the time axis: the longest stage, or the plan while a live drill runs.
  Viewer.prototype.span = function () {
    var run = this.run, longest = 0;
    (run.phases || []).forEach(function (p) { longest = Math.max(longest, p.end * 1.15); });
    run.stage_names.forEach(function (name) { longest = Math.max(longest, lastSampleTime(run.stages[name])); });
    return Math.max(1, Math.ceil(longest));
  };

  Viewer.prototype.clockOf = function (name) {
    if (!this.live) return this.clock;
    var stage = this.run.stages[name];
    return stage.done ? Infinity : lastSampleTime(stage);
  };

  Viewer.prototype.draw = function () {
    var self = this, run = this.run, span = this.span(), top = 5;
    run.stage_names.forEach(function (name) {
      run.stages[name].backlog.forEach(function (s) { top = Math.max(top, s[1]); });
    });
    run.stage_names.forEach(function (name) {
      var stage = run.stages[name], panel = self.panels[name], clock = self.clockOf(name);
      var started = stage.slots.length > 0 || stage.done;
      panel.section.setAttribute("data-samples", stage.slots.length);
      panel.phase.textContent = started ? phaseAt(run, stage, clock) : (stage.said || "waiting");
      var waiting = started ? waitingAt(run, stage, clock, self.live) : [];
      drawLatency(panel.latency, run, stage, started ? clock : -1, span, waiting);
      drawBacklog(panel.backlog, run, stage, started ? clock : -1, span, top);
      var figures = figuresAt(run, stage, clock, waiting);
      drawSlots(panel.web, figures.web);
      drawSlots(panel.jobs, figures.jobs);
      FIGURES.forEach(function (figure) {
        var value = figures[figure[0]], cell = panel.figures[figure[0]];
        var applies = !(DOES_NOT_APPLY[name] || []).includes(figure[0]);
        cell.hidden = cell.previousSibling.hidden = figure[0] === "listen" && !stage.listen;
        cell.textContent = !started ? "-" : applies ? figure[2](value) : "n/a";
        cell.setAttribute("data-value", !applies ? "n/a" : value === null ? "" : String(value));
      });
    });
    if (!this.live) {
      this.scrubber.value = this.clock;
      this.status.textContent = this.clock.toFixed(1) + " s of " + span + " s";
    }
    this.root.setAttribute("data-clock", this.live ? "" : this.clock.toFixed(2));
  };

  // -- replay -----------------------------------------------------------------------------------

  Viewer.prototype.seek = function (clock) {
    this.clock = Math.max(0, Math.min(clock, this.span()));
    if (this.clock >= this.span()) this.ended();
    else if (!this.playing) this.root.setAttribute("data-state", "paused");
    this.draw();
  };

  Viewer.prototype.toggle = function () { if (this.playing) this.pause(); else this.play(); };

  Viewer.prototype.play = function () {
    var self = this, last = null;
    if (this.clock >= this.span()) this.clock = 0;
    this.playing = true;
    this.playButton.textContent = "Pause";
    this.root.setAttribute("data-state", "playing");
    var frame = function (now) {
      if (!self.playing) return;
      if (last !== null) self.seek(self.clock + ((now - last) / 1000) * self.speed);
      last = now;
      if (self.playing) window.requestAnimationFrame(frame);
    };
    window.requestAnimationFrame(frame);
  };

  Viewer.prototype.pause = function () {
    this.playing = false;
    this.playButton.textContent = "Play";
    this.root.setAttribute("data-state", "paused");
  };

  Viewer.prototype.ended = function () {
    this.playing = false;
    this.playButton.textContent = "Play again";
    this.root.setAttribute("data-state", "ended");
  };

  // A results.json as the viewer holds it: every stage done, in the order it ran.
  function fromResults(results) {
    results.stage_names = Object.keys(results.stages);
    results.stage_names.forEach(function (name) { results.stages[name].done = true; });
    return results;
  }

  Viewer.prototype.replay = function (url) {
    var self = this;
    fetch(url).then(function (response) {
      if (!response.ok) throw new Error(response.status + " " + response.statusText);
      return response.json();
    }).then(function (results) {
      self.run = fromResults(results);
      self.build();
      self.seek(0);
      self.root.setAttribute("data-state", "ready");
    }).catch(function (error) {
      self.root.setAttribute("data-state", "failed");
      self.root.appendChild(el("p", { class: "dv-status" },
        "The replay could not load the run's samples (" + error.message + "); the charts below show the same run."));
    });
  };

  // -- live -------------------------------------------------------------------------------------

  function emptyStage() { return { requests: [], backlog: [], slots: [], phases: [], done: false }; }

  Viewer.prototype.follow = function (url) {
    var self = this, source = new EventSource(url), pending = false;
    var redraw = function () {
      if (pending) return;
      pending = true;
      window.requestAnimationFrame(function () { pending = false; self.draw(); });
    };
    var on = function (kind, handle) {
      source.addEventListener(kind, function (event) { handle(JSON.parse(event.data)); if (self.run) redraw(); });
    };
    on("drill", function (header) {
      self.run = header;
      self.run.stages = {};
      header.stage_names.forEach(function (name) { self.run.stages[name] = emptyStage(); });
      self.build();
      self.root.setAttribute("data-state", "live");
      self.status.textContent = "Waiting for the first stage to start.";
    });
    on("say", function (said) {
      self.run.stages[said.stage].said = said.text;
      self.status.textContent = said.stage + ": " + said.text;
    });
    on("sample", function (sample) {
      var stage = self.run.stages[sample.stage];
      stage.slots.push([sample.seconds, sample.web, sample.jobs, sample.tweets]);
      if (sample.backlog !== null) stage.backlog.push([sample.seconds, sample.backlog]);
      Array.prototype.push.apply(stage.requests, sample.requests);
      stage.waiting = sample.waiting;
      self.status.textContent = sample.stage + ": " + sample.phase + ", " + sample.seconds.toFixed(1) + " s";
    });
    on("stage_done", function (done) { // the stage's own record replaces what the samples built
      var stage = self.run.stages[done.stage];
      ["requests", "backlog", "slots", "phases", "drained_at", "summary"].forEach(function (key) {
        stage[key] = done.outcome[key];
      });
      stage.done = true;
    });
    on("end", function (end) {
      source.close(); // the drill is over and its server stops: no reconnecting
      self.root.setAttribute("data-state", "finished");
      self.status.textContent = "The drill has finished; its results are in " + end.out +
        ". This page keeps its picture; the server has stopped.";
    });
    source.onerror = function () {
      if (self.root.getAttribute("data-state") !== "finished") self.status.textContent = "Waiting for the drill...";
    };
  };

  function start(root) {
    var viewer = new Viewer(root);
    root.drillViewer = viewer; // for the browser check, and for a curious reader's console
    if (viewer.live) {
      viewer.follow(root.getAttribute("data-live"));
    } else {
      var link = root.querySelector("a[href$='results.json']");
      if (link) viewer.replay(link.href);
    }
  }

  // A run already in hand (the explorable's model), shown as a replay and paused at `clock`.
  function show(root, run, clock) {
    if (root.drillViewer) root.drillViewer.playing = false; // the old one's frames stop
    var viewer = new Viewer(root);
    root.drillViewer = viewer;
    viewer.run = fromResults(run);
    viewer.build();
    viewer.seek(clock === undefined ? 0 : clock);
    if (root.getAttribute("data-state") !== "ended") root.setAttribute("data-state", "ready");
    return viewer;
  }

  window.DrillViewer = { show: show };

  function startAll() { Array.prototype.forEach.call(document.querySelectorAll(".drill-viewer"), start); }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", startAll);
  else startAll();
})();
