/**
 * relay and agent mode settings (DESIGN §7) and their typed forms. Not available yet: the table is empty and MODE=relay or
 * MODE=agent is refused.
 */
import type { SettingDefinition } from '../types.js';

// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface RelayConfig {}
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface AgentConfig {}

/** Settings of both modes (scope ['relay'], ['agent'] or ['relay', 'agent']). */
export const RELAY_SETTINGS: readonly SettingDefinition[] = [];

export function checkRelaySettings(_cleaned: Record<string, unknown>, _sourceOf: (name: string) => string): string[] {
  return [];
}

export function checkAgentSettings(_cleaned: Record<string, unknown>, _sourceOf: (name: string) => string): string[] {
  return [];
}

export function buildRelayConfig(_cleaned: Record<string, unknown>): RelayConfig {
  return {};
}

export function buildAgentConfig(_cleaned: Record<string, unknown>): AgentConfig {
  return {};
}
