// Civic Data Hub's web application: one page, routed by the URL's hash,
// on the hub's own /api/v1 with the session's bearer token.
//
// Every value from the API is put into the page as text (never as HTML),
// so nothing a holder, an interview or a user typed can run as script.

import { t, lang, setLang, LANGS } from './i18n.js';
import { epidemicCurve, transmissionTree, lineChart } from './charts.js';

const $main = document.getElementById('main');
const $bar = document.getElementById('bar');
const $nav = document.getElementById('nav');
const $notice = document.getElementById('notice');

// ---------------------------------------------------------------- helpers

/** Builds an element: h('a', {href, class, onclick}, 'text', child…). */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k === 'value') el.value = v;
    else if (k === 'checked') el.checked = !!v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

let fieldSeq = 0;
/** A labelled form field. */
function field(label, input, hint) {
  const id = input.id || `f${++fieldSeq}`;
  input.id = id;
  return h('div', { class: 'field' },
    h('label', { for: id }, label), input,
    hint ? h('small', { class: 'hint' }, hint) : null);
}

// Each visit to a page has a number; a page still loading when the user
// moves on must not draw over the next one.
let navSeq = 0;
/** The render function of the page being visited now: it draws only while
 *  that visit is current; `view.stale()` says when it no longer is. */
function page() {
  const seq = navSeq;
  const view = (...nodes) => { if (seq === navSeq) $main.replaceChildren(...present(nodes)); };
  view.stale = () => seq !== navSeq;
  return view;
}
function show(...nodes) {
  $main.replaceChildren(...present(nodes));
}
/** What to put in the page: absent parts (null, false) are left out, not
 *  written as text. */
function present(nodes) {
  return nodes.flat().filter((n) => n !== null && n !== undefined && n !== false);
}

let saidAt = 0;
function say(text, kind = 'info') {
  saidAt = Date.now();
  $notice.replaceChildren(h('p', { class: `msg ${kind}`, role: kind === 'error' ? 'alert' : null }, text));
  if (kind !== 'error') setTimeout(() => { if ($notice.textContent === text) $notice.replaceChildren(); }, 6000);
}

const zone = 'Asia/Seoul';
/** Today's date where the cases are (YYYY-MM-DD). */
function seoulDate() {
  return new Intl.DateTimeFormat('en-CA', { timeZone: zone }).format(new Date());
}
function when(value) {
  if (value === null || value === undefined || value === '') return '';
  const d = typeof value === 'number' ? new Date(value * 1000) : new Date(value);
  if (Number.isNaN(d.getTime())) return String(value);
  return new Intl.DateTimeFormat(lang() === 'ko' ? 'ko-KR' : 'en-GB', {
    timeZone: zone, year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit',
  }).format(d);
}
function clock(unix) {
  return new Intl.DateTimeFormat(lang() === 'ko' ? 'ko-KR' : 'en-GB', {
    timeZone: zone, month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit',
  }).format(new Date(unix * 1000));
}

/** A case's onset, marked where the hub estimated it from the confirmation date. */
function onsetText(c) { return c.onset_estimated ? `${c.onset} (${t('onset_estimated')})` : c.onset; }

function badge(kind, text) { return h('span', { class: `badge ${kind}` }, text); }

function table(caption, headers, rows, opts = {}) {
  return h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': caption },
    h('table', { class: opts.class || '' },
      h('caption', { class: opts.showCaption ? '' : 'sr-only' }, caption),
      h('thead', {}, h('tr', {}, headers.map((x) => h('th', { scope: 'col' }, x)))),
      h('tbody', {}, rows.length ? rows : [h('tr', {}, h('td', { colspan: headers.length, class: 'empty' }, t('nothing')))])));
}

