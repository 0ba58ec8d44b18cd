// A jurisdictional OpenID provider for the SoFA's federated-login tests: oidc-provider (OpenID
// Certified) with the clinicians, clients and FHIR resource the test names, on a loopback port.
//
// Configuration comes as JSON in HALO_OIDC_CONFIG:
//   { "port": 0, "issuer": "http://127.0.0.1:<port>" (optional, defaults to the bound address),
//     "accounts": { "dr-a": { "password": "...", "fhirUser": "https://.../Practitioner/dr-a" } },
//     "clients": [ { client_id, client_secret, redirect_uris, post_logout_redirect_uris } ],
//     "resources": { "<FHIR base>": "Context.write" } }
// It prints one line `listening <issuer>` once it serves.
//
// The sign-in page is our own (user name and password, checked against `accounts`); consent is
// given on the clinician's behalf (the jurisdiction pre-approves its relying parties).
//
// For the relying party's hostile cases the test can ask, once, for the next id_token of the
// token endpoint to be altered (POST /test/next-id-token {"alter": ...}): "bad-signature" flips
// the signature; "wrong-aud", "wrong-nonce" and "expired" change the claim and sign again with
// the provider's own key, so only the claim is wrong.

import crypto from 'node:crypto';
import http from 'node:http';
import Provider from 'oidc-provider';

const config = JSON.parse(process.env.HALO_OIDC_CONFIG ?? '{}');
const accounts = config.accounts ?? {};

// The key comes out of generation as PEM and is exported as a JWK from a key object of its own:
// Node 20 can deadlock when the garbage collector frees a key-generation job while a JWK export
// of the very key it made holds that key's lock.
const { privateKey: pem } = crypto.generateKeyPairSync('rsa', {
  modulusLength: 2048,
  publicKeyEncoding: { type: 'spki', format: 'pem' },
  privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
});
const privateKey = crypto.createPrivateKey(pem);
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: 'halo-test-rs256', alg: 'RS256', use: 'sig' };

const server = http.createServer();
await new Promise((resolve) => server.listen(config.port ?? 0, '127.0.0.1', resolve));
const issuer = config.issuer ?? `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients: (config.clients ?? []).map((c) => ({
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    ...c,
  })),
  jwks: { keys: [jwk] },
  cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
  claims: { openid: ['sub'], fhirUser: ['fhirUser'], profile: ['name'] },
  scopes: ['openid', 'offline_access', 'fhirUser', 'profile'],
  pkce: { required: () => true },
  features: {
    devInteractions: { enabled: false },
    rpInitiatedLogout: { enabled: true },
    introspection: { enabled: true },
    resourceIndicators: {
      enabled: true,
      // Access tokens for a FHIR base named in `resources` are JWTs the SoFA verifies.
      defaultResource: () => undefined,
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resource) => {
        const scope = config.resources?.[resource];
        if (scope === undefined) {
          throw new Provider.errors.InvalidTarget();
        }
        return {
          scope,
          audience: resource,
          accessTokenTTL: 3600,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        };
      },
    },
  },
  // The clinician's FHIR resource travels in the access token too, for $set-context.
  extraTokenClaims: (ctx, token) => {
    const account = accounts[token.accountId];
    return account?.fhirUser ? { fhirUser: account.fhirUser } : undefined;
  },
  findAccount: (ctx, id) => {
    const account = accounts[id];
    if (!account) {
      return undefined;
    }
    return {
      accountId: id,
      claims: () => ({ sub: id, fhirUser: account.fhirUser, name: account.name ?? id }),
    };
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  ttl: { Session: 3600, Interaction: 600, Grant: 3600, IdToken: 300, AuthorizationCode: 60 },
});
provider.proxy = false;

let alteration = null;

function b64json(part) {
  return JSON.parse(Buffer.from(part, 'base64url').toString());
}

function sign(header, payload) {
  const input = `${Buffer.from(JSON.stringify(header)).toString('base64url')}.${Buffer.from(
    JSON.stringify(payload),
  ).toString('base64url')}`;
  const signature = crypto.sign('sha256', Buffer.from(input), privateKey).toString('base64url');
  return `${input}.${signature}`;
}

function alter(idToken, how) {
  const [h, p, s] = idToken.split('.');
  const header = b64json(h);
  const payload = b64json(p);
  const now = Math.floor(Date.now() / 1000);
  switch (how) {
    case 'bad-signature': {
      const bytes = Buffer.from(s, 'base64url');
      bytes[0] ^= 0x01;
      return `${h}.${p}.${bytes.toString('base64url')}`;
    }
    case 'wrong-aud':
      return sign(header, { ...payload, aud: 'another-relying-party' });
    case 'wrong-nonce':
      return sign(header, { ...payload, nonce: crypto.randomBytes(16).toString('base64url') });
    case 'expired':
      return sign(header, { ...payload, iat: now - 7200, exp: now - 3600 });
    default:
      return idToken;
  }
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    let body = '';
    req.on('data', (chunk) => {
      body += chunk;
      if (body.length > 65536) reject(new Error('too large'));
    });
    req.on('end', () => resolve(body));
    req.on('error', reject);
  });
}

function escape(text) {
  return String(text).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/"/g, '&quot;');
}

function page(uid, message) {
  return `<!doctype html><html><head><title>Jurisdictional sign-in</title></head><body>
