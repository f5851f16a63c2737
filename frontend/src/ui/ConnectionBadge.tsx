import type { ConnectionStatus } from '../live/connection';
import { useNow } from './hooks';

/** connectionLabel is what the indicator announces: which channel is live, or why none is. */
export function connectionLabel(s: ConnectionStatus): string {
  switch (s.state) {
    case 'connecting':
      return 'Connecting…';
    case 'live':
      return s.channel === 'sse' ? 'Live · SSE' : 'Live · WebSocket';
    case 'polling':
      return 'Polling';
    case 'reconnecting':
      return s.channel === 'polling' ? 'Polling · reconnecting…' : 'Reconnecting…';
    case 'offline':
      return 'Offline';
    case 'done':
      return 'Final state';
    case 'not_found':
      return 'Job gone';
    case 'unauthorized':
      return 'Needs an API key';
    case 'stopped':
      return 'Not watching';
  }
}

/** retryText is the countdown to the next live attempt, shown but not announced. */
export function retryText(s: ConnectionStatus, now: number): string {
  if (s.retryAt === null || (s.state !== 'polling' && s.state !== 'offline')) return '';
  const wait = Math.max(0, Math.ceil((s.retryAt - now) / 1000));
  return wait > 0 ? `live again in ${wait} s` : 'going live…';
}

/** ConnectionBadge shows which channel is live, or that the page is reconnecting or offline. */
export function ConnectionBadge({ status }: { status: ConnectionStatus }) {
  const now = useNow(1000, status.retryAt !== null);
  const retry = retryText(status, now);
  // A job that is gone says why in the card itself; the server's "not found" adds nothing.
  const quiet = status.state === 'live' || status.state === 'done' || status.state === 'not_found';
  const why = status.error && !quiet ? status.error : '';
  return (
    <div className={`conn conn-${status.state}`} data-state={status.state} data-channel={status.channel ?? 'none'}>
      <span className="conn-dot" aria-hidden="true" />
      <span role="status" className="conn-text">
        {connectionLabel(status)}
        {why ? <span className="conn-why"> — {why}</span> : null}
      </span>
      {retry ? (
        <span className="conn-retry" aria-hidden="true">
          {retry}
        </span>
      ) : null}
    </div>
  );
}
