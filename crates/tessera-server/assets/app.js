// The demo page's behaviour: what the page holds (the state below), the buttons that change
// it through the public API, and the rendering of the three places state lives (the
// browser's cookie jar, this script's memory, the server).

import { call } from './api.js';
import { decode, parts } from './jwt.js';
import { $, clientName, el, pretty, setDeadline, short, startCountdowns, when } from './view.js';

// What this script holds. Tokens kept "in memory" live here and nowhere else: a reload
// forgets them (the HttpOnly cookies survive it, which is the point of the comparison).
const state = {
  /** The body of POST or GET /v1/session while the session is believed live. */
  session: null,
  /** Memory delivery: the current access token. */
  access: null,
  /** Memory delivery: the refresh tokens of the current family, oldest first (last = current). */
  chain: [],
  /** Why the memory family is dead (revoked, reused, logged out), or null. */
  familyDead: null,
  /** Cookie delivery: `{csrf_token, expiresAt, refreshExpiresAt}` from the last grant. */
  cookieToken: null,
  /** The login list as last fetched. */
  logins: null,
};

const usernameInput = $('username');
const passwordInput = $('password');

function account() {
  return { username: usernameInput.value.trim(), password: passwordInput.value };
}

function radio(name) {
  const checked = document.querySelector(`input[name="${name}"]:checked`);
  return checked ? checked.value : null;
}

/** The CSRF token of the cookie the server will look at: the session's, else the token cookie's. */
function cookieCsrf() {
  return state.session?.csrf_token ?? state.cookieToken?.csrf_token ?? null;
}

// --- the response panel ----------------------------------------------------------------------

function statusLine(result) {
  const { method, path } = result.request;
  const status = result.status === 0 ? 'no answer' : `${result.status} ${result.statusText || ''}`.trim();
  return `${method} ${path} → ${status}${result.code ? ` · ${result.code}` : ''}`;
}

function log(result) {
  const item = el('li');
  item.append(el('span', { cls: 'muted', text: `${new Date().toISOString().slice(11, 19)} ` }));
  item.append(el('span', { cls: result.ok ? 'status-ok' : 'status-bad', text: statusLine(result) }));
  const list = $('log');
  list.prepend(item);
  while (list.children.length > 50) list.lastElementChild.remove();
}

/** Shows `result` as the last response, with a sentence saying what it means. */
function show(result, note) {
  const box = $('result');
  box.classList.toggle('ok', result.ok);
  box.classList.toggle('bad', !result.ok);
  box.dataset.status = String(result.status);
  box.dataset.code = result.code ?? '';
  $('result-line').textContent = statusLine(result);
  const detail = !result.ok && result.detail ? ` (${result.detail})` : '';
  $('result-note').textContent = `${note ?? ''}${detail}`.trim();
  $('result-body').textContent = pretty(result.body);
}

/** A message without a request (the page refused to send something pointless). */
function tell(note) {
  const box = $('result');
  box.classList.remove('ok', 'bad');
  box.dataset.status = '';
  box.dataset.code = '';
  $('result-line').textContent = 'Nothing sent';
  $('result-note').textContent = note;
  $('result-body').textContent = '';
}

/** A request, logged in the history. */
async function send(method, path, options) {
  const result = await call(method, path, options);
  log(result);
  return result;
}

function retryNote(result) {
  return result.status === 429 ? `Too many attempts: retry in ${result.retryAfter ?? 'a few'} s.` : null;
}

// --- users -----------------------------------------------------------------------------------

async function register() {
  const { username, password } = account();
  if (!username || !password) return askForAccount();
  const result = await send('POST', '/v1/users', { json: { username, password } });
  const notes = {
    201: `Registered ${result.body?.username}. Now log in with a session or with a token.`,
    409: 'That username is taken: log in with it, or choose another.',
    403: 'Registration is closed on this server: an administrator creates users.',
    422: 'The server refused the username or password.',
  };
  show(result, notes[result.status] ?? retryNote(result));
}

function askForAccount() {
  tell('Enter a username and a password first.');
  (usernameInput.value.trim() ? passwordInput : usernameInput).focus();
}

// --- sessions --------------------------------------------------------------------------------

async function sessionLogin() {
  const { username, password } = account();
  if (!username || !password) return askForAccount();
  const result = await send('POST', '/v1/session', { json: { username, password } });
  if (result.ok) {
    state.session = result.body;
    show(result, 'The server stored a session record and set an HttpOnly cookie holding only a '
      + 'random id. The body has the public handle (session_id) and the CSRF token, never the '
      + "cookie's value.");
  } else {
    show(result, result.status === 401 ? 'Wrong username or password (one answer for both).' : retryNote(result));
  }
  render();
}

