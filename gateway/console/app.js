// FerryMQ console: a client of the /v1 API. Every call carries the signed-in token (kept in
// sessionStorage only), so the API's permissions decide what works; a refusal shows the API's
// own error code and message. No framework, no build step: this file is served as it is.

const TOKEN_KEY = 'ferrymq.token';
const REFRESH_MS = 2000;
const main = document.getElementById('main');
const notice = document.getElementById('notice');
let timer = null; // the live refresh of the current view

// ---------- helpers ----------

/** Builds an element; text children become text nodes (never parsed as HTML). */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const nf = new Intl.NumberFormat();
const num = (n) => (n === undefined || n === null ? '–' : nf.format(n));

/** "3d 4h", "2m 5s", "850 ms": a duration in milliseconds for people. */
function age(ms) {
  if (ms === undefined || ms === null) return '–';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  let s = Math.floor(ms / 1000);
  const d = Math.floor(s / 86400); s -= d * 86400;
  const hr = Math.floor(s / 3600); s -= hr * 3600;
  const m = Math.floor(s / 60); s -= m * 60;
  if (d) return hr ? `${d}d ${hr}h` : `${d}d`;
  if (hr) return m ? `${hr}h ${m}m` : `${hr}h`;
  if (m) return s ? `${m}m ${s}s` : `${m}m`;
  return `${s}s`;
}

const when = (ms) => (ms ? new Date(ms).toLocaleString() : '–');

/** An error from the API: HTTP status plus the body's {"error": {"code", "message"}}. */
class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
  describe() {
    const what = this.status === 403 ? 'Not permitted'
      : this.status === 401 ? 'Not signed in (token missing, invalid or expired)'
        : `Error ${this.status}`;
    return `${what}: ${this.code} — ${this.message}`;
  }
}

async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${sessionStorage.getItem(TOKEN_KEY) || ''}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let r;
  try {
    r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new ApiError(0, 'Unreachable', `the gateway did not answer (${e.message})`);
  }
  if (r.status === 204) return null;
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!r.ok) {
    const e = data && data.error ? data.error : { code: r.statusText || 'Error', message: text || '(no body)' };
    throw new ApiError(r.status, e.code, e.message);
  }
  return data;
}

function errorBox(e) {
  return h('div', { class: 'error', role: 'alert' }, e instanceof ApiError ? e.describe() : String(e));
}

function flash(text, ok = true) {
  notice.textContent = text;
  notice.className = ok ? 'notice ok' : 'notice';
  notice.hidden = false;
  clearTimeout(flash.t);
  flash.t = setTimeout(() => { notice.hidden = true; }, ok ? 4000 : 10000);
}

/** Runs an action from a form or button, showing the API's answer or refusal. */
async function act(what, fn, after) {
  try {
    const r = await fn();
    flash(what);
    if (after) await after(r);
    return r;
  } catch (e) {
    flash(e instanceof ApiError ? e.describe() : String(e), false);
    return undefined;
  }
}

function table(columns, rows, empty = 'Nothing here yet.') {
  if (!rows.length) return h('p', { class: 'muted' }, empty);
  return h('div', { class: 'table-wrap' }, h('table', {},
    h('thead', {}, h('tr', {}, columns.map((c) => h('th', { class: c.num ? 'num' : '' }, c.title)))),
    h('tbody', {}, rows.map((row) => h('tr', {}, columns.map((c) => {
      const v = c.value(row);
      return h('td', { class: c.num ? 'num' : (c.wrap ? 'wrap' : '') }, v);
    }))))));
}

function field(label, input, cls) {
  return h('label', { class: cls }, label, input);
}

function formValues(form) {
  return Object.fromEntries(new FormData(form).entries());
}

/** The token's claims, decoded for display only (the gateway verifies it). */
function claims(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(part));
  } catch { return null; }
}

function live(fn) {
  stopLive();
  timer = setInterval(() => { if (!document.hidden) fn(); }, REFRESH_MS);
}
function stopLive() { if (timer) clearInterval(timer); timer = null; }

function stamp() {
  return h('span', { class: 'updated' }, `updated ${new Date().toLocaleTimeString()}`);
}

// ---------- sign in ----------

