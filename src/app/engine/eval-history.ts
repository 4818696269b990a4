/**
 * The Evaluate page's history: every finished evaluation, kept across page reloads in IndexedDB (database
 * `quantlab`, store `eval-runs`, one record per run). Where IndexedDB is missing or refuses (private modes,
 * Node), the history lives in memory for the session and says so. Only finished runs are stored: a cancelled
 * run never enters it.
 */
import type { EvalRun } from '../components/eval/eval-data.ts';

const DB = 'quantlab';
const STORE = 'eval-runs';

export interface EvalHistory {
  list(): Promise<EvalRun[]>;
  add(run: EvalRun): Promise<void>;
  remove(id: string): Promise<void>;
  clear(): Promise<void>;
  /** 'indexeddb' when runs survive a reload. */
  readonly persistence: 'indexeddb' | 'memory';
}

function request<T>(r: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error ?? new Error('IndexedDB request failed'));
  });
}

function openDb(): Promise<IDBDatabase> {
  return new Promise((resolve, reject) => {
    const r = indexedDB.open(DB, 1);
    r.onupgradeneeded = () => {
      if (!r.result.objectStoreNames.contains(STORE)) r.result.createObjectStore(STORE, { keyPath: 'id' });
    };
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error ?? new Error('IndexedDB could not be opened'));
    r.onblocked = () => reject(new Error('IndexedDB is blocked by another tab'));
  });
}

class IdbHistory implements EvalHistory {
  readonly persistence = 'indexeddb' as const;
  constructor(private readonly db: IDBDatabase) {}
  private store(mode: IDBTransactionMode): IDBObjectStore {
    return this.db.transaction(STORE, mode).objectStore(STORE);
  }
  async list(): Promise<EvalRun[]> {
    return (await request(this.store('readonly').getAll())) as EvalRun[];
  }
  async add(run: EvalRun): Promise<void> {
    await request(this.store('readwrite').put(run));
  }
  async remove(id: string): Promise<void> {
    await request(this.store('readwrite').delete(id));
  }
  async clear(): Promise<void> {
    await request(this.store('readwrite').clear());
  }
}

export class MemoryHistory implements EvalHistory {
  readonly persistence = 'memory' as const;
  private runs = new Map<string, EvalRun>();
  async list(): Promise<EvalRun[]> {
    return [...this.runs.values()];
  }
  async add(run: EvalRun): Promise<void> {
    this.runs.set(run.id, structuredClone(run));
  }
  async remove(id: string): Promise<void> {
    this.runs.delete(id);
  }
  async clear(): Promise<void> {
    this.runs.clear();
  }
}

let history: Promise<EvalHistory> | undefined;

/** The history: IndexedDB when the browser has it, memory otherwise. */
export function evalHistory(): Promise<EvalHistory> {
  history ??= (async () => {
    if (typeof indexedDB === 'undefined') return new MemoryHistory();
    try {
      return new IdbHistory(await openDb());
    } catch {
      return new MemoryHistory();
    }
  })();
  return history;
}
