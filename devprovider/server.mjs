// Development OpenID Connect provider for oauth_vault_mw's integration tests
// and offline demo. Built on oidc-provider (v9). NOT for production use:
// everything (keys, sessions, tokens) lives in memory and any non-empty
// login name is accepted without a password.
//
// Configuration (environment variables):
//   DEVPROVIDER_HOST              loopback address to bind (default 127.0.0.1)
//   DEVPROVIDER_PORT              port, 0 = pick a free one (default 0)
//   DEVPROVIDER_CLIENTS           JSON list of {client_id, client_secret, redirect_uris}
//   DEVPROVIDER_ACCESS_TOKEN_TTL  access token lifetime in seconds (default 3600)
//   DEVPROVIDER_ROTATE_REFRESH_TOKEN  "1" (default) rotate on every use, "0" never
//   DEVPROVIDER_LOG               "1" to log every request to stderr
//   DEVPROVIDER_WATCH_PARENT      "1" to exit when the parent process goes away
//
// Once listening it prints exactly one line "READY <issuer>" to stdout.
// See README.md for the /__dev control endpoints.

import crypto from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import process from 'node:process';

import Provider from 'oidc-provider';

// ---------------------------------------------------------------- config --

function die(message) {
  process.stderr.write(`devprovider: ${message}\n`);
  process.exit(2);
}

function envInt(name, fallback, { min = 0, max = Number.MAX_SAFE_INTEGER } = {}) {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  if (!/^\d+$/.test(raw.trim())) die(`${name} must be an integer, got ${JSON.stringify(raw)}`);
  const value = Number.parseInt(raw.trim(), 10);
  if (value < min || value > max) die(`${name} must be between ${min} and ${max}, got ${value}`);
  return value;
}

function envBool(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const v = raw.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(v)) return true;
  if (['0', 'false', 'no', 'off'].includes(v)) return false;
  return die(`${name} must be 1 or 0, got ${JSON.stringify(raw)}`);
}

function loopbackHost(raw) {
  const host = (raw ?? '').trim() || '127.0.0.1';
  if (host === 'localhost') return { bind: '127.0.0.1', issuerHost: 'localhost' };
  const unbracketed = host.replace(/^\[(.*)\]$/, '$1');
  const family = net.isIP(unbracketed);
  if (family === 4 && unbracketed.split('.')[0] === '127') {
    return { bind: unbracketed, issuerHost: unbracketed };
  }
  if (family === 6) {
    const bl = new net.BlockList();
    bl.addAddress('::1', 'ipv6');
    if (bl.check(unbracketed, 'ipv6')) return { bind: unbracketed, issuerHost: `[${unbracketed}]` };
  }
  return die(`DEVPROVIDER_HOST must be a loopback address (127.0.0.0/8, ::1 or localhost), got ${JSON.stringify(host)}`);
}

const DEFAULT_CLIENTS = [{
  client_id: 'demo',
  client_secret: 'demo-secret',
  redirect_uris: [
    'http://127.0.0.1:8000/auth/callback/demo',
    'http://localhost:8000/auth/callback/demo',
  ],
}];

function loadClients() {
  const raw = process.env.DEVPROVIDER_CLIENTS;
  if (raw === undefined || raw.trim() === '') return DEFAULT_CLIENTS;
  let parsed;
  try {
    parsed = JSON.parse(raw);
  } catch (err) {
    return die(`DEVPROVIDER_CLIENTS is not valid JSON: ${err.message}`);
  }
  if (!Array.isArray(parsed) || parsed.length === 0) die('DEVPROVIDER_CLIENTS must be a non-empty JSON list');
  const seen = new Set();
  for (const [i, c] of parsed.entries()) {
    if (c === null || typeof c !== 'object' || Array.isArray(c)) die(`DEVPROVIDER_CLIENTS[${i}] must be an object`);
    for (const key of ['client_id', 'client_secret']) {
      if (typeof c[key] !== 'string' || c[key] === '') die(`DEVPROVIDER_CLIENTS[${i}].${key} must be a non-empty string`);
    }
    if (!Array.isArray(c.redirect_uris) || c.redirect_uris.length === 0
      || !c.redirect_uris.every((u) => typeof u === 'string' && u !== '')) {
      die(`DEVPROVIDER_CLIENTS[${i}].redirect_uris must be a non-empty list of strings`);
    }
    if (seen.has(c.client_id)) die(`DEVPROVIDER_CLIENTS: duplicate client_id ${JSON.stringify(c.client_id)}`);
    seen.add(c.client_id);
  }
  return parsed;
}

