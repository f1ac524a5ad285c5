/**
 * The sweep report as one self-contained HTML file: styles, the chart library and the page's
 * script inlined, the data as one JSON blob. It opens from disk with no network.
 *
 * Charts are Apache ECharts: its parallel-coordinates series has range brushing on every axis
 * built in (drag along an axis), which the parameter view needs, and its `lines` series draws a
 * thousand learning curves as one series, which keeps a large sweep's page quick to open.
 */
import { TOP, type ReportData } from './model.ts';

/** Text safe inside an HTML element or a double-quoted attribute. */
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/**
 * JSON safe inside a <script> element: no `<` at all (so no `</script` and no `<!--`), and the
 * two line separators JavaScript once refused in strings.
 */
export function scriptJson(value: unknown): string {
  return JSON.stringify(value).replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
}

/** Script source safe inside a <script> element. */
export function inlineScript(source: string): string {
  return source.replace(/<\/(script)/gi, '<\\/$1').replace(/<!--/g, '<\\!--');
}

const STYLE = `
:root { --fg:#1d2330; --muted:#5d6675; --line:#d9dde3; --bg:#fff; --soft:#f5f7fa; --bad:#c0392b; --ok:#2e7d32; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); margin: 0; }
header { padding: 18px 28px 8px; border-bottom: 1px solid var(--line); }
header h1 { margin: 0 0 4px; font-size: 22px; }
header .meta { color: var(--muted); }
main { padding: 0 28px 40px; max-width: 1400px; }
section { margin-top: 26px; }
h2 { font-size: 17px; margin: 0 0 8px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
.note { color: var(--muted); font-size: 13px; margin: 4px 0 8px; }
.chart { width: 100%; height: 360px; }
.chart.small { height: 260px; }
.chart.tall { height: 420px; }
.grid2 { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 14px; }
.grid3 { display: grid; grid-template-columns: repeat(auto-fit, minmax(320px, 1fr)); gap: 12px; }
.counts span { display: inline-block; margin: 0 6px 6px 0; padding: 2px 9px; border-radius: 10px; background: var(--soft); border: 1px solid var(--line); }
.counts b { font-variant-numeric: tabular-nums; }
pre.spec { background: var(--soft); border: 1px solid var(--line); padding: 10px; overflow: auto; max-height: 380px; font-size: 12.5px; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { padding: 4px 8px; border-bottom: 1px solid var(--line); text-align: left; white-space: nowrap; }
th { background: var(--soft); position: sticky; top: 0; cursor: pointer; user-select: none; }
th.sorted-asc::after { content: " \\25B2"; font-size: 10px; }
th.sorted-desc::after { content: " \\25BC"; font-size: 10px; }
td.num { text-align: right; }
tr.top td:first-child { font-weight: 600; }
.table-wrap { max-height: 560px; overflow: auto; border: 1px solid var(--line); }
.table-wrap.compact { display: inline-block; max-width: 100%; }
.table-wrap.compact table { width: auto; min-width: 420px; }
.filters { margin: 6px 0; display: flex; gap: 10px; align-items: center; }
.filters input { padding: 4px 8px; width: 280px; }
.st-finished { color: var(--ok); } .st-failed, .st-diverged { color: var(--bad); } .st-stopped { color: #b26a00; } .st-running { color: #1565c0; }
.failure { border-left: 3px solid var(--bad); padding: 4px 10px; margin: 8px 0; background: #fdf3f2; }
.failure pre { margin: 4px 0 0; white-space: pre-wrap; font-size: 12px; max-height: 160px; overflow: auto; }
.captchas { display: grid; grid-template-columns: repeat(auto-fill, minmax(210px, 1fr)); gap: 10px; }
.captcha { border: 1px solid var(--line); padding: 5px; background: var(--soft); }
.captcha img { width: 200px; height: 60px; display: block; image-rendering: pixelated; }
.captcha .read { font: 15px ui-monospace, Menlo, Consolas, monospace; letter-spacing: 2px; margin-top: 3px; }
.captcha .read .wrong { color: #fff; background: var(--bad); border-radius: 2px; margin: 0 1px; padding: 0 1px; }
.captcha .label { color: var(--muted); font-size: 12px; }
`;