function downloadCsv(name, header, rows) {
  const esc = (v) => {
    let s = v === null || v === undefined ? '' : String(v);
    // A spreadsheet would run a cell that starts like a formula; names
    // come from holders and interviews.
    if (/^[=+\-@\t\r]/.test(s)) s = `'${s}`;
    return /[",\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
  };
  // The byte-order mark tells spreadsheets the file is UTF-8 (Korean names).
  const text = '\uFEFF' + [header, ...rows].map((r) => r.map(esc).join(',')).join('\n') + '\n';
  const url = URL.createObjectURL(new Blob([text], { type: 'text/csv' }));
  const a = h('a', { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

// ---------------------------------------------------------------- session and API

const session = {
  get token() { return sessionStorage.getItem('cdh.token'); },
  get expires() { return sessionStorage.getItem('cdh.expires'); },
  me: null,
  institution: null,
  responses: [],
  response: null,
  save(token, expires) { sessionStorage.setItem('cdh.token', token); sessionStorage.setItem('cdh.expires', expires); },
  clear() {
    for (const k of ['cdh.token', 'cdh.expires', 'cdh.response']) sessionStorage.removeItem(k);
    this.me = null;
    this.responses = [];
    this.response = null;
    geography = null;
  },
};

class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

async function api(method, path, body) {
  const headers = { accept: 'application/json' };
  if (session.token) headers.authorization = `Bearer ${session.token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`/api/v1${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (res.status === 204) return null;
  const data = await res.json().catch(() => ({}));
  if (!res.ok) {
    if (res.status === 401 && path !== '/auth/login' && session.token) {
      expire(t('session_ended'));
    }
    throw new ApiError(res.status, data);
  }
  return data;
}

/** Runs an action, showing its error rather than throwing. */
async function attempt(fn, okText) {
  try {
    const r = await fn();
    if (okText) say(okText, 'ok');
    return r;
  } catch (e) {
    say(e.message, 'error');
    return undefined;
  }
}

let expiryTimer = null;
function expire(text) {
  session.clear();
  clearInterval(expiryTimer);
  $bar.hidden = true;
  $nav.hidden = true;
  location.hash = '#/login';
  say(text, 'error');
}

const dutyOf = (me) => me?.duties?.map((d) => t(`duty_${d.kind}`) + (d.region ? ` (${d.region})` : '')).join(', ');
const has = (kind) => !!session.me?.duties?.some((d) => d.kind === kind);

function homeFor() {
  if (session.me?.must_enrol_second_factor) return '#/account';
  if (has('investigator')) return '#/cases';
  if (has('approver') || has('police_location_officer')) return '#/inbox';
  if (has('security_auditor')) return '#/audit';
  if (has('administrator')) return '#/responses';
  if (has('citizen')) return '#/mydata';
  if (has('mydata_operator')) return '#/agreements';
  if (has('support_agent')) return '#/support';
  return '#/account';
}

async function loadSession() {
  session.me = await api('GET', '/me');
  const institutions = await api('GET', '/institutions').catch(() => []);
  session.institution = institutions.find((i) => i.id === session.me.institution_id) || null;
  session.responses = [];
  if (has('investigator') || has('approver') || has('police_location_officer') || has('security_auditor') || has('administrator')) {
    session.responses = await api('GET', '/responses').catch(() => []);
  }
  const chosen = Number(sessionStorage.getItem('cdh.response'));
  session.response = session.responses.find((r) => r.id === chosen)
    || session.responses.find((r) => r.status === 'open') || session.responses[0] || null;
}

function renderChrome() {
  const me = session.me;
  if (!me) { $bar.hidden = true; $nav.hidden = true; return; }
  $bar.hidden = false;
  $nav.hidden = false;
  const until = h('span', { class: 'expiry', id: 'expiry' });
  const tick = () => {
    const left = Math.round((new Date(session.expires) - Date.now()) / 60000);
    if (left <= 0) { expire(t('session_expired')); return; }
    until.textContent = t('session_left', { minutes: left });
  };
  clearInterval(expiryTimer);
  tick();
  expiryTimer = setInterval(tick, 30000);
  const langSelect = h('select', { id: 'lang', 'aria-label': t('language'), onchange: (e) => { setLang(e.target.value); renderChrome(); route(); } },
    LANGS.map(([code, name]) => h('option', { value: code, selected: code === lang() }, name)));
  $bar.replaceChildren(
    h('span', { class: 'brand' }, 'Civic Data Hub'),
    h('span', { class: 'who', id: 'who', title: t('who_am_i') },
      h('strong', {}, me.username), ' · ', dutyOf(me), ' · ', session.institution?.name || t(`kind_${me.institution_kind}`),
      me.authenticated_with === 'password_and_totp' ? badge('ok', t('two_factors')) : badge('warn', t('one_factor'))),
    until,
    h('span', { class: 'spacer' }),
    langSelect,
    h('button', { type: 'button', id: 'logout', onclick: logout }, t('sign_out')));
  const links = [];
  if (has('investigator') || has('approver')) links.push(['#/cases', t('nav_cases')]);
  if (has('approver') || has('police_location_officer')) links.push(['#/inbox', t('nav_inbox')]);
  if (has('investigator')) links.push(['#/contacts', t('nav_contacts')]);
  if (has('investigator') || has('approver')) links.push(['#/clusters', t('nav_clusters')]);
  if (has('security_auditor')) links.push(['#/audit', t('nav_audit')]);
  links.push(['#/catalogue', t('nav_catalogue')]);
  links.push(['#/city', t('nav_city')]);
  if (has('citizen')) links.push(['#/mydata', t('nav_mydata')]);
  if (has('mydata_operator')) links.push(['#/agreements', t('nav_agreements')]);
  if (has('mydata_operator')) links.push(['#/transfers', t('nav_transfers')]);
  if (has('support_agent') || (session.me.institution_kind !== 'hub_operator' && !has('citizen'))) links.push(['#/support', t('nav_support')]);
  if (session.responses.length) links.push(['#/responses', t('nav_responses')]);
  links.push(['#/account', t('nav_account')]);
  const current = location.hash.split('/').slice(0, 2).join('/');
  const responseSelect = session.responses.length
    ? h('select', { id: 'response', 'aria-label': t('response'), onchange: (e) => {
      sessionStorage.setItem('cdh.response', e.target.value);
      session.response = session.responses.find((r) => r.id === Number(e.target.value));
      route();
    } }, session.responses.map((r) => h('option', { value: r.id, selected: r.id === session.response?.id },
      `${r.name} (${t(`status_${r.status}`)})`)))
    : null;
  $nav.replaceChildren(...present([
    h('ul', {}, links.map(([href, text]) => h('li', {}, h('a', { href, 'aria-current': current === href ? 'page' : null }, text)))),
    responseSelect ? h('div', { class: 'response-pick' }, h('label', { for: 'response' }, t('response')), responseSelect) : null]));
}

async function logout() {
  await api('POST', '/auth/logout').catch(() => {});
  session.clear();
  clearInterval(expiryTimer);
  renderChrome();
  location.hash = '#/login';
  say(t('signed_out'), 'ok');
}

// ---------------------------------------------------------------- maps

/** Map labels as text: Leaflet would read a string as HTML, and place
 *  names come from holders, interviews and uploads. */
function plain(text) {
  return h('span', {}, text);
}

let geography = null;
// The maps on the current page, removed when the user moves on (each holds
// a listener on the window and the route's places).
let maps = [];
function removeMaps() {
  for (const m of maps) m.remove();
  maps = [];
}
async function loadGeography() {
  if (!geography) geography = await api('GET', '/geography').catch(() => ({ features: [] }));
  return geography;
}

/** A map in `el` with the platform's own geography beneath (signed in:
 *  the geography is the platform's, not public). */
async function makeMap(el, label) {
  el.setAttribute('role', 'region');
  el.setAttribute('aria-label', label);
  const geo = session.token ? await loadGeography() : { features: [] };
  if (!window.L) { el.textContent = t('map_unavailable'); return null; }
  // No animations: a map removed mid-animation (the user moved on) would
  // still run its callbacks.
  const map = L.map(el, {
    zoomSnap: 0.25, attributionControl: !!geo.tile_url, keyboard: true,
    zoomAnimation: false, fadeAnimation: false, markerZoomAnimation: false,
  });
  maps.push(map);
  if (geo.tile_url) L.tileLayer(geo.tile_url, { maxZoom: 19 }).addTo(map);
  const isPoint = (f) => f.geometry.type === 'Point';
  const regions = geo.features.filter((f) => f.properties.layer === 'region' || !isPoint(f));
  const base = L.geoJSON({ type: 'FeatureCollection', features: regions }, {
    style: { color: '#7a8ba0', weight: 1, fillColor: '#eef2f6', fillOpacity: 0.6 },
    onEachFeature: (f, layer) => layer.bindTooltip(plain(f.properties.name || f.properties.region || ''), { sticky: true }),
  }).addTo(map);
  const towers = L.layerGroup(geo.features.filter((f) => isPoint(f) && f.properties.layer === 'tower').map((f) =>
    L.circleMarker([f.geometry.coordinates[1], f.geometry.coordinates[0]], { radius: 2, color: '#9aa7b4', weight: 1 })));
  const venues = L.layerGroup(geo.features.filter((f) => isPoint(f) && f.properties.layer !== 'tower').map((f) =>
    L.circleMarker([f.geometry.coordinates[1], f.geometry.coordinates[0]], { radius: 3, color: f.properties.layer === 'stop' ? '#3a6ea5' : '#8a6d3b', weight: 1 })
      .bindTooltip(plain(f.properties.name || f.properties.kind || ''))));
  L.control.layers(null, { [t('layer_towers')]: towers, [t('layer_places')]: venues }, { collapsed: true }).addTo(map);
  if (regions.length) map.fitBounds(base.getBounds());
  else map.setView([37.56, 126.98], 11);
  return map;
}

// ---------------------------------------------------------------- pages

/** After signing in: the page asked for (a deep link), else the duty's home. */
function goAfterSignIn() {
  const path = location.hash.split('?')[0];
  const wanted = !['', '#', '#/', '#/login'].includes(path) && !session.me?.must_enrol_second_factor;
  if (wanted) route();
  else if (location.hash === homeFor()) route();
  else location.hash = homeFor();
}

function loginPage(message) {
  const user = h('input', { name: 'username', autocomplete: 'username', required: true });
  const pass = h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const code = h('input', { name: 'totp', inputmode: 'numeric', autocomplete: 'one-time-code', pattern: '[0-9]{6}', maxlength: '6' });
  const langSelect = h('select', { id: 'login-lang', onchange: (e) => { setLang(e.target.value); loginPage(); } },
    LANGS.map(([c, n]) => h('option', { value: c, selected: c === lang() }, n)));
  const form = h('form', { class: 'card narrow', id: 'login-form', onsubmit: async (e) => {
    e.preventDefault();
    const body = { username: user.value.trim(), password: pass.value };
    if (code.value.trim()) body.totp = code.value.trim();
    // The device token of an earlier sign-in under this name from this
    // browser: with it, strangers' failed guesses do not slow ours.
    const deviceSlot = `cdh.device.${body.username.toLowerCase()}`;
    const device = localStorage.getItem(deviceSlot);
    if (device) body.device = device;
    const r = await attempt(() => api('POST', '/auth/login', body));
    if (!r) return;
    if (r.device) localStorage.setItem(deviceSlot, r.device);
    session.save(r.token, r.expires_at);
    await loadSession();
    renderChrome();
    goAfterSignIn();
  } },
  h('h1', {}, t('sign_in_title')),
  message ? h('p', { class: 'msg error' }, message) : null,
  field(t('username'), user),
  field(t('password'), pass),
  field(t('totp_code'), code, t('totp_hint')),
  h('button', { type: 'submit', class: 'primary' }, t('sign_in')),
  field(t('language'), langSelect),
  h('p', {}, h('a', { href: '#/catalogue', id: 'public-catalogue' }, t('browse_catalogue'))),
  h('p', {}, h('a', { href: '#/city', id: 'public-city' }, t('browse_city'))));
  show(form);
  user.focus();
}

function accountPage() {
  const me = session.me;
  const area = h('div', { id: 'enrol-area' });
  const startEnrol = async () => {
    const e = await attempt(() => api('POST', '/auth/totp/enrol'));
    if (!e) return;
    const qr = h('div', { class: 'qr', role: 'img', 'aria-label': t('qr_label') });
    // The hub's own SVG, drawn from the enrolment URI: no user text in it.
    qr.innerHTML = e.qr_svg;
    const code = h('input', { id: 'confirm-code', inputmode: 'numeric', autocomplete: 'one-time-code', maxlength: '6', required: true });
    area.replaceChildren(h('div', { class: 'card' },
      h('h2', {}, t('enrol_scan')),
      qr,
      h('p', {}, t('enrol_or_type'), ' ', h('code', { id: 'totp-secret' }, e.secret)),
      h('form', { onsubmit: async (ev) => {
        ev.preventDefault();
        const ok = await attempt(() => api('POST', '/auth/totp/confirm', { code: code.value.trim() }), t('enrolled'));
        if (ok === undefined) return;
        await loadSession();
        renderChrome();
        if (location.hash === homeFor()) accountPage();
        else location.hash = homeFor();
      } }, field(t('enrol_code'), code), h('button', { type: 'submit', class: 'primary' }, t('enrol_confirm')))));
    code.focus();
  };
  show(h('section', { class: 'card' },
    h('h1', {}, t('nav_account')),
    h('dl', { class: 'facts' },
      h('dt', {}, t('username')), h('dd', {}, me.username),
      h('dt', {}, t('duties')), h('dd', {}, dutyOf(me)),
      h('dt', {}, t('institution')), h('dd', {}, session.institution?.name || ''),
      h('dt', {}, t('second_factor')), h('dd', {}, me.authenticated_with === 'password_and_totp' ? t('two_factors') : t('one_factor')),
      h('dt', {}, t('session_until')), h('dd', {}, when(session.expires))),
    me.must_enrol_second_factor ? h('p', { class: 'msg warn' }, t('must_enrol')) : null,
    me.authenticated_with === 'password_and_totp' ? null
      : h('button', { type: 'button', id: 'enrol', onclick: startEnrol }, t('enrol_start'))), area,
    has('administrator') && me.institution_kind === 'hub_operator' ? mapUpload() : null);
}

/** Administrators replace the map's geography with a GeoJSON file. */
function mapUpload() {
  const file = h('input', { type: 'file', id: 'geojson', accept: '.geojson,.json,application/geo+json,application/json', required: true });
  return h('form', { class: 'card', id: 'map-upload', onsubmit: async (e) => {
    e.preventDefault();
    const chosen = file.files[0];
    if (!chosen) return;
    const res = await attempt(async () => {
      const r = await fetch('/api/v1/geography', { method: 'PUT', headers: { authorization: `Bearer ${session.token}`, 'content-type': 'application/geo+json' }, body: await chosen.text() });
      const body = await r.json().catch(() => ({}));
      if (r.status === 401) expire(t('session_ended'));
      if (!r.ok) throw new ApiError(r.status, body);
      return body;
    });
    if (res) { geography = null; say(t('map_replaced', { n: res.features }), 'ok'); }
  } }, h('h2', {}, t('map_title')), h('p', { class: 'hint' }, t('map_hint')),
  field(t('map_file'), file), h('button', { type: 'submit' }, t('map_upload')));
}

function needResponse() {
  if (session.response) return false;
  show(h('section', { class: 'card' }, h('h1', {}, t('no_response'))));
  return true;
}

async function casesPage(params) {
  const view = page();
  if (needResponse()) return;
  const q = new URLSearchParams(params);
  const regions = (await loadGeography()).features.filter((f) => f.properties.layer === 'region').map((f) => f.properties.region).filter(Boolean).sort();
  const input = (name, attrs = {}) => h('input', { name, value: q.get(name) || '', ...attrs });
  const region = h('select', { name: 'region' }, h('option', { value: '' }, t('any')),
    regions.map((r) => h('option', { value: r, selected: q.get('region') === r }, r)));
  const status = h('select', { name: 'status' }, h('option', { value: '' }, t('any')),
    ['open', 'closed'].map((s) => h('option', { value: s, selected: q.get('status') === s }, t(`status_${s}`))));
  const form = h('form', { class: 'filters', role: 'search', onsubmit: (e) => {
    e.preventDefault();
    const f = new URLSearchParams();
    for (const el of form.elements) if (el.name && el.value) f.set(el.name, el.value);
    location.hash = `#/cases?${f}`;
  } },
  field(t('search_number'), input('q', { type: 'search' })),
  field(t('region'), region),
  field(t('status'), status),
  field(t('cluster'), input('cluster', { inputmode: 'numeric' })),
  field(t('confirmed_from'), input('confirmed_from', { type: 'date' })),
  field(t('confirmed_until'), input('confirmed_until', { type: 'date' })),
  h('button', { type: 'submit' }, t('filter')));
  const cases = await attempt(() => api('GET', `/responses/${session.response.id}/cases?${q}`)) || [];
  const rows = cases.map((c) => h('tr', {},
    h('td', {}, h('a', { href: `#/cases/${c.id}` }, c.number)),
    h('td', {}, c.region), h('td', {}, onsetText(c)), h('td', {}, c.confirmed),
    h('td', {}, badge(c.status, t(`status_${c.status}`))),
    h('td', {}, c.cluster ? h('a', { href: `#/clusters/${c.cluster}` }, `#${c.cluster}`) : ''),
    h('td', {}, c.source_case ? h('a', { href: `#/cases/${c.source_case}` }, `#${c.source_case}`) : '')));
  view(h('h1', {}, t('nav_cases'), ' ', h('small', {}, session.response.name)), form,
    h('p', { class: 'count' }, t('n_cases', { n: cases.length })),
    table(t('nav_cases'), [t('case'), t('region'), t('onset'), t('confirmed'), t('status'), t('cluster'), t('source_case')], rows));
}

/** Where a holder stands for the case: pending approval, requested, received. */
function holderStatus(detail) {
  const rows = [];
  for (const r of detail.requests) {
    if (r.status === 'awaiting_approver' || r.status === 'awaiting_police') {
      rows.push([t('all_holders'), r.items.map((i) => t(`item_${i}`)).join(', '), badge('warn', t(`req_${r.status}`)), when(r.requested_at), '']);
    } else if (r.status === 'rejected' || r.status === 'expired') {
      rows.push([t('all_holders'), r.items.map((i) => t(`item_${i}`)).join(', '), badge('bad', t(`req_${r.status}`)), when(r.requested_at), '']);
    }
  }
  for (const c of detail.collections) {
    const kind = { pending: 'info', answered: 'ok', refused: 'bad', failed: 'bad' }[c.status];
    rows.push([c.node, t(`purpose_${c.purpose}`), badge(kind, t(`coll_${c.status}`)), when(c.requested_at), c.finished_at ? when(c.finished_at) : (c.detail || '')]);
  }
  return table(t('collection_status'), [t('holder'), t('what'), t('status'), t('asked_at'), t('answered_at')],
    rows.map((r) => h('tr', {}, r.map((x) => h('td', {}, x)))), { showCaption: true });
}

function requestForm(caseId, reload, asked) {
  const items = ['location_pings', 'card_transactions', 'transit_taps'].map((i) =>
    h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'item', value: i, checked: true }), t(`item_${i}`)));
  const reason = h('textarea', { name: 'reason', rows: '2', required: true, maxlength: '2000' });
  const contacts = h('input', { type: 'checkbox', name: 'contacts', checked: true });
  const from = h('input', { type: 'date', name: 'from' });
  const until = h('input', { type: 'date', name: 'until' });
  const form = h('form', { id: 'request-form', onsubmit: async (e) => {
    e.preventDefault();
    const chosen = [...form.querySelectorAll('input[name=item]:checked')].map((x) => x.value);
    const body = { items: chosen, reason: reason.value, contacts: contacts.checked };
    if (from.value) body.from = from.value;
    if (until.value) body.until = until.value;
    const r = await attempt(() => api('POST', `/cases/${caseId}/data-requests`, body), t('request_sent'));
    if (r) { form.closest('details').open = false; reload(); }
  } },
  h('fieldset', {}, h('legend', {}, t('items')), items),
  field(t('reason'), reason, t('reason_hint')),
  h('div', { class: 'row' }, field(t('period_from'), from, t('period_hint')), field(t('period_until'), until)),
  h('label', { class: 'check' }, contacts, t('ask_contacts')),
  h('button', { type: 'submit', class: 'primary' }, t('send_request')));
  // Open until the case has a request; then one click away.
  return h('details', { class: 'card', id: 'request-box', open: !asked },
    h('summary', { class: 'title' }, t('request_data')), form);
}

function sourcesText(sources) {
  return sources.map((s) => `${t(`src_${s.kind}`)} · ${s.holder}${s.records ? ` (${s.records})` : ''}`).join('; ');
}

function interviewBadge(stay) {
  const i = stay.interview;
  if (i && typeof i === 'object' && 'told' in i) return badge('ok', t('iv_told', { row: i.told.row + 1 }));
  if (i === 'not_told') return badge('warn', t('iv_not_told'));
  return '';
}

let feedAbort = null;
let feedDebounce = null;
function stopFeed() {
  if (feedAbort) { feedAbort.abort(); feedAbort = null; }
  clearTimeout(feedDebounce);
}

/** Follows the case's server-sent events through fetch (which, unlike
 *  EventSource, can send the bearer token). A dropped feed is opened again
 *  (after 2 s, then up to a minute apart), and the page catches up with
 *  what it missed. */
async function follow(caseId, onEvent, indicator) {
  stopFeed();
  const ctrl = new AbortController();
  feedAbort = ctrl;
  const off = () => { indicator.textContent = t('live_off'); indicator.className = 'badge'; };
  let wait = 2000;
  let first = true;
  while (!ctrl.signal.aborted) {
    try {
      const res = await fetch(`/api/v1/cases/${caseId}/feed`, { headers: { authorization: `Bearer ${session.token}`, accept: 'text/event-stream' }, signal: ctrl.signal });
      if (res.status === 401) { expire(t('session_ended')); return; }
      if (!res.ok || !res.body) { off(); return; }
      indicator.textContent = t('live_on');
      indicator.className = 'badge ok';
      if (!first) onEvent('reload');
      first = false;
      wait = 2000;
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let cut;
        while ((cut = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          const ev = /^event: ?(.*)$/m.exec(block)?.[1];
          if (ev) onEvent(ev);
        }
      }
    } catch (e) {
      if (e.name === 'AbortError') return;
    }
    if (ctrl.signal.aborted) return;
    off();
    await new Promise((r) => setTimeout(r, wait));
    wait = Math.min(wait * 2, 60000);
  }
}

async function casePage(id) {
  const view = page();
  const detail = await attempt(() => api('GET', `/cases/${id}`));
  if (!detail) { view(h('p', {}, t('not_available'))); return; }
  const c = detail.case;
  const investigator = has('investigator');
  const live = h('span', { class: 'badge', id: 'live', 'aria-live': 'polite' }, t('live_off'));
  const statusArea = h('div', { id: 'holders' }, holderStatus(detail));
  const timelineArea = h('div', { id: 'timeline' });
  const mapEl = h('div', { class: 'map', id: 'case-map' });
  const contactsArea = h('div', { id: 'case-contacts' });
  const requestsArea = h('div', { id: 'requests' });
  let map = null;
  let routeLayer = null;

  const drawRequests = (d) => requestsArea.replaceChildren(table(t('requests'),
    [t('request'), t('items'), t('period'), t('status'), t('decisions')],
    d.requests.map((r) => h('tr', {},
      h('td', {}, `#${r.id}`), h('td', {}, r.items.map((i) => t(`item_${i}`)).join(', ')),
      h('td', {}, `${when(r.data_from)} – ${when(r.data_until)}`),
      h('td', {}, badge(r.status === 'collected' ? 'ok' : r.status.startsWith('awaiting') ? 'warn' : r.status === 'rejected' ? 'bad' : 'info', t(`req_${r.status}`))),
      h('td', {}, r.decisions.map((s) => `${t(`duty_${s.duty}`)}: ${s.approve ? t('approved') : t('rejected')}${s.reason ? ` (${s.reason})` : ''}`).join('; ')))),
    { showCaption: true }));

  const drawTimeline = async () => {
    if (!investigator) return;
    const tl = await api('GET', `/cases/${id}/timeline`).catch(() => null);
    if (!tl) { timelineArea.replaceChildren(h('p', {}, t('no_timeline'))); return; }
    const events = [
      ...tl.stays.map((s) => ({ at: s.arrival, stay: s })),
      ...tl.trips.map((tr) => ({ at: tr.depart, trip: tr })),
    ].sort((a, b) => a.at - b.at);
    const rows = events.map((e) => {
      if (e.trip) {
        const tr = e.trip;
        return h('tr', { class: 'trip' }, h('td', {}, clock(tr.depart)), h('td', {}, clock(tr.arrive)), h('td', {}, Math.round((tr.arrive - tr.depart) / 60)),
          h('td', {}, `${tr.from || '?'} → ${tr.to || '?'}`), h('td', {}, `${t('src_transit')} · ${tr.holder}`), h('td', {}, ''));
      }
      const s = e.stay;
      return h('tr', { class: s.interview === 'not_told' ? 'flag' : '' },
        h('td', {}, clock(s.arrival)), h('td', {}, clock(s.departure)), h('td', {}, s.minutes),
        h('td', {}, s.place === 'home' ? t('home') : (s.place || t('unnamed_place'))),
        h('td', {}, sourcesText(s.sources)), h('td', {}, interviewBadge(s)));
    });
    const unsupported = tl.interview.filter((x) => x.unsupported);
    timelineArea.replaceChildren(
      h('p', { class: 'count' }, t('n_stays', { n: tl.stays.length, m: tl.stays.filter((s) => s.interview === 'not_told').length })),
      table(t('timeline'), [t('arrival'), t('departure'), t('minutes'), t('place'), t('sources'), t('interview')], rows, { showCaption: true, class: 'timeline' }),
      h('h3', {}, t('told_unsupported')),
      unsupported.length
        ? h('ul', { class: 'flags' }, unsupported.map((x) => h('li', {}, badge('warn', t('iv_unsupported')), ' ', `${x.told.place || ''} · ${clock(x.told.start)}–${clock(x.told.end)}`)))
        : h('p', {}, t('nothing')));
    if (map && !view.stale()) {
      if (routeLayer) routeLayer.remove();
      routeLayer = L.layerGroup().addTo(map);
      const pts = tl.stays.map((s) => [s.lat, s.lon]);
      if (pts.length > 1) L.polyline(pts, { color: '#b03a2e', weight: 2, opacity: 0.7 }).addTo(routeLayer);
      tl.stays.forEach((s, i) => L.circleMarker([s.lat, s.lon], { radius: 6, color: s.interview === 'not_told' ? '#d68910' : '#b03a2e', fillOpacity: 0.8 })
        .bindPopup(plain(`${i + 1}. ${s.place === 'home' ? t('home') : (s.place || t('unnamed_place'))} — ${clock(s.arrival)} (${s.minutes} ${t('minutes')})`))
        .addTo(routeLayer));
      unsupported.forEach((x) => L.circleMarker([x.told.lat, x.told.lon], { radius: 6, color: '#7d3c98', dashArray: '3' })
        .bindPopup(plain(`${t('iv_unsupported')}: ${x.told.place || ''}`)).addTo(routeLayer));
      if (pts.length) map.fitBounds(L.latLngBounds(pts).pad(0.2));
    }
  };

  const drawContacts = async () => {
    if (!investigator) return;
    const list = await api('GET', `/cases/${id}/contacts`).catch(() => []);
    contactsArea.replaceChildren(h('p', { class: 'count' }, t('n_contacts', { n: list.length }), ' ', h('a', { href: `#/contacts?case=${id}` }, t('follow_up'))),
      table(t('nav_contacts'), [t('holder'), t('place'), t('overlap'), t('status')], list.slice(0, 50).map((x) => h('tr', {},
        h('td', {}, x.holder), h('td', {}, x.place || ''), h('td', {}, `${x.overlap_minutes} ${t('minutes')}`), h('td', {}, t(`ct_${x.status}`))))));
  };

  const reload = async () => {
    const d = await api('GET', `/cases/${id}`).catch(() => null);
    if (!d) return;
    statusArea.replaceChildren(holderStatus(d));
    drawRequests(d);
    await drawTimeline();
    await drawContacts();
  };

  drawRequests(detail);
  view(
    h('h1', {}, t('case'), ' ', c.number, ' ', live),
    h('dl', { class: 'facts inline' },
      h('dt', {}, t('region')), h('dd', {}, c.region),
      h('dt', {}, t('onset')), h('dd', {}, onsetText(c)),
      h('dt', {}, t('confirmed')), h('dd', {}, c.confirmed),
      h('dt', {}, t('status')), h('dd', {}, t(`status_${c.status}`)),
      h('dt', {}, t('cluster')), h('dd', {}, c.cluster ? h('a', { href: `#/clusters/${c.cluster}` }, `#${c.cluster}`) : '—')),
    investigator && c.status === 'open' ? requestForm(id, reload, detail.requests.length > 0) : null,
    h('section', {}, h('h2', {}, t('requests')), requestsArea),
    h('section', {}, h('h2', {}, t('collection_status')), statusArea),
    investigator ? h('div', { class: 'split' },
      h('section', {}, h('h2', {}, t('timeline')), timelineArea),
      h('section', {}, h('h2', {}, t('route_map')), mapEl)) : null,
    investigator ? h('section', {}, h('h2', {}, t('nav_contacts')), contactsArea) : null);
  if (investigator) {
    if (view.stale()) return;
    map = await makeMap(mapEl, t('route_map'));
    if (view.stale()) return;
    await drawTimeline();
    await drawContacts();
    follow(id, () => { clearTimeout(feedDebounce); feedDebounce = setTimeout(reload, 300); }, live);
  }
}

async function inboxPage() {
  const view = page();
  const list = await attempt(() => api('GET', '/data-requests')) || [];
  const duty = has('police_location_officer') ? 'police_location_officer' : 'approver';
  const cards = list.map((r) => {
    const reason = h('textarea', { rows: '2', maxlength: '2000', id: `reject-reason-${r.id}` });
    const decide = async (approve) => {
      if (!approve && !reason.value.trim()) { say(t('reason_required'), 'error'); reason.focus(); return; }
      const body = approve ? { approve: true } : { approve: false, reason: reason.value.trim() };
      const ok = await attempt(() => api('POST', `/data-requests/${r.id}/decision`, body), approve ? t('approved_msg') : t('rejected_msg'));
      if (ok) inboxPage();
    };
    return h('article', { class: 'card request', 'aria-labelledby': `req-${r.id}` },
      h('h2', { id: `req-${r.id}` }, t('request'), ` #${r.id} · `, t('case'), ` ${r.case_number}`),
      h('dl', { class: 'facts' },
        h('dt', {}, t('items')), h('dd', {}, r.items.map((i) => t(`item_${i}`)).join(', ')),
        h('dt', {}, t('ask_contacts')), h('dd', {}, r.contacts ? t('yes') : t('no')),
        h('dt', {}, t('period')), h('dd', {}, `${when(r.data_from)} – ${when(r.data_until)}`),
        h('dt', {}, t('reason')), h('dd', {}, r.reason || ''),
        h('dt', {}, t('asked_at')), h('dd', {}, when(r.requested_at)),
        h('dt', {}, t('decisions')), h('dd', {}, r.decisions.length ? r.decisions.map((s) => `${t(`duty_${s.duty}`)}: ${s.approve ? t('approved') : t('rejected')}`).join('; ') : '—')),
      h('div', { class: 'actions' },
        h('button', { type: 'button', class: 'primary', onclick: () => decide(true) }, t('approve_as', { duty: t(`duty_${duty}`) })),
        field(t('reject_reason'), reason),
        h('button', { type: 'button', class: 'danger', onclick: () => decide(false) }, t('reject'))));
  });
  view(h('h1', {}, t('nav_inbox')), h('p', { class: 'hint' }, t('inbox_hint')),
    cards.length ? h('div', { class: 'cards' }, cards) : h('p', { class: 'empty' }, t('inbox_empty')));
}

async function contactsPage(params) {
  const view = page();
  if (needResponse()) return;
  const q = new URLSearchParams(params);
  let list = await attempt(() => api('GET', `/responses/${session.response.id}/contacts`)) || [];
  const caseFilter = q.get('case');
  const statusFilter = q.get('status');
  if (caseFilter) list = list.filter((x) => String(x.case) === caseFilter);
  if (statusFilter) list = list.filter((x) => x.status === statusFilter);
  const statuses = ['to_notify', 'notified', 'in_quarantine', 'tested', 'negative', 'positive'];
  const boxes = new Map();
  const rows = list.slice(0, 500).map((x) => {
    const box = h('input', { type: 'checkbox', 'aria-label': t('select_contact', { id: x.id }) });
    boxes.set(x.id, box);
    // A status is saved by its button, not on change: arrow keys in a
    // select must not send a status per option passed.
    const today = seoulDate();
    const number = h('input', { 'aria-label': t('positive_number_of', { id: x.id }), maxlength: '64', size: '8' });
    const onset = h('input', { type: 'date', 'aria-label': t('onset'), value: today });
    const confirmed = h('input', { type: 'date', 'aria-label': t('confirmed'), value: today });
    const newCase = h('span', { class: 'new-case', hidden: true }, number, onset, confirmed);
    const sel = h('select', { 'aria-label': t('status_of', { id: x.id }), onchange: (e) => { newCase.hidden = e.target.value !== 'positive'; } },
      statuses.map((st) => h('option', { value: st, selected: st === x.status }, t(`ct_${st}`))));
    const save = h('button', { type: 'button', class: 'small', 'aria-label': t('save_status_of', { id: x.id }), onclick: async () => {
      const body = { status: sel.value };
      if (body.status === x.status) return;
      if (body.status === 'positive') {
        if (!number.value.trim()) { say(t('positive_number'), 'error'); number.focus(); return; }
        Object.assign(body, { case_number: number.value.trim(), onset_date: onset.value, confirmed_date: confirmed.value });
      }
      const ok = await attempt(() => api('PATCH', `/contacts/${x.id}`, body), t('saved'));
      if (ok) { x.status = body.status; newCase.hidden = true; } else sel.value = x.status;
    } }, t('save'));
    return h('tr', {}, h('td', {}, box), h('td', {}, h('a', { href: `#/cases/${x.case}` }, x.case_number)),
      h('td', {}, x.holder), h('td', {}, x.place || ''), h('td', {}, when(x.first_seen)),
      h('td', {}, x.overlap_minutes), h('td', { class: 'status-cell' }, sel, ' ', save, newCase), h('td', {}, x.linked_case ? h('a', { href: `#/cases/${x.linked_case}` }, `#${x.linked_case}`) : ''));
  });
  const all = h('input', { type: 'checkbox', 'aria-label': t('select_all'), onchange: (e) => boxes.forEach((b) => { b.checked = e.target.checked; }) });
  const notify = async () => {
    const ids = [...boxes].filter(([, b]) => b.checked).map(([id]) => id);
    if (!ids.length) { say(t('select_first'), 'error'); return; }
    const r = await attempt(() => api('POST', '/contacts/notify', { contacts: ids }));
    if (r) { await contactsPage(params); say(t('notified_n', { n: r.notified }), 'ok'); }
  };
  const exportCsv = () => downloadCsv(`contacts-response-${session.response.id}.csv`,
    ['contact_id', 'case', 'holder', 'identifier', 'place', 'lat', 'lon', 'first_seen', 'last_seen', 'overlap_minutes', 'status'],
    list.map((x) => [x.id, x.case_number, x.holder, x.identifier, x.place || '', x.lat, x.lon, x.first_seen, x.last_seen, x.overlap_minutes, x.status]));
  const statusSel = h('select', { name: 'status', onchange: (e) => {
    const f = new URLSearchParams(q); if (e.target.value) f.set('status', e.target.value); else f.delete('status');
    location.hash = `#/contacts?${f}`;
  } }, h('option', { value: '' }, t('any')), statuses.map((s) => h('option', { value: s, selected: s === statusFilter }, t(`ct_${s}`))));
  view(h('h1', {}, t('nav_contacts'), caseFilter ? h('small', {}, ` · ${t('case')} #${caseFilter}`) : ''),
    h('div', { class: 'toolbar' }, field(t('status'), statusSel),
      h('button', { type: 'button', id: 'notify', onclick: notify }, t('notify_selected')),
      h('button', { type: 'button', id: 'export', onclick: exportCsv }, t('export_csv'))),
    h('p', { class: 'count' }, t('n_contacts', { n: list.length }), list.length > 500 ? ` ${t('first_500')}` : ''),
    table(t('nav_contacts'), [all, t('case'), t('holder'), t('place'), t('first_seen'), t('overlap'), t('status'), t('became_case')], rows));
}

async function clustersPage() {
  const view = page();
  if (needResponse()) return;
  const list = await attempt(() => api('GET', `/responses/${session.response.id}/clusters`)) || [];
  const mapEl = h('div', { class: 'map', id: 'cluster-map' });
  // A cluster shows only what the reader may see of its cases: its source
  // may be a case she may not read, its place a route she may not see.
  const rows = list.map((c) => h('tr', {},
    h('td', {}, h('a', { href: `#/clusters/${c.id}` }, c.name)), h('td', {}, c.cases.length),
    h('td', {}, c.source ? h('a', { href: `#/cases/${c.source.id}` }, c.source.number) : '—'), h('td', {}, c.source ? c.source.onset : '—')));
  view(h('h1', {}, t('nav_clusters')),
    h('div', { class: 'split' },
      table(t('nav_clusters'), [t('cluster'), t('cases'), t('likely_source'), t('onset')], rows),
      mapEl));
  if (view.stale()) return;
  const map = await makeMap(mapEl, t('cluster_map'));
  if (!map || view.stale()) return;
  const pts = [];
  for (const c of list) {
    if (c.lat == null || c.lon == null) continue;
    pts.push([c.lat, c.lon]);
    L.circleMarker([c.lat, c.lon], { radius: 6 + Math.sqrt(c.cases.length) * 3, color: '#b03a2e', fillOpacity: 0.5 })
      .bindPopup(plain(`${c.name}: ${t('n_cases', { n: c.cases.length })}`))
      .on('click', () => { location.hash = `#/clusters/${c.id}`; })
      .addTo(map);
  }
  if (pts.length) map.fitBounds(L.latLngBounds(pts).pad(0.3));
}

async function clusterPage(id) {
  const view = page();
  if (needResponse()) return;
  const list = await attempt(() => api('GET', `/responses/${session.response.id}/clusters`)) || [];
  const c = list.find((x) => String(x.id) === String(id));
  if (!c) { view(h('p', {}, t('not_available'))); return; }
  const mapEl = h('div', { class: 'map', id: 'cluster-detail-map' });
  view(h('h1', {}, t('cluster'), ' ', c.name),
    h('dl', { class: 'facts inline' },
      h('dt', {}, t('likely_source')), h('dd', {}, c.source ? [h('a', { href: `#/cases/${c.source.id}` }, c.source.number), ` (${t('onset')} ${c.source.onset})`] : '—'),
      h('dt', {}, t('cases')), h('dd', {}, c.cases.length)),
    h('div', { class: 'split' },
      h('section', {}, h('h2', {}, t('transmission_tree')), transmissionTree(c, { label: t('transmission_tree'), source: t('likely_source') })),
      h('section', {}, h('h2', {}, t('epidemic_curve')), epidemicCurve(c.epidemic_curve, { label: t('epidemic_curve'), cases: t('cases') }))),
    h('section', {}, h('h2', {}, t('cluster_map')), mapEl),
    h('section', {}, h('h2', {}, t('cases')), table(t('cases'), [t('case'), t('onset')],
      c.cases.map((x) => h('tr', {}, h('td', {}, h('a', { href: `#/cases/${x.id}` }, x.number)), h('td', {}, onsetText(x)))))),
    h('section', {}, h('h2', {}, t('links')), table(t('links'), [t('case'), t('infected_by'), t('kind'), t('place'), t('setting'), t('evidence'), t('strength'), t('when')],
      c.tree.map((l) => h('tr', {}, h('td', {}, l.case), h('td', {}, l.infector), h('td', {}, t(`link_${l.kind}`)), h('td', {}, l.place || ''),
        h('td', {}, t(`setting_${l.setting}`)), h('td', {}, t(`basis_${l.basis}`)), h('td', {}, l.strength.toFixed(3)), h('td', {}, l.at))))));
  if (view.stale()) return;
  const map = await makeMap(mapEl, t('cluster_map'));
  if (!map || view.stale()) return;
  const pts = [];
  if (c.lat != null && c.lon != null) {
    pts.push([c.lat, c.lon]);
    L.circleMarker([c.lat, c.lon], { radius: 10, color: '#b03a2e' }).bindPopup(plain(c.name)).addTo(map);
  }
  for (const l of c.tree) {
    pts.push([l.lat, l.lon]);
    L.circleMarker([l.lat, l.lon], { radius: 5, color: '#1f618d' }).bindPopup(plain(`${l.infector} → ${l.case}: ${l.place || ''}`)).addTo(map);
  }
  if (pts.length) map.fitBounds(L.latLngBounds(pts).pad(0.3));
}

async function auditPage(params) {
  const view = page();
  const q = new URLSearchParams(params);
  const statusArea = h('div', { id: 'ledger-status' });
  const patternsArea = h('div', { id: 'patterns' });
  const drawStatus = async () => {
    const s = await attempt(() => api('GET', '/audit/verification'));
    if (!s) return;
    const v = s.last_verification;
    statusArea.replaceChildren(h('dl', { class: 'facts' },
      h('dt', {}, t('tree_size')), h('dd', {}, s.tree_head.tree_size),
      h('dt', {}, t('root_hash')), h('dd', {}, h('code', { class: 'wrap' }, s.tree_head.root_hash)),
      h('dt', {}, t('signed_at')), h('dd', {}, when(s.tree_head.timestamp / 1e6)),
      h('dt', {}, t('key')), h('dd', {}, h('code', {}, s.tree_head.key_id)),
      h('dt', {}, t('last_verification')), h('dd', { id: 'verification-result' }, v
        ? [badge(v.verified ? 'ok' : 'bad', v.verified ? t('verified') : t('not_verified')), ' ', when(v.checked_at), ' · ',
          v.verified ? t('verified_detail', { records: v.records, heads: v.tree_heads }) : v.problem]
        : t('never'))),
    h('button', { type: 'button', id: 'verify', onclick: async () => {
      const r = await attempt(() => api('POST', '/audit/verification'));
      if (r) { say(r.verified ? t('verified') : t('not_verified'), r.verified ? 'ok' : 'error'); drawStatus(); }
    } }, t('verify_now')));
  };
  const drawPatterns = async (days) => {
    const from = new Date(Date.now() - days * 86400000).toISOString();
    const p = await attempt(() => api('GET', `/audit/access-patterns?from=${encodeURIComponent(from)}`));
    if (!p) return;
    patternsArea.replaceChildren(h('p', { class: 'hint' }, t('patterns_hint')),
      table(t('access_patterns'), [t('actor'), t('cases_looked_up'), t('lookups'), t('bulk_reads'), t('peer_median'), t('ratio'), t('flag')],
        p.actors.map((a) => h('tr', { class: a.unusual ? 'flag' : '' },
          h('td', {}, h('a', { href: `#/audit?actor_name=${encodeURIComponent(a.actor_name)}` }, a.actor_name)),
          h('td', {}, a.cases), h('td', {}, a.lookups), h('td', {}, a.bulk_reads), h('td', {}, a.peer_median),
          h('td', {}, a.ratio_to_median ? `${a.ratio_to_median.toFixed(1)}×` : '—'),
          h('td', {}, a.unusual ? badge('bad', t('unusual')) : '')))));
  };
  const input = (name, attrs = {}) => h('input', { name, value: q.get(name) || '', ...attrs });
  const form = h('form', { class: 'filters', role: 'search', onsubmit: (e) => {
    e.preventDefault();
    const f = new URLSearchParams();
    for (const el of form.elements) if (el.name && el.value) f.set(el.name, el.value);
    location.hash = `#/audit?${f}`;
  } },
  field(t('actor'), input('actor_name')),
  field(t('subject'), input('subject')),
  field(t('action'), input('action', { placeholder: 'eiss.case.read' })),
  field(t('resource'), input('resource', { placeholder: 'case:1' })),
  field(t('from'), input('from', { type: 'datetime-local' })),
  field(t('until'), input('until', { type: 'datetime-local' })),
  h('button', { type: 'submit' }, t('search')));
  const api_q = new URLSearchParams();
  for (const [k, v] of q) {
    if (['from', 'until'].includes(k)) {
      // datetime-local is local time here; the API takes RFC 3339.
      const d = new Date(v);
      if (Number.isNaN(d.getTime())) { say(t('bad_date', { value: v }), 'error'); continue; }
      api_q.set(k, d.toISOString());
    } else api_q.set(k, v);
  }
  api_q.set('limit', '100');
  const found = await attempt(() => api('GET', `/audit/records?${api_q}`)) || { records: [] };
  const rows = found.records.map((r) => h('tr', { class: r.outcome === 'allowed' ? '' : 'flag' },
    h('td', {}, r.seq), h('td', {}, when(r.at / 1e6)), h('td', {}, r.actor_name || t('system')),
    h('td', {}, r.duty ? t(`duty_${r.duty}`) : ''), h('td', {}, r.action), h('td', {}, r.resource),
    h('td', {}, r.subject || ''), h('td', {}, t(`outcome_${r.outcome}`)), h('td', {}, r.reason || '')));
  const older = found.next_before ? h('a', { href: `#/audit?${new URLSearchParams({ ...Object.fromEntries(q), before: found.next_before })}` }, t('older')) : null;
  const days = h('select', { 'aria-label': t('period'), onchange: (e) => drawPatterns(Number(e.target.value)) },
    [1, 7, 30, 90].map((d) => h('option', { value: d, selected: d === 7 }, t('last_days', { n: d }))));
  view(h('h1', {}, t('nav_audit')),
    h('section', { class: 'card' }, h('h2', {}, t('ledger_status')), statusArea),
    h('section', { class: 'card' }, h('h2', {}, t('access_patterns')), days, patternsArea),
    h('section', {}, h('h2', {}, t('ledger_search')), form,
      table(t('ledger_search'), ['#', t('when'), t('actor'), t('duty'), t('action'), t('resource'), t('subject'), t('outcome'), t('why')], rows), older));
  await drawStatus();
  await drawPatterns(7);
}

function certificateView(cert) {
  const b = cert.body;
  return h('section', { class: 'card certificate', id: 'certificate', tabindex: '-1', 'aria-labelledby': 'cert-title' },
    h('h2', { id: 'cert-title' }, t('certificate'), ` #${cert.id}`),
    h('dl', { class: 'facts' },
      h('dt', {}, t('response')), h('dd', {}, `${b.name} (#${b.response})`),
      h('dt', {}, t('legal_basis')), h('dd', {}, b.legal_basis),
      h('dt', {}, t('closed_by')), h('dd', {}, `${b.closed_by} · ${when(b.closed_at)}`),
      h('dt', {}, t('key_destroyed')), h('dd', {}, h('code', {}, b.data_key_destroyed)),
      h('dt', {}, t('hub_records')), h('dd', {}, Object.entries(b.hub_records || {}).map(([k, v]) => `${k}: ${v}`).join(', ')),
      h('dt', {}, t('issuer')), h('dd', {}, h('code', {}, b.issuer)),
      h('dt', {}, t('signature')), h('dd', {}, h('code', { class: 'wrap' }, cert.signature))),
    table(t('node_deletions'), [t('holder'), t('confirmed_receipt'), t('answers_deleted'), t('bytes'), t('receipt')],
      b.nodes.map((n) => h('tr', {}, h('td', {}, n.node), h('td', {}, n.confirmed ? badge('ok', t('yes')) : badge('bad', t('no'))),
        h('td', {}, n.answers_deleted), h('td', {}, n.bytes_deleted), h('td', {}, n.receipt))), { showCaption: true }));
}

async function responsesPage(justClosed) {
  const view = page();
  const list = await attempt(() => api('GET', '/responses')) || [];
  session.responses = list;
  const admin = has('administrator');
  const area = h('div', { id: 'response-action' });
  const rows = list.map((r) => {
    const actions = [];
    if (r.status === 'closed') {
      actions.push(h('button', { type: 'button', onclick: async () => {
        const cert = await attempt(() => api('GET', `/responses/${r.id}/certificate`));
        if (cert) area.replaceChildren(certificateView(cert));
      } }, t('show_certificate')));
    } else if (admin) {
      actions.push(h('button', { type: 'button', class: 'danger', id: `close-${r.id}`, onclick: (opened) => {
        const opener = opened.currentTarget;
        const cancel = () => { area.replaceChildren(); opener.focus(); };
        area.replaceChildren(h('div', { class: 'card warn', role: 'alertdialog', 'aria-labelledby': 'close-title', 'aria-describedby': 'close-warning',
          onkeydown: (e) => { if (e.key === 'Escape') cancel(); } },
          h('h2', { id: 'close-title' }, t('close_title', { name: r.name })),
          h('p', { id: 'close-warning' }, t('close_warning')),
          h('button', { type: 'button', class: 'danger', id: 'confirm-close', onclick: async (e) => {
            e.target.disabled = true;
            e.target.textContent = t('closing');
            const cert = await attempt(() => api('POST', `/responses/${r.id}/close`), t('closed_msg'));
            if (cert) {
              await loadSession();
              renderChrome();
              await responsesPage(cert);
            } else { e.target.disabled = false; e.target.textContent = t('confirm_close'); }
          } }, t('confirm_close')),
          h('button', { type: 'button', onclick: cancel }, t('cancel'))));
        document.getElementById('confirm-close').focus();
      } }, t('close_response')));
    }
    return h('tr', {}, h('td', {}, r.id), h('td', {}, r.name), h('td', {}, r.legal_basis), h('td', {}, badge(r.status === 'open' ? 'ok' : '', t(`status_${r.status}`))),
      h('td', {}, when(r.opened_at)), h('td', {}, when(r.closed_at)), h('td', {}, actions));
  });
  const name = h('input', { required: true, maxlength: '300' });
  const basis = h('input', { required: true, maxlength: '300', value: 'Infectious Disease Control and Prevention Act, art. 76-2' });
  const open = admin ? h('form', { class: 'card', onsubmit: async (e) => {
    e.preventDefault();
    const r = await attempt(() => api('POST', '/responses', { name: name.value, legal_basis: basis.value }), t('opened'));
    if (r) { await loadSession(); renderChrome(); responsesPage(); }
  } }, h('h2', {}, t('open_response')), field(t('name'), name), field(t('legal_basis'), basis), h('button', { type: 'submit' }, t('open'))) : null;
  view(h('h1', {}, t('nav_responses')),
    table(t('nav_responses'), ['#', t('name'), t('legal_basis'), t('status'), t('opened_at'), t('closed_at'), ''], rows),
    area, open);
  if (justClosed) {
    area.replaceChildren(certificateView(justClosed));
    document.getElementById('certificate').focus();
  }
}

// ---------------------------------------------------------------- City data

/** A tenant of the NGSI-LD broker (`''`: the default tenant), as the page
 * reads it: open to anyone, or (closed by its settings) to the signed-in
 * user's session. */
async function ngsi(path, tenant = '') {
  const headers = { accept: 'application/json' };
  if (session.token) headers.authorization = `Bearer ${session.token}`;
  if (tenant) headers['ngsild-tenant'] = tenant;
  const res = await fetch(`/ngsi-ld/v1${path}`, { headers });
  const body = await res.json().catch(() => null);
  if (!res.ok) throw new Error(body?.detail || t('not_available'));
  return body;
}

const shortType = (id) => id.split(':').slice(-2, -1)[0] || id;

/** City data (public, as the broker's default tenant): the sensors on the
 *  map, a sensor's latest values and history, the subscriptions, MQTT
 *  ingestion. */
async function cityPage(params) {
  const view = page();
  const wanted = new URLSearchParams(params);
  const tenant = wanted.get('tenant') || '';
  const go = (next) => {
    const q = new URLSearchParams(Object.entries({ tenant, ...next }).filter(([, v]) => v)).toString();
    const to = `#/city${q ? `?${q}` : ''}`;
    // The same address again (a tenant's settings saved): drawn again.
    if (location.hash === to) cityPage(q); else location.hash = to;
  };
  // The tenants, their settings, for those who look after them (city
  // data operators, administrators); anyone else sees the tenant named
  // in the address (the default one unless a link names another).
  const tenants = has('administrator') || has('city_data_operator')
    ? await api('GET', '/citydata/tenants').catch(() => null) : null;
  const settings = tenants?.find((x) => x.name === tenant);
  const ngsiHere = (path) => ngsi(path, tenant);
  let types;
  try {
    types = (await ngsiHere('/types')).typeList || [];
  } catch (e) {
    if (view.stale()) return;
    say(e.message, 'error');
    // Still let whoever may set tenants up pick another, or set this one up.
    if (tenants) view(h('h1', {}, t('nav_city')), cityTenants(tenants, settings, tenant, go));
    return;
  }
  // An open tenant may keep its subscriptions to those it lets subscribe:
  // the rest of the page is public all the same. (Not asked where the
  // settings say so already.)
  const kept = settings && settings.access === 'open' && !settings.public_writes && !has('city_data_operator');
  const subs = kept ? null : await ngsiHere('/subscriptions?limit=100').catch(() => null);
  const type = wanted.get('type') || types.find((x) => x !== 'Ingestion') || '';
  let sensors = [];
  if (type) {
    try {
      sensors = await ngsiHere(`/entities?type=${encodeURIComponent(type)}&options=keyValues&limit=1000`);
    } catch (e) { say(e.message, 'error'); return; }
  }
  // MQTT ingestion's status, where it writes (a query: a tenant without
  // it answers none, not 404).
  const ingestion = (await ngsiHere('/entities?type=Ingestion&id=urn:ngsi-ld:Ingestion:mqtt&options=keyValues').catch(() => []))[0] ?? null;
  // The Smart Data Models the broker ships: what a sensor's attributes
  // mean, in what unit.
  const models = await fetch('/api/v1/citydata/models').then((r) => (r.ok ? r.json() : [])).catch(() => []);
  if (view.stale()) return;
  const pick = h('select', { id: 'city-type', onchange: (e) => go({ type: e.target.value }) },
    types.filter((x) => x !== 'Ingestion').map((x) => h('option', { value: x, selected: x === type }, x)));
  const mapEl = h('div', { id: 'city-map', class: 'map' });
  const detail = h('div', { id: 'city-detail', 'aria-live': 'polite' }, h('p', { class: 'hint' }, t('city_pick_sensor')));
  const numeric = (e) => Object.entries(e).filter(([k, v]) => !['id', 'type', 'location'].includes(k) && typeof v === 'number');
  // A value as keyValues gives it: a DateTime is {"@type", "@value"}.
  const shown = (v) => (v && typeof v === 'object' ? (v['@value'] ?? JSON.stringify(v)) : String(v));
  // What sums a sensor up when it measures no number: its words (a
  // status, a state), not its links or dates.
  const words = (e) => Object.entries(e).filter(([k, v]) => !['id', 'type', 'location', 'name'].includes(k) && typeof v === 'string' && !k.startsWith('ref'));
  const showSensor = async (e) => {
    detail.replaceChildren(h('p', { class: 'loading' }, t('loading')));
    let history;
    try {
      history = await ngsiHere(`/temporal/entities/${encodeURIComponent(e.id)}?options=temporalValues&lastN=100`);
    } catch (err) { detail.replaceChildren(h('p', { class: 'msg error' }, err.message)); return; }
    const charts = Object.entries(history).filter(([k, v]) => Array.isArray(v?.values))
      .map(([k, v]) => {
        const points = v.values.filter(([val]) => typeof val === 'number').map(([val, at]) => [Date.parse(at), val]);
        return points.length ? h('figure', {}, h('figcaption', {}, k), h('div', { class: 'chart-wrap' }, lineChart(points, { label: `${e.id} ${k}` }))) : null;
      });
    const model = models.find((m) => m.type === e.type);
    const meaning = (k) => {
      const a = model?.attributes?.[k];
      return a ? [a.units && `[${a.units}]`, a.description].filter(Boolean).join(' ') : '';
    };
    detail.replaceChildren(h('h2', { id: 'sensor-title' }, e.name || e.id),
      ...(model ? [h('p', { class: 'hint', id: 'sensor-model' },
        t('city_model', { name: model.type, subject: model.subject, version: model.version }))] : []),
      table(t('city_latest'), [t('city_attribute'), t('city_value'), t('city_meaning')],
        Object.entries(e).filter(([k]) => !['id', 'type', 'location'].includes(k))
          .map(([k, v]) => h('tr', {}, h('td', {}, k), h('td', {}, shown(v)), h('td', {}, meaning(k))))),
      h('h3', {}, t('city_history')), ...charts.filter(Boolean));
  };
  const rows = sensors.slice(0, 200).map((e) => h('tr', {},
    h('td', {}, h('a', { href: '#', onclick: (ev) => { ev.preventDefault(); showSensor(e); } }, e.name || e.id.split(':').pop())),
    h('td', {}, numeric(e).map(([k, v]) => `${k} ${v}`).join(' · ') || words(e).map(([k, v]) => `${k} ${v}`).join(' · '))));
  view(h('h1', {}, t('nav_city')),
    h('p', {}, t('city_intro'), ' ', h('code', {}, `${location.origin}/ngsi-ld/v1`),
      tenant ? [' ', t('city_tenant_header'), ' ', h('code', { id: 'city-tenant-name' }, `NGSILD-Tenant: ${tenant}`)] : null),
    tenants ? cityTenants(tenants, settings, tenant, go) : null,
    h('form', { class: 'filters', onsubmit: (e) => e.preventDefault() }, field(t('city_type'), pick)),
    h('p', { class: 'count', id: 'city-count' }, t('city_n_sensors', { n: sensors.length, type })),
    h('div', { class: 'split' }, mapEl, detail),
    table(t('city_sensors'), [t('city_sensor'), t('city_value')], rows),
    h('h2', {}, t('city_subscriptions')),
    subs ? table(t('city_subscriptions'), [t('city_subscription'), t('city_endpoint'), t('city_status'), t('city_sent')],
      subs.map((x) => h('tr', {}, h('td', {}, x.subscriptionName || x.id), h('td', {}, h('code', {}, x.notification?.endpoint?.uri || '')),
        h('td', {}, badge(x.status === 'active' ? 'ok' : 'warn', x.status)), h('td', {}, String(x.notification?.timesSent || 0)))))
      : h('p', { class: 'hint', id: 'city-subscriptions-closed' }, t('city_subscriptions_closed')),
    h('h2', {}, t('city_ingestion')),
    ingestion ? h('dl', { class: 'facts', id: 'city-ingestion' },
      h('dt', {}, t('city_broker')), h('dd', {}, ingestion.broker, ' ', badge(ingestion.connected ? 'ok' : 'warn', ingestion.connected ? t('city_connected') : t('city_disconnected'))),
      h('dt', {}, t('city_messages')), h('dd', {}, String(ingestion.messages)),
      h('dt', {}, t('city_written')), h('dd', {}, String(ingestion.written)),
      h('dt', {}, t('city_rejected')), h('dd', {}, String(ingestion.rejected)),
      ingestion.lastError ? h('dt', {}, t('city_last_error')) : null, ingestion.lastError ? h('dd', {}, ingestion.lastError) : null)
      : h('p', {}, t('city_no_ingestion')));
  const map = await makeMap(mapEl, t('city_map'));
  if (!map || view.stale()) return;
  const markers = sensors.filter((e) => e.location?.type === 'Point').map((e) =>
    L.circleMarker([e.location.coordinates[1], e.location.coordinates[0]], { radius: 6, color: '#3a6ea5', weight: 2 })
      .bindTooltip(plain(`${e.name || shortType(e.id) + ' ' + e.id.split(':').pop()}`))
      .on('click', () => showSensor(e)));
  if (markers.length) {
    const group = L.featureGroup(markers).addTo(map);
    map.fitBounds(group.getBounds(), { maxZoom: 13 });
  }
}

/** The tenant picker and, for administrators, a tenant's settings (to
 *  set a new one up, or change the one shown: `current`, if it is set up). */
function cityTenants(tenants, current, tenant, go) {
  const named = (n) => (n ? n : t('city_default_tenant'));
  const names = [...new Set(['', ...tenants.map((x) => x.name), tenant])];
  const pick = h('select', { id: 'city-tenant', onchange: (e) => go({ tenant: e.target.value, type: '' }) },
    names.map((n) => h('option', { value: n, selected: n === tenant }, named(n))));
  const facts = current ? h('p', { class: 'hint', id: 'city-tenant-settings' }, t('city_tenant_facts', {
    access: t(`city_access_${current.access}`),
    institution: current.institution,
    readers: current.readers.join(', ') || '—',
    writers: current.writers.join(', ') || '—',
  })) : h('p', { class: 'hint', id: 'city-tenant-settings' }, t('city_tenant_unset'));
  return [h('form', { class: 'filters', onsubmit: (e) => e.preventDefault() }, field(t('city_tenant'), pick)), facts,
    has('administrator') ? tenantForm(current ?? { name: tenant, institution: session.me?.institution_id, access: 'closed', readers: [], writers: [] }, go) : null];
}

/** Sets a tenant up or changes its settings (administrators: audited). */
function tenantForm(s, go) {
  const ids = (text) => text.split(/[\s,]+/).filter(Boolean).map(Number);
  const name = h('input', { name: 'name', value: s.name, maxlength: '64', pattern: '[A-Za-z0-9_.\\-]{0,64}' });
  const institution = h('input', { name: 'institution', type: 'number', min: '1', required: true, value: String(s.institution ?? '') });
  const access = h('select', { name: 'access' }, ['open', 'closed'].map((a) => h('option', { value: a, selected: a === s.access }, t(`city_access_${a}`))));
  const publicWrites = h('input', { type: 'checkbox', name: 'public_writes', checked: !!s.public_writes });
  const publicRegistrations = h('input', { type: 'checkbox', name: 'public_registrations', checked: !!s.public_registrations });
  const readers = h('input', { name: 'readers', value: (s.readers || []).join(', '), inputmode: 'numeric' });
  const writers = h('input', { name: 'writers', value: (s.writers || []).join(', '), inputmode: 'numeric' });
  const form = h('form', { class: 'apply', id: 'tenant-form', onsubmit: async (e) => {
    e.preventDefault();
    const open = access.value === 'open';
    const body = {
      name: name.value.trim(), institution: Number(institution.value), access: access.value,
      public_writes: open && publicWrites.checked, public_registrations: open && publicRegistrations.checked,
      readers: ids(readers.value), writers: ids(writers.value),
    };
    if (body.readers.concat(body.writers).some((n) => !Number.isInteger(n) || n < 1)) { say(t('city_bad_institutions'), 'error'); return; }
    const r = await attempt(() => api('PUT', '/citydata/tenants', body), t('saved'));
    if (r) go({ tenant: r.name, type: '' });
  } },
  field(t('city_tenant_name'), name, t('city_tenant_name_hint')), field(t('city_institution'), institution),
  field(t('city_access'), access),
  h('label', { class: 'check' }, publicWrites, t('city_public_writes')),
  h('label', { class: 'check' }, publicRegistrations, t('city_public_registrations')),
  field(t('city_readers'), readers, t('city_institutions_hint')), field(t('city_writers'), writers, t('city_institutions_hint')),
  h('button', { type: 'submit', class: 'primary' }, t('city_tenant_save')));
  return h('details', { class: 'apply-box' }, h('summary', { id: 'tenant-form-open' }, t('city_tenant_set_up')), form);
}

// ---------------------------------------------------------------- MyData

/** The public catalogue: search, entries with their items and demand, and
 *  the figures; an agency's operator applies from an entry. */
async function cataloguePage(params) {
  const view = page();
  const q = new URLSearchParams(params).get('q') || '';
  const res = await fetch(`/api/v1/mydata/catalogue${q ? `?q=${encodeURIComponent(q)}` : ''}`);
  const data = await res.json().catch(() => ({}));
  if (!res.ok) { say(data.detail || t('not_available'), 'error'); return; }
  const search = h('input', { type: 'search', name: 'q', value: q });
  const form = h('form', { class: 'filters', role: 'search', onsubmit: (e) => {
    e.preventDefault();
    location.hash = search.value.trim() ? `#/catalogue?q=${encodeURIComponent(search.value.trim())}` : '#/catalogue';
  } }, field(t('catalogue_search'), search), h('button', { type: 'submit' }, t('search')));
  const mine = session.me?.institution_id;
  const canApply = has('mydata_operator');
  const cards = data.offers.map((o) => h('article', { class: 'card offer', 'aria-labelledby': `offer-${o.id}` },
    h('h2', { id: `offer-${o.id}` }, o.title, ' ', badge(o.kind === 'document' ? 'info' : 'ok', t(`offer_${o.kind}`))),
    h('p', {}, o.description),
    h('dl', { class: 'facts' },
      h('dt', {}, t('holder')), h('dd', {}, o.holder.name),
      h('dt', {}, t('legal_basis')), h('dd', {}, o.legal_basis),
      h('dt', {}, t('code')), h('dd', {}, h('code', {}, o.code)),
      h('dt', {}, t('demand')), h('dd', {}, t('demand_text', { agreements: o.demand.agreements, agencies: o.demand.agencies }), ' · ', t('n_transfers', { n: o.demand.transfers }))),
    table(t('items'), [t('item'), t('type'), t('description'), t('sensitivity'), t('retention')],
      o.items.map((i) => h('tr', {}, h('td', {}, h('code', {}, i.name)), h('td', {}, i.type), h('td', {}, i.description),
        h('td', {}, badge(i.sensitivity === 'normal' ? '' : 'warn', t(`sens_${i.sensitivity}`))), h('td', {}, t('days', { n: i.retention_days }))))),
    canApply && o.holder.id !== mine ? applyForm(o) : null));
  const s = data.stats;
  view(h('h1', {}, t('nav_catalogue')),
    session.me ? null : h('p', {}, h('a', { href: '#/login' }, t('sign_in'))),
    form,
    h('p', { class: 'count' }, t('n_offers', { n: data.offers.length })),
    h('div', { class: 'cards' }, cards),
    h('h2', {}, t('figures')),
    h('div', { class: 'split' },
      table(t('by_year'), [t('year'), t('documents_published'), t('datasets_published'), t('agreements_approved'), t('documents_used'), t('datasets_used')],
        s.by_year.map((y) => h('tr', {}, h('td', {}, y.year), h('td', {}, y.documents_published), h('td', {}, y.datasets_published), h('td', {}, y.agreements_approved),
          h('td', {}, y.documents_used), h('td', {}, y.datasets_used))), { showCaption: true }),
      table(t('by_agency'), [t('agency'), t('documents'), t('datasets'), t('nav_transfers')],
        s.by_agency.map((a) => h('tr', {}, h('td', {}, a.agency.name), h('td', {}, a.documents), h('td', {}, a.datasets), h('td', {}, a.transfers))), { showCaption: true })));
}

function applyForm(o) {
  const items = o.items.map((i) => h('label', { class: 'check' },
    h('input', { type: 'checkbox', name: 'item', value: i.name, checked: true, disabled: o.kind === 'document' }), i.name));
  const service = h('input', { name: 'service', required: true, maxlength: '200' });
  const purpose = h('textarea', { name: 'purpose', rows: '2', required: true, maxlength: '2000' });
  const basis = h('input', { name: 'legal_basis', required: true, maxlength: '500' });
  const longest = Math.min(...o.items.map((i) => i.retention_days));
  const retention = h('input', { name: 'retention_days', type: 'number', min: '0', max: String(longest), value: String(longest), required: true });
  const form = h('form', { class: 'apply', onsubmit: async (e) => {
    e.preventDefault();
    const chosen = [...form.querySelectorAll('input[name=item]:checked')].map((x) => x.value);
    const body = { offer_id: o.id, service: service.value, items: chosen, purpose: purpose.value, legal_basis: basis.value, retention_days: Number(retention.value) };
    const r = await attempt(() => api('POST', '/mydata/agreements', body), t('applied_msg'));
    if (r) location.hash = `#/agreements/${r.id}`;
  } },
  h('fieldset', {}, h('legend', {}, t('items')), items),
  field(t('service'), service), field(t('purpose'), purpose), field(t('legal_basis'), basis),
  field(t('retention_days'), retention, t('retention_hint', { n: longest })),
  h('button', { type: 'submit', class: 'primary' }, t('apply')));
  return h('details', { class: 'apply-box' }, h('summary', {}, t('apply_for', { title: o.title })), form);
}

const agreementKinds = { applied: 'warn', questioned: 'warn', approved: 'ok', rejected: 'bad', superseded: '' };

async function agreementsPage() {
  const view = page();
  const list = await attempt(() => api('GET', '/mydata/agreements')) || [];
  view(h('h1', {}, t('nav_agreements')), h('p', { class: 'hint' }, t('agreements_hint')),
    table(t('nav_agreements'), ['#', t('entry'), t('holder'), t('agency'), t('service'), t('version'), t('items'), t('status')],
      list.map((a) => h('tr', {}, h('td', {}, h('a', { href: `#/agreements/${a.id}` }, `#${a.id}`)), h('td', {}, a.offer_title),
        h('td', {}, a.holder.name), h('td', {}, a.agency.name), h('td', {}, a.service), h('td', {}, a.version),
        h('td', {}, a.items.join(', ')), h('td', {}, badge(agreementKinds[a.status] ?? '', t(`ag_${a.status}`)))))));
}

async function agreementPage(id) {
  const view = page();
  const a = await attempt(() => api('GET', `/mydata/agreements/${id}`));
  if (!a) { view(h('p', {}, t('not_available'))); return; }
  const holder = session.me?.institution_id === a.holder.id;
  const text = h('textarea', { id: 'note-text', rows: '2', maxlength: '2000' });
  const step = (kind) => h('button', { type: 'button', id: `note-${kind}`, class: kind === 'approve' ? 'primary' : kind === 'reject' ? 'danger' : '', onclick: async () => {
    if (!text.value.trim()) { say(t('note_required'), 'error'); text.focus(); return; }
    const r = await attempt(() => api('POST', `/mydata/agreements/${id}/notes`, { kind, text: text.value.trim() }), t('saved'));
    if (r) agreementPage(id);
  } }, t(`step_${kind}`));
  const steps = holder
    ? (['applied', 'questioned'].includes(a.status) ? [a.status === 'applied' ? 'question' : null, a.status === 'applied' ? 'approve' : null, 'reject', 'comment'] : ['comment'])
    : (a.status === 'questioned' ? ['answer', 'comment'] : ['comment']);
  view(h('h1', {}, t('agreement'), ` #${a.id} `, badge(agreementKinds[a.status] ?? '', t(`ag_${a.status}`))),
    h('dl', { class: 'facts' },
      h('dt', {}, t('entry')), h('dd', {}, `${a.offer_title} (${a.offer_code})`),
      h('dt', {}, t('holder')), h('dd', {}, a.holder.name),
      h('dt', {}, t('agency')), h('dd', {}, a.agency.name),
      h('dt', {}, t('service')), h('dd', {}, a.service),
      h('dt', {}, t('version')), h('dd', {}, a.version),
      h('dt', {}, t('items')), h('dd', {}, a.items.join(', ')),
      h('dt', {}, t('purpose')), h('dd', {}, a.purpose),
      h('dt', {}, t('legal_basis')), h('dd', {}, a.legal_basis),
      h('dt', {}, t('retention_days')), h('dd', {}, t('days', { n: a.retention_days })),
      h('dt', {}, t('applied_at')), h('dd', {}, when(a.applied_at)),
      h('dt', {}, t('decided_at')), h('dd', {}, when(a.decided_at) || '—')),
    h('h2', {}, t('history')),
    h('ol', { class: 'history' }, a.history.map((n) => h('li', {}, h('strong', {}, t(`note_${n.kind}`)), ` · ${when(n.at)} · `, n.text))),
    h('section', { class: 'card' }, h('h2', {}, t('next_step')), field(t('note_text'), text),
      h('div', { class: 'row' }, steps.filter(Boolean).map(step))));
}

// ---------------------------------------------------------------- support centre

const ticketKinds = ['new_dataset', 'linkage_problem', 'error', 'other'];
const ticketBadge = { open: 'warn', answered: 'info', closed: '' };

/** Tickets (an institution's own, or all for agents), opening one, and the
 *  training sessions; agents schedule sessions and record attendees. */
async function supportPage() {
  const view = page();
  const agent = has('support_agent');
  const tickets = await attempt(() => api('GET', '/support/tickets')) || [];
  const trainings = await attempt(() => api('GET', '/support/trainings')) || [];
  const institutions = agent ? await api('GET', '/institutions').catch(() => []) : [];
  const kind = h('select', { name: 'kind' }, ticketKinds.map((k) => h('option', { value: k }, t(`tk_${k}`))));
  const subject = h('input', { name: 'subject', required: true, maxlength: '200' });
  const text = h('textarea', { name: 'text', rows: '3', required: true, maxlength: '2000' });
  const open = agent ? null : h('form', { class: 'card', id: 'ticket-form', onsubmit: async (e) => {
    e.preventDefault();
    const r = await attempt(() => api('POST', '/support/tickets', { kind: kind.value, subject: subject.value, text: text.value }), t('ticket_opened'));
    if (r) location.hash = `#/support/tickets/${r.id}`;
  } }, h('h2', {}, t('open_ticket')), field(t('kind'), kind), field(t('ticket_subject'), subject), field(t('message'), text),
  h('button', { type: 'submit', class: 'primary' }, t('open_ticket')));
  const trainingRows = trainings.map((tr) => {
    let inst;
    let attendee;
    const who = agent ? h('form', { class: 'row', onsubmit: async (e) => {
      e.preventDefault();
      const body = { institution_id: Number(inst.value), name: attendee.value };
      const r = await attempt(() => api('POST', `/support/trainings/${tr.id}/attendees`, body), t('saved'));
      if (r) supportPage();
    } }, field(t('institution'), (inst = h('select', { 'aria-label': t('institution') }, institutions.map((i) => h('option', { value: i.id }, i.name))))),
    field(t('attendee'), (attendee = h('input', { required: true, maxlength: '100' }))), h('button', { type: 'submit' }, t('add_attendee'))) : null;
    return h('article', { class: 'card' }, h('h3', {}, `${tr.held_on} · ${tr.title}`), h('p', {}, tr.place),
      tr.materials.length ? h('ul', {}, tr.materials.map((m) => h('li', {}, h('a', { href: m.url, rel: 'noopener noreferrer' }, m.title)))) : null,
      h('p', { class: 'count' }, t('n_attendees', { n: tr.attendees.length }), ': ', tr.attendees.map((a) => `${a.name} (${a.institution.name})`).join(', ')),
      who);
  });
  const title = h('input', { required: true, maxlength: '200' });
  const day = h('input', { type: 'date', required: true });
  const place = h('input', { required: true, maxlength: '200' });
  const schedule = agent ? h('form', { class: 'card', id: 'training-form', onsubmit: async (e) => {
    e.preventDefault();
    const r = await attempt(() => api('POST', '/support/trainings', { title: title.value, held_on: day.value, place: place.value }), t('saved'));
    if (r) supportPage();
  } }, h('h2', {}, t('schedule_training')), field(t('name'), title), field(t('held_on'), day), field(t('place'), place),
  h('button', { type: 'submit' }, t('schedule_training'))) : null;
  view(h('h1', {}, t('nav_support')),
    table(t('tickets'), ['#', t('institution'), t('kind'), t('ticket_subject'), t('status'), t('updated')],
      tickets.map((tk) => h('tr', {}, h('td', {}, h('a', { href: `#/support/tickets/${tk.id}` }, `#${tk.id}`)), h('td', {}, tk.institution.name),
        h('td', {}, t(`tk_${tk.kind}`)), h('td', {}, tk.subject), h('td', {}, badge(ticketBadge[tk.status] ?? '', t(`ts_${tk.status}`))), h('td', {}, when(tk.updated_at)))),
      { showCaption: true }),
    open,
    h('h2', {}, t('trainings')), schedule, h('div', { class: 'cards' }, trainingRows));
}

async function ticketPage(id) {
  const view = page();
  const tk = await attempt(() => api('GET', `/support/tickets/${id}`));
  if (!tk) { view(h('p', {}, t('not_available'))); return; }
  const text = h('textarea', { id: 'reply-text', rows: '3', maxlength: '2000' });
  const send = (close) => async () => {
    if (!close && !text.value.trim()) { say(t('note_required'), 'error'); text.focus(); return; }
    const body = { text: text.value.trim() || null, close };
    const r = await attempt(() => api('POST', `/support/tickets/${id}/replies`, body), t('saved'));
    if (r) ticketPage(id);
  };
  let history = null;
  if (has('support_agent')) {
    const hist = await api('GET', `/support/institutions/${tk.institution.id}/history`).catch(() => null);
    if (hist) {
      history = h('section', { class: 'card' }, h('h2', {}, t('consulting_history', { name: hist.institution.name })),
        h('ul', {}, hist.tickets.map((x) => h('li', {}, h('a', { href: `#/support/tickets/${x.id}` }, `#${x.id}`), ` ${x.subject} · ${t(`ts_${x.status}`)}`)),
          hist.trainings.map((x) => h('li', {}, `${x.held_on} · ${x.title}`))));
    }
  }
  view(h('h1', {}, t('ticket'), ` #${tk.id} `, badge(ticketBadge[tk.status] ?? '', t(`ts_${tk.status}`))),
    h('dl', { class: 'facts' },
      h('dt', {}, t('institution')), h('dd', {}, tk.institution.name),
      h('dt', {}, t('kind')), h('dd', {}, t(`tk_${tk.kind}`)),
      h('dt', {}, t('ticket_subject')), h('dd', {}, tk.subject),
      h('dt', {}, t('opened_at')), h('dd', {}, when(tk.opened_at))),
    h('ol', { class: 'history' }, tk.messages.map((m) => h('li', {}, `${when(m.at)} · `, m.text))),
    tk.status === 'closed' ? null : h('section', { class: 'card' }, field(t('reply'), text),
      h('div', { class: 'row' }, h('button', { type: 'button', id: 'send-reply', class: 'primary', onclick: send(false) }, t('reply')),
        h('button', { type: 'button', id: 'close-ticket', onclick: send(true) }, t('close_ticket')))),
    history);
}

// ---------------------------------------------------------------- MyData transfers

const transferBadge = { awaiting_consent: 'warn', refused: '', consented: 'info', delivered: 'ok', failed: 'bad', withdrawn: '' };
const stateBadge = (st) => badge(transferBadge[st] ?? '', t(`st_${st}`));

/** Downloads what a signed-in GET returns, as a file. */
async function downloadAuthed(path, name) {
  const res = await fetch(`/api/v1${path}`, { headers: { authorization: `Bearer ${session.token}` } });
  if (!res.ok) {
    const p = await res.json().catch(() => ({}));
    throw new ApiError(res.status, p);
  }
  const url = URL.createObjectURL(await res.blob());
  const a = h('a', { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

/** One request awaiting the citizen: who asks, which items, why, for how
 *  long; consent once or periodically, or refuse. */
function pendingCard(x) {
  const periodic = h('input', { type: 'checkbox', id: `periodic-${x.id}` });
  const until = h('input', { type: 'date', id: `until-${x.id}` });
  const every = h('input', { type: 'number', min: '1', max: '366', value: '30', id: `every-${x.id}` });
  const reason = h('input', { maxlength: '500', id: `reason-${x.id}` });
  const consent = async () => {
    const body = periodic.checked ? { mode: 'periodic', until: until.value, interval_days: Number(every.value) } : { mode: 'once' };
    const r = await attempt(() => api('POST', `/mydata/transfers/${x.id}/consent`, body), t('consented_msg'));
    if (r) mydataPage();
  };
  const refuse = async () => {
    const r = await attempt(() => api('POST', `/mydata/transfers/${x.id}/refusal`, { reason: reason.value.trim() || null }), t('refused_msg'));
    if (r) mydataPage();
  };
  return h('article', { class: 'card', id: `pending-${x.id}` },
    h('h3', {}, t('asks_for', { agency: x.agency.name, holder: x.holder.name, title: x.offer.title })),
    h('ul', {}, x.items.map((i) => h('li', {}, h('strong', {}, i.name), ` — ${i.description} `,
      badge(i.sensitivity === 'normal' ? '' : 'warn', t(`sensitivity_${i.sensitivity}`))))),
    h('dl', { class: 'facts' },
      h('dt', {}, t('for_service')), h('dd', {}, x.service),
      h('dt', {}, t('purpose')), h('dd', {}, x.purpose),
      h('dt', {}, t('legal_basis')), h('dd', {}, x.legal_basis),
      h('dt', {}, t('kept_for')), h('dd', {}, t('days', { n: x.retention_days }))),
    h('label', { class: 'check' }, periodic, t('consent_periodic')),
    h('div', { class: 'row' }, field(t('consent_until'), until), field(t('consent_every'), every)),
    h('div', { class: 'row' },
      h('button', { type: 'button', class: 'primary', id: `consent-${x.id}`, onclick: consent }, t('give_consent')),
      field(t('refusal_reason'), reason),
      h('button', { type: 'button', class: 'danger', id: `refuse-${x.id}`, onclick: refuse }, t('refuse'))));
}

/** The citizen's own page: requests to decide, every transfer with its
 *  receipt and withdrawal, every access, and the portability download. */
async function mydataPage() {
  const view = page();
  const list = await attempt(() => api('GET', '/mydata/transfers')) || [];
  const accesses = await attempt(() => api('GET', '/mydata/me/accesses')) || [];
  const pending = list.filter((x) => x.state === 'awaiting_consent');
  const receiptBox = h('pre', { class: 'receipt', id: 'receipt', hidden: true });
  const showReceipt = async (id) => {
    const r = await attempt(() => api('GET', `/mydata/transfers/${id}/receipt`));
    if (r) { receiptBox.textContent = JSON.stringify(r, null, 2); receiptBox.hidden = false; receiptBox.scrollIntoView({ block: 'nearest' }); }
  };
  const withdraw = async (id) => {
    if (!window.confirm(t('withdraw_confirm'))) return;
    const r = await attempt(() => api('POST', `/mydata/transfers/${id}/withdrawal`), t('withdrawn_msg'));
    if (r) mydataPage();
  };
  const rows = list.filter((x) => x.state !== 'awaiting_consent').map((x) => h('tr', { id: `transfer-${x.id}` },
    h('td', {}, x.offer.title), h('td', {}, x.agency.name), h('td', {}, x.holder.name),
    h('td', {}, x.items.map((i) => i.name).join(', ')), h('td', {}, stateBadge(x.state),
      x.revoked_at ? [' ', badge('', t('revoked'))] : null),
    h('td', {}, when(x.decided_at)),
    h('td', {}, h('div', { class: 'row' },
      h('button', { type: 'button', onclick: () => showReceipt(x.id) }, t('consent_receipt')),
      ['consented', 'delivered'].includes(x.state) ? h('button', { type: 'button', class: 'danger', id: `withdraw-${x.id}`, onclick: () => withdraw(x.id) }, t('withdraw')) : null))));
  const download = (format, name) => h('button', { type: 'button', id: `export-${format}`, onclick: () =>
    attempt(() => downloadAuthed(`/mydata/me/export?format=${format}`, name), t('downloaded')) }, t(`download_${format}`));
  view(h('h1', {}, t('nav_mydata')), h('p', { class: 'hint' }, t('mydata_hint')),
    h('h2', {}, t('pending_requests')),
    pending.length ? h('div', { class: 'cards' }, pending.map(pendingCard)) : h('p', {}, t('no_pending')),
    h('h2', {}, t('my_transfers')),
    table(t('my_transfers'), [t('entry'), t('agency'), t('holder'), t('items'), t('state'), t('decided'), ''], rows),
    receiptBox,
    h('section', { class: 'card' }, h('h2', {}, t('portability')), h('p', { class: 'hint' }, t('portability_hint')),
      h('div', { class: 'row' }, download('json', 'my-data.json'), download('csv', 'my-data.csv'), download('vc', 'my-credentials.json'))),
    h('h2', {}, t('my_accesses')),
    table(t('my_accesses'), [t('when'), t('who'), t('institution'), t('what_done'), t('purpose'), t('result')],
      accesses.slice(0, 200).map((a) => h('tr', {}, h('td', {}, when(a.at)), h('td', {}, a.who || t('system')), h('td', {}, a.institution || ''),
        h('td', {}, a.action), h('td', {}, a.purpose || ''), h('td', {}, t(`outcome_${a.outcome}`))))));
}

/** An agency's (or a holder's) transfers; an agency asks for new ones and
 *  sets its webhook. */
async function transfersPage() {
  const view = page();
  const list = await attempt(() => api('GET', '/mydata/transfers')) || [];
  const agency = session.me?.institution_kind === 'using_agency';
  let form = null;
  let hook = null;
  let events = [];
  if (agency) {
    const agreements = (await attempt(() => api('GET', '/mydata/agreements')) || [])
      .filter((a) => a.status === 'approved' && a.agency.id === session.me.institution_id);
    events = await attempt(() => api('GET', '/mydata/events?after=0&limit=1000')) || [];
    const choice = h('select', { id: 'transfer-agreement' }, agreements.map((a) => h('option', { value: a.id }, `#${a.id} ${a.offer_title} · ${a.service}`)));
    const itemsBox = h('fieldset', { id: 'transfer-items' });
    const fill = () => {
      const a = agreements.find((x) => String(x.id) === choice.value);
      itemsBox.replaceChildren(h('legend', {}, t('items')), ...(a ? a.items : []).map((n) => h('label', { class: 'check' },
        h('input', { type: 'checkbox', name: 'item', value: n, checked: true }), n)));
    };
    choice.addEventListener('change', fill);
    fill();
    const subject = h('input', { id: 'transfer-subject', required: true, maxlength: '64' });
    const key = h('textarea', { id: 'transfer-key', rows: '3', required: true });
    form = agreements.length ? h('form', { class: 'card', id: 'transfer-form', onsubmit: async (e) => {
      e.preventDefault();
      let recipient;
      try { recipient = JSON.parse(key.value); } catch { say(t('recipient_key_hint'), 'error'); key.focus(); return; }
      const items = [...itemsBox.querySelectorAll('input[name=item]:checked')].map((x) => x.value);
      const r = await attempt(() => api('POST', '/mydata/transfers', { agreement_id: Number(choice.value), subject: subject.value.trim(), items, recipient_key: recipient }), t('requested_msg'));
      if (r) location.hash = `#/transfers/${r.id}`;
    } }, h('h2', {}, t('new_transfer')), field(t('agreement'), choice), itemsBox, field(t('citizen_subject'), subject),
    field(t('recipient_key'), key, t('recipient_key_hint')), h('button', { type: 'submit', class: 'primary' }, t('send_request_mydata')))
      : h('p', {}, t('no_approved_agreement'));
    const url = h('input', { id: 'webhook-url', type: 'url', required: true, placeholder: 'https://' });
    const secret = h('pre', { id: 'webhook-secret', hidden: true });
    hook = h('form', { class: 'card', onsubmit: async (e) => {
      e.preventDefault();
      const r = await attempt(() => api('PUT', '/mydata/webhook', { url: url.value.trim() }), t('saved'));
      if (r) { secret.textContent = `${t('webhook_secret')}: ${r.secret}`; secret.hidden = false; }
    } }, h('h2', {}, t('webhook')), field(t('webhook_url'), url), h('button', { type: 'submit' }, t('set_webhook')), secret);
  }
  view(h('h1', {}, t('nav_transfers')), h('p', { class: 'hint' }, t('transfers_hint')),
    table(t('nav_transfers'), ['#', t('entry'), agency ? t('holder') : t('agency'), t('citizen_subject'), t('items'), t('state'), t('updated')],
      list.map((x) => h('tr', {}, h('td', {}, h('a', { href: `#/transfers/${x.id}` }, `#${x.id}`)), h('td', {}, x.offer.title),
        h('td', {}, agency ? x.holder.name : x.agency.name), h('td', {}, x.subject), h('td', {}, x.items.map((i) => i.name).join(', ')),
        h('td', {}, stateBadge(x.state)), h('td', {}, when(x.withdrawn_at || x.decided_at || x.created_at))))),
    form, hook,
    agency ? [h('h2', {}, t('events')), table(t('events'), ['#', t('kind'), t('transfer'), t('when')],
      events.slice(-50).reverse().map((e) => h('tr', {}, h('td', {}, e.seq), h('td', {}, e.type), h('td', {}, h('a', { href: `#/transfers/${e.transfer_id}` }, `#${e.transfer_id}`)), h('td', {}, when(e.at)))))] : null);
}

async function transferPage(id) {
  const view = page();
  const x = await attempt(() => api('GET', `/mydata/transfers/${id}`));
  if (!x) { view(h('p', {}, t('not_available'))); return; }
  const agency = session.me?.institution_id === x.agency.id;
  const act = (path, ok) => async () => {
    const r = await attempt(() => api('POST', `/mydata/transfers/${id}/${path}`), ok);
    if (r) transferPage(id);
  };
  const buttons = agency ? h('div', { class: 'row' },
    x.state === 'delivered' ? h('button', { type: 'button', class: 'primary', id: 'fetch-package', onclick: () =>
      attempt(() => downloadAuthed(`/mydata/transfers/${id}/package`, `transfer-${id}-package.json`), t('downloaded')) }, t('fetch_package')) : null,
    x.state === 'delivered' && x.mode === 'periodic' ? h('button', { type: 'button', onclick: act('resend', t('saved')) }, t('resend')) : null,
    x.state === 'withdrawn' && !x.deletion_confirmed_at ? h('button', { type: 'button', class: 'danger', id: 'confirm-deletion', onclick: act('deletion', t('saved')) }, t('confirm_deletion')) : null) : null;
  view(h('h1', {}, t('transfer'), ` #${x.id} `, stateBadge(x.state)),
    h('dl', { class: 'facts' },
      h('dt', {}, t('entry')), h('dd', {}, `${x.offer.title} (${x.offer.code})`),
      h('dt', {}, t('agency')), h('dd', {}, x.agency.name),
      h('dt', {}, t('holder')), h('dd', {}, x.holder.name),
      h('dt', {}, t('citizen_subject')), h('dd', {}, x.subject),
      h('dt', {}, t('items')), h('dd', {}, x.items.map((i) => i.name).join(', ')),
      h('dt', {}, t('for_service')), h('dd', {}, x.service),
      h('dt', {}, t('purpose')), h('dd', {}, x.purpose),
      h('dt', {}, t('kept_for')), h('dd', {}, t('days', { n: x.retention_days })),
      h('dt', {}, t('decided')), h('dd', {}, when(x.decided_at) || '—'),
      x.withdrawn_at ? [h('dt', {}, t('st_withdrawn')), h('dd', {}, when(x.withdrawn_at))] : null,
      x.deletion_confirmed_at ? [h('dt', {}, t('deletion_confirmed')), h('dd', {}, when(x.deletion_confirmed_at))] : null),
    buttons,
    table(t('deliveries'), [t('status_index'), t('delivered_at'), t('fetched_at'), t('kept')],
      x.deliveries.map((d) => h('tr', {}, h('td', {}, d.status_index), h('td', {}, when(d.delivered_at)), h('td', {}, when(d.fetched_at)),
        h('td', {}, d.kept ? '✓' : '—'))), { showCaption: true }));
}

// ---------------------------------------------------------------- router

const routes = [
  [/^#\/cases\/(\d+)$/, (m) => casePage(m[1])],
  [/^#\/cases$/, (m, q) => casesPage(q)],
  [/^#\/inbox$/, () => inboxPage()],
  [/^#\/contacts$/, (m, q) => contactsPage(q)],
  [/^#\/clusters\/(\d+)$/, (m) => clusterPage(m[1])],
  [/^#\/clusters$/, () => clustersPage()],
  [/^#\/audit$/, (m, q) => auditPage(q)],
  [/^#\/responses$/, () => responsesPage()],
  [/^#\/account$/, () => accountPage()],
  [/^#\/catalogue$/, (m, q) => cataloguePage(q)],
  [/^#\/city$/, (m, q) => cityPage(q)],
  [/^#\/agreements\/(\d+)$/, (m) => agreementPage(m[1])],
  [/^#\/agreements$/, () => agreementsPage()],
  [/^#\/support\/tickets\/(\d+)$/, (m) => ticketPage(m[1])],
  [/^#\/support$/, () => supportPage()],
  [/^#\/mydata$/, () => mydataPage()],
  [/^#\/transfers\/(\d+)$/, (m) => transferPage(m[1])],
  [/^#\/transfers$/, () => transfersPage()],
];

async function route() {
  navSeq += 1;
  stopFeed();
  removeMaps();
  // A message outlives the page it was about only if it was just said (an
  // action that moved to another page).
  if (Date.now() - saidAt > 1500) $notice.replaceChildren();
  document.documentElement.lang = lang();
  document.getElementById('skip-link').textContent = t('skip');
  const [path, query = ''] = location.hash.split('?');
  if (!session.token) {
    $bar.hidden = true; $nav.hidden = true;
    // The catalogue and the city's open data are public: no sign-in.
    if (path === '#/catalogue') { await cataloguePage(query); return; }
    if (path === '#/city') { await cityPage(query); return; }
    loginPage();
    return;
  }
  if (!session.me) {
    try { await loadSession(); } catch { return; }
    renderChrome();
  }
  if (path === '#/login' || path === '' || path === '#/' || path === '#') { location.hash = homeFor(); return; }
  for (const a of $nav.querySelectorAll('a')) a.setAttribute('aria-current', a.getAttribute('href') === path.split('/').slice(0, 2).join('/') ? 'page' : 'false');
  const found = routes.find(([re]) => re.test(path));
  if (!found) { show(h('p', {}, t('not_available'))); return; }
  show(h('p', { class: 'loading' }, t('loading')));
  await found[1](path.match(found[0]), query);
  $main.focus({ preventScroll: true });
}

document.getElementById('skip-link').addEventListener('click', (e) => { e.preventDefault(); $main.focus(); });
window.addEventListener('hashchange', route);
// A module runs once the page is parsed (and after the deferred map library).
route();
