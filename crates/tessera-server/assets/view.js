// Small DOM helpers: text only (never HTML from a response), countdowns, short ids.

/** The element with this id (the page's markup is fixed, so a missing id is a bug). */
export function $(id) {
  const element = document.getElementById(id);
  if (!element) throw new Error(`#${id} is missing from the page`);
  return element;
}

/** A new element with a class and text content. */
export function el(tag, { cls, text, attrs } = {}) {
  const element = document.createElement(tag);
  if (cls) element.className = cls;
  if (text !== undefined) element.textContent = text;
  for (const [name, value] of Object.entries(attrs || {})) element.setAttribute(name, value);
  return element;
}

/** Pretty JSON (or the text itself). */
export function pretty(value) {
  if (value === null || value === undefined) return '';
  return typeof value === 'string' ? value : JSON.stringify(value, null, 2);
}

/** `1h 02m 03s`, `4m 09s`, `12s`, or `expired`. */
export function duration(ms) {
  if (ms <= 0) return 'expired';
  const total = Math.floor(ms / 1000);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const pad = (n) => String(n).padStart(2, '0');
  if (h > 0) return `${h}h ${pad(m)}m ${pad(s)}s`;
  if (m > 0) return `${m}m ${pad(s)}s`;
  return `${s}s`;
}

/** Sets (or clears, with null) the deadline a countdown element counts down to. */
export function setDeadline(element, deadlineMs) {
  if (deadlineMs === null || Number.isNaN(deadlineMs)) {
    delete element.dataset.deadline;
    element.textContent = '–';
  } else {
    element.dataset.deadline = String(deadlineMs);
    tick(element);
  }
}

function tick(element) {
  const deadline = Number(element.dataset.deadline);
  const left = deadline - Date.now();
  const at = new Date(deadline).toISOString().slice(11, 19);
  element.textContent = `${duration(left)} (at ${at} UTC)`;
}

/** Updates every countdown once a second. */
export function startCountdowns() {
  setInterval(() => {
    for (const element of document.querySelectorAll('[data-deadline]')) tick(element);
  }, 1000);
}

/** `abcdefgh…wxyz` for long opaque values. */
export function short(value, head = 10, tail = 6) {
  if (typeof value !== 'string' || value.length <= head + tail + 1) return value ?? '';
  return `${value.slice(0, head)}…${tail > 0 ? value.slice(-tail) : ''}`;
}

/** A time from a body, as `2026-11-27 10:00:00` (UTC). */
export function when(rfc3339) {
  const ms = Date.parse(rfc3339);
  return Number.isNaN(ms) ? String(rfc3339 ?? '') : new Date(ms).toISOString().slice(0, 19).replace('T', ' ');
}

/** `Firefox 140`, `HeadlessChrome 156`, …: the part of a User-Agent a person recognises. */
export function clientName(userAgent) {
  if (!userAgent) return 'unknown client';
  for (const [token, name] of [['Edg', 'Edge'], ['Firefox', 'Firefox'], ['HeadlessChrome', 'HeadlessChrome'],
    ['Chrome', 'Chrome'], ['Version', 'Safari'], ['curl', 'curl']]) {
    const found = userAgent.match(new RegExp(`\\b${token}/(\\d+)`));
    if (found) return `${name} ${found[1]}`;
  }
  return short(userAgent, 24, 0);
}
