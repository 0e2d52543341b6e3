// The Nest dashboard: one page, plain DOM, no framework, no network but this node.
//
// Every figure comes from the node's JSON API on this origin (`/v1/...`). Views are
// hash routes (`#/`, `#/chains`, `#/block/main/7`, ...), so moving between them never
// reloads the page. Text is always set with `textContent`, never parsed as HTML.
//
// Live updates: committed blocks arrive on the public WebSocket `/v1/events/blocks`
// (heights, hashes and transaction counts are public anyway), and each view refreshes
// when one arrives, at most once per refresh in flight. Figures that change without a
// block (peers, CPU, memory, radio counters) are polled every `POLL_INTERVAL_MS`, a
// modest rate for a small gateway. The full event stream stays an admin route.
//
// Admin token: the plugins view asks for it and keeps it in sessionStorage (gone when
// the tab closes); it travels only as the `Authorization: Bearer` header of admin
// calls, never in a URL, and is forgotten as soon as the node refuses it.
'use strict';

const TOKEN_KEY = 'nest.adminToken';
const POLL_INTERVAL_MS = 5000;
const REFRESH_SPACING_MS = 1000;
const BLOCKS_CHARTED = 120;
const BLOCKS_LISTED = 20;
const BLOCKS_PER_PAGE = 50;
const BLOCK_SUMMARIES_MAX = 256;
const TX_RATE_BUCKET_MS = 10000;
const CPU_SAMPLES_KEPT = 60;
const CURVE_POINTS = 21;
const DOTS_MAX = 40;
const RECONNECT_MAX_MS = 30000;

// ---------------------------------------------------------------- DOM helpers

function el(tag, attributes, ...children) {
  const node = document.createElement(tag);
  setAttributes(node, attributes);
  appendAll(node, children);
  return node;
}

function svg(tag, attributes, ...children) {
  const node = document.createElementNS('http://www.w3.org/2000/svg', tag);
  setAttributes(node, attributes);
  appendAll(node, children);
  return node;
}

function setAttributes(node, attributes) {
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'text') node.textContent = String(value);
    else if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? '' : String(value));
  }
}