const { bind: HOST, issuerHost: ISSUER_HOST } = loopbackHost(process.env.DEVPROVIDER_HOST);
const PORT = envInt('DEVPROVIDER_PORT', 0, { max: 65535 });
const CLIENTS = loadClients();
const ACCESS_TOKEN_TTL = envInt('DEVPROVIDER_ACCESS_TOKEN_TTL', 3600, { min: 1 });
const ROTATE_REFRESH_TOKEN = envBool('DEVPROVIDER_ROTATE_REFRESH_TOKEN', true);
const LOG = envBool('DEVPROVIDER_LOG', false);

// Besides the OpenID Connect scopes, two API-like scopes (named after Google's) that
// incremental authorization tests ask for later, and that a user may decline.
const SCOPES = ['openid', 'profile', 'email', 'offline_access', 'calendar.readonly', 'drive.file'];
const DAY = 24 * 60 * 60;

// --------------------------------------------------------------- storage --
// Unbounded in-memory adapter (oidc-provider's built-in one is an LRU capped
// at 1000 entries, which load tests would overflow, silently losing tokens).

const GRANTABLE = new Set([
  'AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode',
  'BackchannelAuthenticationRequest', 'PreAuthorizedCode',
]);
// Keep expired entries a while so oidc-provider itself reports "expired"
// (it checks `exp`) rather than "not found".
const EXPIRY_GRACE_MS = 5 * 60 * 1000;

const store = new Map(); // "Model:id" -> { payload, expiresAt }
const grantMembers = new Map(); // grantId -> Set("Model:id")
const sessionUids = new Map(); // session uid -> session id
const userCodes = new Map(); // user code -> id

function live(key) {
  const entry = store.get(key);
  if (!entry) return undefined;
  if (entry.expiresAt + EXPIRY_GRACE_MS <= Date.now()) {
    store.delete(key);
    return undefined;
  }
  return entry;
}

function revokeGrantMembers(grantId) {
  const members = grantMembers.get(grantId);
  if (!members) return;
  for (const key of members) store.delete(key);
  grantMembers.delete(grantId);
}

class DevAdapter {
  constructor(model) {
    this.model = model;
  }

  key(id) {
    return `${this.model}:${id}`;
  }

  async upsert(id, payload, expiresIn) {
    const key = this.key(id);
    const expiresAt = typeof expiresIn === 'number' ? Date.now() + expiresIn * 1000 : Infinity;
    store.set(key, { payload: structuredClone(payload), expiresAt });
    if (this.model === 'Session' && payload.uid) sessionUids.set(payload.uid, id);
    if (payload.userCode) userCodes.set(payload.userCode, id);
    if (GRANTABLE.has(this.model) && payload.grantId) {
      let members = grantMembers.get(payload.grantId);
      if (!members) {
        members = new Set();
        grantMembers.set(payload.grantId, members);
      }
      members.add(key);
    }
  }

  async find(id) {
    const entry = live(this.key(id));
    return entry ? structuredClone(entry.payload) : undefined;
  }

  async findByUid(uid) {
    const id = sessionUids.get(uid);
    return id === undefined ? undefined : this.find(id);
  }

  async findByUserCode(userCode) {
    const id = userCodes.get(userCode);
    return id === undefined ? undefined : this.find(id);
  }

