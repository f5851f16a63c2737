// The page's two routes, `/` and `/jobs/{job_id}`, over the History API.
import { useSyncExternalStore } from 'react';

/** Route is where the page is. */
export type Route =
  | { readonly name: 'home' }
  | { readonly name: 'job'; readonly jobId: string }
  | { readonly name: 'unknown'; readonly path: string };

const NAVIGATE = 'longhaul:navigate';

/** parseRoute reads a path. A job id is checked by the page against the id pattern. */
export function parseRoute(pathname: string): Route {
  if (pathname === '/' || pathname === '') return { name: 'home' };
  const m = /^\/jobs\/([^/]+)\/?$/.exec(pathname);
  if (m) return { name: 'job', jobId: decodeURIComponent(m[1]!) };
  return { name: 'unknown', path: pathname };
}

/** jobPath is the page of one job. */
export function jobPath(jobId: string): string {
  return `/jobs/${encodeURIComponent(jobId)}`;
}

/** navigate moves to a path of the page without reloading it. */
export function navigate(path: string, replace = false): void {
  if (path === window.location.pathname) return;
  if (replace) window.history.replaceState(null, '', path);
  else window.history.pushState(null, '', path);
  window.dispatchEvent(new Event(NAVIGATE));
}

function subscribe(cb: () => void): () => void {
  window.addEventListener('popstate', cb);
  window.addEventListener(NAVIGATE, cb);
  return () => {
    window.removeEventListener('popstate', cb);
    window.removeEventListener(NAVIGATE, cb);
  };
}

const getPath = () => window.location.pathname;

/** usePath is the current path, updated on navigation. */
export function usePath(): string {
  return useSyncExternalStore(subscribe, getPath);
}

/**
 * linkClick makes a plain link navigate inside the page, while a click with a modifier key
 * still opens a new tab as people expect.
 */
export function linkClick(path: string) {
  return (e: { button: number; metaKey: boolean; ctrlKey: boolean; shiftKey: boolean; altKey: boolean; preventDefault(): void }) => {
    if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    navigate(path);
  };
}
