// The web console in a real browser: Debian's chromium driven by playwright-core against a
// real `ferrymq serve` on a fresh local directory. scripts/test runs it; it fails (exit 1) on
// the first step that does not hold, printing the step, and leaves a screenshot of it.
//
//   FERRYMQ_BIN=target/debug/ferrymq CONSOLE_NODE_DIR=<dir with node_modules> node console.test.mjs
//
// CONSOLE_SCREENSHOTS=<dir> keeps screenshots of the main screens there (docs/console/ holds the
// committed ones); PROMTOOL=<path> also checks a real /metrics scrape with `promtool check metrics`.

import { spawn, spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { mkdtempSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(process.env.CONSOLE_NODE_DIR || here, 'package.json'));
const { chromium } = require('playwright-core');

const BIN = process.env.FERRYMQ_BIN;
if (!BIN) throw new Error('set FERRYMQ_BIN to the ferrymq binary');
const SECRET = 'console-test-secret-0123456789';
const started = Date.now();
const tmp = mkdtempSync(path.join(os.tmpdir(), 'ferrymq-console-'));
const shots = process.env.CONSOLE_SCREENSHOTS || path.join(tmp, 'screenshots');
mkdirSync(shots, { recursive: true });

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

function token(...perms) {
  const args = ['token', '--jwt-secret', SECRET, '--sub', 'console-test', '--ttl', '1h'];
  for (const p of perms) args.push('--perm', p);
  const r = spawnSync(BIN, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ferrymq token failed: ${r.stderr}`);
  return r.stdout.trim();
}

/**
 * A webhook receiver on loopback: `/hooks/ok` answers 204, `/hooks/busy` 503 with
 * `Retry-After: 1`; `pushes` holds what each path got (`webhook-id` and body), in order.
 */
function hookReceiver() {
  const pushes = { ok: [], busy: [] };
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const which = req.url === '/hooks/ok' ? 'ok' : req.url === '/hooks/busy' ? 'busy' : null;
      if (req.method !== 'POST' || !which) { res.writeHead(404).end(); return; }
      pushes[which].push({ id: req.headers['webhook-id'], signed: /^v1,/.test(req.headers['webhook-signature'] || ''), body: Buffer.concat(chunks).toString() });
      if (which === 'ok') res.writeHead(204).end();
      else res.writeHead(503, { 'Retry-After': '1', 'Content-Type': 'text/plain' }).end('come back later');
    });
  });
  return new Promise((resolve, reject) => {
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => resolve({ server, pushes, base: `http://127.0.0.1:${server.address().port}` }));
  });
}

const sleep = (ms) => new Promise((r) => { setTimeout(r, ms); });
let step = '(start)';
let page;
let gateway;
let browser;
let hooks;

async function check(name, fn) {
  step = name;
  const t = Date.now();
  await fn();
  console.log(`ok   ${name} (${Date.now() - t} ms)`);
}

function expect(cond, what) { if (!cond) throw new Error(`expected ${what}`); }

