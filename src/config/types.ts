/**
 * The shapes shared by the settings table (settings.ts) and the per-mode setting files (modes/*.ts).
 */
import type { ValidatorSpec } from 'envalid';

export const MODES = ['groups', 'mux', 'share', 'relay', 'agent'] as const;
export type Mode = (typeof MODES)[number];

/** Modes this build can run. The others are named in DESIGN.md and refused with a clear message until they land. */
export const AVAILABLE_MODES: readonly Mode[] = ['groups', 'mux', 'share', 'relay', 'agent'];

export const SLOW_CLIENT_POLICIES = ['disconnect', 'drop'] as const;
export type SlowClientPolicy = (typeof SLOW_CLIENT_POLICIES)[number];

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export interface SettingDefinition {
  /** The canonical UPPER_SNAKE name. */
  name: string;
  /** Other names accepted for it (SocketForwarder's dotted names). */
  aliases?: readonly string[];
  /** The default as text, exactly as README and .env.example show it; undefined = required (or inferred, see MODE). */
  default: string | undefined;
  /** A valid value for the "e.g." part of error messages. */
  example: string;
  /** One line for .env.example and README. */
  doc: string;
  /** `common`, or the modes the setting belongs to (setting it in another mode is an error). */
  scope: 'common' | readonly Mode[];
  /** Never logged or shown in /status (AUTH_SECRET). */
  secret?: boolean;
  // envalid's validator types are invariant in T; the parsed values are typed again in load.ts.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  validator: (spec?: any) => ValidatorSpec<any>;
}