function signIn() {
  stopLive();
  document.getElementById('nav').hidden = true;
  document.getElementById('who').hidden = true;
  const out = h('div');
  const form = h('form', {
    class: 'card signin',
    onsubmit: async (ev) => {
      ev.preventDefault();
      const token = formValues(form).token.trim();
      if (!token) return;
      sessionStorage.setItem(TOKEN_KEY, token);
      // Check it against a route every token may call (a group lookup answers 401 for a bad
      // token, 403 or 404 for a good one that may not or whose group does not exist).
      try {
        await api('GET', '/v1/groups/~');
      } catch (e) {
        if (e.status === 401 || e.status === 0) {
          sessionStorage.removeItem(TOKEN_KEY);
          out.replaceChildren(errorBox(e));
          return;
        }
      }
      location.hash = '#/topics';
      route();
    },
  },
  h('h1', {}, 'Sign in'),
  h('p', { class: 'muted' }, 'Paste a FerryMQ token (', h('code', {}, 'ferrymq token --perm admin:*'),
    '). It stays in this browser tab only (sessionStorage) and is sent with each API call.'),
  field('Token', h('textarea', { name: 'token', required: true, autocomplete: 'off', spellcheck: 'false' })),
  h('p', {}, h('button', { type: 'submit' }, 'Sign in')),
  out);
  main.replaceChildren(form);
}

// ---------- topics ----------

async function topicsView() {
  const wrap = h('div');
  main.replaceChildren(h('h1', {}, 'Topics'), wrap);
  const createForm = h('form', {
    class: 'inline',
    onsubmit: (ev) => {
      ev.preventDefault();
      const v = formValues(createForm);
      act(`Topic ${v.name} created`, () => api('PUT', `/v1/topics/${encodeURIComponent(v.name)}`, {
        type: v.type, queues: Number(v.queues), retention_hours: Number(v.retention_hours),
      }), () => topicsView());
    },
  },
  field('Name', h('input', { name: 'name', required: true, pattern: '[A-Za-z0-9._\\-]{1,127}', placeholder: 'orders' })),
  field('Type', h('select', { name: 'type' }, ['normal', 'fifo', 'delay', 'transaction'].map((t) => h('option', {}, t)))),
  field('Queues', h('input', { name: 'queues', type: 'number', min: 1, max: 1024, value: 4 })),
  field('Retention (hours)', h('input', { name: 'retention_hours', type: 'number', min: 1, value: 72 })),
  h('button', { type: 'submit' }, 'Create topic'));
  let topics;
  let groups = [];
  try {
    topics = (await api('GET', '/v1/topics')).topics;
  } catch (e) {
    wrap.replaceChildren(errorBox(e), h('div', { class: 'card' }, h('h2', {}, 'Create a topic'), createForm));
    return;
  }
  try { groups = (await api('GET', '/v1/groups')).groups; } catch { groups = []; }
  const readers = (t) => groups.filter((g) => g.subscriptions.some((s) => s.topic === t));
  wrap.replaceChildren(
    h('div', { class: 'card' }, h('h2', {}, 'Create a topic'), createForm),
    h('div', { class: 'card' }, table([
      { title: 'Topic', value: (t) => h('a', { href: `#/topics/${encodeURIComponent(t.topic)}` }, t.topic) },
      { title: 'Type', value: (t) => h('span', { class: 'pill' }, t.type) },
      { title: 'Queues', num: true, value: (t) => num(t.queues) },
      { title: 'Messages', num: true, value: (t) => num(t.messages) },
      { title: 'Retention', num: true, value: (t) => `${num(t.retention_hours)} h` },
      { title: 'Groups', wrap: true, value: (t) => readers(t.topic).map((g) => h('a', { href: `#/groups/${encodeURIComponent(g.group)}` }, g.group, ' ')) },
      { title: '', value: (t) => h('button', {
        class: 'danger', type: 'button', 'aria-label': `Delete ${t.topic}`,
        onclick: () => {
          if (!confirm(`Delete topic ${t.topic} and its messages?`)) return;
          act(`Topic ${t.topic} deleted`, () => api('DELETE', `/v1/topics/${encodeURIComponent(t.topic)}`), () => topicsView());
        },
      }, 'Delete') },
    ], topics, 'No topics yet: create one above.')));
}

