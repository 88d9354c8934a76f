/**
 * "Recent tasks": the `tasks` connection, newest first, a page at a time ("Show more" follows
 * `endCursor`). Each entry is a link to its task (`#task=<id>`) that reopens it: the live view while it
 * runs, its results once done. Links, not buttons: a task named "cancel ..." or a "cancelled" badge
 * must not make a second button answer to "Cancel".
 */
import type { KontextClient, Task } from '@kontext-gateway/sdk';
import { useEffect, useState } from 'preact/hooks';
import { errorOfThrown, isAuthError } from './api-errors';
import { variantUrl } from './api';

/** Props of {@link RecentTasks}. */
export interface RecentTasksProps {
  client: KontextClient;
  /** Changes when the list should be read again (a task started or ended). */
  version: number;
  /** The task on screen, marked in the list. */
  current: string | null;
  onOpen: (taskId: string) => void;
  onAuthError: (message: string) => void;
}

const PAGE = 10;

/** "3 min ago", or the date for older tasks. */
function ago(iso: string): string {
  const s = (Date.now() - Date.parse(iso)) / 1000;
  if (s < 60) return 'just now';
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return new Date(iso).toLocaleDateString();
}

/** The list. */
export function RecentTasks({ client, version, current, onOpen, onAuthError }: RecentTasksProps) {
  const [tasks, setTasks] = useState<Task[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const [more, setMore] = useState(false);
  const [loading, setLoading] = useState(true);
  const [problem, setProblem] = useState<string | null>(null);

  const load = async (after: string | null, keep: Task[], live: () => boolean) => {
    setLoading(true);
    try {
      const page = await client.tasks({ first: PAGE, after });
      if (!live()) return;
      setTasks([...keep, ...page.edges.map((e) => e.node)]);
      setCursor(page.pageInfo.endCursor ?? null);
      setMore(page.pageInfo.hasNextPage);
      setProblem(null);
    } catch (err) {
      if (!live()) return;
      if (isAuthError(err)) {
        onAuthError(errorOfThrown(err).apiKey ?? String(err));
        setProblem('Enter a valid API key to see your tasks.');
      } else setProblem(err instanceof Error ? err.message : String(err));
    } finally {
      if (live()) setLoading(false);
    }
  };

  useEffect(() => {
    let live = true;
    // A key typed character by character would ask once per character: wait for a pause.
    const timer = setTimeout(() => void load(null, [], () => live), 250);
    return () => {
      live = false;
      clearTimeout(timer);
    };
  }, [client, version]);

  return (
    <section class="card recent">
      <h2 id="recent-title">Recent tasks</h2>
      {problem && <p class="error" role="alert">{problem}</p>}
      {!problem && !loading && tasks.length === 0 && <p class="muted">No tasks yet.</p>}
      <ul class="tasks" aria-labelledby="recent-title" aria-busy={loading}>
        {tasks.map((task) => {
          const first = task.images[0];
          return (
            <li key={task.id}>
              <a class="task" href={`#task=${task.id}`} onClick={() => onOpen(task.id)} aria-current={task.id === current ? 'true' : undefined}>
                {first ? <img src={variantUrl(first.url, 128)} alt="" width={48} height={48} loading="lazy" /> : <span class="no-thumb" aria-hidden="true" />}
                <span class="task-text">
                  <span class="task-desc">{task.description}</span>
                  <span class="muted">
                    <span class={`badge ${task.status.toLowerCase()}`}>{task.status.toLowerCase()}</span> {task.images.length} of {task.count} · {ago(task.createdAt)}
                  </span>
                </span>
              </a>
            </li>
          );
        })}
      </ul>
      {more && (
        <button type="button" class="more" disabled={loading} onClick={() => void load(cursor, tasks, () => true)}>
          Show more
        </button>
      )}
    </section>
  );
}
