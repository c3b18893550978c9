// Small SVG charts drawn from data (no library): a cluster's epidemic curve
// and its transmission tree. Text goes in as text nodes only.

const NS = 'http://www.w3.org/2000/svg';

function s(tag, attrs = {}, text) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
}

/** Cases by onset date as bars; `curve` is [[YYYY-MM-DD, count], …]. */
export function epidemicCurve(curve, words) {
  const days = [];
  if (curve.length) {
    const first = new Date(`${curve[0][0]}T00:00:00Z`);
    const last = new Date(`${curve[curve.length - 1][0]}T00:00:00Z`);
    const counts = new Map(curve);
    for (let d = first; d <= last; d = new Date(d.getTime() + 86400000)) {
      const key = d.toISOString().slice(0, 10);
      days.push([key, counts.get(key) || 0]);
    }
  }
  const max = Math.max(1, ...days.map((d) => d[1]));
  const width = 480;
  const height = 220;
  const pad = { l: 32, r: 8, t: 10, b: 40 };
  const bw = days.length ? (width - pad.l - pad.r) / days.length : 0;
  const svg = s('svg', { viewBox: `0 0 ${width} ${height}`, class: 'chart', role: 'img', 'aria-label': `${words.label}: ${days.map(([d, n]) => `${d} ${n}`).join(', ')}` });
  svg.append(s('title', {}, words.label));
  const y = (n) => pad.t + (height - pad.t - pad.b) * (1 - n / max);
  for (let tick = 0; tick <= max; tick += Math.max(1, Math.ceil(max / 4))) {
    svg.append(s('line', { x1: pad.l, x2: width - pad.r, y1: y(tick), y2: y(tick), class: 'grid' }));
    svg.append(s('text', { x: pad.l - 4, y: y(tick) + 4, 'text-anchor': 'end', class: 'axis' }, String(tick)));
  }
  days.forEach(([day, n], i) => {
    const x = pad.l + i * bw;
    const bar = s('rect', { x: x + 1, y: y(n), width: Math.max(1, bw - 2), height: y(0) - y(n), class: 'bar' });
    bar.append(s('title', {}, `${day}: ${n} ${words.cases}`));
    svg.append(bar);
    if (days.length <= 16 || i % Math.ceil(days.length / 8) === 0) {
      svg.append(s('text', { x: x + bw / 2, y: height - pad.b + 14, 'text-anchor': 'middle', class: 'axis' }, day.slice(5)));
    }
  });
  return svg;
}

/** The cluster's tree: the source on top, each case under its infector. */
export function transmissionTree(cluster, words) {
  const parent = new Map(cluster.tree.map((l) => [l.case, l.infector]));
  const children = new Map();
  for (const [child, p] of parent) {
    if (!children.has(p)) children.set(p, []);
    children.get(p).push(child);
  }
  // The source is absent when the reader may not read it: every case she
  // may read without a parent shown then starts a row of its own.
  const root = cluster.source ? cluster.source.number : null;
  // Depth-first order gives each leaf its own column; parents sit over
  // the middle of their children.
  const pos = new Map();
  let column = 0;
  const seen = new Set();
  const place = (node, depth) => {
    if (seen.has(node)) return;
    seen.add(node);
    const kids = (children.get(node) || []).slice().sort();
    kids.forEach((k) => place(k, depth + 1));
    const xs = kids.filter((k) => pos.has(k)).map((k) => pos.get(k).col);
    const col = xs.length ? (Math.min(...xs) + Math.max(...xs)) / 2 : column++;
    pos.set(node, { col, depth });
  };
  if (root !== null) place(root, 0);
  for (const c of cluster.cases) if (!pos.has(c.number)) place(c.number, root === null ? 0 : 1);
  const cols = Math.max(1, column);
  const depth = Math.max(0, ...[...pos.values()].map((p) => p.depth));
  const cw = 56;
  const rh = 64;
  const width = Math.max(320, cols * cw + 20);
  const height = (depth + 1) * rh + 20;
  const svg = s('svg', { viewBox: `0 0 ${width} ${height}`, class: 'chart tree', role: 'img',
    'aria-label': `${words.label}: ${cluster.tree.map((l) => `${l.infector} → ${l.case}`).join(', ')}` });
  svg.append(s('title', {}, words.label));
  const xy = (n) => { const p = pos.get(n); return [10 + cw / 2 + p.col * cw, 24 + p.depth * rh]; };
  for (const l of cluster.tree) {
    if (!pos.has(l.case) || !pos.has(l.infector)) continue;
    const [x1, y1] = xy(l.infector);
    const [x2, y2] = xy(l.case);
    const edge = s('line', { x1, y1, x2, y2, class: l.kind === 'infector' ? 'edge' : 'edge co' });
    edge.append(s('title', {}, `${l.infector} → ${l.case} · ${l.place || ''} · ${l.at}`));
    svg.append(edge);
  }
  for (const [n] of pos) {
    const [x, y] = xy(n);
    const g = s('g', { class: n === root ? 'node root' : 'node' });
    g.append(s('circle', { cx: x, cy: y, r: 14 }));
    g.append(s('text', { x, y: y + 4, 'text-anchor': 'middle' }, n.length > 5 ? n.slice(-4) : n));
    g.append(s('title', {}, n === root ? `${n} (${words.source})` : n));
    svg.append(g);
  }
  const wrap = document.createElement('div');
  wrap.className = 'chart-wrap';
  wrap.tabIndex = 0;
  wrap.append(svg);
  return wrap;
}

/** A time series as a line; `points` is [[Date ms, number], …]. */
export function lineChart(points, words) {
  const width = 480;
  const height = 200;
  const pad = { l: 44, r: 8, t: 10, b: 34 };
  const svg = s('svg', { viewBox: `0 0 ${width} ${height}`, class: 'chart', role: 'img',
    'aria-label': `${words.label}: ${points.map(([at, v]) => `${new Date(at).toISOString().slice(11, 16)} ${v}`).join(', ')}` });
  svg.append(s('title', {}, words.label));
  if (!points.length) return svg;
  const xs = points.map((p) => p[0]);
  const ys = points.map((p) => p[1]);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  let [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  if (y0 === y1) { y0 -= 1; y1 += 1; }
  const x = (v) => pad.l + (width - pad.l - pad.r) * (x1 === x0 ? 0.5 : (v - x0) / (x1 - x0));
  const y = (v) => pad.t + (height - pad.t - pad.b) * (1 - (v - y0) / (y1 - y0));
  for (let i = 0; i <= 4; i += 1) {
    const v = y0 + ((y1 - y0) * i) / 4;
    svg.append(s('line', { x1: pad.l, x2: width - pad.r, y1: y(v), y2: y(v), class: 'grid' }));
    svg.append(s('text', { x: pad.l - 4, y: y(v) + 4, 'text-anchor': 'end', class: 'axis' }, String(Math.round(v * 10) / 10)));
  }
  svg.append(s('polyline', { points: points.map(([a, v]) => `${x(a)},${y(v)}`).join(' '), class: 'line', fill: 'none' }));
  for (const at of [x0, x1]) {
    svg.append(s('text', { x: x(at), y: height - pad.b + 16, 'text-anchor': at === x0 ? 'start' : 'end', class: 'axis' },
      new Date(at).toISOString().slice(0, 16).replace('T', ' ')));
  }
  return svg;
}