  async consume(id) {
    const entry = live(this.key(id));
    if (entry) entry.payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) {
    const key = this.key(id);
    const entry = store.get(key);
    store.delete(key);
    if (entry && this.model === 'Session' && sessionUids.get(entry.payload.uid) === id) {
      sessionUids.delete(entry.payload.uid);
    }
  }

  async revokeByGrantId(grantId) {
    revokeGrantMembers(grantId);
  }
}

setInterval(() => {
  const now = Date.now();
  for (const [key, entry] of store) {
    if (entry.expiresAt + EXPIRY_GRACE_MS <= now) store.delete(key);
  }
  for (const [grantId, members] of grantMembers) {
    for (const key of members) if (!store.has(key)) members.delete(key);
    if (members.size === 0) grantMembers.delete(grantId);
  }
  for (const [uid, id] of sessionUids) if (!store.has(`Session:${id}`)) sessionUids.delete(uid);
  for (const [code, id] of userCodes) if (![...GRANTABLE].some((m) => store.has(`${m}:${id}`))) userCodes.delete(code);
}, 60_000).unref();

async function revokeGrantsOfAccount(accountId) {
  let revoked = 0;
  for (const [key, entry] of [...store]) {
    if (key.startsWith('Grant:') && entry.payload.accountId === accountId) {
      const grantId = key.slice('Grant:'.length);
      revokeGrantMembers(grantId);
      store.delete(key);
      revoked += 1;
    }
  }
  return revoked;
}

// ----------------------------------------------------------------- stats --

function freshStats() {
  return {
    authorization_code_grants: 0,
    authorization_code_errors: {},
    refresh_grants: 0,
    refresh_errors: {},
    revocations: 0,
    userinfo_calls: 0,
    userinfo_errors: {},
    token_requests: 0,
    injected_failures: 0,
    logins: 0,
  };
}
let stats = freshStats();

function bump(map, code) {
  map[code] = (map[code] ?? 0) + 1;
}

// Failure injection for the token endpoint (see POST /__dev/fail).
let failure = { count: 0 };

// Scopes an account declines at its next consent, as a user unticking boxes on a
// consent page (see POST /__dev/decline): account id -> Set(scope), used once.
const declines = new Map();

function takeDeclined(accountId) {
  const declined = declines.get(accountId) ?? new Set();
  declines.delete(accountId);
  return declined;
}

// A consent that grants what is asked except what the account declines now; a
// declined scope is rejected on the grant (so no consent prompt loops on it).
function grantScopes(grant, scopes, accountId) {
  const declined = takeDeclined(accountId);
  const granted = scopes.filter((s) => !declined.has(s) || s === 'openid');
  const rejected = scopes.filter((s) => declined.has(s) && s !== 'openid');
  if (granted.length) grant.addOIDCScope(granted.join(' '));
  if (grant.rejected?.openid?.scope) {
    const still = grant.rejected.openid.scope.split(' ').filter((s) => !granted.includes(s));
    grant.rejected.openid.scope = still.join(' ');
  }
  if (rejected.length) grant.rejectOIDCScope(rejected.join(' '));
}

// The session's grant, as oidc-provider loads it, except that a scope declined before
// and asked for again is no longer taken as answered: the consent prompt asks for it
// again (as Google does), where the account may grant or decline it.
async function loadExistingGrant(ctx) {
  const grantId = ctx.oidc.result?.consent?.grantId
    || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
  if (!grantId) return undefined;
  const grant = await ctx.oidc.provider.Grant.find(grantId);
  if (!grant || ctx.oidc.result?.consent || !grant.rejected?.openid?.scope) return grant;
  const asked = new Set((ctx.oidc.params.scope ?? '').split(' '));
  const kept = grant.rejected.openid.scope.split(' ').filter((s) => !asked.has(s));
  grant.rejected.openid.scope = kept.join(' ');
  return grant;
}

// ------------------------------------------------------------- accounts --

