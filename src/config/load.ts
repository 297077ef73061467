/**
 * The only place that reads the environment. Folds aliases into canonical names, applies the SocketForwarder profile and
 * MODE inference, validates with envalid, and reports every problem as one line:
 *   TCP_PORT="abc" is not a port (0-65535, 0 = any free port, or off); e.g. TCP_PORT=7100
 * loadConfig never exits; main.ts prints the ConfigError's lines and exits 1, which keeps this testable.
 */
import { cleanEnv, EnvMissingError } from 'envalid';
import { ErrorCodes, SwitchboardError } from '../errors.js';
import { buildGroupsConfig, checkGroupsSettings, type GroupsConfig } from './modes/groups.js';
import { buildMuxConfig, checkMuxSettings, type MuxConfig } from './modes/mux.js';
import {
  buildAgentConfig,
  buildRelayConfig,
  checkAgentSettings,
  checkRelaySettings,
  type AgentConfig,
  type RelayConfig,
} from './modes/relay.js';
import { buildShareConfig, checkShareSettings, type ShareConfig } from './modes/share.js';
import { portOrNull } from './validators.js';
import {
  AVAILABLE_MODES,
  MODES,
  PRESENCE_ALIASES,
  SETTINGS,
  SOCKETFORWARDER_PROFILE_TRIGGERS,
  type Mode,
  type SettingDefinition,
} from './settings.js';

export type { AgentConfig, GroupsConfig, MuxConfig, RelayConfig, ShareConfig };

export interface CommonConfig {
  mode: Mode;
  host: string;
  httpPort: number | null;
  httpHost: string;
  logLevel: string;
  logFormat: 'json' | 'pretty';
  maxClients: number;
  clientBufferBytes: number;
  maxBufferedBytes: number;
  reconnectMinMs: number;
  reconnectMaxMs: number;
  shutdownGraceMs: number;
}

export interface GroupsModeConfig extends CommonConfig {
  mode: 'groups';
  groups: GroupsConfig;
}

export interface MuxModeConfig extends CommonConfig {
  mode: 'mux';
  mux: MuxConfig;
}

export interface ShareModeConfig extends CommonConfig {
  mode: 'share';
  share: ShareConfig;
}

export interface RelayModeConfig extends CommonConfig {
  mode: 'relay';
  relay: RelayConfig;
}

export interface AgentModeConfig extends CommonConfig {
  mode: 'agent';
  agent: AgentConfig;
}

/** One member per mode; engines receive the member of their own mode. */
export type Config = GroupsModeConfig | MuxModeConfig | ShareModeConfig | RelayModeConfig | AgentModeConfig;

/** Cross-setting rules of each mode (the per-setting rules are in the validators). */
const MODE_CHECKS: Partial<Record<Mode, (cleaned: Record<string, unknown>, sourceOf: (name: string) => string) => string[]>> = {
  groups: checkGroupsSettings,
  mux: checkMuxSettings,
  share: checkShareSettings,
  relay: checkRelaySettings,
  agent: checkAgentSettings,
};

export interface LoadedConfig {
  config: Config;
  /** Non-fatal findings (likely typos), one line each. */
  warnings: string[];
  /** 'socketforwarder' when SocketForwarder's port names switched its defaults on. */
  profile: 'socketforwarder' | null;
  /** How the mode was chosen, for the start-up log line. */
  modeSource: 'MODE' | 'inferred';
  /** Effective settings as text, secrets redacted: the config summary that is logged at start. */
  summary: Record<string, string>;
}

