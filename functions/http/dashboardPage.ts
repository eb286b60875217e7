import { app, HttpResponseInit } from '@azure/functions';

import { observed } from '../../adapters/http/envelope';

/**
 * Where the embedded host offers its local sign-in (local/http/localSignIn.ts). Only the embedded host answers it;
 * on Azure it is 404 and the page says that sign-in belongs to the page embedding the widget.
 */
const LOCAL_SIGN_IN = '/.mesh/local-sign-in';

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Mesh Orchestrator dashboard</title>
<style>
  html, body { margin: 0; min-height: 100%; background: #ffffff; color: #1b1f24; font-family: system-ui, sans-serif; }
  mesh-dashboard { min-height: 100vh; }
  .signin { max-width: 28em; margin: 3em auto; text-align: left; }
  .signin label { display: block; margin: 0.8em 0 0.3em; }
  .signin select, .signin button { font: inherit; padding: 0.3em 0.6em; }
  .signin button { margin-top: 0.8em; background: #0b5cad; color: #fff; border: 1px solid #0b5cad; border-radius: 6px; }
  .muted { color: #57606a; }
</style>
<script type="module" src="widget/mesh-dashboard.js"></script>
</head>
<body>
<mesh-dashboard id="dashboard">
  <div slot="sign-in" class="signin" id="signin"><p>Checking how to sign in…</p></div>
</mesh-dashboard>
<script type="module">
const dash = document.getElementById('dashboard');
const slot = document.getElementById('signin');
const params = new URLSearchParams(location.search);
if (params.get('view')) dash.setAttribute('view', params.get('view'));
if (params.get('team')) dash.setAttribute('team', params.get('team'));
dash.addEventListener('mesh-navigate', (e) => {
  const url = new URL(location.href);
  url.searchParams.set('view', e.detail.view);
  history.replaceState(null, '', url);
});
const SIGN_IN = ${JSON.stringify(LOCAL_SIGN_IN)};
function escape(s) { return String(s).replace(/[&<>"']/g, (c) => '&#' + c.charCodeAt(0) + ';'); }
async function mint(id) {
  const r = await fetch(SIGN_IN, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ id }) });
  const body = await r.json();
  if (!r.ok) throw new Error(body.message || 'sign-in failed');
  return body.data;
}
function signIn(id) {
  let current;
  dash.tokenProvider = async () => {
    if (!current || Date.parse(current.expiresAt) - Date.now() < 60000) current = await mint(id);
    return current.token;
  };
  sessionStorage.setItem('mesh-local-person', id);
}
const people = await fetch(SIGN_IN).then((r) => (r.ok ? r.json() : undefined), () => undefined);
if (people && Array.isArray(people.data?.people)) {
  const remembered = sessionStorage.getItem('mesh-local-person');
  if (remembered && people.data.people.some((p) => p.id === remembered)) signIn(remembered);
  slot.innerHTML = '<h1>Sign in (local)</h1>' +
    '<p class="muted">This embedded host has no sign-in configured: pick a person of its local directory. ' +
    'A token is minted for them by the host\\'s local identity provider.</p>' +
    '<form id="pick"><label for="person">Person</label><select id="person" name="person">' +
    people.data.people.map((p) => '<option value="' + escape(p.id) + '">' + escape(p.name) + ' (' +
      escape([...p.roles, ...p.teams.map((t) => 'team ' + t)].join(', ') || 'no roles') + ')</option>').join('') +
    '</select><br><button type="submit">Sign in</button></form>';
  slot.querySelector('#pick').addEventListener('submit', (e) => {
    e.preventDefault();
    signIn(new FormData(e.target).get('person'));
  });
} else {
  slot.innerHTML = '<h1>Sign in</h1><p>This page has no sign-in configured. Embed the widget in a page that signs ' +
    'in with Microsoft Entra ID (MSAL) and sets its <code>tokenProvider</code>.</p>';
}
</script>
</body>
</html>
`;

/** GET /dashboard: the widget full-page, with the embedded host's local sign-in when that host offers one. */
export function dashboardPage(): HttpResponseInit {
    return {
        status: 200,
        headers: {
            'content-type': 'text/html; charset=utf-8',
            'cache-control': 'no-cache',
            'x-content-type-options': 'nosniff',
            'referrer-policy': 'no-referrer',
        },
        body: PAGE,
    };
}

app.http('dashboardPage', {
    route: 'dashboard',
    methods: ['GET'],
    authLevel: 'anonymous',
    handler: observed(() => Promise.resolve(dashboardPage())),
});
