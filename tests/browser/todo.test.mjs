// Browser test of the to-do app's HTML UI: a real todo-app on loopback with a throw-away SQLite
// database, driven through headless Chromium (Debian's /usr/bin/chromium) with playwright-core.
//
//   TODO_APP_BIN=build/release/app/todo-app node --test todo.test.mjs
//
// Env: TODO_APP_BIN (required) the todo-app binary; TODO_SCREENSHOT where the screenshot of the
// list goes (default: todo-ui.png in the temp dir); CHROMIUM (default /usr/bin/chromium).
// Each step starts from the list page and makes the items it needs, so a failing step does not
// hide what the next ones would find.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { chromium } from 'playwright-core';

const APP_BIN = process.env.TODO_APP_BIN;
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
];
const DESKTOP = { width: 900, height: 700 };
const PHONE = { width: 375, height: 667 };
const XSS = '<script>window.__xss=1</script><b>bold</b>';
// Payloads for the other contexts a description lands in (attributes, <textarea>, URLs, CSS).
const XSS_PAYLOADS = [
  '"><img src=x onerror="window.__xss=2">',
  "'><svg onload=window.__xss=3>",
  '</textarea><script>window.__xss=4</script>',
  '<a href="javascript:window.__xss=5">click</a>',
  '<iframe srcdoc="<script>parent.__xss=6</script>"></iframe>',
  '<style>header{display:none}</style>',
  '&lt;b&gt;already escaped&lt;/b&gt; &amp; &#39; &quot;',
];
/** Elements none of the payloads may create. */
const INJECTED = 'main img, main svg, main iframe, main style, main script, main a[href^="javascript"], main b';
const SQL_TEXTS = [
  "Robert'); DROP TABLE todos;--",
  "' OR '1'='1",
  '100% of _all_ \\ back\\slash',
  "{fn USER()} ? :name $1 $$ /* c */ -- c",
];

