import { parseRoute, linkClick, usePath } from '../lib/router';
import { ErrorBoundary } from './ErrorBoundary';
import { JobPage, Problem } from './JobPage';
import { NewJob } from './NewJob';
import { RecentList } from './RecentList';

/** App is the page: a header, the current route, and the list of recent jobs. */
export function App() {
  const path = usePath();
  const route = parseRoute(path);
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
      </header>
      <div className="layout">
        <main id="main" tabIndex={-1}>
          <ErrorBoundary resetKey={path}>
            {route.name === 'home' ? (
              <NewJob />
            ) : route.name === 'job' ? (
              <JobPage jobId={route.jobId} />
            ) : (
              <Problem title="Page not found">
                <p>
                  There is no page at <code>{route.path}</code>.
                </p>
              </Problem>
            )}
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
