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
  function chart(id, option) {
    var s = performance.now();
    var node = document.getElementById(id);
    var c = echarts.init(node, null, { renderer: 'canvas' });
    c.setOption(option);
    charts[id] = c;
    timings[id] = Math.round(performance.now() - s);
    return c;
  }
  function niceFloor(v) { var p = Math.pow(10, Math.floor(Math.log10(Math.abs(v) || 1)) - 1); return Math.floor(v / p) * p; }
  function niceCeil(v) { var p = Math.pow(10, Math.floor(Math.log10(Math.abs(v) || 1)) - 1); return Math.ceil(v / p) * p; }
  function note(id, text) { var n = document.getElementById(id); n.textContent = text; n.hidden = false; }

  // 1. definition, counts, timeline --------------------------------------------------------
  var counts = document.getElementById('counts');
  Object.keys(D.counts).forEach(function (s) {
    if (!D.counts[s] && ['queued', 'running', 'finished', 'failed', 'stopped'].indexOf(s) < 0) return;
    var span = el('span', { 'class': 'st-' + s });
    span.appendChild(document.createTextNode(s + ' '));
    span.appendChild(el('b', null, D.counts[s]));
    counts.appendChild(span);
  });
  document.getElementById('spec').textContent = D.sweep.specText;

  // One thick segment per trial; one lines series per status, each drawn as one path.
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
  if (tl.bars.length === 0) note('timeline-note', 'No trial has started yet.');

  // 2. parallel coordinates ----------------------------------------------------------------
  var metricName = D.metric.name;
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
  if (scored.length === 0) note('parallel-note', 'No trial has a value of ' + metricName + ' yet.');

  // 3. the metric against each parameter ------------------------------------------------------
  var scatterBox = document.getElementById('scatters');
  D.axes.forEach(function (a, i) {
    var id = 'chart-scatter-' + i;
    var wrap = el('div');
    wrap.appendChild(el('div', { id: id, 'class': 'chart small', 'data-chart': 'scatter' }));
    scatterBox.appendChild(wrap);
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
  if (D.axes.length === 0) note('scatter-note', 'The sweep varies no parameter.');

  // 4. learning curves -----------------------------------------------------------------------
  function curveOption(key, label) {
    var others = [], tops = [], stops = [], lo = Infinity, hi = -Infinity;
    D.curves.series.forEach(function (s) {
      var pts = s[key];
      if (pts.length === 0) return;
      for (var j = 0; j < pts.length; j++) { if (pts[j][1] < lo) lo = pts[j][1]; if (pts[j][1] > hi) hi = pts[j][1]; }
      if (s.top) tops.push(s); else others.push({ name: '#' + s.index + ' ' + s.status, coords: pts.length === 1 ? [pts[0], pts[0]] : pts });
      if (s.stoppedAt !== null) { var last = pts[pts.length - 1]; stops.push({ value: last, name: '#' + s.index }); }
    });
    var series = [{ type: 'lines', id: 'others', name: 'other trials', coordinateSystem: 'cartesian2d', polyline: true, silent: big, data: others,
      lineStyle: { color: '#8895a7', width: 1, opacity: others.length > 200 ? 0.18 : 0.45 }, large: true, largeThreshold: 100, progressive: 0, zlevel: 0 }];
    var rank = D.trials.filter(function (t) { return t.top; }).sort(function (a, b) { return D.metric.goal === 'maximize' ? b.best - a.best : a.best - b.best; }).map(function (t) { return t.id; });
    tops.sort(function (a, b) { return rank.indexOf(a.id) - rank.indexOf(b.id); });
    tops.forEach(function (s, i) {
      series.push({ type: 'line', id: 'trial-' + s.index, name: '#' + s.index, data: s[key], showSymbol: s[key].length < 30, symbolSize: 4, lineStyle: { width: 2.2 }, color: TOP_COLORS[i % TOP_COLORS.length], z: 5 });
    });
    series.push({ type: 'scatter', id: 'stopped', name: 'stopped', data: stops, symbol: X_MARK, symbolSize: 9, itemStyle: { color: '#ef6c00' }, z: 6 });
    var b = D.curves.boundary;
    series.push({ type: 'line', id: 'boundary', name: 'GRU starts', data: [], silent: true,
      markLine: b === null ? undefined : { symbol: 'none', silent: true, lineStyle: { color: '#444', type: 'dashed' }, label: { formatter: 'GRU', position: 'insideEndTop' }, data: [{ xAxis: b }] } });
    return {
      animation: false,
      title: { text: label, left: 'center', textStyle: { fontSize: 13 } },
      legend: { top: 22, data: tops.map(function (s) { return '#' + s.index; }).concat(stops.length ? ['stopped'] : []) },
      tooltip: { trigger: 'item', formatter: function (p) { return p.seriesId === 'others' ? p.name : (p.seriesName + '  ' + fmt(p.value[1]) + ' @ ' + p.value[0]); } },
      grid: { left: 56, right: 20, top: 56, bottom: 44 },
      xAxis: { type: 'value', name: 'iteration (pretrain epochs, then GRU epochs)', nameLocation: 'middle', nameGap: 26, min: 1, max: Math.max(1, D.curves.pretrain + D.curves.gru), minInterval: 1 },
      // The grey lines add nothing to the axis's extent: it is given, with a margin.
      yAxis: { type: 'value', scale: true, min: lo <= hi ? (lo >= 0 ? Math.max(0, niceFloor(lo - (hi - lo) * 0.04)) : niceFloor(lo - (hi - lo) * 0.04)) : undefined, max: lo <= hi ? niceCeil(hi + (hi - lo) * 0.04) : undefined },
      series: series
    };
  }
  chart('chart-acc', curveOption('acc', 'val_seq_acc'));
  chart('chart-loss', curveOption('loss', 'val_loss'));
  if (D.curves.series.length === 0) note('curves-note', 'No epoch has been stored yet.');

  // 5. accuracy by character position ---------------------------------------------------------
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
  if (P.series.length === 0) note('positions-note', 'No finished trial has stored validation predictions yet.');

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
  Object.keys(D.counts).forEach(function (s) { if (D.counts[s]) filterStatus.appendChild(el('option', { value: s }, s + ' (' + D.counts[s] + ')')); });
  var rows = D.trials.map(function (t) {
    var tr = el('tr', { 'data-status': t.status, 'class': t.top ? 'top' : '' });
    cols.forEach(function (c) {
      var td = el('td', c.num ? { 'class': 'num' } : null, c.show ? c.show(t) : fmt(c.get(t)));
      if (c.key === 'status') { td.className = 'st-' + t.status; if (t.reason) td.title = t.reason; }
      tr.appendChild(td);
    });
    tr.dataset.text = tr.textContent.toLowerCase();
    return { t: t, tr: tr };
  });
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
  renderRows();

  // 7. failures ----------------------------------------------------------------------------------
  var fbox = document.getElementById('failures');
  if (D.failures.length === 0) fbox.appendChild(el('p', { 'class': 'note' }, 'No trial failed or diverged.'));
  D.failures.forEach(function (f) {
    var d = el('div', { 'class': 'failure' });
    d.appendChild(el('b', null, '#' + f.index + ' ' + f.status));
    d.appendChild(document.createTextNode('  ' + f.id.slice(0, 12) + '  worker ' + (f.worker || '-') + ', ' + f.attempts + ' attempt(s)'));
    d.appendChild(el('pre', null, f.error));
    fbox.appendChild(d);
  });

  // 8. ensembles ---------------------------------------------------------------------------------
  var ebox = document.getElementById('ensembles');
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

  // 9. validation CAPTCHAs -------------------------------------------------------------------------
  var C = D.captchas, cbox = document.getElementById('captchas');
  if (C.trial !== null) document.getElementById('captcha-trial').textContent = 'Readings of trial #' + C.trial + ' (the best finished trial), from its stored validation predictions; wrong characters are marked.';
  if (C.note) note('captcha-note', C.note);
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

  window.addEventListener('resize', function () { for (var k in charts) charts[k].resize(); });
  window.__report = { charts: charts, timings: timings, startedAt: t0, drawMs: performance.now() - t0 };
  requestAnimationFrame(function () { window.__report.readyAt = performance.now(); document.body.dataset.ready = '1'; });
})();
`;

function section(id: string, title: string, body: string): string {
  return `<section id="${id}"><h2>${escapeHtml(title)}</h2>${body}</section>`;
}

/** The whole page. Pure: the chart library's source is passed in. */
export function renderReport(data: ReportData, echartsSource: string): string {
  const s = data.sweep;
  const generated = new Date(data.generatedAt).toISOString().replace('T', ' ').slice(0, 16);
  const body = [
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
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<title>${escapeHtml(s.name)}: sweep report</title>
<style>${STYLE}</style>
</head>
<body>
<header><h1>${escapeHtml(s.name)}</h1>
<div class="meta">${escapeHtml(s.method)} sweep, ${data.total} trial(s), ${escapeHtml(s.status)}; metric ${escapeHtml(data.metric.name)} (${data.metric.goal}); report made ${generated} UTC</div></header>
<main>
${body}
</main>
<script>${inlineScript(echartsSource)}</script>
<script type="application/json" id="report-data">${scriptJson(data)}</script>
<script>${inlineScript(PAGE_SCRIPT)}</script>
</body>
</html>
`;
}