async function main() {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  hooks = await hookReceiver();
  // Push only to the receiver's /hooks/ (narrower than the local default, any loopback port).
  gateway = spawn(BIN, ['serve', '--store', `file://${path.join(tmp, 'data')}`, '--listen', `127.0.0.1:${port}`, '--jwt-secret', SECRET,
    '--push-allow', `${hooks.base}/hooks/*`],
    { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, RUST_LOG: 'warn' } });
  let log = '';
  gateway.stderr.on('data', (d) => { log = (log + d).slice(-4000); });
  gateway.on('exit', (code) => { if (code !== null && code !== 0) console.error(`ferrymq exited ${code}: ${log}`); });
  for (let i = 0; ; i++) {
    try { if ((await fetch(`${base}/readyz`)).ok) break; } catch { /* not yet */ }
    if (i > 200) throw new Error(`the gateway did not get ready: ${log}`);
    await sleep(50);
  }
  const admin = token('admin:*');
  const subOnly = token('sub:group/console-billing');
  const H = { Authorization: `Bearer ${admin}`, 'Content-Type': 'application/json' };
  const call = async (method, p, body) => {
    const r = await fetch(`${base}${p}`, { method, headers: H, body: body && JSON.stringify(body) });
    const text = await r.text();
    if (!r.ok) throw new Error(`${method} ${p}: ${r.status} ${text}`);
    return text ? JSON.parse(text) : null;
  };

  await check('static assets: types, cache headers, 404 for unknown paths, no token needed', async () => {
    const idx = await fetch(`${base}/console/`);
    expect(idx.status === 200 && idx.headers.get('content-type').startsWith('text/html'), 'index.html as text/html');
    expect(idx.headers.get('cache-control') === 'no-cache', 'Cache-Control: no-cache');
    const js = await fetch(`${base}/console/app.js`);
    expect(js.headers.get('content-type').startsWith('text/javascript'), 'app.js as JavaScript');
    expect((await fetch(`${base}/console/nope.js`)).status === 404, '404 for an unknown asset');
    expect((await fetch(`${base}/v1/topics`)).status === 401, 'the API itself still needs a token');
  });

  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  page = await context.newPage();
  page.setDefaultTimeout(10000);
  page.on('dialog', (d) => d.accept());
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));

  await check('sign in with an admin token', async () => {
    await page.goto(`${base}/console/`);
    await page.fill('textarea[name=token]', admin);
    await page.click('button[type=submit]');
    await page.waitForSelector('h1:has-text("Topics")');
    expect(await page.evaluate(() => sessionStorage.getItem('ferrymq.token')) === admin, 'the token in sessionStorage');
    expect(await page.evaluate(() => localStorage.length) === 0, 'nothing in localStorage');
  });

  await check('create a topic', async () => {
    await page.fill('input[name=name]', 'console-orders');
    await page.selectOption('select[name=type]', 'normal');
    await page.fill('input[name=queues]', '2');
    await page.click('button:has-text("Create topic")');
    await page.waitForSelector('a[href="#/topics/console-orders"]');
  });

  await check('create a group with no retries', async () => {
    await page.click('nav a:has-text("Groups")');
    // The view changes on the hash change, after the click: fill the new view's form, not
    // a field of the same name on the page before it.
    await page.waitForSelector('h1:text-is("Consumer groups")');
    await page.fill('input[name=name]', 'console-billing');
    await page.fill('input[name=topic]', 'console-orders');
    await page.fill('input[name=max_retries]', '0');
    await page.click('button:has-text("Create group")');
    await page.waitForSelector('[data-lag="console-billing"]:text-is("0")');
  });

  await check('send a test message with a key', async () => {
    await page.click('nav a:has-text("Send")');
    await page.waitForSelector('h1:text-is("Send a test message")');
    await page.fill('input[name=topic]', 'console-orders');
    await page.fill('input[name=tag]', 'paid');
    await page.fill('input[name=keys]', 'order-42');
    await page.fill('textarea[name=body]', '{"order": 42, "amount": 9.5}');
    await page.fill('textarea[name=properties]', 'region=hz\namount=9.5');
    await page.click('button:has-text("Send")');
    await page.waitForSelector('.result dd a');
  });

  await check('the lag goes to 1, then to 2 without reloading the page', async () => {
    await page.click('nav a:has-text("Groups")');
    await page.waitForSelector('[data-lag="console-billing"]:text-is("1")');
    const marker = await page.evaluate(() => { window.notReloaded = true; return true; });
    await call('POST', '/v1/topics/console-orders/messages', { messages: [{ body: 'second' }] });
    await page.waitForSelector('[data-lag="console-billing"]:text-is("2")', { timeout: 8000 });
    expect(marker && await page.evaluate(() => window.notReloaded === true), 'the same page (live refresh)');
    await page.screenshot({ path: path.join(shots, 'groups.png') });
  });

  await check('find the message by key: body, properties, trace', async () => {
    await page.click('nav a:has-text("Messages")');
    await page.waitForSelector('h1:text-is("Find a message")');
    await page.fill('input[name=topic]', 'console-orders');
    await page.selectOption('select[name=by]', 'key');
    await page.fill('input[name=q]', 'order-42');
    await page.click('button:has-text("Find")');
    await page.waitForSelector('.message pre.body:has-text("\\"order\\": 42")');
    expect(await page.isVisible('.message td:text-is("region")'), 'the property region');
    expect(await page.isVisible('.message td:text-is("hz")'), 'its value');
    // The API has no trace route yet: the console says so instead of showing nothing.
    await page.waitForSelector('.message .trace-missing, .message h2:has-text("Trace") + .table-wrap');
    await page.screenshot({ path: path.join(shots, 'message.png'), fullPage: true });
  });

  await check('reset the group to the latest offset: the lag drops to 0', async () => {
    await page.goto(`${base}/console/#/groups/console-billing`);
    await page.waitForSelector('#total-lag:text-is("2")');
    await page.selectOption('select[name=to]', 'latest');
    await page.click('button:has-text("Reset offsets")');
    await page.waitForSelector('#total-lag:text-is("0")');
  });

  await check('reset to a time: the messages stored since are delivered again', async () => {
    await page.selectOption('select[name=to]', 'time');
    // A minute ago (datetime-local is the browser's local time).
    await page.evaluate(() => {
      const d = new Date(Date.now() - 60000);
      const local = new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 19);
      document.querySelector('input[name=time]').value = local;
    });
    await page.click('button:has-text("Reset offsets")');
    await page.waitForSelector('#total-lag:text-is("2")');
  });

  await check('a nacked message is dead-lettered and re-driven from the console', async () => {
    const got = await call('POST', '/v1/groups/console-billing/receive', { max_messages: 1, wait_ms: 2000 });
    expect(got.messages.length === 1, 'one message received');
    const nack = await call('POST', '/v1/groups/console-billing/nack', { receipt_handles: [got.messages[0].receipt_handle] });
    expect(nack.results[0].ok, 'the nack accepted');
    // No reload: the group's page refreshes its lag and dead letters every 2 s.
    await page.waitForSelector('#dlq-count:text-is("1")');
    await page.waitForSelector('#total-lag:text-is("1")');
    await page.screenshot({ path: path.join(shots, 'group.png'), fullPage: true });
    // The dead letter by its id: its body and the topic it came from.
    await page.click('a[href^="#/messages/DLQ.console-billing/"]');
    await page.waitForSelector('.message dd:text-is("console-orders")');
    const body = await page.textContent('.message pre.body');
    expect(body === got.messages[0].body, `the dead letter's body ${JSON.stringify(got.messages[0].body)}, got ${JSON.stringify(body)}`);
    expect(await page.isVisible(`.message h2 code:text-is("${got.messages[0].message_id}")`), 'its message id');
    await page.goBack();
    await page.waitForSelector('#dlq-count:text-is("1")');
    await page.click('button:has-text("Re-drive to the group")');
    await page.waitForSelector('#notice:has-text("Re-drove 1 dead letter")');
    await page.waitForSelector('#dlq-count:text-is("0")');
  });

  await check('topics: a topic\'s queues with offsets, the list, create and delete', async () => {
    await page.click('nav a:has-text("Topics")');
    await page.click('a[href="#/topics/console-orders"]');
    await page.waitForSelector('h2:has-text("Queues")');
    expect(await page.isVisible('a[href="#/groups/console-billing"]'), 'the group reading it');
    await page.click('nav a:has-text("Topics")');
    await page.waitForSelector('a[href="#/topics/console-orders"]');
    await page.screenshot({ path: path.join(shots, 'topics.png') });
    await page.fill('input[name=name]', 'console-scratch');
    await page.click('button:has-text("Create topic")');
    await page.click('button[aria-label="Delete console-scratch"]');
    await page.waitForSelector('#notice:has-text("Topic console-scratch deleted")');
    await page.waitForSelector('a[href="#/topics/console-scratch"]', { state: 'detached' });
    const r = await fetch(`${base}/v1/topics/console-scratch`, { headers: H });
    expect(r.status === 404, `the topic gone from the API, got ${r.status}`);
  });

  await check('cluster view: sequencer, manifest version, store', async () => {
    await page.click('nav a:has-text("Cluster")');
    await page.waitForSelector('#manifest-version');
    expect(await page.isVisible('.pill:text-is("sequencer")'), 'the sequencer named');
    expect(await page.isVisible(`code:has-text("file://")`), 'the store');
    await page.screenshot({ path: path.join(shots, 'cluster.png') });
  });

  await check('push: a push group created from the form shows its signing secret once', async () => {
    await call('PUT', '/v1/topics/console-hooks', { type: 'normal', queues: 2, retention_hours: 24 });
    await page.click('nav a:has-text("Groups")');
    await page.waitForSelector('[data-lag="console-billing"]');
    await page.fill('input[name=name]', 'console-hooked');
    await page.fill('input[name=topic]', 'console-hooks');
    await page.selectOption('select[name=start_from]', 'earliest');
    await page.fill('input[name=push_url]', `${hooks.base}/hooks/ok`);
    await page.selectOption('select[name=push_format]', 'structured');
    await page.fill('input[name=push_max_in_flight]', '8');
    await page.fill('input[name=push_rate_per_s]', '0');
    await page.click('button:has-text("Create group")');
    await page.waitForSelector('#push-secret');
    const secret = await page.inputValue('#push-secret');
    expect(/^whsec_[A-Za-z0-9+/=]{20,}$/.test(secret), `a whsec_ secret shown, got ${JSON.stringify(secret)}`);
    expect(await page.isVisible('.secret :text("it is not shown again")'), 'the "copy it now, not shown again" warning');
    expect(await page.isVisible('[data-delivery="console-hooked"]:text-is("push")'), 'the group listed as push');
    expect(await page.isVisible('[data-delivery="console-billing"]:text-is("pull")'), 'the pull group listed as pull');
    const stored = await page.evaluate(() => JSON.stringify({ ...sessionStorage }) + JSON.stringify({ ...localStorage }));
    expect(!stored.includes(secret), 'the secret kept nowhere in the browser');
    const g = await call('GET', '/v1/groups/console-hooked');
    expect(g.push && g.push.url === `${hooks.base}/hooks/ok` && g.push.format === 'structured' && g.push.max_in_flight === 8,
      `the group defined with the form's push settings, got ${JSON.stringify(g.push)}`);
    expect(!JSON.stringify(g).includes(secret), 'a later read without the secret');
    await page.screenshot({ path: path.join(shots, 'push-secret.png') });
    // Shown once: the group's page, and the list again, do not show it.
    await page.click('a[href="#/groups/console-hooked"]');
    await page.waitForSelector('#push-url');
    expect(!(await page.content()).includes(secret), 'the secret not on the group page');
    await page.click('nav a:has-text("Groups")');
    await page.waitForSelector('[data-delivery="console-hooked"]');
    expect(await page.$('#push-secret') === null && !(await page.content()).includes(secret), 'the secret gone from the list');
  });

  await check('push: the group page shows the endpoint and counts deliveries live', async () => {
    await page.click('a[href="#/groups/console-hooked"]');
    await page.waitForSelector(`#push-url:text-is("${hooks.base}/hooks/ok")`);
    expect((await page.textContent('#push-format')).startsWith('structured'), 'the content mode');
    expect(await page.textContent('#push-max-in-flight') === '8', 'max_in_flight');
    expect(await page.textContent('#push-rate') === 'no cap', 'rate_per_s 0 shown as no cap');
    expect((await page.textContent('#push-backoff')).startsWith('10s, 30s, 1m'), 'the backoff ladder');
    await page.waitForSelector('#push-delivered:text-is("0")');
    await page.evaluate(() => { window.notReloaded = true; });
    const bodies = ['hook-1', 'hook-2', 'hook-3'];
    await call('POST', '/v1/topics/console-hooks/messages', { messages: bodies.map((body) => ({ body })) });
    await page.waitForSelector('#push-delivered:text-is("3")', { timeout: 20000 });
    await page.waitForSelector('#push-in-flight:text-is("0")', { timeout: 20000 });
    expect(await page.textContent('#push-failed') === '0', 'no failed push');
    expect(await page.textContent('#push-last-error') === 'none', 'no last error');
    await page.waitForSelector('#total-lag:text-is("0")', { timeout: 20000 });
    expect(await page.evaluate(() => window.notReloaded === true), 'the same page (live refresh)');
    const got = hooks.pushes.ok.map((p) => JSON.parse(p.body).data).sort();
    expect(JSON.stringify(got) === JSON.stringify(bodies), `the receiver got the three messages, got ${JSON.stringify(got)}`);
    expect(hooks.pushes.ok.every((p) => p.signed && p.id), 'every push signed');
    await page.screenshot({ path: path.join(shots, 'push-group.png'), fullPage: true });
  });

  await check('push: a failing endpoint (503, Retry-After) shows its last error and failures live', async () => {
    await page.click('nav a:has-text("Groups")');
    await page.waitForSelector('[data-delivery="console-hooked"]');
    await page.fill('input[name=name]', 'console-hooked-busy');
    await page.fill('input[name=topic]', 'console-hooks');
    await page.selectOption('select[name=start_from]', 'latest');
    await page.fill('input[name=push_url]', `${hooks.base}/hooks/busy`);
    await page.click('button:has-text("Create group")');
    await page.waitForSelector('#push-secret');
    await page.click('a[href="#/groups/console-hooked-busy"]');
    await page.waitForSelector('#push-failed:text-is("0")');
    await page.waitForSelector('#push-last-error:text-is("none")');
    await page.evaluate(() => { window.notReloaded = true; });
    await call('POST', '/v1/topics/console-hooks/messages', { messages: [{ body: 'hook-busy' }] });
    await page.waitForSelector('#push-last-error:has-text("503")', { timeout: 20000 });
    await page.waitForSelector('#push-failed.bad');
    expect(Number(await page.textContent('#push-failed')) >= 1, 'the failure counted');
    expect(await page.textContent('#push-delivered') === '0', 'nothing delivered');
    expect(/\d/.test(await page.textContent('#push-last-error-time')), 'when the error happened');
    expect(await page.evaluate(() => window.notReloaded === true), 'the same page (live refresh)');
    expect(hooks.pushes.busy.some((p) => p.body === 'hook-busy'), 'the receiver was asked (binary: the body as is)');
    await page.screenshot({ path: path.join(shots, 'push-failing.png'), fullPage: true });
  });

  await check('push: a URL outside --push-allow shows the refusal and creates nothing', async () => {
    await page.click('nav a:has-text("Groups")');
    await page.waitForSelector('[data-delivery="console-hooked"]');
    await page.fill('input[name=name]', 'console-hooked-elsewhere');
    await page.fill('input[name=topic]', 'console-hooks');
    await page.fill('input[name=push_url]', `${hooks.base}/elsewhere`);
    await page.click('button:has-text("Create group")');
    await page.waitForSelector('#notice:has-text("push-allow")');
    const text = await page.textContent('#notice');
    expect(text.includes('Error 400') && text.includes(`${hooks.base}/elsewhere`), `the API's refusal, got ${JSON.stringify(text)}`);
    expect(await page.$('#push-secret') === null, 'no secret shown');
    expect(await page.inputValue('input[name=push_url]') === `${hooks.base}/elsewhere`, 'the form kept for a fix');
    const { groups } = await call('GET', '/v1/groups');
    expect(!groups.some((g) => g.group === 'console-hooked-elsewhere'), 'no such group in GET /v1/groups');
    expect(groups.some((g) => g.group === 'console-hooked'), 'the other push group still there');
    // One more refresh of the list (its stamp changes): still not there.
    const stampBefore = await page.textContent('.updated');
    await page.waitForFunction((t) => document.querySelector('.updated').textContent !== t, stampBefore);
    expect(await page.$('a[href="#/groups/console-hooked-elsewhere"]') === null, 'not listed in the console');
  });

  await check('a phone-sized screen: no sideways scrolling of the page', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    for (const view of ['groups', 'groups/console-billing', 'groups/console-hooked', 'topics', 'messages']) {
      await page.goto(`${base}/console/#/${view}`);
      await page.waitForSelector('main h1');
      await sleep(300);
      const over = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      expect(over <= 0, `#/${view} to fit 390 px (overflows by ${over} px)`);
    }
    await page.goto(`${base}/console/#/groups/console-billing`);
    await page.waitForSelector('#total-lag');
    await page.screenshot({ path: path.join(shots, 'phone-group.png'), fullPage: true });
    await page.setViewportSize({ width: 1280, height: 860 });
  });

  await check('a sub-only token sees its group and a clear refusal for the rest', async () => {
    await page.click('#sign-out');
    await page.fill('textarea[name=token]', subOnly);
    await page.click('button[type=submit]');
    await page.waitForSelector('.error:has-text("Not permitted")');
    const text = await page.textContent('.error');
    expect(/Forbidden|permit/i.test(text), `the API's refusal, got ${JSON.stringify(text)}`);
    await page.goto(`${base}/console/#/groups/console-billing`);
    await page.waitForSelector('#total-lag');
    await page.waitForSelector('.card .error:has-text("Not permitted")'); // the DLQ topic
    await page.selectOption('select[name=to]', 'earliest');
    await page.click('button:has-text("Reset offsets")');
    await page.waitForSelector('#notice:has-text("Not permitted")');
    await page.screenshot({ path: path.join(shots, 'refused.png') });
  });

  await check('no script errors on any page', async () => {
    expect(errors.length === 0, `no page errors, got ${errors.join('; ')}`);
  });

  await check('every metric the dashboard and the runbook query is in a real scrape', async () => {
    const text = await (await fetch(`${base}/metrics`)).text();
    const exported = new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]));
    const docs = ['docs/grafana/ferrymq-backlog.json', 'docs/grafana/ferrymq-alerts.yml', 'docs/runbook.md']
      .map((f) => readFileSync(path.join(here, '..', '..', f), 'utf8')).join('\n');
    const named = new Set([...docs.matchAll(/\bferrymq_[a-z_]*[a-z]\b/g)].map((m) => m[0].replace(/_(bucket|sum|count)$/, '')));
    const missing = [...named].filter((n) => !exported.has(n));
    expect(named.size > 10 && missing.length === 0, `every queried metric exported, missing ${missing.join(', ')}`);
  });

  if (process.env.PROMTOOL) {
    await check('promtool check metrics on a real scrape, and check rules on the alerts', async () => {
      const text = await (await fetch(`${base}/metrics`)).text();
      expect(text.includes('ferrymq_consumer_lag_messages{group="console-billing",topic="console-orders"}'), 'the backlog families');
      const r = spawnSync(process.env.PROMTOOL, ['check', 'metrics'], { input: text, encoding: 'utf8' });
      expect(r.status === 0, `promtool clean, got: ${r.stdout}${r.stderr}`);
      const rules = spawnSync(process.env.PROMTOOL, ['check', 'rules', path.join(here, '..', '..', 'docs/grafana/ferrymq-alerts.yml')], { encoding: 'utf8' });
      expect(rules.status === 0, `the alert rules clean, got: ${rules.stdout}${rules.stderr}`);
    });
  }
}

let failed = false;
try {
  await main();
  console.log(`console test passed in ${((Date.now() - started) / 1000).toFixed(1)} s`);
} catch (e) {
  failed = true;
  console.error(`FAIL ${step}: ${e.stack || e}`);
  if (page) {
    const p = path.join(shots, 'failure.png');
    try { await page.screenshot({ path: p, fullPage: true }); console.error(`screenshot: ${p}`); } catch { /* closed */ }
  }
} finally {
  if (browser) await browser.close().catch(() => {});
  if (gateway) gateway.kill('SIGKILL');
  if (hooks) { hooks.server.closeAllConnections(); hooks.server.close(); }
  if (!failed && !process.env.CONSOLE_SCREENSHOTS) rmSync(tmp, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