function appendAll(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

function add(node, ...children) {
  appendAll(node, children);
}

function replace(node, ...children) {
  node.replaceChildren();
  appendAll(node, children);
}

function link(href, text, attributes) {
  return el('a', { href, text, ...attributes });
}

function short(hex) {
  return typeof hex === 'string' && hex.length > 16 ? hex.slice(0, 8) + '…' + hex.slice(-4) : String(hex ?? '');
}

function mono(text, attributes) {
  return el('span', { class: 'mono', text, title: text, ...attributes });
}

function number(value) {
  return value === null || value === undefined ? '–' : Number(value).toLocaleString('en-US');
}

function bytes(value) {
  if (value === null || value === undefined) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let amount = value;
  let unit = 0;
  while (amount >= 1024 && unit < units.length - 1) {
    amount /= 1024;
    unit += 1;
  }
  return (unit === 0 ? amount : amount.toFixed(1)) + ' ' + units[unit];
}

function duration(ms) {
  if (ms === null || ms === undefined) return '–';
  const seconds = Math.floor(ms / 1000);
  const parts = [[Math.floor(seconds / 86400), 'd'], [Math.floor(seconds / 3600) % 24, 'h'],
    [Math.floor(seconds / 60) % 60, 'min'], [seconds % 60, 's']];
  const shown = parts.filter(([amount]) => amount > 0).slice(0, 2);
  return shown.length ? shown.map(([amount, unit]) => amount + ' ' + unit).join(' ') : (ms / 1000).toFixed(1) + ' s';
}

function time(ms) {
  if (!ms) return '–';
  const date = new Date(ms);
  const pad = (value) => String(value).padStart(2, '0');
  return date.getFullYear() + '-' + pad(date.getMonth() + 1) + '-' + pad(date.getDate()) + ' ' +
    pad(date.getHours()) + ':' + pad(date.getMinutes()) + ':' + pad(date.getSeconds());
}

function keyValues(rows) {
  const list = el('dl', { class: 'kv' });
  for (const [label, value, id] of rows) {
    list.append(el('dt', { text: label }), el('dd', { id }, value ?? '–'));
  }
  return list;
}

function table(headers, rows, attributes) {
  const head = el('thead', {}, el('tr', {}, headers.map((header) => el('th', { text: header }))));
  const body = el('tbody', {}, rows.map((cells) => el('tr', {}, cells.map((cell) => el('td', {}, cell)))));
  if (!rows.length) body.append(el('tr', {}, el('td', { colspan: headers.length, class: 'muted', text: 'none' })));
  return el('table', attributes, head, body);
}

function card(title, ...children) {
  return el('section', { class: 'card' }, el('h2', { text: title }), ...children);
}

function state(text) {
  return el('span', { class: 'state state-' + text, text });
}

function notice(text, kind, id) {
  return el('p', { class: 'notice ' + (kind || ''), text, id });
}

// ---------------------------------------------------------------- API

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function request(path, options) {
  let response;
  try {
    response = await fetch(path, options);
  } catch (error) {
    throw new ApiError(0, 'the node does not answer: ' + error.message);
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new ApiError(response.status, body.error || response.statusText);
  return body;
}

function api(path) {
  return request(path, { headers: { Accept: 'application/json' } });
}

const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY),
  set: (value) => sessionStorage.setItem(TOKEN_KEY, value),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

// An admin call: the token goes in the Authorization header only; a 401 forgets it.
async function admin(path, method, body) {
  const secret = token.get();
  if (!secret) throw new ApiError(401, 'admin token needed');
  const headers = { Accept: 'application/json', Authorization: 'Bearer ' + secret };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  try {
    return await request(path, { method: method || 'GET', headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (error) {
    if (error.status === 401) token.clear();
    throw error;
  }
}

const chainPath = (chain) => '/v1/chains/' + encodeURIComponent(chain);

// ---------------------------------------------------------------- live blocks

// The block stream: one WebSocket for the page, reconnecting with back-off.
const live = {
  listeners: new Set(),
  retryMs: 1000,
  lastBlock: null,

  connect() {
    const scheme = location.protocol === 'https:' ? 'wss://' : 'ws://';
    const socket = new WebSocket(scheme + location.host + '/v1/events/blocks');
    socket.onopen = () => {
      this.retryMs = 1000;
      this.show('live', 'on');
    };
    socket.onmessage = (message) => this.receive(message.data);
    socket.onclose = () => {
      this.show('reconnecting', 'off');
      setTimeout(() => this.connect(), this.retryMs);
      this.retryMs = Math.min(this.retryMs * 2, RECONNECT_MAX_MS);
    };
  },

  receive(text) {
    let event;
    try {
      event = JSON.parse(text);
    } catch {
      return;
    }
    if (event.type === 'block_committed') {
      this.lastBlock = event;
      this.show('live · #' + event.height, 'on');
    }
    for (const listener of this.listeners) listener(event);
  },

  show(text, kind) {
    const badge = document.getElementById('live');
    badge.textContent = text;
    badge.className = 'live ' + kind;
  },
};

// ---------------------------------------------------------------- views

// What a view may use: where to draw, block events and timers that end with the view.
class ViewContext {
  constructor(main) {
    this.main = main;
    this.disposers = [];
    this.active = true;
  }

  // Calls `refresh` on every committed block and every `POLL_INTERVAL_MS`, never twice at
  // once and at most once per `REFRESH_SPACING_MS` (a chain with 100 ms blocks must not
  // keep a small gateway busy): events in between cause one more refresh, later.
  keepFresh(refresh) {
    let running = false;
    let again = false;
    let startedMs = 0;
    let delayed = null;
    const run = async () => {
      if (!this.active) return;
      const waitMs = startedMs + REFRESH_SPACING_MS - Date.now();
      if (running || waitMs > 0) {
        if (running) again = true;
        else if (!delayed) delayed = setTimeout(() => { delayed = null; run(); }, waitMs);
        return;
      }
      running = true;
      startedMs = Date.now();
      try {
        await refresh();
      } catch (error) {
        console.warn('refresh failed:', error.message);
      }
      running = false;
      if (again) {
        again = false;
        run();
      }
    };
    const listener = (event) => {
      if (event.type === 'block_committed' || event.type === 'lagged') run();
    };
    live.listeners.add(listener);
    const timer = setInterval(run, POLL_INTERVAL_MS);
    this.disposers.push(() => live.listeners.delete(listener), () => clearInterval(timer), () => clearTimeout(delayed));
  }

  dispose() {
    this.active = false;
    for (const dispose of this.disposers) dispose();
  }
}

const routes = [
  [/^\/?$/, 'overview', overview],
  [/^\/chains$/, 'chains', chains],
  [/^\/chain\/([\w.-]+)(?:\/(\d+))?$/, 'chain', chainBlocks],
  [/^\/block\/([\w.-]+)\/(\d+)$/, 'block', block],
  [/^\/tx\/([\w.-]+)\/([0-9a-f]{64})$/, 'tx', transaction],
  [/^\/account\/([\w.-]+)\/([0-9a-f]{64})$/, 'account', account],
  [/^\/devices$/, 'devices', devices],
  [/^\/device\/([0-9a-f]{64})$/, 'device', device],
  [/^\/market$/, 'market', market],
  [/^\/market\/([\w.-]+)\/([^/]+)$/, 'sku', sku],
  [/^\/plugins$/, 'plugins', plugins],
];

let current = null;
let firstRender = true;

async function route() {
  let path;
  try {
    path = decodeURIComponent(location.hash.replace(/^#/, ''));
  } catch {
    path = '?';
  }
  const match = routes.map(([pattern, name, view]) => [pattern.exec(path), name, view]).find(([found]) => found);
  if (current) current.dispose();
  const main = el('div', { class: 'view' });
  replace(document.getElementById('view'), main);
  current = new ViewContext(main);
  const [found, name, view] = match || [null, 'missing', missing];
  document.body.dataset.page = name;
  delete document.body.dataset.ready;
  for (const item of document.querySelectorAll('nav a')) {
    item.classList.toggle('here', item.dataset.nav === navSection(name));
  }
  const context = current;
  try {
    await view(context, ...(found ? found.slice(1) : []));
  } catch (error) {
    if (context.active) main.append(notice(error.message, 'error'));
  }
  if (context.active) ready(name);
}

function navSection(page) {
  return { chain: 'chains', block: 'chains', tx: 'chains', account: 'chains', device: 'devices', sku: 'market' }[page] || page;
}

// Marks the page drawn: `nest-ready` is when the first page became usable (the
// benchmark's time to interactive); `data-ready` tells tests a view finished drawing.
function ready(name) {
  if (firstRender) {
    performance.mark('nest-ready');
    firstRender = false;
  }
  document.body.dataset.ready = name;
}

async function missing(context) {
  add(context.main, notice('No such page. ', 'error'), link('#/', 'Back to the overview'));
}

// ---------------------------------------------------------------- overview

async function overview(context) {
  const nodeCard = el('div');
  const chainsBox = el('div');
  const radiosBox = el('div');
  add(context.main, el('h1', { text: 'Overview' }), el('div', { class: 'grid' },
    card('Node', nodeCard), card('Radios', radiosBox)), chainsBox);
  const history = { cpu: [], previous: null, blocks: {} };
  const refresh = async () => {
    const [status, process] = await Promise.all([api('/v1/status'), api('/v1/process')]);
    const recent = await Promise.all(status.chains.map((chain) => recentBlocks(chain.id, history.blocks)));
    if (!context.active) return;
    document.getElementById('node-name').textContent = status.name;
    sampleCpu(history, process);
    replace(nodeCard, nodeFigures(status, process, history));
    replace(radiosBox, radioSummary(status));
    replace(chainsBox, status.chains.map((chain, index) => chainOverview(chain, recent[index])));
  };
  await refresh();
  context.keepFresh(refresh);
}

// The newest `BLOCKS_CHARTED` block summaries of a chain, fetching only the blocks the
// cache lacks.
async function recentBlocks(chain, cache) {
  const known = cache[chain];
  const newest = known && known.blocks.length ? known.blocks[0].height : null;
  const probe = await api(chainPath(chain) + '/blocks?limit=1');
  const missingCount = newest === null ? BLOCKS_CHARTED : Math.min(probe.final_height - newest, BLOCK_SUMMARIES_MAX);
  const fresh = missingCount > 1 ? await api(chainPath(chain) + '/blocks?limit=' + missingCount) : probe;
  const seen = new Set(fresh.blocks.map((summary) => summary.height));
  const kept = (known ? known.blocks : []).filter((summary) => !seen.has(summary.height));
  const blocks = fresh.blocks.concat(kept).filter((summary) => summary.height <= fresh.final_height)
    .sort((a, b) => b.height - a.height).slice(0, BLOCKS_CHARTED);
  cache[chain] = { ...fresh, blocks };
  return cache[chain];
}

function sampleCpu(history, process) {
  const now = process.uptime_ms;
  if (history.previous && now > history.previous.uptime_ms) {
    const busy = process.cpu_time_ms - history.previous.cpu_time_ms;
    history.cpu.push([Date.now(), (100 * busy) / (now - history.previous.uptime_ms)]);
    history.cpu = history.cpu.slice(-CPU_SAMPLES_KEPT);
  }
  history.previous = process;
}

function nodeFigures(status, process, history) {
  const cpu = history.cpu.length ? history.cpu[history.cpu.length - 1][1].toFixed(1) + ' % of a core' : 'measuring…';
  const memory = bytes(process.rss_bytes) + (process.memory_total_bytes
    ? ' (' + ((100 * process.rss_bytes) / process.memory_total_bytes).toFixed(1) + ' % of ' + bytes(process.memory_total_bytes) + ')' : '');
  const peers = el('span', {}, el('span', { id: 'peer-count', text: String(status.peers) }), (status.peer_list || []).map((peer) =>
    [' · ', mono(short(peer.key), { title: 'node key ' + peer.key + ', peer id ' + peer.peer_id })]));
  return [keyValues([
    ['name', status.name, 'node-name-value'],
    ['key', mono(status.public_key), 'node-key'],
    ['version', status.version, 'node-version'],
    ['uptime', duration(process.uptime_ms), 'node-uptime'],
    ['peers', peers],
    ['CPU', cpu + ' · ' + process.cores + ' cores', 'node-cpu'],
    ['memory', memory, 'node-memory'],
    ['threads', number(process.threads)],
  ]), history.cpu.length > 1 ? chart(history.cpu.map(([at, percent]) => [at, percent]), {
    kind: 'line', title: 'CPU, % of one core (since this page opened)', unit: '%', xLabel: clock,
  }) : null];
}

function radioSummary(status) {
  if (!status.radios.length) return notice('This node runs no radio.');
  const rows = status.radios.map((radio) => [link('#/devices', radio.id), radio.technology, state(radio.plugin.state),
    number(radio.link.accepted), number(radio.link.rejected)]);
  const anchors = status.device_anchors;
  return [table(['radio', 'technology', 'driver', 'accepted', 'rejected'], rows),
    anchors ? el('p', { class: 'muted', text: number(anchors.readings_submitted) + ' readings anchored in ' +
      number(anchors.txs_submitted) + ' transactions; ' + number(anchors.readings_waiting) + ' waiting' }) : null];
}

function chainOverview(chain, recent) {
  const id = chain.id;
  const blocks = recent.blocks.slice().reverse().filter((summary) => summary.timestamp_ms > 0);
  const intervals = blocks.slice(1).map((summary, index) => [summary.height, summary.timestamp_ms - blocks[index].timestamp_ms]);
  const span = blocks.length > 1 ? blocks[blocks.length - 1].timestamp_ms - blocks[0].timestamp_ms : 0;
  const txs = blocks.slice(1).reduce((sum, summary) => sum + summary.tx_count, 0);
  const engine = chain.consensus;
  return card('Chain ' + id, el('div', { class: 'grid' }, el('div', {}, keyValues([
    ['final height', link('#/block/' + id + '/' + recent.final_height, String(recent.final_height)), 'final-height-' + id],
    ['best height', String(recent.best_height), 'best-height-' + id],
    ['head', link('#/block/' + id + '/' + chain.height, short(chain.head_hash), { class: 'mono' })],
    ['head time', time(chain.head_timestamp_ms)],
    ['block time', intervals.length ? (span / intervals.length / 1000).toFixed(2) + ' s on average' : '–', 'block-time-' + id],
    ['throughput', span > 0 ? (txs / (span / 1000)).toFixed(2) + ' tx/s' : '–', 'tx-rate-' + id],
    ['mempool', number(chain.mempool_txs) + ' transactions', 'mempool-' + id],
    ['since start', number(chain.blocks_committed) + ' blocks, ' + number(chain.txs_committed) + ' transactions'],
    ['consensus', pluginLabel(chain.plugins.consensus, engine)],
    ['chain type', pluginLabel(chain.plugins.chain_type)],
  ])), el('div', {},
    chart(intervals, { kind: 'bars', title: 'block time (ms), last ' + intervals.length + ' blocks', unit: 'ms' }),
    chart(txRate(blocks), { kind: 'line', title: 'tx/s over the last ' + duration(span), unit: 'tx/s', xLabel: clock }))),
  link('#/chain/' + id, 'recent blocks →'));
}

function pluginLabel(slot, engine) {
  const where = engine ? ' · height ' + engine.height + ' round ' + engine.round + ' ' + engine.step : '';
  return [slot.name + ' ' + slot.version + ' ', state(slot.state), where];
}

// Transactions per second in buckets of `TX_RATE_BUCKET_MS` of block time; the first
// and last buckets are left out, as blocks outside the list may belong to them.
function txRate(blocks) {
  const buckets = new Map();
  for (const summary of blocks) {
    const bucket = Math.floor(summary.timestamp_ms / TX_RATE_BUCKET_MS) * TX_RATE_BUCKET_MS;
    buckets.set(bucket, (buckets.get(bucket) || 0) + summary.tx_count);
  }
  return [...buckets.entries()].sort((a, b) => a[0] - b[0]).slice(1, -1)
    .map(([bucket, count]) => [bucket, count / (TX_RATE_BUCKET_MS / 1000)]);
}

// ---------------------------------------------------------------- charts

// A small SVG chart of `points` ([x, y] pairs): bars or a line, with its maximum and
// the range of x written on it.
function chart(points, options) {
  const width = 480;
  const height = 120;
  const pad = { left: 44, right: 8, top: 8, bottom: 18 };
  const box = svg('svg', { viewBox: '0 0 ' + width + ' ' + height, class: 'chart', role: 'img', 'aria-label': options.title });
  const figure = el('figure', { class: 'chart-box' }, box, el('figcaption', { text: options.title }));
  if (!points.length) {
    box.append(svg('text', { x: width / 2, y: height / 2, class: 'axis', 'text-anchor': 'middle', text: 'no data yet' }));
    return figure;
  }
  const ys = points.map(([, y]) => y);
  const yMax = Math.max(...ys, 1e-9);
  const xMin = points[0][0];
  const xMax = points[points.length - 1][0];
  const plotWidth = width - pad.left - pad.right;
  const plotHeight = height - pad.top - pad.bottom;
  const xOf = (x, index) => pad.left + (options.kind === 'bars'
    ? (index * plotWidth) / points.length : xMax > xMin ? ((x - xMin) * plotWidth) / (xMax - xMin) : plotWidth / 2);
  const yOf = (y) => pad.top + plotHeight - (y * plotHeight) / yMax;
  const xLabel = options.xLabel || ((x) => '#' + x);
  box.append(
    svg('line', { x1: pad.left, y1: pad.top + plotHeight, x2: width - pad.right, y2: pad.top + plotHeight, class: 'axis-line' }),
    svg('text', { x: pad.left - 4, y: pad.top + 8, class: 'axis', 'text-anchor': 'end', text: round(yMax) }),
    svg('text', { x: pad.left - 4, y: pad.top + plotHeight, class: 'axis', 'text-anchor': 'end', text: '0' }),
    svg('text', { x: pad.left, y: height - 4, class: 'axis', text: xLabel(xMin) }),
    svg('text', { x: width - pad.right, y: height - 4, class: 'axis', 'text-anchor': 'end', text: xLabel(xMax) }),
  );
  if (options.kind === 'bars') {
    const barWidth = Math.max(plotWidth / points.length - 1, 1);
    points.forEach(([x, y], index) => box.append(svg('rect', {
      x: xOf(x, index), y: yOf(y), width: barWidth, height: Math.max(pad.top + plotHeight - yOf(y), 0.5), class: 'bar',
    }, svg('title', { text: '#' + x + ': ' + round(y) + ' ' + options.unit }))));
  } else {
    const path = points.map(([x, y], index) => xOf(x, index).toFixed(1) + ',' + yOf(y).toFixed(1)).join(' ');
    box.append(svg('polyline', { points: path, class: 'line' }));
    if (points.length <= DOTS_MAX) {
      points.forEach(([x, y], index) => box.append(svg('circle', { cx: xOf(x, index), cy: yOf(y), r: 2.5, class: 'dot' },
        svg('title', { text: xLabel(x) + ': ' + round(y) + ' ' + options.unit }))));
    }
  }
  return figure;
}

function round(value) {
  return Math.abs(value) >= 100 ? String(Math.round(value)) : String(Math.round(value * 100) / 100);
}

function clock(ms) {
  return time(ms).slice(11);
}

// ---------------------------------------------------------------- chains and blocks

async function chains(context) {
  const status = await api('/v1/status');
  const boxes = status.chains.map((chain) => ({ id: chain.id, box: el('div') }));
  add(context.main, el('h1', { text: 'Chains' }), searchForm(status.chains.map((chain) => chain.id)),
    boxes.map(({ id, box }) => card('Chain ' + id, box, link('#/chain/' + id, 'more blocks →'))));
  const refresh = async () => {
    const lists = await Promise.all(boxes.map(({ id }) => api(chainPath(id) + '/blocks?limit=' + BLOCKS_LISTED)));
    if (!context.active) return;
    lists.forEach((list, index) => replace(boxes[index].box, blockList(list)));
  };
  await refresh();
  context.keepFresh(refresh);
}

// One box that finds a block by height, a transaction by hash or an account by key.
function searchForm(chainIds) {
  const input = el('input', { id: 'search', type: 'search', placeholder: 'height, transaction hash or account', autocomplete: 'off', spellcheck: 'false' });
  const choice = el('select', { id: 'search-chain', 'aria-label': 'chain' }, chainIds.map((id) => el('option', { value: id, text: id })));
  const message = el('span', { class: 'muted' });
  const form = el('form', { class: 'search', onsubmit: async (event) => {
    event.preventDefault();
    const text = input.value.trim().toLowerCase();
    const chain = choice.value;
    if (/^\d+$/.test(text)) location.hash = '#/block/' + chain + '/' + text;
    else if (/^[0-9a-f]{64}$/.test(text)) location.hash = (await isTransaction(chain, text) ? '#/tx/' : '#/account/') + chain + '/' + text;
    else message.textContent = 'give a height, or 64 hex characters';
  } }, choice, input, el('button', { type: 'submit', text: 'Find' }), message);
  return form;
}

async function isTransaction(chain, hash) {
  try {
    await api(chainPath(chain) + '/txs/' + hash);
    return true;
  } catch {
    return false;
  }
}

function blockList(list) {
  const rows = list.blocks.map((summary) => [
    link('#/block/' + list.chain + '/' + summary.height, String(summary.height)),
    mono(short(summary.hash)), time(summary.timestamp_ms), String(summary.tx_count),
    mono(short(summary.proposer)), summary.finality_bytes ? 'proof ' + summary.finality_bytes + ' B' : 'certificate ' + summary.certificate_bytes + ' B',
  ]);
  return [el('p', { class: 'muted', text: 'final height ' + list.final_height + ', best ' + list.best_height }),
    table(['height', 'hash', 'time', 'txs', 'proposer', 'finality'], rows, { class: 'blocks', 'data-chain': list.chain })];
}

async function chainBlocks(context, chain, to) {
  const box = el('div');
  add(context.main, el('h1', { text: 'Blocks of ' + chain }), box);
  const refresh = async () => {
    const list = await api(chainPath(chain) + '/blocks?limit=' + BLOCKS_PER_PAGE + (to ? '&to=' + to : ''));
    if (!context.active) return;
    const lowest = list.blocks.length ? list.blocks[list.blocks.length - 1].height : 0;
    const pages = el('p', { class: 'pages' }, to ? link('#/chain/' + chain, '← newest') : null, ' ',
      lowest > 0 ? link('#/chain/' + chain + '/' + (lowest - 1), 'older →') : null);
    replace(box, blockList(list), pages);
  };
  await refresh();
  if (!to) context.keepFresh(refresh);
}

async function block(context, chain, height) {
  const view = await api(chainPath(chain) + '/blocks/' + height);
  const at = Number(height);
  add(context.main, el('h1', { text: 'Block ' + view.height + ' of ' + chain }),
    el('p', { class: 'pages' }, at > 0 ? link('#/block/' + chain + '/' + (at - 1), '← parent') : null, ' ',
      link('#/block/' + chain + '/' + (at + 1), 'child →')),
    card('Header', keyValues([
      ['hash', mono(view.hash), 'block-hash'],
      ['parent', mono(view.parent)],
      ['time', time(view.timestamp_ms)],
      ['proposer', accountLink(chain, view.proposer)],
      ['tx root', mono(view.tx_root)],
      ['state digest', mono(view.state_digest)],
      ['transactions', String(view.tx_count), 'block-tx-count'],
    ])),
    card('Transactions', table(['#', 'hash', 'kind', 'from', 'nonce', 'fee'], view.txs.map((entry, index) => [
      String(index), link('#/tx/' + chain + '/' + entry.hash, short(entry.hash), { class: 'mono' }),
      txKind(entry.tx.body), accountLink(chain, entry.tx.from, true), String(entry.tx.nonce), number(entry.tx.fee),
    ]), { id: 'block-txs' })),
    card('Finality', finality(view)));
}

function finality(view) {
  const commit = view.commit;
  const rows = [
    ['certificate', hexBlock(view.certificate), 'block-certificate'],
    ['finality proof', view.finality ? hexBlock(view.finality) : 'none: the certificate is the proof', 'block-finality'],
  ];
  if (commit) {
    rows.unshift(['commit', (commit.valid ? 'valid' : 'INVALID: ' + commit.error) + ' · round ' + commit.round +
      ' · power ' + commit.power + ' of ' + commit.total_power, 'block-commit'],
    ['signers', el('ul', { class: 'plain' }, commit.signers.map((signer) => el('li', {}, mono(short(signer.key)), ' power ' + signer.power)))]);
  }
  return keyValues(rows);
}

function hexBlock(hex) {
  return el('details', {}, el('summary', { text: hex.length / 2 + ' bytes' }), el('code', { class: 'hex', text: hex }));
}

// A transaction's kind from its body: `Transfer`, or `Device anchor` for an enum inside.
function txKind(body) {
  if (!body || typeof body !== 'object') return String(body);
  const [kind, inner] = Object.entries(body)[0] || ['?', null];
  const keys = inner && typeof inner === 'object' && !Array.isArray(inner) ? Object.keys(inner) : [];
  return keys.length === 1 && inner[keys[0]] && typeof inner[keys[0]] === 'object' ? kind + ' ' + keys[0] : kind;
}

function accountLink(chain, key, shorten) {
  return link('#/account/' + chain + '/' + key, shorten ? short(key) : key, { class: 'mono', title: key });
}

async function transaction(context, chain, hash) {
  const where = await api(chainPath(chain) + '/txs/' + hash);
  add(context.main, el('h1', { text: 'Transaction' }));
  if (where.status !== 'committed') {
    add(context.main, card('Pending', keyValues([['hash', mono(hash), 'tx-hash'], ['status', where.status, 'tx-status']])));
    return;
  }
  const view = await api(chainPath(chain) + '/blocks/' + where.height);
  const entry = view.txs[where.index];
  add(context.main, card('Committed', keyValues([
    ['hash', mono(hash), 'tx-hash'],
    ['status', 'committed', 'tx-status'],
    ['block', link('#/block/' + chain + '/' + where.height, String(where.height)), 'tx-height'],
    ['index', String(where.index)],
    ['from', accountLink(chain, entry.tx.from)],
    ['nonce', String(entry.tx.nonce)],
    ['fee', number(entry.tx.fee)],
    ['kind', txKind(entry.tx.body)],
    ['signature', mono(short(entry.signature))],
  ])), card('Body', el('pre', { class: 'json', text: JSON.stringify(entry.tx.body, null, 2) })));
}

async function account(context, chain, key) {
  const box = el('div');
  add(context.main, el('h1', { text: 'Account' }), card(chain, box));
  const refresh = async () => {
    const view = await api(chainPath(chain) + '/accounts/' + key);
    if (!context.active) return;
    replace(box, keyValues([
      ['account', mono(view.account), 'account-key'],
      ['balance', number(view.balance) + ' µNEST', 'account-balance'],
      ['nonce', String(view.nonce), 'account-nonce'],
      ['next nonce', String(view.next_nonce) + ' (counting the mempool)'],
    ]));
  };
  await refresh();
  context.keepFresh(refresh);
}

// ---------------------------------------------------------------- devices

async function devices(context) {
  const registry = el('div');
  const radios = el('div');
  add(context.main, el('h1', { text: 'Devices' }), card('Registry', registry), el('h2', { text: 'Radios' }), radios);
  const chain = (await api('/v1/status')).chains[0]?.id || 'main';
  const refresh = async () => {
    const [list, radioList] = await Promise.all([api('/v1/devices'), api('/v1/radios')]);
    if (!context.active) return;
    replace(registry, el('p', {}, el('strong', { id: 'device-count', text: String(list.length) }), ' devices on chain ' + chain),
      table(['µID', 'class', 'owner', 'registered', 'last counter', 'anchored', 'last anchor', 'state'], list.map((record) => [
        link('#/device/' + record.uid, short(record.uid), { class: 'mono' }), record.class, accountLink(chain, record.owner, true),
        '#' + record.registered_height, String(record.last_counter), number(record.readings_anchored),
        record.last_anchor_height ? link('#/block/' + chain + '/' + record.last_anchor_height, '#' + record.last_anchor_height) : '–',
        state(record.revoked ? 'revoked' : 'active'),
      ]), { id: 'device-table' }));
    replace(radios, el('div', { class: 'grid' }, radioList.map(radioCard)));
  };
  await refresh();
  context.keepFresh(refresh);
}

function radioCard(radio) {
  const stats = radio.link;
  const reasons = Object.entries(stats.rejected_by_reason);
  const skipped = Object.entries(radio.skipped || {});
  const rssi = stats.rssi_samples ? stats.rssi_last_dbm + ' dBm last, ' + stats.rssi_avg_dbm + ' dBm mean (' + number(stats.rssi_samples) + ' frames)' : 'not reported';
  return el('section', { class: 'card', 'data-radio': radio.id }, el('h2', { text: 'Radio ' + radio.id }), keyValues([
    ['driver', [radio.plugin.name + ' ' + radio.plugin.version + ' ', state(radio.plugin.state), radio.plugin.reason ? ' ' + radio.plugin.reason : '']],
    ['technology', radio.technology + ', MTU ' + radio.mtu_bytes + ' B'],
    ['frames', number(stats.frames_in) + ' in, ' + number(stats.frames_out) + ' out'],
    ['accepted', number(stats.accepted), 'radio-accepted-' + radio.id],
    ['rejected', number(stats.rejected), 'radio-rejected-' + radio.id],
    ['RSSI', rssi],
    ['partial', number(stats.partial_messages) + ' fragment sequences waiting'],
  ]), reasons.length ? table(['rejected because', 'frames'], reasons.map(([reason, count]) => [reason, number(count)])) : null,
  skipped.length ? table(['skipped because', 'frames'], skipped.map(([reason, count]) => [reason, number(count)])) : null);
}

async function device(context, uid) {
  const box = el('div');
  add(context.main, el('h1', { text: 'Device' }), box);
  const chain = (await api('/v1/status')).chains[0]?.id || 'main';
  const refresh = async () => {
    const record = await api('/v1/devices/' + uid);
    if (!context.active) return;
    replace(box, card('Record', keyValues([
      ['µID', mono(record.uid), 'device-uid'],
      ['class', record.class],
      ['owner', accountLink(chain, record.owner)],
      ['key', mono(short(record.public_key), { title: record.public_key })],
      ['state', state(record.revoked ? 'revoked' : 'active')],
      ['last counter', String(record.last_counter)],
      ['readings anchored', number(record.readings_anchored)],
    ])), card('Latest readings', table(['time', 'counter', 'radio', 'from', 'payload', 'anchor'], (record.readings || []).map((reading) => [
      time(reading.timestamp_ms), String(reading.counter), reading.radio, reading.link_address,
      el('span', { class: 'mono', text: payload(reading) }),
      reading.anchor ? link('#/tx/' + chain + '/' + reading.anchor.tx, short(reading.anchor.tx), { class: 'mono' }) : 'waiting',
    ]), { id: 'device-readings' })), card('Anchors', table(['block', 'counters', 'readings', 'root', 'gateway', 'time'], (record.anchors || []).map((anchor) => [
      link('#/block/' + chain + '/' + anchor.height, '#' + anchor.height), anchor.first_counter + ' – ' + anchor.last_counter,
      String(anchor.count), mono(short(anchor.root)), mono(short(anchor.gateway)), time(anchor.time_ms),
    ]))));
  };
  await refresh();
  context.keepFresh(refresh);
}

// A reading's payload: its text when it is printable, else its hex.
function payload(reading) {
  const text = reading.payload_text;
  return text !== null && text !== undefined && /^[\p{L}\p{N}\p{P}\p{S}\p{Zs}]*$/u.test(text) ? text : short(reading.payload_hex);
}

// ---------------------------------------------------------------- market

async function market(context) {
  const status = await api('/v1/status');
  const boxes = status.chains.map((chain) => ({ id: chain.id, box: el('div') }));
  add(context.main, el('h1', { text: 'Market' }), el('p', { class: 'muted' },
    'Policies loaded: ', status.markets.map((entry) => [entry.id + ' ', state(entry.plugin.state), ' '])),
  boxes.map(({ id, box }) => card('Chain ' + id, box)));
  const refresh = async () => {
    const lists = await Promise.all(boxes.map(({ id }) => Promise.all(['skus', 'demands', 'locks']
      .map((what) => api(chainPath(id) + '/market/' + what)))));
    if (!context.active) return;
    lists.forEach(([skus, demands, locks], index) => replace(boxes[index].box, marketTables(boxes[index].id, skus, demands, locks)));
  };
  await refresh();
  context.keepFresh(refresh);
}

function marketTables(chain, skus, demands, locks) {
  return [el('h3', { text: 'SKUs' }), table(['SKU', 'policy', 'resource', 'unit price', 'available', 'sold', 'last price', 'provider'], skus.map((record) => [
    link('#/market/' + chain + '/' + encodeURIComponent(record.id), record.id), record.policy, record.resource + ' per ' + record.unit,
    number(record.terms.unit_price), number(record.units_available), number(record.units_sold),
    record.recent_prices.length ? number(record.recent_prices[record.recent_prices.length - 1][1]) : '–', accountLink(chain, record.provider, true),
  ]), { id: 'sku-table' }),
  el('h3', { text: 'Demands' }), table(['demand', 'resource', 'units', 'max price', 'buyer', 'placed'], demands.map((demand) => [
    mono(short(demand.id)), demand.resource, number(demand.units), number(demand.max_price), accountLink(chain, demand.buyer, true), time(demand.placed_at_ms),
  ])),
  el('h3', { text: 'Escrow locks' }), lockTable(chain, locks)];
}

function lockTable(chain, locks) {
  return table(['lock', 'SKU', 'units', 'escrow', 'buyer', 'reported', 'confirmed', 'locked'], locks.map((lock) => [
    mono(short(lock.id)), lock.sku, number(lock.units), number(lock.escrow), accountLink(chain, lock.buyer, true),
    lock.reported === null ? '–' : number(lock.reported), lock.confirmed ? 'yes' : 'no', time(lock.locked_at_ms),
  ]));
}

async function sku(context, chain, id) {
  const book = el('div');
  const curve = el('div');
  add(context.main, el('h1', { text: 'SKU ' + id + ' on ' + chain }), book, card('Price curve of the strategy', curve));
  const refresh = async () => {
    const view = await api(chainPath(chain) + '/market/skus/' + encodeURIComponent(id));
    if (!context.active) return;
    const record = view.record;
    replace(book, el('div', { class: 'grid' }, card('Terms', keyValues([
      ['policy', record.policy], ['resource', record.resource + ' per ' + record.unit],
      ['unit price', number(record.terms.unit_price), 'sku-unit-price'], ['available', number(record.units_available)],
      ['sold', number(record.units_sold)], ['provider', accountLink(chain, record.provider, true)],
      ['location', record.location || '–'],
    ])), card('Recent prices', chart(view.recent_prices.map(([at, price]) => [at, price]), { kind: 'line', title: 'price per unit over time', unit: 'µNEST', xLabel: clock }),
      table(['time', 'price'], view.recent_prices.slice(-10).reverse().map(([at, price]) => [time(at), number(price)]), { id: 'sku-prices' }))),
    card('Sealed bids', table(['bid', 'bidder', 'units', 'bid (µNEST, escrowed)', 'placed'], view.bids.map((bid) => [
      mono(short(bid.id)), accountLink(chain, bid.buyer, true), number(bid.units), number(bid.max_price), time(bid.placed_at_ms),
    ]))),
    card('Escrow locks', lockTable(chain, view.locks)));
  };
  await refresh();
  context.keepFresh(refresh);
  await priceCurve(curve, id);
}

// The strategy's unit price over utilization: an admin route, so it needs the token.
async function priceCurve(box, id) {
  if (!token.get()) {
    replace(box, notice('The price curve runs the operator\'s strategy: it needs the admin token.'), tokenForm(() => priceCurve(box, id)));
    return;
  }
  try {
    const points = await admin('/v1/admin/market/chart/' + encodeURIComponent(id) + '?points=' + CURVE_POINTS);
    replace(box, chart(points.map((point) => [point.utilization * 100, point.unit_price]), { kind: 'line', title: 'unit price (µNEST) over utilization', unit: 'µNEST', xLabel: (x) => x + ' %' }),
      el('p', { class: 'muted', id: 'curve-points', text: points.length + ' points, from ' + number(points[0]?.unit_price) + ' to ' + number(points[points.length - 1]?.unit_price) }));
  } catch (error) {
    replace(box, notice(error.message, 'error'), error.status === 401 ? tokenForm(() => priceCurve(box, id)) : null);
  }
}

// ---------------------------------------------------------------- plugins and admin

async function plugins(context) {
  const publicBox = el('div');
  const adminBox = el('div', { id: 'admin' });
  add(context.main, el('h1', { text: 'Plugins' }), card('Packages', publicBox), card('Administration', adminBox));
  const refresh = async () => {
    const status = await api('/v1/status');
    if (!context.active) return;
    replace(publicBox, table(['id', 'package', 'version', 'kinds', 'signed by', 'library SHA-256', 'state'], status.plugins.map((entry) => [
      entry.id, entry.name, entry.version, entry.kinds.join(', '), entry.signed_by || 'UNSIGNED',
      mono(short(entry.library_sha256), { title: entry.library_sha256 }), [state(entry.state), entry.replaced_by ? ' by ' + entry.replaced_by : ''],
    ]), { id: 'package-table' }), el('h3', { text: 'Instances' }), table(['where', 'plugin', 'version', 'state'], instances(status).map(([where, slot]) => [
      where, slot.id, slot.version, [state(slot.state), slot.reason ? ' ' + slot.reason : ''],
    ]), { id: 'instance-table' }));
  };
  await refresh();
  await adminPanel(adminBox, refresh);
  context.keepFresh(refresh);
}

function instances(status) {
  return [
    ...status.chains.flatMap((chain) => [['chain ' + chain.id + ' consensus', chain.plugins.consensus], ['chain ' + chain.id + ' chain type', chain.plugins.chain_type]]),
    ...status.radios.map((radio) => ['radio ' + radio.id, radio.plugin]),
    ...status.markets.map((entry) => ['market ' + entry.id, entry.plugin]),
  ];
}

async function adminPanel(box, refreshPublic) {
  const redraw = () => adminPanel(box, refreshPublic);
  if (!token.get()) {
    replace(box, notice('Disabling, enabling and upgrading plugins needs the node\'s admin token (the file api.token in its data directory).'), tokenForm(redraw));
    return;
  }
  let entries;
  try {
    entries = await admin('/v1/admin/plugins');
  } catch (error) {
    const refused = error.status === 401 ? 'Refused: the node did not accept this token.' : error.message;
    replace(box, notice(refused, 'error', 'admin-message'), tokenForm(redraw));
    return;
  }
  const message = el('p', { id: 'admin-message', class: 'notice' });
  const act = async (id, action, body) => {
    message.textContent = action + ' ' + id + '…';
    try {
      const result = await admin('/v1/admin/plugins/' + encodeURIComponent(id) + '/' + action, 'POST', body);
      message.textContent = action + ' ' + id + ': ' + result.map((entry) => entry.instances.map((instance) => instance.role + ' ' + instance.state).join(', ')).join('; ');
      await refreshPublic();
      await redraw();
      document.getElementById('admin-message').textContent = message.textContent;
    } catch (error) {
      message.textContent = action + ' ' + id + ' failed: ' + error.message;
      if (error.status === 401) await redraw();
    }
  };
  replace(box, el('p', {}, 'Unlocked for this tab. ', el('button', { type: 'button', id: 'forget-token', text: 'Forget the token', onclick: () => {
    token.clear();
    redraw();
  } })), message, table(['id', 'version', 'instances', 'actions'], entries.filter((entry) => entry.state === 'active').map((entry) => [
    entry.id, entry.version,
    el('ul', { class: 'plain' }, entry.instances.map((instance) => el('li', {}, instance.role + ' ', state(instance.state)))),
    pluginActions(entry, act),
  ]), { id: 'admin-table' }));
}

function pluginActions(entry, act) {
  const disabled = entry.instances.length > 0 && entry.instances.every((instance) => instance.state !== 'running');
  const directory = el('input', { type: 'text', placeholder: 'new package directory on the node', 'aria-label': 'package directory', class: 'package-dir' });
  return el('div', { class: 'actions', 'data-plugin': entry.id },
    el('button', { type: 'button', class: 'disable', text: 'Disable', disabled: disabled || !entry.instances.length, onclick: () => act(entry.id, 'disable') }),
    el('button', { type: 'button', class: 'enable', text: 'Enable', disabled: !disabled, onclick: () => act(entry.id, 'enable') }),
    directory,
    el('button', { type: 'button', class: 'upgrade', text: 'Upgrade', onclick: () => {
      if (directory.value.trim()) act(entry.id, 'upgrade', { package: directory.value.trim() });
    } }));
}

// Asks for the admin token; keeps it in sessionStorage only (never in a URL or cookie).
function tokenForm(onUnlock) {
  const input = el('input', { type: 'password', id: 'token-input', autocomplete: 'off', placeholder: 'admin token', 'aria-label': 'admin token' });
  return el('form', { class: 'token', id: 'token-form', onsubmit: (event) => {
    event.preventDefault();
    const value = input.value.trim();
    input.value = '';
    if (!value) return;
    token.set(value);
    onUnlock();
  } }, input, el('button', { type: 'submit', text: 'Unlock' }));
}

// ---------------------------------------------------------------- start

window.addEventListener('hashchange', route);
live.connect();
route();
