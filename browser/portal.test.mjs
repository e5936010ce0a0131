// The portal in a real browser: Debian's Chromium driven by playwright-core
// with role and label locators, against the real `changegate serve` on
// SQLite and on a private PostgreSQL, with a real SMTP sink on loopback.
// Screenshots of the main pages go to target/browser-artifacts/ (not
// committed). Run with `make test-browser`.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import net from 'node:net';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';

const ROOT = path.resolve(import.meta.dirname, '..');
const BIN = process.env.CHANGEGATE_BIN ?? path.join(ROOT, 'target/debug/changegate');
const CHROMIUM = process.env.CHANGEGATE_CHROMIUM ?? '/usr/bin/chromium';
const ARTIFACTS = path.join(ROOT, 'target/browser-artifacts');
const DATABASES = (process.env.CHANGEGATE_BROWSER_DATABASES ?? 'sqlite,postgres').split(',');
const PASSWORD = 'a long browser test password';

// ---- a real SMTP sink ------------------------------------------------------

/** Decode a quoted-printable body as a mail client shows it. */
function decoded(raw) {
  const split = raw.indexOf('\r\n\r\n') >= 0 ? '\r\n\r\n' : '\n\n';
  const at = raw.indexOf(split);
  const head = raw.slice(0, at);
  let body = raw.slice(at + split.length);
  if (/content-transfer-encoding: quoted-printable/i.test(head)) {
    body = body.replace(/=\r?\n/g, '');
    body = Buffer.from(
      body.replace(/=([0-9A-F]{2})/g, (_, h) => String.fromCharCode(parseInt(h, 16))),
      'latin1',
    ).toString('utf8');
  }
  return `${head}\n\n${body}`;
}

function smtpSink() {
  const messages = [];
  const server = net.createServer((socket) => {
    socket.write('220 browser-test-sink\r\n');
    let data = null;
    const lines = readline.createInterface({ input: socket });
    lines.on('line', (line) => {
      if (data !== null) {
        if (line === '.') {
          messages.push(decoded(data));
          data = null;
          socket.write('250 queued\r\n');
        } else {
          data += (line.startsWith('.') ? line.slice(1) : line) + '\n';
        }
        return;
      }
      const verb = line.split(' ')[0].toUpperCase();
      if (verb === 'DATA') {
        data = '';
        socket.write('354 end with a dot\r\n');
      } else if (verb === 'QUIT') {
        socket.end('221 bye\r\n');
      } else {
        socket.write('250 ok\r\n');
      }
    });
    socket.on('error', () => {});
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => resolve({ port: server.address().port, messages, close: () => server.close() }));
  });
}

/** Wait for a condition (polling, with a deadline). */
async function until(what, check, seconds = 20) {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

// ---- the server and its CLI ------------------------------------------------

async function startServer(dbEnv, smtpPort, dir) {
  const child = spawn(
    BIN,
    ['serve', '--listen', '127.0.0.1:0', '--insecure-cookies', '--smtp', `smtp://127.0.0.1:${smtpPort}`,
      '--mail-from', 'changegate <changes@msp.example>'],
    { env: { ...process.env, ...dbEnv }, stdio: ['ignore', 'pipe', fs.openSync(path.join(dir, 'server.log'), 'w')] },
  );
  const first = await new Promise((resolve, reject) => {
    readline.createInterface({ input: child.stdout }).once('line', resolve);
    child.once('exit', (code) => reject(new Error(`changegate serve exited with ${code}; see ${dir}/server.log`)));
  });
  const url = first.split(/\s+/).find((w) => w.startsWith('http://'));
  assert.ok(url, `no URL in ${first}`);
  return { url, child };
}

function cli(env, args, token) {
  return execFileSync(BIN, args, {
    env: { ...process.env, ...env, ...(token ? { CHANGEGATE_TOKEN: token } : {}), CHANGEGATE_PASSWORD: PASSWORD },
    encoding: 'utf8',
  }).trim();
}

async function api(url, token, method, route, body) {
  const res = await fetch(url + route, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: res.status, json: await res.json().catch(() => null) };
}

async function launch() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
}

async function signIn(browser, url, email) {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${url}/sign-in`);
  await page.getByLabel('E-mail address').fill(email);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL(`${url}/inbox`, { timeout: 10_000 }).catch(async (e) => {
    throw new Error(`${email} is not signed in: ${page.url()} says ${await page.locator('main').innerText()}`, { cause: e });
  });
  return page;
}

async function shot(page, db, name) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, `${db}-${name}.png`), fullPage: true });
}

// ---- every page: a phone's width and axe-core ---------------------------------

const AXE = fs.readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

/** The serious and critical axe-core violations of the page as it is. */
async function axeViolations(page) {
  await page.evaluate(AXE);
  const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
  return result.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.impact} ${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(' ')).slice(0, 3).join(', ')})`);
}

/**
 * Every form control of the page as it is (its <details> opened) reached
 * by Tab alone, in turn, each showing where the focus is; and no positive
 * tabindex reordering them. Returns what is wrong, in words.
 */
