// The pushq dashboard: plain JavaScript, no build step, nothing from a CDN.
//
// Every view reads the /v1 API (plus /ui/api/overview) with the session cookie
// and refreshes itself every 2 seconds without reloading the page. Requests that
// change state send the `x-pushq-csrf: 1` header the server requires of cookie
// sessions. Job data only ever reaches the page as text (textContent or an
// attribute value), never as HTML: nothing here parses markup.
(() => {
  'use strict';

  const STATES = ['scheduled', 'pending', 'active', 'retrying', 'succeeded', 'dead', 'cancelled'];
  const TERMINAL = new Set(['succeeded', 'dead', 'cancelled']);
  const WAITING = new Set(['scheduled', 'pending', 'retrying']);
  const POLL_MS = 2000;
  const PAGE_SIZE = 50;
  const EXCERPT = 300;
  const SINCE_CHOICES = [['', 'any time'], ['15m', 'last 15 min'], ['1h', 'last hour'],
    ['6h', 'last 6 hours'], ['1d', 'last day'], ['7d', 'last week']];

  const main = document.getElementById('view');
  const features = { queues: false, schedules: false, endpoints: false, stats: false };
  let current = null;

  // -- DOM helpers -------------------------------------------------------------

  function h(tag, props, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === 'class') el.className = value;
      else if (key === 'text') el.textContent = String(value);
      else if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
      else el.setAttribute(key, value === true ? '' : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : String(child));
    }
    return el;
  }

  function svg(tag, attrs, ...children) {
    const el = document.createElementNS('http://www.w3.org/2000/svg', tag);
    for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, String(value));
    for (const child of children) {
      if (typeof child === 'string') {
        const title = document.createElementNS('http://www.w3.org/2000/svg', 'title');
        title.textContent = child;
        el.append(title);
      } else if (child) el.append(child);
    }
    return el;
  }

  function badge(state) {
    return h('span', { class: `badge state-${STATES.includes(state) ? state : 'unknown'}` }, state);
  }

  function jobLink(id) {
    return h('a', { href: `#/jobs/${encodeURIComponent(id)}`, class: 'mono' }, id);
  }

  function queueLink(name) {
    return h('a', { href: `#/queues/${encodeURIComponent(name)}` }, name);
  }

  function hashFor(path, params) {
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(params)) if (value) query.set(key, value);
    const text = query.toString();
    return `#${path}${text ? `?${text}` : ''}`;
  }

  function toast(message, isError = false) {
    const el = document.getElementById('toast');
    el.textContent = message;
    el.className = isError ? 'error' : '';
    el.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { el.hidden = true; }, 4000);
  }

  const pad = (n) => String(n).padStart(2, '0');

  // "14:03:05" today; "2026-11-30 14:03:05" (local time) on any other day.
  function timeText(date) {
    const clock = `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
    if (date.toDateString() === new Date().toDateString()) return clock;
    return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${clock}`;
  }

  // An RFC 3339 time (or Unix seconds, as older progress reports carry) as a <time>.
  function time(value) {
    if (value === null || value === undefined || value === '') return h('span', { class: 'muted' }, '—');
    const date = new Date(typeof value === 'number' ? value * 1000 : value);
    if (Number.isNaN(date.getTime())) return h('span', {}, String(value));
    const iso = date.toISOString();
    return h('time', { datetime: iso, title: iso }, timeText(date));
  }

  function age(seconds) {
    if (seconds === null || seconds === undefined) return '—';
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return `${s} s`;
    if (s < 3600) return `${Math.floor(s / 60)} m ${s % 60} s`;
    if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} m`;
    return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
  }

  function duration(ms) {
    if (ms === null || ms === undefined) return '—';
    return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
  }

  function percent(rate) {
    return rate === null || rate === undefined ? '—' : `${(rate * 100).toFixed(rate >= 0.999 || rate === 0 ? 0 : 1)}%`;
  }

  function excerpt(text) {
    if (text === null || text === undefined || text === '') return h('span', { class: 'muted' }, '—');
    const short = text.length > EXCERPT ? `${text.slice(0, EXCERPT)}…` : text;
    return h('pre', { class: 'excerpt', title: text.length > EXCERPT ? 'truncated' : null }, short);
  }

  // The last error as one line: its status, pushq's message and the endpoint's own.
  function errorText(lastError) {
    if (!lastError) return '';
    let message = lastError.message || '';
    const status = lastError.status;
    if (status !== null && status !== undefined && !message.includes(String(status))) {
      message = `${status} ${message}`.trim();
    }
    const said = lastError.response;
    if (said && !message.includes(said)) message = message ? `${message} — ${said}` : said;
    return message;
  }

  function tagList(tags) {
    if (!tags || !tags.length) return null;
    return h('span', { class: 'tags' }, tags.map((t) =>
      h('a', { class: 'tag', href: hashFor('/jobs', { tag: t }) }, t)));
  }

  // -- the API -----------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  async function api(method, path, body) {
    const headers = { accept: 'application/json' };
    if (method !== 'GET') headers['x-pushq-csrf'] = '1';
    const init = { method, headers, credentials: 'same-origin', cache: 'no-store' };
    if (body !== undefined) {
      headers['content-type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    if (response.status === 401) {
      window.location.assign('/ui'); // the session ended: back to the login page
      throw new ApiError(401, 'unauthorized', 'the session has ended');
    }
    if (response.status === 204) return null;
    let data = null;
    try {
      data = await response.json();
    } catch {
      data = null;
    }
    if (!response.ok) {
      const error = (data && data.error) || {};
      throw new ApiError(response.status, error.code || 'http_error',
        error.message || `HTTP ${response.status}`);
    }
    return data;
  }

  // Run an action, say how it went, and show its effect at once.
  async function act(label, fn) {
    try {
      const message = await fn();
      toast(typeof message === 'string' ? message : label);
    } catch (error) {
      toast(`${label} failed: ${error.message}`, true);
    }
    refresh(current, true);
  }

  function confirmThen(question, label, fn) {
    if (window.confirm(question)) act(label, fn);
  }

  // Newer routes: show their pages only when this server has them.
  async function detectFeatures() {
    const has = async (path) => {
      try {
        await api('GET', path);
        return true;
      } catch {
        return false;
      }
    };
    [features.queues, features.schedules, features.endpoints, features.stats] = await Promise.all([
      has('/v1/queues'), has('/v1/schedules'), has('/v1/endpoints'), has('/v1/stats/timeseries?minutes=1'),
    ]);
    document.getElementById('nav-schedules').hidden = !features.schedules;
    document.getElementById('nav-endpoints').hidden = !features.endpoints;
  }

  function queueList(answer) {
    const items = Array.isArray(answer) ? answer : (answer && answer.queues) || [];
    const byName = new Map();
    for (const queue of items) {
      const name = queue.name ?? queue.queue;
      if (typeof name !== 'string') continue;
      const stats = queue.stats || {};
      byName.set(name, { paused: Boolean(queue.paused), oldest: stats.oldest_pending_age ?? null });
    }
    return byName;
  }

  function changed(view, data) {
    const key = JSON.stringify(data);
    if (key === view.lastKey) return false;
    view.lastKey = key;
    return true;
  }

  // -- charts: inline SVG drawn here from GET /v1/stats/timeseries ------------------

  const CHART_W = 600;
  const CHART_H = 120;

  function minuteLabel(iso) {
    const date = new Date(iso);
    return `${pad(date.getHours())}:${pad(date.getMinutes())}`;
  }

  // Delivered (green) and failed (red, on top) attempts per minute, as stacked bars.
  function countsChart(series, label) {
    const points = series.points;
    const peak = Math.max(1, ...points.map((p) => p.delivered + p.failed));
    const step = CHART_W / points.length;
    const chart = svg('svg', {
      viewBox: `0 0 ${CHART_W} ${CHART_H}`, preserveAspectRatio: 'none', class: 'chart-svg',
      role: 'img', 'aria-label': `${label}: ${series.delivered} delivered, ${series.failed} failed`,
    });
    chart.append(svg('line', { x1: 0, y1: CHART_H - 0.5, x2: CHART_W, y2: CHART_H - 0.5, class: 'chart-base' }));
    points.forEach((p, i) => {
      const total = p.delivered + p.failed;
      if (!total) return;
      const x = i * step + step * 0.1;
      const width = step * 0.8;
      const okHeight = (p.delivered / peak) * (CHART_H - 4);
      const badHeight = (p.failed / peak) * (CHART_H - 4);
      const tip = `${minuteLabel(p.at)}: ${p.delivered} delivered, ${p.failed} failed`;
      const group = svg('g', { class: 'bar', 'data-at': p.at }, tip);
      if (p.delivered) {
        group.append(svg('rect', { x, width, y: CHART_H - okHeight, height: okHeight, class: 'bar-ok' }));
      }
      if (p.failed) {
        group.append(svg('rect', { x, width, y: CHART_H - okHeight - badHeight, height: badHeight, class: 'bar-failed' }));
      }
      chart.append(group);
    });
    return chartPanel(label, 'deliveries', chart, peak, '/min',
      [h('span', { class: 'legend ok' }, `${series.delivered} delivered`),
        h('span', { class: 'legend failed' }, `${series.failed} failed`)], points);
  }

  // p50 and p99 attempt latency per minute, as two lines (a gap where no attempt ran).
  function latencyChart(series, label) {
    const points = series.points;
    const peak = Math.max(1, ...points.map((p) => p.latency_p99_ms || 0));
    const step = CHART_W / points.length;
    const chart = svg('svg', {
      viewBox: `0 0 ${CHART_W} ${CHART_H}`, preserveAspectRatio: 'none', class: 'chart-svg',
      role: 'img', 'aria-label': `${label}: p50 ${duration(series.latency_p50_ms)}, p99 ${duration(series.latency_p99_ms)}`,
    });
    chart.append(svg('line', { x1: 0, y1: CHART_H - 0.5, x2: CHART_W, y2: CHART_H - 0.5, class: 'chart-base' }));
    for (const [key, cls] of [['latency_p99_ms', 'line-p99'], ['latency_p50_ms', 'line-p50']]) {
      let run = [];
      const flush = () => {
        if (run.length === 1) {
          const [x, y] = run[0];
          chart.append(svg('circle', { cx: x, cy: y, r: 2.5, class: `${cls} dot` }));
        } else if (run.length > 1) {
          chart.append(svg('polyline', { points: run.map((xy) => xy.join(',')).join(' '), class: cls }));
        }
        run = [];
      };
      points.forEach((p, i) => {
        const value = p[key];
        if (value === null || value === undefined) {
          flush();
          return;
        }
        const x = (i + 0.5) * step;
        const y = CHART_H - 2 - (value / peak) * (CHART_H - 6);
        run.push([x.toFixed(1), y.toFixed(1)]);
      });
      flush();
    }
    return chartPanel(label, 'latency', chart, duration(peak), '',
      [h('span', { class: 'legend p50' }, `p50 ${duration(series.latency_p50_ms)}`),
        h('span', { class: 'legend p99' }, `p99 ${duration(series.latency_p99_ms)}`)], points);
  }

  function chartPanel(label, kind, chart, peak, unit, legend, points) {
    const first = points.length ? minuteLabel(points[0].at) : '';
    return h('figure', { class: 'chart', 'data-chart': kind },
      h('figcaption', {}, h('span', { class: 'chart-title' }, label), h('span', { class: 'chart-summary' }, legend)),
      h('div', { class: 'chart-body' },
        h('span', { class: 'chart-peak' }, `${peak}${unit}`),
        chart),
      h('div', { class: 'chart-axis' }, h('span', {}, first), h('span', {}, 'now')));
  }

  function chartPair(series, title) {
    return h('div', { class: 'charts' },
      countsChart(series, `${title}: deliveries per minute`),
      latencyChart(series, `${title}: attempt latency`));
  }

  // A sparkline of deliveries per minute over the hour, for a table cell.
  function spark(series) {
    const width = 120;
    const height = 24;
    const points = series ? series.points : [];
    const peak = Math.max(1, ...points.map((p) => p.delivered + p.failed));
    const chart = svg('svg', { width, height, viewBox: `0 0 ${width} ${height}`, class: 'spark', role: 'img' });
    chart.append(svg('line', { x1: 0, y1: height - 0.5, x2: width, y2: height - 0.5, class: 'spark-base' }));
    const step = width / Math.max(1, points.length);
    points.forEach((p, i) => {
      const ok = (p.delivered / peak) * (height - 2);
      const bad = (p.failed / peak) * (height - 2);
      if (ok) chart.append(svg('rect', { x: i * step, width: step, y: height - ok, height: ok, class: 'bar-ok' }));
      if (bad) chart.append(svg('rect', { x: i * step, width: step, y: height - ok - bad, height: bad, class: 'bar-failed' }));
    });
    chart.setAttribute('aria-label', series ? `${series.delivered} delivered, ${series.failed} failed in the last hour` : 'no deliveries in the last hour');
    return chart;
  }

  async function timeseries(queue) {
    if (!features.stats) return null;
    const query = queue ? `?queue=${encodeURIComponent(queue)}` : '';
    return api('GET', `/v1/stats/timeseries${query}`);
  }

  function emptySeries(stats) {
    const points = stats ? stats.total.points.map((p) => ({ ...p, delivered: 0, failed: 0, latency_p50_ms: null, latency_p99_ms: null })) : [];
    return { delivered: 0, failed: 0, latency_p50_ms: null, latency_p99_ms: null, points };
  }

  // -- views: each has a root element and refresh(), called every POLL_MS ----------

  function overviewView() {
    const cards = h('section', { class: 'cards' });
    const charts = h('section', { id: 'charts' });
    const table = h('div', { class: 'table-wrap' });
    const view = {
      root: h('section', {}, h('h1', {}, 'Queues'), cards, charts, table),
      async refresh() {
        const [overview, queueAnswer, stats] = await Promise.all([
          api('GET', '/ui/api/overview'),
          features.queues ? api('GET', '/v1/queues').catch(() => null) : null,
          timeseries(null).catch(() => null),
        ]);
        const extra = queueList(queueAnswer);
        const queues = overview.queues.slice();
        for (const name of extra.keys()) {
          if (!queues.some((q) => q.name === name)) {
            queues.push({ name, counts: Object.fromEntries(STATES.map((s) => [s, 0])) });
          }
        }
        queues.sort((a, b) => a.name.localeCompare(b.name));
        const series = new Map(((stats && stats.queues) || []).map((q) => [q.queue, q]));
        const data = queues.map((q) => ({ ...q, ...(extra.get(q.name) || {}), series: series.get(q.name) || null }));
        if (changed(view, [data, stats && stats.total])) render(data, stats);
      },
    };

    function render(queues, stats) {
      const totals = Object.fromEntries(STATES.map((s) => [s, 0]));
      for (const q of queues) for (const s of STATES) totals[s] += q.counts[s] || 0;
      cards.replaceChildren(...['pending', 'scheduled', 'active', 'retrying', 'dead', 'succeeded'].map((s) =>
        h('a', { class: `card state-${s}`, href: s === 'dead' ? '#/dlq' : hashFor('/jobs', { state: s }), 'data-total': s },
          h('span', { class: 'card-value' }, totals[s]), h('span', { class: 'card-label' }, s))));
      charts.replaceChildren(stats ? chartPair(stats.total, 'All queues, last hour') : '');
      if (!queues.length) {
        table.replaceChildren(h('p', { class: 'empty' },
          'No jobs yet. Enqueue one with POST /v1/jobs and it shows up here.'));
        return;
      }
      const head = h('tr', {}, h('th', {}, 'Queue'), STATES.map((s) => h('th', { class: 'num' }, s)),
        features.queues ? h('th', { class: 'num' }, 'Oldest pending') : null,
        stats ? h('th', {}, 'Last hour') : null,
        stats ? h('th', { class: 'num' }, 'p50 / p99') : null,
        features.queues ? h('th', {}, 'Deliveries') : null);
      const rows = queues.map((q) => {
        const cells = STATES.map((s) => {
          const count = q.counts[s] || 0;
          const href = s === 'dead' ? hashFor('/dlq', { queue: q.name }) : hashFor('/jobs', { queue: q.name, state: s });
          return h('td', { class: `num${count ? '' : ' zero'}`, 'data-state': s },
            h('a', { href }, count));
        });
        let control = null;
        if (features.queues) {
          const verb = q.paused ? 'resume' : 'pause';
          control = h('td', { class: 'row-actions' },
            q.paused ? h('span', { class: 'badge paused' }, 'paused') : h('span', { class: 'badge running' }, 'running'),
            ' ',
            h('button', {
              class: 'small',
              onclick: () => act(`${verb === 'pause' ? 'Paused' : 'Resumed'} ${q.name}`,
                () => api('POST', `/v1/queues/${encodeURIComponent(q.name)}/${verb}`)),
            }, verb === 'pause' ? 'Pause' : 'Resume'));
        }
        const s = q.series;
        return h('tr', { 'data-queue': q.name },
          h('th', { scope: 'row' }, features.queues ? queueLink(q.name) : h('a', { href: hashFor('/jobs', { queue: q.name }) }, q.name)),
          cells,
          features.queues ? h('td', { class: 'num' }, age(q.oldest)) : null,
          stats ? h('td', { class: 'spark-cell', 'data-hour': q.name }, spark(s),
            h('span', { class: 'spark-total' }, `${s ? s.delivered : 0} ok`),
            s && s.failed ? h('span', { class: 'spark-failed' }, `${s.failed} failed`) : null) : null,
          stats ? h('td', { class: 'num' }, s ? `${duration(s.latency_p50_ms)} / ${duration(s.latency_p99_ms)}` : '—') : null,
          control);
      });
      table.replaceChildren(h('table', { id: 'queues' }, h('thead', {}, head), h('tbody', {}, rows)));
    }
    return view;
  }

  // -- one queue: stats, charts, and its settings -----------------------------------

  const QUEUE_FIELDS = [
    ['concurrency', 'Concurrency', 'int', 'most jobs of the queue in flight at once'],
    ['rate_limit', 'Rate limit', 'text', "e.g. 10/s, 600/m, 1000/h"],
    ['max_attempts', 'Max attempts', 'int', 'attempts before a job is dead'],
    ['timeout', 'Timeout', 'duration', 'per attempt: seconds or 30s, 5m'],
    ['backoff.base', 'Backoff base', 'duration', 'first retry delay'],
    ['backoff.max', 'Backoff max', 'duration', 'longest retry delay'],
    ['backoff.jitter', 'Backoff jitter', 'bool', ''],
    ['max_size', 'Max size', 'int', 'unfinished jobs before enqueue answers 429'],
    ['priority', 'Priority', 'int', '-5 to 5: share of slots under contention'],
    ['permanent_statuses', 'Permanent statuses', 'statuses', 'e.g. 400, 422: end the job at once'],
    ['key_concurrency', 'Key concurrency', 'int', 'default per flow key'],
    ['key_rate_limit', 'Key rate limit', 'text', 'default per flow key, e.g. 5/s'],
  ];

  function settingValue(queue, path) {
    const [a, b] = path.split('.');
    const value = b ? (queue[a] || {})[b] : queue[a];
    if (value === null || value === undefined) return '';
    if (Array.isArray(value)) return value.join(', ');
    return String(value);
  }

  // A field's text as the API takes it: numbers as numbers, '' as null (cleared).
  function parseSetting(kind, text) {
    const trimmed = text.trim();
    if (trimmed === '') return null;
    if (kind === 'int' || kind === 'duration') return /^-?\d+(\.\d+)?$/.test(trimmed) ? Number(trimmed) : trimmed;
    if (kind === 'statuses') {
      return trimmed.split(/[\s,]+/).filter(Boolean).map((s) => (/^\d+$/.test(s) ? Number(s) : s));
    }
    return trimmed;
  }

  function queueView(name) {
    const path = `/v1/queues/${encodeURIComponent(name)}`;
    const title = h('h1', {}, 'Queue ', h('span', { class: 'mono' }, name));
    const status = h('span', { id: 'queue-status' });
    const cards = h('section', { class: 'cards' });
    const charts = h('section', { id: 'charts' });
    const formBox = h('section', { id: 'settings' });
    title.append(status);
    const view = {
      root: h('section', {}, h('p', {}, h('a', { href: '#/' }, '← Queues')), title,
        h('div', { class: 'actions' },
          h('a', { class: 'button-link', href: hashFor('/jobs', { queue: name }) }, 'Jobs'),
          h('a', { class: 'button-link', href: hashFor('/dlq', { queue: name }) }, 'Dead letters')),
        cards, charts, formBox),
      form: null,
      notFound: `Queue ${name} not found: no job, setting or pause has named it yet.`,
      async refresh() {
        const [queue, stats] = await Promise.all([api('GET', path), timeseries(name).catch(() => null)]);
        if (!view.form) renderForm(queue);
        if (changed(view, [queue, stats])) render(queue, stats);
      },
    };

    function render(queue, stats) {
      const verb = queue.paused ? 'resume' : 'pause';
      status.replaceChildren(
        queue.paused ? h('span', { class: 'badge paused' }, 'paused') : h('span', { class: 'badge running' }, 'running'),
        h('button', {
          class: 'small',
          onclick: () => act(queue.paused ? 'Resumed' : 'Paused', () => api('POST', `${path}/${verb}`)),
        }, queue.paused ? 'Resume' : 'Pause'));
      const counts = queue.stats || {};
      cards.replaceChildren(...STATES.map((s) =>
        h('a', { class: `card state-${s}`, href: s === 'dead' ? hashFor('/dlq', { queue: name }) : hashFor('/jobs', { queue: name, state: s }), 'data-total': s },
          h('span', { class: 'card-value' }, counts[s] ?? 0), h('span', { class: 'card-label' }, s))),
      h('div', { class: 'card' }, h('span', { class: 'card-value' }, age(counts.oldest_pending_age)), h('span', { class: 'card-label' }, 'oldest pending')));
      if (stats) {
        const series = stats.queues.find((q) => q.queue === name) || emptySeries(stats);
        charts.replaceChildren(chartPair(series, 'Last hour'));
      }
    }

    function renderForm(queue) {
      const inputs = new Map();
      const problem = h('p', { class: 'form-error', id: 'settings-error', role: 'alert', hidden: true });
      const rows = QUEUE_FIELDS.map(([key, label, kind, hint]) => {
        const id = `setting-${key.replace('.', '-')}`;
        let input;
        if (kind === 'bool') {
          const value = settingValue(queue, key);
          input = h('select', { id, name: key },
            h('option', { value: '', selected: value === '' }, 'server default'),
            h('option', { value: 'true', selected: value === 'true' }, 'on'),
            h('option', { value: 'false', selected: value === 'false' }, 'off'));
        } else {
          input = h('input', { id, name: key, value: settingValue(queue, key), placeholder: 'server default', autocomplete: 'off', spellcheck: 'false' });
        }
        inputs.set(key, { input, kind, initial: settingValue(queue, key), note: h('span', { class: 'field-error', hidden: true }) });
        return h('div', { class: 'field' },
          h('label', { for: id }, label), input,
          hint ? h('span', { class: 'hint' }, hint) : null,
          inputs.get(key).note);
      });
      const save = h('button', { type: 'submit' }, 'Save settings');
      view.form = h('form', {
        class: 'settings', id: 'queue-settings', novalidate: true,
        onsubmit: async (event) => {
          event.preventDefault();
          const body = {};
          const backoff = {};
          for (const [key, { input, kind, initial }] of inputs) {
            if (input.value === initial) continue;
            const value = kind === 'bool' ? (input.value === '' ? null : input.value === 'true') : parseSetting(kind, input.value);
            if (key.startsWith('backoff.')) backoff[key.slice(8)] = value;
            else body[key] = value;
          }
          if (Object.keys(backoff).length) body.backoff = backoff;
          problem.hidden = true;
          for (const { input, note } of inputs.values()) {
            input.removeAttribute('aria-invalid');
            note.hidden = true;
          }
          if (!Object.keys(body).length) {
            toast('Nothing changed');
            return;
          }
          save.disabled = true;
          try {
            const saved = await api('PUT', path, body);
            toast(`Saved ${name}`);
            renderForm(saved);
            view.lastKey = undefined;
            refresh(view, true);
          } catch (error) {
            problem.textContent = error.message;
            problem.hidden = false;
            // "backoff.base: must not be negative" names the field it is about
            const field = String(error.message).split(':')[0].replace(/\[\d+\]$/, '');
            const bad = inputs.get(field) || inputs.get(field.split('.')[0]);
            if (bad) {
              bad.input.setAttribute('aria-invalid', 'true');
              bad.note.textContent = error.message.slice(field.length + 1).trim() || error.message;
              bad.note.hidden = false;
              bad.input.focus();
            }
          } finally {
            save.disabled = false;
          }
        },
      }, h('h2', {}, 'Settings'),
      h('p', { class: 'muted' }, 'Empty fields use the server default. A job\'s own settings override these.'),
      problem, h('div', { class: 'fields-grid' }, rows), h('div', { class: 'actions' }, save));
      formBox.replaceChildren(view.form);
    }
    return view;
  }

  // -- jobs ---------------------------------------------------------------------------

  function pager(view, page) {
    const newer = h('button', {
      class: 'small',
      disabled: view.cursors.length === 0,
      onclick: () => {
        view.cursor = view.cursors.pop() ?? null;
        refresh(view, true);
      },
    }, '← Newer');
    const older = h('button', {
      class: 'small',
      disabled: !page.next_cursor,
      onclick: () => {
        view.cursors.push(view.cursor);
        view.cursor = page.next_cursor;
        refresh(view, true);
      },
    }, 'Older →');
    return h('div', { class: 'pager' }, newer, h('span', { class: 'muted' }, `page ${view.cursors.length + 1}`), older);
  }

  // A filter form whose fields are [name, label, kind]; applying it changes the hash.
  function filterForm(path, params, fields) {
    const controls = fields.map(([name, label, kind, extra]) => {
      let input;
      if (kind === 'state') {
        input = h('select', { name }, h('option', { value: '' }, 'any state'),
          STATES.map((s) => h('option', { value: s, selected: params.get(name) === s }, s)));
      } else if (kind === 'since') {
        input = h('select', { name }, SINCE_CHOICES.map(([value, text]) =>
          h('option', { value, selected: (params.get(name) || '') === value }, text)));
      } else {
        input = h('input', { name, value: params.get(name) || '', placeholder: extra || '', size: kind === 'wide' ? 28 : 14, spellcheck: 'false' });
      }
      return [name, input, label];
    });
    const apply = () => {
      const values = {};
      for (const [name, input] of controls) values[name] = input.value.trim();
      window.location.hash = hashFor(path, values);
    };
    for (const [, input] of controls) if (input.tagName === 'SELECT') input.addEventListener('change', apply);
    return h('form', {
      class: 'filters',
      onsubmit: (event) => {
        event.preventDefault();
        apply();
      },
    }, controls.map(([, input, label]) => h('label', {}, `${label} `, input)),
    h('button', { type: 'submit', class: 'small' }, 'Filter'));
  }

  const JOB_FILTERS = ['queue', 'state', 'url_prefix', 'tag', 'flow_key', 'schedule', 'topic', 'since'];

  function jobsView(params) {
    const body = h('div', { class: 'table-wrap' });
    const searched = params.get('search');
    const note = searched
      ? h('p', { class: 'notice', id: 'search-note' }, `No job has the id “${searched}”; these are the jobs tagged “${searched}”.`)
      : null;
    const view = {
      body,
      root: h('section', {}, h('h1', {}, 'Jobs'), note,
        filterForm('/jobs', params, [['queue', 'Queue', 'text', 'any queue'], ['state', 'State', 'state'],
          ['url_prefix', 'URL prefix', 'wide', 'https://api.example.com/'], ['tag', 'Tag', 'text', 'any tag'],
          ['flow_key', 'Flow key', 'text', 'any key'], ['since', 'Created', 'since']]),
        params.get('schedule') ? h('p', { class: 'notice' }, `Jobs made by schedule “${params.get('schedule')}”`) : null,
        params.get('topic') ? h('p', { class: 'notice' }, `Jobs published to topic “${params.get('topic')}”`) : null,
        body),
      cursor: null,
      cursors: [],
      async refresh() {
        const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
        for (const key of JOB_FILTERS) if (params.get(key)) query.set(key, params.get(key));
        if (view.cursor) query.set('cursor', view.cursor);
        const page = await api('GET', `/v1/jobs?${query}`);
        if (changed(view, [page, view.cursors.length])) render(page);
      },
    };

    function render(page) {
      if (!page.jobs.length) {
        body.replaceChildren(h('p', { class: 'empty' }, 'No jobs match.'), pager(view, page));
        return;
      }
      const rows = page.jobs.map((job) => h('tr', { 'data-job': job.id },
        h('td', {}, jobLink(job.id)),
        h('td', {}, job.queue),
        h('td', {}, badge(job.state)),
        h('td', { class: 'num' }, `${job.attempts}/${job.max_attempts}`),
        h('td', {}, time(job.created_at)),
        h('td', {}, time(job.run_at)),
        h('td', { class: 'url', title: job.url }, job.url),
        h('td', {}, tagList(job.tags)),
        h('td', { class: 'error-text' }, errorText(job.last_error))));
      body.replaceChildren(
        h('table', { id: 'jobs' },
          h('thead', {}, h('tr', {}, ['ID', 'Queue', 'State', 'Attempts', 'Created', 'Run at', 'URL', 'Tags', 'Last error'].map((t) => h('th', {}, t)))),
          h('tbody', {}, rows)),
        pager(view, page));
    }
    return view;
  }

  function progressView(progress) {
    if (!progress || typeof progress !== 'object') return progress === null || progress === undefined ? null : h('span', {}, JSON.stringify(progress));
    let fraction = null;
    if (typeof progress.percent === 'number') fraction = progress.percent / 100;
    else if (typeof progress.current === 'number' && typeof progress.total === 'number' && progress.total > 0) {
      fraction = progress.current / progress.total;
    }
    const parts = [];
    if (fraction !== null) {
      const pct = Math.max(0, Math.min(100, fraction * 100));
      parts.push(h('progress', { id: 'job-progress', max: 100, value: pct.toFixed(1), 'aria-label': 'progress' }),
        h('span', { class: 'progress-figure' }, `${pct.toFixed(pct % 1 ? 1 : 0)}%`));
    }
    if (typeof progress.current === 'number') {
      parts.push(h('span', { class: 'muted' }, typeof progress.total === 'number' ? `${progress.current} of ${progress.total}` : `${progress.current}`));
    }
    if (progress.message) parts.push(h('span', { class: 'progress-message' }, progress.message));
    if (progress.at) parts.push(h('span', { class: 'muted' }, 'reported ', time(progress.at)));
    return h('div', { class: 'progress-box' }, parts);
  }

  function jobView(id) {
    const path = `/v1/jobs/${encodeURIComponent(id)}`;
    const body = h('div');
    const view = {
      root: h('section', {}, h('p', {}, h('a', { href: '#/jobs' }, '← Jobs')), body),
      notFound: `Job ${id} not found: it never existed, or it finished and was deleted or pruned.`,
      async refresh() {
        const [job, attempts] = await Promise.all([api('GET', path), api('GET', `${path}/attempts`)]);
        if (changed(view, [job, attempts, job.state === 'active' ? Math.floor(Date.now() / 1000) : 0])) render(job, attempts.attempts);
      },
    };

    function field(label, value) {
      return [h('dt', {}, label), h('dd', {}, value === null || value === undefined || value === '' ? h('span', { class: 'muted' }, '—') : value)];
    }

    // A field the job may not have: left out when empty.
    function optional(label, value) {
      return value === null || value === undefined || value === '' ? [] : field(label, value);
    }

    function json(value) {
      return value === null || value === undefined ? null : h('pre', { class: 'json' }, JSON.stringify(value, null, 2));
    }

    function render(job, attempts) {
      const actions = h('div', { class: 'actions' });
      const jobPath = `/v1/jobs/${encodeURIComponent(job.id)}`;
      if (job.state === 'dead') {
        actions.append(
          h('button', { onclick: () => act('Redriven: back to pending', () => api('POST', `/v1/dlq/${encodeURIComponent(job.id)}/retry`)) }, 'Redrive'),
          h('button', {
            class: 'danger',
            onclick: async () => {
              if (!window.confirm('Delete this dead job for good?')) return;
              try {
                await api('DELETE', `/v1/dlq/${encodeURIComponent(job.id)}`);
                toast('Deleted');
                window.location.hash = '#/dlq';
              } catch (error) {
                toast(`Delete failed: ${error.message}`, true);
              }
            },
          }, 'Delete'));
      } else if (!TERMINAL.has(job.state)) {
        if (WAITING.has(job.state)) {
          actions.append(h('button', { onclick: () => act('Due now', () => api('POST', `${jobPath}/retry`)) }, 'Run now'));
        }
        actions.append(h('button', { class: 'danger', onclick: () => act('Cancelled', () => api('POST', `${jobPath}/cancel`)) }, 'Cancel'));
      }
      if (TERMINAL.has(job.state)) {
        actions.append(h('button', {
          onclick: () => act('Replayed', async () => {
            const copy = await api('POST', `${jobPath}/replay`);
            window.location.hash = `#/jobs/${encodeURIComponent(copy.id)}`;
            return `Replayed as ${copy.id}`;
          }),
        }, 'Replay'));
      }
      const lastError = job.last_error
        ? h('span', {}, errorText(job.last_error), ' ', time(job.last_error.at))
        : null;
      const result = job.result
        ? h('div', {}, h('span', {}, `HTTP ${job.result.status}`), excerpt(typeof job.result.body === 'string' ? job.result.body : JSON.stringify(job.result.body)))
        : null;
      const attemptRows = attempts.map((a) => h('tr', { 'data-attempt': a.number },
        h('td', { class: 'num' }, a.redrive ? `${a.number} (redrive ${a.redrive})` : a.number),
        h('td', {}, time(a.started_at)),
        h('td', { class: 'num' }, duration(a.duration_ms)),
        h('td', { class: 'num status' }, a.status === null || a.status === undefined ? '—' : a.status),
        h('td', { class: 'error-text' }, a.error || ''),
        h('td', {}, excerpt(a.response_body))));
      if (job.state === 'active') {
        const started = job.attempt_started_at;
        const elapsed = started ? (Date.now() - new Date(started).getTime()) / 1000 : null;
        attemptRows.push(h('tr', { 'data-attempt': job.attempts, class: 'running', id: 'running-attempt' },
          h('td', { class: 'num' }, job.attempts),
          h('td', {}, time(started)),
          h('td', { class: 'num' }, elapsed === null ? '—' : `${age(elapsed)} so far`),
          h('td', { class: 'num status' }, h('span', { class: 'badge state-active' }, 'running')),
          h('td', {}, ''),
          h('td', {}, job.progress ? progressView(job.progress) : h('span', { class: 'muted' }, 'waiting for the endpoint'))));
      }
      body.replaceChildren(
        h('h1', {}, 'Job ', h('span', { class: 'mono', id: 'job-id' }, job.id), ' ', h('span', { id: 'job-state' }, badge(job.state))),
        actions,
        h('dl', { class: 'fields' },
          field('Queue', features.queues ? queueLink(job.queue) : job.queue),
          field('URL', h('span', { class: 'mono' }, `${job.method} ${job.url}`)),
          field('Attempts', `${job.attempts} of ${job.max_attempts}`),
          optional('Progress', progressView(job.progress)),
          optional('Tags', tagList(job.tags)),
          optional('Flow key', job.flow_key ? h('a', { href: hashFor('/jobs', { flow_key: job.flow_key }) }, job.flow_key) : null),
          optional('Schedule', job.schedule ? h('a', { href: hashFor('/jobs', { schedule: job.schedule }) }, job.schedule) : null),
          optional('Topic', job.topic),
          optional('Replay of', job.replay_of ? jobLink(job.replay_of) : null),
          field('Priority', String(job.priority)),
          field('Created', time(job.created_at)),
          field('Run at', time(job.run_at)),
          optional('Finished', job.finished_at ? time(job.finished_at) : null),
          optional('Failed', job.failed_at ? time(job.failed_at) : null),
          field('Timeout', job.timeout === null || job.timeout === undefined ? null : `${job.timeout} s`),
          optional('Idempotency key', job.idempotency_key),
          optional('Unique key', job.unique_key),
          optional('Ordering key', job.ordering_key),
          field('Last error', lastError),
          optional('Result', result),
          optional('Headers', job.headers && Object.keys(job.headers).length ? json(job.headers) : null),
          field('Body', json(job.body))),
        h('h2', {}, `Attempts (${attemptRows.length})`),
        attemptRows.length
          ? h('div', { class: 'table-wrap' }, h('table', { id: 'attempts' },
            h('thead', {}, h('tr', {}, ['#', 'Started', 'Duration', 'Status', 'Error', 'Response'].map((t) => h('th', {}, t)))),
            h('tbody', {}, attemptRows)))
          : h('p', { class: 'empty' }, 'No attempts yet.'));
    }
    return view;
  }

  // -- the dead-letter queue ------------------------------------------------------------

  const DLQ_FILTERS = ['queue', 'tag', 'url_prefix', 'status', 'error_contains', 'since'];

  function dlqView(params) {
    const filter = {};
    for (const key of DLQ_FILTERS) if (params.get(key)) filter[key] = key === 'status' && /^\d+$/.test(params.get(key)) ? Number(params.get(key)) : params.get(key);
    const described = Object.entries(filter).map(([k, v]) => `${k} ${v}`).join(', ') || 'every dead job';
    const selected = new Set();
    const body = h('div', { class: 'table-wrap' });
    const matched = h('span', { id: 'dlq-matched', class: 'muted', role: 'status' });
    const rate = h('input', { name: 'rate_limit', id: 'rate-limit', placeholder: 'e.g. 10/s', size: 9, spellcheck: 'false' });
    const bulk = h('div', { class: 'bulk' },
      h('div', { class: 'actions' },
        h('button', {
          id: 'dlq-dry-run',
          class: 'secondary',
          onclick: async () => {
            try {
              const answer = await api('POST', '/v1/dlq/retry', { ...filter, dry_run: true });
              matched.textContent = `${answer.matched} dead job${answer.matched === 1 ? '' : 's'} match (${described})`;
            } catch (error) {
              toast(`Dry run failed: ${error.message}`, true);
            }
          },
        }, 'Count matching (dry run)'),
        matched),
      h('div', { class: 'actions' },
        h('label', { for: 'rate-limit' }, 'Redrive at most '), rate,
        h('button', {
          id: 'dlq-redrive-matching',
          onclick: () => {
            const limit = rate.value.trim();
            confirmThen(`Redrive ${described}${limit ? ` at ${limit}` : ' at once'}?`, 'Redrive', async () => {
              const answer = await api('POST', '/v1/dlq/retry', limit ? { ...filter, rate_limit: limit } : filter);
              matched.textContent = '';
              return `Redrove ${answer.retried} job(s)${limit ? ` at ${limit}` : ''}`;
            });
          },
        }, 'Redrive matching'),
        h('button', {
          id: 'dlq-delete-matching',
          class: 'danger',
          onclick: () => confirmThen(`Delete ${described} for good?`, 'Delete', async () => {
            const answer = await api('POST', '/v1/dlq/delete', filter);
            matched.textContent = '';
            return `Deleted ${answer.deleted} job(s)`;
          }),
        }, 'Delete matching')),
      h('div', { class: 'actions' },
        h('button', {
          id: 'redrive-selected',
          class: 'small secondary',
          onclick: () => act(`Redrove ${selected.size} job(s)`, async () => {
            for (const id of [...selected]) {
              await api('POST', `/v1/dlq/${encodeURIComponent(id)}/retry`);
              selected.delete(id);
            }
          }),
        }, 'Redrive selected'),
        h('button', {
          id: 'delete-selected',
          class: 'small danger',
          onclick: () => {
            if (!selected.size) return;
            confirmThen(`Delete ${selected.size} dead job(s) for good?`, `Deleted ${selected.size} job(s)`, async () => {
              for (const id of [...selected]) {
                await api('DELETE', `/v1/dlq/${encodeURIComponent(id)}`);
                selected.delete(id);
              }
            });
          },
        }, 'Delete selected')));
    const view = {
      body,
      root: h('section', {}, h('h1', {}, 'Dead letters'),
        filterForm('/dlq', params, [['queue', 'Queue', 'text', 'any queue'], ['tag', 'Tag', 'text', 'any tag'],
          ['url_prefix', 'URL prefix', 'wide', 'https://api.example.com/'], ['status', 'Status', 'text', 'e.g. 500'],
          ['error_contains', 'Error contains', 'text', 'any error'], ['since', 'Failed', 'since']]),
        bulk, body),
      cursor: null,
      cursors: [],
      async refresh() {
        const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
        for (const [key, value] of Object.entries(filter)) query.set(key, String(value));
        if (view.cursor) query.set('cursor', view.cursor);
        const page = await api('GET', `/v1/dlq?${query}`);
        const ids = new Set(page.jobs.map((j) => j.id));
        for (const id of [...selected]) if (!ids.has(id)) selected.delete(id);
        if (changed(view, [page, view.cursors.length])) render(page);
      },
    };

    function render(page) {
      if (!page.jobs.length) {
        body.replaceChildren(h('p', { class: 'empty' }, Object.keys(filter).length ? 'No dead job matches.' : 'The dead-letter queue is empty.'), pager(view, page));
        return;
      }
      const all = h('input', {
        type: 'checkbox',
        'aria-label': 'select all',
        onchange: () => {
          for (const box of body.querySelectorAll('input[data-id]')) {
            box.checked = all.checked;
            if (all.checked) selected.add(box.dataset.id);
            else selected.delete(box.dataset.id);
          }
        },
      });
      const rows = page.jobs.map((job) => {
        const box = h('input', {
          type: 'checkbox',
          'data-id': job.id,
          'aria-label': `select ${job.id}`,
          checked: selected.has(job.id),
          onchange: () => (box.checked ? selected.add(job.id) : selected.delete(job.id)),
        });
        return h('tr', { 'data-job': job.id },
          h('td', {}, box),
          h('td', {}, jobLink(job.id)),
          h('td', {}, job.queue),
          h('td', { class: 'url', title: job.url }, job.url),
          h('td', {}, time(job.failed_at || job.finished_at)),
          h('td', { class: 'num' }, `${job.attempts}/${job.max_attempts}`),
          h('td', { class: 'error-text' }, errorText(job.last_error)),
          h('td', { class: 'row-actions' },
            h('button', { class: 'small', onclick: () => act('Redriven', () => api('POST', `/v1/dlq/${encodeURIComponent(job.id)}/retry`)) }, 'Redrive'),
            h('button', {
              class: 'small danger',
              onclick: () => confirmThen('Delete this dead job for good?', 'Deleted', () => api('DELETE', `/v1/dlq/${encodeURIComponent(job.id)}`)),
            }, 'Delete')));
      });
      body.replaceChildren(
        h('table', { id: 'dlq' },
          h('thead', {}, h('tr', {}, h('th', {}, all), ['ID', 'Queue', 'URL', 'Failed', 'Attempts', 'Error', ''].map((t) => h('th', {}, t)))),
          h('tbody', {}, rows)),
        pager(view, page));
    }
    return view;
  }

  // -- schedules ------------------------------------------------------------------------

  function schedulesView() {
    const body = h('div', { class: 'table-wrap' });
    const view = {
      root: h('section', {}, h('h1', {}, 'Schedules'), body),
      async refresh() {
        if (!features.schedules) {
          if (changed(view, null)) body.replaceChildren(h('p', { class: 'empty' }, 'This pushq has no schedules API.'));
          return;
        }
        const answer = await api('GET', '/v1/schedules');
        const items = Array.isArray(answer) ? answer : (answer && answer.schedules) || [];
        if (changed(view, items)) render(items);
      },
    };

    function render(items) {
      if (!items.length) {
        body.replaceChildren(h('p', { class: 'empty' }, 'No schedules. Create one with PUT /v1/schedules/{name}.'));
        return;
      }
      const rows = items.map((s) => {
        const job = s.job || {};
        const base = `/v1/schedules/${encodeURIComponent(s.name)}`;
        const last = (s.recent_runs || [])[0];
        return h('tr', { 'data-schedule': s.name },
          h('td', { class: 'mono' }, s.name),
          h('td', { class: 'mono' }, s.cron),
          h('td', {}, s.timezone || 'UTC'),
          h('td', {}, s.paused ? h('span', { class: 'badge paused' }, 'paused') : h('span', { class: 'badge running' }, 'active')),
          h('td', {}, s.paused ? h('span', { class: 'muted' }, '—') : time(s.next_run_at)),
          h('td', {}, time(s.last_run_at)),
          h('td', {}, last ? h('span', {}, jobLink(last.id), ' ', badge(last.state)) : h('span', { class: 'muted' }, '—')),
          h('td', {}, job.queue || 'default'),
          h('td', { class: 'url', title: job.url || '' }, job.url || ''),
          h('td', { class: 'row-actions' },
            s.paused
              ? h('button', { class: 'small', onclick: () => act(`Resumed ${s.name}`, () => api('POST', `${base}/resume`)) }, 'Resume')
              : h('button', { class: 'small', onclick: () => act(`Paused ${s.name}`, () => api('POST', `${base}/pause`)) }, 'Pause'),
            h('button', {
              class: 'small',
              onclick: () => act('Trigger', async () => {
                const made = await api('POST', `${base}/trigger`);
                return `Triggered ${s.name}: job ${made.id}`;
              }),
            }, 'Trigger now'),
            h('a', { class: 'small-link', href: hashFor('/jobs', { schedule: s.name }) }, 'Runs'),
            h('button', {
              class: 'small danger',
              onclick: () => confirmThen(`Delete schedule ${s.name}?`, 'Schedule deleted', () => api('DELETE', base)),
            }, 'Delete')));
      });
      body.replaceChildren(h('table', { id: 'schedules' },
        h('thead', {}, h('tr', {}, ['Name', 'Cron', 'Time zone', 'State', 'Next run', 'Last run', 'Last job', 'Queue', 'URL', ''].map((t) => h('th', {}, t)))),
        h('tbody', {}, rows)));
    }
    return view;
  }

  // -- endpoints: delivery health per destination origin ----------------------------------

  const CIRCUIT = { closed: 'healthy', open: 'open', half_open: 'half-open' };

  function endpointsView() {
    const body = h('div', { class: 'table-wrap' });
    const view = {
      root: h('section', {}, h('h1', {}, 'Endpoints'),
        h('p', { class: 'muted' }, 'Delivery health per destination origin, as this pushq node has seen it since it started.'),
        body),
      async refresh() {
        const answer = await api('GET', '/v1/endpoints');
        if (changed(view, answer)) render(answer.endpoints || []);
      },
    };

    function render(items) {
      if (!items.length) {
        body.replaceChildren(h('p', { class: 'empty' }, 'No deliveries since pushq started.'));
        return;
      }
      const rows = items.map((e) => {
        const held = e.held_until || e.open_until;
        return h('tr', { 'data-origin': e.origin },
          h('td', { class: 'mono' }, e.origin),
          h('td', { 'data-circuit': e.state }, h('span', { class: `badge circuit-${CIRCUIT[e.state] ? e.state : 'unknown'}` }, CIRCUIT[e.state] || e.state)),
          h('td', { class: 'num', 'data-cell': 'in-flight' }, `${e.in_flight} / ${e.concurrency_limit === null || e.concurrency_limit === undefined ? '∞' : e.concurrency_limit}`),
          h('td', { class: 'num', 'data-cell': 'success' }, percent(e.success_rate)),
          h('td', { class: 'num' }, `${duration(e.latency_p50_ms)} / ${duration(e.latency_p99_ms)}`),
          h('td', { class: 'num', 'data-cell': 'failures' }, e.consecutive_failures),
          h('td', { class: 'error-text', 'data-cell': 'last-error' }, e.last_error ? h('span', {}, errorText(e.last_error), ' ', time(e.last_error.at)) : ''),
          h('td', {}, held ? h('span', {}, e.held_until ? 'held (Retry-After) until ' : 'nothing sent until ', time(held)) : h('span', { class: 'muted' }, 'sending')));
      });
      body.replaceChildren(h('table', { id: 'endpoints' },
        h('thead', {}, h('tr', {}, ['Origin', 'Circuit', 'In flight / limit', 'Success', 'p50 / p99', 'Failures in a row', 'Last error', 'Held'].map((t) => h('th', {}, t)))),
        h('tbody', {}, rows)));
    }
    return view;
  }

  // -- the search box: a job id, a URL prefix, or a tag --------------------------------------

  async function search(text) {
    const q = text.trim();
    if (!q) return;
    if (/^https?:\/\//i.test(q)) {
      window.location.hash = hashFor('/jobs', { url_prefix: q });
      return;
    }
    try {
      const job = await api('GET', `/v1/jobs/${encodeURIComponent(q)}`);
      window.location.hash = `#/jobs/${encodeURIComponent(job.id)}`;
    } catch (error) {
      if (error.status !== 404) {
        toast(`Search failed: ${error.message}`, true);
        return;
      }
      window.location.hash = hashFor('/jobs', { tag: q, search: q });
    }
  }

  // -- routing and the refresh loop -----------------------------------------------

  function route() {
    const [path, query] = (window.location.hash.replace(/^#/, '') || '/').split('?');
    const params = new URLSearchParams(query || '');
    const parts = path.split('/').filter(Boolean);
    const arg = parts[1] ? decodeURIComponent(parts.slice(1).join('/')) : null;
    if (parts[0] === 'jobs' && arg) return ['jobs', () => jobView(arg)];
    if (parts[0] === 'jobs') return ['jobs', () => jobsView(params)];
    if (parts[0] === 'queues' && arg) return ['overview', () => queueView(arg)];
    if (parts[0] === 'dlq') return ['dlq', () => dlqView(params)];
    if (parts[0] === 'schedules') return ['schedules', () => schedulesView()];
    if (parts[0] === 'endpoints') return ['endpoints', () => endpointsView()];
    return ['overview', () => overviewView()];
  }

  function setLive(ok, error) {
    const live = document.getElementById('live');
    live.className = ok ? 'live ok' : 'live down';
    live.textContent = ok
      ? `live · ${timeText(new Date())}`
      : 'offline';
    live.title = ok ? 'The page refreshes its data every 2 seconds' : String(error && error.message);
  }

  async function refresh(view, force = false) {
    if (!view) return;
    if (view.busy) {
      view.again = true;
      return;
    }
    if (document.hidden && !force) return;
    view.busy = true;
    try {
      await view.refresh();
      setLive(true);
    } catch (error) {
      if (error instanceof ApiError && error.status !== 401 && error.status < 500) {
        // The server answered, so it is not offline: this page's subject is unknown
        // (404), or its filter is refused (400), which is shown where the rows go.
        if (view === current) {
          view.lastKey = undefined;
          if (error.status === 404) {
            view.root.replaceChildren(h('p', { class: 'empty not-found', role: 'alert' }, view.notFound || error.message),
              h('p', {}, h('a', { href: '#/' }, '← Overview')));
          } else {
            (view.body || view.root).replaceChildren(h('p', { class: 'empty form-error', role: 'alert' }, error.message));
          }
        }
        setLive(true);
      } else {
        setLive(false, error);
      }
    } finally {
      view.busy = false;
      if (view.again && view === current) {
        view.again = false;
        refresh(view, true);
      }
    }
  }

  function navigate() {
    const [name, make] = route();
    for (const link of document.querySelectorAll('[data-nav]')) {
      link.classList.toggle('current', link.dataset.nav === name);
    }
    current = make();
    main.replaceChildren(current.root);
    refresh(current, true);
  }

  const searchForm = document.getElementById('search');
  searchForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const input = searchForm.querySelector('input');
    search(input.value).then(() => { input.value = ''; });
  });
  window.addEventListener('hashchange', navigate);
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden) refresh(current, true);
  });
  setInterval(() => refresh(current), POLL_MS);
  detectFeatures().finally(navigate);
})();
