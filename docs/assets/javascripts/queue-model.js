/* A small model of the drill, for the explorable page: the same load, web workers, job workers and
 * outage, as a discrete-event simulation that runs in the page in a few milliseconds.
 *
 * What it models, each piece named after the part of the workbook it copies:
 * - the load (lab/drill/load.py): page views, comments and uploads at fixed rates, each visitor
 *   giving up after the client timeout. A request a visitor gave up on is still served: gunicorn
 *   does not know the visitor left, so a comment's tweet may still be posted.
 * - the web workers (gunicorn sync, PHP-FPM's model): each serves one request at a time, taking
 *   them first come, first served from the listen queue. gunicorn kills a worker stuck on one
 *   request for `web_kill_after` seconds (its --timeout); a new one takes its place a moment later.
 * - the fake Twitter (lab/twitter): answers in `twitter_latency` seconds. In a hang it holds every
 *   call until the outage ends, then answers; when down it fails at once; when slow it takes ten
 *   times as long.
 * - naive (stage 01): a comment or upload calls Twitter inside the web request, with no timeout.
 * - queued (stages 02-04): the request only enqueues; `job_workers` take jobs first come, first
 *   served, each call with `call_timeout`, and a failed job is retried as the stage retries it:
 *   table (02): the job goes back with a delay of 1, 2, 4... s; kestrel (03): the item goes back
 *   and the job worker sleeps 1, 2, 4... s; rq (04): the job is retried 1, 2, 4... s later, and
 *   `breaker_threshold` failures within a minute open a circuit breaker that stops every job
 *   worker for `breaker_cooldown` seconds, then lets one trial call through.
 *
 * `simulate(settings)` answers in the shape of the drill's results.json for one stage (requests,
 * backlog, slots, phases), so the drill's viewer draws it, plus what only a model knows exactly.
 */
