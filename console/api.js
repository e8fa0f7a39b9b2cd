// Calls to the HTTP API with the user's token. Errors keep the API's body ({error, message, field}); a 401 ends
// the session (the shell takes the user back to sign in). GET answers are kept briefly so switching the language
// redraws a page without asking the API again.

import { apiBase, currentSession } from "./auth.js";

const CACHE_MS = 30_000;
const POLL_MS = [500, 1000, 2000, 3000, 5000];
const POLL_LIMIT_MS = 120_000;
const cache = new Map();
let onUnauthorized = () => {};

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.code = (body && body.error) || null;
    this.field = (body && body.field) || null;
    this.errors = (body && body.errors) || [];
  }
}

export function whenUnauthorized(handler) {
  onUnauthorized = handler;
}

export function forget() {
  cache.clear();
}

function target(path, query) {
  const absolute = /^https?:\/\//.test(path); // a Location may be absolute
  const url = new URL(absolute ? path : apiBase() + path, window.location.origin);
  for (const [name, value] of Object.entries(query || {})) {
    if (value !== null && value !== undefined && value !== "") url.searchParams.set(name, value);
  }
  return url;
}

async function call(method, path, { query, body, signal } = {}) {
  const session = currentSession();
  if (!session) {
    onUnauthorized(null);
    throw new ApiError(401, { error: "unauthorized", message: "signed out" });
  }
  const headers = { Accept: "application/json", Authorization: `Bearer ${session.token}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(target(path, query), {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal,
  });
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = { error: "not_json", message: text.slice(0, 200) };
  }
  if (response.status === 401) {
    forget();
    onUnauthorized(data && data.message);
    throw new ApiError(401, data);
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return { status: response.status, data, location: response.headers.get("Location") };
}

/** GET a JSON answer (kept for a short while). */
export async function get(path, { query, signal, fresh = false } = {}) {
  const key = target(path, query).toString();
  const hit = cache.get(key);
  if (!fresh && hit && Date.now() - hit.at < CACHE_MS) return hit.data;
  const { data } = await call("GET", path, { query, signal });
  cache.set(key, { at: Date.now(), data });
  return data;
}

/** POST a JSON body; what the API kept may have changed, so nothing cached is trusted after it. */
export async function post(path, body, { query, signal } = {}) {
  forget();
  return (await call("POST", path, { query, body, signal })).data;
}

/** DELETE a resource (revoke, disable); what the API kept has changed, so nothing cached is trusted after it. */
export async function remove(path, { query, signal } = {}) {
  forget();
  return (await call("DELETE", path, { query, signal })).data;
}

function pause(ms, signal) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      reject(new DOMException("aborted", "AbortError"));
    });
  });
}

/** A report that may answer 202 while its query runs: poll its Location until it answers 200. */
export async function report(path, { query, signal, onWaiting } = {}) {
  const key = target(path, query).toString();
  const hit = cache.get(key);
  if (hit && Date.now() - hit.at < CACHE_MS) return hit.data;
  let answer = await call("GET", path, { query, signal });
  const started = Date.now();
  for (let attempt = 0; answer.status === 202; attempt += 1) {
    if (Date.now() - started > POLL_LIMIT_MS) throw new ApiError(504, { error: "timeout", message: "still running" });
    onWaiting?.(answer.data);
    await pause(POLL_MS[Math.min(attempt, POLL_MS.length - 1)], signal);
    const where = (answer.data && answer.data.location) || answer.location;
    answer = await call("GET", where, { signal });
  }
  cache.set(key, { at: Date.now(), data: answer.data });
  return answer.data;
}