async function topicView(name) {
  const wrap = h('div');
  main.replaceChildren(h('h1', {}, 'Topic ', h('code', {}, name)), wrap);
  let t;
  try { t = await api('GET', `/v1/topics/${encodeURIComponent(name)}`); } catch (e) {
    wrap.replaceChildren(errorBox(e));
    return;
  }
  let groups = [];
  let groupsError = null;
  try { groups = (await api('GET', '/v1/groups')).groups.filter((g) => g.subscriptions.some((s) => s.topic === name)); } catch (e) { groupsError = e; }
  const stats = t.queue_stats;
  const total = stats.reduce((a, q) => a + (q.max_offset - q.min_offset), 0);
  wrap.replaceChildren(
    h('div', { class: 'row' },
      h('div', { class: 'card' }, h('h2', {}, 'Definition'), h('dl', { class: 'kv' },
        h('dt', {}, 'Type'), h('dd', {}, t.type),
        h('dt', {}, 'Queues'), h('dd', {}, num(t.queues)),
        h('dt', {}, 'Messages held'), h('dd', {}, num(total)),
        h('dt', {}, 'Retention'), h('dd', {}, `${num(t.retention_hours)} hours`)),
      h('p', {}, h('a', { href: `#/send/${encodeURIComponent(name)}` }, 'Send a test message'), ' · ',
        h('a', { href: `#/messages/${encodeURIComponent(name)}` }, 'Find a message'))),
      h('div', { class: 'card' }, h('h2', {}, 'Groups reading it'), groupsError ? errorBox(groupsError) : table([
        { title: 'Group', value: (g) => h('a', { href: `#/groups/${encodeURIComponent(g.group)}` }, g.group) },
        { title: 'Lag', num: true, value: (g) => num((g.backlog.find((b) => b.topic === name) || {}).lag) },
        { title: 'Oldest unacked', num: true, value: (g) => age((g.backlog.find((b) => b.topic === name) || {}).oldest_unacked_age_ms) },
      ], groups, 'No group reads this topic.'))),
    h('div', { class: 'card' }, h('h2', {}, 'Queues'), table([
      { title: 'Queue', num: true, value: (q) => q.queue },
      { title: 'Min offset', num: true, value: (q) => num(q.min_offset) },
      { title: 'Max offset', num: true, value: (q) => num(q.max_offset) },
      { title: 'Messages', num: true, value: (q) => num(q.max_offset - q.min_offset) },
    ], stats)));
}

// ---------- groups ----------

function sum(list, k) { return list.reduce((a, b) => a + (b[k] || 0), 0); }
function oldest(list, k) {
  const v = list.map((b) => b[k]).filter((x) => x !== null && x !== undefined);
  return v.length ? Math.max(...v) : null;
}

/** The push settings of the create form, or undefined when no push URL is given. */
function pushRequest(v) {
  const url = (v.push_url || '').trim();
  if (!url) return undefined;
  return {
    url,
    format: v.push_format,
    max_in_flight: Number(v.push_max_in_flight),
    rate_per_s: Number(v.push_rate_per_s),
    timeout_ms: Number(v.push_timeout_ms),
  };
}

/** The signing secret of a group just created: shown here once, never stored. */
function secretCard(group, secret) {
  const input = h('input', {
    id: 'push-secret', readonly: true, value: secret, spellcheck: 'false', autocomplete: 'off',
    'aria-label': `Signing secret of ${group}`, onfocus: (ev) => ev.target.select(),
  });
  const card = h('section', { class: 'card secret', role: 'alert', 'aria-labelledby': 'push-secret-title' },
    h('h2', { id: 'push-secret-title' }, 'Signing secret of ', h('code', {}, group)),
    h('p', {}, h('strong', {}, 'Copy it now: it is not shown again.'),
      ' Your endpoint checks each push\'s ', h('code', {}, 'webhook-signature'),
      ' with it (Standard Webhooks). Lost, it can only be replaced by turning push off and on again.'),
    h('div', { class: 'secret-row' }, input,
      h('button', {
        type: 'button', class: 'secondary',
        onclick: async () => {
          input.select();
          try { await navigator.clipboard.writeText(secret); flash('Secret copied'); } catch { flash('Select the secret and copy it (the browser refused the clipboard)', false); }
        },
      }, 'Copy'),
      h('button', { type: 'button', class: 'secondary', onclick: () => card.remove() }, 'I have copied it')));
  return card;
}

/** A group's delivery: "push" (with its URL as a tooltip) or "pull". */
function delivery(g) {
  return g.push ? h('span', { class: 'pill', title: g.push.url, 'data-delivery': g.group }, 'push')
    : h('span', { class: 'muted', 'data-delivery': g.group }, 'pull');
}

