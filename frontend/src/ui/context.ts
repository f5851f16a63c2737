// The services every component may use, handed down from main.tsx (tests hand their own).
import { createContext, useContext } from 'react';
import type { Api } from '../api/client';
import type { FileSaver } from '../api/download';
import type { Auth } from '../state/auth';
import type { RecentJobs } from '../state/recentJobs';
import type { Sessions } from '../state/sessions';

/** AppServices are the page's long-lived objects. */
export interface AppServices {
  api: Api;
  auth: Auth;
  sessions: Sessions;
  recent: RecentJobs;
  /** files saves produced files, with the key when the server wants one. */
  files: FileSaver;
  /** newKey makes an Idempotency-Key for one submission. */
  newKey: () => string;
  /** clock is the time (ms) the connections count in: their retry times are read against it. */
  clock: () => number;
}

export const AppContext = createContext<AppServices | null>(null);

/** useApp returns the page's services. */
export function useApp(): AppServices {
  const s = useContext(AppContext);
  if (!s) throw new Error('AppContext is missing');
  return s;
}

/**
 * RenderProbe is told of every render of a file row. The page leaves it empty; tests use it
 * to prove that one file event re-renders one row.
 */
export const RenderProbe = createContext<((fileId: number) => void) | null>(null);
