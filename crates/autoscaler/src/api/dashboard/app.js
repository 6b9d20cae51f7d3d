// The dashboard's script: plain JS, no framework, no build step. It reads the API every few
// seconds and draws what it gets; every change goes through the same API calls as curl or
// the CLI, and the API's own error (with its `field`) is shown next to the field it names.
// It must not check values itself: the engine is the one judge of what is valid.
'use strict';

(() => {
  const TOKEN_KEY = 'autoscaler.token';
  const RANGE_KEY = 'autoscaler.range';
  const REFRESH_MS = 5000;
  const RANGES = ['15m', '1h', '24h'];
  const $ = (id) => document.getElementById(id);

  const state = {
    units: [],
    unit: null,
    status: null,
    range: '15m',
    charts: {},
    fields: null,
    config: null,
    busy: false,
    refreshes: 0,
  };
  // What the tests (and a curious user in the console) can read about the last refresh.
  window.autoscalerDashboard = { points: {}, refreshes: 0, lastError: null, actions: 0 };

  class ApiError extends Error {
    constructor(status, body) {
      super((body && body.error) || `HTTP ${status}`);
      this.status = status;
      this.body = body || {};
    }
  }

  async function api(method, path, body) {
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const token = sessionStorage.getItem(TOKEN_KEY);
    // With a token set, the daemon guards reads too.
    if (token) headers.Authorization = `Bearer ${token}`;
    const res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
    });
    let data = null;
    try {
      data = await res.json();
    } catch (_) {
      data = null;
    }
    if (res.status === 401) {
      askForToken();
    }
    if (!res.ok) throw new ApiError(res.status, data);
    return data;
  }

  const unitPath = (suffix) =>
    state.unit
      ? `/api/autoscaler/units/${encodeURIComponent(state.unit)}${suffix}`
      : `/api/autoscaler${suffix}`;

  // ---- formatting ----------------------------------------------------------------------

  // The API writes times as UTC without a zone (the spec's format).
  const parseTs = (ts) => (ts ? new Date(ts.endsWith('Z') ? ts : `${ts}Z`) : null);
  const fmtTime = (ts) => {
    const d = parseTs(ts);
    return d ? d.toLocaleString([], { dateStyle: 'short', timeStyle: 'medium' }) : '—';
  };
  const fmtNum = (v, digits = 2) =>
    v === null || v === undefined || Number.isNaN(v)
      ? '—'
      : Number(v).toLocaleString([], { maximumFractionDigits: digits });
  const fmtCpu = (q) =>
    q === null || q === undefined ? 'unlimited' : `${q} % (${fmtNum(q / 100)} ${q === 100 ? 'core' : 'cores'})`;
  const fmtMem = (g) => (g === null || g === undefined ? 'unlimited' : `${fmtNum(g, 3)} GiB`);
  const fmtTasks = (t) => (t === null || t === undefined ? 'unlimited' : fmtNum(t, 0));
  const fmtBytes = (g) => (g < 1 ? `${fmtNum(g * 1024, 1)} MiB` : `${fmtNum(g, 2)} GiB`);
  const shortCpu = (q) => (q === null || q === undefined ? '∞' : `${q}%`);
  const shortMem = (g) => (g === null || g === undefined ? '∞' : `${fmtNum(g, 3)}G`);
  const shortTasks = (t) => (t === null || t === undefined ? '∞' : `${t}`);

  function el(tag, attrs = {}, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else e.setAttribute(k, v === true ? '' : v);
    }
    for (const c of children) e.append(c);
    return e;
  }

  function setText(id, text) {
    const e = $(id);
    if (e && e.textContent !== text) e.textContent = text;
  }

  // ---- live indicator --------------------------------------------------------------------

  function setLive(ok, text) {
    const live = $('live');
    live.classList.toggle('ok', ok);
    live.classList.toggle('bad', !ok);
    setText('live-text', text);
  }

  // ---- token -------------------------------------------------------------------------

  function askForToken() {
    const panel = $('token-panel');
    if (panel.hidden) {
      panel.hidden = false;
      $('token').focus();
    }
  }

  function setupToken() {
    $('token-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const v = $('token').value.trim();
      if (!v) return;
      sessionStorage.setItem(TOKEN_KEY, v);
      $('token').value = '';
      $('token-panel').hidden = true;
      setText('live-text', 'token saved for this tab; send the change again');
    });
    $('token-forget').addEventListener('click', () => {
      sessionStorage.removeItem(TOKEN_KEY);
      $('token').value = '';
      $('token').focus();
    });
  }

  // ---- field errors ----------------------------------------------------------------------

  function clearErrors(form) {
    form.querySelectorAll('.field-error').forEach((e) => (e.textContent = ''));
    form.querySelectorAll('[aria-invalid]').forEach((e) => e.removeAttribute('aria-invalid'));
  }

  // Shows an API error next to the input it names (`<prefix>-<field>`), else in `note`.
  function showError(err, prefix, note) {
    const body = err instanceof ApiError ? err.body : {};
    let text = err.message;
    if (body.allowed && !text.includes(body.allowed)) text += ` (allowed: ${body.allowed})`;
    if (err.status === 401) text = 'The daemon needs a token: enter it above, then try again.';
    const id = body.field ? (prefix ? `${prefix}-${body.field}` : body.field) : null;
    const input = id ? $(id) : null;
    const slot = id ? $(`${id}-error`) : null;
    if (input && slot) {
      slot.textContent = text;
      input.setAttribute('aria-invalid', 'true');
      if (err.status !== 401) input.focus();
      note.textContent = '';
      note.className = 'form-note';
    } else {
      note.textContent = text;
      note.className = 'form-note bad';
    }
  }

  function note(id, text, ok = true) {
    const n = $(id);
    n.textContent = text;
    n.className = `form-note ${ok ? 'ok' : 'bad'}`;
  }

  async function withButton(form, fn) {
    const btn = form.querySelector('button[type=submit]');
    btn.disabled = true;
    try {
      await fn();
    } finally {
      btn.disabled = false;
    }
  }

  // ---- status --------------------------------------------------------------------------

  function renderUnits(units) {
    const select = $('unit');
    const names = units.map((u) => u.unit);
    if (!state.unit || !names.includes(state.unit)) {
      const fromHash = decodeURIComponent((location.hash.match(/unit=([^&]+)/) || [])[1] || '');
      state.unit = names.includes(fromHash) ? fromHash : names[0] || null;
    }
    const current = Array.from(select.options).map((o) => o.value);
    if (current.join('\n') !== names.join('\n')) {
      select.replaceChildren(...names.map((n) => el('option', { value: n, text: n })));
    }
    select.value = state.unit;
    select.disabled = names.length < 2;
  }

  function renderAlerts(s) {
    const alerts = $('alerts');
    const items = [];
    if (s.last_failure) {
      const f = s.last_failure;
      items.push(
        el('div', { class: 'alert failure', role: 'alert', id: 'last-failure' },
          el('strong', { text: `Last apply failed at ${fmtTime(f.timestamp)}` }),
          el('p', { text: f.error_message || 'no message' }),
          el('p', { class: 'small', text: 'The previous limits were restored and the mode switched to disabled. Set the mode again to resume.' })),
      );
    }
    if (!s.unit_available && s.unit_error) {
      items.push(
        el('div', { class: 'alert warning', role: 'status' },
          el('strong', { text: `${s.unit} cannot be read` }),
          el('p', { text: s.unit_error })),
      );
    }
    if (s.bounds && s.bounds.error) {
      items.push(
        el('div', { class: 'alert warning', role: 'status' },
          el('strong', { text: 'The configured bounds do not fit this host' }),
          el('p', { text: s.bounds.error })),
      );
    }
    // Rebuild only when the content changed, so a screen reader does not re-announce it.
    const key = items.map((i) => i.textContent).join('|');
    if (alerts.dataset.key !== key) {
      alerts.dataset.key = key;
      alerts.replaceChildren(...items);
    }
  }

  function renderStatus(s) {
    state.status = s;
    renderAlerts(s);
    setText('s-unit', s.unit);
    const mode = $('s-mode');
    mode.textContent = s.mode;
    mode.className = `badge ${s.mode}`;
    setText('s-policy', s.policy);
    setText('s-strategy', s.strategy);
    setText('s-counts', `${s.scale_up_count} up · ${s.scale_down_count} down`);
    const l = s.current_limits || {};
    setText('s-cpu', s.current_limits ? fmtCpu(l.cpu_quota) : '—');
    setText('s-mem', s.current_limits ? fmtMem(l.memory_max) : '—');
    setText('s-tasks', s.current_limits ? fmtTasks(l.tasks_max) : '—');
    setText('s-last-scale', s.last_scale_time ? fmtTime(s.last_scale_time) : 'never');
    setText('s-decision', s.last_decision || '—');
    const st = s.streaks || {};
    setText('s-streaks', `Streaks: ${st.scale_up || 0} over threshold, ${st.scale_down || 0} idle.`);
    if (s.host) setText('host', `Host: ${s.host.cores} cores, ${s.host.memory_gb} GiB`);
    // A select the user is changing is theirs until they apply it.
    for (const k of ['mode', 'policy']) {
      const sel = $(k);
      if (!sel.dataset.dirty && document.activeElement !== sel) sel.value = s[k];
    }
    const b = s.bounds && !s.bounds.error ? s.bounds : null;
    const hint = (key, now, fmt) => {
      const range = b && b[key] ? `allowed ${b[key][0]}–${b[key][1]}` : '';
      return [now === undefined ? '' : `now ${fmt(now)}`, range].filter(Boolean).join(', ');
    };
    setText('scale-cpu_quota-hint', hint('cpu_quota', l.cpu_quota, shortCpu));
    setText('scale-memory_max-hint', hint('memory_max', l.memory_max, shortMem));
    setText('scale-tasks_max-hint', hint('tasks_max', l.tasks_max, shortTasks));
  }

  function renderUsage(range) {
    const s = range.series;
    const n = s.time.length;
    const last = (k) => (n ? s[k][n - 1] : null);
    setText('u-cpu', n ? `${fmtNum(last('cpu_cores'), 2)} cores (${fmtNum(last('cpu_percent'), 1)} %)` : '—');
    setText('u-mem', n ? fmtBytes(last('memory_gib')) : '—');
    setText('u-tasks', n ? `${fmtNum(last('tasks'), 0)} tasks, ${fmtNum(last('process_count'), 0)} procs` : '—');
    setText('u-throttle', n && last('throttled_percent') !== null ? `${fmtNum(last('throttled_percent'), 1)} %` : '—');
  }

  // ---- charts --------------------------------------------------------------------------

  const COLORS = {
    used: '#2563eb',
    usedFill: 'rgba(37, 99, 235, .12)',
    peak: 'rgba(37, 99, 235, .45)',
    limit: '#dc2626',
    mem: '#059669',
    memFill: 'rgba(5, 150, 105, .12)',
    tasks: '#7c3aed',
    tasksFill: 'rgba(124, 58, 237, .10)',
    throttle: '#ea580c',
    cpuPsi: '#2563eb',
    memPsi: '#059669',
  };

  const CHARTS = {
    cpu: {
      id: 'chart-cpu',
      unit: 'cores',
      series: [
        { key: 'cpu_cores', label: 'used', stroke: COLORS.used, fill: COLORS.usedFill, width: 2, digits: 3 },
        { key: 'cpu_cores_max', label: 'peak', stroke: COLORS.peak, width: 1, digits: 3 },
        { key: 'cpu_quota_cores', label: 'quota', stroke: COLORS.limit, width: 2, step: true, dash: [6, 4], digits: 2 },
      ],
    },
    mem: {
      id: 'chart-mem',
      unit: 'GiB',
      series: [
        { key: 'memory_gib', label: 'used', stroke: COLORS.mem, fill: COLORS.memFill, width: 2, fmt: fmtBytes },
        { key: 'memory_max_gib', label: 'MemoryMax', stroke: COLORS.limit, width: 2, step: true, dash: [6, 4], fmt: fmtBytes },
      ],
    },
    tasks: {
      id: 'chart-tasks',
      unit: 'tasks',
      series: [
        { key: 'tasks', label: 'tasks', stroke: COLORS.tasks, fill: COLORS.tasksFill, width: 2, digits: 0 },
        { key: 'tasks_max', label: 'TasksMax', stroke: COLORS.limit, width: 2, step: true, dash: [6, 4], digits: 0 },
      ],
    },
    pressure: {
      id: 'chart-pressure',
      unit: '%',
      series: [
        { key: 'throttled_percent', label: 'throttled', stroke: COLORS.throttle, width: 2, digits: 1 },
        { key: 'cpu_pressure', label: 'CPU PSI', stroke: COLORS.cpuPsi, width: 1.5, digits: 2 },
        { key: 'memory_pressure', label: 'memory PSI', stroke: COLORS.memPsi, width: 1.5, digits: 2 },
      ],
      focusable: false,
    },
  };

  function plotSize(div) {
    const w = Math.max(200, Math.floor(div.clientWidth));
    return { width: w, height: w < 500 ? 200 : 240 };
  }

  function makeChart(name) {
    const def = CHARTS[name];
    const fig = $(def.id);
    const div = fig.querySelector('.plot');
    const stepped = uPlot.paths && uPlot.paths.stepped ? uPlot.paths.stepped({ align: 1 }) : undefined;
    const opts = {
      ...plotSize(div),
      cursor: { drag: { x: false, y: false } },
      legend: { live: true },
      scales: {
        x: { time: true },
        y: { range: (u, min, max) => [0, max > 0 ? max * 1.12 : 1] },
      },
      axes: [
        {
          stroke: '#5b6475',
          grid: { stroke: '#eef1f5' },
          ticks: { stroke: '#dde2ea' },
          space: 70,
          // One line of local 24 h time (seconds when ticks are closer than a minute, the
          // date at midnight): uPlot's default two-line labels collide on a phone.
          values: (u, splits, axis, space, incr) =>
            splits.map((v) => {
              const d = new Date(v * 1000);
              const p2 = (n) => String(n).padStart(2, '0');
              if (incr >= 3600 && d.getHours() === 0 && d.getMinutes() === 0) {
                return d.toLocaleDateString([], { month: 'short', day: 'numeric' });
              }
              const hm = `${p2(d.getHours())}:${p2(d.getMinutes())}`;
              return incr < 60 ? `${hm}:${p2(d.getSeconds())}` : hm;
            }),
        },
        {
          stroke: '#5b6475',
          grid: { stroke: '#eef1f5' },
          ticks: { stroke: '#dde2ea' },
          size: 52,
          values: (u, vals) => vals.map((v) => fmtNum(v, 2)),
        },
      ],
      series: [
        {},
        ...def.series.map((s) => ({
          label: s.label,
          stroke: s.stroke,
          fill: s.fill,
          width: s.width,
          dash: s.dash,
          paths: s.step ? stepped : undefined,
          spanGaps: false,
          points: { show: false },
          value: (u, v) => {
            if (v === null || v === undefined) return '—';
            return s.fmt ? s.fmt(v) : `${fmtNum(v, s.digits)} ${def.unit}`;
          },
        })),
      ],
      hooks: { draw: [(u) => placeMarkers(u, name)] },
    };
    const u = new uPlot(opts, [[], ...def.series.map(() => [])], div);
    u.actions = [];
    const ro = new ResizeObserver(() => {
      const size = plotSize(div);
      if (size.width !== u.width || size.height !== u.height) u.setSize(size);
    });
    ro.observe(div);
    state.charts[name] = u;
    window.autoscalerDashboard.charts = state.charts;
  }

  function markerText(a) {
    const when = fmtTime(a.timestamp);
    const change = [
      a.old_limits.cpu_quota !== a.new_limits.cpu_quota ? `CPU ${shortCpu(a.old_limits.cpu_quota)}→${shortCpu(a.new_limits.cpu_quota)}` : '',
      a.old_limits.memory_max !== a.new_limits.memory_max ? `mem ${shortMem(a.old_limits.memory_max)}→${shortMem(a.new_limits.memory_max)}` : '',
      a.old_limits.tasks_max !== a.new_limits.tasks_max ? `tasks ${shortTasks(a.old_limits.tasks_max)}→${shortTasks(a.new_limits.tasks_max)}` : '',
    ].filter(Boolean).join(', ');
    const status = a.status === 'success' ? '' : ` (${a.status})`;
    return { head: `${a.action}${status} · ${when}`, body: [change, a.reason, a.error_message].filter(Boolean).join(' — ') };
  }

  // Scale actions as buttons on the plot: hover or focus shows the reason. Only the CPU
  // chart's markers are in the tab order, so the keyboard does not visit each action 4 times.
  function placeMarkers(u, name) {
    const over = u.over;
    over.querySelectorAll('.marker').forEach((m) => m.remove());
    const width = over.clientWidth;
    const focusable = name === 'cpu';
    for (const a of u.actions || []) {
      const left = u.valToPos(a.time, 'x');
      if (!(left >= 0 && left <= width)) continue;
      const t = markerText(a);
      const b = el('button', {
        type: 'button',
        class: `marker act-${a.action} trig-${a.trigger_type} ${a.status}${left > width * 0.6 ? ' flip' : ''}`,
        'aria-label': `${t.head}: ${t.body}`,
        tabindex: focusable ? '0' : '-1',
        'aria-hidden': focusable ? null : 'true',
      },
      el('span', { class: 'tip', 'aria-hidden': 'true' }, el('strong', { text: t.head }), el('br'), document.createTextNode(t.body)));
      b.style.left = `${left}px`;
      over.append(b);
    }
  }

  function renderCharts(range) {
    const s = range.series;
    const points = s.time.length;
    for (const [name, def] of Object.entries(CHARTS)) {
      const u = state.charts[name];
      u.actions = range.actions;
      u.setData([s.time, ...def.series.map((x) => s[x.key])]);
      // The legend shows the newest values until the pointer picks another time.
      if (points > 0 && u.cursor.left < 0) u.setLegend({ idx: points - 1 });
      const fig = $(def.id);
      fig.dataset.points = String(points);
      window.autoscalerDashboard.points[name] = points;
      let empty = fig.querySelector('.empty');
      if (points === 0 && !empty) {
        empty = el('div', { class: 'empty', text: 'No samples in this range yet.' });
        fig.querySelector('.plot').append(empty);
      } else if (points > 0 && empty) {
        empty.remove();
      }
      const n = range.actions.length;
      fig.querySelector('.markers-note').textContent =
        name === 'cpu' && n ? `${n} scale action${n === 1 ? '' : 's'} marked; hover or focus a marker for its reason.` : '';
    }
    window.autoscalerDashboard.actions = range.actions.length;
    window.autoscalerDashboard.step = range.step_seconds;
  }

  // ---- history table -------------------------------------------------------------------

  function renderHistory(rows) {
    const body = $('history').tBodies[0];
    const key = rows.map((r) => `${r.id}:${r.status}`).join(',');
    if (body.dataset.key === key) return;
    body.dataset.key = key;
    if (!rows.length) {
      body.replaceChildren(el('tr', {}, el('td', { colspan: '7', class: 'muted', text: 'No actions yet.' })));
      return;
    }
    const change = (a, b, f) => (a === b ? f(b) : `${f(a)} → ${f(b)}`);
    body.replaceChildren(
      ...rows.map((r) =>
        el('tr', { class: r.status === 'failed' ? 'failed' : null },
          el('td', { class: 'time', text: fmtTime(r.timestamp) }),
          el('td', { text: r.action }),
          el('td', {}, el('span', { class: `status ${r.status}`, text: r.status })),
          el('td', { class: 'num', text: change(r.old_limits.cpu_quota, r.new_limits.cpu_quota, shortCpu) }),
          el('td', { class: 'num', text: change(r.old_limits.memory_max, r.new_limits.memory_max, shortMem) }),
          el('td', { class: 'num', text: change(r.old_limits.tasks_max, r.new_limits.tasks_max, shortTasks) }),
          el('td', { class: 'reason', text: [r.reason, r.error_message].filter(Boolean).join(' — ') }))),
    );
  }

  // The forecast table: one row per series and horizon, as `GET prediction` gives them.
  function renderForecast(p) {
    const body = $('forecast').tBodies[0];
    const rows = [];
    for (const [name, s] of Object.entries((p && p.series) || {})) {
      for (const f of s.forecast || []) {
        const cov = f.recent_coverage === null || f.recent_coverage === undefined
          ? '—' : `${(100 * f.recent_coverage).toFixed(0)}%`;
        rows.push(el('tr', {},
          el('td', { text: name }),
          el('td', { class: 'num', text: `${f.horizon_minutes} min` }),
          el('td', { class: 'num', text: `${f.value} [${f.lower}–${f.upper}]` }),
          el('td', { text: f.model || '—' }),
          el('td', { text: f.enough_data ? 'yes' : `not yet (${f.errors_scored || 0} errors)` }),
          el('td', { class: 'num', text: cov })));
      }
    }
    const key = JSON.stringify(p && p.series);
    if (body.dataset.key === key) return;
    body.dataset.key = key;
    if (!rows.length) {
      body.replaceChildren(el('tr', {}, el('td', { colspan: '6', class: 'muted', text: 'No forecast yet.' })));
      return;
    }
    body.replaceChildren(...rows);
  }

  // ---- refresh -------------------------------------------------------------------------

  async function refresh() {
    if (state.busy) return;
    state.busy = true;
    try {
      const units = await api('GET', '/api/autoscaler/units');
      state.units = units;
      renderUnits(units);
      const status = units.find((u) => u.unit === state.unit) || units[0];
      if (status) renderStatus(status);
      const [range, history] = await Promise.all([
        api('GET', unitPath(`/metrics/history?since=${encodeURIComponent(state.range)}`)),
        api('GET', unitPath('/history?limit=50')),
      ]);
      renderCharts(range);
      renderUsage(range);
      renderHistory(history);
      // No prediction before the first check (503): the table says so, the rest still shows.
      renderForecast(await api('GET', unitPath('/prediction')).catch(() => null));
      if (!state.config) await loadConfig();
      state.refreshes += 1;
      window.autoscalerDashboard.refreshes = state.refreshes;
      window.autoscalerDashboard.lastError = null;
      setLive(true, `live · updated ${new Date().toLocaleTimeString()}`);
    } catch (e) {
      window.autoscalerDashboard.lastError = e.message;
      setLive(false, `cannot reach the daemon: ${e.message}`);
    } finally {
      state.busy = false;
    }
  }

  // ---- controls ------------------------------------------------------------------------

  function setupModePolicy() {
    for (const key of ['mode', 'policy']) {
      const form = $(`${key}-form`);
      const sel = $(key);
      sel.addEventListener('change', () => (sel.dataset.dirty = '1'));
      form.addEventListener('submit', (ev) => {
        ev.preventDefault();
        clearErrors(form);
        withButton(form, async () => {
          try {
            const s = await api('POST', unitPath(`/${key}`), { [key]: sel.value });
            delete sel.dataset.dirty;
            renderStatus(s);
            note('mode-note', `${key[0].toUpperCase()}${key.slice(1)} set to ${s[key]}.`);
            state.config = null;
            refresh();
          } catch (e) {
            showError(e, '', $('mode-note'));
          }
        });
      });
    }
  }

  function setupScale() {
    const form = $('scale-form');
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      clearErrors(form);
      const body = {};
      let local = false;
      for (const name of ['cpu_quota', 'memory_max', 'tasks_max']) {
        const input = $(`scale-${name}`);
        if (input.validity.badInput) {
          $(`scale-${name}-error`).textContent = 'Not a number.';
          input.setAttribute('aria-invalid', 'true');
          local = true;
        } else if (input.value.trim() !== '') {
          body[name] = Number(input.value);
        }
      }
      if (local) return;
      const reason = $('scale-reason').value.trim();
      if (reason) body.reason = reason;
      withButton(form, async () => {
        try {
          const row = await api('POST', unitPath('/scale'), body);
          const n = row.new_limits;
          note('scale-note', `Applied: CPU ${shortCpu(n.cpu_quota)}, memory ${shortMem(n.memory_max)}, tasks ${shortTasks(n.tasks_max)}. Mode is now manual.`);
          for (const name of ['cpu_quota', 'memory_max', 'tasks_max', 'reason']) $(`scale-${name}`).value = '';
          refresh();
        } catch (e) {
          showError(e, 'scale', $('scale-note'));
        }
      });
    });
  }

  async function loadConfig() {
    if (!state.fields) state.fields = await api('GET', '/assets/config-fields.json');
    state.config = await api('GET', unitPath('/config'));
    renderConfig();
  }

  function renderConfig() {
    const box = $('config-fields');
    const c = state.config;
    const fields = [
      ...state.fields,
      { name: 'predictive', bool: true, doc: 'Scale up before a breach when the forecast says one is coming.' },
    ];
    box.replaceChildren(
      ...fields.map((f) => {
        const id = `cfg-${f.name}`;
        const input = f.bool
          ? el('input', { id, name: f.name, type: 'checkbox', 'aria-describedby': `${id}-hint ${id}-error` })
          : el('input', {
              id,
              name: f.name,
              type: 'number',
              step: f.integer ? '1' : 'any',
              inputmode: f.integer ? 'numeric' : 'decimal',
              'aria-describedby': `${id}-hint ${id}-error`,
            });
        if (f.bool) input.checked = !!c[f.name];
        else input.value = c[f.name];
        input.dataset.orig = f.bool ? String(!!c[f.name]) : String(c[f.name]);
        const field = el('div', { class: 'field' });
        input.addEventListener('input', () => {
          const now = f.bool ? String(input.checked) : input.value;
          field.classList.toggle('changed', now !== input.dataset.orig);
        });
        const label = f.bool
          ? el('label', { class: 'check', for: id }, input, document.createTextNode(` ${f.name}`))
          : el('label', { for: id, text: f.name });
        field.append(label);
        if (!f.bool) field.append(input);
        field.append(
          el('p', { class: 'hint', id: `${id}-hint`, text: f.allowed ? `${f.doc} ${f.allowed[0].toUpperCase()}${f.allowed.slice(1)}.` : f.doc }),
          el('p', { class: 'field-error', id: `${id}-error` }),
        );
        return field;
      }),
    );
  }

  function setupConfig() {
    const form = $('config-form');
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      clearErrors(form);
      const changes = {};
      form.querySelectorAll('input').forEach((input) => {
        if (input.type === 'checkbox') {
          if (String(input.checked) !== input.dataset.orig) changes[input.name] = input.checked;
        } else if (input.value !== input.dataset.orig) {
          changes[input.name] = input.value.trim() === '' || input.validity.badInput ? input.value : Number(input.value);
        }
      });
      if (!Object.keys(changes).length) {
        note('config-note', 'Nothing changed.', true);
        return;
      }
      withButton(form, async () => {
        try {
          state.config = await api('PUT', unitPath('/config'), changes);
          renderConfig();
          note('config-note', `Saved ${Object.keys(changes).join(', ')}.`);
          refresh();
        } catch (e) {
          showError(e, 'cfg', $('config-note'));
        }
      });
    });
    $('config-reset').addEventListener('click', () => {
      clearErrors(form);
      renderConfig();
      note('config-note', 'Changes discarded.');
    });
  }

  function setupRange() {
    const saved = localStorage.getItem(RANGE_KEY);
    if (RANGES.includes(saved)) state.range = saved;
    $(`range-${state.range}`).checked = true;
    $('range').addEventListener('change', (ev) => {
      state.range = ev.target.value;
      localStorage.setItem(RANGE_KEY, state.range);
      refresh();
    });
    $('unit').addEventListener('change', (ev) => {
      state.unit = ev.target.value;
      history.replaceState(null, '', `#unit=${encodeURIComponent(state.unit)}`);
      state.config = null;
      refresh();
    });
  }

  function start() {
    setupToken();
    setupRange();
    setupModePolicy();
    setupScale();
    setupConfig();
    for (const name of Object.keys(CHARTS)) makeChart(name);
    refresh();
    setInterval(() => {
      if (!document.hidden) refresh();
    }, REFRESH_MS);
  }

  start();
})();
