// The Plughost web console: one page, no framework, no build step. It uses only the public admin
// API, with a bearer token that lives in this closure alone (never in storage or a cookie, so no
// other page can borrow it). Every text that comes from the server or the user is written with
// textContent or setAttribute, never parsed as HTML.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const enc = encodeURIComponent;
  const POLL_MS = 2000;
  const POINTS = 60;
  const CHANGED_MS = 10000;
  const EXPIRED = 'Your session expired; sign in again';

  // The admin_rest base is whatever the page is served below, so that `http.base` needs no setting.
  const BASE = (() => {
    const path = location.pathname;
    const at = path.lastIndexOf('/console/');
    return at < 0 ? '/admin_rest' : path.slice(0, at);
  })();

  let token = null;
  let busyCalls = 0;

  class ApiError extends Error {
    constructor(message, status, expired = false) {
      super(message);
      this.status = status;
      this.expired = expired;
    }
  }

  // An element with attributes and children; strings become text nodes.
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value == null || value === false) continue;
      if (key === 'class') el.className = value;
      else if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
      else el.setAttribute(key, value === true ? '' : String(value));
    }
    for (const child of children.flat()) if (child != null && child !== false) el.append(child);
    return el;
  }

  const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`;

  // Puts `rows` in the table body `id`, each cell labelled with its column's heading: on a phone
  // the rows are shown as cards, and the labels (CSS `attr(data-label)`) say what each value is.
  function fill(id, rows) {
    const body = $(id);
    const headings = [...body.closest('table').tHead.rows[0].cells].map((cell) => (cell.querySelector('.sr') ? '' : cell.textContent));
    for (const row of rows) {
      for (const [index, cell] of [...row.cells].entries()) {
        if (headings[index] && cell.colSpan === 1) cell.dataset.label = headings[index];
      }
    }
    body.replaceChildren(...rows);
  }

  // ---- Talking to the server ----

  // The sentence an API failure is worth, whatever dialect or endpoint answered.
  function explain(data, response) {
    if (data && typeof data === 'object') {
      for (const key of ['error_description', 'result', 'message']) {
        if (typeof data[key] === 'string' && data[key]) return data[key];
      }
      if (typeof data.error === 'string') return data.error.replace(/_/g, ' ');
    }
    return `the server answered ${response.status}${response.statusText ? ` ${response.statusText}` : ''}`;
  }

  // One API call. `busy` (the default) marks it as started by the user, so that #busy shows while
  // it runs; polls pass false. A 401 on an authorised call ends the session.
  async function call(method, url, { json, form, auth = true, text = false, busy = true, full = false } = {}) {
    const headers = { accept: text ? 'text/plain' : 'application/json' };
    let body;
    if (auth) headers.authorization = `Bearer ${token}`;
    if (json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(json);
    } else if (form) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      body = new URLSearchParams(form).toString();
    }
    const sentWith = token;
    if (busy) setBusy(1);
    let response;
    let raw;
    try {
      response = await fetch(url, { method, headers, body, cache: 'no-store', credentials: 'omit' });
      raw = await response.text();
    } catch (error) {
      throw new ApiError(`the server could not be reached (${error.message})`, 0);
    } finally {
      if (busy) setBusy(-1);
    }
    if (auth && response.status === 401) {
      if (token && token === sentWith) expire();
      throw new ApiError(EXPIRED, 401, true);
    }
    let data = null;
    // Failures are JSON in every dialect, the metrics endpoint's included.
    if ((!text || !response.ok) && raw) {
      try {
        data = JSON.parse(raw);
      } catch {
        // Not JSON (a proxy's error page): explained by its status below.
      }
    }
    if (!response.ok) throw new ApiError(explain(data, response), response.status);
    if (text) return raw;
    return full ? { status: response.status, data } : data;
  }

  const api = (method, path, options) => call(method, BASE + path, options);

  function setBusy(delta) {
    busyCalls += delta;
    $('busy').hidden = busyCalls <= 0;
  }

  function notify(text, kind) {
    const notice = $('notice');
    notice.textContent = text;
    notice.classList.toggle('error', kind === 'error');
    notice.classList.toggle('ok', kind === 'ok');
  }

  // Runs a user's operation: `failure` prefixes the API's reason (`Could not create user "x"`),
  // `success` (text, or a function of the result) is shown when it worked. Resolves to the result,
  // or to undefined when it failed.
  async function operation(failure, work, success) {
    try {
      const result = await work();
      if (success) notify(typeof success === 'function' ? success(result) : success, 'ok');
      return result === undefined ? true : result;
    } catch (error) {
      if (!error.expired) notify(`${failure}: ${error.message}`, 'error');
      return undefined;
    }
  }

  // Repeats `work` every POLL_MS until stopped, never two at once; `live()` tells `work` whether
  // its answer is still wanted.
  function poll(work) {
    let stopped = false;
    let timer = null;
    const live = () => !stopped && token !== null;
    const tick = async () => {
      try {
        await work(live);
      } catch (error) {
        // Each poll reports its API failures itself; this is a bug, which must not stop polling.
        console.error(error);
      }
      if (!stopped) timer = setTimeout(tick, POLL_MS);
    };
    tick();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }

  // A failing poll says so once, not every 2 s, until it works again.
  const pollFailures = new Map();
  function pollFailed(source, failure, error) {
    if (error.expired) return;
    const text = `${failure}: ${error.message}`;
    if (pollFailures.get(source) !== text) notify(text, 'error');
    pollFailures.set(source, text);
  }

  // ---- Confirmations ----

  function ask(text, yes = 'Yes') {
    const dialog = $('confirm');
    if (dialog.open) return Promise.resolve(false);
    $('confirm-text').textContent = text;
    $('confirm-yes').textContent = yes;
    dialog.returnValue = '';
    dialog.showModal();
    return new Promise((resolve) => {
      dialog.addEventListener('close', () => resolve(dialog.returnValue === 'yes'), { once: true });
    });
  }

  $('confirm-yes').addEventListener('click', () => $('confirm').close('yes'));
  $('confirm-no').addEventListener('click', () => $('confirm').close('no'));

  // ---- Session ----

  let stopMetrics = null;
  let leavePage = null;

  $('signin').addEventListener('submit', async (event) => {
    event.preventDefault();
    const username = $('signin-user').value.trim();
    const password = $('signin-password').value;
    $('signin-error').textContent = '';
    $('signin-submit').disabled = true;
    try {
      const granted = await call('POST', '/oauth/token', {
        auth: false,
        form: { grant_type: 'password', username, password, scope: 'admin_rest:*', ttl: '28800' },
      });
      if (!granted || typeof granted.access_token !== 'string') throw new ApiError('the server sent no token', 0);
      token = granted.access_token;
      // A token is no proof of being an administrator: ask the API before opening the console.
      await api('GET', '/ping').catch((error) => {
        if (error.status === 401 || error.status === 403) throw error;
      });
      $('signin-password').value = '';
      startSession(username);
    } catch (error) {
      // Best effort: a token that must not be used is not worth an error of its own.
      if (token) revoke(token).catch(() => {});
      token = null;
      const text = `Could not sign in: ${error.status === 401 ? 'the token was refused' : error.message}`;
      $('signin-error').textContent = text;
      notify(text, 'error');
    } finally {
      $('signin-submit').disabled = false;
    }
  });

  $('signout').addEventListener('click', async () => {
    const old = token;
    endSession();
    try {
      await revoke(old);
      notify('Signed out', 'ok');
    } catch (error) {
      notify(`Signed out here, but the server could not revoke the token: ${error.message}`, 'error');
    }
  });

  const revoke = (old) => call('POST', '/oauth/revoke', { auth: false, form: { token: old } });

  function startSession(user) {
    $('whoami').textContent = user;
    $('signin').hidden = true;
    $('app').hidden = false;
    notify('', null);
    pollFailures.clear();
    stopMetrics = poll(scrape);
    if (!location.hash.startsWith('#/')) history.replaceState(null, '', '#/dashboard');
    route();
  }

  // Forgets the token and everything shown with it, and shows the sign-in form.
  function endSession() {
    token = null;
    if (stopMetrics) stopMetrics();
    if (leavePage) leavePage();
    stopMetrics = leavePage = null;
    resetState();
    for (const id of ['user-list', 'session-list', 'roster-list', 'module-list', 'module-events', 'whitelist-list',
      'rule-list', 'plugin-rates']) $(id).replaceChildren();
    for (const section of document.querySelectorAll('main > section')) section.hidden = true;
    for (const id of ['whoami', 'user-title', 'user-count', 'rule-admins']) $(id).textContent = '';
    $('stat-users').textContent = '0';
    $('stat-messages').textContent = $('stat-requests').textContent = '0.0';
    $('app').hidden = true;
    $('signin').hidden = false;
    history.replaceState(null, '', location.pathname + location.search);
    $('signin-user').focus();
  }

  function expire() {
    endSession();
    notify(EXPIRED, 'error');
    $('signin-error').textContent = EXPIRED;
  }

  // ---- Routing ----

  const pages = {
    dashboard: enterDashboard,
    users: enterUsers,
    user: enterUser,
    messages: enterMessages,
    modules: enterModules,
    access: enterAccess,
  };

  function route() {
    if (!token) return;
    const [, name, ...rest] = location.hash.split('/');
    let arg = '';
    try {
      arg = decodeURIComponent(rest.join('/'));
    } catch {
      // A hand-typed hash with a stray %: take it as no argument.
    }
    let page = Object.prototype.hasOwnProperty.call(pages, name) ? name : 'dashboard';
    if (page === 'user' && !arg) page = 'users';
    if (leavePage) leavePage();
    leavePage = null;
    for (const section of document.querySelectorAll('main > section')) section.hidden = section.id !== `page-${page}`;
    const tab = page === 'user' ? 'users' : page;
    for (const link of document.querySelectorAll('a[data-page]')) {
      if (link.dataset.page === tab) link.setAttribute('aria-current', 'page');
      else link.removeAttribute('aria-current');
    }
    // A page's enter function returns how to leave it, when it has something to stop.
    leavePage = pages[page](arg) || null;
  }

  window.addEventListener('hashchange', route);

  const userHash = (jid) => `#/user/${enc(jid).replace(/%40/g, '@')}`;

  // ---- Dashboard ----

  const charts = {
    users: { canvas: 'chart-users', points: [], digits: 0 },
    messages: { canvas: 'chart-messages', points: [], digits: 1 },
    requests: { canvas: 'chart-requests', points: [], digits: 1 },
  };
  let lastScrape = null;

  // Prometheus text format: `name{label="value",...} number`, label values escaped with \\, \" and
  // \n. Comments and unparsable lines are skipped.
  function parseMetrics(text) {
    const samples = [];
    for (const line of text.split('\n')) {
      if (!line || line.startsWith('#')) continue;
      const match = /^([A-Za-z_:][\w:]*)(\{.*\})?\s+(\S+)/.exec(line);
      if (!match) continue;
      const value = Number(match[3].replace(/^\+?Inf$/, 'Infinity'));
      if (!Number.isFinite(value)) continue;
      const labels = {};
      for (const [, key, raw] of (match[2] || '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) {
        labels[key] = raw.replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c));
      }
      samples.push({ name: match[1], key: match[1] + (match[2] || ''), labels, value });
    }
    return samples;
  }

  // How much a counter grew; a counter that went down was reset (a restart, a reloaded plugin),
  // and has grown by its whole new value since.
  const growth = (before, now) => (now >= before ? now - before : now);

  async function scrape(live) {
    let text;
    try {
      text = await call('GET', '/metrics', { text: true, busy: false });
    } catch (error) {
      if (!live()) return;
      $('dashboard-note').textContent = `The metrics are not available: ${error.message}`;
      pollFailed('metrics', 'Could not read the metrics', error);
      return;
    }
    if (!live()) return;
    pollFailures.delete('metrics');
    const now = performance.now() / 1000;
    const counters = new Map();
    const pluginOf = new Map();
    let users = 0;
    for (const sample of parseMetrics(text)) {
      if (sample.name === 'plughost_c2s_sessions') users += sample.value;
      else if (sample.name === 'plughost_c2s_stanzas_total' && sample.labels.kind === 'message') {
        counters.set(sample.key, sample.value);
        pluginOf.set(sample.key, null);
      } else if (sample.name === 'plughost_plugin_requests_total') {
        counters.set(sample.key, sample.value);
        pluginOf.set(sample.key, sample.labels.plugin || '?');
      }
    }
    const seconds = lastScrape ? now - lastScrape.at : 0;
    let messages = 0;
    const plugins = new Map();
    for (const [key, value] of counters) {
      const plugin = pluginOf.get(key);
      if (plugin !== null && !plugins.has(plugin)) plugins.set(plugin, 0);
      if (!lastScrape || seconds <= 0) continue;
      const rate = growth(lastScrape.counters.get(key) ?? 0, value) / seconds;
      if (plugin === null) messages += rate;
      else plugins.set(plugin, plugins.get(plugin) + rate);
    }
    const requests = [...plugins.values()].reduce((sum, rate) => sum + rate, 0);
    const first = !lastScrape;
    lastScrape = { at: now, counters };
    $('stat-users').textContent = String(users);
    $('stat-messages').textContent = messages.toFixed(1);
    $('stat-requests').textContent = requests.toFixed(1);
    $('dashboard-note').textContent = 'From /metrics every 2 s; each chart shows the last 2 minutes.';
    push(charts.users, users);
    if (!first) {
      push(charts.messages, messages);
      push(charts.requests, requests);
    }
    renderPluginRates(plugins);
    if (!$('page-dashboard').hidden) drawCharts();
  }

  function push(chart, value) {
    chart.points.push(value);
    if (chart.points.length > POINTS) chart.points.shift();
  }

  function renderPluginRates(plugins) {
    const top = Math.max(0, ...plugins.values());
    const items = [...plugins.keys()].sort().map((plugin) => {
      const rate = plugins.get(plugin);
      const bar = h('span', { class: 'bar' });
      bar.style.width = `${rate > 0 ? Math.max(1, (rate / top) * 100) : 0}%`;
      return h('li', { 'data-plugin': plugin },
        h('span', { class: 'plugin' }, plugin), h('span', { class: 'meter' }, bar), h('span', { class: 'rate' }, `${rate.toFixed(1)}/s`));
    });
    $('plugin-rates').replaceChildren(...items);
  }

  // A nice upper bound for the axis: 1, 2 or 5 times a power of ten.
  function ceiling(value) {
    if (value <= 1) return 1;
    const power = 10 ** Math.floor(Math.log10(value));
    return [1, 2, 5, 10].map((step) => step * power).find((bound) => bound >= value);
  }

  function drawCharts() {
    for (const chart of Object.values(charts)) draw($(chart.canvas), chart.points, chart.digits);
  }

  function draw(canvas, points, digits) {
    const width = canvas.clientWidth;
    const height = canvas.clientHeight;
    if (!width || !height) return;
    const ratio = window.devicePixelRatio || 1;
    if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
      canvas.width = Math.round(width * ratio);
      canvas.height = Math.round(height * ratio);
    }
    const g = canvas.getContext('2d');
    const style = getComputedStyle(canvas);
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    g.clearRect(0, 0, width, height);
    const max = ceiling(Math.max(0, ...points));
    const left = 34;
    const top = 8;
    const bottom = height - 6;
    const y = (value) => bottom - (value / max) * (bottom - top);
    const x = (index) => left + ((width - left - 4) * (POINTS - points.length + index)) / (POINTS - 1);
    g.font = `11px ${style.fontFamily}`;
    g.textAlign = 'right';
    g.textBaseline = 'middle';
    g.lineWidth = 1;
    for (const value of [0, max / 2, max]) {
      g.strokeStyle = style.getPropertyValue('--grid').trim() || '#ddd';
      g.beginPath();
      g.moveTo(left, Math.round(y(value)) + 0.5);
      g.lineTo(width - 4, Math.round(y(value)) + 0.5);
      g.stroke();
      // A whole-number chart labels no half step.
      if (value % 1 !== 0 && !digits) continue;
      g.fillStyle = style.getPropertyValue('--muted').trim() || '#777';
      g.fillText(value.toFixed(value % 1 === 0 ? 0 : digits), left - 6, y(value));
    }
    if (points.length === 1) {
      // The first sample: a dot until there is a line to draw.
      g.fillStyle = style.color;
      g.beginPath();
      g.arc(x(0), y(points[0]), 3, 0, 2 * Math.PI);
      g.fill();
      return;
    }
    if (points.length < 2) return;
    g.beginPath();
    points.forEach((value, index) => g.lineTo(x(index), y(value)));
    g.strokeStyle = style.color;
    g.lineWidth = 2;
    g.lineJoin = 'round';
    g.stroke();
    g.lineTo(x(points.length - 1), bottom);
    g.lineTo(x(0), bottom);
    g.closePath();
    g.globalAlpha = 0.12;
    g.fillStyle = style.color;
    g.fill();
    g.globalAlpha = 1;
  }

  function enterDashboard() {
    drawCharts();
    window.addEventListener('resize', drawCharts);
    return () => window.removeEventListener('resize', drawCharts);
  }

  // ---- Users ----

  let userSearch = 0;
  let searchTimer = null;

  function enterUsers() {
    listUsers();
  }

  async function listUsers() {
    const search = $('user-search').value.trim();
    const seq = ++userSearch;
    const query = new URLSearchParams({ search, limit: '100' });
    const listed = await operation('Could not list the users', () => Promise.all([
      api('GET', `/users/registered?${query}`),
      // Only for the Online column: the list is still worth showing without it.
      api('GET', '/users').catch(() => null),
    ]));
    if (!listed || seq !== userSearch || !token) return;
    const [registered, online] = listed;
    const { count = 0, users = [] } = registered.result || {};
    const resources = new Map();
    for (const entry of online?.result?.users || []) resources.set(entry.jid, (resources.get(entry.jid) || 0) + 1);
    const rows = users.map((jid) => {
      const sessions = resources.get(jid) || 0;
      return h('tr', { 'data-jid': jid },
        h('td', { class: 'jid' }, h('a', { href: userHash(jid), 'data-action': 'open' }, jid)),
        h('td', { class: 'online' }, sessions ? plural(sessions, 'session') : 'no'),
        h('td', { class: 'actions' }, h('button', { type: 'button', class: 'danger', 'data-action': 'delete', onclick: () => deleteUser(jid) }, 'Delete')));
    });
    if (!rows.length) rows.push(h('tr', null, h('td', { colspan: 3, class: 'empty' }, search ? 'No user matches.' : 'No users yet.')));
    fill('user-list', rows);
    $('user-count').textContent = count > users.length ? `Showing ${users.length} of ${count} users` : plural(count, 'user');
  }

  $('user-search').addEventListener('input', () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(listUsers, 250);
  });
  $('user-search').addEventListener('keydown', (event) => {
    if (event.key !== 'Enter') return;
    event.preventDefault();
    clearTimeout(searchTimer);
    listUsers();
  });

  async function deleteUser(jid) {
    if (!(await ask(`Delete ${jid}? Its roster and offline messages are deleted and its sessions closed.`, 'Delete'))) return;
    const done = await operation(`Could not delete user "${jid}"`, () => api('DELETE', `/user/${enc(jid)}`), `Deleted user ${jid}`);
    if (done) listUsers();
  }

  $('user-create').addEventListener('submit', async (event) => {
    event.preventDefault();
    const name = $('user-create-name').value.trim();
    const password = $('user-create-password').value;
    const created = await operation(`Could not create user "${name}"`, async () => {
      try {
        return await api('POST', `/user/${enc(name)}`, { json: { password } });
      } catch (error) {
        // A name that cannot be an account here is "Invalid request path" to mod_admin_rest.
        if (error.status === 404) throw new ApiError(`not a valid user name on this server (${error.message})`, 404);
        throw error;
      }
    }, (data) => data.result);
    if (!created) return;
    $('user-create-name').value = '';
    $('user-create-password').value = '';
    const jid = String(created.result).replace(/^.*: /, '');
    const search = $('user-search');
    if (!jid.toLowerCase().includes(search.value.trim().toLowerCase())) search.value = '';
    listUsers();
  });

  // ---- One user ----

  let currentUser = '';
  let refreshUser = () => {};
  let shown = { sessions: '', roster: '' };

  function enterUser(jid) {
    currentUser = jid;
    shown = { sessions: null, roster: null };
    $('user-title').textContent = jid;
    $('user-password-user').value = jid;
    $('session-list').replaceChildren();
    $('roster-list').replaceChildren();
    let stopped = false;
    const load = async (live = () => !stopped && token !== null) => {
      try {
        const data = await api('GET', `/user/${enc(jid)}`, { busy: false });
        if (!live() || currentUser !== jid) return;
        pollFailures.delete('user');
        renderUser(data.result?.user || {});
      } catch (error) {
        if (live()) pollFailed('user', `Could not load ${jid}`, error);
      }
    };
    refreshUser = () => load();
    const stop = poll(load);
    return () => {
      stopped = true;
      currentUser = '';
      refreshUser = () => {};
      stop();
    };
  }

  function address(session) {
    const ip = String(session.ip || '');
    return ip.includes(':') ? `[${ip}]:${session.port}` : `${ip}:${session.port}`;
  }

  // Tables are rebuilt only when their data changed, so that a row being clicked stays the same.
  function renderUser(user) {
    const jid = currentUser;
    const sessions = user.sessions || [];
    const roster = user.roster || [];
    const sessionsKey = JSON.stringify(sessions);
    if (sessionsKey !== shown.sessions) {
      shown.sessions = sessionsKey;
      const rows = sessions.map((session) => h('tr', { 'data-resource': session.resource },
        h('td', { class: 'resource' }, session.resource),
        h('td', { class: 'address' }, address(session)),
        h('td', { class: 'secure' }, session.secure ? 'yes' : 'no'),
        h('td', { class: 'since' }, new Date(session.connected_since * 1000).toLocaleString()),
        h('td', { class: 'presence' }, [session.presence?.show, session.presence?.status].filter(Boolean).join(': ')),
        h('td', { class: 'actions' }, h('button', { type: 'button', class: 'danger', 'data-action': 'kick', onclick: () => kick(jid, session.resource) }, 'Kick'))));
      if (!rows.length) rows.push(h('tr', null, h('td', { colspan: 6, class: 'empty' }, 'Not connected.')));
      fill('session-list', rows);
    }
    const rosterKey = JSON.stringify(roster);
    if (rosterKey !== shown.roster) {
      shown.roster = rosterKey;
      const rows = roster.map((item) => h('tr', { 'data-contact': item.jid },
        h('td', { class: 'contact' }, item.jid),
        h('td', { class: 'name' }, item.name || ''),
        h('td', { class: 'groups' }, (item.groups || []).join(', ')),
        h('td', { class: 'subscription' }, item.subscription),
        h('td', { class: 'actions' }, h('button', { type: 'button', class: 'danger', 'data-action': 'remove', onclick: () => removeContact(jid, item.jid) }, 'Remove'))));
      if (!rows.length) rows.push(h('tr', null, h('td', { colspan: 5, class: 'empty' }, 'No contacts.')));
      fill('roster-list', rows);
    }
  }

  async function kick(jid, resource) {
    if (!(await ask(`Disconnect ${jid}/${resource}?`, 'Kick'))) return;
    await operation(`Could not kick ${jid}/${resource}`,
      () => api('DELETE', `/user/${enc(jid)}/sessions/${enc(resource)}`), `Disconnected ${jid}/${resource}`);
    refreshUser();
  }

  async function removeContact(jid, contact) {
    if (!(await ask(`Remove ${contact} from the roster of ${jid}? The subscriptions both ways are cancelled.`, 'Remove'))) return;
    await operation(`Could not remove ${contact}`,
      () => api('DELETE', `/roster/${enc(jid)}`, { json: { contact } }), `Removed ${contact} from the roster of ${jid}`);
    refreshUser();
  }

  $('roster-add').addEventListener('submit', async (event) => {
    event.preventDefault();
    const jid = currentUser;
    const contact = $('roster-add-jid').value.trim();
    const name = $('roster-add-name').value.trim();
    const groups = $('roster-add-groups').value.split(',').map((group) => group.trim()).filter(Boolean);
    const body = { contact, groups };
    if (name) body.name = name;
    const added = await operation(`Could not add ${contact} to the roster of ${jid}`,
      () => api('POST', `/roster/${enc(jid)}`, { json: body }), `Added ${contact} to the roster of ${jid}`);
    if (!added) return;
    for (const id of ['roster-add-jid', 'roster-add-name', 'roster-add-groups']) $(id).value = '';
    refreshUser();
  });

  $('user-password').addEventListener('submit', async (event) => {
    event.preventDefault();
    const jid = currentUser;
    const password = $('user-password-new').value;
    const changed = await operation(`Could not change the password of ${jid}`,
      () => api('PATCH', `/user/${enc(jid)}/password`, { json: { password } }),
      `Changed the password of ${jid}; its sessions were closed`);
    if (changed) $('user-password-new').value = '';
  });

  // ---- Messages ----

  let prefixes = { message: '', multicast: '', broadcast: '' };

  function enterMessages() {
    updateMessageForm();
    loadPrefixes();
  }

  async function loadPrefixes() {
    try {
      const data = await api('GET', '/messages/prefixes', { busy: false });
      prefixes = { ...prefixes, ...data.result };
      updateMessageForm();
    } catch (error) {
      if (!error.expired) notify(`Could not read the message prefixes (the preview shows none): ${error.message}`, 'error');
    }
  }

  const recipients = () => $('message-to').value.split(/[\s,]+/).filter(Boolean);

  function updateMessageForm() {
    const mode = $('message-mode').value;
    const to = $('message-to');
    $('message-to-label').hidden = to.hidden = mode === 'broadcast';
    $('message-to-hint').textContent = mode === 'multicast' ? 'Users (separated by commas, spaces or lines)' : 'User';
    to.rows = mode === 'multicast' ? 3 : 1;
    const prefix = String(prefixes[mode === 'single' ? 'message' : mode] || '');
    const body = $('message-body').value;
    const preview = $('message-preview');
    preview.replaceChildren();
    if (prefix) preview.append(h('span', { class: 'prefix' }, prefix));
    if (body) preview.append(body);
  }

  $('message-mode').addEventListener('change', updateMessageForm);
  for (const id of ['message-mode', 'message-body']) $(id).addEventListener('input', updateMessageForm);

  $('message-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const mode = $('message-mode').value;
    const message = $('message-body').value;
    if (!message.trim()) {
      notify('Write a message first', 'error');
      return;
    }
    let sent;
    if (mode === 'single') {
      const to = $('message-to').value.trim();
      sent = await operation(`Could not send the message to ${to}`, async () => {
        if (!to) throw new ApiError('no recipient given', 0);
        const user = await api('GET', `/user/${enc(to)}`);
        const resources = user.result?.user?.sessions?.length || 0;
        const { status } = await api('POST', `/message/${enc(to)}`, { json: { message }, full: true });
        return status === 202 ? `Stored offline for ${to}: delivered at its next sign-in` : `Delivered to ${plural(resources, 'resource')} of ${to}`;
      }, (text) => text);
    } else if (mode === 'multicast') {
      const list = recipients();
      sent = await operation('Could not send the messages', async () => {
        if (!list.length) throw new ApiError('no recipients given', 0);
        const data = await api('POST', '/message', { json: { recipients: list.map((to) => ({ to, message })) } });
        const [delivered = 0, queued = 0] = (/(\d+)\/(\d+)/.exec(String(data.result)) || []).slice(1).map(Number);
        return `Multicast to ${plural(list.length, 'user')}: ${delivered} delivered, ${queued} stored offline`;
      }, (text) => text);
    } else {
      sent = await operation('Could not broadcast the message', () => api('POST', '/broadcast', { json: { message } }),
        (data) => `Broadcast reached ${plural(Number(data.result?.count) || 0, 'user')}`);
    }
    if (sent) {
      $('message-body').value = '';
      updateMessageForm();
    }
  });

  // ---- Modules ----

  let knownModules = null; // name -> { version, sha256, file_present } of the previous poll
  let shownModules = '';
  let lastModules = [];
  const changedUntil = new Map();
  const pendingModules = new Map(); // name -> what is being done ("Reloading…")

  function enterModules() {
    shownModules = '';
    return poll(refreshModules);
  }

  async function refreshModules(live = () => token !== null) {
    let data;
    try {
      data = await api('GET', '/modules?all=true', { busy: false });
    } catch (error) {
      if (live()) pollFailed('modules', 'Could not list the modules', error);
      return;
    }
    if (!live()) return;
    pollFailures.delete('modules');
    // A host without `all=true` lists names only: show them as loaded, without details.
    const modules = (data.result?.modules || []).map((entry) => (typeof entry === 'string' ? { module: entry, loaded: true } : entry));
    noticeChanges(modules);
    lastModules = modules;
    renderModules();
  }

  function noticeChanges(modules) {
    const before = knownModules;
    knownModules = new Map(modules.map((m) => [m.module, { version: m.version, sha256: m.sha256, file: m.file_present, error: m.last_error }]));
    if (!before) return;
    const events = [];
    for (const m of modules) {
      const old = before.get(m.module);
      const now = m.version ? `: now ${m.version}` : '';
      if (!old) events.push([m.module, `Plugin ${m.module} appeared on disk${now}`]);
      else if (m.sha256 && old.sha256 && (m.sha256 !== old.sha256 || m.version !== old.version)) {
        events.push([m.module, `Plugin ${m.module} changed on disk${now}`]);
      } else if (old.file && m.file_present === false) events.push([m.module, `Plugin ${m.module} was removed from disk`]);
      if (old && m.last_error && m.last_error !== old.error) events.push([m.module, `Plugin ${m.module} failed to load: ${m.last_error}`]);
    }
    for (const [name] of before) {
      if (!knownModules.has(name)) events.push([name, `Plugin ${name} was removed from disk`]);
    }
    const list = $('module-events');
    for (const [name, text] of events) {
      changedUntil.set(name, Date.now() + CHANGED_MS);
      setTimeout(renderModules, CHANGED_MS + 50);
      list.prepend(h('li', null, h('time', null, new Date().toLocaleTimeString()), ' ', text));
    }
    while (list.children.length > 50) list.lastElementChild.remove();
  }

  function moduleStatus(m) {
    if (m.loaded) return m.healthy === false ? 'unhealthy' : 'loaded';
    return m.last_error ? 'failed' : 'not loaded';
  }

  function renderModules() {
    if (!token) return;
    const now = Date.now();
    const changed = lastModules.filter((m) => (changedUntil.get(m.module) || 0) > now).map((m) => m.module);
    const key = JSON.stringify([lastModules, changed, [...pendingModules]]);
    if (key === shownModules) return;
    shownModules = key;
    const rows = lastModules.map((m) => {
      const status = moduleStatus(m);
      const pending = pendingModules.get(m.module);
      const routes = m.routes || [];
      const actions = [h('button', { type: 'button', class: 'quiet', 'data-action': 'reload', disabled: Boolean(pending), onclick: () => moduleAction(m.module, 'reload', m.loaded) },
        pending || (m.loaded ? 'Reload' : 'Load'))];
      if (m.loaded) {
        actions.push(h('button', { type: 'button', class: 'danger', 'data-action': 'unload', disabled: Boolean(pending), onclick: () => moduleAction(m.module, 'unload') }, 'Unload'));
      }
      return h('tr', { 'data-module': m.module, class: changed.includes(m.module) ? 'changed' : null },
        h('th', { scope: 'row', class: 'name', title: m.description || null }, m.module),
        h('td', { class: 'version' }, m.version || '—'),
        h('td', { class: 'status' }, h('span', { class: `badge ${status.replace(' ', '-')}` }, status)),
        h('td', { class: 'routes' }, routes.length
          ? h('details', null, h('summary', null, plural(routes.length, 'route')),
            h('ul', null, routes.map((r) => h('li', null, h('code', null, `${r.method} ${r.path}`)))))
          : '—'),
        h('td', { class: 'last-error' }, m.last_error || (m.healthy === false ? m.last_failure || '' : '')),
        h('td', { class: 'actions' }, actions));
    });
    if (!rows.length) rows.push(h('tr', null, h('td', { colspan: 6, class: 'empty' }, 'No plugins.')));
    fill('module-list', rows);
  }

  async function moduleAction(name, action, loaded) {
    if (action === 'unload') {
      const warning = name === 'module' ? ' Its routes are the ones that load plugins: only replacing its file or a restart brings it back.' : '';
      if (!(await ask(`Unload ${name}? Its routes stop answering; its file stays in the plugins folder.${warning}`, 'Unload'))) return;
    }
    const verb = action === 'unload' ? 'unload' : loaded ? 'reload' : 'load';
    pendingModules.set(name, { unload: 'Unloading…', reload: 'Reloading…', load: 'Loading…' }[verb]);
    renderModules();
    await operation(`Could not ${verb} ${name}`, () => api(action === 'unload' ? 'DELETE' : 'PUT', `/module/${enc(name)}`),
      { unload: `Unloaded ${name}`, reload: `Reloaded ${name}`, load: `Loaded ${name}` }[verb]);
    pendingModules.delete(name);
    await refreshModules();
    renderModules();
  }

  // ---- Access ----

  function enterAccess() {
    loadWhitelist();
    loadRules();
  }

  async function loadWhitelist() {
    const data = await operation('Could not read the whitelist', () => api('GET', '/whitelist'));
    if (!data || !token) return;
    const { enabled = false, whitelist = [] } = data.result || {};
    $('whitelist-none').hidden = enabled;
    $('whitelist-list').replaceChildren(...whitelist.map((entry) => h('li', { 'data-entry': entry },
      h('code', null, entry), ' ',
      h('button', { type: 'button', class: 'quiet', 'data-action': 'remove', onclick: () => changeWhitelist('DELETE', entry) }, 'Remove'))));
    if (enabled && !whitelist.length) {
      $('whitelist-list').append(h('li', { class: 'empty' }, 'The whitelist is empty: it refuses every address.'));
    }
  }

  // PUT /whitelist/10.0.0.0/8 takes the range with a plain slash; each part is encoded alone.
  const whitelistPath = (entry) => `/whitelist/${entry.split('/').map(enc).join('/')}`;

  // A change that would lock out this browser's own address is refused with 409 unless forced:
  // the operator decides, in the dialog.
  async function changeWhitelist(method, entry) {
    const verb = method === 'PUT' ? 'add' : 'remove';
    const done = await operation(`Could not ${verb} ${entry}`, async () => {
      try {
        return await api(method, whitelistPath(entry));
      } catch (error) {
        const reason = error.message.replace(/;.*$/, '');
        if (error.status !== 409 || !(await ask(`${reason}. Apply the change anyway?`, 'Apply anyway'))) throw error;
        return api(method, `${whitelistPath(entry)}?force=true`);
      }
    }, (data) => data.result);
    if (done) loadWhitelist();
    return done;
  }

  $('whitelist-add').addEventListener('submit', async (event) => {
    event.preventDefault();
    const entry = $('whitelist-add-entry').value.trim();
    if (await changeWhitelist('PUT', entry)) $('whitelist-add-entry').value = '';
  });

  // Who a rule admits, in words.
  function ruleWho(rule) {
    const parts = [];
    if (rule.admins) parts.push('administrators');
    if (rule.accounts) parts.push(`accounts ${rule.accounts.join(', ')}`);
    if (rule.ip) parts.push(`addresses ${rule.ip.join(', ')}`);
    if (rule.token_scopes) parts.push(`tokens scoped ${rule.token_scopes.join(', ')}`);
    return parts.join('; ') || 'anyone';
  }

  async function loadRules() {
    const data = await operation('Could not read the access rules', () => api('GET', '/access/rules'));
    if (!data || !token) return;
    const { admins = [], rules = [] } = data.result || {};
    $('rule-admins').textContent = admins.join(', ') || 'none';
    const rows = rules.map((rule) => h('tr', { 'data-rule': rule.name },
      h('th', { scope: 'row' }, rule.name),
      h('td', null, rule.summary || ''),
      h('td', null, ruleWho(rule)),
      h('td', null, (rule.what || []).join(', ')),
      h('td', null, (rule.from || []).join(', '))));
    if (!rows.length) rows.push(h('tr', null, h('td', { colspan: 5, class: 'empty' }, 'No rules: the administrators may call everything.')));
    fill('rule-list', rows);
  }

  // ---- State ----

  function resetState() {
    lastScrape = null;
    for (const chart of Object.values(charts)) chart.points = [];
    knownModules = null;
    lastModules = [];
    shownModules = '';
    changedUntil.clear();
    pendingModules.clear();
    prefixes = { message: '', multicast: '', broadcast: '' };
    pollFailures.clear();
  }

  updateMessageForm();
  $('signin-user').focus();
})();