function accountFor(accountId) {
  const name = accountId.charAt(0).toUpperCase() + accountId.slice(1);
  return {
    accountId,
    async claims() {
      return {
        sub: accountId,
        name,
        preferred_username: accountId,
        email: `${accountId}@example.test`,
        email_verified: true,
      };
    },
  };
}

// ---------------------------------------------------------------- views ---

function esc(value) {
  return String(value)
    .replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

function page(title, body) {
  return `<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>${esc(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: sans-serif; max-width: 28em; margin: 3em auto">
${body}
</body>
</html>`;
}

function loginPage(uid, clientId, error) {
  return page('Sign in - devprovider', `<h1>Sign in</h1>
<p>Development OpenID provider. Any user name is accepted; no password.</p>
<p>Client: <code>${esc(clientId)}</code></p>
${error ? `<p role="alert" style="color: #b00">${esc(error)}</p>` : ''}
<form method="post" action="/interaction/${esc(uid)}/login" autocomplete="off">
  <label for="login">User name</label>
  <input type="text" name="login" id="login" required autofocus>
  <button type="submit" id="submit">Sign in</button>
</form>`);
}

// ------------------------------------------------------------- provider ---

const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = {
  ...privateKey.export({ format: 'jwk' }),
  kid: crypto.randomBytes(8).toString('hex'),
  alg: 'RS256',
  use: 'sig',
};

function configuration() {
  return {
    adapter: DevAdapter,
    clients: CLIENTS.map((c) => ({
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      // oidc-provider treats client_secret_basic and client_secret_post as
      // interchangeable for a client registered with either, so both work.
      token_endpoint_auth_method: 'client_secret_basic',
      ...c,
    })),
    clientAuthMethods: ['client_secret_basic', 'client_secret_post'],
    responseTypes: ['code'],
    scopes: SCOPES,
    claims: {
      openid: ['sub'],
      profile: ['name', 'preferred_username'],
      email: ['email', 'email_verified'],
    },
    findAccount: async (_ctx, sub) => accountFor(sub),
    loadExistingGrant,
    jwks: { keys: [signingKey] },
    cookies: {
      keys: [crypto.randomBytes(32).toString('base64url'), crypto.randomBytes(32).toString('base64url')],
    },
    pkce: { required: () => true },
    features: {
      devInteractions: { enabled: false },
      revocation: {
        enabled: true,
        allowedPolicy: async (_ctx, client, token) => token.clientId === client.clientId,
      },
      userinfo: { enabled: true },
      rpInitiatedLogout: {
        enabled: true,
        logoutSource: async (ctx, form) => {
          ctx.body = page('Sign out - devprovider', `<h1>Sign out?</h1>${form}
<button type="submit" id="logout" form="op.logoutForm" name="logout" value="yes">Sign out</button>
<button type="submit" id="stay" form="op.logoutForm">Stay signed in</button>`);
        },
        postLogoutSuccessSource: async (ctx) => {
          ctx.body = page('Signed out - devprovider', '<h1>Signed out</h1>');
        },
      },
    },
    interactions: {
      url: (_ctx, interaction) => `/interaction/${interaction.uid}`,
    },
    // Always issue refresh tokens to clients allowed to use them: no
    // offline_access scope or prompt=consent needed.
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    rotateRefreshToken: ROTATE_REFRESH_TOKEN,
    expiresWithSession: async () => false,
    clientBasedCORS: () => false,
    ttl: {
      AccessToken: ACCESS_TOKEN_TTL,
      AuthorizationCode: 60,
      IdToken: 3600,
      RefreshToken: 14 * DAY,
      Grant: 14 * DAY,
      Session: 14 * DAY,
      Interaction: 3600,
      ClientCredentials: 600,
    },
    renderError: async (ctx, out) => {
      ctx.type = 'html';
      ctx.body = page('Error - devprovider', `<h1>Error</h1>${Object.entries(out)
        .map(([k, v]) => `<p><strong>${esc(k)}</strong>: <span id="${esc(k)}">${esc(v)}</span></p>`)
        .join('\n')}`);
    },
  };
}

// -------------------------------------------------------- request helpers --

async function readBody(req, limit = 1024 * 1024) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > limit) throw Object.assign(new Error('request body too large'), { status: 413 });
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

