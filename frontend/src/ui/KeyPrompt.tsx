import { useEffect, useId, useRef, useState } from 'react';
import { ApiError } from '../api/client';
import { retryAtText, retryCountdown } from '../lib/format';
import type { AuthState } from '../state/auth';
import { useApp } from './context';
import { useRetryAfter } from './hooks';

/**
 * KeyPrompt asks for an API key when the server wants one, says why, and checks the key with
 * the server before the page keeps it (for this tab only).
 */
export function KeyPrompt({ reason }: { reason: string | null }) {
  const { auth } = useApp();
  const [value, setValue] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const retry = useRetryAfter();
  const heading = useRef<HTMLHeadingElement>(null);
  const inputId = useId();
  const reasonId = useId();
  const hintId = useId();
  const errorId = useId();
  useEffect(() => heading.current?.focus(), []);

  async function onSubmit(e: React.FormEvent) {
    e.preventDefault();
    if (busy || retry.waiting) return;
    if (value.trim() === '') {
      setError('Enter an API key.');
      return;
    }
    setBusy(true);
    setError(null);
    try {
      await auth.signIn(value); // the page replaces this prompt once the key is accepted
    } catch (err) {
      setError(err instanceof ApiError ? err.message : 'The key could not be checked.');
      retry.note(err);
      setBusy(false);
    }
  }

  const describedBy = [reasonId, hintId, error ? errorId : ''].filter(Boolean).join(' ');
  const countdown = retry.at === null ? '' : retryCountdown(retry.at, retry.now);
  return (
    <section className="card key-prompt" aria-labelledby="key-heading">
      <h1 id="key-heading" tabIndex={-1} ref={heading}>
        API key needed
      </h1>
      <p id={reasonId} className="lead" data-testid="key-reason">
        {reason ?? 'This server needs an API key.'}
      </p>
      <form onSubmit={onSubmit} noValidate>
        <label htmlFor={inputId}>API key</label>
        <input
          id={inputId}
          name="api_key"
          type="password"
          value={value}
          autoComplete="off"
          spellCheck={false}
          autoCapitalize="off"
          required
          aria-invalid={error !== null}
          aria-describedby={describedBy}
          onChange={(e) => {
            setValue(e.target.value);
            setError(null);
          }}
        />
        <p id={hintId} className="hint">
          The key stays in this tab only, and is forgotten when you close it or sign out.
        </p>
        {error ? (
          <div id={errorId} className="form-error" role="alert">
            <p>{error}</p>
            {retry.at !== null ? <p>{retryAtText(retry.at)}</p> : null}
          </div>
        ) : null}
        <div className="actions">
          <button type="submit" className="button primary" disabled={busy || retry.waiting}>
            {busy ? 'Checking…' : 'Use this key'}
          </button>
          {countdown ? (
            <span className="retry-count" aria-hidden="true">
              {countdown}
            </span>
          ) : null}
        </div>
      </form>
    </section>
  );
}

/** KeyStatus names the key the page holds and offers to forget it. */
export function KeyStatus({ state }: { state: AuthState }) {
  const { auth } = useApp();
  if (state.mode !== 'keys' || !state.key) return null;
  return (
    <p className="key-status">
      <span>
        Signed in with key “{state.key.name}” ({state.key.role})
      </span>
      <button type="button" className="button small" onClick={() => auth.signOut()}>
        Sign out
      </button>
    </p>
  );
}
