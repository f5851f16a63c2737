import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { Api } from './api/client';
import { browserSaveDeps, FileSaver } from './api/download';
import type { ConnectionDeps } from './live/connection';
import { KeyHolder, tabStorage } from './state/apiKey';
import { Auth } from './state/auth';
import { RECENT_STORAGE_KEY, RecentJobs } from './state/recentJobs';
import { followAuth, Sessions } from './state/sessions';
import { App } from './ui/App';
import { AppContext, type AppServices } from './ui/context';
import './styles.css';

function storage(): Storage | null {
  try {
    return window.localStorage;
  } catch {
    return null; // storage disabled by the browser's settings
  }
}

function newKey(): string {
  if (typeof crypto.randomUUID === 'function') return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

function wsUrl(path: string): string {
  const { protocol, host } = window.location;
  return `${protocol === 'https:' ? 'wss' : 'ws'}://${host}${path}`;
}

// The key stays in this tab's sessionStorage: never localStorage, never a URL.
const keys = new KeyHolder(tabStorage());
const api = new Api((input, init) => window.fetch(input, init), keys.get);
const auth = new Auth(api, keys);
const deps: ConnectionDeps = {
  api,
  access: auth,
  openWebSocket: (path) => new WebSocket(wsUrl(path)),
  openEventSource: typeof EventSource === 'function' ? (path) => new EventSource(path) : null,
  timers: {
    setTimeout: (fn, ms) => window.setTimeout(fn, ms),
    clearTimeout: (h) => window.clearTimeout(h as number),
    now: () => Date.now(),
  },
  random: Math.random,
};
const recent = new RecentJobs(storage());
const sessions = new Sessions(deps, recent);
const files = new FileSaver(api, () => auth.downloadsNeedKey(), browserSaveDeps());
const services: AppServices = { api, auth, sessions, recent, files, newKey, clock: deps.timers.now };

// The recent list is refreshed once the server said what it wants (followAuth does it).
followAuth(auth, sessions);
void auth.check();
window.addEventListener('online', () => sessions.retryAll());
window.addEventListener('storage', (e) => {
  if (e.key === RECENT_STORAGE_KEY || e.key === null) recent.reload();
});

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <AppContext.Provider value={services}>
      <App />
    </AppContext.Provider>
  </StrictMode>,
);
