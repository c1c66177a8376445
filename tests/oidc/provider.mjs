// A real OpenID Connect provider for Ferry's single sign-on tests: panva/node-oidc-provider
// (OpenID Certified), with its built-in sign-in and consent pages. Any login name signs in;
// its groups come from GROUPS below. Listens on 127.0.0.1 only.
//
//   node provider.mjs PORT REDIRECT_URI CLIENT_SECRET
import Provider from 'oidc-provider';

const [port, redirectUri, clientSecret] = process.argv.slice(2);
if (!port || !redirectUri || !clientSecret) {
  console.error('usage: node provider.mjs PORT REDIRECT_URI CLIENT_SECRET');
  process.exit(2);
}

// Who is in which group (anyone else is in none).
const GROUPS = {
  olga: ['staff', 'ferry-operators'],
  ada: ['ferry-admins'],
  vic: ['ferry-viewers'],
  'Mixed.Case': ['ferry-viewers'],
};

const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [{
    client_id: 'ferry',
    client_secret: clientSecret,
    redirect_uris: [redirectUri],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  pkce: { required: () => true },
  scopes: ['openid', 'profile', 'groups'],
  claims: { openid: ['sub'], profile: ['preferred_username', 'name'], groups: ['groups'] },
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        return { sub: `sub-${id}`, preferred_username: id, name: id, groups: GROUPS[id] ?? [] };
      },
    };
  },
  features: { devInteractions: { enabled: true } },
  cookies: { keys: ['ferry-test-provider-only'] },
});
provider.listen(Number(port), '127.0.0.1', () => {
  console.log(`listening on http://127.0.0.1:${port}`);
});
