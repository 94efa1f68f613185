// The live pool page: draws the block map from run-length segments (a 1 TiB
// pool is a handful of runs, drawn at once), the heads table and the event
// log, and redraws from /ui/state whenever the SSE stream says something
// changed. No framework, nothing fetched from elsewhere.

const MiB = 2 ** 20;
const COLS = 128;
const MAX_ROWS = 64;
let state = null;
let refreshTimer = null;

function color(head) {
  return `hsl(${(head * 137.5 + 200) % 360}, 62%, 52%)`;
}

function size(bytes) {
  for (const [u, n] of [
    ['T', 2 ** 40],
    ['G', 2 ** 30],
    ['M', MiB],
  ])
    if (bytes >= n && bytes % n === 0) return `${bytes / n} ${u}iB`;
  return bytes >= MiB ? `${(bytes / MiB).toFixed(1)} MiB` : `${bytes} B`;
}

/** How the map is laid out: every cell is one block, or (large pools) the same number of blocks each. */
function geometry(s) {
  const blocks = s.capacityBytes / s.blockBytes;
  const perCell = Math.max(1, Math.ceil(blocks / (COLS * MAX_ROWS)));
  const cells = Math.ceil(blocks / perCell);
  const rows = Math.ceil(cells / COLS);
  return { blocks, perCell, cells, rows, cellBytes: perCell * s.blockBytes };
}

function cellAt(offset) {
  const canvas = document.getElementById('map');
  const g = geometry(state);
  const cell = Math.floor(offset / g.cellBytes);
  const w = canvas.width / COLS;
  const h = canvas.height / g.rows;
  return { x: (cell % COLS) * w + w / 2, y: Math.floor(cell / COLS) * h + h / 2, cell };
}

function drawMap(s) {
  const canvas = document.getElementById('map');
  const g = geometry(s);
  const cellPx = Math.max(4, Math.min(24, Math.floor(1024 / COLS)));
  canvas.width = COLS * cellPx;
  canvas.height = g.rows * cellPx;
  const ctx = canvas.getContext('2d');
  ctx.fillStyle = '#eef0f3';
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  for (const seg of s.segments) {
    if (seg.holders.length === 0) continue;
    const first = Math.floor(seg.offset / g.cellBytes);
    const last = Math.ceil((seg.offset + seg.len) / g.cellBytes) - 1;
    // Runs are drawn row by row: a whole run costs a few rectangles however many blocks it spans.
    for (let c = first; c <= last; ) {
      const row = Math.floor(c / COLS);
      const end = Math.min(last, row * COLS + COLS - 1);
      const x = (c % COLS) * cellPx;
      const y = row * cellPx;
      const w = (end - c + 1) * cellPx;
      const band = cellPx / seg.holders.length;
      seg.holders.forEach((h, i) => {
        ctx.fillStyle = color(h);
        ctx.fillRect(x, y + i * band, w, Math.ceil(band));
      });
      if (seg.shared) {
        ctx.strokeStyle = '#fff';
        ctx.lineWidth = 1;
        ctx.beginPath();
        for (let px = x; px < x + w; px += cellPx) {
          ctx.moveTo(px + 1, y + cellPx - 1);
          ctx.lineTo(px + cellPx - 1, y + 1);
        }
        ctx.stroke();
      }
      if (seg.window) {
        ctx.strokeStyle = '#1d2330';
        ctx.lineWidth = 2;
        ctx.strokeRect(x + 1, y + 1, w - 2, cellPx - 2);
      }
      c = end + 1;
    }
  }
  // Cell grid, only where cells are big enough to see.
  if (cellPx >= 6) {
    ctx.strokeStyle = '#ffffff88';
    ctx.lineWidth = 1;
    ctx.beginPath();
    for (let i = 1; i < COLS; i++) {
      ctx.moveTo(i * cellPx + 0.5, 0);
      ctx.lineTo(i * cellPx + 0.5, canvas.height);
    }
    for (let r = 1; r < g.rows; r++) {
      ctx.moveTo(0, r * cellPx + 0.5);
      ctx.lineTo(canvas.width, r * cellPx + 0.5);
    }
    ctx.stroke();
  }
  canvas.dataset.cellBytes = String(g.cellBytes);
  canvas.title = `each cell: ${size(g.cellBytes)}${g.perCell > 1 ? ` (${g.perCell} blocks)` : ''}`;
}