async function readJson(ctx) {
  const raw = await readBody(ctx.req);
  if (raw.trim() === '') return {};
  try {
    const value = JSON.parse(raw);
    if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new Error('not an object');
    return value;
  } catch {
    ctx.throw(400, 'body must be a JSON object');
  }
  return {};
}

function sendJson(ctx, status, value) {
  ctx.status = status;
  ctx.type = 'application/json';
  ctx.body = JSON.stringify(value);
}

const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

function intField(body, name, fallback, min, max) {
  const v = body[name];
  if (v === undefined || v === null) return fallback;
  if (!Number.isInteger(v) || v < min || v > max) {
    throw Object.assign(new Error(`${name} must be an integer between ${min} and ${max}`), { status: 400, expose: true });
  }
  return v;
}

function injectedErrorCode(status) {
  if (status === 503) return 'temporarily_unavailable';
  if (status >= 500) return 'server_error';
  if (status === 401) return 'invalid_client';
  return 'invalid_request';
}

// ---------------------------------------------------------- control API ---

async function handleDev(ctx, provider) {
  const route = `${ctx.method} ${ctx.path}`;
  switch (route) {
    case 'GET /__dev/stats':
      return sendJson(ctx, 200, stats);
    case 'POST /__dev/reset':
      await readBody(ctx.req);
      stats = freshStats();
      return sendJson(ctx, 200, stats);
    case 'GET /__dev/fail':
      return sendJson(ctx, 200, failure);
    case 'POST /__dev/fail': {
      const body = await readJson(ctx);
      const count = intField(body, 'count', 1, 0, 1_000_000);
      const delayMs = intField(body, 'delay_ms', 0, 0, 600_000);
      // status omitted: 503, unless only a delay was asked for (then 0).
      const defaultStatus = body.status === undefined && delayMs > 0 ? 0 : 503;
      const status = intField(body, 'status', defaultStatus, 0, 599);
      if (status !== 0 && status < 100) ctx.throw(400, 'status must be 0 or an HTTP status code');
      if (body.body !== undefined && body.body !== null && typeof body.body !== 'string') {
        ctx.throw(400, 'body must be a string');
      }
      if (body.content_type !== undefined && typeof body.content_type !== 'string') {
        ctx.throw(400, 'content_type must be a string');
      }
      const headers = body.headers ?? {};
      if (typeof headers !== 'object' || Array.isArray(headers)
        || !Object.values(headers).every((v) => typeof v === 'string')) {
        ctx.throw(400, 'headers must be an object of strings');
      }
      failure = count === 0 ? { count: 0 } : {
        count,
        status,
        delay_ms: delayMs,
        body: body.body ?? null,
        content_type: body.content_type ?? null,
        headers,
      };
      return sendJson(ctx, 200, failure);
    }
    case 'POST /__dev/revoke_grants': {
      const body = await readJson(ctx);
      if (typeof body.account_id !== 'string' || body.account_id === '') ctx.throw(400, 'account_id must be a non-empty string');
      const revoked = await revokeGrantsOfAccount(body.account_id);
      return sendJson(ctx, 200, { revoked_grants: revoked });
    }
    case 'POST /__dev/decline': {
      const body = await readJson(ctx);
      if (typeof body.account_id !== 'string' || body.account_id === '') ctx.throw(400, 'account_id must be a non-empty string');
      if (!Array.isArray(body.scopes) || !body.scopes.every((s) => typeof s === 'string')) ctx.throw(400, 'scopes must be a list of strings');
      if (body.scopes.length) declines.set(body.account_id, new Set(body.scopes));
      else declines.delete(body.account_id);
      return sendJson(ctx, 200, { account_id: body.account_id, scopes: body.scopes });
    }
    case 'GET /__dev/config':
      return sendJson(ctx, 200, {
        issuer: provider.issuer,
        access_token_ttl: ACCESS_TOKEN_TTL,
        rotate_refresh_token: ROTATE_REFRESH_TOKEN,
        clients: CLIENTS.map((c) => c.client_id),
      });
    default:
      return sendJson(ctx, 404, { error: 'not_found', error_description: `no control endpoint ${route}` });
  }
}