async function keyboardProblems(page) {
  const found = await page.evaluate(() => {
    document.querySelectorAll('details').forEach((d) => { d.open = true; });
    const shown = (el) => !el.disabled && el.getClientRects().length > 0 && getComputedStyle(el).visibility !== 'hidden';
    const controls = [...document.querySelectorAll('form input:not([type=hidden]), form select, form textarea, form button')]
      .filter(shown);
    // A radio group is one Tab stop: reaching one of it reaches it.
    controls.forEach((el, i) => el.setAttribute('data-kb', el.type === 'radio' ? `radio:${el.form?.action}:${el.name}` : String(i)));
    const stops = [...document.querySelectorAll('a[href], button, input:not([type=hidden]), select, textarea, summary, [tabindex]')]
      .filter(shown).length;
    window.kbSeen = new Set();
    window.kbUnmarked = [];
    document.addEventListener('focusin', (e) => {
      const key = e.target.getAttribute('data-kb');
      if (key === null) return;
      window.kbSeen.add(key);
      // The stylesheet's own mark (3 px), not only the browser's thin default.
      const style = getComputedStyle(e.target);
      if (style.outlineStyle === 'none' || parseFloat(style.outlineWidth) < 2) window.kbUnmarked.push(key);
    });
    document.activeElement?.blur();
    const positive = [...document.querySelectorAll('[tabindex]')].filter((el) => el.tabIndex > 0).length;
    return { stops, positive };
  });
  // A date or time field is several stops (one per part), so Tab goes on
  // until every control was reached or four times the stops were pressed.
  for (let i = 0; i <= 4 * found.stops; i++) {
    await page.keyboard.press('Tab');
    if (i % 10 === 9 && await page.evaluate(() =>
      [...document.querySelectorAll('[data-kb]')].every((el) => window.kbSeen.has(el.getAttribute('data-kb'))))) break;
  }
  const result = await page.evaluate(() => {
    const name = (el) => `${el.tagName.toLowerCase()} ${el.name || el.textContent.trim().slice(0, 30)} of the form to ${el.form?.getAttribute('action')}`;
    const all = [...document.querySelectorAll('[data-kb]')];
    return {
      missed: all.filter((el) => !window.kbSeen.has(el.getAttribute('data-kb'))).map(name),
      unmarked: [...new Set(window.kbUnmarked)].map((k) => name(document.querySelector(`[data-kb="${CSS.escape(k)}"]`))),
      controls: new Set(all.map((el) => el.getAttribute('data-kb'))).size,
    };
  });
  const problems = [];
  if (found.positive) problems.push(`${found.positive} elements with a positive tabindex`);
  if (result.missed.length) problems.push(`not reached by Tab: ${result.missed.slice(0, 5).join('; ')}`);
  if (result.unmarked.length) problems.push(`focused without a visible mark: ${result.unmarked.slice(0, 5).join('; ')}`);
  return { problems, controls: result.controls };
}

/**
 * The keyboard check of the page `page` shows, opened again in a second tab
 * of the same session (its own tab goes on untouched); what is wrong goes
 * to `failures`, the count of controls to `reached`.
 */
async function keyboardCheck(page, where, failures, reached) {
  const probe = await page.context().newPage();
  try {
    await probe.setViewportSize({ width: 1366, height: 900 });
    const response = await probe.goto(page.url());
    if (!response.ok()) failures.push(`${where} (${new URL(page.url()).pathname}): ${response.status()}`);
    const { problems, controls } = await keyboardProblems(probe);
    // Each journey checks a form its person has there: a page without one checked nothing.
    if (controls < 2) failures.push(`${where} (${new URL(page.url()).pathname}): only ${controls} form controls`);
    failures.push(...problems.map((p) => `${where} (${new URL(page.url()).pathname}): ${p}`));
    reached.push({ where, page: new URL(page.url()).pathname, formControls: controls });
  } finally {
    await probe.close();
  }
}

