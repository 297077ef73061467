/**
 * Command-line compatibility (DESIGN §5): tcp-multiplexer's `switchboard server -t host:port -p modbus -l 8000 …` maps its
 * flags to settings. Not available yet: any argument is refused with a clear message.
 */
import { ConfigError } from './load.js';

/** Returns the environment with the command line's settings folded in; throws ConfigError for arguments it cannot read. */
export function applyCommandLine(args: readonly string[], env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  if (args.length === 0) return env;
  throw new ConfigError([`command-line arguments (${args.join(' ')}) are not supported yet; configure with environment variables`]);
}