export class ConfigError extends SwitchboardError {
  readonly problems: string[];
  constructor(problems: string[]) {
    super(ErrorCodes.CONFIG, problems.join('\n'));
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

/** Settings that select a mode when MODE is unset (DESIGN §1), in the order the rule is written. */
const MODE_INFERENCE: ReadonlyArray<{ setting: string; mode: Mode }> = [
  { setting: 'TARGET', mode: 'mux' },
  { setting: 'UPSTREAM', mode: 'share' },
  { setting: 'RELAY', mode: 'agent' },
];

const REDACTED = '[redacted]';

interface RawValue {
  /** The name the user wrote (canonical or alias); error messages use it. */
  source: string;
  value: string;
}

export function loadConfig(env: NodeJS.ProcessEnv): LoadedConfig {
  const problems: string[] = [];
  const raw = foldAliases(env, problems);

  const profile = SOCKETFORWARDER_PROFILE_TRIGGERS.some((name) => env[name] !== undefined) ? 'socketforwarder' : null;
  // Profile defaults only; every other default comes from the definition relevant to the mode (see `relevant` below).
  const defaults = new Map<string, string | undefined>();
  if (profile) {
    // SocketForwarder serves only the protocols whose port is given, forwards every datagram and echoes it to its sender.
    defaults.set('TCP_PORT', 'off');
    defaults.set('UDP_PORT', 'off');
    defaults.set('UDP_OPEN', 'true');
    defaults.set('UDP_ECHO_SENDER', 'true');
  }

  const { mode, modeSource } = chooseMode(env, raw, problems);

  // Settings of another mode are an error: they would silently do nothing.
  for (const [name, { source }] of raw) {
    // The settings that select a mode are reported by chooseMode already.
    if (MODE_INFERENCE.some((m) => m.setting === name)) continue;
    // One name may be defined once per mode (LISTEN_PORT: mux and share, with their own defaults).
    const definitions = SETTINGS.filter((s) => s.name === name);
    const modes = definitions.flatMap((s) => (s.scope === 'common' ? MODES : s.scope));
    if (mode && modes.length > 0 && !modes.includes(mode)) {
      problems.push(`${source} is a setting of MODE=${modes.join('/')}, but MODE is ${mode}; remove it or set MODE=${modes[0]}`);
    }
  }

  const relevant = SETTINGS.filter((s) => s.name !== 'MODE' && (s.scope === 'common' || (mode !== undefined && s.scope.includes(mode))));
  const input: Record<string, string> = {};
  const spec: Record<string, ReturnType<SettingDefinition['validator']>> = {};
  for (const setting of relevant) {
    const given = raw.get(setting.name)?.value ?? (defaults.has(setting.name) ? defaults.get(setting.name) : setting.default);
    if (given !== undefined) input[setting.name] = given;
    spec[setting.name] = setting.validator({ desc: setting.doc, example: setting.example });
  }

  const cleaned = cleanEnv(input, spec, {
    reporter: ({ errors }) => {
      for (const [name, error] of Object.entries(errors)) {
        if (!error) continue;
        const setting = relevant.find((s) => s.name === name)!;
        const given = raw.get(name);
        const label = given?.source ?? name;
        if (error instanceof EnvMissingError) {
          problems.push(`${label} is required; e.g. ${label}=${setting.example}`);
        } else {
          const shown = setting.secret ? REDACTED : (given?.value ?? input[name] ?? '');
          problems.push(`${label}="${shown}" ${error.message}; e.g. ${label}=${setting.example}`);
        }
      }
    },
  }) as Record<string, unknown>;

  if (problems.length === 0) crossCheck(mode!, cleaned, raw, problems);
  if (problems.length > 0 || !mode) throw new ConfigError(problems);

  const summary: Record<string, string> = { MODE: mode };
  for (const setting of relevant) {
    summary[setting.name] = setting.secret ? REDACTED : (input[setting.name] ?? '');
  }

  return {
    config: buildConfig(mode, cleaned),
    warnings: findTypos(env),
    profile,
    modeSource,
    summary,
  };
}

/** Collects each setting's value from its canonical name and aliases; two names with different values is a problem. */
function foldAliases(env: NodeJS.ProcessEnv, problems: string[]): Map<string, RawValue> {
  const raw = new Map<string, RawValue>();
  for (const setting of SETTINGS) {
    const found: RawValue[] = [];
    for (const name of [setting.name, ...(setting.aliases ?? [])]) {
      const value = env[name];
      if (value !== undefined) found.push({ source: name, value });
    }
    for (const [alias, { setting: target, value }] of Object.entries(PRESENCE_ALIASES)) {
      if (target === setting.name && env[alias] !== undefined) found.push({ source: alias, value });
    }
    const first = found[0];
    if (!first) continue;
    const differing = found.find((f) => f.value !== first.value);
    if (differing) {
      const shown = (v: RawValue) => `${v.source}="${setting.secret ? REDACTED : v.value}"`;
      problems.push(
        `${shown(first)} and ${shown(differing)} name the same setting with different values; e.g. keep only ${setting.name}=${setting.secret ? '…' : first.value}`,
      );
    }
    raw.set(setting.name, first);
  }
  return raw;
}

function chooseMode(
  env: NodeJS.ProcessEnv,
  raw: Map<string, RawValue>,
  problems: string[],
): { mode: Mode | undefined; modeSource: 'MODE' | 'inferred' } {
  const selectors = MODE_INFERENCE.filter(({ setting }) => env[setting] !== undefined);
  if (selectors.length > 1) {
    problems.push(
      `${selectors.map((s) => s.setting).join(' and ')} belong to different modes (${selectors.map((s) => s.mode).join(', ')}); set only one of them`,
    );
  }
  const explicit = raw.get('MODE');
  let mode: Mode | undefined;
  let modeSource: 'MODE' | 'inferred' = 'inferred';
  if (explicit) {
    modeSource = 'MODE';
    const value = explicit.value.trim() as Mode;
    if (!MODES.includes(value)) {
      problems.push(`MODE="${explicit.value}" is not one of ${MODES.join(', ')}; e.g. MODE=groups`);
      return { mode: undefined, modeSource };
    }
    mode = value;
    const other = selectors.find((s) => s.mode !== mode);
    if (other && selectors.length === 1) {
      problems.push(`${other.setting} is a setting of MODE=${other.mode}, but MODE is ${mode}; remove it or set MODE=${other.mode}`);
    }
  } else {
    mode = selectors[0]?.mode ?? 'groups';
  }
  if (!AVAILABLE_MODES.includes(mode)) {
    const why = explicit ? `MODE="${explicit.value}"` : `${selectors[0]!.setting} is set, so MODE is ${mode}, but that mode`;
    problems.push(`${why} is not available in this version yet (available: ${AVAILABLE_MODES.join(', ')}); e.g. MODE=groups`);
    return { mode: undefined, modeSource };
  }
  return { mode, modeSource };
}

function crossCheck(mode: Mode, cleaned: Record<string, unknown>, raw: Map<string, RawValue>, problems: string[]): void {
  const min = cleaned.RECONNECT_MIN_MS as number;
  const max = cleaned.RECONNECT_MAX_MS as number;
  if (min > max) {
    problems.push(`RECONNECT_MIN_MS="${min}" is above RECONNECT_MAX_MS="${max}"; e.g. RECONNECT_MIN_MS=200 RECONNECT_MAX_MS=10000`);
  }
  problems.push(...(MODE_CHECKS[mode]?.(cleaned, (name) => raw.get(name)?.source ?? name) ?? []));
}

function buildConfig(mode: Mode, c: Record<string, unknown>): Config {
  const common: CommonConfig = {
    mode,
    host: c.HOST as string,
    httpPort: portOrNull(c.HTTP_PORT),
    httpHost: c.HTTP_HOST as string,
    logLevel: c.LOG_LEVEL as string,
    logFormat: c.LOG_FORMAT as 'json' | 'pretty',
    maxClients: c.MAX_CLIENTS as number,
    clientBufferBytes: c.CLIENT_BUFFER_BYTES as number,
    maxBufferedBytes: c.MAX_BUFFERED_BYTES as number,
    reconnectMinMs: c.RECONNECT_MIN_MS as number,
    reconnectMaxMs: c.RECONNECT_MAX_MS as number,
    shutdownGraceMs: c.SHUTDOWN_GRACE_MS as number,
  };
  switch (mode) {
    case 'groups':
      return { ...common, mode, groups: buildGroupsConfig(c) };
    case 'mux':
      return { ...common, mode, mux: buildMuxConfig(c) };
    case 'share':
      return { ...common, mode, share: buildShareConfig(c) };
    case 'relay':
      return { ...common, mode, relay: buildRelayConfig(c) };
    case 'agent':
      return { ...common, mode, agent: buildAgentConfig(c) };
  }
}

/** Kubernetes injects <SERVICE>_SERVICE_HOST/_PORT and <SERVICE>_PORT[_n_TCP…] for every Service; those are not typos. */
const KUBERNETES_NAME = /_SERVICE_(HOST|PORT)(_|$)|_PORT_\d+_(TCP|UDP|SCTP)/;
const SERVICE_LINK_VALUE = /^(tcp|udp|sctp):\/\//;

/** Names close to one of ours (an edit distance of 1-2) are probably typos: warn, as they would otherwise do nothing. */
function findTypos(env: NodeJS.ProcessEnv): string[] {
  const known = new Set<string>(['MODE', ...MODE_INFERENCE.map((m) => m.setting), ...Object.keys(PRESENCE_ALIASES)]);
  for (const s of SETTINGS) for (const n of [s.name, ...(s.aliases ?? [])]) known.add(n);
  const warnings: string[] = [];
  for (const [name, value] of Object.entries(env)) {
    if (known.has(name) || KUBERNETES_NAME.test(name) || SERVICE_LINK_VALUE.test(value ?? '')) continue;
    if (name.toLowerCase().startsWith('socketforwarder.')) {
      warnings.push(`${name} is not a SocketForwarder setting switchboard knows; it is ignored`);
      continue;
    }
    if (name.length < 5) continue;
    const upper = name.toUpperCase();
    for (const candidate of known) {
      if (candidate.includes('.')) continue;
      const distance = editDistance(upper, candidate);
      if (distance <= 2 && (distance > 0 || name !== candidate)) {
        warnings.push(`${name} is not a switchboard setting; did you mean ${candidate}? It is ignored`);
        break;
      }
    }
  }
  return warnings;
}

function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 2) return 3;
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length]!;
}