async function groupsView(created) {
  const listBox = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  const createForm = h('form', {
    onsubmit: (ev) => {
      ev.preventDefault();
      const v = formValues(createForm);
      const sub = { topic: v.topic };
      if (v.filter) sub.filter = v.filter;
      const body = { subscriptions: [sub], mode: v.mode, start_from: v.start_from, max_retries: Number(v.max_retries) };
      const push = pushRequest(v);
      if (push) body.push = push;
      act(`Group ${v.name} created`, () => api('PUT', `/v1/groups/${encodeURIComponent(v.name)}`, body), (r) => groupsView(r));
    },
  },
  h('div', { class: 'inline' },
    field('Name', h('input', { name: 'name', required: true, pattern: '[A-Za-z0-9._\\-]{1,120}', placeholder: 'billing' })),
    field('Topic', h('input', { name: 'topic', required: true, placeholder: 'orders' })),
    field('Tag filter', h('input', { name: 'filter', placeholder: '* or TagA || TagB' })),
    field('Mode', h('select', { name: 'mode' }, h('option', {}, 'clustering'), h('option', {}, 'broadcast'))),
    field('Start from', h('select', { name: 'start_from' }, h('option', {}, 'earliest'), h('option', {}, 'latest'))),
    field('Max retries', h('input', { name: 'max_retries', type: 'number', min: 0, value: 16 }))),
  h('fieldset', { class: 'push' },
    h('legend', {}, 'Push delivery (optional)'),
    h('p', { class: 'muted' }, 'With a URL the gateways POST each message there (a clustering group); without one, consumers call receive. The URL must match the gateways\' --push-allow.'),
    h('div', { class: 'inline' },
      field('Push URL', h('input', { name: 'push_url', type: 'url', placeholder: 'http://127.0.0.1:9000/hooks/orders' }), 'grow'),
      field('Content mode', h('select', { name: 'push_format' },
        h('option', { value: 'binary' }, 'binary (body as is)'),
        h('option', { value: 'structured' }, 'structured (CloudEvents JSON)'))),
      field('Max in flight', h('input', { name: 'push_max_in_flight', type: 'number', min: 1, max: 10000, value: 64 })),
      field('Rate per s (0: no cap)', h('input', { name: 'push_rate_per_s', type: 'number', min: 0, max: 100000, value: 0 })),
      field('Timeout ms', h('input', { name: 'push_timeout_ms', type: 'number', min: 100, max: 600000, value: 10000 })))),
  h('p', {}, h('button', { type: 'submit' }, 'Create group')));
  const secret = created && created.push && created.push.signing_secret;
  main.replaceChildren(h('h1', {}, 'Consumer groups'),
    secret ? secretCard(created.group, secret) : null,
    h('div', { class: 'card' }, h('h2', {}, 'Create a group'), createForm),
    h('div', { class: 'card' }, listBox));
  const load = async () => {
    let groups;
    try { groups = (await api('GET', '/v1/groups')).groups; } catch (e) {
      stopLive();
      listBox.replaceChildren(errorBox(e));
      return;
    }
    listBox.replaceChildren(h('div', { class: 'toolbar' }, h('h2', {}, 'Groups'), stamp()), table([
      { title: 'Group', value: (g) => h('a', { href: `#/groups/${encodeURIComponent(g.group)}` }, g.group) },
      { title: 'Mode', value: (g) => g.mode },
      { title: 'Delivery', value: delivery },
      { title: 'Topics', wrap: true, value: (g) => g.subscriptions.map((s) => s.topic).join(', ') },
      { title: 'Lag', num: true, value: (g) => h('span', { 'data-lag': g.group }, num(sum(g.backlog, 'lag'))) },
      { title: 'Ready', num: true, value: (g) => num(sum(g.backlog, 'ready')) },
      { title: 'In flight', num: true, value: (g) => num(sum(g.backlog, 'inflight')) },
      { title: 'Oldest unacked', num: true, value: (g) => age(oldest(g.backlog, 'oldest_unacked_age_ms')) },
      { title: 'Dead letters', num: true, value: (g) => (g.dead_letters ? h('span', { class: 'pill bad' }, num(g.dead_letters)) : '0') },
    ], groups, 'No groups yet: create one above.'));
  };
  await load();
  live(load);
}

/** A push group's endpoint and settings, and how its deliveries go (refreshed with the lag). */
function pushCard(g) {
  const p = g.push;
  const s = g.push_status || {};
  const lastError = s.last_error
    ? h('span', { class: 'bad-text', id: 'push-last-error' }, s.last_error)
    : h('span', { class: 'muted', id: 'push-last-error' }, 'none');
  return h('div', { class: 'row' },
    h('div', { class: 'card' }, h('h2', {}, 'Push endpoint'), h('dl', { class: 'kv' },
      h('dt', {}, 'URL'), h('dd', {}, h('code', { id: 'push-url' }, p.url)),
      h('dt', {}, 'Content mode'), h('dd', { id: 'push-format' }, p.format === 'structured'
        ? 'structured (application/cloudevents+json)' : 'binary (the body as is, ce-* headers)'),
      h('dt', {}, 'Max in flight'), h('dd', { id: 'push-max-in-flight' }, num(p.max_in_flight)),
      h('dt', {}, 'Rate'), h('dd', { id: 'push-rate' }, p.rate_per_s ? `${num(p.rate_per_s)} per second` : 'no cap'),
      h('dt', {}, 'Timeout'), h('dd', {}, age(p.timeout_ms)),
      h('dt', {}, 'Backoff'), h('dd', { id: 'push-backoff' }, (g.retry_backoff_ms || []).map(age).join(', ')),
      h('dt', {}, 'Signing secret'), h('dd', { class: 'muted' }, 'shown once, when push was turned on')),
    h('p', { class: 'muted' }, 'A 2xx answer acks a message; anything else is retried after the backoff, ',
      'or after a 429 or 503\'s Retry-After when that is longer, and goes to the dead letters after ',
      `${num(1 + g.max_retries)} deliveries.`)),
    h('div', { class: 'card' }, h('div', { class: 'toolbar' }, h('h2', {}, 'Push deliveries'), stamp()),
      h('dl', { class: 'kv' },
        h('dt', {}, 'In flight'), h('dd', { id: 'push-in-flight' }, num(s.in_flight)),
        h('dt', {}, 'Delivered (2xx)'), h('dd', { id: 'push-delivered' }, num(s.delivered_total)),
        h('dt', {}, 'Failed'), h('dd', {}, s.failed_total
          ? h('span', { class: 'pill bad', id: 'push-failed' }, num(s.failed_total))
          : h('span', { id: 'push-failed' }, '0')),
        h('dt', {}, 'Last error'), h('dd', {}, lastError),
        h('dt', {}, 'Last error at'), h('dd', { id: 'push-last-error-time' }, s.last_error_time_ms
          ? `${when(s.last_error_time_ms)} (${age(Math.max(0, Date.now() - s.last_error_time_ms))} ago)` : '–'),
        h('dt', {}, 'Paused'), h('dd', { id: 'push-paused' }, s.paused_until_ms
          ? h('span', { class: 'pill warn' }, `until ${when(s.paused_until_ms)} (the endpoint's Retry-After)`)
          : 'no')),
      h('p', { class: 'muted' }, 'Counted over all gateways since push was turned on.')));
}

