// The page's one way to talk to the server: a fetch that never throws, always reports the
// status and the problem `code` (RFC 9457), and sends exactly the credentials asked for.

/**
 * Sends `method path` and reads the answer.
 *
 * Options: `json` (a body, sent as application/json), `bearer` (an access token for
 * `Authorization: Bearer`), `csrf` (the `X-CSRF-Token` header), `cookies` (false to send none
 * and ignore any `Set-Cookie`: a bearer call then proves the token alone is enough).
 */
export async function call(method, path, { json, bearer, csrf, cookies = true } = {}) {
  const headers = { Accept: 'application/json' };
  if (json !== undefined) headers['Content-Type'] = 'application/json';
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  if (csrf) headers['X-CSRF-Token'] = csrf;
  const request = { method, path, headers: Object.keys(headers).filter((h) => h !== 'Accept') };
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: json === undefined ? undefined : JSON.stringify(json),
      credentials: cookies ? 'same-origin' : 'omit',
      cache: 'no-store',
    });
  } catch (error) {
    return { request, status: 0, ok: false, body: null, code: 'network_error', detail: String(error) };
  }
  const text = await response.text();
  let body = null;
  if (text) {
    try {
      body = JSON.parse(text);
    } catch {
      body = text;
    }
  }
  const problem = body && typeof body === 'object' && typeof body.code === 'string' ? body : null;
  return {
    request,
    status: response.status,
    statusText: response.statusText,
    ok: response.ok,
    body,
    code: problem ? problem.code : null,
    detail: problem ? problem.detail : null,
    retryAfter: response.headers.get('Retry-After'),
  };
}
