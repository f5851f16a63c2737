import { parseRoute, linkClick, usePath, type Route } from '../lib/router';
import { useApp } from './context';
import { ErrorBoundary } from './ErrorBoundary';
import { useAuth } from './hooks';
import { JobPage, Problem } from './JobPage';
import { KeyPrompt, KeyStatus } from './KeyPrompt';
import { NewJob } from './NewJob';
import { RecentList } from './RecentList';

/**
 * App is the page: a header, the current route, and the list of recent jobs. While the server
 * wants a key the page has not got, the key prompt takes the route's place; the route comes
 * back as it was once a key is accepted.
 */
export function App() {
  const path = usePath();
  const route = parseRoute(path);
  const access = useAuth(useApp().auth);
  return (
    <>
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <a className="brand" href="/" onClick={linkClick('/')}>
          <span className="brand-mark" aria-hidden="true">
            ⇣
          </span>
          longhaul
        </a>
        <nav aria-label="Site">
          <a href="/" onClick={linkClick('/')} aria-current={route.name === 'home' ? 'page' : undefined}>
            New job
          </a>
          <a href="/monitoring/">Queue dashboard</a>
        </nav>
        <KeyStatus state={access} />
      </header>
      <div className="layout">
        <main id="main" tabIndex={-1}>
          <ErrorBoundary resetKey={path}>
            {access.phase === 'needs-key' ? <KeyPrompt reason={access.reason} /> : <RouteView route={route} />}
          </ErrorBoundary>
        </main>
        <aside>
          <ErrorBoundary resetKey="recent">
            <RecentList currentJobId={route.name === 'job' ? route.jobId : null} />
          </ErrorBoundary>
        </aside>
      </div>
    </>
  );
}

function RouteView({ route }: { route: Route }) {
  if (route.name === 'home') return <NewJob />;
  if (route.name === 'job') return <JobPage jobId={route.jobId} />;
  return (
    <Problem title="Page not found">
      <p>
        There is no page at <code>{route.path}</code>.
      </p>
    </Problem>
  );
}