/** The page's own script: draws every chart and the table from the JSON blob. Plain ES2020. */
const PAGE_SCRIPT = String.raw`
(function () {
  'use strict';
  var t0 = performance.now();
  var D = JSON.parse(document.getElementById('report-data').textContent);
  var charts = {};
  var STATUS_COLORS = { finished: '#2e7d32', running: '#1565c0', failed: '#c0392b', diverged: '#8e24aa', stopped: '#ef6c00', cancelled: '#90a4ae', queued: '#b0bec5' };
  var TOP_COLORS = ['#d62728', '#1f77b4', '#2ca02c', '#9467bd', '#ff7f0e'];
  var X_MARK = 'path://M0,0 L10,10 M10,0 L0,10 M0,0 L1,0 L10,9 L10,10 L9,10 L0,1 Z M10,0 L10,1 L1,10 L0,10 L0,9 L9,0 Z';
  var big = D.trials.length > 200;

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    if (attrs) for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function fmt(v, digits) {
    if (v === null || v === undefined) return '';
    if (typeof v !== 'number') return String(v);
    if (Number.isInteger(v)) return String(v);
    return String(+v.toPrecision(digits || 4));
  }
  function seconds(s) {
    if (s === null || s === undefined) return '';
    if (s < 90) return s.toFixed(0) + ' s';
    if (s < 5400) return (s / 60).toFixed(1) + ' min';
    return (s / 3600).toFixed(1) + ' h';
  }
  function time(ms) { return ms === null ? '' : new Date(ms).toISOString().replace('T', ' ').slice(0, 19) + 'Z'; }
  var timings = {};
  // A chart drawn again (live updates) keeps its axes' state (a brushed range) and gets its
  // series replaced.
  function chart(id, option) {
    var s = performance.now();
    var c = charts[id];
    if (c) c.setOption(option, { replaceMerge: ['series'] });
    else {
      c = echarts.init(document.getElementById(id), null, { renderer: 'canvas' });
      c.setOption(option);
      charts[id] = c;
    }
    timings[id] = Math.round(performance.now() - s);
    return c;
  }
  function clear(node) { node.textContent = ''; return node; }
  // Charts are drawn after the rest of the page: those in view first, then the others in a
  // task of their own, so the first screen is painted before the charts below it are drawn.
  var pending = [];
  function later(draw, id) { pending.push({ draw: draw, id: id }); }
  function niceFloor(v) { var p = Math.pow(10, Math.floor(Math.log10(Math.abs(v) || 1)) - 1); return Math.floor(v / p) * p; }
  function niceCeil(v) { var p = Math.pow(10, Math.floor(Math.log10(Math.abs(v) || 1)) - 1); return Math.ceil(v / p) * p; }
  function noteIf(id, shown, text) { var n = document.getElementById(id); n.textContent = text; n.hidden = !shown; }

  // 1. definition, counts, timeline --------------------------------------------------------
  function drawCounts() {
  var counts = clear(document.getElementById('counts'));
  Object.keys(D.counts).forEach(function (s) {
    if (!D.counts[s] && ['queued', 'running', 'finished', 'failed', 'stopped'].indexOf(s) < 0) return;
    var span = el('span', { 'class': 'st-' + s });
    span.appendChild(document.createTextNode(s + ' '));
    span.appendChild(el('b', null, D.counts[s]));
    counts.appendChild(span);
  });
  }
  drawCounts();
  document.getElementById('spec').textContent = D.sweep.specText;

  // One thick segment per trial; one lines series per status, each drawn as one path.
  function drawTimeline() {
  var tl = D.timeline;
  var laneWidth = Math.max(2, Math.min(18, 200 / Math.max(1, tl.workers.length)));
  var byStatus = {};
  tl.bars.forEach(function (b) {
    var y = tl.workers.indexOf(b.worker);
    (byStatus[b.status] = byStatus[b.status] || []).push({ coords: [[b.start, y], [Math.max(b.end, b.start + 1000), y]], bar: b });
  });
  chart('chart-timeline', {
    animation: false,
    tooltip: { formatter: function (p) { var b = p.data.bar; return '#' + b.index + ' ' + b.status + '<br>' + b.worker + '<br>' + time(b.start) + ' .. ' + (b.open ? 'now' : time(b.end)); } },
    legend: { top: 0, data: Object.keys(byStatus) },
    grid: { left: 140, right: 30, top: 28, bottom: 40 },
    // lines series add nothing to an axis's extent: it is given.
    xAxis: { type: 'time', min: tl.bars.length ? Math.min.apply(null, tl.bars.map(function (b) { return b.start; })) : undefined, max: tl.bars.length ? Math.max.apply(null, tl.bars.map(function (b) { return Math.max(b.end, b.start + 1000); })) : undefined },
    yAxis: { type: 'category', data: tl.workers, axisLabel: { width: 130, overflow: 'truncate' } },
    series: Object.keys(byStatus).map(function (s) {
      return { type: 'lines', coordinateSystem: 'cartesian2d', name: s, data: byStatus[s], large: true, largeThreshold: 300,
        lineStyle: { color: STATUS_COLORS[s] || '#888', width: laneWidth, opacity: 0.9, cap: 'butt' }, itemStyle: { color: STATUS_COLORS[s] || '#888' } };
    })
  });
  noteIf('timeline-note', tl.bars.length === 0, 'No trial has started yet.');
  }
  later(drawTimeline, 'chart-timeline');

  // 2. parallel coordinates ----------------------------------------------------------------
  var metricName = D.metric.name;
  function drawParallel() {
  var scored = D.trials.filter(function (t) { return t.best !== null; });
  var paxes = D.axes.map(function (a, i) {
    var ax = { dim: i, name: a.name, type: a.kind === 'category' ? 'category' : (a.log ? 'log' : 'value') };
    if (a.kind === 'category') ax.data = a.categories;
    return ax;
  });
  paxes.push({ dim: D.axes.length, name: metricName, type: 'value', nameTextStyle: { fontWeight: 'bold' } });
  var mvals = scored.map(function (t) { return t.best; });
  chart('chart-parallel', {
    animation: false,
    parallel: { left: 60, right: 90, top: 40, bottom: 30, parallelAxisDefault: { nameLocation: 'end', nameGap: 14, areaSelectStyle: { width: 18 } } },
    parallelAxis: paxes,
    visualMap: mvals.length ? { type: 'continuous', dimension: D.axes.length, min: Math.min.apply(null, mvals), max: Math.max.apply(null, mvals), right: 0, top: 40, calculable: true, inRange: { color: D.metric.goal === 'maximize' ? ['#c6dbef', '#08306b'] : ['#08306b', '#c6dbef'] }, text: ['', ''], itemHeight: 140 } : undefined,
    tooltip: { trigger: 'item', formatter: function (p) { return '#' + p.data.index + '  ' + metricName + ' ' + fmt(p.data.value[D.axes.length]); } },
    series: [{
      type: 'parallel', name: 'trials', lineStyle: { width: big ? 0.6 : 1.5, opacity: big ? 0.35 : 0.8 },
      inactiveOpacity: 0.03, activeOpacity: 1, progressive: 0, smooth: false,
      data: scored.map(function (t) {
        var v = D.axes.map(function (a) { var x = t.params[a.name]; return x === null ? null : (a.kind === 'category' ? String(x) : x); });
        v.push(t.best);
        return { value: v, index: t.index };
      })
    }]
  });
  noteIf('parallel-note', scored.length === 0, 'No trial has a value of ' + metricName + ' yet.');
  }
  later(drawParallel, 'chart-parallel');

  // 3. the metric against each parameter ------------------------------------------------------
  function drawScatters() {
  var scatterBox = document.getElementById('scatters');
  var scored = D.trials.filter(function (t) { return t.best !== null; });
  D.axes.forEach(function (a, i) {
    var id = 'chart-scatter-' + i;
    if (!document.getElementById(id)) {
      var wrap = el('div');
      wrap.appendChild(el('div', { id: id, 'class': 'chart small', 'data-chart': 'scatter' }));
      scatterBox.appendChild(wrap);
    }
    var x = a.kind === 'category' ? { type: 'category', data: a.categories, name: a.name } : { type: a.log ? 'log' : 'value', name: a.name, scale: true };
    x.nameLocation = 'middle'; x.nameGap = 26;
    chart(id, {
      animation: false,
      grid: { left: 56, right: 16, top: 24, bottom: 44 },
      title: { text: a.name + (a.log ? ' (log)' : ''), left: 'center', textStyle: { fontSize: 13 } },
      tooltip: { formatter: function (p) { return '#' + p.data[2] + '  ' + a.name + ' ' + fmt(p.data[0]) + '<br>' + metricName + ' ' + fmt(p.data[1]); } },
      xAxis: x, yAxis: { type: 'value', name: metricName, scale: true },
      series: [{
        type: 'scatter', name: 'trials', symbolSize: big ? 4 : 8, large: true, largeThreshold: 300,
        data: scored.filter(function (t) { return t.params[a.name] !== null; }).map(function (t) { var v = t.params[a.name]; return [a.kind === 'category' ? String(v) : v, t.best, t.index]; }),
        itemStyle: { opacity: 0.75 }
      }]
    });
  });
  noteIf('scatter-note', D.axes.length === 0, 'The sweep varies no parameter.');
  }
  later(drawScatters, 'scatters');

  // 4. learning curves -----------------------------------------------------------------------
  function curveOption(key, label) {
    var others = [], running = [], tops = [], stops = [], lo = Infinity, hi = -Infinity;
    D.curves.series.forEach(function (s) {
      var pts = s[key];
      if (pts.length === 0) return;
      for (var j = 0; j < pts.length; j++) { if (pts[j][1] < lo) lo = pts[j][1]; if (pts[j][1] > hi) hi = pts[j][1]; }
      var line = { name: '#' + s.index + ' ' + s.status, coords: pts.length === 1 ? [pts[0], pts[0]] : pts };
      if (s.top) tops.push(s); else if (s.status === 'running') running.push(line); else others.push(line);
      if (s.stoppedAt !== null) { var last = pts[pts.length - 1]; stops.push({ value: last, name: '#' + s.index }); }
    });
    var series = [{ type: 'lines', id: 'others', name: 'other trials', coordinateSystem: 'cartesian2d', polyline: true, silent: big, data: others,
      lineStyle: { color: '#8895a7', width: 1, opacity: others.length > 200 ? 0.18 : 0.45 }, large: true, largeThreshold: 100, progressive: 0, zlevel: 0 },
      { type: 'lines', id: 'running', name: 'running', coordinateSystem: 'cartesian2d', polyline: true, data: running,
        lineStyle: { color: STATUS_COLORS.running, width: 1.4, opacity: 0.8 }, progressive: 0, z: 4, zlevel: 1 }];
    var rank = D.trials.filter(function (t) { return t.top; }).sort(function (a, b) { return D.metric.goal === 'maximize' ? b.best - a.best : a.best - b.best; }).map(function (t) { return t.id; });
    tops.sort(function (a, b) { return rank.indexOf(a.id) - rank.indexOf(b.id); });
    tops.forEach(function (s, i) {
      series.push({ type: 'line', id: 'trial-' + s.index, name: '#' + s.index, data: s[key], showSymbol: s[key].length < 30, symbolSize: 4, lineStyle: { width: 2.2 }, color: TOP_COLORS[i % TOP_COLORS.length], z: 5, zlevel: 1 });
    });
    series.push({ type: 'scatter', id: 'stopped', name: 'stopped', data: stops, symbol: X_MARK, symbolSize: 9, itemStyle: { color: '#ef6c00' }, z: 6, zlevel: 1 });
    var b = D.curves.boundary;
    series.push({ type: 'line', id: 'boundary', name: 'GRU starts', data: [], silent: true,
      markLine: b === null ? undefined : { symbol: 'none', silent: true, lineStyle: { color: '#444', type: 'dashed' }, label: { formatter: 'GRU', position: 'insideEndTop' }, data: [{ xAxis: b }] } });
    return {
      animation: false,
      title: { text: label, left: 'center', textStyle: { fontSize: 13 } },
      legend: { top: 22, data: tops.map(function (s) { return '#' + s.index; }).concat(running.length ? ['running'] : [], stops.length ? ['stopped'] : []) },
      tooltip: { trigger: 'item', formatter: function (p) { return p.seriesId === 'others' || p.seriesId === 'running' ? p.name : (p.seriesName + '  ' + fmt(p.value[1]) + ' @ ' + p.value[0]); } },
      grid: { left: 56, right: 20, top: 56, bottom: 44 },
      xAxis: { type: 'value', name: 'iteration (pretrain epochs, then GRU epochs)', nameLocation: 'middle', nameGap: 26, min: 1, max: Math.max(1, D.curves.pretrain + D.curves.gru), minInterval: 1 },
      // The grey lines add nothing to the axis's extent: it is given, with a margin.
      yAxis: { type: 'value', scale: true, min: lo <= hi ? (lo >= 0 ? Math.max(0, niceFloor(lo - (hi - lo) * 0.04)) : niceFloor(lo - (hi - lo) * 0.04)) : undefined, max: lo <= hi ? niceCeil(hi + (hi - lo) * 0.04) : undefined },
      series: series
    };
  }
  var curveAxes = {};
  function drawCurves() {
    ['acc', 'loss'].forEach(function (key) {
      var o = curveOption(key, key === 'acc' ? 'val_seq_acc' : 'val_loss');
      curveAxes[key] = { xAxis: o.xAxis, yAxis: o.yAxis };
      chart('chart-' + key, o);
    });
    noteIf('curves-note', D.curves.series.length === 0, 'No epoch has been stored yet.');
  }
  later(drawCurves, 'chart-acc');

  // 5. accuracy by character position ---------------------------------------------------------
  function drawPositions() {
  var P = D.positions;
  var posLabels = []; for (var i = 1; i <= P.length; i++) posLabels.push(String(i));
  chart('chart-positions', {
    animation: false,
    tooltip: { trigger: 'axis' },
    legend: { top: 0 },
    grid: { left: 56, right: 20, top: 34, bottom: 40 },
    xAxis: { type: 'category', data: posLabels, name: 'character position', nameLocation: 'middle', nameGap: 26 },
    yAxis: { type: 'value', min: 0, max: 1, name: 'val accuracy' },
    series: P.series.map(function (s, i) { return { type: 'line', name: '#' + s.index, data: s.acc, color: TOP_COLORS[i % TOP_COLORS.length], symbolSize: 6 }; })
  });
  noteIf('positions-note', P.series.length === 0, 'No finished trial has stored validation predictions yet.');
  }
  later(drawPositions, 'chart-positions');

  // 6. the table -------------------------------------------------------------------------------
  var cols = [
    { key: 'index', label: '#', get: function (t) { return t.index; }, num: true },
    { key: 'status', label: 'status', get: function (t) { return t.status; } }
  ].concat(D.axes.map(function (a) { return { key: 'p:' + a.name, label: a.name, get: function (t) { return t.params[a.name]; }, num: a.kind === 'number' }; })).concat([
    { key: 'best', label: metricName, get: function (t) { return t.best; }, num: true },
    { key: 'epochs', label: 'epochs', get: function (t) { return t.epochs.pretrain + t.epochs.gru; }, show: function (t) { return t.epochs.pretrain + '+' + t.epochs.gru; }, num: true },
    { key: 'duration', label: 'duration', get: function (t) { return t.durationSeconds; }, show: function (t) { return seconds(t.durationSeconds); }, num: true },
    { key: 'worker', label: 'worker', get: function (t) { return t.worker; } },
    { key: 'attempts', label: 'attempts', get: function (t) { return t.attempts; }, num: true },
    { key: 'id', label: 'id', get: function (t) { return t.id.slice(0, 12); } }
  ]);
  var sortKey = 'best', sortDir = D.metric.goal === 'maximize' ? -1 : 1;
  var thead = document.querySelector('#trials thead'), tbody = document.querySelector('#trials tbody');
  var headRow = el('tr');
  cols.forEach(function (c) {
    var th = el('th', { 'data-key': c.key }, c.label);
    th.addEventListener('click', function () { if (sortKey === c.key) sortDir = -sortDir; else { sortKey = c.key; sortDir = 1; } renderRows(); });
    headRow.appendChild(th);
  });
  thead.appendChild(headRow);
  var filterText = document.getElementById('filter'), filterStatus = document.getElementById('filter-status');
  function statusOptions() {
    var chosen = filterStatus.value;
    while (filterStatus.options.length > 1) filterStatus.remove(1);
    Object.keys(D.counts).forEach(function (s) { if (D.counts[s]) filterStatus.appendChild(el('option', { value: s }, s + ' (' + D.counts[s] + ')')); });
    filterStatus.value = chosen;
  }
  statusOptions();
  function row(t) {
    var tr = el('tr', { 'data-status': t.status, 'data-id': t.id, 'class': t.top ? 'top' : '' });
    cols.forEach(function (c) {
      var td = el('td', c.num ? { 'class': 'num' } : null, c.show ? c.show(t) : fmt(c.get(t)));
      if (c.key === 'status') { td.className = 'st-' + t.status; if (t.reason) td.title = t.reason; }
      tr.appendChild(td);
    });
    tr.dataset.text = tr.textContent.toLowerCase();
    return { t: t, tr: tr };
  }
  var rows = [];
  function renderRows() {
    var col = cols.filter(function (c) { return c.key === sortKey; })[0];
    var q = filterText.value.trim().toLowerCase(), st = filterStatus.value;
    var shown = rows.filter(function (r) { return (!st || r.t.status === st) && (!q || r.tr.dataset.text.indexOf(q) >= 0); });
    shown.sort(function (a, b) {
      var x = col.get(a.t), y = col.get(b.t);
      if (x === y) return a.t.index - b.t.index;
      if (x === null || x === undefined) return 1;
      if (y === null || y === undefined) return -1;
      return (x < y ? -1 : 1) * sortDir;
    });
    tbody.textContent = '';
    var frag = document.createDocumentFragment();
    shown.forEach(function (r) { frag.appendChild(r.tr); });
    tbody.appendChild(frag);
    Array.prototype.forEach.call(thead.querySelectorAll('th'), function (th) { th.className = th.dataset.key === sortKey ? (sortDir > 0 ? 'sorted-asc' : 'sorted-desc') : ''; });
    document.getElementById('shown').textContent = shown.length + ' of ' + rows.length + ' trials';
  }
  filterText.addEventListener('input', renderRows);
  filterStatus.addEventListener('change', renderRows);
  // A thousand rows cost a layout of their own: built after the charts in view, as a chart is.
  later(function () { rows = D.trials.map(row); renderRows(); }, 'trials');

  // 7. failures ----------------------------------------------------------------------------------
  function drawFailures() {
  var fbox = clear(document.getElementById('failures'));
  if (D.failures.length === 0) fbox.appendChild(el('p', { 'class': 'note' }, 'No trial failed or diverged.'));
  D.failures.forEach(function (f) {
    var d = el('div', { 'class': 'failure' });
    d.appendChild(el('b', null, '#' + f.index + ' ' + f.status));
    d.appendChild(document.createTextNode('  ' + f.id.slice(0, 12) + '  worker ' + (f.worker || '-') + ', ' + f.attempts + ' attempt(s)'));
    d.appendChild(el('pre', null, f.error));
    fbox.appendChild(d);
  });
  }
  drawFailures();

  // 8. ensembles ---------------------------------------------------------------------------------
  function drawEnsembles() {
  var ebox = clear(document.getElementById('ensembles'));
  if (D.ensembles.length === 0) ebox.appendChild(el('p', { 'class': 'note' }, 'No ensemble built yet (sweep ensemble build ' + D.sweep.name + ').'));
  else {
    var ewrap = el('div', { 'class': 'table-wrap' }), et = el('table'), eh = el('tr');
    ['name', 'method', 'k', 'members', 'val seq_acc', 'best member', 'gain (95% interval)', 'val char_acc gain', 'test seq_acc', 'test gain'].forEach(function (h) { eh.appendChild(el('th', null, h)); });
    et.appendChild(eh);
    D.ensembles.forEach(function (e) {
      var tr = el('tr');
      var pct = function (v) { return v === null ? '-' : (v * 100).toFixed(1) + '%'; };
      var pp = function (v) { return v === null ? '-' : (v >= 0 ? '+' : '') + (v * 100).toFixed(1) + ' pp'; };
      [e.name + (e.optimistic ? ' *' : ''), e.method, e.k, e.members.map(function (m) { return '#' + m; }).join(' '), pct(e.valSeqAcc), pct(e.bestMemberValSeqAcc),
        pp(e.gainSeq) + (e.gainLo !== null ? ' (' + pp(e.gainLo) + ' .. ' + pp(e.gainHi) + ')' : ''), pp(e.gainChar), pct(e.testSeqAcc), pp(e.testGainSeq)]
        .forEach(function (v, i) { tr.appendChild(el('td', i >= 4 ? { 'class': 'num' } : null, v)); });
      et.appendChild(tr);
    });
    ewrap.appendChild(et);
    ebox.appendChild(ewrap);
    if (D.ensembles.some(function (e) { return e.optimistic; })) ebox.appendChild(el('p', { 'class': 'note' }, '* no test set: the validation numbers are the ones members were chosen on, so optimistic.'));
  }
  }
  drawEnsembles();

  // 9. validation CAPTCHAs -------------------------------------------------------------------------
  function drawCaptchas() {
  var C = D.captchas, cbox = clear(document.getElementById('captchas'));
  document.getElementById('captcha-trial').textContent = C.trial === null ? '' : 'Readings of trial #' + C.trial + ' (the best finished trial), from its stored validation predictions; wrong characters are marked.';
  noteIf('captcha-note', !!C.note, C.note || '');
  C.items.forEach(function (c) {
    var d = el('div', { 'class': 'captcha' + (c.label === c.reading ? '' : ' miss') });
    d.appendChild(el('img', { src: c.src, alt: c.label, title: c.file }));
    var r = el('div', { 'class': 'read' });
    for (var i = 0; i < Math.max(c.reading.length, c.label.length); i++) {
      var ch = c.reading[i] || '_';
      r.appendChild(c.label[i] === c.reading[i] ? document.createTextNode(ch) : el('span', { 'class': 'wrong', title: 'label: ' + (c.label[i] || '') }, ch));
    }
    d.appendChild(r);
    d.appendChild(el('div', { 'class': 'label' }, 'label ' + c.label));
    cbox.appendChild(d);
  });
  }
  drawCaptchas();

  window.addEventListener('resize', function () { for (var k in charts) charts[k].resize(); });
  // Live updates (sweep dashboard): a patch replaces rows and curves by trial id and the
  // parts about every trial whole (src/report/live.ts mergePatch does the same on the server);
  // only the views whose data changed are drawn again.
  function byId(list) { var m = {}; list.forEach(function (x) { m[x.id] = x; }); return m; }
  function apply(p) {
    var old = byId(D.trials), oldSeries = byId(D.curves.series), patched = byId(p.trials), fresh = byId(p.series), gone = {};
    p.removed.forEach(function (id) { gone[id] = true; });
    var bestMoved = p.trials.some(function (t) { var o = old[t.id]; return !o || o.best !== t.best || o.status !== t.status; });
    // Only running (not top) trials' curves moved: the grey lines of the others stay as drawn.
    var runningOnly = p.removed.length === 0 && p.series.every(function (s) { var o = oldSeries[s.id]; return !s.top && s.status === 'running' && (!o || (!o.top && o.status === 'running')); });
    // Sent only when they changed (a running trial's bar growing with the clock alone is no change).
    var timelineMoved = !!p.timeline, failuresMoved = !!p.failures;
    D.trials = D.trials.map(function (t) { return patched[t.id] || t; });
    var kept = D.curves.series.filter(function (s) { return !gone[s.id]; }).map(function (s) { var n = fresh[s.id]; delete fresh[s.id]; return n || s; });
    D.curves = { boundary: p.curves.boundary, pretrain: p.curves.pretrain, gru: p.curves.gru, series: kept.concat(Object.keys(fresh).map(function (k) { return fresh[k]; })) };
    D.counts = p.counts; D.total = p.total; if (p.timeline) D.timeline = p.timeline; if (p.failures) D.failures = p.failures; D.generatedAt = p.generatedAt; D.sweep.status = p.sweepStatus;
    if (p.extras) { D.positions = p.extras.positions; D.ensembles = p.extras.ensembles; D.captchas = p.extras.captchas; }
    drawCounts();
    statusOptions();
    if (timelineMoved) drawTimeline();
    if (bestMoved) { drawParallel(); drawScatters(); }
    if (runningOnly && p.series.length > 0 && charts['chart-acc'] && charts['chart-loss']) {
      // The running lines are a layer of their own (zlevel 1): the grey ones are not painted
      // again unless an axis moved.
      ['acc', 'loss'].forEach(function (key) {
        var o = curveOption(key, key === 'acc' ? 'val_seq_acc' : 'val_loss'), was = curveAxes[key], axes = {};
        if (was.yAxis.min !== o.yAxis.min || was.yAxis.max !== o.yAxis.max) axes.yAxis = o.yAxis;
        if (was.xAxis.max !== o.xAxis.max) axes.xAxis = o.xAxis;
        curveAxes[key] = { xAxis: o.xAxis, yAxis: o.yAxis };
        charts['chart-' + key].setOption(Object.assign(axes, { legend: o.legend, series: [o.series[1]] }));
      });
    } else if (p.series.length > 0 || p.removed.length > 0) drawCurves();
    rows = rows.map(function (r) { return patched[r.t.id] ? row(patched[r.t.id]) : r; });
    renderRows();
    if (failuresMoved) drawFailures();
    if (p.extras) { drawPositions(); drawEnsembles(); drawCaptchas(); }
  }

  var R = window.__report = { charts: charts, timings: timings, startedAt: t0, data: D, apply: apply };
  var seen = pending.filter(function (p) { return document.getElementById(p.id).getBoundingClientRect().top < window.innerHeight; });
  var rest = pending.filter(function (p) { return seen.indexOf(p) < 0; });
  seen.forEach(function (p) { p.draw(); });
  R.firstViewMs = performance.now() - t0;
  requestAnimationFrame(function () { R.firstViewAt = performance.now(); });
  // The rest in one task after the first screen's frame: a frame between each chart costs
  // another layout and paint of the whole page.
  setTimeout(function () {
    rest.forEach(function (p) { p.draw(); });
    R.drawMs = performance.now() - t0;
    requestAnimationFrame(function () { R.readyAt = performance.now(); document.body.dataset.ready = '1'; });
  }, 0);
})();
`;

