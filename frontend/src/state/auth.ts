// Auth follows what the server wants: nothing (auth "none", the zero-setup demo, where the
// page behaves as if keys did not exist) or an API key. It asks GET /v1/me once at start,
// checks every key a person enters before keeping it, and turns every 401 into a request for
// a key that says why. It also hands out the one-use tickets that live channels need, since a
// browser cannot put a header on a WebSocket or an EventSource.
import { ApiError, type Api } from '../api/client';
import type { KeyInfo, MeResponse } from '../api/types';
import type { LiveAccess } from '../live/connection';
import type { KeyHolder } from './apiKey';

/** AuthMode is what the server said about keys; unknown until it answered. */
export type AuthMode = 'unknown' | 'none' | 'keys';

/** AuthPhase is where the page stands: still asking, able to work, or waiting for a key. */
export type AuthPhase = 'checking' | 'ready' | 'needs-key';

/** AuthState is what the page shows about access. */
export interface AuthState {
  readonly mode: AuthMode;
  readonly phase: AuthPhase;
  /** The key the page holds, as the server described it; null without one. */
  readonly key: KeyInfo | null;
  /** Why the page asks for a key, in words; null when it does not. */
  readonly reason: string | null;
}

/** authTexts are the reasons the key prompt gives. */
export const authTexts = {
  needed: 'This server needs an API key.',
  refused: (serverMessage: string) => `The server refused the key: ${serverMessage}`,
  signedOut: 'You signed out. Enter a key to use this server again.',
};

const initial: AuthState = { mode: 'unknown', phase: 'checking', key: null, reason: null };

/** Auth is the page's access to the server; see the file comment. */
export class Auth implements LiveAccess {
  private readonly api: Api;
  private readonly keys: KeyHolder;
  private readonly listeners = new Set<() => void>();
  private state: AuthState = initial;
  private checking: Promise<void> | null = null;

  constructor(api: Api, keys: KeyHolder) {
    this.api = api;
    this.keys = keys;
    api.onUnauthorized((err, sentKey) => {
      // A refusal of a key the page no longer holds (a request from before a sign-in) is old news.
      if (sentKey === this.keys.get()) this.refuse(err.message, sentKey);
    });
  }

  getState = (): AuthState => this.state;

  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  /** check asks the server whether it wants keys and whether the held one is good. */
  check(): Promise<void> {
    if (!this.checking) this.checking = this.runCheck().finally(() => (this.checking = null));
    return this.checking;
  }

  /** signIn checks a key with the server and keeps it for this tab; it fails with the server's refusal. */
  async signIn(candidate: string): Promise<void> {
    const key = candidate.trim();
    const me = await this.api.me(key);
    if (me.auth === 'none') {
      this.keys.clear();
      this.set({ mode: 'none', phase: 'ready', key: null, reason: null });
      return;
    }
    this.keys.set(key);
    this.set({ mode: 'keys', phase: 'ready', key: me.key, reason: null });
  }

  /** signOut forgets the key; the page asks for one again. */
  signOut(): void {
    this.keys.clear();
    this.set({ mode: 'keys', phase: 'needs-key', key: null, reason: authTexts.signedOut });
  }

  /** downloadsNeedKey reports whether file links must be fetched with the key header. */
  downloadsNeedKey(): boolean {
    return this.state.mode === 'keys';
  }

  /** ticket gives nothing, at once, when the server wants no keys; otherwise a fresh ticket. */
  ticket(jobId: string): Promise<string | null> | null {
    if (this.state.mode === 'none') return null;
    return this.fetchTicket(jobId);
  }

  private async fetchTicket(jobId: string): Promise<string | null> {
    if (this.state.mode === 'unknown') await this.check();
    const s = this.state;
    // A server that could not say (unreachable at start) is tried as one without keys; if it
    // wants one after all, its 401 brings the prompt.
    if (s.mode !== 'keys') return null;
    if (s.phase === 'needs-key') throw new ApiError(401, 'unauthorized', s.reason ?? authTexts.needed);
    return (await this.api.ticket(jobId)).ticket;
  }

  private async runCheck(): Promise<void> {
    const key = this.keys.get();
    try {
      const me = await this.api.me(key);
      if (key === this.keys.get()) this.accept(me, key);
    } catch (err) {
      if (key !== this.keys.get()) return; // a sign-in or sign-out meanwhile decided
      if (err instanceof ApiError && err.status === 401) this.refuse(err.message, key);
      else if (err instanceof ApiError && err.status === 404) this.accept({ auth: 'none' }, null); // a server from before keys
      else if (this.state.phase === 'checking') this.set({ ...this.state, phase: 'ready' });
    }
  }

  private accept(me: MeResponse, key: string | null): void {
    if (me.auth === 'none') {
      this.keys.clear(); // nothing to send to a server that wants no key
      this.set({ mode: 'none', phase: 'ready', key: null, reason: null });
    } else if (key === null) {
      this.refuse(authTexts.needed, null);
    } else {
      this.set({ mode: 'keys', phase: 'ready', key: me.key, reason: null });
    }
  }

  private refuse(serverMessage: string, sentKey: string | null): void {
    if (sentKey !== null) this.keys.clear();
    const reason = sentKey === null ? authTexts.needed : authTexts.refused(serverMessage);
    // A key already asked for keeps its first reason: later 401s of the same key say nothing new.
    if (this.state.phase === 'needs-key' && sentKey === null) return;
    this.set({ mode: 'keys', phase: 'needs-key', key: null, reason });
  }

  private set(next: AuthState): void {
    const prev = this.state;
    if (
      prev.mode === next.mode &&
      prev.phase === next.phase &&
      prev.key === next.key &&
      prev.reason === next.reason
    ) {
      return;
    }
    this.state = next;
    for (const l of [...this.listeners]) l();
  }
}