async function injectFailure(ctx) {
  const rule = failure;
  rule.count -= 1;
  const current = { ...rule };
  if (rule.count <= 0) failure = { count: 0 };
  if (current.delay_ms > 0) await sleep(current.delay_ms);
  if (current.status === 0) return false; // delay only; process normally
  await readBody(ctx.req).catch(() => undefined);
  stats.injected_failures += 1;
  ctx.status = current.status;
  for (const [k, v] of Object.entries(current.headers)) ctx.set(k, v);
  ctx.set('Cache-Control', 'no-store');
  if (current.body !== null) {
    ctx.type = current.content_type ?? 'text/plain; charset=utf-8';
    ctx.body = current.body;
  } else {
    ctx.type = current.content_type ?? 'application/json';
    ctx.body = JSON.stringify({
      error: injectedErrorCode(current.status),
      error_description: `failure injected by /__dev/fail (status ${current.status})`,
    });
  }
  return true;
}

// --------------------------------------------------------- interactions ---

async function handleInteraction(ctx, provider, uid, action) {
  ctx.set('Cache-Control', 'no-store');
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  if (details.uid !== uid) ctx.throw(400, 'interaction mismatch');
  const { prompt, params, session } = details;

  if (action === 'show' && prompt.name === 'login') {
    ctx.type = 'html';
    ctx.body = loginPage(uid, params.client_id);
    return;
  }

  if (action === 'show' && prompt.name === 'consent') {
    // Only reached if a previous grant lacks something: grant it silently.
    let grant = details.grantId ? await provider.Grant.find(details.grantId) : undefined;
    grant ??= new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    const d = prompt.details;
    if (d.missingOIDCScope) grantScopes(grant, d.missingOIDCScope, session.accountId);
    if (d.missingOIDCClaims) grant.addOIDCClaims(d.missingOIDCClaims);
    if (d.missingResourceScopes) {
      for (const [indicator, scope] of Object.entries(d.missingResourceScopes)) {
        grant.addResourceScope(indicator, scope.join(' '));
      }
    }
    const returnTo = await provider.interactionResult(ctx.req, ctx.res, {
      consent: { grantId: await grant.save() },
    }, { mergeWithLastSubmission: true });
    ctx.status = 303;
    ctx.redirect(returnTo);
    return;
  }

  if (action === 'login') {
    const form = new URLSearchParams(await readBody(ctx.req));
    const login = (form.get('login') ?? '').trim();
    if (prompt.name !== 'login' && prompt.name !== 'consent') ctx.throw(400, `unsupported prompt ${prompt.name}`);
    if (login === '') {
      ctx.status = 400;
      ctx.type = 'html';
      ctx.body = loginPage(uid, params.client_id, 'Enter a user name.');
      return;
    }
    // One submit completes the login: create a grant with every requested
    // scope and claim so no consent prompt follows.
    let grant;
    if (details.grantId && session?.accountId === login) grant = await provider.Grant.find(details.grantId);
    grant ??= new provider.Grant({ accountId: login, clientId: params.client_id });
    const requested = (params.scope ?? '').split(' ').filter((s) => SCOPES.includes(s));
    if (requested.length) grantScopes(grant, requested, login);
    if (typeof params.claims === 'string') {
      try {
        const claims = JSON.parse(params.claims);
        const names = new Set();
        for (const part of ['id_token', 'userinfo']) Object.keys(claims?.[part] ?? {}).forEach((n) => names.add(n));
        if (names.size) grant.addOIDCClaims([...names]);
      } catch {
        // ignore a malformed claims parameter; oidc-provider validated it already
      }
    }
    const grantId = await grant.save();
    stats.logins += 1;
    const returnTo = await provider.interactionResult(ctx.req, ctx.res, {
      login: { accountId: login },
      consent: { grantId },
    }, { mergeWithLastSubmission: false });
    ctx.status = 303;
    ctx.redirect(returnTo);
    return;
  }

  ctx.throw(400, `unexpected prompt ${prompt.name}`);
}