async function sessionGet({ quiet = false } = {}) {
  const result = await send('GET', '/v1/session');
  state.session = result.ok ? result.body : null;
  if (!quiet) {
    show(result, result.ok
      ? 'The browser sent its session cookie by itself; the server looked the record up.'
      : 'No live session: the browser has no session cookie, or it names no live session.');
  }
  render();
}

async function sessionLogout() {
  if (!state.session) {
    return tell('No session to log out of: log in with a session (or use “Show the session record” '
      + 'to pick up one this browser already holds).');
  }
  const result = await send('DELETE', '/v1/session', { csrf: state.session.csrf_token });
  if (result.ok || result.status === 401) state.session = null;
  show(result, result.ok
    ? 'The record is gone from the server, and the cookie was cleared (Max-Age=0): instant logout.'
    : null);
  render();
}

// --- tokens ----------------------------------------------------------------------------------

function memoryGrant(body) {
  state.access = body.access_token;
}

async function tokenLogin() {
  const { username, password } = account();
  if (!username || !password) return askForAccount();
  const delivery = radio('delivery');
  if (delivery === 'cookie') {
    const result = await send('POST', '/v1/token?delivery=cookie', { json: { username, password } });
    if (result.ok) {
      state.cookieToken = cookieGrant(result.body);
      show(result, 'The JWT and the refresh token went into HttpOnly cookies: the body carries only '
        + 'the CSRF token and the lifetimes. Script cannot read the tokens; the browser sends them.');
    } else {
      show(result, result.status === 401 ? 'Wrong username or password.' : retryNote(result));
    }
  } else {
    const result = await send('POST', '/v1/token', { json: { username, password }, cookies: false });
    if (result.ok) {
      memoryGrant(result.body);
      state.chain = [result.body.refresh_token];
      state.familyDead = null;
      show(result, 'A signed JWT and a refresh token, now held in this script only: a reload '
        + 'forgets them. Decoded below, under “This script’s memory”.');
    } else {
      show(result, result.status === 401 ? 'Wrong username or password.' : retryNote(result));
    }
  }
  render();
}

function cookieGrant(body) {
  const now = Date.now();
  return {
    csrf_token: body.csrf_token,
    expiresAt: now + body.expires_in * 1000,
    refreshExpiresAt: now + body.refresh_expires_in * 1000,
  };
}

async function tokenRefresh() {
  if (radio('delivery') === 'cookie') {
    if (!state.cookieToken) return tell('Log in with a token in cookies first.');
    const result = await send('POST', '/v1/token/refresh', { csrf: state.cookieToken.csrf_token });
    if (result.ok) {
      state.cookieToken = cookieGrant(result.body);
      show(result, 'Rotated inside the cookies: the browser sent the refresh cookie (it goes only to '
        + '/v1/token) with the CSRF header, and got new cookies back.');
    } else if (result.status === 401) {
      state.cookieToken = null;
      show(result, 'The refresh cookie no longer works; the server cleared both token cookies.');
    } else {
      show(result, retryNote(result));
    }
    return render();
  }
  const current = state.chain.at(-1);
  if (!current) return tell('Log in with a token (kept in memory) first.');
  const result = await send('POST', '/v1/token/refresh', { json: { refresh_token: current }, cookies: false });
  if (result.ok) {
    memoryGrant(result.body);
    if (result.body.refresh_token !== current) state.chain.push(result.body.refresh_token);
    show(result, 'Rotated: the refresh token just used is spent (crossed out below) and a new one is '
      + 'current; a fresh access token came with it.');
  } else {
    show(result, 'This family no longer refreshes.');
  }
  render();
}

