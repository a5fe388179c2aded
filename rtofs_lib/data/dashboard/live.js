// The RTOFS dashboard, live: polls the latest day's index.json (every second) and days.json
// (every five), and updates the page written by rtofs_lib/jobs/page.py in place: new
// steps, failures, latencies, the "latest" view and new days appear without a reload.
// Keep the markup and texts here in step with page.py. No external library.
(function () {
  "use strict";
  var INDEX_MS = 1000;
  var DAYS_MS = 5000;
  var PREFIX = "rtofs.";
  var state = { date: null, indexText: null, daysUpdated: null, doc: null, polls: 0, errors: 0 };
  window.rtofsLive = state;

  // --- small helpers (the same texts as dashboard.py) ---
  function h(tag, attrs) {
    var el = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { el.setAttribute(k, attrs[k]); });
    for (var i = 2; i < arguments.length; i++) {
      var kid = arguments[i];
      if (kid === null || kid === undefined || kid === "") continue;
      el.appendChild(typeof kid === "string" ? document.createTextNode(kid) : kid);
    }
    return el;
  }
  function hms(s) { return s ? s.slice(11, 19) + "Z" : "—"; }
  function secs(x) { return x === null || x === undefined ? "—" : Number(x).toFixed(1) + " s"; }
  function valid(s) { return s.slice(0, 10) + " " + s.slice(11, 16) + "Z"; }
  function pretty(d) { return d.slice(0, 4) + "-" + d.slice(4, 6) + "-" + d.slice(6, 8); }
  function folder(date) { return PREFIX + date; }
  function when(s) { var t = s ? Date.parse(s) : NaN; return isNaN(t) ? -Infinity : t; }
  function quantile(v, q) {
    var pos = (v.length - 1) * q, lo = Math.floor(pos), hi = Math.min(lo + 1, v.length - 1);
    return v[lo] + (v[hi] - v[lo]) * (pos - lo);
  }
  function summaryText(steps) {
    var v = steps.filter(function (s) { return s.latency_s !== null && s.latency_s !== undefined; })
      .map(function (s) { return Number(s.latency_s); }).sort(function (a, b) { return a - b; });
    if (!v.length) return "Latency landed → published: not recorded for these files.";
    return "Latency landed → published: median " + secs(quantile(v, 0.5)) + " · p95 " +
      secs(quantile(v, 0.95)) + " · max " + secs(v[v.length - 1]) + " over " + v.length +
      " of " + steps.length + " files.";
  }
  function latestStep(steps) {
    var best = null, bestKey = -Infinity;
    steps.forEach(function (s) {
      var k = when(s.published);
      if (best === null || k >= bestKey) { best = s; bestKey = k; }
    });
    return best;
  }
  function fieldsOf(doc, s) {
    var maps = s.maps || {};
    var f = (doc.fields || []).filter(function (x) { return x in maps; });
    return f.length ? f : Object.keys(maps);
  }
  function mapOf(s, field) {
    var m = (s.maps || {})[field] || {};
    return { low: m.low, high: m.high || m.low };
  }

  // --- the latest view ---
  function renderLatest(doc) {
    var s = latestStep(doc.steps || []);
    var old = document.getElementById("latest");
    if (!s || !old) return;
    var key = doc.date + "/" + s.step + "/" + (s.published || "") + "/" + s.latency_s;
    if (old.dataset.key === key) return;
    var dir = folder(doc.date), fields = fieldsOf(doc, s), field = fields.length ? fields[0] : "";
    var m = mapOf(s, field);
    var img = m.low
      ? h("a", { class: "map", href: dir + "/" + m.high },
          h("img", { src: dir + "/" + m.low + (s.published ? "?v=" + encodeURIComponent(s.published) : ""),
                     alt: field + " " + s.step }))
      : h("p", { class: "empty" }, "(no map)");
    var highs = h("p", { class: "high" }, "High resolution: ");
    fields.forEach(function (f, i) {
      if (i) highs.appendChild(document.createTextNode(" "));
      highs.appendChild(h("a", { href: dir + "/" + mapOf(s, f).high }, f));
    });
    var meta = field + " · cycle " + pretty(doc.date) + " · landed " + hms(s.landed) +
      " · published " + hms(s.published) + " · latency " + secs(s.latency_s);
    var view = h("section", { id: "latest", class: "latest", "data-date": doc.date, "data-step": s.step },
      h("h2", {}, "Latest: " + s.step + " · valid " + valid(s.valid_time)), img,
      h("p", { class: "meta" }, meta), highs);
    view.dataset.key = key;
    old.replaceWith(view);
  }

  // --- one day's section ---
  function failuresBlock(failed) {
    var div = h("div", { class: "failures" });
    if (!failed.length) return div;
    var body = h("tbody", {});
    failed.forEach(function (f) {
      body.appendChild(h("tr", { "data-file": f.file }, h("td", {}, f.file),
        h("td", {}, String(f.step || "")), h("td", {}, String(f.error || "")),
        h("td", {}, hms(f.landed)), h("td", {}, hms(f.failed_at))));
    });
    div.appendChild(h("h3", {}, "Failed files (" + failed.length + ")"));
    div.appendChild(h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "file"), h("th", {}, "step"),
      h("th", {}, "error"), h("th", {}, "landed"), h("th", {}, "failed at"))), body));
    return div;
  }
  function latencyBlock(steps, open) {
    var body = h("tbody", {});
    steps.forEach(function (s) {
      body.appendChild(h("tr", { "data-step": s.step }, h("td", {}, s.step), h("td", {}, valid(s.valid_time)),
        h("td", {}, hms(s.landed)), h("td", {}, hms(s.published)),
        h("td", { class: "num" }, secs(s.latency_s))));
    });
    var d = h("details", { class: "latency" }, h("summary", {}, "Per-file latency (landed → published)"),
      h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "step"), h("th", {}, "valid"),
        h("th", {}, "landed"), h("th", {}, "published"), h("th", {}, "latency"))), body));
    if (open) d.open = true;
    return d;
  }
  function countsBlock(doc) {
    var dir = folder(doc.date), steps = doc.steps || [];
    var p = h("p", { class: "counts" }, steps.length + " steps · ",
      h("a", { href: dir + "/index.json" }, "index.json"));
    if ((doc.region_stats || []).length) {
      p.appendChild(document.createTextNode(" · "));
      p.appendChild(h("a", { href: dir + "/region_stats.parquet/" }, "region statistics (Parquet)"));
    }
    return p;
  }
  function figure(doc, s, field, anchor) {
    var dir = folder(doc.date), m = mapOf(s, field);
    var fig = h("figure", { "data-step": s.step });
    if (anchor) fig.id = "d" + doc.date + "-" + s.step;
    fig.appendChild(m.low
      ? h("a", { href: dir + "/" + m.high }, h("img", { src: dir + "/" + m.low, loading: "lazy", alt: field + " " + s.step }))
      : h("p", {}, "(no map)"));
    fig.appendChild(h("figcaption", {}, s.step + " · valid " + valid(s.valid_time),
      h("span", { class: "lat" }), h("span", { class: "arrows" })));
    fig.dataset.published = s.published || "";
    return fig;
  }
  function updateFigure(doc, fig, s, field, i, steps) {
    fig.querySelector(".lat").textContent =
      s.latency_s === null || s.latency_s === undefined ? "" : " · " + secs(s.latency_s);
    var arrows = fig.querySelector(".arrows");
    var want = (i ? "p" + steps[i - 1].step : "") + (i + 1 < steps.length ? "n" + steps[i + 1].step : "");
    if (arrows.dataset.want !== want) {
      arrows.textContent = "";
      if (i) arrows.appendChild(h("a", { href: "#d" + doc.date + "-" + steps[i - 1].step }, "◀"));
      if (i + 1 < steps.length) arrows.appendChild(h("a", { href: "#d" + doc.date + "-" + steps[i + 1].step }, "▶"));
      arrows.dataset.want = want;
    }
    var pub = s.published || "";
    if (fig.dataset.published !== undefined && fig.dataset.published !== pub) {
      var img = fig.querySelector("img"), m = mapOf(s, field);
      if (img && m.low) img.src = folder(doc.date) + "/" + m.low + "?v=" + encodeURIComponent(pub);
    }
    fig.dataset.published = pub;
  }
  function renderFields(section, doc) {
    var steps = doc.steps || [], fields = (doc.fields && doc.fields.length) ? doc.fields : [""];
    var anchor = section.querySelector(".latency") || null;
    section.querySelectorAll("div.field").forEach(function (div) {
      if (fields.indexOf(div.dataset.field) < 0) div.remove();
    });
    fields.forEach(function (field, fi) {
      var div = Array.prototype.find.call(section.querySelectorAll("div.field"),
        function (d) { return d.dataset.field === field; });
      if (!div) {
        div = h("div", { class: "field", "data-field": field }, h("h3", {}, field), h("div", { class: "grid" }));
        section.insertBefore(div, anchor);
      }
      var grid = div.querySelector(".grid"), have = {};
      grid.querySelectorAll("figure").forEach(function (f) { have[f.dataset.step] = f; });
      var prev = null;
      steps.forEach(function (s, i) {
        var fig = have[s.step];
        if (!fig) {
          fig = figure(doc, s, field, fi === 0);
          fig.classList.add("new");
          grid.insertBefore(fig, prev ? prev.nextSibling : grid.firstChild);
        }
        updateFigure(doc, fig, s, field, i, steps);
        prev = fig;
      });
    });
  }
  function renderSteps(section, doc) {
    var nav = section.querySelector("nav.steps .links");
    if (!nav) return;
    var want = (doc.steps || []).map(function (s) { return s.step; }).join(" ");
    if (nav.dataset.want === want) return;
    nav.textContent = "";
    (doc.steps || []).forEach(function (s, i) {
      if (i) nav.appendChild(document.createTextNode(" "));
      nav.appendChild(h("a", { href: "#d" + doc.date + "-" + s.step }, s.step));
    });
    nav.dataset.want = want;
  }
  function renderDay(section, doc) {
    var steps = doc.steps || [];
    section.querySelector("p.counts").replaceWith(countsBlock(doc));
    section.querySelector("p.latency-summary").textContent = summaryText(steps);
    section.querySelector("div.failures").replaceWith(failuresBlock(doc.failed || []));
    renderSteps(section, doc);
    renderFields(section, doc);
    var old = section.querySelector("details.latency");
    if (old) old.replaceWith(latencyBlock(steps, old.open));
  }
  function ensureSection(date) {
    var section = document.getElementById("d" + date);
    if (section) return section;
    var dir = folder(date);
    section = h("section", { class: "day", id: "d" + date, "data-date": date, "data-index": dir + "/index.json" },
      h("h2", {}, "Cycle " + pretty(date) + " (00Z)"), countsBlock({ date: date, steps: [] }),
      h("p", { class: "latency-summary" }, summaryText([])), failuresBlock([]),
      h("p", { class: "nostats" }, "No region statistics for this day."),
      h("nav", { class: "steps" }, "Steps: ", h("span", { class: "links" })), latencyBlock([], false));
    var main = document.getElementById("days");
    main.insertBefore(section, main.firstChild);
    var links = document.querySelector("nav.days .links");
    if (links) {
      if (!links.querySelector("a")) links.textContent = "";
      links.insertBefore(document.createTextNode(" "), links.firstChild);
      links.insertBefore(h("a", { href: "#d" + date }, pretty(date)), links.firstChild);
    }
    var none = document.querySelector("p.nodays");
    if (none) none.remove();
    return section;
  }

  // --- polling ---
  function status(text) {
    var el = document.getElementById("live-status");
    if (el) el.textContent = text;
  }
  function get(url) {
    return fetch(url, { cache: "no-cache" }).then(function (r) {
      if (!r.ok) throw new Error(url + ": HTTP " + r.status);
      return r.text();
    });
  }
  function pollIndex() {
    if (!state.date) return Promise.resolve();
    var date = state.date;
    return get(folder(date) + "/index.json").then(function (text) {
      state.polls += 1;
      document.body.dataset.live = "on";
      if (text !== state.indexText && date === state.date) {
        var doc = JSON.parse(text);
        renderDay(ensureSection(date), doc);
        renderLatest(doc);
        state.indexText = text;
        state.doc = doc;
      }
      if (state.doc) {
        status("Live: " + (state.doc.steps || []).length + " steps of " + pretty(state.doc.date) +
          ", index.json updated " + hms(state.doc.updated || state.doc.generated) + ".");
      }
    });
  }
  function refreshPlots() {
    // index.html was rewritten (days.json too): take its region-statistics plots
    return get("index.html").then(function (text) {
      var fresh = new DOMParser().parseFromString(text, "text/html");
      fresh.querySelectorAll("section.day").forEach(function (sec) {
        var mine = document.getElementById(sec.id), plot = sec.querySelector("svg.stats, p.nostats");
        var old = mine && mine.querySelector("svg.stats, p.nostats");
        if (old && plot) old.replaceWith(document.importNode(plot, true));
      });
    });
  }
  function pollDays() {
    return get("days.json").then(function (text) {
      var doc = JSON.parse(text), days = doc.days || [];
      document.body.dataset.live = "on";
      var first = state.daysUpdated === null;
      var changed = !first && doc.updated !== state.daysUpdated;
      state.daysUpdated = doc.updated;
      if (days.length && (!state.date || days[0].date > state.date)) {
        state.date = days[0].date;
        state.indexText = null;
        ensureSection(state.date);
        return pollIndex();
      }
      if (changed) return refreshPlots();
    });
  }
  function loop(fn, ms) {
    fn().catch(function (e) {
      state.errors += 1;
      status("Live updates paused: " + e.message);
    }).then(function () { setTimeout(function () { loop(fn, ms); }, ms); });
  }
  function start() {
    if (location.protocol === "file:" || !window.fetch) return; // the static page as it is
    var first = document.querySelector("section.day");
    state.date = first ? first.dataset.date : null;
    loop(pollIndex, INDEX_MS);
    loop(pollDays, DAYS_MS);
  }
  start();
})();
