/**
 * The playground page: the API key (once keys are in force), the request form, the task on screen
 * (its id in the URL's fragment, so a reload or a shared link reopens it) and the recent tasks.
 */
import { useCallback, useEffect, useMemo, useState } from 'preact/hooks';
import { ApiKeyField } from './api-key-field';
import { fetchAuthMode, loadApiKey, makeClient, saveApiKey, type AuthMode } from './api';
import { GenerateForm } from './generate-form';
import { RecentTasks } from './recent-tasks';
import { RunView } from './run-view';

/** The task id in `#task=<id>`, or null. */
function taskInHash(): string | null {
  const match = /^#task=([\w-]+)$/.exec(location.hash);
  return match?.[1] ?? null;
}

/** The page. */
export function App() {
  const [apiKey, setApiKey] = useState(loadApiKey);
  const [mode, setMode] = useState<AuthMode>('unknown');
  const [keyError, setKeyError] = useState<string | undefined>(undefined);
  const [taskId, setTaskId] = useState(taskInHash);
  const [version, setVersion] = useState(0);
  // A client per key: cheap, since it connects nothing until used (its socket opens with the first watch).
  // Not debounced: a key pasted and used at once must be the one sent.
  const client = useMemo(() => makeClient(apiKey), [apiKey]);

  useEffect(() => () => void client.close(), [client]);
  useEffect(() => {
    void fetchAuthMode().then(setMode);
    const onHash = () => setTaskId(taskInHash());
    addEventListener('hashchange', onHash);
    return () => removeEventListener('hashchange', onHash);
  }, []);

  const changeKey = useCallback((key: string) => {
    saveApiKey(key);
    setApiKey(key);
    setKeyError(undefined);
  }, []);
  const open = useCallback((id: string) => {
    location.hash = `task=${id}`;
    setTaskId(id);
  }, []);
  const refresh = useCallback(() => setVersion((v) => v + 1), []);
  const authFailed = useCallback((message: string) => setKeyError(message), []);

  const showKey = mode === 'keys' || apiKey !== '' || keyError !== undefined;
  return (
    <>
      <header class="top">
        <h1>Kontext playground</h1>
        <nav>
          <a href="/docs">REST docs</a>
          <a href="/graphql">GraphiQL</a>
        </nav>
      </header>
      <main class="layout">
        <div class="side">
          {showKey && <ApiKeyField apiKey={apiKey} onChange={changeKey} error={keyError} />}
          <GenerateForm
            client={client}
            onStarted={(task) => {
              open(task.id);
              refresh();
            }}
            onAuthError={authFailed}
          />
        </div>
        <div class="main">
          {taskId ? (
            <RunView client={client} taskId={taskId} onEnded={refresh} onAuthError={authFailed} />
          ) : (
            <section class="card run empty">
              <p class="muted">Drop a photo, say what to change, and watch each image being painted, step by step.</p>
            </section>
          )}
          <RecentTasks client={client} version={version} current={taskId} onOpen={open} onAuthError={authFailed} />
        </div>
      </main>
    </>
  );
}