async function tokenReplay() {
  if (radio('delivery') === 'cookie') {
    return tell('Script cannot replay a refresh token it cannot read: in HttpOnly cookies the '
      + "refresh token is out of script's reach (an injected script's too). Choose memory to try it.");
  }
  if (state.chain.length < 2) {
    return tell('No spent refresh token yet: log in with a token, then refresh (twice, to get past '
      + 'the retry grace).');
  }
  // Two rotations back when there is one: its successor has been used, so no grace applies.
  const index = state.chain.length >= 3 ? state.chain.length - 3 : state.chain.length - 2;
  const spent = state.chain[index];
  const current = state.chain.at(-1);
  const result = await send('POST', '/v1/token/refresh', { json: { refresh_token: spent }, cookies: false });
  if (result.ok) {
    memoryGrant(result.body);
    const same = result.body.refresh_token === current;
    show(result, `Retry grace: this spent token was used moments ago and its successor is still `
      + `unused, so the server took this for a client that lost the response and handed back `
      + `${same ? 'the same current refresh token' : 'a refresh token'} (not a logout). Refresh `
      + 'once more and replay again to see reuse detection.');
    return render();
  }
  if (result.code === 'token_reused') {
    show(result, 'Reuse detected: a spent refresh token came back, as it would from a thief. The '
      + 'server revoked the whole family. Checking the current tokens…');
    await checkFamilyDead('The family was revoked by reuse detection');
    const note = $('result-note');
    note.textContent = `${note.textContent} ${state.familyDead}`;
  } else {
    show(result, 'The server refused the replayed token.');
  }
  render();
}

/** Tries the current access and refresh tokens of a family that should be dead, and says so. */
async function checkFamilyDead(reason) {
  const checks = [];
  if (state.access) {
    const me = await send('GET', '/v1/me', { bearer: state.access, cookies: false });
    checks.push(`the current access token now gets ${me.status}${me.code ? ` ${me.code}` : ''}`);
  }
  const current = state.chain.at(-1);
  if (current) {
    const again = await send('POST', '/v1/token/refresh', { json: { refresh_token: current }, cookies: false });
    checks.push(`the current refresh token ${again.status}${again.code ? ` ${again.code}` : ''}`);
  }
  state.familyDead = `${reason}: ${checks.join('; ') || 'no tokens held'}.`;
}

async function tokenRevoke() {
  if (radio('delivery') === 'cookie') {
    if (!state.cookieToken) return tell('Log in with a token in cookies first.');
    const result = await send('POST', '/v1/token/revoke', { csrf: state.cookieToken.csrf_token });
    if (result.ok) state.cookieToken = null;
    show(result, result.ok ? 'The family behind the cookies is revoked and both cookies cleared.' : null);
    return render();
  }
  const current = state.chain.at(-1);
  if (!current) return tell('Log in with a token (kept in memory) first.');
  const result = await send('POST', '/v1/token/revoke', { json: { token: current }, cookies: false });
  if (result.ok) {
    show(result, 'Revoked (RFC 7009 answers 200 always). Checking the tokens…');
    await checkFamilyDead('Revoked');
    $('result-note').textContent = `Revoked (RFC 7009 answers 200 always). ${state.familyDead}`;
  } else {
    show(result, null);
  }
  render();
}

// --- calls as either credential -----------------------------------------------------------------

/** The options for a call as the chosen credential, or null (after saying why) if there is none. */
function asCredential(unsafe) {
  if (radio('credential') === 'bearer') {
    if (!state.access) {
      tell('No access token in memory: log in with a token kept in memory, or choose the cookies.');
      return null;
    }
    return { bearer: state.access, cookies: false };
  }
  return unsafe ? { csrf: cookieCsrf() } : {};
}

async function me() {
  const options = asCredential(false);
  if (!options) return;
  const result = await send('GET', '/v1/me', options);
  if (result.ok) {
    const how = result.body.auth_method === 'session'
      ? 'the session cookie: the server looked the session up'
      : 'an access token: the server checked its signature and claims';
    show(result, `Authenticated by ${how}. session_id is the public handle of this login.`);
  } else {
    show(result, result.status === 401 ? 'Not authenticated with this credential.' : null);
  }
}

async function listLogins() {
  const options = asCredential(false);
  if (!options) return;
  const result = await send('GET', '/v1/sessions', options);
  state.logins = result.ok ? result.body.sessions : null;
  show(result, result.ok
    ? `${state.logins.length} login(s): sessions and refresh-token families alike.`
    : 'Cannot list logins without a working credential.');
  renderLogins(result.ok ? null : 'Log in first, then list again.');
}

async function revokeLogin(id) {
  const options = asCredential(true);
  if (!options) return;
  const result = await send('DELETE', `/v1/sessions/${encodeURIComponent(id)}`, options);
  if (result.ok) {
    forgetLogin(id);
    show(result, 'That login is over, on the server, at once.');
    await refreshLoginsQuietly();
  } else {
    show(result, result.code === 'csrf_failed' ? 'The cookie needs its CSRF token; log in again.' : null);
  }
  render();
}

