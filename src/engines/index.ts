import type { Engine, EngineContext } from './engine.js';
import { GroupsEngine } from './groups/index.js';

/** One engine per process, chosen by MODE. config/load.ts refuses modes that are not in AVAILABLE_MODES yet. */
export function createEngine(context: EngineContext): Engine {
  const { config } = context;
  switch (config.mode) {
    case 'groups':
      return new GroupsEngine({ ...context, config });
    case 'mux':
    case 'share':
    case 'relay':
    case 'agent':
      throw new Error(`MODE=${config.mode} has no engine in this build`);
  }
}