// ---------------------------------------------------------------- stats ---

function recordStats(ctx) {
  let route;
  try {
    route = ctx.oidc?.route;
  } catch {
    return;
  }
  if (!route) return;
  const ok = ctx.status >= 200 && ctx.status < 300;
  const errorCode = () => {
    const body = ctx.body;
    if (body && typeof body === 'object' && typeof body.error === 'string') return body.error;
    return `http_${ctx.status}`;
  };
  if (route === 'token') {
    const grantType = ctx.oidc.params?.grant_type;
    if (grantType === 'authorization_code') {
      if (ok) stats.authorization_code_grants += 1;
      else bump(stats.authorization_code_errors, errorCode());
    } else if (grantType === 'refresh_token') {
      if (ok) stats.refresh_grants += 1;
      else bump(stats.refresh_errors, errorCode());
    }
  } else if (route === 'revocation') {
    if (ok) stats.revocations += 1;
  } else if (route === 'userinfo') {
    stats.userinfo_calls += 1;
    if (!ok) bump(stats.userinfo_errors, errorCode());
  }
}

// ----------------------------------------------------------------- main ---

const INTERACTION_RE = /^\/interaction\/([A-Za-z0-9_-]+)(\/login)?$/;

async function main() {
  let handler = (_req, res) => {
    res.statusCode = 503;
    res.end('starting');
  };
  const server = http.createServer((req, res) => handler(req, res));
  server.keepAliveTimeout = 65_000;
  server.listen({ host: HOST, port: PORT, backlog: 1024 });
  await new Promise((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  }).catch((err) => die(`cannot listen on ${HOST}:${PORT}: ${err.message}`));

  const { port } = server.address();
  const issuer = `http://${ISSUER_HOST}:${port}`;
  const provider = new Provider(issuer, configuration());
  provider.proxy = false;
  provider.on('server_error', (_ctx, err) => {
    process.stderr.write(`devprovider: server_error: ${err?.stack ?? err}\n`);
  });

  provider.use(async (ctx, next) => {
    const started = Date.now();
    try {
      if (ctx.path.startsWith('/__dev/')) {
        await handleDev(ctx, provider);
        return;
      }
      const m = INTERACTION_RE.exec(ctx.path);
      if (m) {
        const action = m[2] ? 'login' : 'show';
        if ((action === 'show' && ctx.method === 'GET') || (action === 'login' && ctx.method === 'POST')) {
          await handleInteraction(ctx, provider, m[1], action);
          return;
        }
      }
      if (ctx.method === 'POST' && ctx.path === '/token') {
        stats.token_requests += 1;
        if (failure.count > 0 && await injectFailure(ctx)) return;
      }
      await next();
      recordStats(ctx);
    } finally {
      if (LOG) process.stderr.write(`devprovider: ${ctx.method} ${ctx.url} -> ${ctx.status} (${Date.now() - started} ms)\n`);
    }
  });

  handler = provider.callback();

  let stopping = false;
  const stop = (signal) => {
    if (stopping) return;
    stopping = true;
    if (LOG) process.stderr.write(`devprovider: ${signal}, shutting down\n`);
    server.close(() => process.exit(0));
    server.closeAllConnections();
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));

  if (envBool('DEVPROVIDER_WATCH_PARENT', false)) {
    // The harness sets this so a killed test run never leaves us behind.
    const parent = process.ppid;
    setInterval(() => {
      if (process.ppid !== parent) stop('parent exited');
    }, 500).unref();
  }

  process.stdout.write(`READY ${issuer}\n`);
}

main().catch((err) => die(err?.stack ?? String(err)));