/** Drops what the page holds for the login `id` that was just ended. */
function forgetLogin(id) {
  if (state.session?.session_id === id) state.session = null;
  const claims = decode(state.access)?.claims;
  if (claims?.sid === id) {
    state.familyDead = 'Revoked from the login list';
  }
}

async function refreshLoginsQuietly() {
  const options = radio('credential') === 'bearer' && state.access && !state.familyDead
    ? { bearer: state.access, cookies: false }
    : {};
  const result = await send('GET', '/v1/sessions', options);
  state.logins = result.ok ? result.body.sessions : null;
  renderLogins(result.ok ? null : 'No working credential left to list with.');
}

async function logoutEverywhere() {
  const options = asCredential(true);
  if (!options) return;
  const result = await send('DELETE', '/v1/sessions', options);
  if (result.ok) {
    state.session = null;
    state.cookieToken = null;
    if (state.access || state.chain.length) {
      state.familyDead = 'Logged out everywhere: the tokens above no longer work';
    }
    state.logins = null;
    show(result, 'Every session and refresh-token family of this user is gone, on every device; '
      + "this browser's cookies were cleared too.");
    renderLogins('Logged out everywhere: nothing left to list.');
  } else {
    show(result, result.code === 'csrf_failed' ? 'A cookie credential needs its CSRF token.' : null);
  }
  render();
}

async function forge() {
  const result = await send('DELETE', '/v1/sessions');
  if (result.code === 'csrf_failed') {
    show(result, 'Refused. Another site can make the browser send its cookies, but it cannot read '
      + 'the CSRF token, so a cookie-authenticated unsafe request without X-CSRF-Token is rejected.');
  } else if (result.status === 401) {
    show(result, 'There is no cookie to forge with: log in with a session (or token cookies) first.');
  } else {
    show(result, result.ok ? 'The server accepted a request without its CSRF token: that is a bug.' : null);
  }
  if (result.ok) {
    state.session = null;
    state.cookieToken = null;
  }
  render();
}

// --- rendering -------------------------------------------------------------------------------

function render() {
  renderJar();
  renderMemory();
  renderServer();
}

function renderJar() {
  const visible = document.cookie;
  $('doc-cookie').textContent = JSON.stringify(visible);
  const verdict = $('cookie-verdict');
  const seen = /tessera_(session|access|refresh)/.test(visible);
  const held = [];
  if (state.session) held.push('a session cookie');
  if (state.cookieToken) held.push('token cookies');
  verdict.classList.toggle('ok', held.length > 0 && !seen);
  verdict.classList.toggle('bad', seen);
  if (seen) {
    verdict.textContent = 'A Tessera cookie is readable by script: it should be HttpOnly.';
  } else if (held.length) {
    verdict.textContent = `The browser holds ${held.join(' and ')} (the server answers to them), yet `
      + 'document.cookie shows none of them: HttpOnly keeps them out of reach of script.';
  } else {
    verdict.textContent = 'No Tessera cookie that this page knows of.';
  }
}

function renderAccessToken(target, token) {
  target.replaceChildren();
  const split = parts(token);
  if (!split) {
    target.textContent = token ?? 'none';
    return;
  }
  const classes = ['jwt-header', 'jwt-claims', 'jwt-signature'];
  split.forEach((part, i) => {
    if (i > 0) target.append('.');
    target.append(el('span', { cls: classes[i], text: part }));
  });
}

function renderMemory() {
  $('mem-session-csrf').textContent = state.session?.csrf_token ?? 'none';
  $('mem-cookie-csrf').textContent = state.cookieToken?.csrf_token ?? 'none';
  const access = $('mem-access');
  const decoded = decode(state.access);
  if (state.access) {
    renderAccessToken(access, state.access);
  } else if (state.cookieToken) {
    access.textContent = 'in an HttpOnly cookie: unreadable here';
  } else {
    access.textContent = 'none';
  }
  $('jwt').hidden = !decoded;
  $('jwt-header').textContent = decoded ? pretty(decoded.header) : '';
  $('jwt-claims').textContent = decoded ? pretty(decoded.claims) : '';
  let deadline = null;
  if (decoded && typeof decoded.claims.exp === 'number') deadline = decoded.claims.exp * 1000;
  else if (state.cookieToken) deadline = state.cookieToken.expiresAt;
  setDeadline($('token-countdown'), deadline);

  const chain = $('refresh-chain');
  chain.replaceChildren();
  state.chain.forEach((token, i) => {
    const current = i === state.chain.length - 1 && !state.familyDead;
    const item = el('li');
    item.append(el('code', { cls: current ? 'current' : 'spent', text: short(token, 14, 6) }));
    const label = current ? 'current' : i === state.chain.length - 1 ? 'revoked' : 'spent';
    item.append(el('span', { cls: 'label', text: label }));
    item.dataset.state = label;
    chain.append(item);
  });
  if (!state.chain.length) {
    const text = state.cookieToken ? 'in the HttpOnly refresh cookie (Path=/v1/token)' : 'none yet';
    chain.append(el('li', { cls: 'muted', text }));
  }
  const family = $('family-status');
  family.textContent = state.familyDead ?? '';
  family.classList.toggle('bad', Boolean(state.familyDead));
}