if (!APP_BIN) throw new Error('set TODO_APP_BIN to the todo-app binary (e.g. build/release/app/todo-app)');
if (!existsSync(APP_BIN)) throw new Error(`TODO_APP_BIN=${APP_BIN} does not exist; build todo-app first`);
if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: run scripts/install-deps chromium`);

const workDir = mkdtempSync(join(tmpdir(), 'todo-browser-'));
const screenshotPath = resolve(process.env.TODO_SCREENSHOT || join(workDir, 'todo-ui.png'));

// Whatever happens (a thrown hook, a hung step), never leave the app running.
let app = null;
let appLog = '';
let context = null;
let page = null;
let baseUrl = '';
const problems = []; // console errors, page errors and failed requests of the current step
const allowed = []; // patterns of console errors the current step expects
let failed = false;

process.on('exit', () => {
  if (app && app.exitCode === null && app.signalCode === null) app.kill('SIGKILL');
});
// The whole file must finish inside CTest's 120 s.
const guard = setTimeout(() => {
  console.error('browser test: still running after 105 s, giving up');
  if (app) app.kill('SIGKILL');
  process.exit(1);
}, 105_000);
guard.unref();

function freePort() {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolvePort(port));
    });
  });
}

async function startApp() {
  const port = await freePort();
  const db = join(workDir, 'todo.db');
  appLog = '';
  app = spawn(
    APP_BIN,
    [
      '--listen', `127.0.0.1:${port}`,
      '--log-format', 'text',
      '--db-connection-string', `Driver=SQLite3;Database=${db};`,
      '--threads', '2',
      '--drain-seconds', '0',
      '--admin-listen', 'off',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  app.stdout.on('data', (chunk) => { appLog += chunk; });
  app.stderr.on('data', (chunk) => { appLog += chunk; });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (app.exitCode !== null || app.signalCode !== null) {
      throw new Error(`todo-app exited (${app.exitCode ?? app.signalCode}) before it was healthy:\n${appLog}`);
    }
    try {
      const response = await fetch(`${url}/healthz`);
      if (response.ok) return url;
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  throw new Error(`todo-app did not answer /healthz within 10 s:\n${appLog}`);
}

async function stopApp() {
  if (!app || app.exitCode !== null || app.signalCode !== null) return;
  const exited = new Promise((done) => app.once('exit', done));
  app.kill('SIGTERM');
  const stopped = await Promise.race([exited.then(() => true), sleep(5_000).then(() => false)]);
  if (!stopped) {
    app.kill('SIGKILL');
    await exited;
  }
}

// ---- helpers ---------------------------------------------------------------------------------

/** Clicks something that submits a form or follows a link; returns the final page response. */
async function clickAndWait(locator) {
  const navigation = page.waitForNavigation({ waitUntil: 'load' });
  try {
    await locator.click();
  } catch (error) {
    navigation.catch(() => {}); // it fails too, later, when the browser closes
    throw error;
  }
  return navigation;
}

/** Asserts the status of a page load, saying what the page said when it is not the one expected. */
async function expectStatus(response, status, what) {
  if (response.status() === status) return;
  const said = await page.locator('h1, .banner, #form-error').allTextContents().catch(() => []);
  assert.fail(`${what}: HTTP ${response.status()} (expected ${status}) at ${page.url()}: ${said.join(' | ')}`);
}

async function openList() {
  await expectStatus(await page.goto(`${baseUrl}/`), 200, 'GET /');
}

/** The li.todo whose description is exactly `text`. */
function row(text) {
  return page.locator('li.todo').filter({
    has: page.locator('span.description').filter({ hasText: exactly(text) }),
  });
}

function exactly(text) {
  return new RegExp(`^${text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`);
}

/** The Edit or Delete link of an item: their accessible names carry the description. */
function actionLink(action, text) {
  return page.getByRole('link', { name: `${action}: ${text}`, exact: true });
}

async function descriptions() {
  return page.locator('li.todo span.description').evaluateAll((spans) => spans.map((s) => s.textContent));
}

/** Adds an item through the list's form (from the list page already shown, if it is). */
async function add(text) {
  if (new URL(page.url()).pathname !== '/') await openList();
  await page.locator('input#description').fill(text);
  const response = await clickAndWait(page.getByRole('button', { name: 'Add', exact: true }));
  await expectStatus(response, 200, `adding "${text}"`);
  assert.equal(new URL(page.url()).pathname, '/', 'after adding, the browser is on the list');
  assert.equal(await row(text).count(), 1, `"${text}" is listed once`);
}

async function isDone(text) {
  return row(text).evaluate((li) => li.classList.contains('done'));
}

/** Wraps a step: fails it if the page logged an error or a request failed while it ran. */
function step(name, fn) {
  it(name, async () => {
    problems.length = 0;
    allowed.length = 0;
    try {
      assert.ok(page, 'the browser is up');
      await fn();
      const unexpected = problems.filter((problem) => !allowed.some((pattern) => pattern.test(problem)));
      assert.deepEqual(unexpected, [], 'no console errors, page errors or failed requests');
    } catch (error) {
      failed = true;
      if (page) console.error(`  (failed on ${page.url()})`);
      throw error;
    }
  });
}

// ---- the steps -------------------------------------------------------------------------------

describe('to-do web UI in Chromium', { timeout: 90_000 }, () => {
  before(async () => {
    failed = true; // until the browser is up
    baseUrl = await startApp();
    context = await chromium.launchPersistentContext(join(workDir, 'chromium-profile'), {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: DESKTOP,
      timeout: 20_000,
    });
    page = context.pages()[0] ?? (await context.newPage());
    page.setDefaultTimeout(5_000);
    page.setDefaultNavigationTimeout(10_000);
    page.on('console', (message) => {
      if (message.type() !== 'error') return;
      const where = message.location()?.url;
      problems.push(`console error: ${message.text()}${where ? ` (${where})` : ''}`);
    });
    page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
    page.on('requestfailed', (request) => {
      problems.push(`request failed: ${request.method()} ${request.url()}: ${request.failure()?.errorText}`);
    });
    failed = false;
  });

  after(async () => {
    try {
      if (context) await context.close();
    } finally {
      await stopApp();
      // Keep the temp dir (database, profile) when something failed, to look at.
      if (failed) {
        console.error(`browser test failed: kept ${workDir}; todo-app log:\n${appLog}`);
      } else if (screenshotPath.startsWith(workDir + '/')) {
        rmSync(join(workDir, 'chromium-profile'), { recursive: true, force: true });
        rmSync(join(workDir, 'todo.db'), { force: true });
      } else {
        rmSync(workDir, { recursive: true, force: true });
      }
    }
  });

  step('a new list shows the empty state', async () => {
    await openList();
    assert.equal(await page.title(), 'To-do');
    assert.equal(await page.locator('p#empty').isVisible(), true, 'p#empty is shown');
    assert.match(await page.locator('p#empty').textContent(), /Nothing to do yet/);
    assert.equal(await page.locator('li.todo').count(), 0, 'no items');
    // The stylesheet loaded (CSP style-src 'self' lets it through): the header is blue.
    const headerColor = await page.locator('header').evaluate((h) => getComputedStyle(h).backgroundColor);
    assert.equal(headerColor, 'rgb(11, 92, 173)', 'app.css is applied');
  });

  step('adds an item', async () => {
    await add('Buy milk');
    assert.equal(await page.locator('p#empty').count(), 0, 'the empty state is gone');
    assert.equal(await isDone('Buy milk'), false, 'a new item is not done');
    assert.match(await page.locator('p.summary').textContent(), /1 open, 0 done/);
    assert.equal(await page.locator('input#description').inputValue(), '', 'the add field is cleared');
  });

  step('edits an item: new text and done', async () => {
    await add('Wash teh car');
    const response = await clickAndWait(actionLink('Edit', 'Wash teh car'));
    await expectStatus(response, 200, 'opening the edit page');
    assert.match(new URL(page.url()).pathname, /^\/todos\/\d+\/edit$/);
    assert.equal(await page.locator('h1').textContent(), 'Edit item');
    const textarea = page.locator('textarea#description');
    assert.equal(await textarea.inputValue(), 'Wash teh car', 'the form shows the current text');
    const done = page.locator('input[type=checkbox][name=done]');
    assert.equal(await done.isChecked(), false);
    await textarea.fill('Wash the car');
    await done.check();
    const saved = await clickAndWait(page.getByRole('button', { name: 'Save', exact: true }));
    await expectStatus(saved, 200, 'saving the edit');
    assert.equal(new URL(page.url()).pathname, '/', 'Save goes back to the list');
    assert.equal(await row('Wash teh car').count(), 0, 'the old text is gone');
    assert.equal(await row('Wash the car').count(), 1, 'the new text is listed');
    assert.equal(await isDone('Wash the car'), true, 'the item is done');
    assert.equal(
      await page.getByRole('button', { name: 'Mark as not done: Wash the car', exact: true }).count(), 1,
      'a done item offers "Mark as not done"',
    );
    // And back: the edit page shows it checked; unchecking makes it open again.
    await clickAndWait(actionLink('Edit', 'Wash the car'));
    assert.equal(await done.isChecked(), true, 'the edit page shows the item as done');
    await done.uncheck();
    await clickAndWait(page.getByRole('button', { name: 'Save', exact: true }));
    assert.equal(await isDone('Wash the car'), false, 'unchecked on the edit page: open again');
  });

  step('toggles done and not done from the list', async () => {
    await add('Pay the electricity bill');
    await clickAndWait(page.getByRole('button', { name: 'Mark as done: Pay the electricity bill', exact: true }));
    assert.equal(new URL(page.url()).pathname, '/');
    assert.equal(await isDone('Pay the electricity bill'), true, 'marked as done');
    const line = await row('Pay the electricity bill').locator('span.description')
      .evaluate((s) => getComputedStyle(s).textDecorationLine);
    assert.equal(line, 'line-through', 'a done item is struck through');
    await clickAndWait(page.getByRole('button', { name: 'Mark as not done: Pay the electricity bill', exact: true }));
    assert.equal(await isDone('Pay the electricity bill'), false, 'marked as not done again');
    assert.equal(
      await page.getByRole('button', { name: 'Mark as done: Pay the electricity bill', exact: true }).count(), 1,
    );
  });

  step('shows markup in a description as literal text', async () => {
    await add(XSS);
    const span = row(XSS).locator('span.description');
    assert.equal(await span.textContent(), XSS, 'the text is shown as typed');
    assert.equal(await span.locator('b').count(), 0, 'no <b> element was made');
    assert.equal(await page.locator('main script, li.todo script').count(), 0, 'no <script> element was made');
    assert.equal(await page.evaluate(() => typeof window.__xss), 'undefined', 'the script did not run');
    // The same holds on the edit and delete pages.
    await clickAndWait(actionLink('Edit', XSS));
    assert.equal(await page.locator('textarea#description').inputValue(), XSS);
    assert.equal(await page.evaluate(() => typeof window.__xss), 'undefined');
    await openList();
    await clickAndWait(actionLink('Delete', XSS));
    assert.equal(await page.locator('blockquote.description').textContent(), XSS);
    assert.equal(await page.locator('blockquote.description b').count(), 0);
    assert.equal(await page.evaluate(() => typeof window.__xss), 'undefined');
  });

  step('shows XSS payloads as text in every context: text, attributes, textarea', async () => {
    // Each one aims at another context of the pages: element content, the aria-label attributes
    // of the row's buttons and links, the edit page's <textarea>, the add field's value. (Stored
    // through the API, which is quicker; the form's way in is the step above.)
    for (const payload of XSS_PAYLOADS) {
      const response = await fetch(`${baseUrl}/api/todos`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ description: payload }),
      });
      assert.equal(response.status, 201, `POST /api/todos ${payload}`);
    }
    await openList();
    for (const payload of XSS_PAYLOADS) {
      assert.equal(await row(payload).locator('span.description').textContent(), payload, 'shown as typed');
      // The accessible names are built from the description in attributes: intact means escaped.
      assert.equal(await actionLink('Edit', payload).count(), 1, `Edit link of ${payload}`);
      assert.equal(await actionLink('Delete', payload).count(), 1, `Delete link of ${payload}`);
    }
    // The CSP (default-src 'none') would stop an injected script anyway: the element count is what
    // shows the escaping works on its own.
    assert.equal(await page.locator(INJECTED).count(), 0, 'no element was injected into the list');
    assert.equal(await page.evaluate(() => typeof window.__xss), 'undefined', 'no script ran');
    assert.equal(await page.locator('header').isVisible(), true, 'no injected style hid the page');

    const textareaBreaker = XSS_PAYLOADS.find((p) => p.startsWith('</textarea>'));
    await clickAndWait(actionLink('Edit', textareaBreaker));
    assert.equal(await page.locator('textarea#description').inputValue(), textareaBreaker);
    assert.equal(await page.locator('form.edit button').count(), 1, 'the form is whole');
    assert.equal(await page.locator(INJECTED).count(), 0);
    assert.equal(await page.evaluate(() => typeof window.__xss), 'undefined');

    // A refused draft comes back in the add field's value attribute.
    allowed.push(/^console error: Failed to load resource: .*status of 400 \(Bad Request\)/);
    await openList();
    const field = page.locator('input#description');
    await field.evaluate((input) => input.removeAttribute('maxlength'));
    const draft = XSS_PAYLOADS[0] + 'x'.repeat(4001);
    await field.fill(draft);
    const response = await clickAndWait(page.getByRole('button', { name: 'Add', exact: true }));
    await expectStatus(response, 400, 'an over-long description is a 400');
    assert.equal(await page.locator('input#description').inputValue(), draft, 'the draft is kept as typed');
    assert.equal(await page.locator(INJECTED).count(), 0);
    assert.equal(await page.evaluate(() => typeof window.__xss), 'undefined');
  });

  step('stores SQL metacharacters verbatim', async () => {
    for (const text of SQL_TEXTS) await add(text);
    const shown = await descriptions();
    for (const text of SQL_TEXTS) assert.ok(shown.includes(text), `${text} is listed as typed`);
    assert.ok(shown.includes('Buy milk'), 'the items added before are still there');
    const stored = (await (await fetch(`${baseUrl}/api/todos`)).json()).map((item) => item.description);
    for (const text of SQL_TEXTS) assert.ok(stored.includes(text), `${text} is stored as typed`);
  });

  step('refuses a form whose CSRF cookie is gone, and works again after a reload', async () => {
    allowed.push(/^console error: Failed to load resource: .*status of 403 \(Forbidden\)/);
    await openList();
    const before = await descriptions();
    await context.clearCookies();
    await page.locator('input#description').fill('Planted without a cookie');
    const response = await clickAndWait(page.getByRole('button', { name: 'Add', exact: true }));
    await expectStatus(response, 403, 'a form without its CSRF cookie');
    assert.equal(await page.locator('h1').textContent(), 'Form expired');
    await openList();
    assert.deepEqual(await descriptions(), before, 'nothing was added');
    await add('Added after a reload');
  });

  step('fits a phone screen (375x667) without scrolling sideways', async () => {
    await add('Pick up https://example.org/a/very/long/address/without/any/spaces/in/it/at/all?x=1234567890');
    await add('A long line: ' + 'Remember to bring the spare key back to the neighbours '.repeat(3).trim());
    await page.setViewportSize(PHONE);
    try {
      await openList();
      const width = await page.evaluate(() => document.scrollingElement.scrollWidth);
      assert.ok(width <= PHONE.width, `scrollWidth ${width} <= ${PHONE.width}`);
      // Every row, its buttons and links are inside the screen.
      const outside = await page.locator('li.todo, li.todo a, li.todo button, input#description, form.add button')
        .evaluateAll((elements, limit) => elements
          .filter((e) => e.getBoundingClientRect().right > limit + 0.5)
          .map((e) => e.outerHTML.slice(0, 80)), PHONE.width);
      assert.deepEqual(outside, [], 'nothing sticks out on the right');
    } finally {
      await page.setViewportSize(DESKTOP);
    }
  });

  step('deletes an item after confirming; Cancel keeps it', async () => {
    await add('Cancel the gym membership');
    await clickAndWait(actionLink('Delete', 'Cancel the gym membership'));
    assert.match(new URL(page.url()).pathname, /^\/todos\/\d+\/delete$/);
    assert.equal(await page.locator('h1').textContent(), 'Delete this item?');
    assert.equal(await page.locator('blockquote.description').textContent(), 'Cancel the gym membership');
    await clickAndWait(page.getByRole('link', { name: 'Cancel', exact: true }));
    assert.equal(new URL(page.url()).pathname, '/', 'Cancel goes back to the list');
    assert.equal(await row('Cancel the gym membership').count(), 1, 'Cancel keeps the item');

    await clickAndWait(actionLink('Delete', 'Cancel the gym membership'));
    const response = await clickAndWait(page.getByRole('button', { name: 'Delete', exact: true }));
    await expectStatus(response, 200, 'deleting after confirming');
    assert.equal(new URL(page.url()).pathname, '/', 'Delete goes back to the list');
    assert.equal(await row('Cancel the gym membership').count(), 0, 'the item is gone');
    assert.ok((await descriptions()).includes('Buy milk'), 'the other items are still there');
  });

  step('refuses an empty or blank description with a message', async () => {
    // Chromium logs every 4xx page it loads as an error: these three are the point of this step.
    allowed.push(/^console error: Failed to load resource: .*status of 400 \(Bad Request\)/);
    await openList();
    const before = await descriptions();
    // Empty: the browser's `required` blocks it, so take that away to reach the server's check.
    await openList();
    await page.locator('input#description').evaluate((input) => input.removeAttribute('required'));
    await page.locator('input#description').fill('');
    let response = await clickAndWait(page.getByRole('button', { name: 'Add', exact: true }));
    await expectStatus(response, 400, 'an empty description is a 400');
    assert.equal(await page.locator('p#form-error').textContent(), 'description must not be empty');
    assert.deepEqual(await descriptions(), before, 'nothing was added');

    // Whitespace only passes `required` but not the server.
    await openList();
    await page.locator('input#description').fill('   \t  ');
    response = await clickAndWait(page.getByRole('button', { name: 'Add', exact: true }));
    await expectStatus(response, 400, 'a blank description is a 400');
    assert.equal(await page.locator('p#form-error').isVisible(), true, 'the error is shown');
    assert.equal(await page.locator('p#form-error').textContent(), 'description must not be empty');
    assert.deepEqual(await descriptions(), before, 'nothing was added');
    // The error page is a working list: adding from it works.
    await page.locator('input#description').fill('Water the plants');
    await clickAndWait(page.getByRole('button', { name: 'Add', exact: true }));
    assert.equal(await page.locator('p#form-error').count(), 0, 'the error is gone');
    assert.equal(await row('Water the plants').count(), 1);

    // The edit page checks too.
    await clickAndWait(actionLink('Edit', 'Water the plants'));
    await page.locator('textarea#description').fill('  \n ');
    response = await clickAndWait(page.getByRole('button', { name: 'Save', exact: true }));
    await expectStatus(response, 400, 'saving a blank description is a 400');
    assert.equal(await page.locator('p#form-error').textContent(), 'description must not be empty');
    await openList();
    assert.equal(await row('Water the plants').count(), 1, 'the item kept its text');
  });

  step(`saves a screenshot of a list with a few items`, async () => {
    // Start from an empty list (deleting through the UI is tested above; the JSON API is quicker),
    // then make a realistic one.
    const items = await (await fetch(`${baseUrl}/api/todos`)).json();
    for (const { id } of items) {
      const response = await fetch(`${baseUrl}/api/todos/${id}`, { method: 'DELETE' });
      assert.equal(response.status, 204, `DELETE /api/todos/${id}`);
    }
    await openList();
    assert.equal(await page.locator('p#empty').isVisible(), true, 'every item was deleted');
    for (const text of [
      'Renew the car insurance before 15 March',
      'Book a dentist appointment for Sam',
      'Buy milk, eggs and bread',
      'Send the quarterly report to Dana',
    ]) {
      await add(text);
    }
    await clickAndWait(page.getByRole('button', { name: 'Mark as done: Book a dentist appointment for Sam', exact: true }));
    assert.match(await page.locator('p.summary').textContent(), /3 open, 1 done/);
    await page.setViewportSize({ width: DESKTOP.width, height: 400 }); // the page's own height
    try {
      await page.screenshot({ path: screenshotPath, fullPage: true });
    } finally {
      await page.setViewportSize(DESKTOP);
    }
    assert.ok(existsSync(screenshotPath), 'the screenshot was written');
    console.log(`screenshot of the list: ${screenshotPath}`);
  });
});