/**
 * The dashboard's live layer: follows /events (server-sent events) and applies each patch with
 * the page script's apply(); draws the queue. A patch that does not follow the page's version
 * (it missed some) or a `reload` event for another version loads the page again.
 */
const LIVE_SCRIPT = String.raw`
(function () {
  'use strict';
  var R = window.__report;
  var L = JSON.parse(document.getElementById('live-data').textContent);
  var version = L.version, queue = L.queue, offset = queue.at - Date.now(), es = null;
  var state = document.getElementById('live-state');
  R.version = version; R.updates = [];
  function el(tag, text, cls) { var e = document.createElement(tag); if (text !== undefined) e.textContent = String(text); if (cls) e.className = cls; return e; }
  function age(ms) { var s = Math.max(0, (Date.now() + offset - ms) / 1000); return s < 90 ? s.toFixed(0) + ' s' : s < 5400 ? (s / 60).toFixed(1) + ' min' : (s / 3600).toFixed(1) + ' h'; }
  function drawQueue() {
    var jobs = document.getElementById('queue-jobs'); jobs.textContent = '';
    if (queue.jobs) ['waiting', 'active', 'delayed', 'failed'].forEach(function (k) { var s = el('span', k + ' '); s.appendChild(el('b', queue.jobs[k])); s.dataset.key = k; jobs.appendChild(s); });
    var err = document.getElementById('queue-error'); err.textContent = queue.error || ''; err.hidden = !queue.error;
    var body = document.querySelector('#queue-workers tbody'); body.textContent = '';
    queue.workers.forEach(function (w) {
      var tr = el('tr');
      tr.appendChild(el('td', w.worker)); tr.appendChild(el('td', w.running, 'num'));
      var stale = w.heartbeatAt !== null && Date.now() + offset - w.heartbeatAt > 90000;
      var td = el('td', w.heartbeatAt === null ? '-' : age(w.heartbeatAt) + ' ago' + (stale ? ' (stale)' : ''), 'num age');
      td.dataset.at = w.heartbeatAt === null ? '' : String(w.heartbeatAt);
      tr.appendChild(td); body.appendChild(tr);
    });
    document.getElementById('queue-none').hidden = queue.workers.length > 0;
  }
  function say(text) { state.textContent = text; }
  function connect() {
    es = new EventSource('events?since=' + version);
    es.addEventListener('patch', function (e) {
      var p = JSON.parse(e.data);
      if (p.version <= version) return;
      if (p.version !== version + 1) { location.reload(); return; }
      var t = performance.now();
      R.apply(p);
      version = R.version = p.version;
      R.updates.push({ version: version, ms: performance.now() - t, at: Date.now() });
      document.body.dataset.version = String(version);
      say('live: updated ' + new Date(p.generatedAt).toISOString().slice(11, 19) + ' UTC');
    });
    es.addEventListener('reload', function (e) { if (Number(e.data) !== version) location.reload(); });
    es.addEventListener('queue', function (e) { queue = JSON.parse(e.data); offset = queue.at - Date.now(); drawQueue(); });
    es.addEventListener('problem', function (e) { say('live: the last poll failed (' + JSON.parse(e.data).message + '); retrying'); });
    es.onopen = function () { if (!/updated/.test(state.textContent)) say('live'); };
    es.onerror = function () { say('live: disconnected, retrying'); es.close(); setTimeout(connect, 2000); };
  }
  drawQueue();
  setInterval(function () {
    Array.prototype.forEach.call(document.querySelectorAll('#queue-workers td.age'), function (td) { if (td.dataset.at) td.textContent = age(Number(td.dataset.at)) + ' ago' + (Date.now() + offset - Number(td.dataset.at) > 90000 ? ' (stale)' : ''); });
  }, 1000);
  document.body.dataset.version = String(version);
  connect();
})();
`;

