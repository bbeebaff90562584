// The officer API client. The session lives in the HttpOnly hg_session cookie (script cannot
// read it); the CSRF token from the login answer is kept in this module's memory only and sent
// as X-CSRF-Token on every state-changing call. Nothing is written to browser storage.

let csrfToken = null;
let onSessionLost = () => {};

export class ApiError extends Error {
  constructor(status, code, message, fields = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.fields = fields;
  }
}

export function setCsrfToken(token) {
  csrfToken = token;
}

/** Called with the error when an authenticated call answers 401 (session ended or expired). */
export function whenSessionLost(handler) {
  onSessionLost = handler;
}

const SAFE = new Set(['GET', 'HEAD']);

export async function api(method, path, body, { quietUnauthenticated = false } = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (!SAFE.has(method) && csrfToken) headers['X-CSRF-Token'] = csrfToken;
  let resp;
  try {
    resp = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      cache: 'no-store',
      redirect: 'error',
    });
  } catch {
    throw new ApiError(0, 'E_NETWORK', 'The node did not answer. Check your connection; nothing was lost on the server.');
  }
  if (resp.status === 204) return null;
  const isJson = (resp.headers.get('Content-Type') ?? '').startsWith('application/json');
  const data = isJson ? await resp.json().catch(() => null) : null;
  if (resp.ok) return data;
  const error = data?.error ?? {};
  const err = new ApiError(resp.status, error.code ?? 'E_HTTP', error.message ?? `HTTP ${resp.status}`, error.fields ?? {});
  if (resp.status === 401 && !quietUnauthenticated && path !== '/v1/session') onSessionLost(err);
  throw err;
}

/** One sentence for the officer, from any error. */
export function explain(err) {
  if (!(err instanceof ApiError)) return `Unexpected problem: ${err?.message ?? err}`;
  if (err.status === 403) return `Not allowed: ${err.message}`;
  if (err.status === 429) return `Too many attempts: ${err.message}`;
  return err.message;
}