(function () {
  "use strict";

  var DEFAULTS = {
    stage: "naive", // naive, table, kestrel or rq
    web_workers: 4,
    job_workers: 4,
    twitter_latency: [1, 2], // seconds, lowest and highest
    outage: "hang", // hang, down or slow
    normal_seconds: 20,
    outage_seconds: 30,
    recovery_seconds: 20,
    rates: { view: 10, comment: 1, upload: 0.25 }, // per second
    client_timeout: 5,
    available_within: 1,
    call_timeout: 10, // the queued stages' call; stage 01 has none
    naive_call_timeout: Infinity,
    web_kill_after: 20, // gunicorn's --timeout in the drill
    respawn_seconds: 1, // a killed web worker's replacement starting
    view_seconds: 0.01, // serving a page, on average
    enqueue_seconds: 0.015, // saving a comment and queueing its job
    fail_seconds: 0.01, // a call that Twitter refuses at once
    retry_base: 1,
    retry_cap: 60,
    poll_seconds: 0.5, // stage 02's job workers look at an empty table this often
    breaker_threshold: 5,
    breaker_window: 60,
    breaker_cooldown: 20,
    drain_bound: 120, // seconds after the load stops: no longer, as in the drill
    sample_every: 0.25,
    seed: 1,
  };

  function settingsWith(changes) {
    var settings = {};
    Object.keys(DEFAULTS).forEach(function (key) { settings[key] = DEFAULTS[key]; });
    Object.keys(changes || {}).forEach(function (key) { settings[key] = changes[key]; });
    return settings;
  }

  // A small seeded generator (mulberry32): the same settings give the same run.
  function random(seed) {
    var a = seed >>> 0;
    return function () {
      a = (a + 0x6d2b79f5) >>> 0;
      var t = a;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }

  // Events in time order (ties in the order they were scheduled): a binary heap.
  function Agenda() { this.heap = []; this.count = 0; }
  Agenda.prototype.at = function (time, action) {
    var heap = this.heap, item = { time: time, order: this.count++, action: action }, i = heap.length;
    heap.push(item);
    while (i > 0) {
      var parent = (i - 1) >> 1;
      if (before(heap[parent], item)) break;
      heap[i] = heap[parent]; i = parent;
    }
    heap[i] = item;
  };
  Agenda.prototype.next = function () {
    var heap = this.heap, top = heap[0], last = heap.pop();
    if (heap.length) {
      var i = 0;
      for (;;) {
        var child = 2 * i + 1;
        if (child >= heap.length) break;
        if (child + 1 < heap.length && before(heap[child + 1], heap[child])) child++;
        if (before(last, heap[child])) break;
        heap[i] = heap[child]; i = child;
      }
      heap[i] = last;
    }
    return top;
  };
  function before(a, b) { return a.time < b.time || (a.time === b.time && a.order < b.order); }

  function simulate(changes) {
    var s = settingsWith(changes), agenda = new Agenda(), draw = random(s.seed), now = 0;
    var outageStart = s.normal_seconds, outageEnd = outageStart + s.outage_seconds;
    var loadEnd = outageEnd + s.recovery_seconds;
    var phases = [
      { name: "normal", start: 0, end: outageStart },
      { name: "outage", start: outageStart, end: outageEnd },
      { name: "recovery", start: outageEnd, end: loadEnd },
    ];
    var naive = s.stage === "naive";

    // -- Twitter: when a call started now ends, and whether it posted --
    function latency() { return s.twitter_latency[0] + draw() * (s.twitter_latency[1] - s.twitter_latency[0]); }
    function inOutage(t) { return t >= outageStart && t < outageEnd; }
    function call(timeout) {
      var end, ok = true, answer = latency();
      if (inOutage(now) && s.outage === "down") { end = now + s.fail_seconds; ok = false; }
      else if (inOutage(now) && s.outage === "slow") end = now + 10 * answer;
      else if (inOutage(now) && s.outage === "hang") end = outageEnd + answer;
      else {
        end = now + answer;
        if (s.outage === "hang" && inOutage(end)) end = outageEnd; // caught by the hang: held to its end
      }
      if (end - now > timeout) return { end: now + timeout, ok: false };
      return { end: end, ok: ok };
    }

    // -- the load and the web workers --
    var requests = [], listen = [], web = [], tweets = 0, lost = 0;
    for (var w = 0; w < s.web_workers; w++) web.push({ state: "i" });
    var jobs = [], workers = [], backlog = 0, lastPosted = null, over = false;
    for (var b = 0; b < (naive ? 0 : s.job_workers); b++) workers.push({ state: "i", failures: 0, asleep: false });

    function answer(request, outcome) {
      var took = now - request.start;
      if (took > s.client_timeout) { request.outcome = "timeout"; request.latency = null; }
      else { request.outcome = outcome; request.latency = took; }
    }

    function serveNext(worker) {
      if (worker.state === "dead" || worker.state !== "i" || !listen.length) return;
      var request = listen.shift();
      if (request.kind === "view") {
        worker.state = "b";
        agenda.at(now + s.view_seconds * (0.5 + draw()), function () { answer(request, "ok"); worker.state = "i"; serveNext(worker); });
      } else if (!naive) {
        worker.state = "b";
        agenda.at(now + s.enqueue_seconds, function () {
          answer(request, "ok");
          enqueue({ attempts: 0, ready: now });
          worker.state = "i";
          serveNext(worker);
        });
      } else {
        worker.state = "t";
        var started = now, result = call(s.naive_call_timeout);
        if (result.end - started > s.web_kill_after) { // gunicorn kills the stuck worker: the tweet is lost
          agenda.at(started + s.web_kill_after, function () {
            answer(request, "error"); lost++;
            worker.state = "dead";
            agenda.at(now + s.respawn_seconds, function () { worker.state = "i"; serveNext(worker); });
          });
        } else {
          agenda.at(result.end, function () {
            if (result.ok) tweets++; else lost++;
            answer(request, result.ok ? "ok" : "error");
            worker.state = "i";
            serveNext(worker);
          });
        }
      }
    }

    function arrive(kind) {
      var request = { kind: kind, start: now, outcome: "pending", latency: null };
      requests.push(request);
      listen.push(request);
      web.forEach(serveNext);
    }

    Object.keys(s.rates).forEach(function (kind) {
      var rate = s.rates[kind];
      if (!(rate > 0)) return;
      for (var n = 0; n / rate < loadEnd; n++) agenda.at(n / rate, arrive.bind(null, kind));
    });

    // -- the job workers, for the queued stages --
    var breaker = { failures: [], openUntil: -1, tripped: false, trial: false };
    function retryDelay(count) { return Math.min(s.retry_base * Math.pow(2, count - 1), s.retry_cap); }

    function enqueue(job) { backlog++; jobs.push(job); wake(); }
    function wake() { workers.forEach(function (worker) { if (worker.state === "i" && !worker.asleep) take(worker); }); }

    function breakerLets() {
      if (s.stage !== "rq") return true;
      if (now < breaker.openUntil) return false;
      if (breaker.tripped) { if (breaker.trial) return false; breaker.trial = true; }
      return true;
    }
    function breakerSays(ok) {
      if (s.stage !== "rq") return;
      if (ok) { breaker.tripped = false; breaker.trial = false; breaker.failures = []; return; }
      if (now < breaker.openUntil) return;
      var open = breaker.tripped;
      if (!open) {
        breaker.failures = breaker.failures.filter(function (t) { return t > now - s.breaker_window; });
        breaker.failures.push(now);
        open = breaker.failures.length >= s.breaker_threshold;
      }
      if (open) {
        breaker.openUntil = now + s.breaker_cooldown;
        breaker.tripped = true; breaker.trial = false; breaker.failures = [];
        agenda.at(breaker.openUntil, wake);
      }
    }

    function take(worker) {
      if (over) return; // the run has ended: a job that fails for ever is not retried for ever
      var index = -1;
      for (var i = 0; i < jobs.length; i++) if (jobs[i].ready <= now) { index = i; break; }
      if (index < 0 || !breakerLets()) {
        if (s.stage === "table" && index < 0 && !over) { // polling: the table cannot wake a job worker
          worker.asleep = true;
          agenda.at(now + s.poll_seconds, function () { worker.asleep = false; take(worker); });
        }
        return;
      }
      var job = jobs.splice(index, 1)[0], result = call(s.call_timeout);
      worker.state = "t";
      agenda.at(result.end, function () {
        worker.state = "i";
        breakerSays(result.ok);
        if (result.ok) {
          tweets++; backlog--; lastPosted = now; worker.failures = 0;
          take(worker);
          wake(); // after a trial call, the others may go again
          return;
        }
        job.attempts++;
        if (s.stage === "kestrel") { // the item goes back; this job worker backs off
          worker.failures++;
          jobs.unshift(job);
          worker.asleep = true;
          agenda.at(now + retryDelay(worker.failures), function () { worker.asleep = false; take(worker); });
          return;
        }
        job.ready = now + retryDelay(job.attempts);
        jobs.push(job);
        agenda.at(job.ready, wake);
        take(worker);
      });
    }

    // -- samples, as the drill takes them --
    var backlogSamples = [], slotSamples = [], listenSamples = [];
    function sample() {
      var t = Math.round(now * 1000) / 1000;
      backlogSamples.push([t, backlog]);
      var breakerOpen = s.stage === "rq" && now < breaker.openUntil;
      slotSamples.push([t, web.map(function (w) { return w.state === "dead" ? "h" : w.state; }).join(""),
        workers.map(function (w) {  // held back: a job worker backing off (03) or stopped by the breaker (04)
          return w.state === "i" && ((s.stage === "kestrel" && w.asleep) || breakerOpen) ? "h" : w.state;
        }).join(""), tweets]);
      listenSamples.push([t, listen.length]);
      var settled = now >= loadEnd && backlog === 0 && listen.length === 0 &&
        web.every(function (w) { return w.state === "i"; });
      if (!settled && now < loadEnd + s.drain_bound) agenda.at(now + s.sample_every, sample);
      else over = true; // the run is over: job workers stop polling, and the agenda empties
    }
    agenda.at(0, sample);

    while (agenda.heap.length) {
      var event = agenda.next();
      now = event.time;
      event.action();
    }

    var views = requests.filter(function (r) {
      return r.kind === "view" && r.start >= outageStart && r.start < outageEnd;
    });
    var available = views.filter(function (r) { return r.outcome === "ok" && r.latency <= s.available_within; });
    // Caught up: the backlog back to what it was before the outage, however long the load goes on.
    var normalBacklog = 0, caughtUp = null;
    backlogSamples.forEach(function (x) {
      if (x[0] < outageStart) normalBacklog = Math.max(normalBacklog, x[1]);
      else if (x[0] >= outageEnd && caughtUp === null && x[1] <= normalBacklog) caughtUp = x[0] - outageEnd;
    });
    var comments = requests.filter(function (r) { return r.kind === "comment" && r.outcome === "ok"; })
      .map(function (r) { return r.latency; }).sort(function (a, b) { return a - b; });
    return {
      settings: s,
      phases: phases,
      requests: requests.map(function (r) {
        return { kind: r.kind, start: r.start, outcome: r.outcome, latency: r.latency };
      }),
      backlog: backlogSamples,
      slots: slotSamples,
      listen: listenSamples,
      drained_at: naive ? null : lastPosted,
      summary: {
        availability_during_outage: views.length ? available.length / views.length : null,
        comment_p50_seconds: comments.length ? comments[Math.floor(comments.length / 2)] : null,
        tweets_asked: requests.filter(function (r) { return r.kind !== "view"; }).length,
        tweets_posted: tweets,
        tweets_lost: lost + (naive ? 0 : backlog),
        peak_backlog: backlogSamples.reduce(function (peak, x) { return Math.max(peak, x[1]); }, 0),
        peak_listen: listenSamples.reduce(function (peak, x) { return Math.max(peak, x[1]); }, 0),
        drain_seconds: naive || lastPosted === null || backlog ? null : Math.max(0, lastPosted - outageEnd),
        caught_up_seconds: naive ? null : caughtUp,
      },
    };
  }

  // The settings of a drill run (results.json) for one of its stages: the model of that run.
  // Stage 05 is stage 04's job workers behind an outbox: its relay's poll (0.1 s) before a tweet is
  // queued is below what the model resolves, so the model runs it as stage 04.
  var STAGE_POLICIES = {
    "01-naive": "naive", "02-db-queue": "table", "03-kestrel": "kestrel", "04-rq": "rq", "05-outbox": "rq",
  };
  function drillSettings(results, stageName) {
    var scale = results.time_scale, phases = results.phases;
    var seconds = function (name) {
      var phase = phases.filter(function (p) { return p.name === name; })[0];
      return phase.end - phase.start;
    };
    return {
      stage: STAGE_POLICIES[stageName],
      web_workers: results.web_workers,
      job_workers: results.background_workers,
      twitter_latency: [1 * scale, 2 * scale],
      outage: results.scenario,
      normal_seconds: seconds("normal"),
      outage_seconds: seconds("outage"),
      recovery_seconds: seconds("recovery"),
      rates: results.rates_per_second,
      client_timeout: results.client_timeout,
      available_within: results.available_within,
      call_timeout: 10 * scale,
      web_kill_after: 20 * scale,
      retry_base: 1 * scale,
      breaker_cooldown: 20 * scale,
      breaker_window: 60 * scale,
    };
  }

  window.QueueModel = { simulate: simulate, drillSettings: drillSettings, DEFAULTS: DEFAULTS };
})();