<h1>Sign in to the jurisdiction</h1>${message ? `<p role="alert">${escape(message)}</p>` : ''}
<form method="post" action="/interaction/${escape(uid)}">
<label>User <input name="username" autocomplete="username"></label>
<label>Password <input name="password" type="password"></label>
<button type="submit">Sign in</button></form></body></html>`;
}

async function consent(details) {
  const { prompt, grantId, session, params } = details;
  const grant = grantId
    ? await provider.Grant.find(grantId)
    : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  if (prompt.details.missingOIDCScope) grant.addOIDCScope(prompt.details.missingOIDCScope.join(' '));
  if (prompt.details.missingOIDCClaims) grant.addOIDCClaims(prompt.details.missingOIDCClaims);
  for (const [indicator, scope] of Object.entries(prompt.details.missingResourceScopes ?? {})) {
    grant.addResourceScope(indicator, scope.join(' '));
  }
  return { consent: { grantId: await grant.save() } };
}

provider.use(async (ctx, next) => {
  if (ctx.path === '/test/next-id-token' && ctx.method === 'POST') {
    alteration = JSON.parse(await readBody(ctx.req)).alter ?? null;
    ctx.status = 204;
    return;
  }
  const match = ctx.path.match(/^\/interaction\/([A-Za-z0-9_-]+)$/);
  if (match) {
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    ctx.set('cache-control', 'no-store');
    if (details.prompt.name === 'consent') {
      await provider.interactionFinished(ctx.req, ctx.res, await consent(details), {
        mergeWithLastSubmission: true,
      });
      ctx.respond = false;
      return;
    }
    if (ctx.method === 'GET') {
      ctx.type = 'html';
      ctx.body = page(details.uid);
      return;
    }
    const form = new URLSearchParams(await readBody(ctx.req));
    const account = accounts[form.get('username') ?? ''];
    if (!account || account.password !== form.get('password')) {
      ctx.type = 'html';
      ctx.status = 200;
      ctx.body = page(details.uid, 'Unknown user or wrong password.');
      return;
    }
    await provider.interactionFinished(
      ctx.req,
      ctx.res,
      { login: { accountId: form.get('username') } },
      { mergeWithLastSubmission: false },
    );
    ctx.respond = false;
    return;
  }
  await next();
  if (ctx.path === '/token' && alteration && ctx.body && typeof ctx.body.id_token === 'string') {
    ctx.body = { ...ctx.body, id_token: alter(ctx.body.id_token, alteration) };
    alteration = null;
  }
});

server.on('request', provider.callback());
process.stdout.write(`listening ${issuer}\n`);
// The test owns this process: it ends when its standard input closes.
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
