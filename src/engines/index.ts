import type { Engine, EngineContext } from './engine.js';
import { GroupsEngine } from './groups/index.js';
import { AgentEngine } from './relay/agent.js';
import { RelayEngine } from './relay/relay.js';
import { HttpMuxEngine } from './mux/http/engine.js';
import { MuxEngine } from './mux/index.js';
import { ShareEngine } from './share/index.js';

/** One engine per process, chosen by MODE. config/load.ts refuses modes that are not in AVAILABLE_MODES yet. */
export function createEngine(context: EngineContext): Engine {
  const { config } = context;
  switch (config.mode) {
    case 'groups':
      return new GroupsEngine({ ...context, config });
    case 'share':
      return new ShareEngine({ ...context, config });
    case 'relay':
      return new RelayEngine({ ...context, config });
    case 'agent':
      return new AgentEngine({ ...context, config });
    case 'mux':
      // HTTP streams bodies, so it has its own engine on the mux parts that fit (DESIGN §5 `http`).
      return config.mux.protocol === 'http' ? new HttpMuxEngine({ ...context, config }) : new MuxEngine({ ...context, config });
  }
}