async function groupView(name) {
  const head = h('div');
  const lagBox = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  const pushBox = h('div', { id: 'push-box' });
  const dlqBox = h('div');
  main.replaceChildren(h('h1', {}, 'Group ', h('code', {}, name)), head, pushBox,
    h('div', { class: 'card' }, lagBox), h('div', { class: 'card' }, dlqBox));
  let g;
  try { g = await api('GET', `/v1/groups/${encodeURIComponent(name)}`); } catch (e) {
    head.replaceChildren(errorBox(e));
    lagBox.replaceChildren();
    return;
  }
  const topics = g.subscriptions.map((s) => s.topic);
  const resetForm = h('form', {
    class: 'inline',
    onsubmit: (ev) => {
      ev.preventDefault();
      const v = formValues(resetForm);
      let to = v.to;
      if (to === 'time') {
        const t = new Date(v.time).getTime();
        if (!Number.isFinite(t)) { flash('Pick a date and time to reset to', false); return; }
        to = { timestamp_ms: t };
      }
      act(`Group ${name} reset on ${v.topic}`, () => api('POST', `/v1/groups/${encodeURIComponent(name)}/reset`, { topic: v.topic, to }), loadLag);
    },
  },
  field('Topic', h('select', { name: 'topic' }, topics.map((t) => h('option', {}, t)))),
  field('To', h('select', { name: 'to' }, h('option', { value: 'earliest' }, 'earliest'), h('option', { value: 'latest' }, 'latest'), h('option', { value: 'time' }, 'a time…'))),
  field('Time', h('input', { name: 'time', type: 'datetime-local', step: 1 })),
  h('button', { type: 'submit' }, 'Reset offsets'));
  const def = { ...g };
  delete def.lag;
  delete def.push_status;
  head.replaceChildren(h('div', { class: 'row' },
    h('div', { class: 'card' }, h('h2', {}, 'Definition'), h('dl', { class: 'kv' },
      h('dt', {}, 'Mode'), h('dd', {}, g.mode),
      h('dt', {}, 'Delivery'), h('dd', {}, g.push ? 'push (below)' : 'pull (receive)'),
      h('dt', {}, 'Topics'), h('dd', {}, g.subscriptions.map((s) => `${s.topic}${s.filter ? ` (${s.filter})` : ''}${s.sql ? ` (sql: ${s.sql})` : ''}`).join(', ')),
      h('dt', {}, 'Start from'), h('dd', {}, JSON.stringify(g.start_from)),
      h('dt', {}, 'Max retries'), h('dd', {}, num(g.max_retries)),
      h('dt', {}, 'Invisible'), h('dd', {}, age(g.invisible_ms)),
      h('dt', {}, 'Backoff'), h('dd', {}, (g.retry_backoff_ms || []).map(age).join(', '))),
    h('details', {}, h('summary', {}, 'As JSON'), h('pre', {}, JSON.stringify(def, null, 2))),
    h('p', {}, h('button', {
      class: 'danger', type: 'button',
      onclick: () => {
        if (!confirm(`Delete group ${name}?`)) return;
        act(`Group ${name} deleted`, () => api('DELETE', `/v1/groups/${encodeURIComponent(name)}`), () => { location.hash = '#/groups'; });
      },
    }, 'Delete group'))),
    h('div', { class: 'card' }, h('h2', {}, 'Reset to a time'),
      h('p', { class: 'muted' }, 'Moves the group\'s offsets on one topic: messages stored from then on are delivered (again).'), resetForm)));
  async function loadLag() {
    let now;
    try { now = await api('GET', `/v1/groups/${encodeURIComponent(name)}`); } catch (e) {
      stopLive();
      lagBox.replaceChildren(errorBox(e));
      return;
    }
    const { lag } = now;
    if (now.push) pushBox.replaceChildren(pushCard(now));
    else pushBox.replaceChildren();
    lagBox.replaceChildren(h('div', { class: 'toolbar' },
      h('h2', {}, 'Lag ', h('span', { class: 'pill', id: 'total-lag' }, num(sum(lag, 'lag')))), stamp()),
    table([
      { title: 'Topic', value: (r) => r.topic },
      { title: 'Queue', num: true, value: (r) => r.queue },
      { title: 'Committed', num: true, value: (r) => num(r.committed_offset) },
      { title: 'Max offset', num: true, value: (r) => num(r.max_offset) },
      { title: 'Lag', num: true, value: (r) => num(r.lag) },
      { title: 'Ready', num: true, value: (r) => num(r.ready) },
      { title: 'In flight', num: true, value: (r) => num(r.inflight) },
      { title: 'Retrying', num: true, value: (r) => num(r.retrying) },
      { title: 'Oldest unacked', num: true, value: (r) => age(r.oldest_unacked_age_ms) },
    ], lag, 'The group reads no existing topic.'));
  }
  // The dead letters: the form is made once, the count and the list refresh live.
  const dlq = `DLQ.${name}`;
  const dlqCount = h('span', { class: 'pill bad', id: 'dlq-count' }, '…');
  const dlqList = h('div');
  const redriveButton = h('button', { type: 'submit', disabled: true }, 'Re-drive to the group');
  const redriveForm = h('form', {
    class: 'inline',
    onsubmit: (ev) => {
      ev.preventDefault();
      const v = formValues(redriveForm);
      act('Re-drive done', () => api('POST', `/v1/groups/${encodeURIComponent(name)}/redrive`, { max_messages: Number(v.max) }),
        (r) => { flash(`Re-drove ${num(r.moved)} dead letter(s) to ${name}`); loadDlq(); loadLag(); });
    },
  }, field('At most', h('input', { name: 'max', type: 'number', min: 1, max: 100000, value: 1000 })), redriveButton);
  dlqBox.replaceChildren(h('div', { class: 'toolbar' }, h('h2', {}, 'Dead letters ', dlqCount),
    h('span', { class: 'muted' }, `topic ${dlq}`)), redriveForm, dlqList);
  let dlqShown = null; // what the list shows (min..max offsets), to redraw only on a change
  async function loadDlq() {
    let t;
    try { t = await api('GET', `/v1/topics/${encodeURIComponent(dlq)}`); } catch (e) {
      dlqBox.replaceChildren(h('h2', {}, 'Dead letters'), errorBox(e));
      return false;
    }
    const q = t.queue_stats[0] || { min_offset: 0, max_offset: 0 };
    dlqCount.textContent = num(q.max_offset - q.min_offset);
    redriveButton.disabled = q.max_offset === q.min_offset;
    const key = `${q.min_offset}..${q.max_offset}`;
    if (key === dlqShown) return true;
    let messages;
    try {
      messages = (await api('GET', `/v1/topics/${encodeURIComponent(dlq)}/queues/0/messages?offset=${q.min_offset}&max=50&wait_ms=0`)).messages;
    } catch (e) {
      dlqList.replaceChildren(errorBox(e));
      return true;
    }
    dlqShown = key;
    dlqList.replaceChildren(table([
      { title: 'Message id', value: (m) => h('a', { href: `#/messages/${encodeURIComponent(dlq)}/${encodeURIComponent(m.message_id)}` }, m.message_id) },
      { title: 'From topic', value: (m) => m.original_topic || '–' },
      { title: 'Tag', value: (m) => m.tag || '' },
      { title: 'Published', value: (m) => when(m.publish_time_ms) },
      { title: 'Body', wrap: true, value: (m) => preview(m) },
    ], messages, 'No dead letters.'));
    return true;
  }
  const [, dlqReadable] = await Promise.all([loadLag(), loadDlq()]);
  // A token that may not read the DLQ is told once, not every refresh.
  live(() => { loadLag(); if (dlqReadable) loadDlq(); });
}

