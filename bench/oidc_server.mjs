// The token-endpoint anchor: oidc-provider 9 (panva/node-oidc-provider) issuing RFC 9068-style
// ES256 JWT access tokens for the client_credentials grant, behind Node's own TLS server.
// Started by bench/run.py with one JSON argument:
//   {"module_dir", "port", "cert", "key", "jwk", "client_id", "client_secret", "audience",
//    "resource", "scope"}
// and prints "oidc listening on https://127.0.0.1:PORT" once it accepts connections.
import { readFileSync } from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const opts = JSON.parse(process.argv[2]);
const entry = path.join(opts.module_dir, 'node_modules', 'oidc-provider', 'lib', 'index.js');
const { default: Provider } = await import(pathToFileURL(entry).href);

const issuer = `https://localhost:${opts.port}`;
const provider = new Provider(issuer, {
  clients: [{
    client_id: opts.client_id,
    client_secret: opts.client_secret,
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: 'ES256',
    scope: opts.scope,
  }],
  jwks: { keys: [opts.jwk] },
  scopes: [opts.scope],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => opts.resource,
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: opts.scope,
        audience: opts.audience,
        accessTokenTTL: 3600,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'ES256' } },
      }),
    },
  },
});

const server = https.createServer(
  { key: readFileSync(opts.key), cert: readFileSync(opts.cert) },
  provider.callback(),
);
server.keepAliveTimeout = 60000;
server.listen(opts.port, '127.0.0.1', () => {
  console.log(`oidc listening on https://127.0.0.1:${opts.port}`);
});
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => process.exit(0));
}