/** The portal's GET pages, from its page table in the source. */
function pageTable() {
  const source = fs.readFileSync(path.join(ROOT, 'crates/web/src/portal/mod.rs'), 'utf8');
  return [...source.matchAll(/r\(\s*"GET",\s*"([^"]+)"/g)].map((m) => m[1])
    .filter((p) => p !== '/' && !p.startsWith('/static/'));
}

// ---- the story, once per database -------------------------------------------

for (const db of DATABASES) {
  test(`the portal on ${db}`, async (t) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `changegate-browser-${db}-`));
    // Undone last-in first-out once the test ends, the scratch directory last.
    const undo = [() => fs.rmSync(dir, { recursive: true, force: true })];
    t.after(async () => {
      for (const step of undo.reverse()) await step();
    });
    let dbEnv;
    if (db === 'postgres') {
      const pg = path.join(dir, 'pg');
      fs.mkdirSync(pg);
      fs.chmodSync(dir, 0o711);
      const url = execFileSync(path.join(ROOT, 'scripts/pg-scratch.sh'), ['start', pg], { encoding: 'utf8' }).trim();
      undo.push(() => execFileSync(path.join(ROOT, 'scripts/pg-scratch.sh'), ['stop', pg]));
      dbEnv = { CHANGEGATE_DATABASE: url };
    } else {
      dbEnv = { CHANGEGATE_DATA_DIR: path.join(dir, 'data') };
    }
    const sink = await smtpSink();
    undo.push(() => sink.close());
    const server = await startServer(dbEnv, sink.port, dir);
    undo.push(() => new Promise((done) => {
      if (server.child.exitCode !== null) return done();
      server.child.once('exit', done);
      server.child.kill();
    }));
    const env = { ...dbEnv, CHANGEGATE_SERVER: server.url };
    // The forms met in the journeys, each checked by keyboard as its
    // person sees it (reported with the page-table check).
    const keyboardFailures = [];
    const keyboardReached = [];
    const kb = (page, where) => keyboardCheck(page, where, keyboardFailures, keyboardReached);

    cli(env, ['admin', 'create-user', '--email', 'admin@msp.example', '--name', 'Ada', '--admin', '--password-env', 'CHANGEGATE_PASSWORD']);
    const admin = cli(env, ['admin', 'token', 'admin@msp.example']);
    cli(env, ['apply', '-f', path.join(ROOT, 'browser/msp.yaml')], admin);
    const people = [
      ['eve@msp.example', ['--role', 'client-a:requester', '--role', 'client-b:requester']],
      ['tom@msp.example', ['--role', 'client-a:technical-approver']],
      ['audrey@audit.example', ['--role', 'client-a:auditor']],
      ['rita@msp.example', ['--role', 'client-a:release-manager', '--role', 'client-a:implementer',
        '--role', 'client-b:release-manager', '--role', 'client-b:implementer']],
      ['carol@client-a.example', ['--client-of', 'client-a', '--role', 'client-a:business-approver']],
      ['bob@client-b.example', ['--client-of', 'client-b', '--role', 'client-b:business-approver']],
      ['alice@client-a.example', ['--client-of', 'client-a', '--role', 'client-a:tenant-admin']],
    ];
    for (const [email, roles] of people) {
      cli(env, ['admin', 'create-user', '--email', email, '--name', email.split('@')[0], ...roles, '--password-env', 'CHANGEGATE_PASSWORD']);
    }
    const audreyToken = cli(env, ['admin', 'token', 'audrey@audit.example']);
    const browser = await launch();
    undo.push(() => browser.close());
    let number;
    const state = async () => (await api(server.url, audreyToken, 'GET', `/api/v1/tenants/client-a/changes/${number}`)).json.state;
    const changeCount = async () => (await api(server.url, audreyToken, 'GET', '/api/v1/tenants/client-a/changes')).json.items.length;

    await t.test('an engineer raises a change from a template and sees the preview before submitting', async () => {
      const page = await signIn(browser, server.url, 'eve@msp.example');
      await page.goto(`${server.url}/t/client-a/changes`);
      await page.getByRole('link', { name: 'New change' }).click();
      await page.getByRole('link', { name: 'payments-upgrade' }).click();
      assert.equal(await page.getByLabel('Title', { exact: true }).inputValue(), 'Upgrade the payments API');
      assert.equal(await page.getByLabel('payments-api', { exact: true }).isChecked(), true);
      // A template opens as the standard change it models; this one goes further, so normal.
      assert.equal(await page.getByLabel('Type').inputValue(), 'standard');
      await page.getByLabel('Type').selectOption('normal');
      await page.getByLabel(/Artifacts/).fill('registry.example/payments@sha256:4f1c9a');
      for (const [question, answer] of [
        ['Does the change touch production?', 'yes'],
        ['Is a service outage expected?', 'yes'],
        ['Is the change untested in a non-production environment?', 'no'],
        ['Is there no tested backout plan?', 'no'],
      ]) {
        await page.getByLabel(question, { exact: true }).selectOption(answer);
      }
      await page.getByRole('button', { name: 'Preview' }).click();
      const preview = page.getByRole('region', { name: 'Preview' });
      await preview.waitFor();
      const text = await preview.innerText();
      assert.match(text, /high \(score/);
      assert.match(text, /msp-tech \(any\): tom <tom@msp\.example>/);
      assert.match(text, /client-a-business \(any\): carol <carol@client-a\.example>/);
      assert.match(text, /Earliest allowed slot/);
      await shot(page, db, 'new-change-preview');
      assert.equal(await changeCount(), 0, 'the preview raised nothing');
      await page.getByRole('button', { name: 'Submit for approval' }).click();
      await page.waitForURL(/\/t\/client-a\/changes\/CHG-\d+$/);
      number = page.url().split('/').pop();
      // The state in words, in the header.
      await page.locator('.meta .state').getByText('Awaiting approval', { exact: true }).waitFor();
      assert.equal(await state(), 'awaiting-approval');
    });

    await t.test('the client approver decides from the e-mail link; scanners decide nothing', async () => {
      const mail = await until('the e-mail to carol', () => sink.messages.find((m) => m.includes('To: carol@client-a.example')));
      const link = mail.match(/http:\/\/\S+\/approve\/\S+/)[0];
      const code = mail.match(/one-time code: (\S+)/)[1];
      // What a mail scanner does: HEAD, GET twice, and every link of the page.
      assert.equal((await fetch(link, { method: 'HEAD' })).status, 200);
      const html = await (await fetch(link)).text();
      await fetch(link);
      for (const [, href] of html.matchAll(/href="([^"]+)"/g)) {
        await fetch(new URL(href, link), { redirect: 'manual' });
      }
      assert.equal(await state(), 'awaiting-approval', 'opening the link decided nothing');

      const page = await (await browser.newContext()).newPage();
      await page.goto(link);
      await page.getByRole('heading', { name: new RegExp(number) }).waitFor();
      await shot(page, db, 'confirm');
      await kb(page, 'the approval link');
      await page.getByLabel('One-time code from the e-mail').fill(code);
      await page.getByLabel('Comment').fill('OK for the weekend');
      await page.getByRole('button', { name: 'Approve' }).click();
      await page.getByRole('heading', { name: /your decision on .* is recorded/ }).waitFor();
      await shot(page, db, 'confirm-done');
      // The link worked once; opened again it says who used it and links the change.
      const again = await page.goto(link);
      assert.equal(again.status(), 410);
      await page.getByRole('heading', { name: 'This link has been used' }).waitFor();
      await page.getByText(/carol approved CHG-\d+ revision 1 with this link on/).waitFor();
      await page.getByRole('link', { name: `See ${number} in the portal` }).waitFor();
      await shot(page, db, 'confirm-used');
    });

    await t.test('the CAB member approves in the agenda; the change page shows both approvals', async () => {
      const page = await signIn(browser, server.url, 'tom@msp.example');
      const waiting = page.getByRole('region', { name: 'Waiting for my decision' });
      await waiting.getByRole('link', { name: number }).waitFor();
      await shot(page, db, 'inbox');
      await page.goto(`${server.url}/t/client-a/boards/msp-tech`);
      await shot(page, db, 'agenda');
      await kb(page, 'the board agenda');
      await page.getByRole('button', { name: `Approve ${number}` }).click();
      await page.waitForURL(`${server.url}/t/client-a/boards/msp-tech`);
      assert.equal(await page.getByRole('button', { name: `Approve ${number}` }).count(), 0);
      assert.equal(await state(), 'approved');

      await page.goto(`${server.url}/t/client-a/changes/${number}`);
      const approvals = page.getByRole('region', { name: 'Approvals' });
      // People by name, with their channel.
      await approvals.getByRole('row', { name: /^carol approve email/ }).waitFor();
      await approvals.getByRole('row', { name: /^tom approve portal/ }).waitFor();
      await shot(page, db, 'change');
    });

    await t.test('one release for two clients: a step fails, the rollback is authorized and run from the page', async () => {
      // The engineer records the test evidence on the approved change (an
      // edit that keeps its approval) and raises client B's standard
      // change from its template, approved at submission: in the portal.
      const eve = await signIn(browser, server.url, 'eve@msp.example');
      await eve.goto(`${server.url}/t/client-a/changes/${number}`);
      await eve.getByRole('link', { name: `Edit ${number}` }).click();
      await kb(eve, 'the edit form');
      await eve.getByLabel(/^Test evidence/).fill('staging run green');
      await eve.getByRole('button', { name: 'Preview' }).click();
      await eve.getByText('Saving this edit keeps the approval').waitFor();
      await eve.getByRole('button', { name: 'Save changes' }).click();
      await eve.waitForURL(`${server.url}/t/client-a/changes/${number}`);
      await eve.locator('.meta .state').getByText('Approved', { exact: true }).waitFor();
      await eve.goto(`${server.url}/t/client-b/changes/new?template=vpn-rotate`);
      assert.equal(await eve.getByLabel('Type').inputValue(), 'standard');
      await eve.getByLabel('Title', { exact: true }).fill('Rotate the VPN keys');
      await eve.getByLabel('Test plan').fill('connect from the test client');
      await eve.getByLabel(/^Test evidence/).fill('test client connects');
      await eve.getByRole('button', { name: 'Submit for approval' }).click();
      await eve.waitForURL(/\/t\/client-b\/changes\/CHG-\d+$/);
      const theirs = eve.url().split('/').pop();
      await eve.locator('.meta .state').getByText('Approved', { exact: true }).waitFor();

      // Packaged in the portal: both approved changes, a slot from now, the runbook.
      const page = await signIn(browser, server.url, 'rita@msp.example');
      await page.goto(`${server.url}/releases`);
      await page.getByRole('link', { name: 'Package a release' }).click();
      await kb(page, 'packaging a release');
      await page.getByLabel('Name', { exact: true }).fill('Saturday night');
      await page.getByLabel(`${number} Upgrade the payments API`).check();
      await page.getByLabel(`${theirs} Rotate the VPN keys`).check();
      const utc = (ms) => new Date(ms).toISOString().slice(0, 16);
      await page.getByLabel('Slot start (UTC)').fill(utc(Date.now()));
      await page.getByLabel('Slot end (UTC)').fill(utc(Date.now() + 3600e3));
      const steps = [
        ['deploy', 'Upgrade payments-api', number],
        ['deploy', 'Rotate the VPN keys', theirs],
        ['validate', 'Smoke tests of both clients', ''],
        ['rollback', 'Restore payments-api 2.4.0', number],
      ];
      for (const [i, [kind, title, change]] of steps.entries()) {
        await page.getByLabel(`Step ${i + 1} kind`).selectOption(kind);
        await page.getByLabel(`Step ${i + 1} what`).fill(title);
        await page.getByLabel(`Step ${i + 1} owner (e-mail)`).fill('rita@msp.example');
        await page.getByLabel(`Step ${i + 1} change`).selectOption(change);
      }
      await page.getByRole('button', { name: 'Create the release' }).click();
      await page.waitForURL(/\/releases\/REL-\d+$/);
      const release = page.url().split('/').pop();
      // The fifth step, added on the release's page while it is planned.
      await page.getByLabel('New step kind').selectOption('rollback');
      await page.getByLabel('New step what').fill('Restore the previous VPN keys');
      await page.getByLabel('New step change').selectOption(theirs);
      await page.getByRole('button', { name: 'Add the step' }).click();
      await page.getByText('Restore the previous VPN keys').waitFor();
      await kb(page, 'a planned release');
      const rita = cli(env, ['admin', 'token', 'rita@msp.example']);
      for (const phase of ['plan', 'build-and-test', 'deploy']) {
        await page.getByRole('button', { name: `Authorize ${phase}` }).click();
        await page.getByText(`${phase} authorized by rita@msp.example`).waitFor();
      }
      // Client A's step goes well; client B's fails.
      await page.getByLabel('Evidence of step 1').fill('helm revision 12');
      await page.getByRole('button', { name: 'Record' }).first().click();
      await page.getByRole('cell', { name: 'helm revision 12' }).waitFor();
      await page.getByLabel('Evidence of step 2').fill('tunnel does not come up');
      await page.getByLabel('Status of step 2').selectOption('failed');
      await page.getByRole('button', { name: 'Record' }).first().click();
      await page.getByRole('cell', { name: 'tunnel does not come up' }).waitFor();
      // The failed step stands out, in words and colour.
      const failed = page.locator('tr.step-failed');
      assert.equal(await failed.count(), 1);
      assert.match(await failed.innerText(), /⚠ failed/);
      await kb(page, 'a release with a failed step');
      // Nothing more runs until a rollback is authorized, with a reason.
      await page.getByLabel('Why roll back').fill('VPN tunnel down after the rotation');
      await page.getByRole('button', { name: 'Authorize rollback' }).click();
      await page.getByRole('heading', { name: 'Rollback' }).waitFor();
      await page.getByText(/Authorized by rita@msp\.example at .*: VPN tunnel down after the rotation/).waitFor();
      for (const [step, evidence] of [['4', 'payments-api 2.4.0 restored'], ['5', 'previous keys back, tunnel up']]) {
        await page.getByLabel(`Evidence of step ${step}`).fill(evidence);
        await page.getByRole('button', { name: 'Record' }).first().click();
        await page.getByRole('cell', { name: evidence }).waitFor();
      }
      await page.getByRole('button', { name: 'Finish the release' }).click();
      await page.getByText('outcome rolled-back').waitFor();
      await shot(page, db, 'release');
      assert.equal(await state(), 'rolled-back');
      const b = await api(server.url, rita, 'GET', `/api/v1/tenants/client-b/changes/${theirs}`);
      assert.equal(b.json.state, 'rolled-back');

      // Client B's approver reads the release: its own part only.
      const bob = await signIn(browser, server.url, 'bob@client-b.example');
      await bob.goto(`${server.url}/releases/${release}`);
      await bob.getByRole('cell', { name: 'previous keys back, tunnel up' }).waitFor();
      await bob.getByText('outcome rolled-back').waitFor();
      for (const hidden of ['Upgrade payments-api', 'payments-api 2.4.0 restored', 'helm revision 12', 'client-a', number]) {
        assert.equal(await bob.getByText(hidden).count(), 0, hidden);
      }
      assert.equal(await bob.getByRole('button').filter({ hasText: /Authorize|Record|Finish|Close/ }).count(), 0);

      // The post-implementation reviews from each change's page, then the release closes.
      for (const [tenant, change] of [['client-a', number], ['client-b', theirs]]) {
        await page.goto(`${server.url}/t/${tenant}/changes/${change}`);
        assert.equal(await page.getByLabel('Outcome').inputValue(), 'rolled-back');
        await page.getByLabel('What happened').fill('the VPN rotation broke the tunnel; both clients rolled back within the window');
        await page.getByLabel('Lessons').fill('test the tunnel from the client side before the rotation');
        await page.getByRole('button', { name: 'Record the review and close' }).click();
        // The header says how it ended, in the warning colour, not a green "closed".
        const badge = page.locator('.meta .state');
        await badge.getByText('Closed — rolled back', { exact: true }).waitFor();
        assert.match(await badge.getAttribute('class'), /tone-warning/);
        // The release it ran in, linked; the slot it ran in.
        await page.getByRole('link', { name: new RegExp(`^${release} `) }).waitFor();
      }
      assert.equal(await state(), 'closed');
      await page.goto(`${server.url}/releases/${release}`);
      await page.getByRole('button', { name: 'Close (after every change\'s review)' }).click();
      await page.getByText(/State closed/).waitFor();

      await page.goto(`${server.url}/t/client-a/calendar?view=agenda`);
      await page.getByRole('link', { name: new RegExp(`${release} Saturday night`) }).first().waitFor();
      await shot(page, db, 'calendar');
      await page.goto(`${server.url}/t/client-a/kpis`);
      await page.getByRole('img', { name: 'KPI shares' }).waitFor();
      await shot(page, db, 'kpis');
    });

    await t.test('a client B user sees nothing of client A by guessing URLs', async () => {
      const page = await signIn(browser, server.url, 'bob@client-b.example');
      assert.equal(await page.getByText('client-a').count(), 0);
      for (const guess of [`/t/client-a/changes/${number}`, '/t/client-a/changes', '/t/client-a/changes/new', '/t/client-a/boards/msp-tech', '/t/client-a/evidence', '/t/client-a/settings', '/t/client-a/calendar', '/t/client-a/kpis']) {
        const res = await page.goto(server.url + guess);
        assert.equal(res.status(), 404, guess);
        assert.equal(await page.getByText('Upgrade the payments API').count(), 0, guess);
      }
    });

    await t.test('the auditor reads everything and has no write control; write routes refuse', async () => {
      const page = await signIn(browser, server.url, 'audrey@audit.example');
      await page.goto(`${server.url}/t/client-a/changes/${number}`);
      await page.getByRole('heading', { name: new RegExp(number) }).waitFor();
      for (const name of ['Approve', 'Reject']) {
        assert.equal(await page.getByRole('button', { name }).count(), 0, name);
      }
      await page.goto(`${server.url}/t/client-a/evidence`);
      await page.getByRole('cell', { name: `${number} Upgrade the payments API` }).waitFor();
      // The controls name the change among the records proving them.
      await page.getByRole('row', { name: new RegExp(`implemented by an approved individual.*${number}`, 'i') }).waitFor();
      await shot(page, db, 'evidence');
      const csrf = await page.locator('input[name="csrf"]').first().inputValue();
      const decide = await page.request.post(`${server.url}/t/client-a/changes/${number}/decide`, {
        form: { csrf, decision: 'reject', revision: '1' },
      });
      assert.equal(decide.status(), 403);
      // The same session against the API's write routes.
      for (const [method, route, data] of [
        ['POST', '/api/v1/tenants/client-a/changes', { type: 'normal', title: 'x', risk_answers: {} }],
        ['PUT', '/api/v1/tenants/client-a/policy', {}],
        ['POST', `/api/v1/tenants/client-a/changes/${number}/cancel`, { note: 'x' }],
      ]) {
        const res = await page.request.fetch(server.url + route, { method, data });
        assert.equal(res.status(), 403, `${method} ${route}`);
      }
    });

    await t.test('the engineer edits after a rejection and completes; the approver decides on a phone', async () => {
      const eve = await signIn(browser, server.url, 'eve@msp.example');
      await eve.goto(`${server.url}/t/client-a/changes/new`);
      await eve.getByLabel('Title', { exact: true }).fill('Rotate the payments API keys');
      await eve.getByLabel('payments-api', { exact: true }).check();
      for (const question of ['Does the change touch production?', 'Is a service outage expected?',
        'Is the change untested in a non-production environment?', 'Is there no tested backout plan?']) {
        await eve.getByLabel(question, { exact: true }).selectOption('no');
      }
      await eve.getByRole('button', { name: 'Submit for approval' }).click();
      await eve.waitForURL(/\/t\/client-a\/changes\/CHG-\d+$/);
      const mine = eve.url().split('/').pop();

      // The approver, on a phone: the page fits and the buttons fill the width.
      const tom = await signIn(browser, server.url, 'tom@msp.example');
      await tom.setViewportSize({ width: 390, height: 844 });
      await tom.goto(`${server.url}/t/client-a/changes/${mine}`);
      assert.ok(await tom.evaluate(() => document.documentElement.scrollWidth) <= 390);
      const reject = tom.getByRole('button', { name: 'Reject' });
      assert.ok((await reject.boundingBox()).width >= 140, 'a button one thumb hits');
      await tom.getByLabel('Comment', { exact: true }).fill('no test evidence');
      await reject.click();
      await tom.locator('.meta .state').getByText('Rejected', { exact: true }).waitFor();

      // Edited after the rejection and submitted again, from the change page.
      await eve.goto(`${server.url}/t/client-a/changes/${mine}`);
      await eve.getByRole('link', { name: `Edit ${mine}` }).click();
      await eve.getByLabel(/^Test evidence/).fill('key rotation rehearsed in staging');
      await eve.getByRole('button', { name: 'Save and submit for approval' }).click();
      await eve.waitForURL(`${server.url}/t/client-a/changes/${mine}`);
      await eve.locator('.meta .state').getByText('Awaiting approval', { exact: true }).waitFor();

      await tom.goto(`${server.url}/t/client-a/changes/${mine}`);
      await tom.getByRole('button', { name: 'Approve' }).click();
      await tom.locator('.meta .state').getByText('Approved', { exact: true }).waitFor();

      // By keyboard alone: Tab to the comment box, type, Tab to its button, Enter.
      await eve.goto(`${server.url}/t/client-a/changes/${mine}`);
      const box = eve.getByLabel(/^Add a comment/);
      for (let i = 0; i < 80 && !(await box.evaluate((el) => el === document.activeElement)); i++) {
        await eve.keyboard.press('Tab');
      }
      assert.ok(await box.evaluate((el) => el === document.activeElement), 'the comment box is reached by Tab');
      await eve.keyboard.type('@tom resubmitted with the staging evidence');
      await eve.keyboard.press('Tab');
      assert.equal(await eve.evaluate(() => document.activeElement.textContent), 'Comment');
      await eve.keyboard.press('Enter');
      await eve.getByText('@tom resubmitted with the staging evidence').waitFor();
      await until('the mention e-mail to tom', () =>
        sink.messages.find((m) => m.includes('To: tom@msp.example') && m.includes('mentioned you')));

      // The implementer starts, completes and reviews it from its page.
      const rita = await signIn(browser, server.url, 'rita@msp.example');
      await rita.goto(`${server.url}/t/client-a/changes/${mine}`);
      await kb(rita, 'an approved change, to start');
      await rita.getByRole('button', { name: `Start implementing ${mine}` }).click();
      await rita.locator('.meta .state').getByText('Being implemented', { exact: true }).waitFor();
      await kb(rita, 'a change being implemented, to complete or fail');
      await rita.getByLabel('What was done').fill('keys rotated, clients reconnected');
      await rita.getByLabel(/^Documentation updated/).fill('payments runbook: key rotation section');
      await rita.getByRole('button', { name: 'It is done: record the implementation' }).click();
      await rita.locator('.meta .state').getByText('Implemented', { exact: true }).waitFor();
      await kb(rita, 'an implemented change, to review');
      await rita.getByLabel('What happened').fill('rotated within ten minutes');
      await rita.getByRole('button', { name: 'Record the review and close' }).click();
      const badge = rita.locator('.meta .state');
      await badge.getByText('Closed — succeeded', { exact: true }).waitFor();
      assert.match(await badge.getAttribute('class'), /tone-good/);
      await shot(rita, db, 'change-closed');
    });

    await t.test('a client user accepts a tested change from the e-mail before it may start', async () => {
      const eve = await signIn(browser, server.url, 'eve@msp.example');
      await eve.goto(`${server.url}/t/client-a/changes/new`);
      await eve.getByLabel('Title', { exact: true }).fill('Add an index to the reporting database');
      await eve.getByLabel('reporting-db', { exact: true }).check();
      await eve.getByLabel(/^Test evidence/).fill('query plan checked on the staging copy');
      for (const question of ['Does the change touch production?', 'Is a service outage expected?',
        'Is the change untested in a non-production environment?', 'Is there no tested backout plan?']) {
        await eve.getByLabel(question, { exact: true }).selectOption('no');
      }
      await eve.getByRole('button', { name: 'Submit for approval' }).click();
      await eve.waitForURL(/\/t\/client-a\/changes\/CHG-\d+$/);
      const indexed = eve.url().split('/').pop();
      const tom = await signIn(browser, server.url, 'tom@msp.example');
      await tom.goto(`${server.url}/t/client-a/changes/${indexed}`);
      await kb(tom, 'a change awaiting approval');
      await tom.getByRole('button', { name: 'Approve' }).click();
      await tom.locator('.meta .state').getByText('Approved', { exact: true }).waitFor();

      // Approved, but not started before the client accepts it.
      const rita = await signIn(browser, server.url, 'rita@msp.example');
      await rita.goto(`${server.url}/t/client-a/changes/${indexed}`);
      await rita.locator('p.waiting').getByText(/awaits the client's acceptance of the tested change by carol/).waitFor();
      await rita.getByRole('button', { name: `Start implementing ${indexed}` }).click();
      assert.match(await rita.locator('[role=alert]').innerText(), /awaits the client's acceptance/);

      const mail = await until('the acceptance e-mail to carol', () =>
        sink.messages.find((m) => m.includes('To: carol@client-a.example') && m.includes('/accept/')));
      assert.match(mail, /Test evidence: query plan checked on the staging copy/);
      const link = mail.match(/http:\/\/\S+\/accept\/\S+/)[0];
      // A scanner opening it accepts nothing.
      assert.equal((await fetch(link)).status, 200);
      const carol = await (await browser.newContext()).newPage();
      await carol.setViewportSize({ width: 390, height: 844 });
      await carol.goto(link);
      await carol.getByText('query plan checked on the staging copy').waitFor();
      await shot(carol, db, 'accept');
      await kb(carol, 'the acceptance link');
      await carol.getByRole('button', { name: 'Accept the tested change' }).click();
      await carol.getByRole('heading', { name: `Thank you: your acceptance of ${indexed} is recorded` }).waitFor();

      await rita.goto(`${server.url}/t/client-a/changes/${indexed}`);
      await rita.getByText(/carol accepted revision 1 on .* \(email\)/).waitFor();
      await rita.getByRole('button', { name: `Start implementing ${indexed}` }).click();
      await rita.locator('.meta .state').getByText('Being implemented', { exact: true }).waitFor();
    });

    await t.test('the client admin adds a blackout through the form and the calendar shades every day of it', async () => {
      // Days 10 to 13 of next month, whatever month this runs in.
      const now = new Date();
      const first = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1));
      const day = (d) => `${first.getUTCFullYear()}-${String(first.getUTCMonth() + 1).padStart(2, '0')}-${String(d).padStart(2, '0')}`;
      const alice = await signIn(browser, server.url, 'alice@client-a.example');
      await alice.goto(`${server.url}/t/client-a/settings`);
      const blackouts = alice.getByRole('region', { name: 'Blackout dates' });
      await blackouts.getByLabel(/^Name \(lower case/).fill('audit-week');
      await blackouts.getByLabel(/^From \(/).fill(`${day(10)}T08:00`);
      await blackouts.getByLabel(/^Until \(/).fill(`${day(13)}T18:00`);
      await blackouts.getByRole('button', { name: 'Add blackout' }).click();
      await blackouts.getByRole('cell', { name: 'audit-week', exact: true }).waitFor();
      await alice.goto(`${server.url}/t/client-a/calendar?view=month&date=${day(10)}`);
      const shaded = alice.locator('td', { has: alice.locator('.kind.blackout.spans', { hasText: 'audit-week' }) });
      assert.equal(await shaded.count(), 4, 'each of the four days it covers, shaded');
      const after = alice.locator('td', { has: alice.locator('.day', { hasText: / 14$/ }) });
      assert.equal(await after.count(), 1, 'the day after is shown');
      assert.equal(await after.locator('.kind.blackout', { hasText: 'audit-week' }).count(), 0, 'not shaded');
      await shot(alice, db, 'calendar-blackout');
    });

    await t.test('a proposal is authorized by both boards and two changes run under it, each approved on its own', async () => {
      const eve = await signIn(browser, server.url, 'eve@msp.example');
      await eve.goto(`${server.url}/t/client-a/changes`);
      await eve.getByRole('link', { name: 'Change proposals' }).click();
      await eve.getByRole('link', { name: 'Propose a change' }).click();
      await eve.getByLabel('Title', { exact: true }).fill('Move payments to the new cluster');
      await eve.getByLabel(/^Business case/).fill('the old cluster leaves support in March');
      await eve.getByLabel(/^What would change/).fill('rebuild payments-api on the new cluster, then switch traffic');
      await eve.getByLabel('Budget').fill('20 person-days');
      await eve.getByLabel('payments-api', { exact: true }).check();
      await eve.getByRole('button', { name: 'Propose it for authorization' }).click();
      await eve.waitForURL(/\/t\/client-a\/proposals\/PRP-\d+$/);
      const prp = eve.url().split('/').pop();
      await eve.locator('.meta .state').getByText('awaiting authorization', { exact: true }).waitFor();
      assert.equal(await eve.getByRole('button', { name: `Authorize ${prp}` }).count(), 0, 'not by its requester');

      for (const email of ['tom@msp.example', 'carol@client-a.example']) {
        const approver = await signIn(browser, server.url, email);
        await approver.goto(`${server.url}/t/client-a/proposals/${prp}`);
        await kb(approver, 'a proposal to authorize');
        await approver.getByRole('button', { name: `Authorize ${prp}` }).click();
        await approver.getByRole('row', { name: new RegExp(`^${email.split('@')[0]} authorized portal`) }).waitFor();
      }
      await eve.reload();
      await eve.locator('.meta .state').getByText('authorized', { exact: true }).waitFor();

      const under = [];
      for (const title of ['Build payments on the new cluster', 'Switch payments traffic to the new cluster']) {
        await eve.goto(`${server.url}/t/client-a/proposals/${prp}`);
        await eve.getByRole('link', { name: `Raise a change under ${prp}` }).click();
        assert.equal(await eve.getByLabel('Raised under an authorized proposal').inputValue(), prp);
        await eve.getByLabel('Title', { exact: true }).fill(title);
        await eve.getByLabel('payments-api', { exact: true }).check();
        for (const question of ['Does the change touch production?', 'Is a service outage expected?',
          'Is the change untested in a non-production environment?', 'Is there no tested backout plan?']) {
          await eve.getByLabel(question, { exact: true }).selectOption('no');
        }
        await eve.getByRole('button', { name: 'Submit for approval' }).click();
        await eve.waitForURL(/\/t\/client-a\/changes\/CHG-\d+$/);
        // The proposal authorized the work, not this change: it awaits its own approval.
        await eve.locator('.meta .state').getByText('Awaiting approval', { exact: true }).waitFor();
        await eve.getByRole('link', { name: prp }).waitFor();
        under.push(eve.url().split('/').pop());
      }
      const tom = await signIn(browser, server.url, 'tom@msp.example');
      const rita = await signIn(browser, server.url, 'rita@msp.example');
      for (const change of under) {
        await tom.goto(`${server.url}/t/client-a/changes/${change}`);
        await tom.getByRole('button', { name: 'Approve' }).click();
        await tom.locator('.meta .state').getByText('Approved', { exact: true }).waitFor();
        await rita.goto(`${server.url}/t/client-a/changes/${change}`);
        await rita.getByRole('button', { name: `Start implementing ${change}` }).click();
        await rita.getByLabel(/^Documentation updated/).fill('payments runbook: new cluster');
        await rita.getByRole('button', { name: 'It is done: record the implementation' }).click();
        await rita.locator('.meta .state').getByText('Implemented', { exact: true }).waitFor();
      }
      await eve.goto(`${server.url}/t/client-a/proposals/${prp}`);
      const progress = eve.getByRole('region', { name: 'Changes raised under it' });
      for (const change of under) {
        await progress.getByRole('row', { name: new RegExp(`^${change} .* implemented$`) }).waitFor();
      }
      await shot(eve, db, 'proposal');
    });

    await t.test('every page of the page table holds at 390 px, has no serious or critical axe violation and every form control is reached by keyboard', async () => {
      const mail = sink.messages.find((m) => m.includes('To: carol@client-a.example') && m.includes('/approve/'));
      const token = mail.match(/\/approve\/(\S+)/)[1];
      // The acceptance page opens with an acceptance link, not an approval one.
      const accepting = sink.messages.find((m) => m.includes('To: carol@client-a.example') && m.includes('/accept/'));
      const acceptToken = accepting.match(/\/accept\/(\S+)/)[1];
      const release = (await api(server.url, audreyToken, 'GET', '/api/v1/releases')).json[0].number;
      const proposal = (await api(server.url, audreyToken, 'GET', '/api/v1/tenants/client-a/proposals')).json[0].number;
      const fill = (p) => p
        .replace('{tenant}', 'client-a')
        .replace('{number}', p.startsWith('/releases/') ? release : p.includes('/proposals/') ? proposal : number)
        .replace('{board}', 'msp-tech')
        .replace('{token}', p.startsWith('/accept/') ? acceptToken : token);
      const pages = pageTable().map(fill);
      for (const p of pages) assert.doesNotMatch(p, /\{/, `a placeholder the test does not fill: ${p}`);
      const admin = await signIn(browser, server.url, 'admin@msp.example');
      const figures = [];
      const failures = [];
      for (const p of pages) {
        const page = p === '/sign-in' ? await (await browser.newContext()).newPage() : admin;
        await page.setViewportSize({ width: 1366, height: 900 });
        const response = await page.goto(server.url + p);
        // A spent link answers 410 with who used it; a 404 would be the wrong page.
        if (response.status() === 404 || response.status() >= 500) failures.push(`${p}: ${response.status()}`);
        const keyboard = await keyboardProblems(page);
        for (const problem of keyboard.problems) failures.push(`${p}: ${problem}`);
        const violations = await axeViolations(page);
        await page.setViewportSize({ width: 390, height: 844 });
        const width = await page.evaluate(() => document.documentElement.scrollWidth);
        figures.push({ page: p, status: response.status(), axe: violations.length, width, formControls: keyboard.controls });
        if (violations.length) failures.push(`${p}: ${violations.join('; ')}`);
        if (width > 390) failures.push(`${p}: ${width} px wide on a 390 px phone`);
      }
      fs.mkdirSync(ARTIFACTS, { recursive: true });
      fs.writeFileSync(path.join(ARTIFACTS, `${db}-pages.json`), JSON.stringify(figures, null, 2));
      fs.writeFileSync(path.join(ARTIFACTS, `${db}-keyboard.json`), JSON.stringify(keyboardReached, null, 2));
      assert.ok(keyboardReached.length >= 12, `the journeys checked ${keyboardReached.length} forms by keyboard`);
      failures.push(...keyboardFailures);
      assert.deepEqual(failures, [], failures.join('\n'));
    });

    await t.test('screenshots of each role\'s main pages at 1366 and 390 px', async () => {
      const release = (await api(server.url, audreyToken, 'GET', '/api/v1/releases')).json[0].number;
      const roles = [
        ['engineer', 'eve@msp.example', ['/inbox', '/t/client-a/changes', '/t/client-a/changes/new', `/t/client-a/changes/${number}`]],
        ['approver', 'tom@msp.example', ['/inbox', '/t/client-a/boards/msp-tech', `/t/client-a/changes/${number}`]],
        ['client-approver', 'carol@client-a.example', ['/inbox', `/t/client-a/changes/${number}`, '/t/client-a/delegations']],
        ['release-manager', 'rita@msp.example', ['/releases', `/releases/${release}`, '/releases/new', '/calendar']],
        ['auditor', 'audrey@audit.example', ['/t/client-a/evidence', '/t/client-a/kpis', '/t/client-a/calendar']],
      ];
      for (const [role, email, pages] of roles) {
        const page = await signIn(browser, server.url, email);
        for (const p of pages) {
          await page.goto(server.url + p);
          const name = p.replace(/[^a-z0-9]+/gi, '-').replace(/^-|-$/g, '');
          for (const width of [1366, 390]) {
            await page.setViewportSize({ width, height: width === 390 ? 844 : 900 });
            await shot(page, db, `${role}-${name}-${width}`);
          }
        }
      }
    });
  });
}