function preview(m) {
  const b = m.body !== undefined ? m.body : `base64: ${m.body_base64}`;
  return b.length > 120 ? `${b.slice(0, 120)}…` : b;
}

// ---------- messages ----------

function messageCard(m, trace) {
  return h('div', { class: 'card message' },
    h('h2', {}, h('code', {}, m.message_id)),
    h('dl', { class: 'kv' },
      h('dt', {}, 'Topic'), h('dd', {}, m.topic),
      h('dt', {}, 'Queue / offset'), h('dd', {}, `${m.queue} / ${num(m.offset)}`),
      h('dt', {}, 'Published'), h('dd', {}, when(m.publish_time_ms)),
      h('dt', {}, 'Tag'), h('dd', {}, m.tag || '–'),
      h('dt', {}, 'Keys'), h('dd', {}, (m.keys || []).join(', ') || '–'),
      m.message_group ? [h('dt', {}, 'Message group'), h('dd', {}, m.message_group)] : null,
      m.original_topic ? [h('dt', {}, 'Original topic'), h('dd', {}, m.original_topic)] : null),
    h('h2', {}, 'Body'), h('pre', { class: 'body' }, m.body !== undefined ? m.body : `(binary, base64) ${m.body_base64}`),
    h('h2', {}, 'Properties'),
    Object.keys(m.properties || {}).length
      ? table([{ title: 'Name', value: (p) => p[0] }, { title: 'Value', wrap: true, value: (p) => p[1] }], Object.entries(m.properties))
      : h('p', { class: 'muted' }, 'None.'),
    h('h2', {}, 'Trace'), trace);
}

