// The RTOFS zoomable map (map.html): Leaflet over the dashboard service's XYZ tiles, with a
// step slider and play, cycle, field and colormap selects, a legend, the series at a clicked
// point, a side-by-side compare of two steps or cycles, and live updates.
//
// The service's API, every URL relative to this page (it works under any prefix):
//   api/layers.json                      fields, colormaps, days (latest first) and their steps;
//                                        polled every 2 s, so a step appears as it lands
//   api/palette/FIELD.json?cmap=C        the legend's 240 colours, range and units
//   tiles/DATE/STEP/FIELD/z/x/y.png?cmap=C&v=VERSION
//   api/series.json?lon=&lat=&field=&date=   the point's values; 404 {"error": ...} on land
//
// Performance marks (read by benchmarks/bench_tiles_browser.py): "rtofs:step" when the map is
// asked for another step (or day, field, colormap) and the measure "rtofs:viewport" from it when
// every tile in view of that step has loaded; "rtofs:click" on a click and the measure
// "rtofs:series" from it when the series chart is drawn. window.rtofsMap is the test handle.
// No library but Leaflet (vendored under static/vendor/leaflet/).
(function () {
  "use strict";
  var POLL_MS = 2000;
  var PLAY_MS = 1000;

  // Behind the hub's login a script's request (not a page load, not an image) must carry the
  // service's "_xsrf" cookie back as a header, or JupyterHub's auth ignores the login cookie.
  function xsrf() {
    var m = document.cookie.match(/(?:^|;\s*)_xsrf=([^;]*)/);
    return m ? decodeURIComponent(m[1]) : null;
  }

  function api(url, options) {
    var opts = Object.assign({ credentials: "same-origin" }, options || {});
    var token = xsrf();
    if (token) opts.headers = Object.assign({ "X-XSRFToken": token }, opts.headers || {});
    return fetch(url, opts);
  }

  var state = {
    layers: null, layersText: null,
    date: null, step: null, field: null, cmap: null,
    compare: false, date2: null, step2: null,
    playing: false, playTimer: null, requestedAt: 0,
    point: null, seriesSeq: 0, series: null, palette: null,
    polls: 0, errors: 0
  };

  function $(id) { return document.getElementById(id); }
  function svgEl(tag, attrs) {
    var el = document.createElementNS("http://www.w3.org/2000/svg", tag);
    Object.keys(attrs || {}).forEach(function (k) { el.setAttribute(k, attrs[k]); });
    return el;
  }
  function option(value, text) {
    var o = document.createElement("option");
    o.value = value;
    o.textContent = text;
    return o;
  }
  function pretty(d) { return d.slice(0, 4) + "-" + d.slice(4, 6) + "-" + d.slice(6, 8); }
  function validText(s) { return s ? s.slice(0, 10) + " " + s.slice(11, 16) + "Z" : "—"; }
  function shortTime(s) { return s.slice(5, 10) + " " + s.slice(11, 13) + "Z"; }
  function wrapLon(lon) { return ((((lon + 180) % 360) + 360) % 360) - 180; }
  function latLon(lat, lon) {
    return Math.abs(lat).toFixed(2) + "°" + (lat < 0 ? "S" : "N") + " " +
      Math.abs(lon).toFixed(2) + "°" + (lon < 0 ? "W" : "E");
  }
  function setStatus(text, error) {
    var el = $("status");
    el.textContent = text;
    el.className = error ? "status error" : "status";
  }
  function fmt(v) {
    if (v === null || v === undefined) return "—";
    var a = Math.abs(v);
    return a >= 100 ? v.toFixed(0) : a >= 10 ? v.toFixed(1) : v.toFixed(2);
  }

  // --- the layers document ---
  function days() { return state.layers ? state.layers.days : []; }
  function dayOf(date) {
    var d = days().filter(function (x) { return x.date === date; });
    return d.length ? d[0] : null;
  }
  function stepsOf(date) { var d = dayOf(date); return d ? d.steps : []; }
  function indexOf(date, step) {
    var steps = stepsOf(date);
    for (var i = 0; i < steps.length; i++) if (steps[i].step === step) return i;
    return -1;
  }
  function stepEntry(date, step) {
    var i = indexOf(date, step);
    return i < 0 ? null : stepsOf(date)[i];
  }
  function lastStep(date) { var s = stepsOf(date); return s.length ? s[s.length - 1].step : null; }
  function onLatest() {
    var d = days();
    return !d.length || (state.date === d[0].date && state.step === lastStep(d[0].date));
  }
  function tileUrl(date, step) {
    var e = stepEntry(date, step);
    if (!e) return null;
    return "tiles/" + date + "/" + step + "/" + encodeURIComponent(state.field) +
      "/{z}/{x}/{y}.png?cmap=" + encodeURIComponent(state.cmap) +
      "&v=" + encodeURIComponent(e.version || "");
  }

  // --- one map's tiles: the next step's layer loads above the shown one, which goes once
  // every tile of the next in view has loaded (no blank map between steps) ---
  function Tiles(map, name, onLoad) {
    this.map = map;
    this.name = name;
    this.shown = null;
    this.next = null;
    this.url = null;
    this.onLoad = onLoad;
  }
  Tiles.prototype.show = function (url) {
    if (url === this.url) return false;
    this.url = url;
    if (this.next) this.map.removeLayer(this.next);
    this.next = null;
    if (!url) {
      if (this.shown) this.map.removeLayer(this.shown);
      this.shown = null;
      return true;
    }
    var layer = L.tileLayer(url, tileOptions());
    var self = this;
    var failed = 0;
    document.body.dataset[this.name] = "loading";
    // A tile the service refuses (a field the day's files lack, a damaged file) is blank:
    // the service's message is shown instead.
    layer.on("tileerror", function (e) {
      if (failed++ || self.layer() !== layer) return;
      api(e.tile.src).then(function (r) { return r.ok ? "" : r.text(); }).then(function (text) {
        if (text && self.layer() === layer) tileError(text);
      }).catch(function () {});
    });
    layer.once("load", function () {
      if (self.next !== layer) return;
      if (self.shown) self.map.removeLayer(self.shown);
      self.shown = layer;
      self.next = null;
      if (!failed) tileError("");
      document.body.dataset[self.name] = "loaded";
      if (self.onLoad) self.onLoad(url);
    });
    this.next = layer;
    layer.addTo(this.map);
    return true;
  };
  Tiles.prototype.layer = function () { return this.next || this.shown; };

  function tileError(text) {
    var el = $("tile-error");
    el.textContent = text;
    el.hidden = !text;
  }

  function tileOptions() {
    var max = state.layers.max_zoom;
    return {
      tileSize: state.layers.tile_size || 256,
      maxNativeZoom: max,
      maxZoom: max + 3,
      updateWhenZooming: false,
      keepBuffer: 1,
      attribution: "RTOFS (NOAA/NCEP), nearest grid cell"
    };
  }

  // --- maps ---
  function makeMap(id) {
    return L.map(id, {
      crs: L.CRS.EPSG3857,
      worldCopyJump: true,
      center: [20, -30],
      zoom: 2,
      minZoom: 1,
      maxZoom: 8,
      fadeAnimation: false
    });
  }
  var map = makeMap("map");
  var map2 = null;
  var marker = null;
  var marker2 = null;
  var tiles = new Tiles(map, "tiles", function () {
    performance.measure("rtofs:viewport", "rtofs:step");
    document.body.dataset.step = state.step;
    document.body.dataset.date = state.date;
    if (state.playing) schedulePlay();
  });
  var tiles2 = null;
  map.on("click", onMapClick);

  function showMain() {
    var url = tileUrl(state.date, state.step);
    if (url !== tiles.url) {
      performance.mark("rtofs:step");
      state.requestedAt = performance.now();
    }
    tiles.show(url);
    var e = stepEntry(state.date, state.step);
    $("valid").textContent = e
      ? "Valid " + validText(e.valid_time) + " · " + e.step + " · cycle " + pretty(state.date)
      : "No steps yet";
    var steps = stepsOf(state.date);
    var slider = $("step");
    slider.max = Math.max(0, steps.length - 1);
    slider.value = Math.max(0, indexOf(state.date, state.step));
    slider.disabled = steps.length < 2;
    slider.setAttribute("aria-valuetext", e ? e.step + ", valid " + validText(e.valid_time) : "");
    $("day").value = state.date || "";
    $("field").value = state.field || "";
    $("cmap").value = state.cmap || "";
    if (state.series) drawSeries(state.series);  // the dashed line follows the shown step
    writeHash();
    $("label1").textContent = e ? e.step + " · " + validText(e.valid_time) : "";
    $("label1").hidden = !state.compare;
    if (state.compare) showCompare();
  }

  function showCompare() {
    if (!tiles2) return;
    tiles2.show(tileUrl(state.date2, state.step2));
    $("day2").value = state.date2 || "";
    fillSteps2();
  }

  // --- controls ---
  function fillDays() {
    [$("day"), $("day2")].forEach(function (sel) {
      var keep = sel.value;
      var want = days().map(function (d) { return d.date; }).join(",");
      if (sel.dataset.days !== want) {
        sel.textContent = "";
        days().forEach(function (d, i) {
          sel.appendChild(option(d.date, pretty(d.date) + (i === 0 ? " (latest)" : "")));
        });
        sel.dataset.days = want;
      }
      sel.value = keep;
    });
  }
  function fillSteps2() {
    var sel = $("step2");
    var want = state.date2 + ":" + stepsOf(state.date2).map(function (s) { return s.step; }).join(",");
    if (sel.dataset.steps !== want) {
      sel.textContent = "";
      stepsOf(state.date2).forEach(function (s) {
        sel.appendChild(option(s.step, s.step + " · " + validText(s.valid_time)));
      });
      sel.dataset.steps = want;
    }
    sel.value = state.step2 || "";
  }
  function fillFields() {
    var fields = state.layers.fields;
    var sel = $("field");
    sel.textContent = "";
    Object.keys(fields).forEach(function (f) { sel.appendChild(option(f, fields[f].title || f)); });
    var cm = $("cmap");
    cm.textContent = "";
    (state.layers.cmaps || []).forEach(function (c) { cm.appendChild(option(c, c)); });
  }

  function setStep(i) {
    var steps = stepsOf(state.date);
    if (!steps.length) return;
    i = Math.max(0, Math.min(steps.length - 1, Math.round(Number(i))));
    state.step = steps[i].step;
    showMain();
  }
  function setDay(date) {
    if (!dayOf(date)) throw new Error("no cycle " + date + " in layers.json");
    state.date = date;
    if (indexOf(date, state.step) < 0) state.step = lastStep(date);
    showMain();
    refreshSeries();
  }
  function setField(f) {
    var fields = state.layers.fields;
    if (!(f in fields)) throw new Error("no field " + f + "; fields: " + Object.keys(fields).join(", "));
    state.field = f;
    state.cmap = fields[f].cmap;
    showMain();
    loadLegend();
    refreshSeries();
  }
  function setCmap(c) {
    state.cmap = c;
    showMain();
    loadLegend();
  }

  // --- play: about one step a second, each step's tiles loaded before the next ---
  function setPlaying(on) {
    state.playing = on;
    var b = $("play");
    b.textContent = on ? "❚❚ Pause" : "▶ Play";
    b.setAttribute("aria-pressed", on ? "true" : "false");
    clearTimeout(state.playTimer);
    if (on && !tiles.next) schedulePlay();
  }
  function nextIndex() {
    return (indexOf(state.date, state.step) + 1) % Math.max(1, stepsOf(state.date).length);
  }
  function schedulePlay() {
    clearTimeout(state.playTimer);
    prefetch(stepsOf(state.date)[nextIndex()]);
    var wait = Math.max(0, PLAY_MS - (performance.now() - state.requestedAt));
    state.playTimer = setTimeout(function () {
      if (state.playing) setStep(nextIndex());
    }, wait);
  }
  // While playing, the tiles in view of the next step are fetched during the current step's
  // second (the tile URLs carry the file's version: the browser keeps them).
  function prefetch(entry) {
    var layer = tiles.shown;
    if (!entry || !layer || entry.step === state.step) return;
    var now = tiles.url, next = tileUrl(state.date, entry.step);
    var head = now.slice(0, now.indexOf("{z}")), tail = now.slice(now.indexOf("{y}") + 3);
    var nextHead = next.slice(0, next.indexOf("{z}")), nextTail = next.slice(next.indexOf("{y}") + 3);
    var imgs = layer.getContainer() ? layer.getContainer().querySelectorAll("img") : [];
    Array.prototype.forEach.call(imgs, function (img) {
      var src = img.getAttribute("src") || "";
      if (src.indexOf(head) !== 0) return;
      new Image().src = nextHead + src.slice(head.length, src.length - tail.length) + nextTail;
    });
  }

  // --- legend ---
  var palettes = {};
  function loadLegend() {
    var key = state.field + "|" + state.cmap;
    var got = palettes[key]
      ? Promise.resolve(palettes[key])
      : api("api/palette/" + encodeURIComponent(state.field) + ".json?cmap=" +
              encodeURIComponent(state.cmap)).then(function (r) {
        if (!r.ok) throw new Error("palette " + key + ": HTTP " + r.status);
        return r.json();
      });
    return got.then(function (p) {
      palettes[key] = p;
      if (key !== state.field + "|" + state.cmap) return;
      state.palette = p;
      var n = p.colors.length;
      var stops = [];
      for (var i = 0; i < n; i += 4) stops.push(p.colors[i] + " " + (100 * i / (n - 1)).toFixed(2) + "%");
      stops.push(p.colors[n - 1] + " 100%");
      $("legend-bar").style.background = "linear-gradient(to right, " + stops.join(", ") + ")";
      $("legend-title").textContent = (state.layers.fields[p.field] || {}).title || p.field;
      $("legend-min").textContent = fmt(p.range[0]);
      $("legend-max").textContent = fmt(p.range[1]);
      $("legend-units").textContent = p.units;
      $("legend-land").style.background = p.land;
      document.body.dataset.legend = key;
    }).catch(function (err) { setStatus(String(err.message || err), true); });
  }

  // --- the series at a clicked point ---
  function onMapClick(e) {
    performance.mark("rtofs:click");
    state.point = { lat: e.latlng.lat, lon: wrapLon(e.latlng.lng) };
    var ll = [state.point.lat, e.latlng.lng];
    var style = { radius: 6, color: "#c05000", weight: 2, fillColor: "#fff", fillOpacity: 0.8 };
    if (marker) marker.setLatLng(ll); else marker = L.circleMarker(ll, style).addTo(map);
    if (map2) {
      if (marker2) marker2.setLatLng(ll); else marker2 = L.circleMarker(ll, style).addTo(map2);
    }
    loadSeries(true);
  }
  function refreshSeries() { if (state.point) loadSeries(false); }
  function loadSeries(clicked) {
    var seq = ++state.seriesSeq;
    var p = state.point;
    var url = "api/series.json?lon=" + p.lon.toFixed(4) + "&lat=" + p.lat.toFixed(4) +
      "&field=" + encodeURIComponent(state.field) + "&date=" + encodeURIComponent(state.date);
    $("series-hint").hidden = true;
    $("series-where").textContent = "Loading the series at " + p.lon.toFixed(2) + "°, " + p.lat.toFixed(2) + "°…";
    document.body.dataset.series = "loading";
    api(url).then(function (r) {
      return r.json().then(function (body) { return { ok: r.ok, status: r.status, body: body }; },
        function () { return { ok: false, status: r.status, body: {} }; });
    }).then(function (res) {
      if (seq !== state.seriesSeq) return;
      if (!res.ok) {
        seriesError(res.body.error || "HTTP " + res.status + " for the series");
        return;
      }
      state.series = res.body;
      drawSeries(res.body);
      if (clicked) performance.measure("rtofs:series", "rtofs:click");
      document.body.dataset.series = "drawn";
    }).catch(function (err) {
      if (seq === state.seriesSeq) seriesError(String(err.message || err));
    });
  }
  function seriesError(text) {
    state.series = null;
    $("series-where").textContent = "";
    $("series-chart").textContent = "";
    var el = $("series-error");
    el.textContent = text;
    el.hidden = false;
    document.body.dataset.series = "error";
  }

  // An inline SVG line chart: value against valid time, a gap at each null, the shown step
  // marked with a dashed line.
  function drawSeries(doc) {
    $("series-error").hidden = true;
    var c = doc.cell || {};
    var e = stepEntry(state.date, state.step);
    var now = e ? doc.points.filter(function (p) { return p.valid_time === e.valid_time; })[0] : null;
    $("series-where").textContent = "Grid cell j " + c.j + ", i " + c.i + " at " +
      latLon(c.lat, c.lon) + " (clicked " + latLon(doc.lat, doc.lon) + ") · from the " +
      doc.source + " · " + doc.points.length + " points" +
      (now ? " · " + e.step + ": " + fmt(now.value) + " " + (doc.units || "") : "");
    var W = 290, H = 190, left = 42, right = 8, top = 10, bottom = 34;
    var pts = doc.points.map(function (p) { return { t: Date.parse(p.valid_time), v: p.value, s: p.valid_time }; });
    var vals = pts.filter(function (p) { return p.v !== null && p.v !== undefined; })
      .map(function (p) { return p.v; });
    var t0 = Math.min.apply(null, pts.map(function (p) { return p.t; }));
    var t1 = Math.max.apply(null, pts.map(function (p) { return p.t; }));
    var v0 = vals.length ? Math.min.apply(null, vals) : 0;
    var v1 = vals.length ? Math.max.apply(null, vals) : 1;
    if (v1 - v0 < 1e-6) { v0 -= 0.5; v1 += 0.5; }
    if (t1 === t0) { t0 -= 3600e3; t1 += 3600e3; }
    var x = function (t) { return left + (W - left - right) * (t - t0) / (t1 - t0); };
    var y = function (v) { return top + (H - top - bottom) * (v1 - v) / (v1 - v0); };
    var svg = svgEl("svg", { viewBox: "0 0 " + W + " " + H, "class": "chart", role: "img",
      "data-points": pts.length, "aria-label": doc.field + " series, " + pts.length + " points" });
    svg.appendChild(svgEl("line", { "class": "axis", x1: left, y1: H - bottom, x2: W - right, y2: H - bottom }));
    svg.appendChild(svgEl("line", { "class": "axis", x1: left, y1: top, x2: left, y2: H - bottom }));
    function label(text, ax, ay, anchor) {
      var t = svgEl("text", { x: ax, y: ay, "text-anchor": anchor });
      t.textContent = text;
      svg.appendChild(t);
    }
    label(fmt(v1), left - 4, top + 8, "end");
    label(fmt(v0), left - 4, H - bottom, "end");
    label(doc.units || "", left - 4, (top + H - bottom) / 2, "end");
    if (pts.length) {
      label(shortTime(pts[0].s), left, H - bottom + 14, "start");
      label(shortTime(pts[pts.length - 1].s), W - right, H - bottom + 14, "end");
    }
    if (e) {
      var tn = Date.parse(e.valid_time);
      if (tn >= t0 && tn <= t1) {
        svg.appendChild(svgEl("line", { "class": "now", x1: x(tn), y1: top, x2: x(tn), y2: H - bottom }));
      }
    }
    var d = "", pen = "M";
    pts.forEach(function (p) {
      if (p.v === null || p.v === undefined) { pen = "M"; return; }
      d += pen + x(p.t).toFixed(1) + " " + y(p.v).toFixed(1) + " ";
      pen = "L";
    });
    if (d) svg.appendChild(svgEl("path", { "class": "line", d: d }));
    pts.forEach(function (p) {
      if (p.v === null || p.v === undefined) return;
      var dot = svgEl("circle", { "class": "pt", cx: x(p.t).toFixed(1), cy: y(p.v).toFixed(1), r: 2.5 });
      var tip = svgEl("title");
      tip.textContent = validText(p.s) + ": " + fmt(p.v) + " " + (doc.units || "");
      dot.appendChild(tip);
      svg.appendChild(dot);
    });
    label("valid time (UTC)", (left + W - right) / 2, H - 4, "middle");
    var box = $("series-chart");
    box.textContent = "";
    box.appendChild(svg);
  }

  // --- compare: a second map beside the first, pan and zoom kept in step ---
  function setCompare(on) {
    state.compare = !!on;
    $("compare").checked = state.compare;
    $("pane2").hidden = !state.compare;
    $("label1").hidden = !state.compare;
    if (state.compare && !map2) {
      map2 = makeMap("map2");
      map2.setMaxZoom(state.layers ? state.layers.max_zoom + 3 : 8);
      tiles2 = new Tiles(map2, "tiles2", function () {
        document.body.dataset.step2 = state.step2;
        document.body.dataset.date2 = state.date2;
      });
      map2.on("click", onMapClick);
      sync(map, map2);
      sync(map2, map);
      if (marker) marker2 = L.circleMarker(marker.getLatLng(), marker.options).addTo(map2);
    }
    map.invalidateSize(false);
    if (state.compare) {
      map2.invalidateSize(false);
      map2.setView(map.getCenter(), map.getZoom(), { animate: false });
      if (!state.date2) pickCompared();
      fillDays();
      showCompare();
    }
  }
  // By default the step before the shown one (or after it), else the same step a cycle earlier.
  function pickCompared() {
    var steps = stepsOf(state.date);
    var i = indexOf(state.date, state.step);
    if (steps.length > 1) {
      state.date2 = state.date;
      state.step2 = steps[i > 0 ? i - 1 : i + 1].step;
      return;
    }
    var d = days();
    var other = d.filter(function (x) { return x.date !== state.date; });
    state.date2 = other.length ? other[0].date : state.date;
    state.step2 = indexOf(state.date2, state.step) >= 0 ? state.step : lastStep(state.date2);
  }
  function setCompared(date, step) {
    if (!dayOf(date)) throw new Error("no cycle " + date + " in layers.json");
    state.date2 = date;
    state.step2 = indexOf(date, step) >= 0 ? step : lastStep(date);
    showCompare();
  }
  var syncing = false;
  function sync(from, to) {
    from.on("move zoomend", function () {
      if (syncing || !state.compare) return;
      syncing = true;
      to.setView(from.getCenter(), from.getZoom(), { animate: false });
      syncing = false;
    });
  }

  // --- live: layers.json every 2 s ---
  function applyLayers(doc, text) {
    var first = !state.layers;
    var follow = first || onLatest();
    doc.days = (doc.days || []).filter(function (d) { return d.steps && d.steps.length; });
    state.layers = doc;
    state.layersText = text;
    var linked = null;
    if (first) {
      fillFields();
      map.setMaxZoom(doc.max_zoom + 3);
      state.field = "sst" in doc.fields ? "sst" : Object.keys(doc.fields)[0];
      state.cmap = doc.fields[state.field].cmap;
      linked = readHash();
      loadLegend();
    }
    fillDays();
    if (!doc.days.length) {
      state.date = state.step = null;
    } else if (linked && indexOf(linked.date, linked.step) >= 0) {
      state.date = linked.date;
      state.step = linked.step;
    } else if (follow || !dayOf(state.date)) {
      state.date = doc.days[0].date;
      state.step = lastStep(state.date);
    } else if (indexOf(state.date, state.step) < 0) {
      state.step = lastStep(state.date);
    }
    if (state.compare && (!dayOf(state.date2) || indexOf(state.date2, state.step2) < 0)) pickCompared();
    showMain();
    document.body.dataset.steps = stepsOf(state.date).length;
    document.body.dataset.days = doc.days.length;
  }
  // --- the view in the address, #DATE/STEP/FIELD/CMAP/ZOOM/LAT/LON: a link opens the same map
  // (without one, or with a step no longer listed, the latest step) ---
  function readHash() {
    var p = location.hash.replace(/^#/, "").split("/").map(decodeURIComponent);
    if (p.length !== 7) return null;
    var fields = state.layers.fields;
    if (p[2] in fields) {
      state.field = p[2];
      state.cmap = (state.layers.cmaps || []).indexOf(p[3]) >= 0 ? p[3] : fields[p[2]].cmap;
    }
    var z = Number(p[4]), lat = Number(p[5]), lon = Number(p[6]);
    if (isFinite(z) && isFinite(lat) && isFinite(lon)) map.setView([lat, lon], z, { animate: false });
    return { date: p[0], step: p[1] };
  }
  function writeHash() {
    if (!state.date) return;
    var c = map.getCenter();
    var parts = [state.date, state.step, state.field, state.cmap, map.getZoom(),
      c.lat.toFixed(3), wrapLon(c.lng).toFixed(3)];
    history.replaceState(null, "", "#" + parts.map(encodeURIComponent).join("/"));
  }
  map.on("moveend", writeHash);

  function poll() {
    api("api/layers.json", { cache: "no-store" }).then(function (r) {
      if (!r.ok) throw new Error("api/layers.json: HTTP " + r.status);
      return r.text();
    }).then(function (text) {
      state.polls++;
      if (text !== state.layersText) applyLayers(JSON.parse(text), text);
      var n = days().length;
      setStatus(n ? "Live · " + n + " cycle" + (n > 1 ? "s" : "") + " · checked " +
                new Date().toISOString().slice(11, 19) + "Z"
        : "No complete files in the archive yet: this page shows them as they land.");
      document.body.dataset.live = "on";
    }).catch(function (err) {
      state.errors++;
      setStatus(String(err.message || err) + " (retrying every 2 s)", true);
    }).then(function () { setTimeout(poll, POLL_MS); });
  }

  // --- wiring ---
  $("step").addEventListener("input", function (e) { setStep(e.target.value); });
  $("day").addEventListener("change", function (e) { setDay(e.target.value); });
  $("field").addEventListener("change", function (e) { setField(e.target.value); });
  $("cmap").addEventListener("change", function (e) { setCmap(e.target.value); });
  $("play").addEventListener("click", function () { setPlaying(!state.playing); });
  $("compare").addEventListener("change", function (e) { setCompare(e.target.checked); });
  $("day2").addEventListener("change", function (e) { setCompared(e.target.value, state.step2); });
  $("step2").addEventListener("change", function (e) { setCompared(state.date2, e.target.value); });

  window.rtofsMap = {
    map: map,
    map2: function () { return map2; },
    state: state,
    setStep: setStep,
    setDay: setDay,
    setField: setField,
    setCmap: setCmap,
    setPlaying: setPlaying,
    setCompare: setCompare,
    setCompared: setCompared,
    steps: function () { return stepsOf(state.date).slice(); },
    days: function () { return days().map(function (d) { return d.date; }); },
    layer: function () { return tiles.layer(); },
    layer2: function () { return tiles2 ? tiles2.layer() : null; },
    tileUrl: function () { return tiles.url; },
    tileUrl2: function () { return tiles2 ? tiles2.url : null; },
    palette: function () { return state.palette; },
    // A click at (lat, lon) as if by the mouse (the benchmark and tests use it).
    clickAt: function (lat, lon) { map.fire("click", { latlng: L.latLng(lat, lon) }); }
  };
  poll();
})();
