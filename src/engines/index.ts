import type { Engine, EngineContext } from './engine.js';
import { GroupsEngine } from './groups/index.js';

/** One engine per process, chosen by MODE (config/load.ts refuses modes this build does not have). */
export function createEngine(context: EngineContext): Engine {
  switch (context.config.mode) {
    case 'groups':
      return new GroupsEngine({ ...context, config: context.config });
  }
}