/** The message's trace, or what the gateway says when it has none to give. */
async function traceOf(topic, id) {
  try {
    const t = await api('GET', `/v1/topics/${encodeURIComponent(topic)}/messages/${encodeURIComponent(id)}/trace`);
    return table([
      { title: 'Time', value: (e) => when(e.time_ms) },
      { title: 'Event', value: (e) => e.event },
      { title: 'Group', value: (e) => e.group || '' },
      { title: 'Attempt', num: true, value: (e) => e.attempt || '' },
      { title: 'Detail', wrap: true, value: (e) => e.detail || '' },
    ], t.events || [], 'No events recorded.');
  } catch (e) {
    if (e.status === 404 && e.message === 'no such route') {
      return h('p', { class: 'muted trace-missing' }, 'This gateway does not serve message traces yet (GET …/trace is not in its API). The fields above are everything it records about the message.');
    }
    return errorBox(e);
  }
}

async function messagesView(topic = '', id = '') {
  const results = h('div');
  const form = h('form', {
    class: 'inline',
    onsubmit: async (ev) => {
      ev.preventDefault();
      const v = formValues(form);
      results.replaceChildren(h('p', { class: 'muted' }, 'Searching…'));
      try {
        let found;
        if (v.by === 'id') {
          found = [await api('GET', `/v1/topics/${encodeURIComponent(v.topic)}/messages/${encodeURIComponent(v.q.trim())}`)];
        } else {
          found = (await api('GET', `/v1/topics/${encodeURIComponent(v.topic)}/messages?key=${encodeURIComponent(v.q.trim())}`)).messages;
        }
        if (!found.length) { results.replaceChildren(h('p', { class: 'muted' }, 'No message found.')); return; }
        const cards = [];
        for (const m of found.slice(0, 20)) cards.push(messageCard(m, await traceOf(v.topic, m.message_id)));
        results.replaceChildren(h('p', { class: 'muted' }, `${num(found.length)} message(s)`), ...cards);
      } catch (e) {
        results.replaceChildren(errorBox(e));
      }
    },
  },
  field('Topic', h('input', { name: 'topic', required: true, value: topic })),
  field('Find by', h('select', { name: 'by' }, h('option', { value: 'key' }, 'key'), h('option', { value: 'id', selected: !!id }, 'message id'))),
  field('Key or id', h('input', { name: 'q', required: true, value: id }), 'grow'),
  h('button', { type: 'submit' }, 'Find'));
  main.replaceChildren(h('h1', {}, 'Find a message'), h('div', { class: 'card' }, form), results);
  if (topic && id) form.requestSubmit();
}

// ---------- send ----------

