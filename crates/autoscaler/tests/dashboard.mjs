// Drives the dashboard in Debian's headless Chromium through playwright-core and reports what
// it saw as one JSON line (`RESULT {...}`) for tests/dashboard.rs, which asserts on it and on
// systemd. Usage: node tests/dashboard.mjs <daemon url> <token> <screenshot dir>
//
// This script only clicks and types like a user and reads the page and the API; it judges
// little itself (a step that cannot finish exits 1 with the reason), so the assertions stay in
// one place, the Rust test. Every wait has a deadline; nothing sleeps for luck.

import { chromium } from 'playwright-core';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [url, token, shots] = process.argv.slice(2);
if (!url || !token || !shots) {
  console.error('usage: node dashboard.mjs <url> <token> <screenshot dir>');
  process.exit(2);
}
const STEP_TIMEOUT = 15_000;

const result = { steps: [], console: [] };
let phase = 'load';
const step = (name) => {
  phase = name;
  result.steps.push(name);
};

async function apiGet(path) {
  // With a token, the daemon guards reads too.
  const res = await fetch(`${url}${path}`, { headers: { Authorization: `Bearer ${token}` } });
  return { status: res.status, json: await res.json() };
}
async function apiPost(path, body) {
  const res = await fetch(`${url}${path}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
    body: JSON.stringify(body),
  });
  return { status: res.status, json: await res.json() };
}

const profile = mkdtempSync(join(tmpdir(), 'autoscaler-chromium-'));
mkdirSync(shots, { recursive: true });
let context = null;
let exitCode = 0;
try {
  // A fresh profile each run; playwright wants it as the persistent context's directory.
  context = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1280, height: 900 },
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  const page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(STEP_TIMEOUT);
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') {
      result.console.push({ phase, type: m.type(), text: m.text() });
    }
  });
  page.on('pageerror', (e) => result.console.push({ phase, type: 'pageerror', text: String(e) }));
  page.on('requestfailed', (r) =>
    result.console.push({ phase, type: 'requestfailed', text: `${r.url()} ${r.failure()?.errorText}` }),
  );

  // 1. Load, and wait for two refreshes so the 5 s timer is known to work too.
  // The daemon has a token, which guards reads too: the page's first calls get 401 and it
  // asks for the token.
  step('load-needs-token');
  const t0 = Date.now();
  await page.goto(url, { waitUntil: 'load' });
  await page.waitForSelector('#token-panel:not([hidden])');
  result.token_focused = await page.evaluate(() => document.activeElement && document.activeElement.id);
  await page.fill('#token', token);
  await page.press('#token', 'Enter');
  await page.waitForSelector('#token-panel', { state: 'hidden' });
  result.token_stored = await page.evaluate(() => sessionStorage.getItem('autoscaler.token') !== null);
  step('load');
  await page.waitForFunction(() => window.autoscalerDashboard && window.autoscalerDashboard.points.cpu > 0);
  result.load_ms = Date.now() - t0;
  await page.waitForFunction(() => window.autoscalerDashboard.refreshes >= 2, null, { timeout: 12_000 });
  result.title = await page.title();
  result.unit_shown = await page.textContent('#s-unit');
  result.limits_shown = await page.textContent('#s-cpu');
  // A young unit has no forecast yet (the window needs 5 minutes): the table says so.
  result.forecast_text = await page.textContent('#forecast tbody');

  // 2. The charts hold the API's samples: the page's plotted arrays against the endpoint.
  step('charts');
  const plotted = await page.evaluate(() => {
    const out = {};
    for (const [name, u] of Object.entries(window.autoscalerDashboard.charts)) {
      out[name] = { time: Array.from(u.data[0]), first: Array.from(u.data[1]) };
    }
    return out;
  });
  const api = (await apiGet('/api/autoscaler/metrics/history?since=15m')).json;
  const byTime = new Map(api.series.time.map((t, i) => [t, i]));
  const cpu = plotted.cpu;
  let matched = 0;
  let mismatched = 0;
  cpu.time.forEach((t, i) => {
    if (!byTime.has(t)) return;
    const j = byTime.get(t);
    // The newest bucket may have gained a sample between the two reads.
    if (j === api.series.time.length - 1) return;
    if (api.series.cpu_cores[j] === cpu.first[i]) matched += 1;
    else mismatched += 1;
  });
  result.points_page = Object.fromEntries(Object.entries(plotted).map(([k, v]) => [k, v.time.length]));
  result.points_api = api.points;
  result.points_matched = matched;
  result.points_mismatched = mismatched;
  result.data_points_attr = await page.getAttribute('#chart-cpu', 'data-points');
  // Ink on the canvas: pixels of the "used" series colour in the CPU chart.
  result.cpu_canvas_blue_pixels = await page.evaluate(() => {
    const c = document.querySelector('#chart-cpu canvas');
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4) if (d[i] < 90 && d[i + 1] < 130 && d[i + 2] > 200 && d[i + 3] > 200) n += 1;
    return n;
  });
  result.console_after_load = result.console.filter((e) => e.phase !== 'load-needs-token').length;

  // 3. Mode through the page, with the token it was given.
  step('mode');
  await page.selectOption('#mode', 'disabled');
  await page.click('#mode-form button[type=submit]');
  await page.waitForFunction(() => /Mode set to disabled/.test(document.querySelector('#mode-note').textContent));
  result.mode_api = (await apiGet('/api/autoscaler/status')).json.mode;
  result.mode_badge = await page.textContent('#s-mode');

  // 4. A manual scale from the form, by keyboard: type in the field, Enter submits.
  step('scale');
  await page.focus('#scale-cpu_quota');
  await page.keyboard.type('130');
  await page.keyboard.press('Tab');
  await page.keyboard.type('1.5');
  await page.press('#scale-memory_max', 'Enter');
  await page.waitForFunction(() => /Applied:/.test(document.querySelector('#scale-note').textContent));
  result.scale_note = await page.textContent('#scale-note');
  const afterScale = (await apiGet('/api/autoscaler/status')).json;
  result.limits_after_scale = afterScale.current_limits;
  result.mode_after_scale = afterScale.mode;

  // 5. Out of range: the API's error appears next to the field and nothing changes.
  step('out-of-range');
  const historyBefore = (await apiGet('/api/autoscaler/history?limit=1000')).json.length;
  await page.fill('#scale-cpu_quota', '5000');
  await page.press('#scale-cpu_quota', 'Enter');
  await page.waitForFunction(() => document.querySelector('#scale-cpu_quota-error').textContent.length > 0);
  result.field_error = await page.textContent('#scale-cpu_quota-error');
  result.field_invalid = await page.getAttribute('#scale-cpu_quota', 'aria-invalid');
  result.field_focused = await page.evaluate(() => document.activeElement && document.activeElement.id);
  // The same request straight to the API, for the text to compare with (also a 400).
  const direct = await apiPost('/api/autoscaler/scale', { cpu_quota: 5000 });
  result.api_error = direct.json;
  result.api_status = direct.status;
  const afterBad = (await apiGet('/api/autoscaler/status')).json;
  result.limits_after_bad = afterBad.current_limits;
  result.history_added_by_bad = (await apiGet('/api/autoscaler/history?limit=1000')).json.length - historyBefore;

  // 6. The config editor shows an API error next to its field too.
  step('config');
  await page.click('#config-details summary');
  await page.fill('#cfg-scale_up_cpu_percent', '150');
  await page.click('#config-form button[type=submit]');
  await page.waitForFunction(() => document.querySelector('#cfg-scale_up_cpu_percent-error').textContent.length > 0);
  result.config_error = await page.textContent('#cfg-scale_up_cpu_percent-error');

  // 7. Markers: the manual scale is on the time axis with its reason.
  step('markers');
  await page.waitForSelector('#chart-cpu .marker.trig-manual', { timeout: 12_000 });
  result.marker_labels = await page.$$eval('#chart-cpu .marker', (ms) => ms.map((m) => m.getAttribute('aria-label')));
  result.marker_label = await page.getAttribute('#chart-cpu .marker.trig-manual', 'aria-label');
  await page.hover('#chart-cpu .marker.trig-manual');
  result.marker_tip_visible = await page.isVisible('#chart-cpu .marker.trig-manual .tip');

  // 8. Screenshots and widths: no horizontal scroll from phone to desktop.
  step('screenshots');
  await page.click('#config-details summary'); // closed again, for a compact screenshot
  await page.evaluate(() => document.activeElement && document.activeElement.blur());
  result.widths = {};
  for (const width of [1280, 390, 375]) {
    await page.setViewportSize({ width, height: width > 800 ? 900 : 844 });
    await page.waitForFunction(
      (w) => Math.abs(window.autoscalerDashboard.charts.cpu.width - document.querySelector('#chart-cpu .plot').clientWidth) <= 1 && window.innerWidth === w,
      width,
    );
    result.widths[width] = await page.evaluate(() => ({
      scroll: document.documentElement.scrollWidth,
      inner: window.innerWidth,
    }));
    if (width !== 375) {
      await page.evaluate(() => window.scrollTo(0, 0));
      await page.screenshot({ path: join(shots, `dashboard-${width}.png`), fullPage: true });
    }
  }
  step('done');
} catch (e) {
  result.error = `${phase}: ${e.message}`;
  exitCode = 1;
} finally {
  if (context) await context.close();
  rmSync(profile, { recursive: true, force: true });
}
console.log(`RESULT ${JSON.stringify(result)}`);
process.exit(exitCode);
