/**
 * share mode settings (DESIGN) and their typed form. Not available yet: the table is empty and MODE=share is refused.
 */
import type { SettingDefinition } from '../types.js';

// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface ShareConfig {}

export const SHARE_SETTINGS: readonly SettingDefinition[] = [];

/** Cross-setting rules of the mode; each problem is one line. */
export function checkShareSettings(_cleaned: Record<string, unknown>, _sourceOf: (name: string) => string): string[] {
  return [];
}

export function buildShareConfig(_cleaned: Record<string, unknown>): ShareConfig {
  return {};
}
