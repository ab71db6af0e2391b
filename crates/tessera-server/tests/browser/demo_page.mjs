// The demo page at `/`, clicked through in Debian's Chromium (headless, driven by
// playwright-core; no browser is ever downloaded): register, session login, where the cookie
// lives, CSRF refusals, token login in memory, decoded claims, refresh rotation, the retry
// grace, reuse detection revoking the family, logins listed and revoked, the token-cookie
// variant, logout everywhere, keyboard use, dark mode, and no CSP violation throughout.
//
//   node demo_page.mjs BASE_URL [ARTIFACTS_DIR]
//
// BASE_URL is a running `tessera` on a loopback address (over plain HTTP Chromium takes
// `Secure` cookies from localhost and 127.0.0.1 too, so `cookie.secure` may be either) with a
// `token.refresh_reuse_grace` long enough for the grace step (tests/api/browser.rs starts
// one with 5 minutes, once with each cookie setting). Screenshots go to ARTIFACTS_DIR (default
// target/browser-artifacts); `demo-page.png` there is the one the README shows. Exits 0 when
// every step passed, 1 on the first failure (with a screenshot `failure.png`), 2 on the
// overall time limit.

import assert from 'node:assert/strict';
import { mkdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

const CHROMIUM = '/usr/bin/chromium';
// Without the background-networking flags Chromium keeps trying to reach Google's services.
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
/** Bound on the whole run; the Rust test that starts this kills it a little later still. */
const OVERALL_TIMEOUT_MS = 150_000;
/** Bound on each wait for the page. */
const STEP_TIMEOUT_MS = 20_000;
const PASSWORD = 'correct-horse-battery';

const base = process.argv[2];
if (!base || !/^https?:\/\/[^/]+$/.test(base)) {
  console.error('usage: node demo_page.mjs BASE_URL [ARTIFACTS_DIR]  (BASE_URL like http://127.0.0.1:8080)');
  process.exit(64);
}
const repoRoot = resolve(fileURLToPath(new URL('../../../../', import.meta.url)));
const artifacts = resolve(process.argv[3] ?? join(repoRoot, 'target', 'browser-artifacts'));
mkdirSync(artifacts, { recursive: true });
rmSync(join(artifacts, 'failure.png'), { force: true });

const watchdog = setTimeout(() => {
  console.error(`browser tests: still running after ${OVERALL_TIMEOUT_MS / 1000} s, giving up`);
  process.exit(2);
}, OVERALL_TIMEOUT_MS);
watchdog.unref();

const username = `alice-${Date.now().toString(36)}`;
let browser;
let context;
let page;
let passed = 0;
/** Errors already shown by `step`. */
const reported = new WeakSet();
/** CSP violations and uncaught page errors, from every page of the context. */
const problems = [];

/** Runs one named step; the first failure ends the run. */
async function step(name, body) {
  try {
    await body();
    passed += 1;
    console.log(`ok ${passed} - ${name}`);
  } catch (error) {
    console.log(`not ok ${passed + 1} - ${name}`);
    reported.add(error);
    console.error(error?.stack ?? String(error));
    if (page) {
      const shown = await page.evaluate(() => ({
        result: document.getElementById('result')?.innerText,
        body: document.getElementById('result-body')?.innerText,
        log: document.getElementById('log')?.innerText,
      })).catch(() => null);
      if (shown) console.error(`the page shows:\n${JSON.stringify(shown, null, 2)}`);
      await page.screenshot({ path: join(artifacts, 'failure.png'), fullPage: true }).catch(() => {});
    }
    throw error;
  }
}

/** A browser context (a device: its own cookie jar) that reports CSP violations into its pages. */
async function newContext() {
  const created = await browser.newContext({
    viewport: { width: 1280, height: 900 },
    colorScheme: 'light',
    reducedMotion: 'reduce',
  });
  created.setDefaultTimeout(STEP_TIMEOUT_MS);
  // Violations are recorded in the page and read back at the end (init scripts run before
  // the page's own and are not subject to its CSP).
  await created.addInitScript(() => {
    window.__cspViolations = [];
    document.addEventListener('securitypolicyviolation', (event) => {
      window.__cspViolations.push(`${event.violatedDirective} blocked ${event.blockedURI || 'inline'}`);
    });
  });
  return created;
}

/** Watches a page for CSP violations (event and console) and uncaught errors. */
async function watch(target) {
  target.on('console', (message) => {
    if (/Content Security Policy|Refused to (load|apply|execute)/i.test(message.text())) {
      problems.push(`console: ${message.text()}`);
    }
  });
  target.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
}

/** Waits until the page has no action running. */
async function settled(on = page) {
  await on.waitForFunction(() => document.body.dataset.pending === '0', null, { timeout: STEP_TIMEOUT_MS });
}

/** A real mouse click on `selector`, then waits for what it started to finish. */
async function click(selector, on = page) {
  await on.click(selector);
  await settled(on);
}

/** The text of `selector`. */
async function text(selector, on = page) {
  return (await on.locator(selector).innerText()).trim();
}

/** The status line of the last response. */
async function resultLine(on = page) {
  return text('#result-line', on);
}

async function resultBody(on = page) {
  return JSON.parse(await text('#result-body', on));
}

/** Opens the page in `on` and waits for its scripts to be ready. */
async function open(on) {
  const response = await on.goto(`${base}/`);
  await on.waitForFunction(() => document.body.dataset.ready === 'true');
  return response;
}

/** Types the account into the form with real key presses. */
async function typeAccount(on) {
  for (const [field, value] of [['#username', username], ['#password', PASSWORD]]) {
    await on.click(field);
    await on.locator(field).clear();
    await on.locator(field).pressSequentially(value);
  }
}

/** The page's cookies as the browser holds them (for `path`), by name without the `__Host-`
 * or `__Secure-` prefix that secure cookies carry; each is checked to be `Secure` exactly
 * when it has the prefix. */
async function cookies(path = '/') {
  const list = await context.cookies(`${base}${path}`);
  return Object.fromEntries(list.map((c) => {
    const name = c.name.replace(/^__(Host|Secure)-/, '');
    assert.equal(c.secure, name !== c.name, `${c.name}: Secure goes with the prefix`);
    return [name, c];
  }));
}

/** What script in the page can read of the cookies. */
async function scriptCookies() {
  return page.evaluate(() => document.cookie);
}

/** The login list's rows as `{id, kind, current}`. */
async function loginRows() {
  return page.$$eval('#logins-body tr[data-id]', (rows) => rows.map((row) => ({
    id: row.dataset.id,
    kind: row.dataset.kind,
    current: row.querySelector('.badge') !== null,
  })));
}

/** A fetch from the page's own script without `X-CSRF-Token`: what a forged request carries. */
async function forgedFetch(method, path) {
  return page.evaluate(async ([m, p]) => {
    const response = await fetch(p, { method: m, credentials: 'same-origin' });
    const body = await response.json().catch(() => null);
    return { status: response.status, code: body?.code ?? null };
  }, [method, path]);
}

async function shot(name) {
  await page.screenshot({ path: join(artifacts, name), fullPage: true });
}

async function main() {
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // Playwright gives each launch a fresh, empty user data directory and removes it on close.
    args: CHROMIUM_ARGS,
    timeout: 30_000,
  });
  context = await newContext();
  page = await context.newPage();
  await watch(page);

  await step('the page loads under its CSP, with every asset', async () => {
    const response = await open(page);
    assert.equal(response.status(), 200);
    const csp = response.headers()['content-security-policy'] ?? '';
    assert.match(csp, /script-src 'self'/);
    assert.doesNotMatch(csp, /unsafe-inline/);
    assert.match(await page.title(), /Tessera/);
    assert.match(await text('#explain-title'), /Two ways to stay logged in/);
    // The modules ran: the initial session check is in the history.
    assert.match(await text('#log'), /GET \/v1\/session → 401/);
    assert.equal(await text('#session-record'), 'no session');
  });

  await step('every form control has a label and results are announced', async () => {
    const unlabelled = await page.$$eval('input', (inputs) =>
      inputs.filter((i) => !i.labels || i.labels.length === 0).map((i) => i.outerHTML));
    assert.deepEqual(unlabelled, []);
    assert.equal(await page.getAttribute('#result', 'aria-live'), 'polite');
    const nameless = await page.$$eval('button', (buttons) =>
      buttons.filter((b) => !(b.getAttribute('aria-label') || b.textContent.trim())).length);
    assert.equal(nameless, 0);
  });

  await step('register by typing and clicking', async () => {
    await typeAccount(page);
    await click('#register');
    assert.match(await resultLine(), /^POST \/v1\/users → 201/);
    const body = await resultBody();
    assert.equal(body.username, username);
    assert.match(await text('#result-note'), /Registered/);
  });

  await step('the keyboard alone reaches and submits the form, with a visible focus ring', async () => {
    await page.focus('#username');
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'password');
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'register');
    const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
    assert.equal(outline, 'solid', 'a focused button shows its focus ring');
    await page.keyboard.press('Enter');
    await settled();
    // The same username again: the server's 409, shown with its code.
    assert.match(await resultLine(), /^POST \/v1\/users → 409 Conflict · username_taken/);
  });

  await step('session login: the cookie is HttpOnly and script cannot read it', async () => {
    await click('#session-login');
    assert.match(await resultLine(), /^POST \/v1\/session → 200/);
    const body = await resultBody();
    const jar = await cookies();
    const cookie = jar.tessera_session;
    assert.ok(cookie, `the browser holds tessera_session: ${Object.keys(jar)}`);
    assert.equal(cookie.httpOnly, true);
    assert.equal(cookie.sameSite, 'Lax');
    assert.equal(cookie.path, '/');
    assert.notEqual(cookie.value, body.session_id, 'the cookie holds the secret id, not the public handle');
    const visible = await scriptCookies();
    assert.ok(!visible.includes('tessera_session'), `document.cookie: ${visible}`);
    assert.ok(!visible.includes(cookie.value));
    assert.equal(await text('#doc-cookie'), JSON.stringify(visible));
    assert.match(await text('#cookie-verdict'), /session cookie .* HttpOnly/);
    // The server-side record, with its deadlines counting down.
    const record = JSON.parse(await text('#session-record'));
    assert.equal(record.session_id, body.session_id);
    assert.equal(record.user.username, username);
    assert.equal(await text('#mem-session-csrf'), body.csrf_token);
    assert.match(await text('#session-idle-countdown'), /^\d+m \d\ds \(at /);
    assert.match(await text('#session-countdown'), /^\d+h \d\dm \d\ds \(at /);
    await shot('01-session.png');
  });

  await step('GET /v1/me and GET /v1/session with the cookie', async () => {
    await click('#me');
    assert.match(await resultLine(), /^GET \/v1\/me → 200/);
    const me = await resultBody();
    assert.equal(me.auth_method, 'session');
    assert.equal(me.username, username);
    await click('#session-get');
    assert.match(await resultLine(), /^GET \/v1\/session → 200/);
    assert.equal((await resultBody()).session_id, me.session_id);
  });

  await step('a request without X-CSRF-Token is refused with 403 csrf_failed', async () => {
    await click('#forge');
    assert.match(await resultLine(), /^DELETE \/v1\/sessions → 403 Forbidden · csrf_failed/);
    assert.match(await text('#result-note'), /Refused/);
    const forged = await forgedFetch('DELETE', '/v1/session');
    assert.deepEqual(forged, { status: 403, code: 'csrf_failed' });
    // Nothing was logged out.
    await click('#session-get');
    assert.match(await resultLine(), /^GET \/v1\/session → 200/);
  });

  let firstAccess;
  await step('token login kept in memory: the JWT decoded, counting down', async () => {
    await page.check('input[name="delivery"][value="memory"]');
    await click('#token-login');
    assert.match(await resultLine(), /^POST \/v1\/token → 200/);
    const grant = await resultBody();
    assert.equal(grant.token_type, 'Bearer');
    firstAccess = await text('#mem-access');
    assert.equal(firstAccess, grant.access_token);
    assert.ok(await page.isVisible('#jwt'));
    const header = JSON.parse(await text('#jwt-header'));
    assert.equal(header.typ, 'at+jwt');
    assert.equal(header.alg, 'EdDSA');
    assert.ok(header.kid);
    const claims = JSON.parse(await text('#jwt-claims'));
    assert.equal(claims.username, username);
    for (const claim of ['iss', 'sub', 'aud', 'exp', 'iat', 'nbf', 'jti', 'sid']) {
      assert.ok(claim in claims, `claim ${claim}`);
    }
    assert.match(await text('#token-countdown'), /^\d+m \d\ds \(at /);
    // Memory delivery sets no cookie.
    const jar = await cookies();
    assert.ok(!('tessera_access' in jar), Object.keys(jar).join());
    const chain = await page.$$eval('#refresh-chain li', (items) => items.map((i) => i.dataset.state));
    assert.deepEqual(chain, ['current']);
  });

  await step('GET /v1/me with the bearer token from memory', async () => {
    await page.check('input[name="credential"][value="bearer"]');
    await click('#me');
    assert.match(await resultLine(), /^GET \/v1\/me → 200/);
    const me = await resultBody();
    assert.equal(me.auth_method, 'token');
    const claims = JSON.parse(await text('#jwt-claims'));
    assert.equal(me.session_id, claims.sid);
  });

  await step('refresh rotates the refresh token and the access token', async () => {
    await click('#token-refresh');
    assert.match(await resultLine(), /^POST \/v1\/token\/refresh → 200/);
    const chain = await page.$$eval('#refresh-chain li', (items) => items.map((i) => i.dataset.state));
    assert.deepEqual(chain, ['spent', 'current']);
    const access = await text('#mem-access');
    assert.notEqual(access, firstAccess);
    assert.match(await text('#result-note'), /Rotated/);
  });

  await step('a spent refresh token replayed within the grace gets the same successor', async () => {
    const current = (await resultBody()).refresh_token;
    await click('#token-replay');
    assert.match(await resultLine(), /^POST \/v1\/token\/refresh → 200/);
    assert.equal((await resultBody()).refresh_token, current);
    assert.match(await text('#result-note'), /Retry grace/);
    const chain = await page.$$eval('#refresh-chain li', (items) => items.map((i) => i.dataset.state));
    assert.deepEqual(chain, ['spent', 'current']);
    await click('#token-refresh');
    const after = await page.$$eval('#refresh-chain li', (items) => items.map((i) => i.dataset.state));
    assert.deepEqual(after, ['spent', 'spent', 'current']);
  });

  await step('the login list shows the session and the token family', async () => {
    await click('#logins-list');
    assert.match(await resultLine(), /^GET \/v1\/sessions → 200/);
    const rows = await loginRows();
    const kinds = rows.map((r) => r.kind).sort();
    assert.deepEqual(kinds, ['session', 'token'], JSON.stringify(rows));
    const claims = JSON.parse(await text('#jwt-claims'));
    const current = rows.find((r) => r.current);
    assert.equal(current?.id, claims.sid, 'listed with the bearer token, its family is "this one"');
    // The README's picture: a session and a token side by side, the rotation visible.
    await page.evaluate(() => window.scrollTo(0, 0));
    await shot('demo-page.png');
  });

  await step('replaying a spent refresh token revokes the whole family', async () => {
    const access = await text('#mem-access');
    await click('#token-replay');
    assert.match(await resultLine(), /^POST \/v1\/token\/refresh → 401 Unauthorized · token_reused/);
    const family = await text('#family-status');
    assert.match(family, /revoked by reuse detection/);
    assert.match(family, /access token now gets 401/);
    assert.match(await text('#log'), /GET \/v1\/me → 401/);
    const chain = await page.$$eval('#refresh-chain li', (items) => items.map((i) => i.dataset.state));
    assert.deepEqual(chain, ['spent', 'spent', 'revoked']);
    // And independently of the page's own check: the access token it holds is dead.
    const status = await page.evaluate(async (token) => {
      const response = await fetch('/v1/me', { headers: { Authorization: `Bearer ${token}` }, credentials: 'omit' });
      return response.status;
    }, access);
    assert.equal(status, 401);
    await click('#me');
    assert.match(await resultLine(), /^GET \/v1\/me → 401/);
    await shot('02-reuse.png');
  });

  await step('a session on another device, listed and revoked from here', async () => {
    const mine = JSON.parse(await text('#session-record')).session_id;
    const device = await newContext();
    const phone = await device.newPage();
    await watch(phone);
    await open(phone);
    await typeAccount(phone);
    await click('#session-login', phone);
    assert.match(await resultLine(phone), /^POST \/v1\/session → 200/);
    const theirs = (await resultBody(phone)).session_id;
    assert.notEqual(theirs, mine);

    await page.check('input[name="credential"][value="cookie"]');
    await click('#logins-list');
    const rows = await loginRows();
    const sessions = rows.filter((r) => r.kind === 'session').map((r) => r.id).sort();
    assert.deepEqual(sessions, [mine, theirs].sort(), JSON.stringify(rows));
    assert.equal(rows.find((r) => r.current)?.id, mine);
    await click(`#logins-body button[data-revoke="${theirs}"]`);
    assert.match(await resultLine(), new RegExp(`^DELETE /v1/sessions/${theirs} → 204`));
    const after = await loginRows();
    assert.ok(!after.some((r) => r.id === theirs), JSON.stringify(after));
    assert.ok(after.some((r) => r.id === mine && r.current));
    await click('#me');
    assert.equal((await resultBody()).session_id, mine, 'this session still works');

    // The other device is logged out at once.
    await click('#session-get', phone);
    assert.match(await resultLine(phone), /^GET \/v1\/session → 401/);
    assert.equal(await text('#session-record', phone), 'no session');
    assert.deepEqual(await phone.evaluate(() => window.__cspViolations), []);
    await device.close();
  });

  await step('a reload keeps the cookie session and forgets the tokens in memory', async () => {
    const session = JSON.parse(await text('#session-record')).session_id;
    await page.reload();
    await page.waitForFunction(() => document.body.dataset.ready === 'true');
    await settled();
    assert.equal(JSON.parse(await text('#session-record')).session_id, session);
    assert.equal(await text('#mem-access'), 'none');
    await typeAccount(page);
  });

  await step('log out of the session: the record and the cookie are gone', async () => {
    await click('#session-logout');
    assert.match(await resultLine(), /^DELETE \/v1\/session → 204/);
    assert.ok(!('tessera_session' in (await cookies())));
    assert.equal(await text('#session-record'), 'no session');
    await click('#me');
    assert.match(await resultLine(), /^GET \/v1\/me → 401/);
  });

  await step('token login into HttpOnly cookies: script holds only the CSRF token', async () => {
    await page.check('input[name="delivery"][value="cookie"]');
    await click('#token-login');
    assert.match(await resultLine(), /^POST \/v1\/token\?delivery=cookie → 200/);
    const body = await resultBody();
    assert.ok(body.csrf_token && !('access_token' in body) && !('refresh_token' in body), JSON.stringify(body));
    const jar = await cookies();
    assert.equal(jar.tessera_access?.httpOnly, true);
    assert.equal(jar.tessera_access?.sameSite, 'Strict');
    const refresh = (await cookies('/v1/token/refresh')).tessera_refresh;
    assert.equal(refresh?.httpOnly, true);
    assert.equal(refresh?.path, '/v1/token');
    const visible = await scriptCookies();
    assert.ok(!/tessera_/.test(visible), `document.cookie: ${visible}`);
    assert.equal(await text('#mem-cookie-csrf'), body.csrf_token);
    assert.match(await text('#mem-access'), /HttpOnly cookie/);
    assert.match(await text('#cookie-verdict'), /token cookies .* HttpOnly/);
    assert.match(await text('#token-countdown'), /^\d+m \d\ds \(at /);
    await click('#me');
    assert.match(await resultLine(), /^GET \/v1\/me → 200/);
    assert.equal((await resultBody()).auth_method, 'token');
  });

  await step('the cookie variant refreshes with its CSRF token and refuses a forged request', async () => {
    const before = (await cookies()).tessera_access.value;
    await click('#token-refresh');
    assert.match(await resultLine(), /^POST \/v1\/token\/refresh → 200/);
    const afterRefresh = (await cookies()).tessera_access.value;
    assert.notEqual(afterRefresh, before, 'a new access token in the cookie');
    await click('#token-replay');
    assert.match(await text('#result-note'), /cannot replay a refresh token it cannot read/);
    await click('#forge');
    assert.match(await resultLine(), /^DELETE \/v1\/sessions → 403 Forbidden · csrf_failed/);
    const forged = await forgedFetch('POST', '/v1/token/refresh');
    assert.deepEqual(forged, { status: 403, code: 'csrf_failed' });
    await shot('03-token-cookie.png');
  });

  await step('log out everywhere ends every login of the user', async () => {
    // One more login elsewhere: tokens in memory, to see them die too.
    await page.check('input[name="delivery"][value="memory"]');
    await click('#token-login');
    assert.match(await resultLine(), /^POST \/v1\/token → 200/);
    await click('#logins-list');
    assert.ok((await loginRows()).length >= 2);
    await click('#logout-everywhere');
    assert.match(await resultLine(), /^DELETE \/v1\/sessions → 204/);
    const jar = await cookies();
    assert.ok(!('tessera_access' in jar) && !('tessera_session' in jar), Object.keys(jar).join());
    assert.match(await text('#family-status'), /Logged out everywhere/);
    await page.check('input[name="credential"][value="bearer"]');
    await click('#me');
    assert.match(await resultLine(), /^GET \/v1\/me → 401/);
    await page.check('input[name="credential"][value="cookie"]');
    await click('#logins-list');
    assert.match(await resultLine(), /^GET \/v1\/sessions → 401/);
  });

  await step('dark mode follows the system setting', async () => {
    const light = await page.evaluate(() => getComputedStyle(document.documentElement).backgroundColor);
    await page.emulateMedia({ colorScheme: 'dark' });
    const dark = await page.evaluate(() => getComputedStyle(document.documentElement).backgroundColor);
    assert.notEqual(dark, light);
    await shot('04-dark.png');
    await page.emulateMedia({ colorScheme: 'light' });
  });

  await step('no CSP violation and no script error on the page', async () => {
    const reported = await page.evaluate(() => window.__cspViolations);
    assert.deepEqual(reported, []);
    assert.deepEqual(problems, []);
  });

  await step('the violation detector works (an inline style is reported)', async () => {
    const probe = await context.newPage();
    const seen = [];
    probe.on('console', (message) => seen.push(message.text()));
    await open(probe);
    await probe.evaluate(() => {
      const div = document.createElement('div');
      div.setAttribute('style', 'color: red');
      document.body.append(div);
    });
    await probe.waitForFunction(() => window.__cspViolations.length > 0);
    assert.match((await probe.evaluate(() => window.__cspViolations))[0], /^style-src/);
    assert.ok(seen.some((m) => /Content Security Policy/.test(m)), seen.join('\n'));
    await probe.close();
  });
}

let code = 0;
try {
  await main();
  console.log(`browser tests: ${passed} passed, 0 failed; screenshots in ${artifacts}`);
} catch (error) {
  if (!(error instanceof Object) || !reported.has(error)) console.error(error?.stack ?? String(error));
  console.log(`browser tests: ${passed} passed, 1 failed; screenshots in ${artifacts}`);
  code = 1;
} finally {
  await browser?.close().catch(() => {});
}
process.exit(code);
