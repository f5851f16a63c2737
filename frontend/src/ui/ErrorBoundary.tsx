import { Component, type ReactNode } from 'react';

interface State {
  error: Error | null;
}

/** ErrorBoundary turns a failure while rendering into words and a way out, never a blank page. */
export class ErrorBoundary extends Component<{ children: ReactNode; resetKey: string }, State> {
  override state: State = { error: null };

  static getDerivedStateFromError(error: Error): State {
    return { error };
  }

  override componentDidUpdate(prev: { resetKey: string }) {
    if (prev.resetKey !== this.props.resetKey && this.state.error) this.setState({ error: null });
  }

  override render() {
    if (!this.state.error) return this.props.children;
    return (
      <section className="card problem" role="alert">
        <h1>Something went wrong on this page</h1>
        <p>{this.state.error.message || 'The page hit an unexpected error.'}</p>
        <p>
          <button type="button" className="button primary" onClick={() => window.location.reload()}>
            Reload the page
          </button>
        </p>
      </section>
    );
  }
}