function render(s) {
  state = s;
  document.getElementById('pool').textContent = s.pool;
  document.title = `cxl-mhd pool ${s.pool}`;
  const g = geometry(s);
  document.getElementById('summary').textContent =
    `${size(s.capacityBytes)} in ${g.blocks} blocks of ${size(s.blockBytes)} · free ${size(s.freeBytes)} · FM-LD owner ${s.fmldOwner === null ? 'none' : `head ${s.fmldOwner}`}`;
  drawMap(s);
  const legend = document.getElementById('legend');
  legend.replaceChildren(
    ...s.heads.map((h) => {
      const el = document.createElement('span');
      const sw = document.createElement('span');
      sw.className = 'sw';
      sw.style.background = color(h.head);
      el.append(sw, `head ${h.head}`);
      return el;
    }),
    Object.assign(document.createElement('span'), { textContent: '╱ shared · outlined: static window · grey: free' }),
  );
  document.getElementById('ranges').replaceChildren(
    ...s.segments.map((seg) => {
      const li = document.createElement('li');
      li.dataset.offset = String(seg.offset);
      li.dataset.len = String(seg.len);
      li.dataset.holders = seg.holders.join(',');
      li.textContent = `${size(seg.offset)}+${size(seg.len)}: ${seg.holders.length ? `head ${seg.holders.join(', ')}` : 'free'}${seg.shared ? ' (shared)' : ''}${seg.window ? ' (static window)' : ''}${seg.quarantined ? ' (quarantined: released, not yet unreachable)' : ''}`;
      return li;
    }),
  );
  document.querySelector('#heads tbody').replaceChildren(
    ...s.heads.map((h) => {
      const tr = document.createElement('tr');
      tr.className = h.phase;
      tr.dataset.head = String(h.head);
      tr.dataset.phase = h.phase;
      for (const text of [
        `head ${h.head}`,
        h.phase + (h.reason && h.phase !== 'attached' ? `: ${h.reason}` : ''),
        h.pid ?? '–',
        h.delivery ?? '–',
        size(h.grantedBytes),
        size(h.sharedBytes),
        h.fmld ? 'owner' : '',
      ]) {
        const td = document.createElement('td');
        td.textContent = String(text);
        tr.append(td);
      }
      tr.firstChild.style.borderLeft = `6px solid ${color(h.head)}`;
      return tr;
    }),
  );
}

async function refresh() {
  refreshTimer = null;
  const r = await fetch('/ui/state', { cache: 'no-store' });
  if (r.ok) render(await r.json());
}

function soon() {
  if (refreshTimer === null) refreshTimer = setTimeout(() => refresh().catch(() => undefined), 50);
}

function logEvent(e) {
  const log = document.getElementById('log');
  for (const r of e.Events ?? []) {
    if (r.MessageId.startsWith('ResourceEvent.')) continue;
    const li = document.createElement('li');
    li.className = r.MessageSeverity;
    li.value = Number(e.Id);
    li.textContent = `${r.EventTimestamp.slice(11, 23)} ${r.MessageId.split('.').pop()}: ${r.Message}`;
    log.prepend(li);
  }
  while (log.children.length > 300) log.lastChild.remove();
}

function listen() {
  const live = document.getElementById('live');
  // The first connection replays what the ring holds, so the log starts with recent history; reconnects send Last-Event-ID.
  const es = new EventSource('/redfish/v1/EventService/SSE?lastEventId=0');
  es.onopen = () => {
    live.className = 'live on';
    live.textContent = 'live';
    soon();
  };
  es.onerror = () => {
    live.className = 'live off';
    live.textContent = 'reconnecting…';
  };
  es.onmessage = (m) => {
    try {
      logEvent(JSON.parse(m.data));
    } catch {}
    soon();
  };
}

window.cxlMap = {
  cellAt,
  color,
  get state() {
    return state;
  },
};
refresh().catch(() => undefined);
listen();
// A safety net for a stream that is silently stuck; events normally drive redraws.
setInterval(soon, 5000);
