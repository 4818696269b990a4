/** Keeps the open section and the URL hash in step, so that back/forward and bookmarks work. */
import { DEFAULT_SECTION, sectionFromHash } from './sections.ts';
import type { AppStore } from './store/index.ts';

export function syncHash(store: AppStore): () => void {
  const fromHash = () => {
    const id = sectionFromHash(location.hash);
    if (id) store.getState().setSection(id);
    else history.replaceState(null, '', `#/${DEFAULT_SECTION}`);
  };
  fromHash();
  window.addEventListener('hashchange', fromHash);
  return () => window.removeEventListener('hashchange', fromHash);
}
