/** The Playground engine, handed to components through context (it is not state: it never re-renders anything). */
import { createContext, useContext } from 'react';
import type { ModelEngine } from './engine/model-engine.ts';
import type { PlaygroundEngine } from './engine/playground-engine.ts';

export const EngineContext = createContext<PlaygroundEngine | null>(null);

export function useEngine(): PlaygroundEngine {
  const e = useContext(EngineContext);
  if (!e) throw new Error('useEngine outside <EngineContext.Provider>');
  return e;
}

export const ModelEngineContext = createContext<ModelEngine | null>(null);

export function useModelEngine(): ModelEngine {
  const e = useContext(ModelEngineContext);
  if (!e) throw new Error('useModelEngine outside <ModelEngineContext.Provider>');
  return e;
}
