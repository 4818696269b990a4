/** Route slice: which section is open; kept in step with the URL hash (#/playground) by sync-hash.ts. */
import type { StateCreator } from 'zustand';
import { DEFAULT_SECTION, type SectionId } from '../sections.ts';
import type { AppState } from './index.ts';

export interface RouteSlice {
  section: SectionId;
  setSection: (s: SectionId) => void;
}

export const createRouteSlice: StateCreator<AppState, [], [], RouteSlice> = (set) => ({
  section: DEFAULT_SECTION,
  setSection: (section) => set({ section }),
});
