// The pushq dashboard: plain JavaScript, no build step, nothing from a CDN.
//
// Every view reads the /v1 API (plus /ui/api/overview) with the session cookie
// and refreshes itself every 2 seconds without reloading the page. Requests that
// change state send the `x-pushq-csrf: 1` header the server requires of cookie
// sessions. Job data only ever reaches the page as text (textContent or an
// attribute value), never as HTML.
(() => {
  'use strict';

  const STATES = ['scheduled', 'pending', 'active', 'retrying', 'succeeded', 'dead', 'cancelled'];
  const TERMINAL = new Set(['succeeded', 'dead', 'cancelled']);
  const POLL_MS = 2000;
  const PAGE_SIZE = 50;
  const SPARK_POINTS = 30; // one minute of 2-second samples
  const EXCERPT = 300;

  const main = document.getElementById('view');
  const features = { queues: false, schedules: false };
  const throughput = new Map(); // queue -> {last: finished count, deltas: [...]}
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

  function svg(tag, attrs) {
    const el = document.createElementNS('http://www.w3.org/2000/svg', tag);
    for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, String(value));
    return el;
  }

  function badge(state) {
    return h('span', { class: `badge state-${STATES.includes(state) ? state : 'unknown'}` }, state);
  }

  function jobLink(id) {
    return h('a', { href: `#/jobs/${encodeURIComponent(id)}`, class: 'mono' }, id);
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

  function time(iso) {
    if (!iso) return h('span', { class: 'muted' }, '—');
    const date = new Date(iso);
    const sameDay = date.toDateString() === new Date().toDateString();
    const text = sameDay
      ? date.toLocaleTimeString([], { hour12: false })
      : date.toLocaleString([], { hour12: false });
    return h('time', { datetime: iso, title: iso }, text);
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

  function excerpt(text) {
    if (text === null || text === undefined || text === '') return h('span', { class: 'muted' }, '—');
    const short = text.length > EXCERPT ? `${text.slice(0, EXCERPT)}…` : text;
    return h('pre', { class: 'excerpt', title: text.length > EXCERPT ? 'truncated' : null }, short);
  }

  function errorText(lastError) {
    if (!lastError) return '';
    const message = lastError.message || '';
    const status = lastError.status;
    if (status === null || status === undefined || message.includes(String(status))) return message;
    return `${status} ${message}`.trim();
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

  // Pause/resume and schedules are newer routes: show them only when this server has them.
  async function detectFeatures() {
    const has = async (path) => {
      try {
        await api('GET', path);
        return true;
      } catch {
        return false;
      }
    };
    [features.queues, features.schedules] = await Promise.all([has('/v1/queues'), has('/v1/schedules')]);
    document.getElementById('nav-schedules').hidden = !features.schedules;
  }

  function queueList(answer) {
    const items = Array.isArray(answer) ? answer : (answer && answer.queues) || [];
    const byName = new Map();
    for (const queue of items) {
      const name = queue.name ?? queue.queue;
      if (typeof name !== 'string') continue;
      const stats = queue.stats || {};
      byName.set(name, {
        paused: Boolean(queue.paused),
        oldest: stats.oldest_pending_age ?? null,
        delivered: stats.delivered_last_minute ?? null,
        failed: stats.failed_last_minute ?? null,
      });
    }
    return byName;
  }

  // -- views: each has a root element and refresh(), called every POLL_MS ----------

  function changed(view, data) {
    const key = JSON.stringify(data);
    if (key === view.lastKey) return false;
    view.lastKey = key;
    return true;
  }

  function recordThroughput(queues) {
    for (const queue of queues) {
      const finished = queue.counts.succeeded + queue.counts.dead;
      const entry = throughput.get(queue.name);
      if (!entry) {
        throughput.set(queue.name, { last: finished, deltas: [] });
        continue;
      }
      entry.deltas.push(Math.max(0, finished - entry.last));
      entry.last = finished;
      if (entry.deltas.length > SPARK_POINTS) entry.deltas.shift();
    }
  }

  // A sparkline of jobs finished (succeeded or dead) per refresh since the page opened;
  // the number beside it is the server's own count when it has the queues API.
  function drawSpark(cell, queue) {
    const deltas = (throughput.get(queue.name) || { deltas: [] }).deltas;
    const width = 120;
    const height = 24;
    const peak = Math.max(1, ...deltas);
    const step = width / (SPARK_POINTS - 1);
    const offset = SPARK_POINTS - deltas.length;
    const points = deltas
      .map((d, i) => `${((offset + i) * step).toFixed(1)},${(height - 2 - (d / peak) * (height - 4)).toFixed(1)}`)
      .join(' ');
    const chart = svg('svg', { width, height, viewBox: `0 0 ${width} ${height}`, class: 'spark', role: 'img' });
    chart.append(svg('line', { x1: 0, y1: height - 1, x2: width, y2: height - 1, class: 'spark-base' }));
    if (deltas.length > 1) chart.append(svg('polyline', { points, class: 'spark-line' }));
    const seen = deltas.reduce((a, b) => a + b, 0);
    chart.setAttribute('aria-label', `${seen} jobs finished in the last minute`);
    const delivered = typeof queue.delivered === 'number' ? queue.delivered : seen;
    const failed = typeof queue.failed === 'number' && queue.failed > 0
      ? h('span', { class: 'spark-failed', title: 'failed attempts in the last minute' }, `${queue.failed} failed`)
      : null;
    cell.replaceChildren(...[chart, h('span', { class: 'spark-total' }, `${delivered}/min`), failed].filter(Boolean));
  }

  function overviewView() {
    const cards = h('section', { class: 'cards' });
    const table = h('div', { class: 'table-wrap' });
    const view = {
      root: h('section', {}, h('h1', {}, 'Queues'), cards, table),
      sparkCells: new Map(),
      async refresh() {
        const [overview, queueAnswer] = await Promise.all([
          api('GET', '/ui/api/overview'),
          features.queues ? api('GET', '/v1/queues').catch(() => null) : null,
        ]);
        const extra = queueList(queueAnswer);
        const queues = overview.queues.slice();
        for (const name of extra.keys()) {
          if (!queues.some((q) => q.name === name)) {
            queues.push({ name, counts: Object.fromEntries(STATES.map((s) => [s, 0])) });
          }
        }
        queues.sort((a, b) => a.name.localeCompare(b.name));
        recordThroughput(queues);
        const data = queues.map((q) => ({ ...q, ...(extra.get(q.name) || {}) }));
        if (changed(view, data)) render(data);
        for (const { cell, queue } of view.sparkCells.values()) drawSpark(cell, queue);
      },
    };

    function render(queues) {
      const totals = Object.fromEntries(STATES.map((s) => [s, 0]));
      for (const q of queues) for (const s of STATES) totals[s] += q.counts[s] || 0;
      cards.replaceChildren(...['pending', 'scheduled', 'active', 'retrying', 'dead', 'succeeded'].map((s) =>
        h('a', { class: `card state-${s}`, href: s === 'dead' ? '#/dlq' : hashFor('/jobs', { state: s }), 'data-total': s },
          h('span', { class: 'card-value' }, totals[s]), h('span', { class: 'card-label' }, s))));
      view.sparkCells.clear();
      if (!queues.length) {
        table.replaceChildren(h('p', { class: 'empty' },
          'No jobs yet. Enqueue one with POST /v1/jobs and it shows up here.'));
        return;
      }
      const head = h('tr', {}, h('th', {}, 'Queue'), STATES.map((s) => h('th', { class: 'num' }, s)),
        features.queues ? h('th', { class: 'num' }, 'Oldest pending') : null,
        h('th', {}, 'Throughput (last min)'),
        features.queues ? h('th', {}, 'Deliveries') : null);
      const rows = queues.map((q) => {
        const spark = h('td', { class: 'spark-cell' });
        view.sparkCells.set(q.name, { cell: spark, queue: q });
        const cells = STATES.map((s) => {
          const count = q.counts[s] || 0;
          const href = s === 'dead' ? hashFor('/dlq', { queue: q.name }) : hashFor('/jobs', { queue: q.name, state: s });
          return h('td', { class: `num${count ? '' : ' zero'}`, 'data-state': s },
            h('a', { href }, count));
        });
        let control = null;
        if (features.queues) {
          const verb = q.paused ? 'resume' : 'pause';
          control = h('td', {},
            q.paused ? h('span', { class: 'badge paused' }, 'paused') : h('span', { class: 'badge running' }, 'running'),
            ' ',
            h('button', {
              class: 'small',
              onclick: () => act(`${verb === 'pause' ? 'Paused' : 'Resumed'} ${q.name}`,
                () => api('POST', `/v1/queues/${encodeURIComponent(q.name)}/${verb}`)),
            }, verb === 'pause' ? 'Pause' : 'Resume'));
        }
        return h('tr', { 'data-queue': q.name },
          h('th', { scope: 'row' }, h('a', { href: hashFor('/jobs', { queue: q.name }) }, q.name)),
          cells,
          features.queues ? h('td', { class: 'num' }, age(q.oldest)) : null,
          spark,
          control);
      });
      table.replaceChildren(h('table', { id: 'queues' }, h('thead', {}, head), h('tbody', {}, rows)));
    }
    return view;
  }

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

  function filterForm(path, params, withState) {
    const queue = h('input', { name: 'queue', value: params.get('queue') || '', placeholder: 'any queue', size: 16 });
    const state = withState
      ? h('select', { name: 'state' }, h('option', { value: '' }, 'any state'),
        STATES.map((s) => h('option', { value: s, selected: params.get('state') === s }, s)))
      : null;
    const apply = () => {
      window.location.hash = hashFor(path, { queue: queue.value.trim(), state: state ? state.value : '' });
    };
    if (state) state.addEventListener('change', apply);
    return h('form', {
      class: 'filters',
      onsubmit: (event) => {
        event.preventDefault();
        apply();
      },
    }, h('label', {}, 'Queue ', queue), state ? h('label', {}, 'State ', state) : null,
    h('button', { type: 'submit', class: 'small' }, 'Filter'));
  }

  function jobsView(params) {
    const body = h('div', { class: 'table-wrap' });
    const view = {
      root: h('section', {}, h('h1', {}, 'Jobs'), filterForm('/jobs', params, true), body),
      cursor: null,
      cursors: [],
      async refresh() {
        const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
        for (const key of ['queue', 'state']) if (params.get(key)) query.set(key, params.get(key));
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
        h('td', { class: 'error-text' }, errorText(job.last_error))));
      body.replaceChildren(
        h('table', { id: 'jobs' },
          h('thead', {}, h('tr', {}, ['ID', 'Queue', 'State', 'Attempts', 'Created', 'Run at', 'URL', 'Last error'].map((t) => h('th', {}, t)))),
          h('tbody', {}, rows)),
        pager(view, page));
    }
    return view;
  }

  function jobView(id) {
    const path = `/v1/jobs/${encodeURIComponent(id)}`;
    const body = h('div');
    const view = {
      root: h('section', {}, h('p', {}, h('a', { href: '#/jobs' }, '← Jobs')), body),
      async refresh() {
        const [job, attempts] = await Promise.all([api('GET', path), api('GET', `${path}/attempts`)]);
        if (changed(view, [job, attempts])) render(job, attempts.attempts);
      },
    };

    function field(label, value) {
      return [h('dt', {}, label), h('dd', {}, value === null || value === undefined || value === '' ? h('span', { class: 'muted' }, '—') : value)];
    }

    function json(value) {
      return value === null || value === undefined ? null : h('pre', { class: 'json' }, JSON.stringify(value, null, 2));
    }

    function render(job, attempts) {
      const actions = h('div', { class: 'actions' });
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
        actions.append(h('button', { onclick: () => act('Cancelled', () => api('POST', `${path}/cancel`)) }, 'Cancel'));
      }
      const lastError = job.last_error
        ? h('span', {}, errorText(job.last_error), ' ', time(job.last_error.at))
        : null;
      const result = job.result
        ? h('div', {}, h('span', {}, `HTTP ${job.result.status}`), excerpt(typeof job.result.body === 'string' ? job.result.body : JSON.stringify(job.result.body)))
        : null;
      const attemptRows = attempts.map((a) => h('tr', { 'data-attempt': a.number },
        h('td', { class: 'num' }, a.number),
        h('td', {}, time(a.started_at)),
        h('td', { class: 'num' }, duration(a.duration_ms)),
        h('td', { class: 'num status' }, a.status === null || a.status === undefined ? '—' : a.status),
        h('td', { class: 'error-text' }, a.error || ''),
        h('td', {}, excerpt(a.response_body))));
      body.replaceChildren(
        h('h1', {}, 'Job ', h('span', { class: 'mono', id: 'job-id' }, job.id), ' ', h('span', { id: 'job-state' }, badge(job.state))),
        actions,
        h('dl', { class: 'fields' },
          field('Queue', h('a', { href: hashFor('/jobs', { queue: job.queue }) }, job.queue)),
          field('URL', h('span', { class: 'mono' }, `${job.method} ${job.url}`)),
          field('Attempts', `${job.attempts} of ${job.max_attempts}`),
          field('Priority', String(job.priority)),
          field('Created', time(job.created_at)),
          field('Run at', time(job.run_at)),
          field('Finished', job.finished_at ? time(job.finished_at) : null),
          field('Failed', job.failed_at ? time(job.failed_at) : null),
          field('Timeout', job.timeout === null || job.timeout === undefined ? null : `${job.timeout} s`),
          field('Idempotency key', job.idempotency_key),
          field('Unique key', job.unique_key),
          field('Last error', lastError),
          field('Result', result),
          field('Progress', json(job.progress)),
          field('Headers', job.headers && Object.keys(job.headers).length ? json(job.headers) : null),
          field('Body', json(job.body))),
        h('h2', {}, `Attempts (${attempts.length})`),
        attempts.length
          ? h('div', { class: 'table-wrap' }, h('table', { id: 'attempts' },
            h('thead', {}, h('tr', {}, ['#', 'Started', 'Duration', 'Status', 'Error', 'Response'].map((t) => h('th', {}, t)))),
            h('tbody', {}, attemptRows)))
          : h('p', { class: 'empty' }, 'No attempts yet.'));
    }
    return view;
  }

  function dlqView(params) {
    const queue = params.get('queue') || '';
    const selected = new Set();
    const body = h('div', { class: 'table-wrap' });
    const where = queue ? `queue ${queue}` : 'all queues';
    const bulk = h('div', { class: 'actions' },
      h('button', {
        id: 'redrive-selected',
        onclick: () => act(`Redrove ${selected.size} job(s)`, async () => {
          for (const id of [...selected]) {
            await api('POST', `/v1/dlq/${encodeURIComponent(id)}/retry`);
            selected.delete(id);
          }
        }),
      }, 'Redrive selected'),
      h('button', {
        class: 'danger',
        onclick: () => {
          if (!selected.size || !window.confirm(`Delete ${selected.size} dead job(s) for good?`)) return;
          act(`Deleted ${selected.size} job(s)`, async () => {
            for (const id of [...selected]) {
              await api('DELETE', `/v1/dlq/${encodeURIComponent(id)}`);
              selected.delete(id);
            }
          });
        },
      }, 'Delete selected'),
      h('button', {
        onclick: () => {
          if (!window.confirm(`Redrive every dead job in ${where}?`)) return;
          act('Redrive all', async () => {
            const answer = await api('POST', '/v1/dlq/retry', queue ? { queue } : {});
            return `Redrove ${answer.retried} job(s)`;
          });
        },
      }, `Redrive all (${where})`));
    const view = {
      root: h('section', {}, h('h1', {}, 'Dead letters'), filterForm('/dlq', params, false), bulk, body),
      cursor: null,
      cursors: [],
      async refresh() {
        const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
        if (queue) query.set('queue', queue);
        if (view.cursor) query.set('cursor', view.cursor);
        const page = await api('GET', `/v1/dlq?${query}`);
        const ids = new Set(page.jobs.map((j) => j.id));
        for (const id of [...selected]) if (!ids.has(id)) selected.delete(id);
        if (changed(view, [page, view.cursors.length])) render(page);
      },
    };

    function render(page) {
      if (!page.jobs.length) {
        body.replaceChildren(h('p', { class: 'empty' }, 'The dead-letter queue is empty.'), pager(view, page));
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
          h('td', {}, time(job.failed_at || job.finished_at)),
          h('td', { class: 'num' }, `${job.attempts}/${job.max_attempts}`),
          h('td', { class: 'error-text' }, errorText(job.last_error)),
          h('td', { class: 'row-actions' },
            h('button', { class: 'small', onclick: () => act('Redriven', () => api('POST', `/v1/dlq/${encodeURIComponent(job.id)}/retry`)) }, 'Redrive'),
            h('button', {
              class: 'small danger',
              onclick: () => {
                if (window.confirm('Delete this dead job for good?')) {
                  act('Deleted', () => api('DELETE', `/v1/dlq/${encodeURIComponent(job.id)}`));
                }
              },
            }, 'Delete')));
      });
      body.replaceChildren(
        h('table', { id: 'dlq' },
          h('thead', {}, h('tr', {}, h('th', {}, all), ['ID', 'Queue', 'Failed', 'Attempts', 'Last error', ''].map((t) => h('th', {}, t)))),
          h('tbody', {}, rows)),
        pager(view, page));
    }
    return view;
  }

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
        return h('tr', { 'data-schedule': s.name },
          h('td', { class: 'mono' }, s.name),
          h('td', { class: 'mono' }, s.cron),
          h('td', {}, s.timezone || 'UTC'),
          h('td', {}, time(s.next_run_at)),
          h('td', {}, time(s.last_run_at)),
          h('td', {}, job.queue || 'default'),
          h('td', { class: 'url', title: job.url || '' }, job.url || ''),
          h('td', {}, h('button', {
            class: 'small danger',
            onclick: () => {
              if (window.confirm(`Delete schedule ${s.name}?`)) {
                act('Schedule deleted', () => api('DELETE', `/v1/schedules/${encodeURIComponent(s.name)}`));
              }
            },
          }, 'Delete')));
      });
      body.replaceChildren(h('table', { id: 'schedules' },
        h('thead', {}, h('tr', {}, ['Name', 'Cron', 'Time zone', 'Next run', 'Last run', 'Queue', 'URL', ''].map((t) => h('th', {}, t)))),
        h('tbody', {}, rows)));
    }
    return view;
  }

  // -- routing and the refresh loop -----------------------------------------------

  function route() {
    const [path, query] = (window.location.hash.replace(/^#/, '') || '/').split('?');
    const params = new URLSearchParams(query || '');
    const parts = path.split('/').filter(Boolean);
    if (parts[0] === 'jobs' && parts[1]) return ['jobs', () => jobView(decodeURIComponent(parts[1]))];
    if (parts[0] === 'jobs') return ['jobs', () => jobsView(params)];
    if (parts[0] === 'dlq') return ['dlq', () => dlqView(params)];
    if (parts[0] === 'schedules') return ['schedules', () => schedulesView()];
    return ['overview', () => overviewView()];
  }

  function setLive(ok, error) {
    const live = document.getElementById('live');
    live.className = ok ? 'live ok' : 'live down';
    live.textContent = ok
      ? `live · ${new Date().toLocaleTimeString([], { hour12: false })}`
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
      if (error.status === 404 && view === current) {
        view.lastKey = undefined;
        view.root.replaceChildren(h('p', { class: 'empty' }, error.message));
      }
      setLive(false, error);
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

  window.addEventListener('hashchange', navigate);
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden) refresh(current, true);
  });
  setInterval(() => refresh(current), POLL_MS);
  detectFeatures().finally(navigate);
})();
