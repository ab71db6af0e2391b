// Reading a JWS compact token without verifying it: the page shows what a token carries
// (anyone holding it can read this much; only the server can check the signature).

function base64urlToText(part) {
  const base64 = part.replace(/-/g, '+').replace(/_/g, '/');
  const padded = base64 + '='.repeat((4 - (base64.length % 4)) % 4);
  const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
  return new TextDecoder().decode(bytes);
}

/** The three dot-separated parts of a compact JWS, or null when it is not one. */
export function parts(token) {
  const split = typeof token === 'string' ? token.split('.') : [];
  return split.length === 3 ? split : null;
}

/** `{header, claims}` decoded from a compact JWS, or null when it cannot be read. */
export function decode(token) {
  const split = parts(token);
  if (!split) return null;
  try {
    return { header: JSON.parse(base64urlToText(split[0])), claims: JSON.parse(base64urlToText(split[1])) };
  } catch {
    return null;
  }
}