function renderServer() {
  $('session-record').textContent = state.session ? pretty(state.session) : 'no session';
  setDeadline($('session-idle-countdown'), state.session ? Date.parse(state.session.idle_expires_at) : null);
  setDeadline($('session-countdown'), state.session ? Date.parse(state.session.expires_at) : null);
}

function renderLogins(message) {
  const body = $('logins-body');
  body.replaceChildren();
  if (!state.logins || !state.logins.length) {
    const row = el('tr');
    row.append(el('td', { cls: 'muted', text: message ?? 'No logins.', attrs: { colspan: '7' } }));
    body.append(row);
    return;
  }
  for (const login of state.logins) {
    const row = el('tr');
    row.dataset.id = login.id;
    row.dataset.kind = login.kind ?? '';
    const kind = el('td');
    const tag = login.kind === 'token' ? 'tag tag-token' : 'tag tag-session';
    kind.append(el('span', { cls: tag, text: login.kind ?? 'session' }));
    if (login.current) kind.append(el('span', { cls: 'badge', text: 'this one' }));
    row.append(kind);
    const id = el('td');
    id.append(el('code', { text: short(login.id, 8, 6), attrs: { title: login.id } }));
    row.append(id);
    row.append(el('td', { text: when(login.created_at) }));
    row.append(el('td', { text: when(login.last_seen_at) }));
    row.append(el('td', { text: when(login.expires_at) }));
    row.append(el('td', {
      text: `${clientName(login.user_agent)} from ${login.ip ?? 'an unknown address'}`,
      attrs: { title: login.user_agent ?? '' },
    }));
    const actions = el('td');
    const button = el('button', {
      cls: 'small danger',
      text: 'Revoke',
      attrs: { type: 'button', 'data-revoke': login.id, 'aria-label': `Revoke ${login.kind ?? 'login'} ${short(login.id, 8, 6)}` },
    });
    actions.append(button);
    row.append(actions);
    body.append(row);
  }
}

// --- wiring ----------------------------------------------------------------------------------

// `body[data-pending]` counts the actions still running (the browser tests wait for 0).
let pending = 0;

async function track(action) {
  pending += 1;
  document.body.dataset.pending = String(pending);
  try {
    await action();
  } catch (error) {
    tell(`The page failed: ${error}`);
    throw error;
  } finally {
    pending -= 1;
    document.body.dataset.pending = String(pending);
  }
}

/** Runs `action` for a click, with the button marked busy and double clicks ignored. */
function wire(id, action) {
  const button = $(id);
  button.addEventListener('click', async () => {
    if (button.getAttribute('aria-busy') === 'true') return;
    button.setAttribute('aria-busy', 'true');
    try {
      await track(action);
    } finally {
      button.removeAttribute('aria-busy');
    }
  });
}

$('account-form').addEventListener('submit', (event) => {
  event.preventDefault();
  track(register);
});
wire('session-login', sessionLogin);
wire('session-get', () => sessionGet());
wire('session-logout', sessionLogout);
wire('token-login', tokenLogin);
wire('token-refresh', tokenRefresh);
wire('token-replay', tokenReplay);
wire('token-revoke', tokenRevoke);
wire('me', me);
wire('logins-list', listLogins);
wire('logout-everywhere', logoutEverywhere);
wire('forge', forge);
$('logins-body').addEventListener('click', (event) => {
  const button = event.target.closest('button[data-revoke]');
  if (button) track(() => revokeLogin(button.dataset.revoke));
});

startCountdowns();
render();
// A session this browser already holds (from before a reload) shows up at once.
track(() => sessionGet({ quiet: true })).finally(() => {
  document.body.dataset.ready = 'true';
});