function sendView(topic = '') {
  const out = h('div');
  const form = h('form', {
    onsubmit: (ev) => {
      ev.preventDefault();
      const v = formValues(form);
      const m = { body: v.body };
      if (v.tag) m.tag = v.tag;
      if (v.keys.trim()) m.keys = v.keys.split(',').map((k) => k.trim()).filter(Boolean);
      const props = {};
      for (const line of v.properties.split('\n')) {
        if (!line.trim()) continue;
        const i = line.indexOf('=');
        if (i < 1) { flash(`A property is name=value, not ${JSON.stringify(line)}`, false); return; }
        props[line.slice(0, i).trim()] = line.slice(i + 1).trim();
      }
      if (Object.keys(props).length) m.properties = props;
      if (v.message_group) m.message_group = v.message_group;
      if (v.delay_ms) m.delay_ms = Number(v.delay_ms);
      const body = { messages: [m] };
      if (v.producer_group) body.producer_group = v.producer_group;
      act(`Sent to ${v.topic}`, () => api('POST', `/v1/topics/${encodeURIComponent(v.topic)}/messages`, body), (r) => {
        const res = r.results[0];
        out.replaceChildren(h('div', { class: 'card' }, h('h2', {}, 'Stored'), h('dl', { class: 'kv result' },
          h('dt', {}, 'Message id'), h('dd', {}, h('a', { href: `#/messages/${encodeURIComponent(v.topic)}/${encodeURIComponent(res.message_id)}` }, res.message_id)),
          h('dt', {}, 'Queue / offset'), h('dd', {}, res.queue === undefined ? 'assigned when it becomes visible' : `${res.queue} / ${num(res.offset)}`),
          res.transaction_id ? [h('dt', {}, 'Transaction'), h('dd', {}, res.transaction_id)] : null)));
      });
    },
  },
  h('div', { class: 'inline' },
    field('Topic', h('input', { name: 'topic', required: true, value: topic })),
    field('Tag', h('input', { name: 'tag' })),
    field('Keys (comma-separated)', h('input', { name: 'keys' })),
    field('Message group (FIFO)', h('input', { name: 'message_group' })),
    field('Delay ms (delay topics)', h('input', { name: 'delay_ms', type: 'number', min: 0 })),
    field('Producer group (transactions)', h('input', { name: 'producer_group' }))),
  field('Body', h('textarea', { name: 'body' }, 'hello from the console')),
  field('Properties (one name=value a line)', h('textarea', { name: 'properties' })),
  h('p', {}, h('button', { type: 'submit' }, 'Send')));
  main.replaceChildren(h('h1', {}, 'Send a test message'), h('div', { class: 'card' }, form), out);
}

// ---------- cluster ----------

async function clusterView() {
  const box = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  main.replaceChildren(h('h1', {}, 'Cluster'), box);
  const load = async () => {
    let c;
    try { c = await api('GET', '/v1/cluster'); } catch (e) {
      stopLive();
      box.replaceChildren(errorBox(e));
      return;
    }
    const timers = c.delayed_messages || {};
    box.replaceChildren(h('div', { class: 'row' },
      h('div', { class: 'card' }, h('div', { class: 'toolbar' }, h('h2', {}, 'Manifest'), stamp()), h('dl', { class: 'kv' },
        h('dt', {}, 'Version'), h('dd', { id: 'manifest-version' }, num(c.manifest_version)),
        h('dt', {}, 'Sequencer epoch'), h('dd', {}, num(c.sequencer_epoch)),
        h('dt', {}, 'Store'), h('dd', {}, h('code', {}, c.store)),
        h('dt', {}, 'Delayed messages'), h('dd', {}, `${num(timers.inline)} in the manifest, ${num(timers.spilled)} spilled in ${num(timers.spill_objects)} object(s)`),
        h('dt', {}, 'Inline segments'), h('dd', {}, num(c.inline_segments)))),
      h('div', { class: 'card' }, h('h2', {}, 'Gateways'), table([
        { title: 'Gateway', value: (g) => h('code', {}, g.gateway) },
        { title: 'Address', value: (g) => g.address || '(not advertised)' },
        { title: 'Role', value: (g) => (g.sequencer ? h('span', { class: 'pill' }, 'sequencer') : 'follower') },
      ], c.gateways),
      h('p', { class: 'muted' }, 'This gateway and the sequencer; other followers do not register anywhere.'))));
  };
  await load();
  live(load);
}

// ---------- routing ----------

function route() {
  stopLive();
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) { signIn(); return; }
  const c = claims(token);
  document.getElementById('nav').hidden = false;
  document.getElementById('who').hidden = false;
  document.getElementById('who-name').textContent = c ? `${c.sub} · ${(c.perms || []).join(' ')}` : 'signed in';
  const parts = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  const view = parts[0] || 'topics';
  for (const a of document.querySelectorAll('nav a')) a.classList.toggle('active', a.dataset.view === view);
  notice.hidden = true;
  switch (view) {
    case 'topics': return parts[1] ? topicView(parts[1]) : topicsView();
    case 'groups': return parts[1] ? groupView(parts[1]) : groupsView();
    case 'messages': return messagesView(parts[1] || '', parts[2] || '');
    case 'send': return sendView(parts[1] || '');
    case 'cluster': return clusterView();
    default: main.replaceChildren(h('h1', {}, 'Not found'), h('p', {}, h('a', { href: '#/topics' }, 'Back to topics')));
  }
  return undefined;
}

document.getElementById('sign-out').addEventListener('click', () => {
  sessionStorage.removeItem(TOKEN_KEY);
  location.hash = '';
  route();
});
window.addEventListener('hashchange', route);
route();