/** What makes the report page a live dashboard page. */
export interface LivePage {
  /** The data's version: the events stream sends what came after it. */
  version: number;
  /** The queue as last read (src/report/watch.ts QueueData). */
  queue: unknown;
}

const QUEUE_SECTION = `<p class="note">The trial queue (every sweep's) and the workers running a trial, by their latest heartbeat; a heartbeat older than 90 s means the worker is probably gone.</p>
<div class="counts" id="queue-jobs"></div><p class="note" id="queue-error" hidden></p>
<div class="table-wrap compact"><table id="queue-workers"><thead><tr><th>worker</th><th>running trials</th><th>heartbeat</th></tr></thead><tbody></tbody></table></div>
<p class="note" id="queue-none" hidden>No worker is running a trial.</p>`;

function section(id: string, title: string, body: string): string {
  return `<section id="${id}"><h2>${escapeHtml(title)}</h2>${body}</section>`;
}

/** The whole page. Pure: the chart library's source is passed in. */
export function renderReport(data: ReportData, echartsSource: string, opts: { live?: LivePage } = {}): string {
  const live = opts.live;
  const s = data.sweep;
  const generated = new Date(data.generatedAt).toISOString().replace('T', ' ').slice(0, 16);
  const body = [
    ...(live ? [section('queue-section', 'Queue and workers', QUEUE_SECTION)] : []),
    section(
      'definition',
      'The sweep',
      `<div class="counts" id="counts"></div>
<details><summary>Definition (the stored sweep file)</summary><pre class="spec" id="spec"></pre></details>
<p class="note">Trials per worker over time (a retried trial shows under the worker that last ran it).</p>
<div id="chart-timeline" class="chart small" data-chart="timeline"></div><p class="note" id="timeline-note" hidden></p>`,
    ),
    section(
      'parameters',
      'Parameters against the metric',
      `<p class="note">Each line is a trial. Drag along an axis to select a range; drag again elsewhere to add one, click outside to clear.</p>
<div id="chart-parallel" class="chart tall" data-chart="parallel"></div><p class="note" id="parallel-note" hidden></p>
<div class="grid3" id="scatters"></div><p class="note" id="scatter-note" hidden></p>`,
    ),
    section(
      'curves',
      'Learning curves',
      `<p class="note">Validation sequence accuracy and loss per epoch: pretrain epochs, then GRU epochs (dashed line). The best ${TOP} trials are coloured; stopped trials are marked where they stopped.</p>
<div class="grid2"><div id="chart-acc" class="chart" data-chart="curves"></div><div id="chart-loss" class="chart" data-chart="curves"></div></div>
<p class="note" id="curves-note" hidden></p>`,
    ),
    section(
      'positions',
      'Accuracy by character position',
      `<p class="note">The best finished trials on the validation set, from their stored predictions.</p>
<div id="chart-positions" class="chart small" data-chart="positions"></div><p class="note" id="positions-note" hidden></p>`,
    ),
    section(
      'table',
      'Trials',
      `<div class="filters"><input id="filter" type="search" placeholder="filter: any text of a row"><select id="filter-status"><option value="">every status</option></select><span class="note" id="shown"></span></div>
<div class="table-wrap"><table id="trials"><thead></thead><tbody></tbody></table></div>`,
    ),
    section('failures-section', 'Failures', '<div id="failures"></div>'),
    section('ensembles-section', 'Ensembles', '<div id="ensembles"></div>'),
    section(
      'captchas-section',
      'Validation CAPTCHAs',
      '<p class="note" id="captcha-trial"></p><p class="note" id="captcha-note" hidden></p><div class="captchas" id="captchas"></div>',
    ),
  ].join('\n');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'${live ? "; connect-src 'self'" : ''}">
<title>${escapeHtml(s.name)}: ${live ? 'sweep dashboard' : 'sweep report'}</title>
<style>${STYLE}</style>
</head>
<body>
<header><h1>${escapeHtml(s.name)}</h1>
<div class="meta">${escapeHtml(s.method)} sweep, ${data.total} trial(s), ${escapeHtml(s.status)}; metric ${escapeHtml(data.metric.name)} (${data.metric.goal}); ${live ? `<span id="live-state">live: data of ${generated} UTC</span>` : `report made ${generated} UTC`}</div></header>
<main>
${body}
</main>
<script>${inlineScript(echartsSource)}</script>
<script type="application/json" id="report-data">${scriptJson(data)}</script>
<script>${inlineScript(PAGE_SCRIPT)}</script>
${live ? `<script type="application/json" id="live-data">${scriptJson(live)}</script>\n<script>${inlineScript(LIVE_SCRIPT)}</script>\n` : ''}</body>
</html>
`;
}
