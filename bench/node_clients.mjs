// The Node OAuth and JOSE clients partners already run, against a running gateway, each with
// the settings docs/clients.md gives. Started by bench/node_clients.py with one JSON argument:
//   {"module_dir", "issuer", "client_id", "client_secret", "post_client_id", "audience"}
// (the gateway's CA is trusted through NODE_EXTRA_CA_CERTS). Prints one JSON line per check,
// {"client", "ok", "detail"}, and exits 1 when any check that must pass failed.
import path from 'node:path';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

const opts = JSON.parse(process.argv[2]);
const require = createRequire(path.join(opts.module_dir, 'node_modules', 'x.js'));
const load = async (name) => import(pathToFileURL(require.resolve(name)).href);
const metadataUrl = `${opts.issuer}/.well-known/oauth-authorization-server`;
const tokens = [];
let failed = false;

async function check(client, expected, run) {
  try {
    const detail = await run();
    console.log(JSON.stringify({ client, ok: expected, detail }));
    if (!expected) failed = true;
  } catch (err) {
    const said = err.error_description ?? err.cause?.error_description
      ?? (Array.isArray(err.cause) ? `challenge ${JSON.stringify(err.cause)}` : undefined);
    const detail = `${err.name}: ${err.message}${said ? ` (${said})` : ''}`;
    console.log(JSON.stringify({ client, ok: !expected, detail }));
    if (expected) failed = true;
  }
}

const v6 = await load('openid-client');
await check('openid-client v6: ClientSecretBasic, {algorithm: "oauth2"}', true, async () => {
  const config = await v6.discovery(new URL(opts.issuer), opts.client_id, undefined,
    v6.ClientSecretBasic(opts.client_secret), { algorithm: 'oauth2' });
  const token = await v6.clientCredentialsGrant(config);
  tokens.push(token.access_token);
  return `token_type ${token.token_type}, expires_in ${token.expires_in}`;
});
await check('openid-client v6: its default ClientSecretPost, client_secret_post: true', true,
  async () => {
    const config = await v6.discovery(new URL(opts.issuer), opts.post_client_id,
      opts.client_secret, undefined, { algorithm: 'oauth2' });
    const token = await v6.clientCredentialsGrant(config);
    return `token_type ${token.token_type}`;
  });
await check('openid-client v6: ClientSecretPost, client without client_secret_post', false,
  async () => {
    const config = await v6.discovery(new URL(opts.issuer), opts.client_id,
      opts.client_secret, undefined, { algorithm: 'oauth2' });
    await v6.clientCredentialsGrant(config);
    return 'a token: body credentials were accepted';
  });

const { Issuer } = require('openid-client5');
await check('openid-client v5: Issuer.discover(full metadata URL)', true, async () => {
  const issuer = await Issuer.discover(metadataUrl);
  const client = new issuer.Client({ client_id: opts.client_id,
    client_secret: opts.client_secret, token_endpoint_auth_method: 'client_secret_basic' });
  const token = await client.grant({ grant_type: 'client_credentials' });
  return `token_type ${token.token_type}`;
});
await check('openid-client v5: Issuer.discover(issuer) asks openid-configuration', false,
  async () => {
    await Issuer.discover(opts.issuer);
    return 'discovered';
  });

const { ClientCredentials } = require('simple-oauth2');
const simple = (id, authorizationMethod) => new ClientCredentials({
  client: { id, secret: opts.client_secret },
  auth: { tokenHost: opts.issuer, tokenPath: '/oauth2/token' },
  options: { authorizationMethod },
});
await check('simple-oauth2: authorizationMethod "header"', true, async () => {
  const token = await simple(opts.client_id, 'header').getToken({});
  return `token_type ${token.token.token_type}`;
});
await check('simple-oauth2: authorizationMethod "body", client_secret_post: true', true,
  async () => {
    const token = await simple(opts.post_client_id, 'body').getToken({});
    return `token_type ${token.token.token_type}`;
  });

const jose = await load('jose');
await check('jose: createRemoteJWKSet + jwtVerify', true, async () => {
  const jwks = jose.createRemoteJWKSet(new URL(`${opts.issuer}/.well-known/jwks.json`));
  const { payload, protectedHeader } = await jose.jwtVerify(tokens[0], jwks, {
    issuer: opts.issuer, audience: opts.audience, algorithms: ['ES256'], typ: 'at+jwt' });
  return `sub ${payload.sub}, kid ${protectedHeader.kid}`;
});

const jsonwebtoken = require('jsonwebtoken');
const jwksRsa = require('jwks-rsa');
await check('jsonwebtoken + jwks-rsa', true, async () => {
  const keys = jwksRsa({ jwksUri: `${opts.issuer}/.well-known/jwks.json` });
  const { header } = jsonwebtoken.decode(tokens[0], { complete: true });
  const key = await keys.getSigningKey(header.kid);
  const claims = jsonwebtoken.verify(tokens[0], key.getPublicKey(), {
    algorithms: ['ES256'], issuer: opts.issuer, audience: opts.audience });
  return `sub ${claims.sub}, scope ${claims.scope}`;
});

process.exit(failed ? 1 : 0);
