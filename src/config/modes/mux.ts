/**
 * mux mode settings (DESIGN) and their typed form. Not available yet: the table is empty and MODE=mux is refused.
 */
import type { SettingDefinition } from '../types.js';

// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface MuxConfig {}

export const MUX_SETTINGS: readonly SettingDefinition[] = [];

/** Cross-setting rules of the mode; each problem is one line. */
export function checkMuxSettings(_cleaned: Record<string, unknown>, _sourceOf: (name: string) => string): string[] {
  return [];
}

export function buildMuxConfig(_cleaned: Record<string, unknown>): MuxConfig {
  return {};
}
